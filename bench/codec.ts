/**
 * The MQTT codec (src/mqtt/codec.ts) against mqtt-packet, the codec of MQTT.js, in the same process.
 * Each side gets its natural input: Uint8Array for ours, Buffer for mqtt-packet. Before timing, each benchmark
 * checks that both sides produce the same bytes or the same packets.
 * Ours runs as the client runs it on the Node host: packet buffers from the host allocator (Buffer.allocUnsafe,
 * the pool mqtt-packet uses too), PUBLISH topics through the session's TopicCache, decoders with their topic cache.
 */
import { Buffer } from "node:buffer";
import * as mp from "mqtt-packet";
import { Decoder, encode } from "../src/mqtt/codec";
import { encodePublish, TopicCache } from "../src/mqtt/encode";
import { nodeAlloc } from "../hosts/node/alloc";
import type { Packet, PublishPacket } from "../src/mqtt/codec";
import { check, compare, timing } from "./harness";
import type { Benchmark, Context, Line } from "./harness";

/** A UIoT Core system topic, as a thermostat posts its thing-model properties. */
export const TOPIC = "/$system/abcdefghijklmnop/thermostat-0001/tmodel/property/post";

/** An ASCII JSON-ish payload of exactly `size` bytes. */
export function payloadOf(size: number, seed = 0): Uint8Array {
  const text = `{"method":"report","clientToken":"${seed}","params":{"temperature":21.5,"humidity":40,"mode":"auto","fill":"`;
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = i < text.length ? text.charCodeAt(i) : 0x61 + ((i + seed) % 26);
  if (size >= 3) b.set([0x22, 0x7d, 0x7d], size - 3); // "}}
  return b;
}

/** Same content, as the Buffer mqtt-packet wants (its own memory, not a view of ours). */
function toBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b);
}

function samePublish(ours: PublishPacket, peer: mp.IPublishPacket): boolean {
  const a = ours.payload as Uint8Array, b = peer.payload as Buffer;
  return ours.topic === peer.topic && ours.qos === peer.qos && ours.id === peer.messageId &&
    ours.retain === peer.retain && ours.dup === peer.dup && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

function encodeBench(size: number): (ctx: Context) => Line {
  return (ctx) => {
    const ours: PublishPacket = { type: 3, topic: TOPIC, payload: payloadOf(size), qos: 1, retain: false, dup: false, id: 1 };
    const topics = new TopicCache();
    const peer: mp.IPublishPacket = { cmd: "publish", topic: TOPIC, payload: toBuffer(ours.payload as Uint8Array), qos: 1, retain: false, dup: false, messageId: 1 };
    for (const id of [1, 300, 65535]) {
      ours.id = id;
      peer.messageId = id;
      check(Buffer.from(encode(ours)).equals(mp.generate(peer)), `encode of a ${size}-byte PUBLISH differs from mqtt-packet's`);
      check(Buffer.from(encodePublish(ours, topics, nodeAlloc)).equals(mp.generate(peer)), `cached encode of a ${size}-byte PUBLISH differs`);
    }
    const r = compare(
      (n) => {
        let s = 0;
        for (let i = 0; i < n; i++) {
          ours.id = (i & 0x7fff) + 1;
          s += encodePublish(ours, topics, nodeAlloc).length;
        }
        return s;
      },
      (n) => {
        let s = 0;
        for (let i = 0; i < n; i++) {
          peer.messageId = (i & 0x7fff) + 1;
          s += mp.generate(peer).length;
        }
        return s;
      },
      timing(ctx),
    );
    return { ...r, unit: "packets/s" };
  };
}

function decodeBench(size: number): (ctx: Context) => Line {
  return (ctx) => {
    const packet: PublishPacket = { type: 3, topic: TOPIC, payload: payloadOf(size), qos: 1, retain: false, dup: false, id: 4242 };
    const ourBytes = encode(packet), peerBytes = toBuffer(ourBytes);
    let acc = 0;
    const decoder = new Decoder((p) => {
      if (p.type === 3) acc += p.topic.length + (p.payload as Uint8Array).length;
    }, { alloc: nodeAlloc });
    const parser = mp.parser({ protocolVersion: 4 });
    parser.on("packet", (p) => {
      if (p.cmd === "publish") acc += p.topic.length + p.payload.length;
    });
    parser.on("error", (e) => { throw e; });

    let got: Packet | undefined, gotPeer: mp.Packet | undefined;
    new Decoder((p) => { got = p; }).push(ourBytes);
    const once = mp.parser({ protocolVersion: 4 });
    once.on("packet", (p) => { gotPeer = p; });
    once.parse(toBuffer(ourBytes));
    check(got?.type === 3 && gotPeer?.cmd === "publish" && samePublish(got, gotPeer), `decode of a ${size}-byte PUBLISH differs`);

    const r = compare(
      (n) => {
        acc = 0;
        for (let i = 0; i < n; i++) decoder.push(ourBytes);
        return acc;
      },
      (n) => {
        acc = 0;
        for (let i = 0; i < n; i++) parser.parse(peerBytes);
        return acc;
      },
      timing(ctx),
    );
    return { ...r, unit: "packets/s" };
  };
}

/** A deterministic pseudo-random source (mulberry32), so every run decodes the same stream. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STREAM_TOPICS = [
  TOPIC,
  "/$system/abcdefghijklmnop/thermostat-0001/tmodel/service/invoke",
  "/$system/abcdefghijklmnop/thermostat-0001/shadow/get_reply",
  "/$system/abcdefghijklmnop/thermostat-0001/ota/upgrade",
  "/abcdefghijklmnop/thermostat-0001/downlink",
  "/abcdefghijklmnop/thermostat-0001/set",
  "cmd/x",
  "sensors/building-7/floor-3/room-312/air-quality/co2",
];

export const STREAM_BYTES = 1 << 20;
export const CHUNK = 1460;

/** The mixed stream a busy client receives: PUBLISH QoS 0/1 of varied sizes and topics, PUBACK, PINGRESP, SUBACK, ... */
export function mixedStream(): { ours: Packet[]; peer: mp.Packet[] } {
  const rnd = random(0x5eed);
  const ours: Packet[] = [{ type: 2, sessionPresent: false, returnCode: 0 }];
  const peer: mp.Packet[] = [{ cmd: "connack", sessionPresent: false, returnCode: 0 }];
  let bytes = 4, id = 1;
  while (bytes < STREAM_BYTES) {
    const k = rnd();
    let o: Packet, p: mp.Packet;
    id = (id % 65535) + 1;
    if (k < 0.7) {
      const topic = STREAM_TOPICS[Math.floor(rnd() * STREAM_TOPICS.length)];
      const s = rnd();
      const size = s < 0.6 ? 8 + Math.floor(rnd() * 192) : s < 0.9 ? 200 + Math.floor(rnd() * 1800) : 2000 + Math.floor(rnd() * 14384);
      const payload = payloadOf(size, id);
      const qos = rnd() < 0.5 ? 0 : 1, retain = rnd() < 0.05;
      o = { type: 3, topic, payload, qos, retain, dup: false, id: qos ? id : undefined };
      p = { cmd: "publish", topic, payload: toBuffer(payload), qos, retain, dup: false, messageId: qos ? id : undefined };
    } else if (k < 0.9) {
      o = { type: 4, id };
      p = { cmd: "puback", messageId: id };
    } else if (k < 0.95) {
      o = { type: 13 };
      p = { cmd: "pingresp" };
    } else if (k < 0.98) {
      o = { type: 9, id, granted: [1, 0, 0x80] };
      p = { cmd: "suback", messageId: id, granted: [1, 0, 0x80] };
    } else {
      o = { type: 11, id };
      p = { cmd: "unsuback", messageId: id } as mp.IUnsubackPacket; // its types want v5 reason codes
    }
    ours.push(o);
    peer.push(p);
    bytes += encode(o).length;
  }
  return { ours, peer };
}

function streamBench(ctx: Context): Line {
  const packets = mixedStream();
  const ourParts = packets.ours.map((p) => encode(p));
  const peerParts = packets.peer.map((p) => mp.generate(p));
  for (let i = 0; i < ourParts.length; i++)
    check(Buffer.from(ourParts[i]).equals(peerParts[i]), `encoders differ on stream packet ${i} (${packets.peer[i].cmd})`);
  const peerStream = Buffer.concat(peerParts);
  const ourStream = new Uint8Array(peerStream.length);
  for (let i = 0, at = 0; i < ourParts.length; at += ourParts[i].length, i++) ourStream.set(ourParts[i], at);
  const ourChunks: Uint8Array[] = [], peerChunks: Buffer[] = [];
  for (let i = 0; i < ourStream.length; i += CHUNK) {
    ourChunks.push(ourStream.subarray(i, i + CHUNK));
    peerChunks.push(peerStream.subarray(i, i + CHUNK));
  }

  let count = 0, acc = 0;
  const decoder = new Decoder((p) => {
    count++;
    if (p.type === 3) acc += p.topic.length + (p.payload as Uint8Array).length;
  }, { alloc: nodeAlloc });
  const parser = mp.parser({ protocolVersion: 4 });
  parser.on("packet", (p) => {
    count++;
    if (p.cmd === "publish") acc += p.topic.length + p.payload.length;
  });
  parser.on("error", (e) => { throw e; });
  const ours = (n: number): number => {
    for (let k = 0; k < n; k++) for (let i = 0; i < ourChunks.length; i++) decoder.push(ourChunks[i]);
    return acc;
  };
  const peer = (n: number): number => {
    for (let k = 0; k < n; k++) for (let i = 0; i < peerChunks.length; i++) parser.parse(peerChunks[i]);
    return acc;
  };

  let expect = 0;
  for (const p of packets.ours) if (p.type === 3) expect += p.topic.length + (p.payload as Uint8Array).length;
  count = acc = 0;
  ours(1);
  check(count === packets.ours.length && acc === expect, `our decoder saw ${count} of ${packets.ours.length} packets`);
  count = acc = 0;
  peer(1);
  check(count === packets.ours.length && acc === expect, `mqtt-packet saw ${count} of ${packets.ours.length} packets`);

  const r = compare(ours, peer, timing(ctx));
  const mib = ourStream.length / (1 << 20);
  ctx.log(`  stream: ${packets.ours.length} packets, ${ourStream.length} bytes, ${ourChunks.length} chunks of ${CHUNK}`);
  return { ours: r.ours * mib, peer: r.peer * mib, unit: "MiB/s", packets: packets.ours.length };
}

export const benchmarks: Benchmark[] = [
  { name: "encode PUBLISH QoS 1, 64 B", run: encodeBench(64) },
  { name: "encode PUBLISH QoS 1, 4 KB", run: encodeBench(4096) },
  { name: "decode PUBLISH QoS 1, 64 B", run: decodeBench(64) },
  { name: "decode PUBLISH QoS 1, 4 KB", run: decodeBench(4096) },
  { name: "decode 1 MB mixed stream, 1460 B chunks", run: streamBench },
];
