/**
 * Our client in XS against the Moddable SDK's own MQTT clients, run the same way: each bundled for XS, run in the
 * xsnap worker of tools/xsnap/worker.ts on the same fakes of the SDK's native modules (a socket that keeps nothing, timers
 * run by the benchmark, a clock it moves), and measured with the meters and the method of bench/xsnap/client.ts: two runs of
 * different lengths, each right after a full GC, the difference per operation, in XS compute units and heap slots
 * (16 bytes each on ESP32/ESP8266); the heap of a connected client at rest from the slots and two snapshots.
 *
 * The SDK is not part of this repository and never is: its files are read from $MODDABLE (or the SDK that the
 * `xsc` on PATH belongs to) at bench time and bundled by esbuild with bench/xsnap/peer-entry.ts, which supplies the
 * modules they import ("socket", "timer", "time", "websocket", "url"). Without an SDK, or without the XS engine
 * (npm run build:xs), these lines are skipped with the reason. CI has no SDK.
 *
 * Operations: a QoS 1 publish round trip (a 17-byte payload: publish, the PUBACK delivered, the bookkeeping), an
 * incoming 64-byte QoS 0 PUBLISH handed to the application, and the client connected and subscribed, at rest.
 *
 * Ours here is the device's whole stack above the socket: uiotClient (Client with the UIoT profile) on the
 * Moddable host's connector, ModdableTransport and ModdableClock (hosts/moddable), on the fake ECMA-419 TCP socket.
 * bench/xsnap/client.ts measures the client alone on a bare sink; the difference is the host layer's own cost. The host's
 * clock and connector are made once per device, before any client (as the peers have the SDK's timer module
 * before theirs), so the heap at rest counts the client and its connection (ModdableTransport, the socket), not them.
 *
 * The peers, each with the figures it can give:
 * - the `mqtt` module (modules/network/mqtt/mqtt.js), the SDK's long-standing client: QoS 0 only (it can set
 *   the QoS bits of a PUBLISH, but ignores PUBACKs and never acknowledges an incoming QoS 1 PUBLISH). So it is
 *   compared on a QoS 0 publish, against ours publishing at QoS 0, not on a QoS 1 round trip.
 * - `MQTTClient` (examples/io/tcp/mqttclient/mqttclient.js, the ECMA-419 `embedded:network/mqtt/client`): sends
 *   a QoS 1 PUBLISH with a packet id the application picks and hands the PUBACK to onControl; it keeps nothing to
 *   send again. The application here keeps the one id it waits for and checks the PUBACK against it.
 * - the MQTT.js-style client of examples/io/tcp/mqtt/mqtt.js, on top of MQTTClient: keeps each QoS 1 message
 *   until its PUBACK (it publishes them again after a reconnect) and calls the publish callback on PUBACK.
 *
 * The fakes are JavaScript where a device runs native code (and xsnap lacks ArrayBuffer.fromString and
 * String.fromArrayBuffer, which the peers call: they are made here from the engine's native TextEncoder and
 * TextDecoder). Their cost is not evenly spread: MQTTClient reads the fixed header and topic of each packet one
 * byte at a time (37 calls for the 64-byte PUBLISH), ours reads a whole chunk per event. So each side's
 * calls to the fakes during one operation are recorded, replayed on their own against the fakes and against a
 * native function that allocates what the native module would, and the difference (the fakes' excess) is taken
 * out of that side's compute units and slots. The JSON lines keep the measured figures (`oursMeasured`,
 * `peerMeasured`) and the excess taken out (`oursFakes`, `peerFakes`).
 *
 * What else differs, so read the ratios with it:
 * - The peers do less. None has an outbox, a bounded queue or a QoS 1 window; none retransmits or reconnects with
 *   backoff (the MQTT.js-style one reconnects on a fixed period and republishes); none checks topics against the
 *   platform's rules (UIoT profile: own topics only, at most 30 PUBLISH per 1.25 s, packet size) or keeps a
 *   keepalive deadline up to date on every packet; ours does all of it. The legacy module hands messages over a
 *   turn later, through a timer. MQTTClient streams a payload to the application, which reads it (here with
 *   read(count), as the SDK's example does); ours hands onMessage the topic and a view of the payload.
 * - Byte buffers live in XS's chunk heap, which slots leave out, on both sides: the peers allocate a few buffers
 *   per message (topic, payload, pieces of the packet), ours one packet buffer per publish. The heap at rest
 *   counts chunks too (from the snapshots).
 *
 * Before measuring, each client is checked once: its PUBLISH, decoded by mqtt-packet, must carry the topic, payload
 * and QoS expected; a QoS 1 PUBLISH must be settled by the PUBACK delivered; the 64-byte PUBLISH must reach the
 * application with its topic and payload length. After each run the counters must show n operations done and no
 * error.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build, type Plugin } from "esbuild";
import * as mp from "mqtt-packet";
import { PRELUDE } from "../../tools/xsnap/bundle";
import { hasXsnap, startXs, type Run, type XsWorker } from "../../tools/xsnap/worker";
import { check, Skip, type Benchmark, type Context, type Line } from "../harness";

const ROOT = join(import.meta.dirname, "..", "..");
const DEVICE_SLOT = 16;
const HOST_SLOT = 32;

/** The SDK's files the peers are made of (relative to the SDK's root). */
const LEGACY = "modules/network/mqtt/mqtt.js";
const MQTTCLIENT = "examples/io/tcp/mqttclient/mqttclient.js";
const MQTTJS = "examples/io/tcp/mqtt/mqtt.js";

/** The modules the peers import, and what of bench/xsnap/peer-entry.ts stands in for each. */
const FAKES: Record<string, string> = {
  socket: "export { Socket } from ENTRY;",
  websocket: "export { WSClient as Client } from ENTRY;",
  timer: "export { Timer as default } from ENTRY;",
  time: "export { Time as default } from ENTRY;",
  url: "export { URL as default } from ENTRY;",
};

/** The root of a Moddable SDK source tree: $MODDABLE, or the one the xsc on PATH was built in; "" if none. */
function findSdk(): string {
  const env = process.env.MODDABLE;
  if (env) return existsSync(join(env, LEGACY)) ? env : "";
  try {
    const xsc = execFileSync("which", ["xsc"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const root = xsc ? join(xsc, "../../../../..") : ""; // <sdk>/build/bin/<platform>/<goal>/xsc
    return root && existsSync(join(root, LEGACY)) ? root : "";
  } catch {
    return "";
  }
}

/**
 * bench/xsnap/peer-entry.ts (with ours) and the SDK's three clients, as one script for XS; with no SDK (""), ours
 * alone (on the Moddable host stack and on the bare sink).
 */
export async function bundleClients(sdk: string): Promise<string> {
  const entry = join(ROOT, "bench/xsnap/peer-entry.ts");
  if (sdk)
    for (const f of [LEGACY, MQTTCLIENT, MQTTJS])
      if (!existsSync(join(sdk, f))) throw new Skip(`the SDK at ${sdk} has no ${f}`);
  const glue = (
    sdk
      ? [
          `import { install } from ${JSON.stringify(entry)};`,
          `import LegacyClient from ${JSON.stringify(join(sdk, LEGACY))};`,
          `import MQTTClient from ${JSON.stringify(join(sdk, MQTTCLIENT))};`,
          `import { Client as JsClient } from ${JSON.stringify(join(sdk, MQTTJS))};`,
          "install({ LegacyClient, MQTTClient, JsClient });",
        ]
      : [`import { install } from ${JSON.stringify(entry)};`, "install();"]
  ).join("\n");
  const unknown: string[] = [];
  const plugin: Plugin = {
    name: "moddable-peers",
    setup(b) {
      b.onResolve({ filter: /^peer-glue$/ }, () => ({ path: "peer-glue", namespace: "peer" }));
      b.onLoad({ filter: /.*/, namespace: "peer" }, () => ({ contents: glue, loader: "js", resolveDir: ROOT }));
      b.onResolve({ filter: /^[^./]/ }, (args) => {
        if (!args.importer.startsWith(sdk)) return undefined;
        if (!FAKES[args.path]) unknown.push(`"${args.path}" (imported by ${args.importer.slice(sdk.length + 1)})`);
        return { path: args.path, namespace: "fake" };
      });
      b.onLoad({ filter: /.*/, namespace: "fake" }, (args) => ({
        contents: (FAKES[args.path] ?? "export default undefined;").replace("ENTRY", JSON.stringify(entry)),
        loader: "js",
        resolveDir: ROOT,
      }));
    },
  };
  const out = await build({
    entryPoints: ["peer-glue"],
    bundle: true,
    write: false,
    format: "iife",
    platform: "neutral",
    target: "es2022",
    charset: "utf8",
    legalComments: "none",
    logLevel: "silent",
    plugins: [plugin],
  });
  if (unknown.length)
    throw new Skip(`the SDK's MQTT clients import modules this benchmark has no fake for: ${unknown.join(", ")}`);
  return out.outputFiles[0].text;
}

/**
 * Moddable's additions to the primordials that the peers call, which a device build has (native: they copy the
 * string's UTF-8 bytes) and xsnap lacks (it keeps strings as CESU-8 and leaves them out): made from the engine's
 * native TextEncoder/TextDecoder before the PRELUDE freezes ArrayBuffer and String. The hook lets the entry's
 * "check" record their calls like the other fakes'.
 */
export const MODDABLE_BUILTINS = `
(() => {
  const encoder = new TextEncoder(), decoder = new TextDecoder();
  let hook;
  Object.defineProperty(ArrayBuffer, "fromString", { value: function fromString(s) { const b = encoder.encode(s).buffer; if (hook) hook(0, b.byteLength); return b; }, writable: true, configurable: true });
  Object.defineProperty(String, "fromArrayBuffer", { value: function fromArrayBuffer(b) { if (hook) hook(1, b.byteLength); return decoder.decode(b); }, writable: true, configurable: true });
  Object.defineProperty(globalThis, "__moddableBuiltinsHook", { value: (f) => { hook = f; } });
})();
`;

interface CheckResult {
  qos: 0 | 1;
  publish: string;
  publish0?: string;
  acked: number;
  topic: string;
  length: number;
  expectedLength: number;
  calls: Record<string, Record<string, number> | undefined>;
}

interface Counters {
  received: number;
  acked: number;
  wrongAcks: number;
  errors: number;
  log: string[];
  check?: CheckResult;
}

export interface PerOp {
  /** Measured per operation. */
  compute: number;
  slots: number;
  /** The fakes' excess over native code per operation (from the replay). */
  fakeCompute: number;
  fakeSlots: number;
}

export interface Figures {
  restSlots: number;
  restBytes: number;
  chunkBytes: number;
  ops: Record<string, PerOp>;
  calls: CheckResult["calls"];
}

const PSN = "prod0123456789ab",
  DSN = "dev-001";
const TOPIC = `/${PSN}/${DSN}/upload`,
  CONTROL = `/${PSN}/${DSN}/control`;
const PAYLOAD = '{"t":21.5,"h":40}';

/** One PUBLISH in `hex` (mqtt-packet decodes it) to TOPIC with PAYLOAD at `qos`. */
function checkPublish(name: string, hex: string, qos: 0 | 1): void {
  const packets: mp.Packet[] = [];
  const parser = mp.parser({ protocolVersion: 4 });
  parser.on("packet", (p) => packets.push(p));
  parser.on("error", (e) => packets.push({ cmd: `error: ${String(e)}` } as unknown as mp.Packet));
  parser.parse(Buffer.from(hex, "hex"));
  const p = packets[0] as mp.IPublishPacket | undefined;
  check(
    packets.length === 1 && p?.cmd === "publish",
    `${name}: one PUBLISH written (${JSON.stringify(packets.map((x) => x.cmd))})`,
  );
  check(
    p.topic === TOPIC && Buffer.from(p.payload).toString() === PAYLOAD && p.qos === qos,
    `${name}: PUBLISH to ${p.topic}, QoS ${p.qos}`,
  );
}

function sanity(name: string, qos: 0 | 1, c: CheckResult): void {
  check(c.qos === qos, `${name}: publishes at QoS ${qos}`);
  checkPublish(name, c.publish, qos);
  if (c.publish0 !== undefined) checkPublish(`${name} (QoS 0)`, c.publish0, 0);
  check(qos === 0 || c.acked === 1, `${name}: the PUBACK settled the publish`);
  check(
    c.topic === CONTROL && c.length === c.expectedLength,
    `${name}: incoming PUBLISH delivered (${c.topic}, ${c.length} bytes)`,
  );
}

/**
 * Everything about one client, in a fresh engine: the heap at rest first (XS keeps the instance of a class with
 * private methods that was constructed last reachable, so a client made and dropped before would stay in the
 * baseline: the SDK's MQTTClient has private methods), then the check, then each operation, then the replays of
 * the fakes' calls. Per operation: a short and a long run, each right after a full GC; the runs are short enough
 * that no GC happens inside them, so the slots are all that was allocated, garbage included.
 */
export async function measureClient(code: string, key: string, label: string, qos: 0 | 1): Promise<Figures> {
  const w: XsWorker = startXs();
  const dir = mkdtempSync(join(tmpdir(), "uiot-xs-peer-"));
  const cmd = async (body: object): Promise<Counters & { meters: Run["meters"] }> => {
    const run = await w.command(JSON.stringify(body));
    return { ...(JSON.parse(new TextDecoder().decode(run.reply)) as Counters), meters: run.meters };
  };
  const pair = async (
    body: object,
    small: number,
    big: number,
    counts?: "received" | "acked",
  ): Promise<{ compute: number; slots: number }> => {
    await cmd({ op: "gc" });
    const a0 = await cmd({ op: "gc" });
    const a = await cmd({ ...body, n: small });
    await cmd({ op: "gc" });
    const b0 = await cmd({ op: "gc" });
    const b = await cmd({ ...body, n: big });
    const what = JSON.stringify(body);
    if (counts)
      check(
        a[counts] - a0[counts] === small && b[counts] - b0[counts] === big,
        `${label} ${what}: every operation completed`,
      );
    check(!b.errors && !b.wrongAcks && !b.log.length, `${label} ${what}: no error (${JSON.stringify(b.log)})`);
    const da = a.meters.currentHeapCount - a0.meters.currentHeapCount,
      db = b.meters.currentHeapCount - b0.meters.currentHeapCount;
    check(da >= 0 && db >= da, `${label} ${what}: no GC inside a measured run`);
    return { compute: (b.meters.compute - a.meters.compute) / (big - small), slots: (db - da) / (big - small) };
  };
  try {
    await w.evaluate(MODDABLE_BUILTINS);
    await w.evaluate(PRELUDE);
    await w.evaluate(code);

    await cmd({ op: "drop" });
    await cmd({ op: "make", peer: key }); // the benchmark's own closures for the client: not the client's heap
    const s0 = await w.snapshot(join(dir, "a.xss"));
    const h0 = (await cmd({ op: "gc" })).meters.currentHeapCount;
    await cmd({ op: "setup" });
    await cmd({ op: "publish", n: 3 }); // a few messages, so lazily made state exists
    const s1 = await w.snapshot(join(dir, "b.xss"));
    const h1 = (await cmd({ op: "gc" })).meters.currentHeapCount;
    const restSlots = h1 - h0;
    const chunkBytes = Math.max(0, s1 - s0 - restSlots * HOST_SLOT);

    const c = (await cmd({ op: "check" })).check;
    check(!!c, `${label}: the check ran`);
    sanity(label, qos, c);

    const ops: Record<string, PerOp> = {};
    const names = key === "ours" ? ["publish", "publish0", "incoming"] : ["publish", "incoming"];
    for (const op of names) {
      const counts = op === "incoming" ? "received" : op === "publish" && qos === 1 ? "acked" : undefined;
      const m = await pair({ op }, 100, 600, counts);
      const fake = await pair({ op: "replay", phase: op, native: false }, 100, 600);
      const native = await pair({ op: "replay", phase: op, native: true }, 100, 600);
      ops[op] = { ...m, fakeCompute: fake.compute - native.compute, fakeSlots: fake.slots - native.slots };
    }
    return { restSlots, restBytes: restSlots * DEVICE_SLOT + chunkBytes, chunkBytes, ops, calls: c.calls };
  } finally {
    await w.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface PeerSpec {
  key: string;
  label: string;
  file: string;
  qos: 0 | 1;
}

const PEERS: PeerSpec[] = [
  { key: "legacy", label: "Moddable mqtt module", file: LEGACY, qos: 0 },
  { key: "ecma419", label: "Moddable ECMA-419 MQTTClient", file: MQTTCLIENT, qos: 1 },
  { key: "mqttjs", label: "Moddable MQTT.js-style client", file: MQTTJS, qos: 1 },
];

function names(p: PeerSpec): string[] {
  const base = `XS vs ${p.label}`;
  const publish = p.qos === 1 ? "QoS 1 publish round trip" : "QoS 0 publish (it has no QoS 1)";
  return [
    `${base}: ${publish} (compute units)`,
    `${base}: ${publish} (heap slots)`,
    `${base}: incoming 64-byte PUBLISH (compute units)`,
    `${base}: incoming 64-byte PUBLISH (heap slots)`,
    `${base}: connected client at rest (heap slots)`,
    `${base}: connected client at rest (device bytes)`,
  ];
}

let bundled: Promise<string> | undefined;
let oursFigures: Promise<Figures> | undefined;

function round(x: number): number {
  return Number(x.toPrecision(4));
}

async function compareWith(p: PeerSpec, ctx: Context): Promise<Record<string, Line>> {
  if (!hasXsnap()) throw new Skip("the XS engine is not built (npm run build:xs)");
  const sdk = findSdk();
  if (!sdk) throw new Skip("no Moddable SDK here (set $MODDABLE to an SDK source tree, or put its xsc on PATH)");
  bundled ??= bundleClients(sdk);
  const code = await bundled;
  oursFigures ??= measureClient(code, "ours", "ours", 1);
  const ours = await oursFigures;
  const theirs = await measureClient(code, p.key, p.label, p.qos);

  const extra = { peerFile: p.file };
  const line = (o: PerOp, t: PerOp, what: "compute" | "slots", op: string): Line => {
    const fake = what === "compute" ? "fakeCompute" : "fakeSlots";
    return {
      what: `${op} in the same XS engine on the same fake ECMA-419 socket and timer, the fakes' excess taken out: ${what === "compute" ? "compute units" : "heap slots, garbage included"} (XS meters count: one figure)`,
      ours: o[what] - o[fake],
      peer: t[what] - t[fake],
      unit: what === "compute" ? "XS compute units/op" : "slots/op",
      better: "lower",
      oursMeasured: round(o[what]),
      peerMeasured: round(t[what]),
      oursFakes: round(o[fake]),
      peerFakes: round(t[fake]),
      ...(what === "slots"
        ? {
            oursDeviceBytes: round((o.slots - o.fakeSlots) * DEVICE_SLOT),
            peerDeviceBytes: round((t.slots - t.fakeSlots) * DEVICE_SLOT),
          }
        : {}),
      ...extra,
    };
  };
  const op = p.qos === 1 ? "publish" : "publish0";
  const publishWhat =
    p.qos === 1
      ? "a QoS 1 publish of 17 bytes, its PUBACK and the bookkeeping"
      : "a QoS 0 publish of 17 bytes (ours at QoS 0 too)";
  const o = ours.ops[op],
    t = theirs.ops.publish,
    oi = ours.ops.incoming,
    ti = theirs.ops.incoming;
  const fmt = (x: PerOp, unit: "compute" | "slots"): string =>
    unit === "compute"
      ? `${x.compute.toFixed(0)} units (fakes ${x.fakeCompute.toFixed(0)})`
      : `${x.slots.toFixed(1)} slots (fakes ${x.fakeSlots.toFixed(1)})`;
  ctx.log(
    `  measured, ${p.label} (${p.file}) vs ours: publish ${fmt(t, "compute")}, ${fmt(t, "slots")} vs ${fmt(o, "compute")}, ${fmt(o, "slots")}; ` +
      `incoming ${fmt(ti, "compute")}, ${fmt(ti, "slots")} vs ${fmt(oi, "compute")}, ${fmt(oi, "slots")}`,
  );
  ctx.log(`  calls to the fakes, ${p.label}: ${JSON.stringify(theirs.calls)}; ours: ${JSON.stringify(ours.calls)}`);
  const [pc, ps, ic, is, rs, rb] = names(p);
  return {
    [pc]: line(o, t, "compute", publishWhat),
    [ps]: line(o, t, "slots", publishWhat),
    [ic]: line(oi, ti, "compute", "a 64-byte QoS 0 PUBLISH from the socket to the application"),
    [is]: line(oi, ti, "slots", "a 64-byte QoS 0 PUBLISH from the socket to the application"),
    [rs]: {
      what: "a connected, subscribed client at rest after a full GC: heap slots (XS meters count: one figure)",
      ours: ours.restSlots,
      peer: theirs.restSlots,
      unit: "slots",
      better: "lower",
      ...extra,
    },
    [rb]: {
      what: "the same as slots x 16 plus chunk bytes from two snapshots (one figure)",
      ours: ours.restBytes,
      peer: theirs.restBytes,
      unit: "bytes",
      better: "lower",
      oursChunkBytes: ours.chunkBytes,
      peerChunkBytes: theirs.chunkBytes,
      ...extra,
    },
  };
}

const HOST = "XS on the Moddable host";
const HOST_NAMES = [
  `${HOST}: QoS 1 publish round trip (compute units)`,
  `${HOST}: QoS 1 publish round trip (heap slots)`,
  `${HOST}: incoming 64-byte PUBLISH (compute units)`,
  `${HOST}: incoming 64-byte PUBLISH (heap slots)`,
  `${HOST}: client + thing layer at rest (heap slots)`,
  `${HOST}: client + thing layer at rest (device bytes)`,
];

/**
 * Ours on the Moddable host stack, no SDK needed (the fakes are ours): the client with the thing layer, as
 * bench/xsnap/client.ts runs it on a bare sink, here on hosts/moddable's connector, ModdableTransport and ModdableClock over
 * the fake TCP socket and Timer. Each line also carries the same figure on the bare sink, measured in the same
 * way beside it (`bareSink`), and the difference (`hostLayer`): what the host layer costs.
 */
async function hostStack(ctx: Context): Promise<Record<string, Line>> {
  if (!hasXsnap()) throw new Skip("the XS engine is not built (npm run build:xs)");
  const code = await bundleClients("");
  const host = await measureClient(code, "host", "ours on the Moddable host", 1);
  const bare = await measureClient(code, "bare", "ours on a bare sink", 1);
  const out: Record<string, Line> = {};
  const net = (o: PerOp, what: "compute" | "slots"): number =>
    o[what] - o[what === "compute" ? "fakeCompute" : "fakeSlots"];
  const [pc, ps, ic, is, rs, rb] = HOST_NAMES;
  for (const [op, compute, slots] of [
    ["publish", pc, ps],
    ["incoming", ic, is],
  ] as const) {
    const h = host.ops[op],
      b = bare.ops[op];
    for (const [name, what] of [
      [compute, "compute"],
      [slots, "slots"],
    ] as const) {
      const ours = net(h, what),
        base = net(b, what);
      out[name] = {
        what: `${op === "publish" ? "a QoS 1 publish round trip" : "an incoming 64-byte QoS 0 PUBLISH"} through the client with the thing layer on hosts/moddable over the fake TCP socket, the fakes' excess taken out: ${what === "compute" ? "compute units" : "heap slots"} (XS meters count: one figure)`,
        ours,
        unit: what === "compute" ? "XS compute units/op" : "slots/op",
        better: "lower",
        measured: round(h[what]),
        fakes: round(what === "compute" ? h.fakeCompute : h.fakeSlots),
        bareSink: round(base),
        hostLayer: round(ours - base),
        ...(what === "slots" ? { deviceBytes: round(ours * DEVICE_SLOT) } : {}),
      };
    }
    ctx.log(
      `  ${op} on the Moddable host: ${net(h, "compute").toFixed(0)} units, ${net(h, "slots").toFixed(1)} slots; on a bare sink ${net(b, "compute").toFixed(0)} units, ${net(b, "slots").toFixed(1)} slots`,
    );
  }
  out[rs] = {
    what: "the client with the thing layer on hosts/moddable, connected, subscribed and idle, after a full GC: heap slots (one figure)",
    ours: host.restSlots,
    unit: "slots",
    better: "lower",
    bareSink: bare.restSlots,
    hostLayer: host.restSlots - bare.restSlots,
  };
  out[rb] = {
    what: "the same as slots x 16 plus chunk bytes from two snapshots (one figure)",
    ours: host.restBytes,
    unit: "bytes",
    better: "lower",
    target: 8192,
    slotBytes: host.restSlots * DEVICE_SLOT,
    chunkBytes: host.chunkBytes,
    bareSink: bare.restBytes,
    hostLayer: host.restBytes - bare.restBytes,
  };
  ctx.log(`  calls to the fakes on the Moddable host: ${JSON.stringify(host.calls)}`);
  return out;
}

export const benchmarks: Benchmark[] = [
  { names: HOST_NAMES, run: hostStack },
  ...PEERS.map((p) => ({ names: names(p), run: (ctx: Context) => compareWith(p, ctx) })),
];
