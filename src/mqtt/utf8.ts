/**
 * UTF-8 for MQTT strings without TextEncoder/TextDecoder (XS on a device may have neither).
 * MQTT forbids U+0000 and ill-formed UTF-8 (including encoded surrogates) in every string.
 */
import { fail } from "./errors";

/**
 * String.prototype.charCodeAt, called with .call: on XS, reading a property of a primitive string (s.charCodeAt,
 * s.length, s[i]) makes a String wrapper object, two heap slots (32 bytes on a device) of garbage per character;
 * calling the method through .call makes none. V8 allocates nothing either way.
 */
const charCodeAt = String.prototype.charCodeAt;

/** Arguments per String.fromCharCode.apply call: small enough for the XS stack on an ESP8266. */
const CHUNK = 128;

/**
 * Byte length of `s` as UTF-8; throws INVALID_STRING for a lone surrogate, and for U+0000 unless `data` is set
 * (a payload or password is bytes, where U+0000 is an ordinary character; only MQTT strings forbid it).
 */
export function utf8Length(s: string, data?: boolean): number {
  const n = s.length;
  let len = n;
  for (let i = 0; i < n; i++) {
    const c = charCodeAt.call(s, i);
    if (c < 0x80) {
      if (c === 0 && !data) fail("INVALID_STRING", "string contains U+0000, which MQTT forbids");
    } else if (c < 0x800) len += 1;
    else if (c >= 0xd800 && c <= 0xdfff) {
      const d = c <= 0xdbff && i + 1 < n ? charCodeAt.call(s, i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff)
        fail("INVALID_STRING", "string contains a lone UTF-16 surrogate, which is not valid UTF-8");
      len += 2; // 4 bytes for 2 UTF-16 units
      i++;
    } else len += 2;
  }
  return len;
}

/** Byte length of `s` as an MQTT string (UTF-8, at most 65535 bytes); throws INVALID_STRING otherwise. */
export function strLen(s: string): number {
  const n = utf8Length(s);
  if (n > 0xffff) fail("INVALID_STRING", "string is longer than 65535 bytes");
  return n;
}

/** Writes `s` (measured by strLen) as an MQTT string, its 2-byte length first, at `p`; returns the position after it. */
export function writeStr(s: string, b: Uint8Array, p: number): number {
  const end = writeUtf8(s, b, p + 2);
  const n = end - p - 2;
  b[p] = n >> 8;
  b[p + 1] = n & 0xff;
  return end;
}

/** Writes `s` (already checked by utf8Length) as UTF-8 at `pos`; returns the position after it. */
export function writeUtf8(s: string, b: Uint8Array, pos: number): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    let c = charCodeAt.call(s, i);
    if (c < 0x80) b[pos++] = c;
    else if (c < 0x800) {
      b[pos++] = 0xc0 | (c >> 6);
      b[pos++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdbff) {
      c = 0x10000 + ((c - 0xd800) << 10) + (charCodeAt.call(s, ++i) - 0xdc00);
      b[pos++] = 0xf0 | (c >> 18);
      b[pos++] = 0x80 | ((c >> 12) & 0x3f);
      b[pos++] = 0x80 | ((c >> 6) & 0x3f);
      b[pos++] = 0x80 | (c & 0x3f);
    } else {
      b[pos++] = 0xe0 | (c >> 12);
      b[pos++] = 0x80 | ((c >> 6) & 0x3f);
      b[pos++] = 0x80 | (c & 0x3f);
    }
  }
  return pos;
}

/** UTF-8 bytes of a string, for callers that need them outside a packet. */
export function utf8Bytes(s: string): Uint8Array {
  const b = new Uint8Array(utf8Length(s));
  writeUtf8(s, b, 0);
  return b;
}

function fromCodes(codes: ArrayLike<number>, start: number, end: number): string {
  if (end - start <= CHUNK) return String.fromCharCode.apply(null, sub(codes, start, end));
  let s = "";
  for (let p = start; p < end; p += CHUNK)
    s += String.fromCharCode.apply(null, sub(codes, p, Math.min(end, p + CHUNK)));
  return s;
}

function sub(codes: ArrayLike<number>, start: number, end: number): number[] {
  return (codes instanceof Uint8Array
    ? codes.subarray(start, end)
    : (codes as number[]).slice(start, end)) as unknown as number[];
}

function bad(): never {
  fail("INVALID_STRING", "string is not well-formed UTF-8 or contains U+0000");
}

/** Decodes and validates UTF-8 in b[start, end). */
export function decodeUtf8(b: Uint8Array, start: number, end: number): string {
  let i = start;
  while (i < end) {
    const c = b[i];
    if (c === 0 || c > 0x7f) break;
    i++;
  }
  if (i === end) return fromCodes(b, start, end);
  if (b[i] === 0) bad();
  const units: number[] = [];
  for (let k = start; k < i; k++) units.push(b[k]);
  while (i < end) {
    const c = b[i++];
    if (c < 0x80) {
      if (c === 0) bad();
      units.push(c);
      continue;
    }
    let cp: number, need: number, min: number;
    if (c >= 0xc2 && c <= 0xdf) {
      cp = c & 0x1f;
      need = 1;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      cp = c & 0x0f;
      need = 2;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      cp = c & 0x07;
      need = 3;
      min = 0x10000;
    } else bad();
    if (i + need > end) bad();
    while (need-- > 0) {
      const d = b[i++];
      if ((d & 0xc0) !== 0x80) bad();
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) bad();
    if (cp >= 0x10000) {
      cp -= 0x10000;
      units.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    } else units.push(cp);
  }
  return fromCodes(units, 0, units.length);
}
