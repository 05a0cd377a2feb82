/**
 * The device's hot paths measured inside Moddable's XS engine (the xsnap build of @agoric/xsnap), with XS's own
 * meters (tools/xsnap/meter.ts): compute units (the engine's metering: about one per bytecode executed, plus native work) and
 * heap slots (XS's allocation unit for objects, closures, properties; 16 bytes each on ESP32/ESP8266, 32 on this
 * 64-bit host). Byte buffers (packet bytes, strings, array items) live in XS's chunk heap, which the slot count leaves
 * out; the heap of a client at rest counts them too, from the size of two snapshots (an estimate on the high side
 * for a device: see tools/xsnap/meter.ts).
 *
 *   QoS 1 publish round trip   Client.publish of a 17-byte payload (encode, write) and the PUBACK's decode and bookkeeping
 *   its packet alone           the Uint8Array of that PUBLISH, made and dropped: what the round trip may allocate
 *   incoming 64-byte PUBLISH   a 64-byte QoS 0 PUBLISH on a device topic, decoded and handed to onMessage
 *   shadow update              Shadow.report: JSON, PUBLISH, PUBACK, the platform's reply decoded and parsed
 *   client heap at rest        a connected client with the thing layer (subscribed, idle), after a full GC: after three
 *                              QoS 1 round trips, and again after some of each kind of traffic (incoming QoS 0 and 1
 *                              messages, a shadow update, a property post), so what is made on first use exists
 *
 * No peer: these are absolute figures. Targets (issue 7): a publish round trip allocates no slot beyond its packet
 * (the same slots as "its packet alone"); a client at rest under 8 KB of XS heap on the device. test/xsnap/memory.test.ts
 * holds both. What an incoming PUBLISH allocates is its payload (a view of the received bytes) and the message object
 * handed to onMessage: 10 slots.
 */
import { hasXsnap } from "../../tools/xsnap/worker";
import { DEVICE_SLOT, meterXs, REST_TARGET, type XsFigures } from "../../tools/xsnap/meter";
import { Skip, type Benchmark, type Context, type Line } from "../harness";

const OPS: [op: keyof XsFigures["ops"], label: string, what: string][] = [
  [
    "publish",
    "QoS 1 publish round trip",
    "Client.publish of a 17-byte payload, then its PUBACK decoded and settled (per op: two runs' difference)",
  ],
  [
    "packet",
    "QoS 1 publish: its packet alone",
    "only the Uint8Array of that PUBLISH, made and dropped: what a round trip may allocate",
  ],
  ["incoming", "incoming 64-byte PUBLISH", "a 64-byte QoS 0 PUBLISH on a device topic decoded and handed to onMessage"],
  ["shadow", "shadow update", "Shadow.report: JSON, PUBLISH, PUBACK, the platform's reply decoded and parsed"],
];
const METER = "XS meters, which count rather than time: one figure";

async function xsFigures(ctx: Context): Promise<Record<string, Line>> {
  if (!hasXsnap()) throw new Skip("the XS engine is not built (npm run build:xs)");
  const f = await meterXs();
  const out: Record<string, Line> = {};
  for (const [rest, label, when] of [
    [f.rest, "at rest", "after three QoS 1 round trips"],
    [f.restAfterTraffic, "at rest after traffic", "after some of each kind of traffic"],
  ] as const) {
    const what = `a connected, subscribed client with the thing layer, idle ${when}, after a full GC (${METER})`;
    out[`XS: client + thing layer ${label} (heap slots)`] = { what, ours: rest.slots, unit: "slots", better: "lower" };
    out[`XS: client + thing layer ${label} (device bytes)`] = {
      what: `the same as slots x 16 plus chunk bytes from two snapshots (${METER})`,
      ours: rest.deviceBytes,
      unit: "bytes",
      better: "lower",
      slotBytes: rest.slots * DEVICE_SLOT,
      chunkBytes: rest.chunkBytes,
      target: REST_TARGET,
    };
  }
  for (const [op, label, what] of OPS) {
    const { compute, slots } = f.ops[op];
    ctx.log(
      `XS ${label}: ${compute.toFixed(0)} compute units, ${slots.toFixed(2)} slots per op (noop command ${f.noop})`,
    );
    out[`XS: ${label} (compute units)`] = {
      what: `${what} (${METER})`,
      ours: compute,
      unit: "XS compute units/op",
      better: "lower",
    };
    out[`XS: ${label} (heap slots)`] = {
      what: `${what}: heap slots, garbage included (${METER})`,
      ours: slots,
      unit: "slots/op",
      better: "lower",
      deviceBytes: slots * DEVICE_SLOT,
    };
  }
  return out;
}

export const benchmarks: Benchmark[] = [
  {
    names: [
      "XS: client + thing layer at rest (heap slots)",
      "XS: client + thing layer at rest (device bytes)",
      "XS: client + thing layer at rest after traffic (heap slots)",
      "XS: client + thing layer at rest after traffic (device bytes)",
      ...OPS.flatMap(([, label]) => [`XS: ${label} (compute units)`, `XS: ${label} (heap slots)`]),
    ],
    run: xsFigures,
  },
];
