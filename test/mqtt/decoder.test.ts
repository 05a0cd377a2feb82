// The push decoder's behaviour around the packets: memory bound, oversize skipping, views, finish/reset, failure.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Decoder, encode, MqttError, PUBACK, UNSUBACK, type Packet, type PublishPacket } from "../../src/mqtt/codec.ts";
import { Decoder as ClientDecoder, type PacketSink } from "../../src/mqtt/decode.ts";
import { encode as encodeClient } from "../../src/mqtt/encode.ts";
import { concat, connectBody, frame, str } from "../helpers/bytes.ts";
import { canon } from "../helpers/canon.ts";

const publish = (payload: number, id?: number): PublishPacket => ({
  type: 3,
  topic: "t/x",
  payload: new Uint8Array(payload).fill(7),
  qos: id ? 1 : 0,
  retain: false,
  dup: false,
  id,
});

function collect(options: ConstructorParameters<typeof Decoder>[1] = {}) {
  const packets: Packet[] = [];
  const skipped: MqttError[] = [];
  const d = new Decoder((p) => packets.push(p), { onSkip: (e) => skipped.push(e), ...options });
  return { d, packets, skipped };
}

/** Splits `b` at the given offsets. */
function split(b: Uint8Array, at: number[]): Uint8Array[] {
  const cuts = [0, ...at.filter((x) => x > 0 && x < b.length).sort((x, y) => x - y), b.length];
  const out: Uint8Array[] = [];
  for (let i = 1; i < cuts.length; i++) out.push(b.subarray(cuts[i - 1], cuts[i]));
  return out;
}

describe("oversize packets", () => {
  it("fail from the fixed header alone, holding a few bytes at most", () => {
    const { d } = collect({ maxPacketSize: 1024 });
    const big = encode(publish(100_000));
    d.push(big.subarray(0, 1));
    expect(d.pending).toBeLessThanOrEqual(5);
    d.push(big.subarray(1, 3)); // header and 2 of the 3 length bytes
    expect(d.pending).toBeLessThanOrEqual(5);
    let err: unknown;
    try {
      d.push(big.subarray(3, 4)); // the last length byte: now the size is known
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MqttError);
    expect((err as MqttError).code).toBe("PACKET_TOO_LARGE");
    expect((err as MqttError).message).toMatch(/100009-byte PUBLISH exceeds the 1024-byte/);
    expect(d.pending).toBeLessThanOrEqual(5);
  });

  it("a packet of exactly maxPacketSize is accepted, one byte more is not", () => {
    const p = encode(publish(200));
    const ok = collect({ maxPacketSize: p.length });
    ok.d.push(p);
    expect(ok.packets).toHaveLength(1);
    const no = collect({ maxPacketSize: p.length - 1 });
    expect(() => no.d.push(p)).toThrow(/exceeds/);
  });

  it("skipOversize skips the body, reports it to onSkip and decodes the next packet, under any chunking", () => {
    const before = encode(publish(3, 1));
    const big = encode(publish(5000, 2));
    const after = encode(publish(10, 3));
    const stream = concat(before, big, after, before);
    const bounds = [before.length, before.length + big.length, before.length + big.length + after.length];
    const plans: number[][] = [
      [],
      bounds,
      bounds.map((b) => b + 1),
      bounds.map((b) => b - 1),
      [before.length + 2, before.length + 3],
      [before.length + 1, before.length + 4000, before.length + big.length + 1],
      Array.from({ length: stream.length }, (_, i) => i), // one byte at a time
    ];
    for (const at of plans) {
      const { d, packets, skipped } = collect({ maxPacketSize: 100, skipOversize: true });
      let maxPending = 0;
      for (const c of split(stream, at)) {
        d.push(c);
        maxPending = Math.max(maxPending, d.pending);
      }
      d.finish();
      expect(packets.map((p) => (p as PublishPacket).id)).toEqual([1, 3, 1]);
      expect(canon(packets[1])).toEqual(canon({ ...publish(10, 3) }));
      expect(skipped).toHaveLength(1);
      expect(skipped[0].code).toBe("PACKET_TOO_LARGE");
      expect(maxPending).toBeLessThanOrEqual(100);
    }
  });

  it("several oversize packets back to back, and one that ends the stream early", () => {
    const big = encode(publish(300));
    const { d, packets, skipped } = collect({ maxPacketSize: 64, skipOversize: true });
    d.push(concat(big, big, encode({ type: 13 }), big.subarray(0, 50)));
    expect(skipped).toHaveLength(3);
    expect(packets).toEqual([{ type: 13 }]);
    // the stream ended inside a skipped packet: that is still a truncated stream
    expect(() => d.finish()).toThrow(expect.objectContaining({ code: "TRUNCATED" }));
  });

  it("skipOversize does not skip malformed packets", () => {
    const { d } = collect({ maxPacketSize: 64, skipOversize: true });
    expect(() => d.push(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0xff]))).toThrow(
      expect.objectContaining({ code: "MALFORMED_LENGTH" }),
    );
  });

  it("maxPacketSize must be from 2 to 268435460", () => {
    expect(() => new Decoder(() => {}, { maxPacketSize: 1 })).toThrow(RangeError);
    expect(() => new Decoder(() => {}, { maxPacketSize: 268435461 })).toThrow(RangeError);
    expect(() => new Decoder(() => {}, { maxPacketSize: Number.NaN })).toThrow(RangeError);
    expect(new Decoder(() => {}).maxPacketSize).toBe(256 * 1024);
  });
});

describe("payload views", () => {
  it("a packet whole inside one chunk is parsed in place: its payload is a view of the chunk", () => {
    const chunk = concat(encode({ type: 13 }), encode(publish(50, 9)), encode({ type: 13 }));
    const { d, packets } = collect();
    d.push(chunk);
    const p = packets[1] as PublishPacket & { payload: Uint8Array };
    expect(p.payload.buffer).toBe(chunk.buffer);
    expect(p.payload.byteOffset).toBe(2 + 2 + 2 + 3 + 2);
    expect(p.payload.length).toBe(50);
  });

  it("a packet split across chunks is assembled into its own buffer", () => {
    const bytes = encode(publish(50, 9));
    const { d, packets } = collect();
    d.push(bytes.subarray(0, 10));
    d.push(bytes.subarray(10));
    const p = packets[0] as PublishPacket & { payload: Uint8Array };
    expect(p.payload.buffer).not.toBe(bytes.buffer);
    expect([...p.payload]).toEqual(new Array(50).fill(7));
  });

  it("binary fields of CONNECT are views too", () => {
    const chunk = encode({
      type: 1,
      level: 4,
      clientId: "c",
      clean: true,
      keepalive: 0,
      username: "u",
      password: new Uint8Array([1, 2]),
      will: { topic: "w", payload: new Uint8Array([3]), qos: 1, retain: true },
    });
    const { d, packets } = collect();
    d.push(chunk);
    const p = packets[0] as { password: Uint8Array; will: { payload: Uint8Array } };
    expect(p.password.buffer).toBe(chunk.buffer);
    expect(p.will.payload.buffer).toBe(chunk.buffer);
  });
});

describe("finish() and reset()", () => {
  it("finish() is quiet between packets and throws TRUNCATED inside one", () => {
    const bytes = encode(publish(10, 1));
    for (let cut = 0; cut <= bytes.length; cut++) {
      const { d } = collect();
      d.push(bytes.subarray(0, cut));
      if (cut === 0 || cut === bytes.length) expect(() => d.finish()).not.toThrow();
      else expect(() => d.finish()).toThrow(expect.objectContaining({ code: "TRUNCATED" }));
    }
  });

  it("reset() forgets a half packet", () => {
    const { d, packets } = collect();
    d.push(encode(publish(10, 1)).subarray(0, 7));
    expect(d.pending).toBeGreaterThan(0);
    d.reset();
    expect(d.pending).toBe(0);
    d.finish();
    d.push(encode({ type: 13 }));
    expect(packets).toEqual([{ type: 13 }]);
  });

  it("reset() after an error readies the decoder for a new connection", () => {
    const { d, packets } = collect();
    expect(() => d.push(new Uint8Array([0xf0]))).toThrow(MqttError);
    d.reset();
    d.push(encode({ type: 13 }));
    expect(packets).toEqual([{ type: 13 }]);
  });

  it("reset(level) sets the protocol level of the next connection", () => {
    const { d, packets } = collect();
    d.reset(5);
    expect(() => d.push(encode(publish(1)))).toThrow(expect.objectContaining({ code: "UNKNOWN_PACKET" }));
    d.reset(4);
    d.push(encode(publish(1)));
    expect(packets).toHaveLength(1);
  });
});

describe("after an error the stream is dead", () => {
  it("push throws the same error again, even for valid bytes, and decodes nothing more", () => {
    const { d, packets } = collect();
    let first: unknown;
    try {
      d.push(concat(encode({ type: 13 }), new Uint8Array([0x41, 2, 0, 1]), encode({ type: 13 })));
    } catch (e) {
      first = e;
    }
    expect(first).toBeInstanceOf(MqttError);
    expect(packets).toEqual([{ type: 13 }]); // the packet before the error, not the one after
    expect(() => d.push(encode({ type: 13 }))).toThrow(first as Error);
    expect(() => d.push(new Uint8Array(0))).toThrow(first as Error);
    expect(packets).toHaveLength(1);
  });

  it("an exception from onPacket propagates and also ends the stream", () => {
    const boom = new Error("app bug");
    const d = new Decoder(() => {
      throw boom;
    });
    expect(() => d.push(encode({ type: 13 }))).toThrow(boom);
    expect(() => d.push(encode({ type: 13 }))).toThrow(boom);
  });
});

describe("protocol level", () => {
  it("a decoded CONNECT sets the level for the packets after it (broker side), in the same chunk", () => {
    const { d, packets } = collect();
    const v5connect = encode({ type: 1, level: 5, clientId: "c", clean: true, keepalive: 0 });
    d.push(concat(v5connect, encode({ type: 12 })));
    expect(d.level).toBe(5);
    expect(packets).toHaveLength(2);
    expect(() => d.push(frame(0x82, [0, 1, ...str("a"), 0]))).toThrow(
      expect.objectContaining({ code: "UNKNOWN_PACKET" }),
    );
  });

  it("a 3.1 CONNECT is decoded", () => {
    const { d, packets } = collect();
    d.push(frame(0x10, connectBody(3, 2, str("abc"))));
    expect(packets).toEqual([{ type: 1, level: 3, clientId: "abc", clean: true, keepalive: 60 }]);
    expect(d.level).toBe(3);
  });
});

describe("chunking", () => {
  it("the same packets whatever the chunking: whole, one byte at a time, every two-way split", () => {
    const packets: Packet[] = [
      { type: 1, level: 4, clientId: "dev", clean: true, keepalive: 30, username: "u", password: new Uint8Array([1]) },
      {
        type: 8,
        id: 1,
        subscriptions: [
          { topic: "a/+", qos: 1 },
          { topic: "#", qos: 0 },
        ],
      },
      publish(130, 2),
      publish(0),
      { type: 9, id: 1, granted: [1, 0x80] },
      { type: 10, id: 3, topics: ["a/+"] },
      { type: 11, id: 3 },
      { type: 4, id: 2 },
      { type: 12 },
      { type: 13 },
      { type: 14 },
    ];
    const stream = concat(...packets.map((p) => encode(p)));
    const want = canon(packets);
    const run = (chunks: Uint8Array[]) => {
      const { d, packets: got } = collect();
      for (const c of chunks) d.push(c);
      d.finish();
      return canon(got);
    };
    expect(run([stream])).toEqual(want);
    expect(
      run(
        split(
          stream,
          Array.from({ length: stream.length }, (_, i) => i),
        ),
      ),
    ).toEqual(want);
    for (let i = 1; i < stream.length; i++) expect(run(split(stream, [i]))).toEqual(want);
  });

  it("pending counts the body bytes of the unfinished packet held so far (the fixed header is not kept)", () => {
    const bytes = encode(publish(200, 1)); // 3-byte fixed header: 2-byte remaining length
    const { d } = collect();
    d.push(bytes.subarray(0, 1));
    expect(d.pending).toBe(0);
    d.push(bytes.subarray(1, 3));
    expect(d.pending).toBe(0);
    d.push(bytes.subarray(3, 50));
    expect(d.pending).toBe(47);
    d.push(bytes.subarray(50));
    expect(d.pending).toBe(0);
  });

  it("pending stays within even the smallest maxPacketSize while a long fixed header is read", () => {
    const { d } = collect({ maxPacketSize: 2, skipOversize: true });
    d.push(new Uint8Array([0x30, 0x80, 0x80, 0x80]));
    expect(d.pending).toBeLessThanOrEqual(2);
    d.push(new Uint8Array([0x01, 0, 1, 0x61])); // 2 MB claimed: skipped
    expect(d.pending).toBeLessThanOrEqual(2);
  });
});

describe("a PacketSink", () => {
  /** Rebuilds packet objects from what a sink is handed, so they compare with what a callback gets. */
  function sinkDecoder(options: ConstructorParameters<typeof Decoder>[1] = {}) {
    const packets: Packet[] = [];
    const skipped: MqttError[] = [];
    const sink: PacketSink = {
      received: (p) => packets.push(p),
      receivedPublish: (topic, payload, qos, retain, dup, id) =>
        packets.push({ type: 3, topic, payload, qos, retain, dup, id: qos ? id : undefined }),
      receivedBare: (type, id) =>
        packets.push((type === PUBACK || type === UNSUBACK ? { type, id } : { type }) as Packet),
      skipped: (e) => skipped.push(e),
    };
    return { d: new Decoder(sink, options), packets, skipped };
  }

  const id = fc.integer({ min: 1, max: 65535 });
  // The packets a client gets, a few a broker must not send, topics that repeat (ASCII or not), some too large.
  const anyPacket: fc.Arbitrary<Packet> = fc.oneof(
    fc
      .record({
        type: fc.constant(3 as const),
        topic: fc.constantFrom("a/b", "a/c", "dev/ç/x", "z"),
        payload: fc.uint8Array({ maxLength: 300 }),
        qos: fc.constantFrom(0 as const, 1 as const),
        retain: fc.boolean(),
        dup: fc.constant(false),
        id,
      })
      .map((p) => (p.qos ? p : { ...p, id: undefined })),
    fc.record({ type: fc.constantFrom(4 as const, 11 as const), id }),
    fc.record({
      type: fc.constant(9 as const),
      id,
      granted: fc.array(fc.constantFrom(0, 1, 0x80), { minLength: 1, maxLength: 3 }),
    }),
    fc.record({
      type: fc.constant(2 as const),
      sessionPresent: fc.boolean(),
      returnCode: fc.integer({ min: 0, max: 5 }),
    }),
    fc.constantFrom<Packet>(
      { type: 12 },
      { type: 13 },
      { type: 14 },
      { type: 8, id: 3, subscriptions: [{ topic: "a/#", qos: 1 }] },
    ),
  );

  it("is handed the same packets as a callback, whatever the stream and its chunking", () => {
    fc.assert(
      fc.property(
        fc.array(anyPacket, { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (ps, at) => {
          const stream = concat(...ps.map((p) => encode(p, 4)));
          const a = collect({ maxPacketSize: 200, skipOversize: true }),
            b = sinkDecoder({ maxPacketSize: 200, skipOversize: true });
          for (const c of split(stream, at)) {
            a.d.push(c);
            b.d.push(c);
          }
          expect(canon(b.packets)).toEqual(canon(a.packets));
          expect(b.skipped.map((e) => e.message)).toEqual(a.skipped.map((e) => e.message));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("gets topics seen before from the cache, ASCII or not, and tells same-length topics apart", () => {
    const { d, packets } = sinkDecoder({ topicCache: 2 });
    const topics = ["a/b/c1", "a/b/c2", "t/é", "t/é", "x/b/c1", "a/b/c1", "a/b/c2", "t/é"];
    for (const t of topics) d.push(encode({ type: 3, topic: t, payload: "", qos: 0, retain: false, dup: false }));
    expect(packets.map((p) => (p as PublishPacket).topic)).toEqual(topics);
  });
});

describe("the client's decoder and encoder (what a device imports) against the full codec", () => {
  const thrown = (f: () => unknown): MqttError => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(MqttError);
      return e as MqttError;
    }
    throw new Error("it did not throw");
  };
  const brokerOnly: Packet[] = [
    { type: 1, level: 4, clientId: "x", clean: true, keepalive: 60 },
    { type: 8, id: 1, subscriptions: [{ topic: "a", qos: 1 }] },
    { type: 10, id: 1, topics: ["a"] },
  ];

  it("parses every packet a client receives as the full codec does", () => {
    const clientSide: Packet[] = [
      { type: 2, sessionPresent: true, returnCode: 0 },
      publish(3, 5),
      { type: 4, id: 5 },
      { type: 9, id: 2, granted: [0, 1, 0x80] },
      { type: 11, id: 3 },
      { type: 12 },
      { type: 13 },
      { type: 14 },
    ];
    const a: Packet[] = [],
      b: Packet[] = [];
    const client = new ClientDecoder((p) => a.push(p)),
      full = new Decoder((p) => b.push(p));
    for (const p of clientSide) {
      client.push(encode(p));
      full.push(encode(p));
    }
    expect(a.map(canon)).toEqual(b.map(canon));
    expect(a).toHaveLength(clientSide.length);
  });

  it("refuses CONNECT, SUBSCRIBE and UNSUBSCRIBE at their first byte with PROTOCOL_ERROR; the full codec parses them", () => {
    for (const p of brokerOnly) {
      const d = new ClientDecoder(() => {});
      const e = thrown(() => d.push(encode(p).subarray(0, 1)));
      expect([e.code, e.message]).toEqual([
        "PROTOCOL_ERROR",
        `the broker broke the MQTT protocol: unexpected packet type ${p.type} from the broker`,
      ]);
      expect(d.pending).toBe(0);
      const got: Packet[] = [];
      new Decoder((q) => got.push(q)).push(encode(p));
      expect(got.map(canon)).toEqual([canon(p)]);
    }
  });

  it("the client's encoder refuses the packets only a broker sends; the full codec makes them", () => {
    for (const p of [
      { type: 2, sessionPresent: false, returnCode: 0 },
      { type: 9, id: 1, granted: [0] },
      { type: 11, id: 1 },
      { type: 13 },
    ] as Packet[]) {
      const e = thrown(() => encodeClient(p));
      expect([e.code, e.message]).toEqual([
        "INVALID_PACKET",
        `packet type ${p.type} is sent by a broker, not by a client`,
      ]);
      expect(encode(p).length).toBeGreaterThan(1);
    }
    for (const p of brokerOnly) expect(encodeClient(p)).toEqual(encode(p));
  });
});
