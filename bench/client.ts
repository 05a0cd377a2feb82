/**
 * The MQTT client (src/mqtt/client.ts as the Node host runs it: tcpConnector, nodeClock, nodeAlloc) against MQTT.js
 * v5, the usual Node client, in the same process and the same run, each on its own connection to one loopback
 * Mosquitto started for the benchmark (test/helpers/mosquitto.ts: Debian's /usr/sbin/mosquitto on a free port,
 * killed when the benchmark ends). Without a mosquitto binary these benchmarks are skipped.
 *
 * - latency: one QoS 1 PUBLISH at a time (publish, PUBACK, next), 64 B to a UIoT system topic; p50 and p99 of
 *   the samples of both sides, taken in alternating blocks after a warm-up.
 * - throughput: N QoS 1 messages of 64 B, each side with its own flow control, timed from the first publish to the
 *   last PUBACK; alternating rounds, the best of each side counts. Ours keeps publishing as PUBACKs free room in
 *   the outbox (publish throws OUTBOX_FULL when it is full); MQTT.js gets all N at once (it queues them in its
 *   stream and has no limit on messages awaiting PUBACK). So there are two lines: ours with its default window of
 *   10 messages awaiting PUBACK, and ours with a window as unbounded as MQTT.js's.
 * - heap: K idle clients of each kind (keepalive 60 s, one subscription), the heap retained after a full GC,
 *   divided by K; alternating rounds, the lowest of each side counts. Both use a Node net.Socket, so the socket's
 *   own objects count on both sides.
 *
 * Ours is measured as plain JavaScript, as MQTT.js is (see builtOurs), and its figure under tsx is reported too.
 */
import { Buffer } from "node:buffer";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { runInNewContext } from "node:vm";
import { build } from "esbuild";
import * as mqtt from "mqtt";
import * as ourModules from "./client-entry";
import type { Client, ClientOptions } from "../src/mqtt/client";
import type { MqttError } from "../src/mqtt/errors";
import { mosquittoVersion, startMosquitto, type MosquittoBroker } from "../test/helpers/mosquitto.ts";
import { TOPIC, payloadOf } from "./codec";
import { Skip, check } from "./harness";
import type { Benchmark, Context, Line } from "./harness";

/** harness.ts has already set --expose-gc; this gets the function itself. */
const gc = runInNewContext("gc") as () => void;

const HOST = "127.0.0.1";
const PAYLOAD = payloadOf(64);
const PAYLOAD_BUFFER = Buffer.from(PAYLOAD);
const QOS1 = { qos: 1 as const };

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Our client's modules: Client, tcpConnector, nodeClock, nodeAlloc. */
type Ours = typeof ourModules;

let built: Promise<Ours> | undefined;

/**
 * Ours as plain JavaScript, the way MQTT.js is measured: bench/client-entry.ts bundled by esbuild (ESM, for Node,
 * not minified) and imported from a temp file. Run as TypeScript under tsx instead, every named closure carries
 * an own `name` property (tsx always transforms with esbuild's keepNames), which costs about 256 bytes of heap per
 * closure: a loader artifact no build for a device or for production has. The heap line reports that figure too.
 */
function builtOurs(): Promise<Ours> {
  built ??= (async () => {
    const out = await build({
      entryPoints: [fileURLToPath(new URL("./client-entry.ts", import.meta.url))],
      bundle: true, format: "esm", platform: "node", target: "node20", write: false, logLevel: "silent",
    });
    const dir = mkdtempSync(join(tmpdir(), "uiot-bench-client-"));
    try {
      const file = join(dir, "client.mjs");
      writeFileSync(file, out.outputFiles[0].contents);
      const mod = (await import(pathToFileURL(file).href)) as Ours;
      check(!mod.Client.toString().includes("__name("), "the bundled client was transformed with keepNames");
      return mod;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  return built;
}

/** A broker of our own on a free loopback port; Skip when mosquitto is not installed. */
async function broker(ctx: Context): Promise<MosquittoBroker> {
  let version: string;
  try {
    version = mosquittoVersion();
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (!/not installed/.test(message)) throw e;
    throw new Skip(`no broker to measure the clients against: ${message}`);
  }
  // No per-connection log lines: the helper keeps the broker's log in memory and the heap benchmark counts ours.
  const b = await startMosquitto({ extraConfig: ["connection_messages false"], stopAfterTest: false });
  ctx.log(`  mosquitto ${version} on ${HOST}:${b.port}`);
  return b;
}

/** TCP sockets this process has open (net.Socket handles), to wait until closed clients are really gone. */
function openSockets(): number {
  let n = 0;
  for (const r of process.getActiveResourcesInfo()) if (r === "TCPSocketWrap") n++;
  return n;
}

async function socketsDownTo(n: number): Promise<void> {
  const deadline = Date.now() + 10000;
  while (openSockets() > n) {
    if (Date.now() > deadline) throw new Error(`closed clients still hold ${openSockets() - n} sockets after 10 s`);
    await sleep(5);
  }
}

// ---- the two clients ----

/** The first trouble a connected client reported: a run where one happened does not count (see Clients.ok). */
let failure: Error | undefined;

// Once connected, every client gets these shared handlers, so that what a client retains is the client's own and
// not closures of the benchmark (both sides alike).
function ourTrouble(error: MqttError): void {
  failure ??= new Error(`one of our clients: ${error.message}`);
}

function peerTrouble(this: mqtt.MqttClient, error?: Error): void {
  failure ??= new Error(`MQTT.js client ${this.options.clientId}: ${error ? error.message : "lost its connection"}`);
}

function noop(): void {}

/** Every client of a run, so that a failure anywhere still closes them all. */
class Clients {
  private ours = new Set<Client>();
  private peers = new Set<mqtt.MqttClient>();

  constructor(private readonly impl: Ours) {
    failure = undefined;
  }

  ourClient(port: number, clientId: string, options: Partial<ClientOptions> = {}, impl: Ours = this.impl): Promise<Client> {
    return new Promise((resolve, reject) => {
      const client = new impl.Client({
        clientId, keepalive: 60, connect: impl.tcpConnector({ host: HOST, port }), clock: impl.nodeClock, alloc: impl.nodeAlloc,
        onError: ourTrouble, ...options,
      });
      // Set here rather than in the options, which the client keeps: these closures must not outlive the connect.
      client.onConnect = () => {
        client.onConnect = noop;
        client.onDisconnect = ourTrouble;
        resolve(client);
      };
      client.onDisconnect = (error: MqttError) => {
        this.ours.delete(client);
        client.close();
        reject(error);
      };
      this.ours.add(client);
      client.start();
    });
  }

  peerClient(port: number, clientId: string): Promise<mqtt.MqttClient> {
    return new Promise((resolve, reject) => {
      const client = mqtt.connect({
        host: HOST, port, protocol: "mqtt", protocolVersion: 4, clientId, keepalive: 60, clean: true, reconnectPeriod: 0,
      });
      this.peers.add(client);
      const failed = (error?: Error) => {
        client.off("error", failed).off("close", failed);
        reject(error ?? new Error(`MQTT.js client ${clientId} could not connect`));
      };
      client.on("error", failed).on("close", failed).once("connect", () => {
        client.off("error", failed).off("close", failed).on("error", peerTrouble).on("close", peerTrouble);
        resolve(client);
      });
    });
  }

  async closeOurs(clients: Iterable<Client>): Promise<void> {
    for (const c of clients) {
      this.ours.delete(c);
      c.close();
    }
  }

  async closePeers(clients: Iterable<mqtt.MqttClient>): Promise<void> {
    const ends: Promise<void>[] = [];
    for (const c of clients) {
      this.peers.delete(c);
      c.off("close", peerTrouble);
      ends.push(c.endAsync());
    }
    await Promise.all(ends);
  }

  /** Closes every client still open and waits for their sockets to be gone. */
  async closeAll(): Promise<void> {
    await this.closeOurs([...this.ours]);
    await this.closePeers([...this.peers]);
    await socketsDownTo(0).catch(() => undefined);
  }

  ok(): void {
    if (failure) throw failure;
  }
}

function ourSubscribe(client: Client, filter: string): Promise<void> {
  return new Promise((resolve, reject) => client.subscribe(filter, 1, (e) => (e ? reject(e) : resolve())));
}

function peerSubscribe(client: mqtt.MqttClient, filter: string): Promise<void> {
  return new Promise((resolve, reject) => client.subscribe(filter, { qos: 1 }, (e) => (e ? reject(e) : resolve())));
}

/** Before timing: a subscriber gets the same PUBLISH (topic, QoS, payload bytes) from both sides. */
async function checkSamePublish(clients: Clients, port: number, ours: Client, peer: mqtt.MqttClient): Promise<void> {
  const watcher = await clients.peerClient(port, "bench-watcher");
  try {
    await peerSubscribe(watcher, TOPIC);
    const got: mqtt.IPublishPacket[] = [];
    watcher.on("message", (_topic, _payload, packet) => got.push(packet));
    await new Promise<void>((resolve, reject) => ours.publish(TOPIC, PAYLOAD, QOS1, (e) => (e ? reject(e) : resolve())));
    await new Promise<void>((resolve, reject) => peer.publish(TOPIC, PAYLOAD_BUFFER, QOS1, (e) => (e ? reject(e) : resolve())));
    const deadline = Date.now() + 5000;
    while (got.length < 2 && Date.now() < deadline) await sleep(5);
    check(got.length === 2, `the watcher got ${got.length} of the 2 messages published`);
    for (const p of got)
      check(p.topic === TOPIC && p.qos === 1 && !p.retain && Buffer.compare(p.payload as Buffer, PAYLOAD_BUFFER) === 0,
        "the broker did not pass on the same QoS 1 message from both clients");
  } finally {
    await clients.closePeers([watcher]);
  }
}

// ---- latency ----

/** Publishes one QoS 1 message at a time `n` times, recording each publish→PUBACK time (ms) in `out`. */
function latencies(publish: (acked: (e?: Error) => void) => void, n: number, out: number[]): Promise<void> {
  return new Promise((resolve, reject) => {
    let i = 0, t0 = 0;
    const acked = (e?: Error) => {
      const t = performance.now();
      if (e) return reject(e);
      out.push(t - t0);
      if (++i === n) return resolve();
      t0 = performance.now();
      publish(acked);
    };
    t0 = performance.now();
    publish(acked);
  });
}

const ourLatencies = (client: Client, n: number, out: number[]) =>
  latencies((acked) => client.publish(TOPIC, PAYLOAD, QOS1, acked), n, out);
const peerLatencies = (client: mqtt.MqttClient, n: number, out: number[]) =>
  latencies((acked) => void client.publish(TOPIC, PAYLOAD_BUFFER, QOS1, acked), n, out);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const P50 = "QoS 1 publish→PUBACK latency p50";
const P99 = "QoS 1 publish→PUBACK latency p99";

async function latency(ctx: Context): Promise<Record<string, Line>> {
  const blocks = ctx.quick ? 2 : 4, perBlock = ctx.quick ? 100 : 1000, warm = ctx.quick ? 50 : 500;
  const b = await broker(ctx);
  const clients = new Clients(await builtOurs());
  try {
    const ours = await clients.ourClient(b.port, "bench-lat-ours");
    const peer = await clients.peerClient(b.port, "bench-lat-peer");
    await checkSamePublish(clients, b.port, ours, peer);
    const o: number[] = [], p: number[] = [];
    await ourLatencies(ours, warm, []);
    await peerLatencies(peer, warm, []);
    for (let r = 0; r < blocks; r++) {
      gc();
      if (r % 2 === 0) {
        await ourLatencies(ours, perBlock, o);
        await peerLatencies(peer, perBlock, p);
      } else {
        await peerLatencies(peer, perBlock, p);
        await ourLatencies(ours, perBlock, o);
      }
    }
    clients.ok();
    o.sort((x, y) => x - y);
    p.sort((x, y) => x - y);
    const extra = { unit: "ms", better: "lower" as const, samples: o.length };
    return {
      [P50]: { ours: percentile(o, 50), peer: percentile(p, 50), ...extra },
      [P99]: { ours: percentile(o, 99), peer: percentile(p, 99), ...extra },
    };
  } finally {
    await clients.closeAll();
    await b.close();
  }
}

// ---- throughput ----

/** `n` messages through our client, at most `room` in its outbox at once; ms from the first publish to the last PUBACK. */
function ourFlood(client: Client, n: number, room: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let sent = 0, acked = 0, failed = false;
    const t0 = performance.now();
    const pump = () => {
      while (sent < n && sent - acked < room) {
        sent++;
        client.publish(TOPIC, PAYLOAD, QOS1, done);
      }
    };
    const done = (e?: Error) => {
      if (failed) return;
      if (e) {
        failed = true;
        return reject(e);
      }
      if (++acked === n) return resolve(performance.now() - t0);
      pump();
    };
    try {
      pump();
    } catch (e) {
      failed = true;
      reject(e);
    }
  });
}

/** `n` messages through MQTT.js, all handed over at once (it has no limit of its own); ms to the last PUBACK. */
function peerFlood(client: mqtt.MqttClient, n: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let acked = 0, failed = false;
    const t0 = performance.now();
    const done = (e?: Error) => {
      if (failed) return;
      if (e) {
        failed = true;
        return reject(e);
      }
      if (++acked === n) resolve(performance.now() - t0);
    };
    for (let i = 0; i < n; i++) client.publish(TOPIC, PAYLOAD_BUFFER, QOS1, done);
  });
}

const N = 20000;
const T_DEFAULT = "QoS 1 throughput, ours window 10 (default) vs MQTT.js unbounded";
const T_UNBOUNDED = "QoS 1 throughput, both unbounded (ours window 65535)";

interface Variant {
  name: string;
  window: number;
  /** Most messages in our outbox at once (the pacing of our side). */
  room: number;
}

const VARIANTS: Variant[] = [
  { name: T_DEFAULT, window: 10, room: 1000 },
  { name: T_UNBOUNDED, window: 65535, room: N },
];

async function throughput(ctx: Context): Promise<Record<string, Line>> {
  const n = ctx.quick ? 2000 : N, rounds = ctx.quick ? 1 : 3;
  const b = await broker(ctx);
  const clients = new Clients(await builtOurs());
  try {
    const peer = await clients.peerClient(b.port, "bench-tput-peer");
    const ours = await Promise.all(VARIANTS.map((v, i) => clients.ourClient(b.port, `bench-tput-ours-${i}`, {
      window: v.window, outbox: { maxMessages: v.room, maxBytes: 1 << 24 },
    })));
    await checkSamePublish(clients, b.port, ours[0], peer);
    const runOurs = async (i: number) => {
      gc();
      return ourFlood(ours[i], n, VARIANTS[i].room);
    };
    const runPeer = async () => {
      gc();
      return peerFlood(peer, n);
    };
    // Warm-up: a quarter run of each.
    for (let i = 0; i < VARIANTS.length; i++) await ourFlood(ours[i], n >> 2, VARIANTS[i].room);
    await peerFlood(peer, n >> 2);
    const bestOurs = VARIANTS.map(() => Infinity);
    let bestPeer = Infinity;
    for (let r = 0; r < rounds; r++) {
      if (r % 2 === 1) bestPeer = Math.min(bestPeer, await runPeer());
      for (let i = 0; i < VARIANTS.length; i++) bestOurs[i] = Math.min(bestOurs[i], await runOurs(i));
      if (r % 2 === 0) bestPeer = Math.min(bestPeer, await runPeer());
    }
    clients.ok();
    const rate = (ms: number) => (n * 1000) / ms;
    const out: Record<string, Line> = {};
    VARIANTS.forEach((v, i) => {
      out[v.name] = { ours: rate(bestOurs[i]), peer: rate(bestPeer), unit: "msg/s", messages: n };
    });
    return out;
  } finally {
    await clients.closeAll();
    await b.close();
  }
}

// ---- heap per idle client ----

const HEAP = "heap per idle connected client";

interface Retained {
  heap: number;
  arrayBuffers: number;
}

function settledMemory(): NodeJS.MemoryUsage {
  gc();
  gc();
  return process.memoryUsage();
}

/** Heap (and ArrayBuffer) bytes retained by `k` idle connected clients of one kind, per client. */
async function retained(clients: Clients, port: number, kind: Ours | "peer", k: number, tag: string): Promise<Retained> {
  await socketsDownTo(0);
  await sleep(20);
  const before = settledMemory();
  let after: NodeJS.MemoryUsage;
  if (kind !== "peer") {
    const list: Client[] = [];
    for (let i = 0; i < k; i++) list.push(await clients.ourClient(port, `bench-idle-ours-${tag}-${i}`, {}, kind));
    await Promise.all(list.map((c, j) => ourSubscribe(c, `/abcdefghijklmnop/idle-${j}/set`)));
    await sleep(50);
    after = settledMemory();
    clients.ok();
    await clients.closeOurs(list);
  } else {
    const list: mqtt.MqttClient[] = [];
    for (let i = 0; i < k; i++) list.push(await clients.peerClient(port, `bench-idle-peer-${tag}-${i}`));
    await Promise.all(list.map((c, j) => peerSubscribe(c, `/abcdefghijklmnop/idle-${j}/set`)));
    await sleep(50);
    after = settledMemory();
    clients.ok();
    await clients.closePeers(list);
  }
  await socketsDownTo(0);
  return { heap: (after.heapUsed - before.heapUsed) / k, arrayBuffers: (after.arrayBuffers - before.arrayBuffers) / k };
}

async function heap(ctx: Context): Promise<Line> {
  const k = ctx.quick ? 10 : 50, rounds = ctx.quick ? 1 : 3;
  const b = await broker(ctx);
  const ours = await builtOurs();
  const clients = new Clients(ours);
  try {
    const sides: { kind: Ours | "peer"; got: Retained[] }[] = [
      { kind: ours, got: [] }, { kind: "peer", got: [] }, { kind: ourModules, got: [] },
    ];
    // Warm-up: compile each kind's connect, subscribe and close paths before anything is counted.
    for (const s of sides) await retained(clients, b.port, s.kind, k, "w");
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? sides : sides.slice().reverse();
      for (const s of order) s.got.push(await retained(clients, b.port, s.kind, k, `${r}`));
    }
    const best = (xs: Retained[], f: (x: Retained) => number) => Math.min(...xs.map(f));
    const [o, p, t] = sides.map((s) => s.got);
    const show = (xs: Retained[]) => xs.map((x) => Math.round(x.heap)).join(" ");
    ctx.log(`  heap per client, each round: ours ${show(o)}; MQTT.js ${show(p)}; ours under tsx ${show(t)}`);
    return {
      ours: best(o, (x) => x.heap), peer: best(p, (x) => x.heap), unit: "bytes", better: "lower", clients: k,
      "ours under tsx": Math.round(best(t, (x) => x.heap)),
      "arrayBuffers ours": Math.round(best(o, (x) => x.arrayBuffers)),
      "arrayBuffers peer": Math.round(best(p, (x) => x.arrayBuffers)),
    };
  } finally {
    await clients.closeAll();
    await b.close();
  }
}

export const benchmarks: Benchmark[] = [
  { names: [P50, P99], run: latency },
  { names: VARIANTS.map((v) => v.name), run: throughput },
  { name: HEAP, run: heap },
];
