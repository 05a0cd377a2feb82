// mqtt-packet's own test suite as an external conformance corpus, and an adapter between its packet objects and
// our packet model.
//
// node_modules/mqtt-packet/test.js is evaluated with a stub `require` ('tape' is a no-op test(), './' is the real
// mqtt-packet) and with overriding declarations of its fixture helpers appended: in sloppy-mode function code the
// last declaration of a name wins, so every testParseGenerate(...) call in the file records a fixture instead of
// declaring tape tests. Inline tape tests (test('...', t => ...)) are not fixtures and are not run.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type * as MqttPacketModule from "mqtt-packet";
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
  type Packet,
  type ProtocolLevel,
  type UserProperty,
} from "../../src/mqtt/packets.ts";

const require = createRequire(import.meta.url);
export const mqttPacket: typeof MqttPacketModule = require("mqtt-packet");

/** mqtt-packet's packet objects are loose by nature (fixtures even hold wrong types on purpose). */
// biome-ignore lint/suspicious/noExplicitAny: what Loose means
export type Loose = any;

export type FixtureKind = "parseGenerate" | "generateOnly" | "parseOnly" | "parseError" | "generateError";

export interface Fixture {
  kind: FixtureKind;
  /** The mqtt-packet helper that declared it. */
  helper: string;
  name: string;
  /** What mqtt-packet's generate is given (generate kinds). */
  object?: Loose;
  /** What mqtt-packet's parser must produce (parse kinds). */
  parsed?: Loose;
  buffer?: Buffer;
  opts?: Loose;
}

const OVERRIDES = `
function testParseGenerate (name, object, buffer, opts) { __rec({ kind: 'parseGenerate', helper: 'testParseGenerate', name, object, parsed: object, buffer, opts }) }
function testGenerateOnly (name, object, buffer, opts) { __rec({ kind: 'generateOnly', helper: 'testGenerateOnly', name, object, buffer, opts }) }
function testParseOnly (name, object, buffer, opts) { __rec({ kind: 'parseOnly', helper: 'testParseOnly', name, parsed: object, buffer, opts }) }
function testParseError (expected, fixture, opts) { __rec({ kind: 'parseError', helper: 'testParseError', name: expected, buffer: fixture, opts }) }
function testGenerateError (expected, fixture, opts, name) { __rec({ kind: 'generateError', helper: 'testGenerateError', name: name || expected, object: fixture, opts }) }
function testGenerateErrorMultipleCmds (cmds, expected, fixture, opts) {
  cmds.forEach(cmd => __rec({ kind: 'generateError', helper: 'testGenerateErrorMultipleCmds', name: expected + ' on ' + cmd, object: Object.assign({}, fixture, { cmd }), opts }))
}
function testParseGenerateDefaults (name, object, buffer, generated, opts) { __rec({ kind: 'parseGenerate', helper: 'testParseGenerateDefaults', name, object, parsed: generated, buffer, opts }) }
function testParseAndGenerate (name, object, buffer, opts) { __rec({ kind: 'parseGenerate', helper: 'testParseAndGenerate', name, object, parsed: object, buffer, opts }) }
function testWriteToStreamError (expected, fixture) { __rec({ kind: 'generateError', helper: 'testWriteToStreamError', name: 'writeToStream ' + expected, object: fixture }) }
`;

/**
 * A Buffer for test.js whose results are byte-identical to the real one, except that a large zero-filled
 * Buffer.alloc stays untouched (the OS maps its pages lazily) and Buffer.concat does not copy such zeros into
 * its (also zero-filled) result. The 256 MB "Max payload publish packet" fixture then costs no memory to load.
 */
function lazyBuffer(): unknown {
  const BIG = 1 << 24;
  const zeros = new WeakSet<Uint8Array>();
  return {
    from: (...a: Parameters<typeof Buffer.from>) => Buffer.from(...a),
    alloc: (n: number, ...rest: unknown[]) => {
      if (rest.length || n < BIG) return (Buffer.alloc as (...x: unknown[]) => Buffer)(n, ...rest);
      const b = Buffer.alloc(n);
      zeros.add(b);
      return b;
    },
    concat: (list: Uint8Array[], total?: number) => {
      const n = total ?? list.reduce((s, b) => s + b.length, 0);
      if (n < BIG) return Buffer.concat(list, total);
      const out = Buffer.alloc(n);
      let p = 0;
      for (const b of list) {
        if (!zeros.has(b)) out.set(b.subarray(0, Math.min(b.length, n - p)), p);
        p += b.length;
      }
      return out;
    },
  };
}

let cache: Fixture[] | undefined;

/** Every fixture of mqtt-packet's test.js, in file order. */
export function loadFixtures(): Fixture[] {
  if (cache) return cache;
  const path = require.resolve("mqtt-packet/test.js");
  const source = readFileSync(path, "utf8");
  const out: Fixture[] = [];
  const stubRequire = (id: string): unknown => {
    if (id === "tape") return () => {};
    if (id === "./") return mqttPacket;
    if (id === "readable-stream") return { Writable: function Writable() {} };
    return require(id);
  };
  const run = new Function("require", "Buffer", "__rec", source + OVERRIDES) as (
    r: unknown,
    b: unknown,
    rec: (f: Fixture) => void,
  ) => void;
  run(stubRequire, lazyBuffer(), (f) => out.push(f));
  cache = out;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Adapter

export const REASON = {
  QOS2: "QoS 2 is not supported, by design (README: QoS 2 and PUBREC/PUBREL/PUBCOMP are a QOS2_UNSUPPORTED error)",
  BRIDGE:
    "MQTT bridge mode (protocol level | 0x80, a Mosquitto extension) is not part of MQTT 3.1/3.1.1/5.0: not supported",
  V5_SCOPE: "MQTT 5.0 packets other than CONNECT/CONNACK (and PINGREQ/PINGRESP) are not in scope yet",
  PROTOCOL_ID:
    "a protocol name other than the level's own cannot be expressed: the model derives it from the level (3 = MQIsdp, 4/5 = MQTT)",
} as const;

/** Turns an excluded fixture into a close variant we do support: the same change to its object and its bytes. */
export interface Derivation {
  what: string;
  object: (m: Loose) => Loose;
  bytes: (b: Buffer) => Buffer;
}

/** `b` with the only occurrence of `from` replaced by `to` (fails if there is not exactly one). */
function replaceOnce(b: Buffer, from: number[], to: number[]): Buffer {
  const at = b.indexOf(Buffer.from(from));
  if (at < 0 || b.indexOf(Buffer.from(from), at + 1) >= 0)
    throw new Error(`expected one ${Buffer.from(from).toString("hex")}`);
  const out = Buffer.from(b);
  out.set(to, at);
  return out;
}

const MAXIMUM_QOS_1: Derivation = {
  what: "Maximum QoS 2 -> 1",
  object: (m) => ({ ...m, properties: { ...m.properties, maximumQoS: 1 } }),
  bytes: (b) => replaceOnce(b, [0x24, 2], [0x24, 1]),
};

const MAXIMUM_QOS =
  'mqtt-packet sends and accepts Maximum QoS 2 in a 5.0 CONNACK; MQTT 5.0 3.2.2.3.4 allows only 0 or 1 ("It is a ' +
  'Protocol Error to ... have a value other than 0 or 1"; a server that supports QoS 2 leaves it out). We refuse it ' +
  "both ways (INVALID_PROPERTY)";

/** Fixtures mqtt-packet accepts but the spec forbids; our codec refuses them (the test checks it does). */
export const STRICTER: Record<string, { reason: string; derive?: Derivation }> = {
  "Version 5 CONNACK test 1": {
    reason:
      "mqtt-packet accepts a 5.0 CONNACK without its Connect Reason Code (remaining length 1); MQTT 5.0 section 3.2.2 " +
      "requires the reason code: only PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT and AUTH may omit theirs " +
      "(MQTT 5.0 3.4.2.1, 3.14.2.1). We throw TRUNCATED",
  },
  "connack MQTT 5 with properties": { reason: MAXIMUM_QOS, derive: MAXIMUM_QOS_1 },
  "connack MQTT 5 with properties and doubled user properties": { reason: MAXIMUM_QOS, derive: MAXIMUM_QOS_1 },
};

/** QoS 2 -> 1 in a fixture's object and bytes (see downgradeObject and downgradeBytes below). */
export const QOS2_TO_1: Derivation = {
  what: "QoS 2 -> 1",
  object: (m) => downgradeObject(m),
  bytes: (b) => downgradeBytes(b),
};

export class Unsupported extends Error {}

export interface AdaptOptions {
  /** Protocol level of the connection (mqtt-packet's opts.protocolVersion); CONNECT carries its own. */
  level: ProtocolLevel;
  /** Replace QoS 2 by QoS 1 instead of refusing the packet (for derived fixtures and generate-error fixtures). */
  downgrade?: boolean;
}

export function fixtureLevel(opts: Loose): ProtocolLevel {
  const v = opts?.protocolVersion;
  return v === 5 ? 5 : v === 3 ? 3 : 4;
}

function bytes(v: Loose): Loose {
  return Buffer.isBuffer(v) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : v;
}

function text(v: Loose): Loose {
  return Buffer.isBuffer(v) ? v.toString("utf8") : v;
}

function qosOf(q: Loose, o: AdaptOptions): Loose {
  if (q === 2) {
    if (!o.downgrade) throw new Unsupported(REASON.QOS2);
    return 1;
  }
  return q;
}

/** mqtt-packet's user properties object ({ name: value | value[] }) as our ordered pairs. */
export function pairsFromObject(up: Loose): UserProperty[] {
  const pairs: UserProperty[] = [];
  for (const name of Object.keys(up)) {
    const v = up[name];
    for (const x of Array.isArray(v) ? v : [v]) pairs.push([name, String(x)]);
  }
  return pairs;
}

function props(p: Loose): Loose {
  if (p === undefined || p === null) return undefined;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(p)) {
    const v = p[k];
    if (v === undefined) continue;
    if (k === "userProperties") out[k] = pairsFromObject(v);
    else if (typeof v === "boolean") out[k] = v ? 1 : 0;
    else out[k] = bytes(v);
  }
  return out;
}

/** MQTT 5.0's AUTH, which the packet model does not have. */
const AUTH = 15;

const CMDS: Record<string, number> = {
  connect: CONNECT,
  connack: CONNACK,
  publish: PUBLISH,
  puback: PUBACK,
  pubrec: PUBREC,
  pubrel: PUBREL,
  pubcomp: PUBCOMP,
  subscribe: SUBSCRIBE,
  suback: SUBACK,
  unsubscribe: UNSUBSCRIBE,
  unsuback: UNSUBACK,
  pingreq: PINGREQ,
  pingresp: PINGRESP,
  disconnect: DISCONNECT,
  auth: AUTH,
};

/** mqtt-packet object -> our packet model. Throws Unsupported with a reason for what the model cannot carry. */
export function toModel(m: Loose, o: AdaptOptions): { packet: Packet; level: ProtocolLevel } {
  const type = CMDS[m?.cmd];
  let level = o.level;
  if (type === CONNECT) {
    level = (m.protocolVersion ?? 4) as ProtocolLevel;
    if (m.bridgeMode) throw new Unsupported(REASON.BRIDGE);
    const pid = m.protocolId ?? "MQTT";
    if ((level === 3 || level === 4 || level === 5) && pid !== (level === 3 ? "MQIsdp" : "MQTT"))
      throw new Unsupported(REASON.PROTOCOL_ID);
  } else if (level === 5 && type !== CONNACK && type !== PINGREQ && type !== PINGRESP) {
    throw new Unsupported(REASON.V5_SCOPE);
  }
  if (type === PUBREC || type === PUBREL || type === PUBCOMP) {
    if (!o.downgrade) throw new Unsupported(REASON.QOS2);
  }
  if (type === AUTH) throw new Unsupported(REASON.V5_SCOPE);
  let p: Loose;
  switch (type) {
    case CONNECT: {
      p = { type, level, clientId: text(m.clientId || ""), clean: m.clean ?? true, keepalive: m.keepalive ?? 0 };
      if (level === 5 && m.properties !== undefined) p.properties = props(m.properties);
      if (m.will !== undefined && m.will !== null) {
        const w = m.will;
        if (typeof w !== "object") p.will = w;
        else {
          p.will = {
            topic: text(w.topic),
            payload: bytes(w.payload ?? new Uint8Array(0)),
            qos: qosOf(w.qos ?? 0, o),
            retain: !!w.retain,
          };
          if (level === 5 && w.properties !== undefined) p.will.properties = props(w.properties);
        }
      }
      if (m.username !== undefined && m.username !== null) p.username = text(m.username);
      if (m.password !== undefined && m.password !== null) p.password = bytes(m.password);
      break;
    }
    case CONNACK:
      p = {
        type,
        sessionPresent: !!m.sessionPresent,
        returnCode: level === 5 ? (m.reasonCode ?? m.returnCode) : (m.returnCode ?? m.reasonCode),
      };
      if (level === 5 && m.properties !== undefined) p.properties = props(m.properties);
      break;
    case PUBLISH: {
      const qos = qosOf(m.qos ?? 0, o);
      p = {
        type,
        topic: text(m.topic),
        payload: bytes(m.payload ?? new Uint8Array(0)),
        qos,
        retain: !!m.retain,
        dup: !!m.dup,
      };
      if (qos) p.id = m.messageId;
      break;
    }
    case PUBACK:
    case UNSUBACK:
      p = { type, id: m.messageId };
      break;
    case PUBREC:
    case PUBREL:
    case PUBCOMP:
      p = { type, id: m.messageId };
      break;
    case SUBSCRIBE:
      p = {
        type,
        id: m.messageId,
        subscriptions: Array.isArray(m.subscriptions)
          ? m.subscriptions.map((s: Loose) => ({ topic: text(s.topic), qos: qosOf(s.qos, o) }))
          : m.subscriptions,
      };
      break;
    case SUBACK:
      p = { type, id: m.messageId, granted: m.granted };
      break;
    case UNSUBSCRIBE:
      p = { type, id: m.messageId, topics: m.unsubscriptions };
      break;
    case PINGREQ:
    case PINGRESP:
    case DISCONNECT:
      p = { type };
      break;
    default:
      p = { type: m?.cmd }; // unknown command: the encoder must refuse it
  }
  return { packet: p as Packet, level };
}

/** Groups pairs by name in the key order of a JS object, which is how mqtt-packet writes them. */
export function userPropertiesObject(pairs: UserProperty[]): Record<string, string | string[]> {
  const o: Record<string, string | string[]> = Object.create(null);
  for (const [k, v] of pairs) {
    const cur = o[k];
    o[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
  }
  return o;
}

/** The order mqtt-packet writes user properties in: grouped by name, names in JS object key order. */
export function mqttPacketPairOrder(pairs: UserProperty[]): UserProperty[] {
  return pairsFromObject(userPropertiesObject(pairs));
}

const BOOLEAN_PROPS = new Set([
  "requestResponseInformation",
  "requestProblemInformation",
  "payloadFormatIndicator",
  "retainAvailable",
  "wildcardSubscriptionAvailable",
  "subscriptionIdentifiersAvailable",
  "sharedSubscriptionAvailable",
]);

function mpProps(p: Loose): Loose {
  if (!p) return undefined;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(p)) {
    const v = p[k];
    if (v === undefined) continue;
    if (k === "userProperties") out[k] = userPropertiesObject(v);
    else if (BOOLEAN_PROPS.has(k)) out[k] = v === 1;
    else out[k] = v instanceof Uint8Array ? Buffer.from(v) : v;
  }
  return out;
}

const buf = (v: Uint8Array | string) => (typeof v === "string" ? Buffer.from(v, "utf8") : Buffer.from(v));

/** Our packet model -> mqtt-packet object and generate options. */
export function fromModel(p: Packet, level: ProtocolLevel): { object: Loose; opts: Loose } {
  const opts = { protocolVersion: level };
  const NAMES = Object.keys(CMDS);
  const cmd = NAMES[p.type - 1];
  switch (p.type) {
    case CONNECT: {
      const o: Loose = {
        cmd,
        protocolId: p.level === 3 ? "MQIsdp" : "MQTT",
        protocolVersion: p.level,
        clean: p.clean,
        keepalive: p.keepalive,
        clientId: p.clientId,
      };
      if (p.properties) o.properties = mpProps(p.properties);
      if (p.will) {
        o.will = { topic: p.will.topic, payload: buf(p.will.payload), qos: p.will.qos, retain: p.will.retain };
        if (p.will.properties) o.will.properties = mpProps(p.will.properties);
      }
      if (p.username !== undefined) o.username = p.username;
      if (p.password !== undefined) o.password = buf(p.password);
      return { object: o, opts: { protocolVersion: p.level } };
    }
    case CONNACK: {
      const o: Loose = { cmd, sessionPresent: p.sessionPresent };
      if (level === 5) o.reasonCode = p.returnCode;
      else o.returnCode = p.returnCode;
      if (level === 5 && p.properties) o.properties = mpProps(p.properties);
      return { object: o, opts };
    }
    case PUBLISH: {
      const o: Loose = { cmd, topic: p.topic, payload: buf(p.payload), qos: p.qos, retain: p.retain, dup: p.dup };
      if (p.qos) o.messageId = p.id;
      return { object: o, opts };
    }
    case PUBACK:
    case UNSUBACK:
      return { object: { cmd, messageId: p.id }, opts };
    case SUBSCRIBE:
      return {
        object: { cmd, messageId: p.id, subscriptions: p.subscriptions.map((s) => ({ topic: s.topic, qos: s.qos })) },
        opts,
      };
    case SUBACK:
      return { object: { cmd, messageId: p.id, granted: [...p.granted] }, opts };
    case UNSUBSCRIBE:
      return { object: { cmd, messageId: p.id, unsubscriptions: [...p.topics] }, opts };
    default:
      return { object: { cmd }, opts };
  }
}

/** A fixture's bytes with every QoS 2 in it turned into QoS 1 (see AdaptOptions.downgrade). */
export function downgradeBytes(b: Buffer): Buffer {
  const out = Buffer.from(b);
  const type = out[0] >> 4;
  let i = 1;
  while (out[i] & 0x80) i++;
  i++; // first body byte
  if (type === PUBLISH && ((out[0] >> 1) & 3) === 2) out[0] = (out[0] & ~6) | 2;
  if (type === CONNECT) {
    const f = i + 2 + ((out[i] << 8) | out[i + 1]) + 1; // after the protocol name and level
    if (((out[f] >> 3) & 3) === 2) out[f] = (out[f] & ~0x18) | 0x08;
  }
  if (type === SUBSCRIBE) {
    for (let p = i + 2; p < out.length; ) {
      p += 2 + ((out[p] << 8) | out[p + 1]);
      if ((out[p] & 3) === 2) out[p] = (out[p] & ~3) | 1;
      p++;
    }
  }
  return out;
}

/** Whether a fixture object has a QoS 2 somewhere a downgrade would change. */
export function hasQos2(m: Loose): boolean {
  if (!m) return false;
  if (m.cmd === "publish" && m.qos === 2) return true;
  if (m.cmd === "connect" && m.will && m.will.qos === 2) return true;
  if (m.cmd === "subscribe" && Array.isArray(m.subscriptions) && m.subscriptions.some((s: Loose) => s.qos === 2))
    return true;
  return false;
}

/** Deep copy of a fixture object with QoS 2 replaced by 1 (what downgradeBytes does to its bytes). */
export function downgradeObject(m: Loose): Loose {
  const o = { ...m };
  if (o.cmd === "publish" && o.qos === 2) o.qos = 1;
  if (o.cmd === "connect" && o.will && o.will.qos === 2) o.will = { ...o.will, qos: 1 };
  if (o.cmd === "subscribe" && Array.isArray(o.subscriptions))
    o.subscriptions = o.subscriptions.map((s: Loose) => (s.qos === 2 ? { ...s, qos: 1 } : s));
  return o;
}

/**
 * mqtt-packet's parser loses a repeated user property whose earlier value is "" (parser.js tests the value it
 * already holds for truthiness), so it cannot read such a packet back correctly.
 */
export function mqttPacketLosesUserProperty(p: Packet): boolean {
  const lists =
    p.type === CONNECT
      ? [p.properties?.userProperties, p.will?.properties?.userProperties]
      : p.type === CONNACK
        ? [p.properties?.userProperties]
        : [];
  return lists.some((l) => l?.some(([k, v], i) => v === "" && l.slice(i + 1).some(([k2]) => k2 === k)));
}

/** `p` with its user properties in the order mqtt-packet's objects keep them (grouped by name). */
export function groupedUserProperties(p: Packet): Packet {
  const group = (props: Loose) =>
    props?.userProperties ? { ...props, userProperties: mqttPacketPairOrder(props.userProperties) } : props;
  if (p.type === CONNACK && p.properties) return { ...p, properties: group(p.properties) };
  if (p.type === CONNECT) {
    const q: Loose = { ...p };
    if (p.properties) q.properties = group(p.properties);
    if (p.will?.properties) q.will = { ...p.will, properties: group(p.will.properties) };
    return q;
  }
  return p;
}
