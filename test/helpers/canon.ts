// Structural comparison of packets that treats bytes as bytes: a Uint8Array (or Buffer) becomes "bytes:<hex>"
// (or a length and hash when it is large), undefined-valued keys are dropped, key order does not matter.
// Used by the tests and the fuzz script, so it depends on nothing but node:crypto.
import { createHash } from "node:crypto";

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

export function fromHex(s: string): Uint8Array {
  const h = s.replace(/[^0-9a-f]/gi, "");
  const b = new Uint8Array(h.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return b;
}

function bytesKey(b: Uint8Array): string {
  const kind = Buffer.isBuffer(b) ? "Buffer" : "bytes";
  if (b.byteLength <= 4096) return `${kind}:${hex(b)}`;
  const h = createHash("sha256").update(b).digest("hex");
  return `${kind}[${b.byteLength}]:${h}`;
}

/** A plain JSON-like value equal for two packets exactly when they carry the same fields and bytes. */
export function canon(v: unknown): unknown {
  if (v instanceof Uint8Array) return bytesKey(v);
  if (Array.isArray(v)) return v.map(canon);
  if (v !== null && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = canon(x);
    }
    return out;
  }
  return v;
}

export function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(canon(a)) === JSON.stringify(canon(b));
}
