// The XS memory and compute figures of the firmware's hot paths (issue 7's targets), measured in Moddable's XS engine
// on bench/xsnap/entry.ts: what bench/xsnap/client.ts prints and test/xsnap/memory.test.ts holds to.
//
// Heap slots are XS's allocation unit for objects, closures and properties (16 bytes each on ESP32/ESP8266, 32 on this
// 64-bit host). Byte buffers (packet bytes, strings, array items) live in XS's chunk heap, which the slot count leaves
// out: the heap at rest counts them too, from the size of two snapshots (the snapshot grows by 32 bytes per slot and by
// each chunk with its header). That estimate of chunk bytes is on the high side for a device: an array item, a chunk
// header and a map's table entry take twice the bytes here, and this engine copies the bytecode of each closure made at
// run time into the chunk heap, where a device runs the bytecode of its preloaded modules from flash.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundleForXs, PRELUDE } from "./bundle";
import { startXs, type Run, type XsWorker } from "./worker";

export const DEVICE_SLOT = 16;
export const HOST_SLOT = 32;
/** Issue 7: a connected client with the thing layer at rest holds under 8 KB of XS heap (it fits an ESP8266 beside TLS). */
export const REST_TARGET = 8192;

export interface HeapAtRest {
  slots: number;
  /** Chunk bytes, from the snapshots (see above). */
  chunkBytes: number;
  /** slots × 16 + chunkBytes. */
  deviceBytes: number;
}

export interface PerOp {
  /** XS compute units per operation. */
  compute: number;
  /** Heap slots allocated per operation, garbage included. */
  slots: number;
}

export interface XsFigures {
  /** Connected and subscribed, after three QoS 1 round trips. */
  rest: HeapAtRest;
  /** The same client after some of each kind of traffic (see warm() in bench/xsnap/entry.ts). */
  restAfterTraffic: HeapAtRest;
  /** publish: a QoS 1 round trip; packet: only the Uint8Array of that PUBLISH, made and dropped. */
  ops: Record<"publish" | "packet" | "incoming" | "shadow", PerOp>;
  /** Compute units of an empty command. */
  noop: number;
}

const OPS: [op: keyof XsFigures["ops"], small: number, big: number][] = [
  ["publish", 100, 1100],
  ["packet", 100, 1100],
  ["incoming", 100, 1100],
  ["shadow", 20, 220],
];

export async function meterXs(): Promise<XsFigures> {
  const code = await bundleForXs("bench/xsnap/entry.ts");
  const w: XsWorker = startXs();
  const dir = mkdtempSync(join(tmpdir(), "uiot-xs-meter-"));
  const cmd = (op: string, n = 0): Promise<Run> => w.command(JSON.stringify({ op, n }));
  try {
    await w.evaluate(PRELUDE);
    await w.evaluate(code);

    // the heap at rest: slots and snapshot bytes without the client and with it
    await cmd("drop");
    const s0 = await w.snapshot(join(dir, "a.xss"));
    const h0 = (await cmd("gc")).meters.currentHeapCount;
    const heap = async (name: string): Promise<HeapAtRest> => {
      const s = await w.snapshot(join(dir, `${name}.xss`));
      const slots = (await cmd("gc")).meters.currentHeapCount - h0;
      const chunkBytes = Math.max(0, s - s0 - slots * HOST_SLOT);
      return { slots, chunkBytes, deviceBytes: slots * DEVICE_SLOT + chunkBytes };
    };
    const state = (JSON.parse(new TextDecoder().decode((await cmd("setup")).reply)) as { state?: string }).state;
    // measured connected, or not at all (a SUBACK the session refuses would leave it waiting, and cheaper)
    if (state !== "connected") throw new Error(`the metered client is ${String(state)} after setup, not connected`);
    await cmd("publish", 3);
    const rest = await heap("rest");
    await cmd("warm");
    const restAfterTraffic = await heap("traffic");

    // Two runs of different lengths, each right after a full GC; the difference is per op. The runs are short enough
    // that no GC happens inside them (the engine starts with 256 K free slots), so the slot count is all that was
    // allocated, garbage included.
    const noop = (await cmd("noop")).meters.compute;
    const ops = {} as XsFigures["ops"];
    for (const [op, small, big] of OPS) {
      await cmd("prepare", big);
      const g0 = await cmd("gc");
      const a = await cmd(op, small);
      await cmd("prepare", big);
      const g1 = await cmd("gc");
      const b = await cmd(op, big);
      const da = a.meters.currentHeapCount - g0.meters.currentHeapCount,
        db = b.meters.currentHeapCount - g1.meters.currentHeapCount;
      ops[op] = { compute: (b.meters.compute - a.meters.compute) / (big - small), slots: (db - da) / (big - small) };
    }
    return { rest, restAfterTraffic, ops, noop };
  } finally {
    await w.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
