// The Node host's packet allocator: views into 256 KB slabs, bump-allocated, the way Node's own Buffer pool
// serves small Buffers (mqtt-packet relies on that pool up to 4 KB; this one serves packets up to 64 KB).
// A slab is freed by the garbage collector once no packet from it is alive. Every byte of a packet is written
// by the codec, so slab memory needs no clearing. A device keeps the codec's portable default (new Uint8Array).
import { Buffer } from "node:buffer";
import type { Allocator } from "../../src/host";

const SLAB = 256 * 1024;
const MAX_POOLED = 64 * 1024;
/** A fresh slab, not zero-filled: the codec overwrites every byte it hands out. */
const newSlab = (): ArrayBuffer => Buffer.allocUnsafeSlow(SLAB).buffer as ArrayBuffer;
let slab = newSlab();
let used = 0;

export const nodeAlloc: Allocator = (size) => {
  if (size > MAX_POOLED) return Buffer.allocUnsafeSlow(size);
  if (used + size > SLAB) {
    slab = newSlab();
    used = 0;
  }
  const b = new Uint8Array(slab, used, size);
  used = (used + size + 7) & ~7; // keep views 8-byte aligned
  return b;
};
