/**
 * A slab allocator for packet buffers: views bump-allocated from one larger buffer at a time, the way Node's own
 * pool of byte buffers serves the MQTT libraries of Node. On V8 each `new Uint8Array` of more than 64 bytes is an
 * allocation of its own outside the JavaScript heap (about 2 µs for 1 KB, 4 µs for 4 KB on the benchmark machine);
 * a view of a slab shares that cost with the other packets of its slab.
 *
 * Not for a device: a packet still referenced keeps its whole slab alive, which a heap of tens of KB cannot spare,
 * and XS allocates a small buffer cheaply anyway. The full codec's Decoder (codec.ts) and the Node host use it; the
 * session a device runs keeps the portable default, a buffer of its own per packet.
 */
import type { Allocator } from "../host";

/**
 * Makes an allocator that serves sizes up to `maxPooled` bytes from slabs of `slabSize` bytes and gives a larger
 * size a buffer of its own. `newBuffer` makes both; it may hand out memory that is not zeroed, since every byte of
 * a packet is written before it is read. No slab exists before the first allocation.
 */
export function slabAllocator(
  slabSize: number,
  maxPooled: number,
  newBuffer: (size: number) => ArrayBuffer = (size) => new ArrayBuffer(size),
): Allocator {
  let slab: ArrayBuffer | null = null;
  let used = slabSize;
  return (size) => {
    if (size > maxPooled) return new Uint8Array(newBuffer(size), 0, size);
    if (used + size > slabSize) {
      slab = newBuffer(slabSize);
      used = 0;
    }
    const b = new Uint8Array(slab as ArrayBuffer, used, size);
    used = (used + size + 7) & ~7; // keep views 8-byte aligned
    return b;
  };
}
