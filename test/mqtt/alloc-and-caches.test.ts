// The allocator option and the topic caches: an allocator that hands out dirty memory changes no byte, the
// session's TopicCache and the decoder's topic cache change no result, and the caches stay bounded.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  Decoder,
  encode,
  PUBLISH,
  slabAllocator,
  type Packet,
  type ProtocolLevel,
  type PublishPacket,
} from "../../src/mqtt/codec";
import { Decoder as DeviceDecoder } from "../../src/mqtt/decode";
import { encodePublish, TopicCache } from "../../src/mqtt/encode";
import { nodeAlloc } from "../../hosts/node/alloc";
import { packet, publish } from "../helpers/arbitraries";

/** Hands out memory full of garbage, as an unzeroed pool would. */
const dirty = (n: number) => new Uint8Array(n).fill(0xa5);

describe("allocators", () => {
  for (const level of [3, 4, 5] as ProtocolLevel[]) {
    it(`every byte of every level ${level} packet is written (dirty memory changes nothing)`, () => {
      fc.assert(
        fc.property(packet(level), (p) => {
          expect(encode(p, level, dirty)).toEqual(encode(p, level));
        }),
        { numRuns: 300 },
      );
    });
  }

  it("the Node host's slab allocator gives the same bytes, and packets do not overlap", () => {
    const out: Uint8Array[] = [];
    fc.assert(
      fc.property(publish, (p) => {
        const b = encodePublish(p, undefined, nodeAlloc);
        expect(b).toEqual(encode(p));
        out.push(b);
      }),
      { numRuns: 500 },
    );
    // Earlier packets are intact after later allocations.
    const again = out.map((b) => b.slice());
    for (let i = 0; i < 2000; i++) nodeAlloc(100).fill(0xff);
    expect(out).toEqual(again);
  });
});

describe("slab allocator", () => {
  it("hands out views of the size asked, 8-byte aligned, that do not overlap; larger sizes get their own buffer", () => {
    const made: number[] = [];
    const alloc = slabAllocator(1024, 512, (n) => (made.push(n), new ArrayBuffer(n)));
    expect(made).toEqual([]); // no slab before the first allocation
    const views = [100, 1, 500, 7, 600, 300, 256].map((n) => alloc(n));
    expect(views.map((v) => v.length)).toEqual([100, 1, 500, 7, 600, 300, 256]);
    for (const v of views) if (v.length <= 512) expect(v.byteOffset % 8).toBe(0);
    expect(views[4].buffer.byteLength).toBe(600); // over maxPooled: a buffer of its own
    expect(made).toEqual([1024, 600, 1024]); // the last 256 B did not fit in the first slab's 1,024
    for (const [i, v] of views.entries()) v.fill(i + 1);
    expect(views.map((v, i) => v.every((b) => b === i + 1))).toEqual(views.map(() => true));
  });

  it("the full codec's decoder keeps every split packet's payload intact while later packets arrive", () => {
    const sizes = [10, 100, 1000, 1400, 3000, 4090, 5000, 20_000];
    const sent: PublishPacket[] = [];
    for (let i = 0; i < 64; i++) {
      const payload = new Uint8Array(sizes[i % sizes.length]);
      for (let k = 0; k < payload.length; k++) payload[k] = (k * 7 + i) & 0xff;
      sent.push({ type: 3, topic: `t/${i % 13}`, payload, qos: 1, id: i + 1, retain: false, dup: false });
    }
    const bytes = sent.map((p) => encode(p));
    const stream = new Uint8Array(bytes.reduce((a, b) => a + b.length, 0));
    bytes.reduce((at, b) => (stream.set(b, at), at + b.length), 0);
    const kept: PublishPacket[] = [],
      bare: PublishPacket[] = [];
    const pooled = new Decoder((p) => kept.push(p as PublishPacket)),
      own = new DeviceDecoder((p) => bare.push(p as PublishPacket)); // the device's: a buffer of its own per packet
    for (let i = 0; i < stream.length; i += 1460) {
      pooled.push(stream.subarray(i, i + 1460));
      own.push(stream.subarray(i, i + 1460));
    }
    // every payload as sent, checked once all have arrived (a byte-by-byte compare: toEqual is slow on 200 KB)
    const wrong = (got: PublishPacket[]) =>
      sent.findIndex((p, i) => {
        const a = p.payload as Uint8Array,
          b = got[i]?.payload as Uint8Array | undefined;
        if (!b || b.length !== a.length || got[i].topic !== p.topic || got[i].id !== p.id) return true;
        for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return true;
        return false;
      });
    expect([kept.length, bare.length]).toEqual([64, 64]);
    expect(wrong(kept)).toBe(-1);
    expect(wrong(bare)).toBe(-1);
  });
});

describe("topic caches", () => {
  it("an encoder TopicCache gives the same bytes and still refuses invalid topics", () => {
    const cache = new TopicCache(2);
    fc.assert(
      fc.property(publish, (p) => {
        expect(encodePublish(p, cache)).toEqual(encode(p));
        expect(encodePublish(p, cache)).toEqual(encode(p)); // now from the cache
      }),
      { numRuns: 500 },
    );
    expect(() =>
      encodePublish({ type: 3, topic: "a/#", payload: "", qos: 0, retain: false, dup: false }, cache),
    ).toThrow(/wildcard/);
    expect(() => encodePublish({ type: 3, topic: "", payload: "", qos: 0, retain: false, dup: false }, cache)).toThrow(
      /empty/,
    );
  });

  it("the decoder's topic cache returns the same topics as no cache, over many topics", () => {
    fc.assert(
      fc.property(fc.array(publish, { minLength: 1, maxLength: 40 }), (ps) => {
        const stream = ps.flatMap((p) => Array.from(encode(p)));
        const a: Packet[] = [],
          b: Packet[] = [];
        new Decoder((p) => a.push(p), { topicCache: 0 }).push(Uint8Array.from(stream));
        new Decoder((p) => b.push(p), { topicCache: 3 }).push(Uint8Array.from(stream));
        expect(b).toEqual(a);
      }),
      { numRuns: 300 },
    );
  });

  it("a cached topic is not confused with another of the same length", () => {
    const got: string[] = [];
    const d = new Decoder((p) => p.type === PUBLISH && got.push(p.topic));
    for (const t of ["a/b/c1", "a/b/c2", "x/b/c1", "a/b/c1"])
      d.push(encode({ type: 3, topic: t, payload: "", qos: 0, retain: false, dup: false }));
    expect(got).toEqual(["a/b/c1", "a/b/c2", "x/b/c1", "a/b/c1"]);
  });

  it("an invalid topic is refused even after valid ones were cached", () => {
    const d = new Decoder(() => {});
    d.push(encode({ type: 3, topic: "a/b", payload: "", qos: 0, retain: false, dup: false }));
    expect(() => d.push(new Uint8Array([0x30, 5, 0, 3, 0x61, 0x2f, 0x2b]))).toThrow(/wildcard/);
  });
});
