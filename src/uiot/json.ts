/**
 * JSON for the thing layer: payloads are bytes (UTF-8 via src/mqtt/utf8, no TextDecoder); what the device sends is
 * written in the exact field order of the platform's documentation; values are checked against the thing-model
 * rules before anything is sent.
 */
import { decodeUtf8, utf8Length } from "../mqtt/utf8";
import { UiotError } from "./errors";

/** What the application may send as a value. Thing model: booleans travel as 0/1, dates as ms timestamps. */
export type Value = number | string | boolean | Date | null | readonly Value[] | { readonly [key: string]: Value };
export type Params = { readonly [identifier: string]: Value };

/** Thing-model limits (UIoT Core documentation). */
export const LIMITS = Object.freeze({
  /** Properties per product, and so per post. */
  properties: 100,
  /** Parameters of one event or command (Output / Input). */
  params: 20,
  /** Bytes of a string value, UTF-8. */
  stringBytes: 2048,
  /** Items of an array value. */
  arrayItems: 128,
  /** Nesting of structs and arrays. */
  depth: 8,
} as const);

/**
 * Deepest nesting of objects and arrays accepted in a payload from the platform: the thing model's 8 levels of
 * structs and arrays, the envelope around them (Property, the identifier, Value) and room to spare. XS parses JSON
 * recursively on its own stack, which a board keeps small: about 3,900 levels end the whole engine (no `try`
 * catches that), a board's stack far fewer.
 */
export const MAX_PAYLOAD_DEPTH = 16;

/**
 * Throws BAD_PAYLOAD when the JSON text in `payload` nests objects and arrays deeper than `max`: one pass over the
 * bytes, before anything is parsed. Brackets inside strings do not count (UTF-8 keeps every byte of a multi-byte
 * character above 0x7f, so none is mistaken for one).
 */
export function checkDepth(payload: Uint8Array, what: string, max = MAX_PAYLOAD_DEPTH): void {
  let depth = 0,
    inString = false;
  for (let i = 0; i < payload.length; i++) {
    const c = payload[i];
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: the next byte is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max)
        throw new UiotError(
          "BAD_PAYLOAD",
          `${what}: the ${payload.length}-byte payload nests objects and arrays deeper than ${max} levels: not parsed`,
        );
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
}

/**
 * Parses a payload as a JSON object; BAD_PAYLOAD (naming `what`, never quoting the payload) when it is not one, or
 * when it nests deeper than MAX_PAYLOAD_DEPTH.
 */
export function parseObject(payload: Uint8Array, what: string): { [key: string]: unknown } {
  checkDepth(payload, what);
  let v: unknown;
  try {
    v = JSON.parse(decodeUtf8(payload, 0, payload.length));
  } catch {
    // Not the engine's message, nor the error as a cause: V8's quotes the text around the fault, and a payload
    // can hold a secret (password_reply carries the DeviceSecret).
    throw new UiotError("BAD_PAYLOAD", `${what}: the ${payload.length}-byte payload is not valid UTF-8 JSON`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw new UiotError("BAD_PAYLOAD", `${what}: the payload is JSON but not an object`);
  return v as { [key: string]: unknown };
}

/** A RetCode, sent as a number or a numeric string; undefined when absent or not an integer. */
export function retCodeOf(v: unknown): number | undefined {
  const n = typeof v === "string" && v !== "" ? Number(v) : v;
  return typeof n === "number" && Number.isInteger(n) ? n : undefined;
}

/** A RequestID (documented as a string; a number is accepted and read as its decimal form). */
export function requestIdOf(v: unknown): string | undefined {
  if (typeof v === "string" && v !== "") return v;
  if (typeof v === "number" && Number.isInteger(v)) return String(v);
  return undefined;
}

export function isObject(v: unknown): v is { [key: string]: unknown } {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function bad(message: string): never {
  throw new UiotError("INVALID_VALUE", message);
}

/** Throws INVALID_VALUE unless `id` matches [A-Za-z_][A-Za-z0-9_]{0,31}. */
export function checkIdentifier(id: unknown, what: string): string {
  if (typeof id !== "string" || id.length === 0 || id.length > 32)
    bad(
      `${what} ${JSON.stringify(id)} is not a thing-model identifier: 1 to 32 characters of [A-Za-z0-9_], not starting with a digit`,
    );
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    const ok = c === 0x5f || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (i > 0 && c >= 0x30 && c <= 0x39);
    if (!ok)
      bad(
        `${what} ${JSON.stringify(id)} is not a thing-model identifier: 1 to 32 characters of [A-Za-z0-9_], not starting with a digit`,
      );
  }
  return id;
}

/**
 * The JSON text of `v`. `tm` applies the thing-model rules (booleans as 0/1, identifiers as struct keys, string
 * and array limits, no null); without it, plain JSON (the shadow), with dates as ms either way.
 */
export function valueJson(v: unknown, tm: boolean, path: string, depth = 0): string {
  switch (typeof v) {
    case "number":
      if (!Number.isFinite(v)) bad(`${path}: ${String(v)} cannot be sent (JSON has no NaN or Infinity)`);
      return String(v);
    case "boolean":
      return tm ? (v ? "1" : "0") : v ? "true" : "false";
    case "string": {
      if (tm) {
        let n: number;
        try {
          n = utf8Length(v, true);
        } catch {
          bad(`${path}: the string contains a lone UTF-16 surrogate`);
        }
        if (n > LIMITS.stringBytes)
          bad(`${path}: the string has ${n} bytes of UTF-8; the thing model allows at most ${LIMITS.stringBytes}`);
      }
      return JSON.stringify(v);
    }
    case "object": {
      if (v === null) {
        if (tm) bad(`${path}: null is not a thing-model value`);
        return "null";
      }
      if (v instanceof Date) {
        const t = v.getTime();
        if (!Number.isFinite(t)) bad(`${path}: the date is invalid`);
        return String(t);
      }
      if (depth >= LIMITS.depth) bad(`${path}: nested more than ${LIMITS.depth} levels deep (a cycle?)`);
      if (Array.isArray(v)) {
        if (tm && (v.length < 1 || v.length > LIMITS.arrayItems))
          bad(`${path}: an array has 1 to ${LIMITS.arrayItems} items in the thing model, not ${v.length}`);
        let s = "[";
        for (let i = 0; i < v.length; i++) s += (i ? "," : "") + valueJson(v[i], tm, path, depth + 1);
        return s + "]";
      }
      return objectJson(v as { [key: string]: unknown }, tm, path, depth + 1, 0);
    }
  }
  return bad(`${path}: a ${typeof v} cannot be sent; use numbers, strings, booleans, dates, arrays and objects`);
}

/** `{"k":v,...}`; `max` > 0 limits the number of keys. Keys are identifiers in the thing model. */
export function objectJson(
  o: { [key: string]: unknown },
  tm: boolean,
  path: string,
  depth: number,
  max: number,
): string {
  if (!isObject(o)) bad(`${path}: expected an object of identifier: value`);
  const keys = Object.keys(o);
  if (max && keys.length > max) bad(`${path}: ${keys.length} entries; at most ${max} are allowed`);
  let s = "{";
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    if (tm) checkIdentifier(k, `${path}: key`);
    s += (i ? "," : "") + JSON.stringify(k) + ":" + valueJson(o[k], tm, `${path}.${k}`, depth);
  }
  return s + "}";
}

/** A time for the payload: ms since the epoch, from a number or a Date. */
export function timeOf(t: number | Date, what: string): number {
  const ms = t instanceof Date ? t.getTime() : t;
  if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 0)
    bad(`${what}: the time must be a date or an integer of ms since 1970`);
  return ms;
}
