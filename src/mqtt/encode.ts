/**
 * Packet encoder: each packet becomes one exact-size Uint8Array. Lengths are computed first, then every field
 * (strings as UTF-8, payloads copied once) is written in place.
 *
 * This encoder makes what a client sends. The packets only a broker sends (CONNACK, SUBACK, UNSUBACK, PINGRESP)
 * are in broker-codec, which the device does not import; codec's `encode` makes them all.
 */
import { fail } from "./errors";
import { checkTopicFilter, checkTopicName } from "./topic";
import { strLen, utf8Length, writeStr, writeUtf8 } from "./utf8";
import {
  CONNACK,
  CONNECT,
  DISCONNECT,
  PINGREQ,
  PINGRESP,
  PUBACK,
  PUBCOMP,
  PUBLISH,
  PUBREC,
  PUBREL,
  SUBACK,
  SUBSCRIBE,
  UNSUBACK,
  UNSUBSCRIBE,
  type Bytes,
  type Mqtt5Codec,
  type Packet,
  type ProtocolLevel,
  type PublishPacket,
} from "./packets";
import type { Allocator } from "../host";

const MAX_REMAINING = 268435455;

/** The portable packet allocator (see Allocator in src/host.ts): suits XS. */
const newBytes: Allocator = (size) => new Uint8Array(size);

/**
 * The UTF-8 bytes (with their 2-byte length prefix) of recently encoded, already validated topics, so a device
 * that publishes to the same few topics neither re-validates nor re-encodes them. Owned by the caller (the
 * session), never module state: preloaded modules are frozen on a device.
 */
export class TopicCache {
  /** [topic, bytes, topic, bytes ...], made on first use. */
  private entries: (string | Uint8Array)[] | null = null;
  private next = 0;
  /**
   * `rules`: extra rules (a connection profile's) a topic must pass before it is cached, run before the codec's;
   * its checkTopic is called as a method, with `subscribe` false.
   */
  constructor(
    readonly size = 4,
    private readonly rules?: { checkTopic?(topic: string, subscribe: boolean): void },
  ) {}

  get(topic: string): Uint8Array | undefined {
    const e = this.entries;
    if (e) for (let i = 0; i < e.length; i += 2) if (e[i] === topic) return e[i + 1] as Uint8Array;
    return undefined;
  }

  /** Validates and encodes `topic`, remembering the result. */
  add(topic: string): Uint8Array {
    const rules = this.rules;
    if (rules?.checkTopic) rules.checkTopic(topic, false);
    checkTopicName(topic);
    const n = strLen(topic);
    const b = new Uint8Array(2 + n);
    writeStr(topic, b, 0);
    if (this.size > 0) {
      const e = this.entries ?? (this.entries = []);
      e[this.next] = topic;
      e[this.next + 1] = b;
      this.next = (this.next + 2) % (2 * this.size);
    }
    return b;
  }
}

/** Bytes of `n` as an MQTT variable byte integer (a remaining length, a property length). */
export function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4;
}

/** Writes `n` as a variable byte integer at `p`; returns the position after it. */
export function writeVarint(n: number, b: Uint8Array, p: number): number {
  do {
    let d = n & 0x7f;
    n >>>= 7;
    if (n > 0) d |= 0x80;
    b[p++] = d;
  } while (n > 0);
  return p;
}

/** Allocates the packet and writes its fixed header; the body starts at b.length - rl. */
export function alloc(header: number, rl: number, allocate: Allocator = newBytes): Uint8Array {
  if (!(rl <= MAX_REMAINING))
    fail("INVALID_PACKET", "packet is larger than MQTT allows (256 MB), or a field has the wrong type");
  const b = allocate(1 + varintSize(rl) + rl);
  b[0] = header;
  writeVarint(rl, b, 1);
  return b;
}

export function checkId(id: unknown): number {
  if (typeof id !== "number" || id < 1 || id > 0xffff || (id | 0) !== id)
    fail("INVALID_PACKET", "packet identifier must be an integer from 1 to 65535");
  return id;
}

function checkQos(qos: unknown): 0 | 1 {
  if (qos === 0 || qos === 1) return qos;
  if (qos === 2) fail("QOS2_UNSUPPORTED", "QoS 2 is not supported: use QoS 0 or 1");
  return fail("INVALID_QOS", "QoS must be 0 or 1");
}

function binLen(v: Bytes | string): number {
  const n = typeof v === "string" ? utf8Length(v, true) : v.length;
  if (n > 0xffff) fail("INVALID_PACKET", "a length-prefixed field is longer than 65535 bytes");
  return n;
}

function writeBin(v: Bytes | string, n: number, b: Uint8Array, p: number): number {
  b[p] = n >> 8;
  b[p + 1] = n & 0xff;
  if (typeof v === "string") return writeUtf8(v, b, p + 2);
  b.set(v, p + 2);
  return p + 2 + n;
}

/** A PUBACK (type 4) or UNSUBACK (11) of packet `id`, made from its fields. */
export function encodeAck(type: typeof PUBACK | typeof UNSUBACK, id: number): Uint8Array {
  return ack(type << 4, id);
}

export function ack(header: number, id: number): Uint8Array {
  checkId(id);
  const b = new Uint8Array(4);
  b[0] = header;
  b[1] = 2;
  b[2] = id >> 8;
  b[3] = id & 0xff;
  return b;
}

/**
 * Encodes a PUBLISH. The hot path of the client: no intermediate buffers. With a `topics` cache, a topic seen
 * before is copied as bytes instead of being validated and encoded again.
 */
export function encodePublish(p: PublishPacket, topics?: TopicCache, allocate?: Allocator): Uint8Array {
  return encodePublishFields(p.topic, p.payload, p.qos, p.retain, p.dup, p.id, topics, allocate);
}

/**
 * encodePublish with the packet's fields as arguments, for the session's hot path: on XS a packet object literal
 * costs about 9 heap slots (144 bytes on a device) of garbage per publish.
 */
export function encodePublishFields(
  topic: string,
  payload: Uint8Array | string,
  qosField: unknown,
  retain: boolean | undefined,
  dup: boolean | undefined,
  id: number | undefined,
  topics?: TopicCache,
  allocate?: Allocator,
): Uint8Array {
  // (the checks' calls only when a check fails: this runs once per publish)
  const qos = qosField === 0 || qosField === 1 ? qosField : checkQos(qosField);
  let tb: Uint8Array | undefined, tl: number;
  if (topics) {
    tb = topics.get(topic) ?? topics.add(topic);
    tl = tb.length - 2;
  } else {
    checkTopicName(topic);
    tl = strLen(topic);
  }
  const pl = typeof payload === "string" ? utf8Length(payload, true) : payload.length;
  let header = 0x30 | (qos << 1) | (retain ? 1 : 0);
  if (qos) {
    if (!((id as number) >= 1 && (id as number) <= 0xffff && ((id as number) | 0) === id)) checkId(id);
    if (dup) header |= 8;
  } else if (dup) fail("INVALID_PACKET", "DUP must not be set on a QoS 0 PUBLISH");
  const rl = 2 + tl + (qos ? 2 : 0) + pl;
  let b: Uint8Array, q: number;
  if (rl < 128) {
    // the common small message: a one-byte remaining length
    b = allocate ? allocate(2 + rl) : new Uint8Array(2 + rl);
    b[0] = header;
    b[1] = rl;
    q = 2;
  } else {
    b = alloc(header, rl, allocate);
    q = b.length - rl;
  }
  let i: number;
  if (tb) {
    b.set(tb, q);
    i = q + tb.length;
  } else i = writeStr(topic, b, q);
  if (qos) {
    b[i++] = (id as number) >> 8;
    b[i++] = (id as number) & 0xff;
  }
  if (typeof payload === "string") writeUtf8(payload, b, i);
  else b.set(payload, i);
  return b;
}

/**
 * Encodes a packet a client sends: CONNECT, PUBLISH, PUBACK, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT (codec's
 * encode makes every packet). `level` is the connection's protocol level; it refuses the 5.0 packets this codec
 * does not have yet. CONNECT carries its own level; a 5.0 CONNECT needs `v5`, the mqtt5 module.
 */
export function encode(p: Packet, level: ProtocolLevel = 4, allocate?: Allocator, v5?: Mqtt5Codec): Uint8Array {
  const t = p.type;
  if (level === 5 && t !== CONNECT && t !== CONNACK && t !== PINGREQ && t !== PINGRESP)
    fail(
      "INVALID_PACKET",
      `MQTT 5.0 packets of type ${t} are not supported yet (only CONNECT, CONNACK, PINGREQ, PINGRESP)`,
    );
  switch (p.type) {
    case PUBLISH:
      return encodePublish(p, undefined, allocate);
    case PUBACK:
      return ack(0x40, p.id);
    case PINGREQ:
      return new Uint8Array([0xc0, 0]);
    case DISCONNECT:
      return new Uint8Array([0xe0, 0]);
    case CONNECT:
      return encodeConnect(p, v5);
    case SUBSCRIBE: {
      checkId(p.id);
      const subs = p.subscriptions;
      if (!subs || !(subs.length > 0)) fail("INVALID_PACKET", "SUBSCRIBE needs at least one topic filter");
      let rl = 2;
      for (let i = 0; i < subs.length; i++) {
        checkTopicFilter(subs[i].topic);
        checkQos(subs[i].qos);
        rl += 3 + strLen(subs[i].topic);
      }
      const b = alloc(0x82, rl),
        q = b.length - rl;
      b[q] = p.id >> 8;
      b[q + 1] = p.id & 0xff;
      let i = q + 2;
      for (let k = 0; k < subs.length; k++) {
        i = writeStr(subs[k].topic, b, i);
        b[i++] = subs[k].qos;
      }
      return b;
    }
    case UNSUBSCRIBE: {
      checkId(p.id);
      const topics = p.topics;
      if (!topics || !(topics.length > 0)) fail("INVALID_PACKET", "UNSUBSCRIBE needs at least one topic filter");
      let rl = 2;
      for (let i = 0; i < topics.length; i++) {
        checkTopicFilter(topics[i]);
        rl += 2 + strLen(topics[i]);
      }
      const b = alloc(0xa2, rl),
        q = b.length - rl;
      b[q] = p.id >> 8;
      b[q + 1] = p.id & 0xff;
      let i = q + 2;
      for (let k = 0; k < topics.length; k++) i = writeStr(topics[k], b, i);
      return b;
    }
  }
  const type = (p as { type: unknown }).type;
  if (type === CONNACK || type === SUBACK || type === UNSUBACK || type === PINGRESP)
    fail("INVALID_PACKET", `packet type ${type} is sent by a broker, not by a client`);
  if (type === PUBREC || type === PUBREL || type === PUBCOMP)
    fail("QOS2_UNSUPPORTED", "PUBREC, PUBREL and PUBCOMP belong to QoS 2, which is not supported");
  return fail("INVALID_PACKET", `unknown packet type ${String(type)}`);
}

/** Why a level-5 CONNECT or CONNACK cannot be handled without the mqtt5 module. */
export const NO_MQTT5 =
  "MQTT 5.0 needs the mqtt5 module (src/mqtt/mqtt5.ts): pass { mqtt5 } with level 5, or use level 4 (3.1.1)";

const MQISDP: readonly number[] = Object.freeze([0, 6, 0x4d, 0x51, 0x49, 0x73, 0x64, 0x70]);
const MQTT: readonly number[] = Object.freeze([0, 4, 0x4d, 0x51, 0x54, 0x54]);

function encodeConnect(p: Extract<Packet, { type: typeof CONNECT }>, m: Mqtt5Codec | undefined): Uint8Array {
  const level = p.level;
  if (level !== 3 && level !== 4 && level !== 5)
    fail(
      "PROTOCOL_MISMATCH",
      `protocol level ${String(level)} is not supported: use 3 (MQTT 3.1), 4 (MQTT 3.1.1) or 5`,
    );
  const v5 = level === 5;
  if (v5 && !m) fail("PROTOCOL_MISMATCH", NO_MQTT5);
  // MQTT 3.1 requires a client ID; 3.1.1 allows an empty one only with a clean session [MQTT-3.1.3-7]
  if (!p.clientId && (level === 3 || (level === 4 && !p.clean)))
    fail("INVALID_PACKET", "an empty client ID needs MQTT 3.1.1 with a clean session, or MQTT 5.0");
  const ka = p.keepalive;
  if (typeof ka !== "number" || ka < 0 || ka > 0xffff || (ka | 0) !== ka)
    fail("INVALID_PACKET", "keepalive must be an integer from 0 to 65535 seconds");
  const name = level === 3 ? MQISDP : MQTT;
  const pl = v5 ? (m as Mqtt5Codec).propertiesLength(p.properties, false) : 0;
  let rl = name.length + 4 + (v5 ? varintSize(pl) + pl : 0) + 2 + strLen(p.clientId);
  let flags = p.clean ? 2 : 0;
  const will = p.will;
  let wl = 0,
    wtl = 0,
    wpl = 0;
  if (will) {
    const wq = checkQos(will.qos);
    checkTopicName(will.topic);
    wtl = strLen(will.topic);
    wpl = binLen(will.payload);
    if (v5) {
      wl = (m as Mqtt5Codec).propertiesLength(will.properties, true);
      rl += varintSize(wl) + wl;
    }
    rl += 4 + wtl + wpl;
    flags |= 4 | (wq << 3) | (will.retain ? 0x20 : 0);
  }
  let ul = 0,
    pwl = 0;
  if (p.username !== undefined) {
    ul = strLen(p.username);
    rl += 2 + ul;
    flags |= 0x80;
  }
  if (p.password !== undefined) {
    if (p.username === undefined && !v5)
      fail("INVALID_PACKET", "MQTT 3.1/3.1.1 do not allow a password without a user name");
    pwl = binLen(p.password);
    rl += 2 + pwl;
    flags |= 0x40;
  }
  const b = alloc(0x10, rl),
    q = b.length - rl;
  b.set(name, q);
  let i = q + name.length;
  b[i++] = level;
  b[i++] = flags;
  b[i++] = ka >> 8;
  b[i++] = ka & 0xff;
  if (v5) i = (m as Mqtt5Codec).writeProperties(p.properties, pl, b, i, false);
  i = writeStr(p.clientId, b, i);
  if (will) {
    if (v5) i = (m as Mqtt5Codec).writeProperties(will.properties, wl, b, i, true);
    i = writeStr(will.topic, b, i);
    i = writeBin(will.payload, wpl, b, i);
  }
  if (p.username !== undefined) i = writeStr(p.username, b, i);
  if (p.password !== undefined) writeBin(p.password, pwl, b, i);
  return b;
}
