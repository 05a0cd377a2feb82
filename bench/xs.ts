/**
 * The device's hot paths measured inside Moddable's XS engine (the xsnap build of @agoric/xsnap), with XS's own
 * meters: compute units (the engine's metering: about one per bytecode executed, plus native work) and heap slots
 * (XS's allocation unit for objects, closures, properties; 16 bytes each on ESP32/ESP8266, 32 on this 64-bit host).
 * Byte buffers (packet bytes, strings) live in XS's chunk heap, which the slot count leaves out; the heap of a
 * client at rest counts them too, from the size of two snapshots.
 *
 *   QoS 1 publish round trip   Client.publish of a 17-byte payload (encode, write) and the PUBACK's decode and bookkeeping
 *   incoming 64-byte PUBLISH   a 64-byte QoS 0 PUBLISH on a device topic, decoded and handed to onMessage
 *   shadow update              Shadow.report: JSON, PUBLISH, PUBACK, the platform's reply decoded and parsed
 *   client heap at rest        a connected client with the thing layer (subscribed, idle), after a full GC
 *
 * No peer: these are absolute figures. Targets: no slot allocated per publish round trip (the packet bytes are
 * chunks); a client at rest under 8 KB of XS heap on the device.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundleForXs, PRELUDE } from "../xs/bundle";
import { hasXsnap, startXs, type Run, type XsWorker } from "../xs/worker";
import { Skip, type Benchmark, type Context, type Line } from "./harness";


const DEVICE_SLOT = 16;
const HOST_SLOT = 32;

async function xsFigures(ctx: Context): Promise<Record<string, Line>> {
  if (!hasXsnap()) throw new Skip("the XS engine is not built (npm run build:xs)");
  const code = await bundleForXs("xs/bench-entry.ts");
  const w: XsWorker = startXs();
  const dir = mkdtempSync(join(tmpdir(), "uiot-xs-bench-"));
  const cmd = (op: string, n = 0): Promise<Run> => w.command(JSON.stringify({ op, n }));
  try {
    await w.evaluate(PRELUDE);
    await w.evaluate(code);
    const out: Record<string, Line> = {};

    // heap of a client at rest: slots and snapshot bytes with and without it
    await cmd("drop");
    const s0 = await w.snapshot(join(dir, "a.xss"));
    const h0 = (await cmd("gc")).meters.currentHeapCount;
    await cmd("setup");
    await cmd("publish", 3); // a few round trips, so lazily made state exists
    const s1 = await w.snapshot(join(dir, "b.xss"));
    const h1 = (await cmd("gc")).meters.currentHeapCount;
    const slots = h1 - h0;
    const chunkBytes = Math.max(0, s1 - s0 - slots * HOST_SLOT);
    out["XS: client + thing layer at rest (heap slots)"] = { ours: slots, unit: "slots", better: "lower" };
    out["XS: client + thing layer at rest (device bytes)"] = {
      ours: slots * DEVICE_SLOT + chunkBytes, unit: "bytes", better: "lower", slotBytes: slots * DEVICE_SLOT, chunkBytes,
      target: 8192,
    };

    // Two runs of different lengths, each right after a full GC; the difference is per op. The runs are short
    // enough that no GC happens inside them (the engine starts with 256 K free slots), so the slot count is all
    // that was allocated, garbage included.
    const noop = (await cmd("noop")).meters.compute;
    for (const [op, label, small, big] of [
      ["publish", "QoS 1 publish round trip", 100, 1100], ["incoming", "incoming 64-byte PUBLISH", 100, 1100], ["shadow", "shadow update", 20, 220],
    ] as const) {
      await cmd("prepare", big);
      const g0 = await cmd("gc");
      const a = await cmd(op, small);
      await cmd("prepare", big);
      const g1 = await cmd("gc");
      const b = await cmd(op, big);
      const compute = (b.meters.compute - a.meters.compute) / (big - small);
      const da = a.meters.currentHeapCount - g0.meters.currentHeapCount, db = b.meters.currentHeapCount - g1.meters.currentHeapCount;
      const perOp = (db - da) / (big - small);
      ctx.log(`XS ${label}: ${compute.toFixed(0)} compute units, ${perOp.toFixed(2)} slots per op (noop command ${noop})`);
      out[`XS: ${label} (compute units)`] = { ours: compute, unit: "XS compute units/op", better: "lower" };
      out[`XS: ${label} (heap slots)`] = { ours: perOp, unit: "slots/op", better: "lower", deviceBytes: perOp * DEVICE_SLOT };
    }
    return out;
  } finally {
    await w.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const benchmarks: Benchmark[] = [
  {
    names: [
      "XS: client + thing layer at rest (heap slots)", "XS: client + thing layer at rest (device bytes)",
      "XS: QoS 1 publish round trip (compute units)", "XS: QoS 1 publish round trip (heap slots)",
      "XS: incoming 64-byte PUBLISH (compute units)", "XS: incoming 64-byte PUBLISH (heap slots)",
      "XS: shadow update (compute units)", "XS: shadow update (heap slots)",
    ],
    run: xsFigures,
  },
];
