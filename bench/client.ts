/**
 * The MQTT client (src/mqtt/client.ts as the Node host runs it: tcpConnector, nodeClock, nodeAlloc, every other
 * option at its default) against MQTT.js v5, the usual Node client, each with its defaults, through one loopback
 * Mosquitto started for the benchmark (test/helpers/mosquitto.ts: Debian's /usr/sbin/mosquitto on a free port,
 * killed when the benchmark ends). Without a mosquitto binary these benchmarks are skipped.
 *
 * Every message goes from a publisher to a subscriber of the same kind (ours to ours, MQTT.js to MQTT.js), each
 * side on its own topic of the same length, so a figure covers both ends of a client: encoding and sending, and
 * receiving, decoding and (QoS 1) acknowledging. The broker keeps its defaults (20 QoS 1 messages in flight to a
 * subscriber) except `max_queued_messages 0`, so that it queues rather than drops what a subscriber has not taken yet.
 *
 * - throughput: N messages of 64 B, from the first publish to the last message received (and the last publish
 *   completed); rounds alternate between the sides. Each side paces itself as its API asks: ours keeps publishing
 *   while its outbox has room (its default outbox holds 16 messages; a full one throws OUTBOX_FULL, or drops the
 *   oldest QoS 0 message) and tops up from the publish callbacks; MQTT.js has no limit and is handed all N at once.
 *   The CPU time of the process over each round (both clients of the side, GC included) gives CPU per message.
 *   A tuned row runs ours with a window and an outbox as unbounded as MQTT.js, handed all N at once.
 *   (MQTT.js handed N messages at once waits for 'drain' once per message it could not write yet, and Node warns
 *   on stderr that a socket has more than 1,000 'drain' listeners: that is how MQTT.js queues, not a leak here.)
 * - latency: one message at a time, publish→receive at the subscriber (the next goes once the message arrived and
 *   its publish completed); p50 and p99 of each block of samples, blocks alternating between the sides.
 * - memory: 1,000 idle clients of a kind (keepalive 60 s, one subscription each), connected in a fresh Node process
 *   per round (bench/idle-clients.ts), so neither side's RSS is absorbed by pages the other freed; heap used and RSS
 *   after a full GC minus before, per client; rounds alternate between the sides.
 *
 * Ours is measured as plain JavaScript, as MQTT.js is: bench/client-entry.ts bundled by esbuild. Run as TypeScript
 * under tsx instead, every named closure carries an own `name` property (tsx always transforms with esbuild's
 * keepNames): a loader artifact that no build for a device or for production has.
 */
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";
import * as mqtt from "mqtt";
import type * as ourModules from "./client-entry";
import type { Client, ClientOptions } from "../src/mqtt/client";
import type { MqttError } from "../src/mqtt/errors";
import { mosquittoVersion, startMosquitto, type MosquittoBroker } from "../test/helpers/mosquitto.ts";
import { TOPIC, payloadOf } from "./codec";
import { Skip, check, fullGc } from "./harness";
import type { Benchmark, Context, Line } from "./harness";
import { percentile } from "./report";

const HOST = "127.0.0.1";
const PAYLOAD = payloadOf(64);
const PAYLOAD_BUFFER = Buffer.from(PAYLOAD);
/** A topic for each publisher/subscriber pair: all of the same length, so the broker does the same work for each. */
let topics = 100;
const nextTopic = (): string => TOPIC.replace("0001", String(topics++).padStart(4, "0"));

type QoS = 0 | 1;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Our client's modules: Client, tcpConnector, nodeClock, nodeAlloc. */
type Ours = typeof ourModules;

/** A temp folder for the bundles of this run, removed when the process exits. */
let tmp: string | undefined;
function tempDir(): string {
  if (!tmp) {
    const dir = (tmp = mkdtempSync(join(tmpdir(), "uiot-bench-client-")));
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return tmp;
}

async function bundle(entry: string, name: string): Promise<string> {
  const out = await build({
    entryPoints: [fileURLToPath(new URL(entry, import.meta.url))],
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    write: false,
    logLevel: "silent",
  });
  const file = join(tempDir(), name);
  writeFileSync(file, out.outputFiles[0].contents);
  return file;
}

let built: Promise<Ours> | undefined;

/** Ours as plain JavaScript (bench/client-entry.ts bundled by esbuild, ESM for Node, not minified). */
function builtOurs(): Promise<Ours> {
  built ??= (async () => {
    const mod = (await import(pathToFileURL(await bundle("./client-entry.ts", "client.mjs")).href)) as Ours;
    check(!mod.Client.toString().includes("__name("), "the bundled client was transformed with keepNames");
    return mod;
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
  const b = await startMosquitto({
    extraConfig: ["connection_messages false", "max_queued_messages 0"],
    stopAfterTest: false,
  });
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

  constructor(readonly impl: Ours) {
    failure = undefined;
  }

  ourClient(port: number, clientId: string, options: Partial<ClientOptions> = {}): Promise<Client> {
    const impl = this.impl;
    return new Promise((resolve, reject) => {
      const client = new impl.Client({
        clientId,
        connect: impl.tcpConnector({ host: HOST, port }),
        clock: impl.nodeClock,
        alloc: impl.nodeAlloc,
        onError: ourTrouble,
        ...options,
      });
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
        host: HOST,
        port,
        protocol: "mqtt",
        protocolVersion: 4,
        clientId,
        reconnectPeriod: 0,
      });
      this.peers.add(client);
      const failed = (error?: Error) => {
        client.off("error", failed).off("close", failed);
        reject(error ?? new Error(`MQTT.js client ${clientId} could not connect`));
      };
      client
        .on("error", failed)
        .on("close", failed)
        .once("connect", () => {
          client.off("error", failed).off("close", failed).on("error", peerTrouble).on("close", peerTrouble);
          resolve(client);
        });
    });
  }

  /** Closes every client still open and waits for their sockets to be gone. */
  async closeAll(): Promise<void> {
    for (const c of this.ours) c.close();
    this.ours.clear();
    const ends: Promise<void>[] = [];
    for (const c of this.peers) {
      c.off("close", peerTrouble);
      ends.push(c.endAsync());
    }
    this.peers.clear();
    await Promise.all(ends);
    await socketsDownTo(0).catch(() => undefined);
  }

  ok(): void {
    if (failure) throw failure;
  }
}

function ourSubscribe(client: Client, filter: string, qos: QoS): Promise<void> {
  return new Promise((resolve, reject) =>
    client.subscribe(filter, qos, (e, granted) =>
      e ? reject(e) : granted[0] === qos ? resolve() : reject(new Error(`SUBACK ${granted[0]}`)),
    ),
  );
}

function peerSubscribe(client: mqtt.MqttClient, filter: string, qos: QoS): Promise<void> {
  return new Promise((resolve, reject) =>
    client.subscribe(filter, { qos }, (e, granted) =>
      e ? reject(e) : granted?.[0]?.qos === qos ? resolve() : reject(new Error(`SUBACK ${JSON.stringify(granted)}`)),
    ),
  );
}

/**
 * What one side's subscriber counts. `arrived` is called for each message; a round sets `onArrive` to its own step.
 */
interface Inbox {
  received: number;
  bytes: number;
  wrong: number;
  onArrive: () => void;
}

function inbox(): Inbox {
  return { received: 0, bytes: 0, wrong: 0, onArrive: noop };
}

/** A publisher and a subscriber of one kind, subscribed to the side's topic at `qos`. */
interface Side {
  name: "ours" | "MQTT.js";
  topic: string;
  inbox: Inbox;
  /** Publishes one message; `done` when it completed (QoS 1: PUBACK; QoS 0: written). */
  publish(done: (e?: Error) => void): void;
}

async function ourSide(
  clients: Clients,
  port: number,
  qos: QoS,
  tag: string,
  options: Partial<ClientOptions> = {},
): Promise<Side> {
  const box = inbox(),
    own = nextTopic();
  const sub = await clients.ourClient(port, `bench-${tag}-sub`);
  sub.onMessage = (topic, payload) => {
    box.received++;
    box.bytes += payload.length;
    if (topic !== own) box.wrong++;
    box.onArrive();
  };
  await ourSubscribe(sub, own, qos);
  const pub = await clients.ourClient(port, `bench-${tag}-pub`, options);
  const opts = { qos };
  return { name: "ours", topic: own, inbox: box, publish: (done) => pub.publish(own, PAYLOAD, opts, done) };
}

async function peerSide(clients: Clients, port: number, qos: QoS, tag: string): Promise<Side> {
  const box = inbox(),
    own = nextTopic();
  const sub = await clients.peerClient(port, `bench-${tag}-sub`);
  sub.on("message", (topic: string, payload: Buffer) => {
    box.received++;
    box.bytes += payload.length;
    if (topic !== own) box.wrong++;
    box.onArrive();
  });
  await peerSubscribe(sub, own, qos);
  const pub = await clients.peerClient(port, `bench-${tag}-pub`);
  const opts = { qos };
  return {
    name: "MQTT.js",
    topic: own,
    inbox: box,
    publish: (done) => void pub.publish(own, PAYLOAD_BUFFER, opts, done),
  };
}

/**
 * Before timing: a watcher (MQTT.js) subscribed to both topics gets the same PUBLISH (QoS, retain, payload bytes)
 * from both publishers, and each side's subscriber gets its own.
 */
async function checkSamePublish(clients: Clients, port: number, qos: QoS, sides: Side[]): Promise<void> {
  const watcher = await clients.peerClient(port, `bench-watcher-${qos}`);
  const got: mqtt.IPublishPacket[] = [];
  watcher.on("message", (_topic, _payload, packet) => got.push(packet));
  for (const s of sides) await peerSubscribe(watcher, s.topic, 1);
  for (const s of sides) {
    const before = s.inbox.received;
    await new Promise<void>((resolve, reject) => s.publish((e) => (e ? reject(e) : resolve())));
    const deadline = Date.now() + 5000;
    while ((s.inbox.received === before || got.length < sides.indexOf(s) + 1) && Date.now() < deadline) await sleep(5);
    check(
      s.inbox.received === before + 1 && s.inbox.wrong === 0,
      `${s.name}'s subscriber got ${s.inbox.received - before} of 1 message`,
    );
  }
  check(got.length === sides.length, `the watcher got ${got.length} of the ${sides.length} messages published`);
  got.forEach(
    (p, i) =>
      void check(
        p.topic === sides[i].topic &&
          p.qos === qos &&
          !p.retain &&
          Buffer.compare(p.payload as Buffer, PAYLOAD_BUFFER) === 0,
        `the broker did not pass on the same QoS ${qos} message from ${sides[i].name}`,
      ),
  );
  watcher.off("close", peerTrouble);
  await watcher.endAsync();
}

// ---- throughput ----

interface Flood {
  ms: number;
  cpuUs: number;
}

/**
 * `n` messages from the side's publisher to its subscriber, at most `room` not yet completed at once (Infinity:
 * all handed over at once); ms from the first publish to the last message received and the last publish completed.
 */
function flood(side: Side, n: number, room: number): Promise<Flood> {
  return new Promise((resolve, reject) => {
    const box = side.inbox;
    const r0 = box.received,
      b0 = box.bytes;
    let sent = 0,
      completed = 0,
      pumping = false,
      over = false;
    const timer = setTimeout(
      () =>
        finish(
          new Error(
            `${side.name}: ${box.received - r0} of ${n} messages received, ${completed} published, after 120 s`,
          ),
        ),
      120_000,
    );
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const finish = (e?: Error) => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      box.onArrive = noop;
      if (e) return reject(e);
      const ms = performance.now() - t0,
        cpu = process.cpuUsage(cpu0);
      if (box.received - r0 !== n || box.bytes - b0 !== n * PAYLOAD.length || box.wrong)
        return reject(
          new Error(
            `${side.name}: the subscriber got ${box.received - r0} messages of ${n}, ${box.bytes - b0} bytes, ${box.wrong} on a wrong topic`,
          ),
        );
      resolve({ ms, cpuUs: cpu.user + cpu.system });
    };
    const maybeDone = () => {
      if (completed === n && box.received - r0 >= n) finish();
    };
    box.onArrive = maybeDone;
    const pump = () => {
      if (pumping) return;
      pumping = true;
      try {
        while (sent < n && sent - completed < room) {
          sent++;
          side.publish(done);
        }
      } catch (e) {
        finish(e as Error);
      } finally {
        pumping = false;
      }
    };
    const done = (e?: Error) => {
      if (e) return finish(e);
      completed++;
      maybeDone();
      pump();
    };
    pump();
  });
}

const THROUGHPUT = (qos: QoS) => `client QoS ${qos} publish→receive throughput`;
const CPU = (qos: QoS) => `client QoS ${qos} CPU per message, publisher and subscriber`;
const TUNED_THROUGHPUT = "tuned: client QoS 1 publish→receive throughput, ours with window and outbox unbounded";

/** How many messages our default outbox takes (publishes into an idle client until OUTBOX_FULL). */
function ourDefaultRoom(impl: Ours): number {
  const c = new impl.Client({
    clientId: "bench-probe",
    connect: impl.tcpConnector({ host: HOST, port: 1 }),
    clock: impl.nodeClock,
  });
  let n = 0;
  try {
    for (; n < 100000; n++) c.publish(TOPIC, PAYLOAD, { qos: 1 });
  } catch (e) {
    check((e as MqttError).code === "OUTBOX_FULL", `probing the outbox: ${String(e)}`);
  } finally {
    c.close();
  }
  return n;
}

async function throughput(ctx: Context): Promise<Record<string, Line>> {
  const n = ctx.quick ? 1000 : 10000,
    rounds = ctx.quick ? 3 : 7;
  const b = await broker(ctx);
  const clients = new Clients(await builtOurs());
  try {
    const room = ourDefaultRoom(clients.impl);
    ctx.log(`  our default outbox holds ${room} messages`);
    const out: Record<string, Line> = {};
    const tuned = await ourSide(clients, b.port, 1, "tput-tuned", {
      window: 65535,
      outbox: { maxMessages: n, maxBytes: 1 << 24 },
    });
    for (const qos of [0, 1] as const) {
      const ours = await ourSide(clients, b.port, qos, `tput-ours-${qos}`);
      const peer = await peerSide(clients, b.port, qos, `tput-peer-${qos}`);
      await checkSamePublish(clients, b.port, qos, [ours, peer]);
      const runs: [Side, number, Flood[]][] = [
        [ours, room, []],
        [peer, Infinity, []],
      ];
      if (qos === 1) runs.push([tuned, Infinity, []]);
      for (const [side, r] of runs) await flood(side, n >> 2, r); // warm-up
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? runs : runs.slice().reverse();
        for (const [side, r, got] of order) {
          fullGc();
          got.push(await flood(side, n, r));
        }
      }
      clients.ok();
      const rate = (f: Flood[]) => f.map((x) => (n * 1000) / x.ms);
      const [o, p] = [runs[0][2], runs[1][2]];
      const paced = `ours paced by its default outbox (${room} messages, window 10), MQTT.js handed all ${n} at once`;
      out[THROUGHPUT(qos)] = {
        what: `${n} messages of 64 B from a publisher to a subscriber (QoS ${qos}) of the same client through Mosquitto on loopback, each with its defaults (${paced}); first publish to last message received`,
        ours: rate(o),
        peer: rate(p),
        unit: "msg/s",
        messages: n,
      };
      out[CPU(qos)] = {
        what: `the process's CPU time (user + system, GC included) over those rounds divided by the ${n} messages: both clients of the side`,
        ours: o.map((x) => x.cpuUs / n),
        peer: p.map((x) => x.cpuUs / n),
        unit: "µs/msg",
        better: "lower",
      };
      if (qos === 1) {
        out[TUNED_THROUGHPUT] = {
          what: `the QoS 1 row with ours as unbounded as MQTT.js (window 65535, outbox ${n} messages), handed all ${n} at once`,
          ours: rate(runs[2][2]),
          peer: rate(p),
          unit: "msg/s",
          messages: n,
        };
      }
    }
    return out;
  } finally {
    await clients.closeAll();
    await b.close();
  }
}

// ---- latency ----

/** `count` messages one at a time; each sample is publish→receive at the subscriber, ms. */
function latencies(side: Side, count: number, out: number[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const box = side.inbox;
    let i = 0,
      t0 = 0,
      arrived = false,
      completed = false,
      over = false;
    const timer = setTimeout(
      () => stop(new Error(`${side.name}: message ${i} of ${count} did not arrive within 30 s`)),
      30_000,
    );
    const stop = (e?: Error) => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      box.onArrive = noop;
      if (e) reject(e);
      else resolve();
    };
    const next = () => {
      if (!arrived || !completed) return;
      if (++i === count) return stop();
      send();
    };
    box.onArrive = () => {
      out.push(performance.now() - t0);
      arrived = true;
      next();
    };
    const done = (e?: Error) => {
      if (e) return stop(e);
      completed = true;
      next();
    };
    const send = () => {
      arrived = completed = false;
      t0 = performance.now();
      try {
        side.publish(done);
      } catch (e) {
        stop(e as Error);
      }
    };
    send();
  });
}

const P = (qos: QoS, p: 50 | 99) => `client QoS ${qos} publish→receive latency p${p}`;

async function latency(ctx: Context): Promise<Record<string, Line>> {
  const blocks = ctx.quick ? 3 : 8,
    perBlock = ctx.quick ? 50 : 500,
    warm = ctx.quick ? 50 : 500;
  const b = await broker(ctx);
  const clients = new Clients(await builtOurs());
  try {
    const out: Record<string, Line> = {};
    for (const qos of [0, 1] as const) {
      const ours = await ourSide(clients, b.port, qos, `lat-ours-${qos}`);
      const peer = await peerSide(clients, b.port, qos, `lat-peer-${qos}`);
      await checkSamePublish(clients, b.port, qos, [ours, peer]);
      await latencies(ours, warm, []);
      await latencies(peer, warm, []);
      const o: number[][] = [],
        p: number[][] = [];
      for (let r = 0; r < blocks; r++) {
        const order: [Side, number[][]][] =
          r % 2 === 0
            ? [
                [ours, o],
                [peer, p],
              ]
            : [
                [peer, p],
                [ours, o],
              ];
        for (const [side, got] of order) {
          fullGc();
          const samples: number[] = [];
          await latencies(side, perBlock, samples);
          got.push(samples);
        }
      }
      clients.ok();
      for (const pc of [50, 99] as const) {
        out[P(qos, pc)] = {
          what: `one 64-byte QoS ${qos} message at a time from a publisher to a subscriber of the same client through Mosquitto on loopback, each with its defaults: p${pc} of each block of ${perBlock} publish→receive times`,
          ours: o.map((s) => percentile(s, pc)),
          peer: p.map((s) => percentile(s, pc)),
          unit: "ms",
          better: "lower",
          samplesPerBlock: perBlock,
        };
      }
    }
    return out;
  } finally {
    await clients.closeAll();
    await b.close();
  }
}

// ---- memory per idle client ----

const HEAP = "memory per idle client: heap";
const RSS = "memory per idle client: RSS";

export interface IdleFigures {
  /** Per client, bytes: heapUsed, rss, arrayBuffers and external after minus before. */
  heap: number;
  rss: number;
  arrayBuffers: number;
  external: number;
}

/** One round: a fresh Node process connects `k` idle clients of one kind and reports what they hold. */
function idleRound(child: string, kind: "ours" | "peer", port: number, k: number): Promise<IdleFigures> {
  const mqttUrl = import.meta.resolve("mqtt");
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["--expose-gc", child, kind, String(port), String(k), mqttUrl], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "",
      stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("error", reject);
    p.on("close", (code) => {
      if (code !== 0) return reject(new Error(`the ${kind} idle-client process exited with ${code}: ${stderr.trim()}`));
      try {
        resolve(JSON.parse(stdout) as IdleFigures);
      } catch {
        reject(new Error(`the ${kind} idle-client process printed no figures: ${stdout.trim()} ${stderr.trim()}`));
      }
    });
  });
}

async function memory(ctx: Context): Promise<Record<string, Line>> {
  const k = ctx.quick ? 50 : 1000,
    rounds = ctx.quick ? 1 : 3;
  const b = await broker(ctx);
  try {
    const child = await bundle("./idle-clients.ts", "idle-clients.mjs");
    const o: IdleFigures[] = [],
      p: IdleFigures[] = [];
    for (let r = 0; r < rounds; r++) {
      const order: ["ours" | "peer", IdleFigures[]][] =
        r % 2 === 0
          ? [
              ["ours", o],
              ["peer", p],
            ]
          : [
              ["peer", p],
              ["ours", o],
            ];
      for (const [kind, got] of order) {
        got.push(await idleRound(child, kind, b.port, k));
        await sleep(200); // the broker lets go of the last round's connections
      }
    }
    const show = (xs: IdleFigures[], f: keyof IdleFigures) => xs.map((x) => Math.round(x[f])).join(" ");
    ctx.log(
      `  per client, each round: heap ours ${show(o, "heap")}, MQTT.js ${show(p, "heap")}; RSS ours ${show(o, "rss")}, MQTT.js ${show(p, "rss")}`,
    );
    const what = (m: string) =>
      `${k} clients of a kind connected to Mosquitto on loopback, each subscribed to one topic and idle (keepalive 60 s), in a fresh Node process per round: ${m} after a full GC minus before, per client`;
    return {
      [HEAP]: {
        what: what("heapUsed"),
        ours: o.map((x) => x.heap),
        peer: p.map((x) => x.heap),
        unit: "bytes",
        better: "lower",
        clients: k,
        arrayBuffersOurs: Math.round(o[0].arrayBuffers),
        arrayBuffersPeer: Math.round(p[0].arrayBuffers),
      },
      [RSS]: {
        what: what("resident set size"),
        ours: o.map((x) => x.rss),
        peer: p.map((x) => x.rss),
        unit: "bytes",
        better: "lower",
        clients: k,
      },
    };
  } finally {
    await b.close();
  }
}

export const benchmarks: Benchmark[] = [
  // in fresh processes: MQTT.js shares mqtt-packet with bench/codec.ts, whose rows would otherwise shape its JIT state
  { names: [THROUGHPUT(0), THROUGHPUT(1), CPU(0), CPU(1), TUNED_THROUGHPUT], run: throughput, isolate: true },
  { names: [P(0, 50), P(0, 99), P(1, 50), P(1, 99)], run: latency, isolate: true },
  { names: [HEAP, RSS], run: memory },
];
