/**
 * The MQTT codec (src/mqtt/codec.ts) against mqtt-packet, the codec of MQTT.js, in the same process.
 * Each side gets its natural input: Uint8Array for ours, Buffer for mqtt-packet. Before timing, each benchmark
 * checks that both sides produce the same bytes or the same packets.
 *
 * Headline rows: each side in its default configuration. Ours: `encode(packet)` (a new Uint8Array per packet) and
 * `new Decoder(onPacket)` (its default topic cache of 8 recent topics; a packet split across chunks assembled in
 * its default 8 KB slabs, as mqtt-packet's are in Node's Buffer pool), fed topics that rotate among 32, so the cache
 * never hits. mqtt-packet: `generate(packet)` and `parser()`.
 * Tuned rows (named "tuned: ..."): ours as the client's session runs it on the Node host, encodePublish with a
 * TopicCache and the host's slab allocator (hosts/node/alloc.ts), and a decoder fed one topic again and again, so its
 * topic cache always hits; against the same mqtt-packet calls.
 *
 * Every row runs in three fresh processes one after another (`isolate`, `processes`), four interleaved rounds of
 * 100 ms of CPU time each side in each (bench/harness.ts `compare`), the twelve rounds pooled; figures are per CPU
 * second, and each row also carries the ratio of the same rounds by wall-clock time (`wallRatio`, `wallRatioIQR`).
 */
import { Buffer } from "node:buffer";
import * as mp from "mqtt-packet";
import { Decoder, encode, PUBLISH } from "../src/mqtt/codec";
import { encodePublish, TopicCache } from "../src/mqtt/encode";
import { nodeAlloc } from "../hosts/node/alloc";
import type { Packet, PublishPacket } from "../src/mqtt/codec";
import { check, compare, rates, timing } from "./harness";
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
  const a = ours.payload as Uint8Array,
    b = peer.payload as Buffer;
  return (
    ours.topic === peer.topic &&
    ours.qos === peer.qos &&
    ours.id === peer.messageId &&
    ours.retain === peer.retain &&
    ours.dup === peer.dup &&
    Buffer.from(a.buffer, a.byteOffset, a.length).equals(b)
  );
}

/** 32 device topics of the same length as TOPIC: more than the decoder's default cache of 8 remembers. */
export const DEVICE_TOPICS = Array.from({ length: 32 }, (_, i) =>
  TOPIC.replace("0001", String(i + 10).padStart(4, "0")),
);

function checkEncode(
  size: number,
  ours: PublishPacket,
  peer: mp.IPublishPacket,
  mine: () => Uint8Array,
  label: string,
): void {
  for (const id of [1, 300, 65535]) {
    ours.id = id;
    peer.messageId = id;
    check(
      Buffer.from(mine()).equals(mp.generate(peer)),
      `${label} of a ${size}-byte PUBLISH differs from mqtt-packet's`,
    );
  }
}

function peerEncode(peer: mp.IPublishPacket): (n: number) => number {
  return (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      peer.messageId = (i & 0x7fff) + 1;
      s += mp.generate(peer).length;
    }
    return s;
  };
}

/** encode() with its defaults (or, tuned, encodePublish with a topic cache and the slab allocator) vs generate(). */
function encodeBench(size: number, tuned: boolean): (ctx: Context) => Line {
  return (ctx) => {
    const ours: PublishPacket = {
      type: 3,
      topic: TOPIC,
      payload: payloadOf(size),
      qos: 1,
      retain: false,
      dup: false,
      id: 1,
    };
    const topics = new TopicCache();
    const peer: mp.IPublishPacket = {
      cmd: "publish",
      topic: TOPIC,
      payload: toBuffer(ours.payload as Uint8Array),
      qos: 1,
      retain: false,
      dup: false,
      messageId: 1,
    };
    checkEncode(size, ours, peer, () => encode(ours), "encode");
    checkEncode(size, ours, peer, () => encodePublish(ours, topics, nodeAlloc), "encodePublish with a topic cache");
    const r = compare(
      tuned
        ? (n) => {
            let s = 0;
            for (let i = 0; i < n; i++) {
              ours.id = (i & 0x7fff) + 1;
              s += encodePublish(ours, topics, nodeAlloc).length;
            }
            return s;
          }
        : (n) => {
            let s = 0;
            for (let i = 0; i < n; i++) {
              ours.id = (i & 0x7fff) + 1;
              s += encode(ours).length;
            }
            return s;
          },
      peerEncode(peer),
      timing(ctx),
    );
    const what = tuned
      ? `encodePublish(packet, topicCache, slab allocator) vs generate(): a QoS 1 PUBLISH with ${size} B of payload to the same UIoT topic every time (cache hit)`
      : `encode(packet) vs generate(), both with defaults: a QoS 1 PUBLISH with ${size} B of payload to a 61-char UIoT topic, a new packet id each time`;
    return { what, ...rates(r), unit: "packets/CPU-s" };
  };
}

function publishOf(topic: string, payload: Uint8Array, id: number): { ours: PublishPacket; peer: mp.IPublishPacket } {
  return {
    ours: { type: 3, topic, payload, qos: 1, retain: false, dup: false, id },
    peer: { cmd: "publish", topic, payload: toBuffer(payload), qos: 1, retain: false, dup: false, messageId: id },
  };
}

/** Each side decodes `bytes` once: the packets must be the same, and as many as `expect`. */
function checkDecode(bytes: Uint8Array, chunk: number, expect: number, what: string): void {
  const got: Packet[] = [],
    gotPeer: mp.Packet[] = [];
  const d = new Decoder((p) => got.push(p));
  const parser = mp.parser({ protocolVersion: 4 });
  parser.on("packet", (p) => gotPeer.push(p));
  parser.on("error", (e) => {
    throw e;
  });
  const buffer = toBuffer(bytes);
  for (let i = 0; i < bytes.length; i += chunk) {
    d.push(bytes.subarray(i, i + chunk));
    parser.parse(buffer.subarray(i, i + chunk));
  }
  check(
    got.length === expect && gotPeer.length === expect,
    `${what}: ours decoded ${got.length}, mqtt-packet ${gotPeer.length} of ${expect} packets`,
  );
  for (let i = 0; i < expect; i++) {
    const a = got[i],
      b = gotPeer[i];
    check(a.type === PUBLISH && b.cmd === "publish" && samePublish(a, b), `${what}: packet ${i} decodes differently`);
  }
}

/**
 * One whole PUBLISH per push. Default: the default Decoder, topics rotating among 32 (its cache of 8 misses).
 * Tuned: one topic every time, so the decoder's topic cache always hits.
 */
function decodeBench(size: number, tuned: boolean): (ctx: Context) => Line {
  return (ctx) => {
    const topics = tuned ? [TOPIC] : DEVICE_TOPICS;
    const payload = payloadOf(size);
    const ourBytes = topics.map((t, i) => encode(publishOf(t, payload, 4242 + i).ours));
    const peerBytes = ourBytes.map(toBuffer);
    const all = new Uint8Array(ourBytes.reduce((n, b) => n + b.length, 0));
    ourBytes.reduce((at, b) => (all.set(b, at), at + b.length), 0);
    checkDecode(all, ourBytes[0].length, ourBytes.length, `decode of ${size}-byte PUBLISHes`);

    let acc = 0;
    const decoder = new Decoder(
      (p) => {
        if (p.type === PUBLISH) acc += p.topic.length + (p.payload as Uint8Array).length;
      },
      tuned ? { alloc: nodeAlloc } : {},
    );
    const parser = mp.parser({ protocolVersion: 4 });
    parser.on("packet", (p) => {
      if (p.cmd === "publish") acc += p.topic.length + p.payload.length;
    });
    parser.on("error", (e) => {
      throw e;
    });
    const mask = topics.length - 1;
    const r = compare(
      (n) => {
        acc = 0;
        for (let i = 0; i < n; i++) decoder.push(ourBytes[i & mask]);
        return acc;
      },
      (n) => {
        acc = 0;
        for (let i = 0; i < n; i++) parser.parse(peerBytes[i & mask]);
        return acc;
      },
      timing(ctx),
    );
    const what = tuned
      ? `Decoder.push vs parser.parse: one whole QoS 1 PUBLISH (${size} B payload) per push, always the same topic (ours: topic-cache hit)`
      : `Decoder.push vs parser.parse, both with defaults: one whole QoS 1 PUBLISH (${size} B payload) per push, topics rotating among 32 (ours: topic-cache miss)`;
    return { what, ...rates(r), unit: "packets/CPU-s" };
  };
}

/** The remaining length of a packet of `total` bytes (fixed header included). */
function remainingOf(total: number): number {
  for (let v = 1; v <= 4; v++) {
    const rl = total - 1 - v;
    if (rl < 128 ** v && (v === 1 || rl >= 128 ** (v - 1))) return rl;
  }
  throw new RangeError(`no MQTT packet is exactly ${total} bytes`);
}

export const CHUNKED_SIZES = [16, 64, 256, 1024, 4096, 16384, 65536, 262144];

function sizeName(bytes: number): string {
  return bytes >= 1024 ? `${bytes / 1024} KB` : `${bytes} B`;
}

/**
 * A stream of QoS 1 PUBLISH packets of exactly `total` bytes each (at least 256 KB of them), topics "s/10" to
 * "s/41" in turn (short enough for a 16-byte packet; more than the default topic cache holds), cut into
 * 1,460-byte chunks (a TCP segment's payload on Ethernet) and fed to each side's default decoder.
 */
function chunkedBench(total: number): (ctx: Context) => Line {
  return (ctx) => {
    const count = Math.max(1, Math.ceil((256 * 1024) / total));
    const payloadLength = remainingOf(total) - 2 - 4 - 2;
    const parts: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const p = publishOf(`s/${10 + (i % 32)}`, payloadOf(payloadLength, i % 7), (i % 65535) + 1);
      const b = encode(p.ours);
      if (i < 32)
        check(
          b.length === total && Buffer.from(b).equals(mp.generate(p.peer)),
          `a ${total}-byte PUBLISH encodes the same on both sides`,
        );
      parts.push(b);
    }
    const stream = new Uint8Array(count * total);
    for (const [i, b] of parts.entries()) stream.set(b, i * total);
    const peerStream = toBuffer(stream);
    const ourChunks: Uint8Array[] = [],
      peerChunks: Buffer[] = [];
    for (let i = 0; i < stream.length; i += CHUNK) {
      ourChunks.push(stream.subarray(i, i + CHUNK));
      peerChunks.push(peerStream.subarray(i, i + CHUNK));
    }
    checkDecode(stream, CHUNK, count, `${total}-byte packets in ${CHUNK.toLocaleString("en-US")}-byte chunks`);

    let acc = 0;
    const decoder = new Decoder((p) => {
      if (p.type === PUBLISH) acc += p.topic.length + (p.payload as Uint8Array).length;
    });
    const parser = mp.parser({ protocolVersion: 4 });
    parser.on("packet", (p) => {
      if (p.cmd === "publish") acc += p.topic.length + p.payload.length;
    });
    parser.on("error", (e) => {
      throw e;
    });
    const r = compare(
      (n) => {
        acc = 0;
        for (let k = 0; k < n; k++) for (let i = 0; i < ourChunks.length; i++) decoder.push(ourChunks[i]);
        return acc;
      },
      (n) => {
        acc = 0;
        for (let k = 0; k < n; k++) for (let i = 0; i < peerChunks.length; i++) parser.parse(peerChunks[i]);
        return acc;
      },
      timing(ctx),
    );
    return {
      what: `new Decoder() vs parser(), both with defaults: QoS 1 PUBLISH packets of exactly ${sizeName(total)} each (${count} in a stream), topics rotating among 32, fed in ${CHUNK.toLocaleString("en-US")}-byte chunks`,
      ...rates(r, count),
      unit: "packets/CPU-s",
      packetBytes: total,
      streamPackets: count,
    };
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
  let bytes = 4,
    id = 1;
  while (bytes < STREAM_BYTES) {
    const k = rnd();
    let o: Packet, p: mp.Packet;
    id = (id % 65535) + 1;
    if (k < 0.7) {
      const topic = STREAM_TOPICS[Math.floor(rnd() * STREAM_TOPICS.length)];
      const s = rnd();
      const size =
        s < 0.6
          ? 8 + Math.floor(rnd() * 192)
          : s < 0.9
            ? 200 + Math.floor(rnd() * 1800)
            : 2000 + Math.floor(rnd() * 14384);
      const payload = payloadOf(size, id);
      const qos = rnd() < 0.5 ? 0 : 1,
        retain = rnd() < 0.05;
      o = { type: 3, topic, payload, qos, retain, dup: false, id: qos ? id : undefined };
      p = {
        cmd: "publish",
        topic,
        payload: toBuffer(payload),
        qos,
        retain,
        dup: false,
        messageId: qos ? id : undefined,
      };
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
    check(
      Buffer.from(ourParts[i]).equals(peerParts[i]),
      `encoders differ on stream packet ${i} (${packets.peer[i].cmd})`,
    );
  const peerStream = Buffer.concat(peerParts);
  const ourStream = new Uint8Array(peerStream.length);
  for (let i = 0, at = 0; i < ourParts.length; at += ourParts[i].length, i++) ourStream.set(ourParts[i], at);
  const ourChunks: Uint8Array[] = [],
    peerChunks: Buffer[] = [];
  for (let i = 0; i < ourStream.length; i += CHUNK) {
    ourChunks.push(ourStream.subarray(i, i + CHUNK));
    peerChunks.push(peerStream.subarray(i, i + CHUNK));
  }

  let count = 0,
    acc = 0;
  const decoder = new Decoder((p) => {
    count++;
    if (p.type === PUBLISH) acc += p.topic.length + (p.payload as Uint8Array).length;
  });
  const parser = mp.parser({ protocolVersion: 4 });
  parser.on("packet", (p) => {
    count++;
    if (p.cmd === "publish") acc += p.topic.length + p.payload.length;
  });
  parser.on("error", (e) => {
    throw e;
  });
  const ours = (n: number): number => {
    for (let k = 0; k < n; k++) for (let i = 0; i < ourChunks.length; i++) decoder.push(ourChunks[i]);
    return acc;
  };
  const peer = (n: number): number => {
    for (let k = 0; k < n; k++) for (let i = 0; i < peerChunks.length; i++) parser.parse(peerChunks[i]);
    return acc;
  };

  let expect = 0;
  for (const p of packets.ours) if (p.type === PUBLISH) expect += p.topic.length + (p.payload as Uint8Array).length;
  count = acc = 0;
  ours(1);
  check(count === packets.ours.length && acc === expect, `our decoder saw ${count} of ${packets.ours.length} packets`);
  count = acc = 0;
  peer(1);
  check(count === packets.ours.length && acc === expect, `mqtt-packet saw ${count} of ${packets.ours.length} packets`);

  const r = compare(ours, peer, timing(ctx));
  const mib = ourStream.length / (1 << 20);
  ctx.log(
    `  stream: ${packets.ours.length} packets, ${ourStream.length} bytes, ${ourChunks.length} chunks of ${CHUNK}`,
  );
  return {
    what: `new Decoder() vs parser(), both with defaults: a 1 MB stream of ${packets.ours.length} mixed packets (PUBLISH QoS 0/1 of 8 to 16,384 B on 8 topics, PUBACK, PINGRESP, SUBACK, UNSUBACK) in ${CHUNK.toLocaleString("en-US")}-byte chunks`,
    ...rates(r, mib),
    unit: "MiB/CPU-s",
    packets: packets.ours.length,
  };
}

export const benchmarks: Benchmark[] = [
  ...[16, 64, 1024, 4096].map((size) => ({
    name: `encode PUBLISH QoS 1, ${sizeName(size)} payload`,
    run: encodeBench(size, false),
  })),
  ...[64, 4096].map((size) => ({
    name: `decode PUBLISH QoS 1, ${sizeName(size)} payload, whole packets`,
    run: decodeBench(size, false),
  })),
  ...CHUNKED_SIZES.map((total) => ({
    name: `decode in ${CHUNK.toLocaleString("en-US")}-byte chunks, ${sizeName(total)} packets`,
    run: chunkedBench(total),
  })),
  { name: `decode 1 MB mixed stream in ${CHUNK.toLocaleString("en-US")}-byte chunks`, run: streamBench },
  ...[64, 4096].map((size) => ({
    name: `tuned: encodePublish with topic cache and slab allocator, ${sizeName(size)} payload`,
    run: encodeBench(size, true),
  })),
  ...[64, 4096].map((size) => ({
    name: `tuned: decode with topic-cache hits, ${sizeName(size)} payload, whole packets`,
    run: decodeBench(size, true),
  })),
].map((b) => ({ ...b, isolate: true, processes: 3 })); // each row in fresh processes: no row inherits another's JIT state
