// Shared by the Node side (which makes the vectors) and the XS side (which checks them): plain JS, no host APIs.
// Packets travel as JSON with bytes tagged ({"$u8": "<hex>"}); results compare as canonical strings (sorted keys,
// undefined-valued keys dropped, bytes as "u8:<hex>").

const HEX = "0123456789abcdef";

export function toHex(b: ArrayLike<number>): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += HEX[b[i] >> 4] + HEX[b[i] & 15];
  return s;
}

export function fromHex(s: string): Uint8Array {
  const b = new Uint8Array(s.length >> 1);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return b;
}

/** A JSON-able copy of a packet: bytes become {"$u8": hex}, undefined-valued keys go. */
export function tag(v: unknown): unknown {
  if (v instanceof Uint8Array) return { $u8: toHex(v) };
  if (Array.isArray(v)) return v.map(tag);
  if (v !== null && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = tag(x);
    }
    return out;
  }
  return v;
}

/** The inverse of tag(). */
export function untag(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(untag);
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (typeof o.$u8 === "string" && Object.keys(o).length === 1) return fromHex(o.$u8);
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(o)) out[k] = untag(o[k]);
    return out;
  }
  return v;
}

function canonValue(v: unknown): unknown {
  if (v instanceof Uint8Array) return `u8:${toHex(v)}`;
  if (Array.isArray(v)) return v.map(canonValue);
  if (v !== null && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = canonValue(x);
    }
    return out;
  }
  return v;
}

/** One string per packet value: equal exactly when the fields and bytes are equal. */
export function canon(v: unknown): string {
  return JSON.stringify(canonValue(v));
}

/** A codec vector: the V8 run of our codec is the expectation the XS run must meet exactly. */
export interface Vector {
  name: string;
  level: 3 | 4 | 5;
  /** A packet (tagged) to encode; `encoded` is what encode(packet, level) gave on V8. */
  packet?: unknown;
  encoded?: { hex: string } | { error: string };
  /** Bytes to decode; `decoded` is what a Decoder at `level` gave on V8 for them whole (then finish()). */
  bytes?: string;
  decoded?: { packets: string[] } | { error: string };
}
