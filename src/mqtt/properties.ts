/**
 * MQTT 5.0 properties: one table for every packet, so the later 5.0 packets reuse it. Decoding keeps the wire
 * order of keys, and encoding writes keys in object order, so decode-then-encode is byte-exact.
 */
import { fail } from "./errors";
import { strLen, writeStr } from "./utf8";
import { varintSize, writeVarint } from "./encode";
import type { Reader } from "./reader";

// Every one-byte property of MQTT 5.0 is 0 or 1; any other value is a Protocol Error (e.g. 3.1.2.11.6, 3.2.2.3.4).
const BYTE = 0,
  U16 = 1,
  U32 = 2,
  VARINT = 3,
  STR = 4,
  BIN = 5,
  PAIR = 6;

type Entry = readonly [id: number, name: string, kind: number];

// Frozen, and each entry too: the table is reachable from the preloaded client, so the XS linker can keep it in
// flash (ROM) only when nothing in it can be written.
const TABLE: readonly Entry[] = Object.freeze(
  (
    [
      [0x01, "payloadFormatIndicator", BYTE],
      [0x02, "messageExpiryInterval", U32],
      [0x03, "contentType", STR],
      [0x08, "responseTopic", STR],
      [0x09, "correlationData", BIN],
      [0x0b, "subscriptionIdentifier", VARINT],
      [0x11, "sessionExpiryInterval", U32],
      [0x12, "assignedClientIdentifier", STR],
      [0x13, "serverKeepAlive", U16],
      [0x15, "authenticationMethod", STR],
      [0x16, "authenticationData", BIN],
      [0x17, "requestProblemInformation", BYTE],
      [0x18, "willDelayInterval", U32],
      [0x19, "requestResponseInformation", BYTE],
      [0x1a, "responseInformation", STR],
      [0x1c, "serverReference", STR],
      [0x1f, "reasonString", STR],
      [0x21, "receiveMaximum", U16],
      [0x22, "topicAliasMaximum", U16],
      [0x23, "topicAlias", U16],
      [0x24, "maximumQoS", BYTE],
      [0x25, "retainAvailable", BYTE],
      [0x26, "userProperties", PAIR],
      [0x27, "maximumPacketSize", U32],
      [0x28, "wildcardSubscriptionAvailable", BYTE],
      [0x29, "subscriptionIdentifiersAvailable", BYTE],
      [0x2a, "sharedSubscriptionAvailable", BYTE],
    ] as [number, string, number][]
  ).map((e): Entry => Object.freeze(e)),
);

/** Which property ids each packet (or the will) may carry. */
export const IN_CONNECT: readonly number[] = Object.freeze([0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26, 0x15, 0x16]);
export const IN_WILL: readonly number[] = Object.freeze([0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26]);
export const IN_CONNACK: readonly number[] = Object.freeze([
  0x11, 0x21, 0x24, 0x25, 0x27, 0x12, 0x22, 0x1f, 0x26, 0x28, 0x29, 0x2a, 0x13, 0x1a, 0x1c, 0x15, 0x16,
]);

type Props = object;
type Dict = { [name: string]: unknown };

function byName(name: string, allowed: readonly number[]): Entry {
  for (let i = 0; i < TABLE.length; i++) {
    const e = TABLE[i];
    if (e[1] === name && allowed.indexOf(e[0]) >= 0) return e;
  }
  return fail("INVALID_PROPERTY", `property "${name}" is not allowed here`);
}

function sizeOf(kind: number, v: unknown, name: string): number {
  switch (kind) {
    case BYTE:
      return (checkInt(v, 1, name), 1);
    case U16:
      return (checkInt(v, 0xffff, name), 2);
    case U32:
      return (checkInt(v, 0xffffffff, name), 4);
    case VARINT:
      return (checkInt(v, 268435455, name), varintSize(v as number));
    case STR:
      return 2 + strLen(v as string);
    case BIN: {
      const n = (v as Uint8Array).length;
      if (!(n <= 0xffff)) fail("INVALID_PROPERTY", `property ${name} must be at most 65535 bytes`);
      return 2 + n;
    }
  }
  let n = 0; // PAIR: a list of [name, value]
  const list = v as [string, string][];
  for (let i = 0; i < list.length; i++) n += 1 + 4 + strLen(list[i][0]) + strLen(list[i][1]);
  return n;
}

function checkInt(v: unknown, max: number, name: string): void {
  if (typeof v !== "number" || v < 0 || v > max || Math.floor(v) !== v)
    fail("INVALID_PROPERTY", `property ${name} must be an integer from 0 to ${max}`);
}

/** Byte length of the encoded properties, not counting their own length prefix. */
export function propertiesLength(props: Props | undefined, allowed: readonly number[]): number {
  if (!props) return 0;
  let n = 0;
  for (const name in props) {
    const v = (props as Dict)[name];
    if (v === undefined) continue;
    const e = byName(name, allowed);
    n += (e[2] === PAIR ? 0 : 1) + sizeOf(e[2], v, name);
  }
  return n;
}

/** Writes the properties (length prefix included) at `p`; `len` is propertiesLength's answer. */
export function writeProperties(
  props: Props | undefined,
  len: number,
  b: Uint8Array,
  p: number,
  allowed: readonly number[],
): number {
  p = writeVarint(len, b, p);
  if (!props) return p;
  for (const name in props) {
    const v = (props as Dict)[name];
    if (v === undefined) continue;
    const [id, , kind] = byName(name, allowed);
    if (kind === PAIR) {
      const list = v as [string, string][];
      for (let i = 0; i < list.length; i++) {
        b[p++] = id;
        p = writeStr(list[i][1], b, writeStr(list[i][0], b, p));
      }
      continue;
    }
    b[p++] = id;
    const n = v as number;
    switch (kind) {
      case BYTE:
        b[p++] = n;
        break;
      case U16:
        b[p++] = n >> 8;
        b[p++] = n & 0xff;
        break;
      case U32:
        b[p++] = n >>> 24;
        b[p++] = (n >> 16) & 0xff;
        b[p++] = (n >> 8) & 0xff;
        b[p++] = n & 0xff;
        break;
      case VARINT:
        p = writeVarint(n, b, p);
        break;
      case STR:
        p = writeStr(v as string, b, p);
        break;
      default: {
        const d = v as Uint8Array;
        b[p++] = d.length >> 8;
        b[p++] = d.length & 0xff;
        b.set(d, p);
        p += d.length;
      }
    }
  }
  return p;
}

/** Reads a property block (length prefix included); undefined when it is empty. */
export function readProperties(r: Reader, allowed: readonly number[]): Dict | undefined {
  const len = r.varint();
  if (len === 0) return undefined;
  const end = r.pos + len;
  if (end > r.end) fail("TRUNCATED", "MQTT 5.0 properties run past the end of the packet");
  const props: Dict = {};
  while (r.pos < end) {
    const id = r.varint();
    let e: Entry | undefined;
    for (let i = 0; i < TABLE.length; i++) if (TABLE[i][0] === id) e = TABLE[i];
    if (!e || allowed.indexOf(id) < 0)
      fail("INVALID_PROPERTY", `property 0x${id.toString(16)} is unknown or not allowed in this packet`);
    const name = e[1];
    let v: unknown;
    switch (e[2]) {
      case BYTE:
        v = r.u8();
        if ((v as number) > 1) fail("INVALID_PROPERTY", `property ${name} must be 0 or 1`);
        break;
      case U16:
        v = r.u16();
        break;
      case U32:
        v = r.u32();
        break;
      case VARINT:
        v = r.varint();
        break;
      case STR:
        v = r.str();
        break;
      case BIN:
        v = r.bin();
        break;
      default: {
        const pair: [string, string] = [r.str(), r.str()];
        const list = (props[name] as [string, string][] | undefined) ?? ((props[name] = []) as [string, string][]);
        list.push(pair);
        continue;
      }
    }
    if (props[name] !== undefined) fail("INVALID_PROPERTY", `property ${name} appears twice`);
    props[name] = v;
  }
  if (r.pos !== end) fail("INVALID_PROPERTY", "MQTT 5.0 properties overrun their declared length");
  return props;
}
