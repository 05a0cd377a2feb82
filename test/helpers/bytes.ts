// Small builders for hand-made MQTT bytes in tests.
import { Decoder, MqttError, type DecoderOptions, type Packet } from "../../src/mqtt/codec.ts";

/** A length-prefixed string (or raw bytes) as an MQTT field. */
export function str(s: string | number[]): number[] {
  const b = typeof s === "string" ? [...Buffer.from(s, "utf8")] : s;
  return [b.length >> 8, b.length & 0xff, ...b];
}

/** The remaining length as a variable byte integer. */
export function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let d = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) d |= 0x80;
    out.push(d);
  } while (n > 0);
  return out;
}

/** A whole packet: first byte, remaining length, body. */
export function frame(h: number, body: number[] = []): Uint8Array {
  return new Uint8Array([h, ...varint(body.length), ...body]);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) {
    out.set(p, i);
    i += p.length;
  }
  return out;
}

/** Decodes `bytes` in one push and finish(); returns the packets or throws what the decoder throws. */
export function decode(bytes: Uint8Array, options: DecoderOptions = {}): Packet[] {
  const out: Packet[] = [];
  const d = new Decoder((p) => out.push(p), options);
  d.push(bytes);
  d.finish();
  return out;
}

/** The MqttError code decoding `bytes` fails with (any other throw fails the test), or null if it decodes. */
export function decodeError(bytes: Uint8Array, options: DecoderOptions = {}): string | null {
  try {
    decode(bytes, options);
    return null;
  } catch (e) {
    if (e instanceof MqttError) return e.code;
    throw e;
  }
}

/** The MqttError code `fn` throws (any other throw is re-thrown), or null if it returns. */
export function errorCode(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    if (e instanceof MqttError) return e.code;
    throw e;
  }
}

export const MQTT = str("MQTT");
export const MQISDP = str("MQIsdp");

/** CONNECT body: protocol name and level, flags, keepalive, then the rest. */
export function connectBody(
  level: number,
  flags: number,
  rest: number[] = str("c"),
  name = level === 3 ? MQISDP : MQTT,
): number[] {
  return [...name, level, flags, 0, 60, ...rest];
}
