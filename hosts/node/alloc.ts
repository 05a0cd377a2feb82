// The Node host's packet allocator: views into 256 KB slabs (src/mqtt/slab.ts) of memory Node hands out without
// zero-filling it (the codec writes every byte it hands out); a packet over 64 KB gets a buffer of its own. A slab is
// freed by the garbage collector once no packet from it is alive. A device keeps the codec's portable default.
import { Buffer } from "node:buffer";
import type { Allocator } from "../../src/host";
import { slabAllocator } from "../../src/mqtt/slab";

export const nodeAlloc: Allocator = slabAllocator(
  256 * 1024,
  64 * 1024,
  (size) => Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer,
);
