/**
 * MD5 (RFC 1321), small, portable and incremental: a firmware image is checked against the MD5 the platform sends
 * in update_firmware while it streams through, 64 bytes of state at a time, never whole in RAM. MD5 is broken for
 * collision resistance: here it only detects a damaged download, as the platform's protocol defines.
 *
 *   const h = new Md5(); h.update(chunk1); h.update(chunk2); md5Hex(h.digest())
 */

/** Per-round shift amounts. */
const S: readonly number[] = Object.freeze([
  7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 4,
  11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
]);

/** floor(abs(sin(i + 1)) * 2^32), as int32. */
const K = new Int32Array(64);
for (let i = 0; i < 64; i++) K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 4294967296) | 0;

export class Md5 {
  private a = 0x67452301;
  private b = 0xefcdab89 | 0;
  private c = 0x98badcfe | 0;
  private d = 0x10325476;
  /** The bytes of a block not yet complete. */
  private block = new Uint8Array(64);
  private used = 0;
  /** Bytes hashed so far (exact up to 2^53). */
  private total = 0;
  private w = new Int32Array(16);
  private done = false;

  /** Bytes given so far. */
  get length(): number {
    return this.total;
  }

  update(data: Uint8Array): this {
    if (this.done) throw new Error("md5: update after digest: make a new Md5");
    const n = data.length;
    this.total += n;
    let i = 0;
    if (this.used > 0) {
      const take = 64 - this.used < n ? 64 - this.used : n;
      this.block.set(data.subarray(0, take), this.used);
      this.used += take;
      i = take;
      if (this.used < 64) return this;
      this.compress(this.block, 0);
      this.used = 0;
    }
    for (; i + 64 <= n; i += 64) this.compress(data, i);
    if (i < n) {
      this.block.set(data.subarray(i), 0);
      this.used = n - i;
    }
    return this;
  }

  /** The 16-byte digest; the object cannot be updated after. */
  digest(): Uint8Array {
    if (this.done) throw new Error("md5: digest taken twice: make a new Md5");
    const bits = this.total * 8;
    const tail = new Uint8Array(this.used < 56 ? 64 - this.used : 128 - this.used);
    tail[0] = 0x80;
    const e = tail.length;
    const lo = bits % 4294967296,
      hi = Math.floor(bits / 4294967296);
    tail[e - 8] = lo & 0xff;
    tail[e - 7] = (lo >>> 8) & 0xff;
    tail[e - 6] = (lo >>> 16) & 0xff;
    tail[e - 5] = (lo >>> 24) & 0xff;
    tail[e - 4] = hi & 0xff;
    tail[e - 3] = (hi >>> 8) & 0xff;
    tail[e - 2] = (hi >>> 16) & 0xff;
    tail[e - 1] = (hi >>> 24) & 0xff;
    const total = this.total;
    this.update(tail);
    this.total = total;
    this.done = true;
    const out = new Uint8Array(16);
    const hs = [this.a, this.b, this.c, this.d];
    for (let i = 0; i < 4; i++) {
      out[i * 4] = hs[i] & 0xff;
      out[i * 4 + 1] = (hs[i] >>> 8) & 0xff;
      out[i * 4 + 2] = (hs[i] >>> 16) & 0xff;
      out[i * 4 + 3] = (hs[i] >>> 24) & 0xff;
    }
    return out;
  }

  private compress(m: Uint8Array, at: number): void {
    const w = this.w;
    for (let i = 0; i < 16; i++) {
      const j = at + i * 4;
      w[i] = m[j] | (m[j + 1] << 8) | (m[j + 2] << 16) | (m[j + 3] << 24);
    }
    let a = this.a,
      b = this.b,
      c = this.c,
      d = this.d;
    for (let i = 0; i < 64; i++) {
      let f: number, g: number;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) & 15;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) & 15;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) & 15;
      }
      const x = (a + f + K[i] + w[g]) | 0;
      const s = S[i];
      a = d;
      d = c;
      c = b;
      b = (b + ((x << s) | (x >>> (32 - s)))) | 0;
    }
    this.a = (this.a + a) | 0;
    this.b = (this.b + b) | 0;
    this.c = (this.c + c) | 0;
    this.d = (this.d + d) | 0;
  }
}

/** The MD5 of `data` in one call. */
export function md5(data: Uint8Array): Uint8Array {
  return new Md5().update(data).digest();
}

/** Lower-case hex of a digest (the form update_firmware's MD5 takes, compared without regard to case). */
export function md5Hex(digest: Uint8Array): string {
  let s = "";
  for (let i = 0; i < digest.length; i++) s += (digest[i] < 16 ? "0" : "") + digest[i].toString(16);
  return s;
}
