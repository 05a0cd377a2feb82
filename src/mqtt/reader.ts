/** A bounds-checked cursor over one packet body. One instance per decoder, reused for every packet. */
import { fail } from "./errors";
import { decodeUtf8 } from "./utf8";

/** One empty buffer for every reader at rest (a Uint8Array is 7 heap slots on XS). */
const EMPTY = new Uint8Array(0);

export class Reader {
  b: Uint8Array = EMPTY;
  pos = 0;
  end = 0;

  reset(b: Uint8Array, pos: number, end: number): void {
    this.b = b;
    this.pos = pos;
    this.end = end;
  }

  need(n: number): void {
    if (this.pos + n > this.end) fail("TRUNCATED", "packet is shorter than its fields: it was cut or is malformed");
  }

  u8(): number {
    this.need(1);
    return this.b[this.pos++];
  }

  u16(): number {
    this.need(2);
    const b = this.b,
      p = this.pos;
    this.pos = p + 2;
    return (b[p] << 8) | b[p + 1];
  }

  u32(): number {
    this.need(4);
    const b = this.b,
      p = this.pos;
    this.pos = p + 4;
    return ((b[p] << 24) >>> 0) + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]);
  }

  /** A packet identifier: 1..65535. */
  id(): number {
    const id = this.u16();
    if (id === 0) fail("INVALID_PACKET", "packet identifier 0 is not allowed");
    return id;
  }

  varint(): number {
    let v = 0,
      mul = 1;
    for (let i = 0; i < 4; i++) {
      const d = this.u8();
      v += (d & 0x7f) * mul;
      if (d < 0x80) return v;
      mul *= 128;
    }
    return fail("MALFORMED_LENGTH", "variable byte integer is longer than 4 bytes");
  }

  str(): string {
    const n = this.u16();
    this.need(n);
    const p = this.pos;
    this.pos = p + n;
    return decodeUtf8(this.b, p, p + n);
  }

  /** Length-prefixed binary data, as a view into the packet (no copy). */
  bin(): Uint8Array {
    const n = this.u16();
    this.need(n);
    const p = this.pos;
    this.pos = p + n;
    return this.b.subarray(p, p + n);
  }

  done(): void {
    if (this.pos !== this.end) fail("TRAILING_BYTES", "packet is longer than its fields: it is malformed");
  }
}
