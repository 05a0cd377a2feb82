// Node/Web globals the test files (not src/) use, for their run inside XS. The bundler prepends an import of the
// ones a test file names. TextEncoder/TextDecoder: the XS prelude takes them off the global object (not every
// Moddable build has them, and src/ must not use them) and keeps them for us. Buffer: the few methods the tests use.
import { decodeUtf8, utf8Bytes } from "../../../src/mqtt/utf8";
import { base64Decode, base64Encode } from "../../../src/net/base64";
import { fromHex, toHex } from "../suite/canon";

const saved = (
  globalThis as unknown as { __xsText: { TextEncoder: typeof TextEncoder; TextDecoder: typeof TextDecoder } }
).__xsText;
const TE = saved.TextEncoder;
const TD = saved.TextDecoder;

type Encoding = "utf8" | "utf-8" | "latin1" | "binary" | "hex" | "base64" | undefined;

class XsBuffer extends Uint8Array {
  // biome-ignore lint/suspicious/noExplicitAny: Node's Buffer.from(x, encoding | offset, length), as loose as Node's
  static override from(x: any, enc?: any, len?: number): any {
    if (typeof x === "string") {
      if (enc === "hex") return XsBuffer.wrap(fromHex(x));
      if (enc === "base64") return XsBuffer.wrap(base64Decode(x));
      if (enc === "latin1" || enc === "binary") {
        const b = new XsBuffer(x.length);
        for (let i = 0; i < x.length; i++) b[i] = x.charCodeAt(i) & 0xff;
        return b;
      }
      return XsBuffer.wrap(utf8Bytes(x));
    }
    if (x instanceof ArrayBuffer)
      return new XsBuffer(x, (enc as number) ?? 0, len ?? x.byteLength - ((enc as number) ?? 0));
    const src = Array.from(x as ArrayLike<number>);
    const b = new XsBuffer(src.length);
    b.set(src);
    return b;
  }
  static wrap(u: Uint8Array): XsBuffer {
    return new XsBuffer(u.buffer as ArrayBuffer, u.byteOffset, u.byteLength);
  }
  static alloc(n: number, fill = 0): XsBuffer {
    return new XsBuffer(n).fill(fill) as XsBuffer;
  }
  static concat(list: readonly Uint8Array[], total?: number): XsBuffer {
    const n = total ?? list.reduce((s, b) => s + b.length, 0);
    const out = new XsBuffer(n);
    let at = 0;
    for (const b of list) {
      if (at >= n) break;
      const part = b.subarray(0, Math.min(b.length, n - at));
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
  static compare(a: Uint8Array, b: Uint8Array): number {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
    return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
  }
  static isBuffer(x: unknown): x is XsBuffer {
    return x instanceof XsBuffer;
  }
  override toString(enc?: Encoding): string {
    if (enc === "hex") return toHex(this);
    if (enc === "base64") return base64Encode(this);
    if (enc === "latin1" || enc === "binary") {
      let s = "";
      for (let i = 0; i < this.length; i++) s += String.fromCharCode(this[i]);
      return s;
    }
    return decodeUtf8(this, 0, this.length);
  }
  equals(other: Uint8Array): boolean {
    return XsBuffer.compare(this, other) === 0;
  }
  readUInt16BE(at = 0): number {
    return (this[at] << 8) | this[at + 1];
  }
  readUInt32BE(at = 0): number {
    return new DataView(this.buffer, this.byteOffset, this.byteLength).getUint32(at);
  }
  readBigUInt64BE(at = 0): bigint {
    return new DataView(this.buffer, this.byteOffset, this.byteLength).getBigUint64(at);
  }
  writeBigUInt64BE(v: bigint, at = 0): number {
    new DataView(this.buffer, this.byteOffset, this.byteLength).setBigUint64(at, v);
    return at + 8;
  }
}

export { TE as TextEncoder, TD as TextDecoder, XsBuffer as Buffer };
