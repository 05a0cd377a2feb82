// What the Moddable host layer (hosts/moddable: the connector, ModdableTransport, the socket openers and
// ModdableClock) costs in Moddable's XS engine, measured as `npm run bench` measures it (bench/xsnap/peers.ts with
// bench/xsnap/peer-entry.ts, no SDK needed): the client with the thing layer on the host stack over fakes of the SDK's
// native TCP socket and Timer, minus the same client on a bare sink, in heap slots (deterministic in XS) and
// compute units. The fakes' own excess over native code is taken out by replaying their calls, as the bench does.
//
// Per socket event the host layer may allocate only the bytes: the ArrayBuffer the native read() makes (3 slots)
// and the Uint8Array view the Transport contract hands over (4 slots); a write and a timer re-arm allocate nothing.
import { beforeAll, describe, expect, it } from "vitest";
import { bundleClients, measureClient, type Figures } from "../../bench/xsnap/peers.ts";
import { hasXsnap, xsnapBinary } from "../../tools/xsnap/worker.ts";

const available = hasXsnap();

/** The bytes of one read, in slots: an ArrayBuffer (3) and a Uint8Array on it (4). */
const READ = 7;
/** What the host layer holds at rest for a connection (ModdableTransport, the socket, the clock's entry), at most. */
const AT_REST = 37;
/** Compute units of the host layer per operation, at most (measured: 555 and 245; room for small changes). */
const ROUND_TRIP_UNITS = 640;
const INCOMING_UNITS = 290;

it.runIf(!available && !!process.env.XS_REQUIRED)("XS is built (XS_REQUIRED is set)", () => {
  throw new Error(`${xsnapBinary()} is missing: npm run build:xs`);
});

describe.skipIf(!available)("the Moddable host layer on XS", () => {
  let host: Figures;
  let bare: Figures;
  beforeAll(async () => {
    const code = await bundleClients("");
    host = await measureClient(code, "host", "ours on the Moddable host", 1);
    bare = await measureClient(code, "bare", "ours on a bare sink", 1);
  }, 120_000);

  const layer = (op: string, what: "slots" | "compute"): number => {
    const h = host.ops[op],
      b = bare.ops[op];
    return what === "slots"
      ? h.slots - h.fakeSlots - (b.slots - b.fakeSlots)
      : h.compute - h.fakeCompute - (b.compute - b.fakeCompute);
  };

  it("a QoS 1 publish round trip: the write and the timer re-arm allocate nothing; the PUBACK's read only its bytes", () => {
    const slots = layer("publish", "slots");
    expect(Math.abs(slots - READ), `host layer ${slots} slots per round trip`).toBeLessThan(0.05);
    // the fakes allocate nothing of their own on this path beyond what the native code would
    expect(Math.abs(host.ops.publish.fakeSlots)).toBeLessThan(0.05);
    expect(layer("publish", "compute")).toBeLessThanOrEqual(ROUND_TRIP_UNITS);
    // what the fakes saw: one write, one read with bytes and one that found none, the timer only rescheduled
    expect(host.calls.publish).toMatchObject({ "TCP write": 1, "TCP read (buffer)": 2 });
    expect(host.calls.publish?.["Timer.set"]).toBeUndefined();
  });

  it("an incoming 64-byte PUBLISH: the event allocates only the bytes read", () => {
    const slots = layer("incoming", "slots");
    expect(Math.abs(slots - READ), `host layer ${slots} slots per incoming PUBLISH`).toBeLessThan(0.05);
    expect(layer("incoming", "compute")).toBeLessThanOrEqual(INCOMING_UNITS);
    expect(host.calls.incoming?.["Timer.set"]).toBeUndefined();
  });

  it(`holds at most ${AT_REST} heap slots at rest for a connection`, () => {
    expect(host.restSlots - bare.restSlots).toBeLessThanOrEqual(AT_REST);
  });
});
