// One or more representative malformed inputs for every validation error code of the codec, both directions.
import { describe, expect, it } from "vitest";
import { encode, type Packet } from "../../src/mqtt/codec.ts";
import { connectBody, decode, decodeError, errorCode, frame, MQISDP, MQTT, str } from "../helpers/bytes.ts";

const pub = (over: Partial<Record<string, unknown>> = {}) =>
  ({ type: 3, topic: "a/b", payload: new Uint8Array([1]), qos: 0, retain: false, dup: false, ...over }) as Packet;
const conn = (over: Partial<Record<string, unknown>> = {}) =>
  ({ type: 1, level: 4, clientId: "c", clean: true, keepalive: 60, ...over }) as Packet;
const enc = (p: Packet, level?: 3 | 4 | 5) => errorCode(() => encode(p, level));

describe("MALFORMED_LENGTH", () => {
  it("remaining length over 4 bytes", () => {
    expect(decodeError(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0x80]))).toBe("MALFORMED_LENGTH");
    expect(decodeError(new Uint8Array([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBe("MALFORMED_LENGTH");
  });
  it("is raised on the 4th length byte, before a 5th arrives", () => {
    expect(decodeError(new Uint8Array([0xc0, 0x80, 0x80, 0x80, 0x80]))).toBe("MALFORMED_LENGTH");
  });
  it("the largest 4-byte length is a length, not an error", () => {
    // 268435455 is legal MQTT; with the default maximum it is merely too large
    expect(decodeError(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0x7f]))).toBe("PACKET_TOO_LARGE");
  });
  it("5.0 property variable byte integer over 4 bytes", () => {
    const body = connectBody(5, 2, [0x80, 0x80, 0x80, 0x80, 0x01, ...str("c")]);
    expect(decodeError(frame(0x10, body))).toBe("MALFORMED_LENGTH");
  });
});

describe("RESERVED_FLAGS", () => {
  it.each([
    ["CONNECT", 0x12, connectBody(4, 2)],
    ["CONNACK", 0x21, [0, 0]],
    ["PUBACK", 0x41, [0, 1]],
    ["SUBSCRIBE", 0x80, [0, 1, ...str("a"), 0]],
    ["SUBSCRIBE", 0x83, [0, 1, ...str("a"), 0]],
    ["SUBACK", 0x92, [0, 1, 0]],
    ["UNSUBSCRIBE", 0xa0, [0, 1, ...str("a")]],
    ["UNSUBACK", 0xb8, [0, 1]],
    ["PINGREQ", 0xc1, []],
    ["PINGRESP", 0xd4, []],
    ["DISCONNECT", 0xe2, []],
  ])("fixed header flags of %s (0x%s)", (_n, h, body) => {
    expect(decodeError(frame(h as number, body as number[]))).toBe("RESERVED_FLAGS");
  });
  it("is raised from the first byte alone", () => {
    expect(decodeError(new Uint8Array([0xc1]))).toBe("RESERVED_FLAGS");
  });
  it("DUP on a QoS 0 PUBLISH", () => {
    expect(decodeError(frame(0x38, [...str("a"), 1]))).toBe("RESERVED_FLAGS");
  });
  it("CONNECT flags bit 0", () => {
    expect(decodeError(frame(0x10, connectBody(4, 0x03)))).toBe("RESERVED_FLAGS");
  });
  it("will QoS or will retain without the will flag", () => {
    expect(decodeError(frame(0x10, connectBody(4, 0x22)))).toBe("RESERVED_FLAGS");
    expect(decodeError(frame(0x10, connectBody(4, 0x0a)))).toBe("RESERVED_FLAGS");
  });
  it("password without user name in 3.1/3.1.1 (allowed in 5.0)", () => {
    expect(decodeError(frame(0x10, connectBody(4, 0x42, [...str("c"), ...str("pw")])))).toBe("RESERVED_FLAGS");
    expect(decodeError(frame(0x10, connectBody(3, 0x42, [...str("c"), ...str("pw")])))).toBe("RESERVED_FLAGS");
    expect(decodeError(frame(0x10, connectBody(5, 0x42, [0, ...str("c"), ...str("pw")])))).toBeNull();
  });
  it("CONNACK acknowledge flags bits 7-1", () => {
    expect(decodeError(frame(0x20, [2, 0]))).toBe("RESERVED_FLAGS");
    expect(decodeError(frame(0x20, [0x80, 0]))).toBe("RESERVED_FLAGS");
  });
  it("SUBSCRIBE options bits 7-2 (3.1.1)", () => {
    expect(decodeError(frame(0x82, [0, 1, ...str("a"), 0x04]))).toBe("RESERVED_FLAGS");
    expect(decodeError(frame(0x82, [0, 1, ...str("a"), 0x80]))).toBe("RESERVED_FLAGS");
  });
});

describe("INVALID_QOS", () => {
  it("PUBLISH with QoS 3, from its first byte", () => {
    expect(decodeError(new Uint8Array([0x36]))).toBe("INVALID_QOS");
  });
  it("SUBSCRIBE requesting QoS 3", () => {
    expect(decodeError(frame(0x82, [0, 1, ...str("a"), 3]))).toBe("INVALID_QOS");
  });
  it("will QoS 3", () => {
    expect(decodeError(frame(0x10, connectBody(4, 0x1e, [...str("c"), ...str("w"), ...str("x")])))).toBe("INVALID_QOS");
  });
  it("encoder: QoS 3 or not a QoS", () => {
    expect(enc(pub({ qos: 3 }))).toBe("INVALID_QOS");
    expect(enc(pub({ qos: "1" }))).toBe("INVALID_QOS");
    expect(enc({ type: 8, id: 1, subscriptions: [{ topic: "a", qos: 3 as 0 }] })).toBe("INVALID_QOS");
    expect(enc(conn({ will: { topic: "w", payload: "x", qos: -1, retain: false } }))).toBe("INVALID_QOS");
  });
});

describe("QOS2_UNSUPPORTED", () => {
  it("PUBLISH with QoS 2, from its first byte", () => {
    expect(decodeError(new Uint8Array([0x34]))).toBe("QOS2_UNSUPPORTED");
    expect(decodeError(frame(0x34, [...str("a"), 0, 1]))).toBe("QOS2_UNSUPPORTED");
  });
  it.each([[0x50], [0x62], [0x70]])("PUBREC/PUBREL/PUBCOMP (0x%s)", (h) => {
    expect(decodeError(frame(h, [0, 1]))).toBe("QOS2_UNSUPPORTED");
  });
  it("SUBSCRIBE requesting QoS 2", () => {
    expect(decodeError(frame(0x82, [0, 1, ...str("a"), 2]))).toBe("QOS2_UNSUPPORTED");
  });
  it("will QoS 2", () => {
    expect(decodeError(frame(0x10, connectBody(4, 0x16, [...str("c"), ...str("w"), ...str("x")])))).toBe(
      "QOS2_UNSUPPORTED",
    );
  });
  it("encoder refuses QoS 2 everywhere", () => {
    expect(enc(pub({ qos: 2, id: 1 }))).toBe("QOS2_UNSUPPORTED");
    expect(enc({ type: 8, id: 1, subscriptions: [{ topic: "a", qos: 2 as 0 }] })).toBe("QOS2_UNSUPPORTED");
    expect(enc(conn({ will: { topic: "w", payload: "x", qos: 2, retain: false } }))).toBe("QOS2_UNSUPPORTED");
    for (const type of [5, 6, 7]) expect(enc({ type, id: 1 } as unknown as Packet)).toBe("QOS2_UNSUPPORTED");
  });
  it("a SUBACK granting QoS 2 is not an error (the broker decides; the session deals with it)", () => {
    expect(decode(frame(0x90, [0, 1, 2]))).toEqual([{ type: 9, id: 1, granted: [2] }]);
  });
});

describe("INVALID_STRING", () => {
  const topic = (bytes: number[]) => frame(0x30, [...str(bytes), 1]);
  it.each([
    ["U+0000", [0x61, 0x00]],
    ["overlong U+0000 (C0 80)", [0xc0, 0x80]],
    ["overlong 2-byte (C1 BF)", [0xc1, 0xbf]],
    ["overlong 3-byte (E0 80 AF)", [0xe0, 0x80, 0xaf]],
    ["overlong 4-byte (F0 8F BF BF)", [0xf0, 0x8f, 0xbf, 0xbf]],
    ["encoded high surrogate (ED A0 80)", [0xed, 0xa0, 0x80]],
    ["encoded low surrogate (ED BF BF)", [0xed, 0xbf, 0xbf]],
    ["above U+10FFFF (F4 90 80 80)", [0xf4, 0x90, 0x80, 0x80]],
    ["F5 lead byte", [0xf5, 0x80, 0x80, 0x80]],
    ["FF byte", [0x61, 0xff]],
    ["bare continuation byte", [0x80]],
    ["truncated 2-byte sequence", [0x61, 0xc3]],
    ["truncated 3-byte sequence", [0xe2, 0x82]],
    ["lead byte followed by ASCII", [0xc3, 0x41]],
  ])("decoder: %s", (_n, bytes) => {
    expect(decodeError(topic(bytes))).toBe("INVALID_STRING");
  });
  it("decoder: in every string field (client ID, will topic, user name, filters, 5.0 properties)", () => {
    const bad = [0xc0, 0x80];
    expect(decodeError(frame(0x10, connectBody(4, 2, str(bad))))).toBe("INVALID_STRING");
    expect(decodeError(frame(0x10, connectBody(4, 6, [...str("c"), ...str(bad), ...str("x")])))).toBe("INVALID_STRING");
    expect(decodeError(frame(0x10, connectBody(4, 0x82, [...str("c"), ...str(bad)])))).toBe("INVALID_STRING");
    expect(decodeError(frame(0x82, [0, 1, ...str(bad), 0]))).toBe("INVALID_STRING");
    expect(decodeError(frame(0xa2, [0, 1, ...str(bad)]))).toBe("INVALID_STRING");
    expect(decodeError(frame(0x10, connectBody(5, 2, [5, 0x15, ...str(bad), ...str("c")])))).toBe("INVALID_STRING");
  });
  it("decoder: valid multi-byte UTF-8 is fine, at each length", () => {
    const s = "é€😀";
    expect(decode(frame(0x30, [...str(s)]))).toMatchObject([{ topic: s }]);
  });
  it("decoder: a password, will payload or publish payload is bytes, not a string", () => {
    const [p] = decode(frame(0x10, connectBody(4, 0xc2, [...str("c"), ...str("u"), ...str([0, 0xff, 0xc0])])));
    expect(p).toMatchObject({ password: new Uint8Array([0, 0xff, 0xc0]) });
  });
  it("encoder: U+0000 or a lone surrogate in an MQTT string", () => {
    expect(enc(pub({ topic: "a\u0000" }))).toBe("INVALID_STRING");
    expect(enc(pub({ topic: "a\ud800" }))).toBe("INVALID_STRING");
    expect(enc(pub({ topic: "\udc00a" }))).toBe("INVALID_STRING");
    expect(enc(pub({ topic: "a\ud800\ud800" }))).toBe("INVALID_STRING");
    expect(enc(conn({ clientId: "c\u0000" }))).toBe("INVALID_STRING");
    expect(enc(conn({ username: "\ud83d" }))).toBe("INVALID_STRING");
    expect(enc({ type: 10, id: 1, topics: ["a\u0000"] })).toBe("INVALID_STRING");
    expect(enc(conn({ level: 5, properties: { userProperties: [["k", "\u0000"]] } }))).toBe("INVALID_STRING");
  });
  it("encoder: a string longer than 65535 bytes", () => {
    expect(enc(pub({ topic: "x".repeat(65536) }))).toBe("INVALID_STRING");
    expect(enc(pub({ topic: "é".repeat(32768) }))).toBe("INVALID_STRING");
    expect(enc(pub({ topic: "x".repeat(65535) }))).toBeNull();
  });
  it("encoder: U+0000 in a string payload or password is data, not an error", () => {
    expect([...encode(pub({ payload: "a\u0000b" }))].slice(-3)).toEqual([0x61, 0, 0x62]);
    expect([...encode(conn({ username: "u", password: "\u0000" }))].slice(-3)).toEqual([0, 1, 0]);
    expect([...encode(conn({ will: { topic: "w", payload: "\u0000", qos: 0, retain: false } }))].slice(-3)).toEqual([
      0, 1, 0,
    ]);
  });
  it("encoder: a lone surrogate in a string payload cannot be UTF-8", () => {
    expect(enc(pub({ payload: "\ud800" }))).toBe("INVALID_STRING");
  });
});

describe("INVALID_TOPIC", () => {
  it("decoder: empty or wildcard PUBLISH topic", () => {
    expect(decodeError(frame(0x30, [0, 0, 1]))).toBe("INVALID_TOPIC");
    expect(decodeError(frame(0x30, [...str("a/+"), 1]))).toBe("INVALID_TOPIC");
    expect(decodeError(frame(0x30, [...str("a/#")]))).toBe("INVALID_TOPIC");
    expect(decodeError(frame(0x32, [...str("+"), 0, 1]))).toBe("INVALID_TOPIC");
  });
  it("decoder: empty or wildcard will topic", () => {
    expect(decodeError(frame(0x10, connectBody(4, 6, [...str("c"), ...str(""), ...str("x")])))).toBe("INVALID_TOPIC");
    expect(decodeError(frame(0x10, connectBody(4, 6, [...str("c"), ...str("w/#"), ...str("x")])))).toBe(
      "INVALID_TOPIC",
    );
  });
  it("encoder: empty, missing or wildcard topic", () => {
    expect(enc(pub({ topic: "" }))).toBe("INVALID_TOPIC");
    expect(enc(pub({ topic: "a+" }))).toBe("INVALID_TOPIC");
    expect(enc(pub({ topic: "#" }))).toBe("INVALID_TOPIC");
    expect(enc(pub({ topic: undefined }))).toBe("INVALID_TOPIC");
    expect(enc(conn({ will: { topic: "w/+", payload: "", qos: 0, retain: false } }))).toBe("INVALID_TOPIC");
    expect(enc(conn({ will: { payload: "", qos: 0, retain: false } }))).toBe("INVALID_TOPIC");
  });
});

describe("INVALID_FILTER", () => {
  const bad = ["", "a+", "+a", "a/b+", "#/a", "a/#/b", "a#", "##", "a/++", "+#"];
  const good = ["#", "+", "/", "//", "+/+", "a/+/b", "a/#", "/#", "+/#", "$SYS/#", "a//b", "+/"];
  it.each(bad)("decoder: SUBSCRIBE and UNSUBSCRIBE refuse %j", (f) => {
    expect(decodeError(frame(0x82, [0, 1, ...str(f), 0]))).toBe("INVALID_FILTER");
    expect(decodeError(frame(0xa2, [0, 1, ...str(f)]))).toBe("INVALID_FILTER");
  });
  it.each(bad)("encoder: SUBSCRIBE and UNSUBSCRIBE refuse %j", (f) => {
    expect(
      enc({
        type: 8,
        id: 1,
        subscriptions: [
          { topic: "ok", qos: 0 },
          { topic: f, qos: 0 },
        ],
      }),
    ).toBe("INVALID_FILTER");
    expect(enc({ type: 10, id: 1, topics: ["ok", f] })).toBe("INVALID_FILTER");
  });
  it.each(good)("both sides accept %j", (f) => {
    expect(decode(encode({ type: 8, id: 1, subscriptions: [{ topic: f, qos: 1 }] }))).toEqual([
      { type: 8, id: 1, subscriptions: [{ topic: f, qos: 1 }] },
    ]);
    expect(decode(encode({ type: 10, id: 1, topics: [f] }))).toEqual([{ type: 10, id: 1, topics: [f] }]);
  });
});

describe("BAD_RETURN_CODE", () => {
  it("SUBACK codes other than 0, 1, 2, 0x80", () => {
    expect(decodeError(frame(0x90, [0, 1, 0, 3]))).toBe("BAD_RETURN_CODE");
    expect(decodeError(frame(0x90, [0, 1, 0x79]))).toBe("BAD_RETURN_CODE");
    expect(decodeError(frame(0x90, [0, 1, 0x81]))).toBe("BAD_RETURN_CODE");
    expect(enc({ type: 9, id: 1, granted: [0, 3] })).toBe("BAD_RETURN_CODE");
    expect(enc({ type: 9, id: 1, granted: [0x81] })).toBe("BAD_RETURN_CODE");
  });
  it("CONNACK 3.1.1 return codes above 5", () => {
    expect(decodeError(frame(0x20, [0, 6]))).toBe("BAD_RETURN_CODE");
    expect(decodeError(frame(0x20, [0, 0x80]))).toBe("BAD_RETURN_CODE");
    expect(decodeError(frame(0x20, [0, 6]), { level: 3 })).toBe("BAD_RETURN_CODE");
    expect(enc({ type: 2, sessionPresent: false, returnCode: 6 })).toBe("BAD_RETURN_CODE");
    expect(enc({ type: 2, sessionPresent: false, returnCode: "5" as unknown as number })).toBe("BAD_RETURN_CODE");
  });
  it("CONNACK 5.0 reason codes outside the CONNACK set", () => {
    expect(decodeError(frame(0x20, [0, 0x8b, 0]), { level: 5 })).toBe("BAD_RETURN_CODE");
    expect(decodeError(frame(0x20, [0, 0x10, 0]), { level: 5 })).toBe("BAD_RETURN_CODE");
    expect(decodeError(frame(0x20, [0, 1, 0]), { level: 5 })).toBe("BAD_RETURN_CODE"); // 5.0 form: 3.1.1 codes do not apply
    expect(enc({ type: 2, sessionPresent: false, returnCode: 1 }, 5)).toBe("BAD_RETURN_CODE");
    expect(enc({ type: 2, sessionPresent: false, returnCode: 0x8b }, 5)).toBe("BAD_RETURN_CODE");
  });
  it("a 5.0 connection accepts a CONNACK in 3.1.1 form (how a 3.1.1-only broker refuses a 5.0 CONNECT)", () => {
    expect(decode(frame(0x20, [0, 1]), { level: 5 })).toEqual([{ type: 2, sessionPresent: false, returnCode: 1 }]);
    expect(decode(frame(0x20, [0, 0x84]), { level: 5 })).toEqual([
      { type: 2, sessionPresent: false, returnCode: 0x84 },
    ]);
    expect(decodeError(frame(0x20, [0, 6]), { level: 5 })).toBe("BAD_RETURN_CODE");
    expect(decodeError(frame(0x20, [0, 0x8b]), { level: 5 })).toBe("BAD_RETURN_CODE");
  });
});

describe("TRUNCATED", () => {
  it("a body shorter than its fields", () => {
    expect(decodeError(frame(0x40, [0]))).toBe("TRUNCATED"); // PUBACK with half an id
    expect(decodeError(frame(0x30, [0, 5, 0x61]))).toBe("TRUNCATED"); // topic longer than the packet
    expect(decodeError(frame(0x32, [...str("a"), 0]))).toBe("TRUNCATED"); // QoS 1 without a whole id
    expect(decodeError(frame(0x20, [0]))).toBe("TRUNCATED");
    expect(decodeError(frame(0x10, [...MQTT, 4, 2, 0]))).toBe("TRUNCATED");
    expect(decodeError(frame(0x10, connectBody(4, 0xc2, [...str("c"), ...str("u")])))).toBe("TRUNCATED"); // no password
    expect(decodeError(frame(0x82, [0, 1, ...str("a")]))).toBe("TRUNCATED"); // filter without its QoS
  });
  it("SUBSCRIBE, SUBACK, UNSUBSCRIBE without a payload", () => {
    expect(decodeError(frame(0x82, [0, 1]))).toBe("TRUNCATED");
    expect(decodeError(frame(0x90, [0, 1]))).toBe("TRUNCATED");
    expect(decodeError(frame(0xa2, [0, 1]))).toBe("TRUNCATED");
  });
  it("5.0 properties longer than the packet", () => {
    expect(decodeError(frame(0x10, connectBody(5, 2, [20, 0x11, 0, 0, 0, 1])))).toBe("TRUNCATED");
  });
  it("the stream ends mid-packet: finish()", () => {
    expect(decodeError(new Uint8Array([0xc0]))).toBe("TRUNCATED"); // header only
    expect(decodeError(new Uint8Array([0x30, 0x80]))).toBe("TRUNCATED"); // mid length
    expect(decodeError(new Uint8Array([0x30, 5, 0, 1]))).toBe("TRUNCATED"); // mid body
  });
});

describe("TRAILING_BYTES", () => {
  it("a body longer than its fields", () => {
    expect(decodeError(frame(0x40, [0, 1, 0]))).toBe("TRAILING_BYTES");
    expect(decodeError(frame(0xb0, [0, 1, 0, 0]))).toBe("TRAILING_BYTES");
    expect(decodeError(frame(0xc0, [0]))).toBe("TRAILING_BYTES");
    expect(decodeError(frame(0xd0, [0]))).toBe("TRAILING_BYTES");
    expect(decodeError(frame(0xe0, [0]))).toBe("TRAILING_BYTES");
    expect(decodeError(frame(0x20, [0, 0, 0]))).toBe("TRAILING_BYTES");
    expect(decodeError(frame(0x10, connectBody(4, 2, [...str("c"), 9])))).toBe("TRAILING_BYTES");
  });
});

describe("UNKNOWN_PACKET", () => {
  it("packet types 0 and 15, from the first byte", () => {
    expect(decodeError(new Uint8Array([0x00]))).toBe("UNKNOWN_PACKET");
    expect(decodeError(new Uint8Array([0xf0, 0]))).toBe("UNKNOWN_PACKET");
  });
  it("5.0 packets this codec does not have yet", () => {
    for (const h of [0x30, 0x40, 0x82, 0x90, 0xa2, 0xb0, 0xe0])
      expect(decodeError(frame(h, [0, 1]), { level: 5 })).toBe("UNKNOWN_PACKET");
    expect(decode(frame(0xc0), { level: 5 })).toEqual([{ type: 12 }]);
    expect(decode(frame(0xd0), { level: 5 })).toEqual([{ type: 13 }]);
  });
  it("encoder: an unknown type, or a 5.0 packet not supported yet", () => {
    expect(enc({ type: 0 } as unknown as Packet)).toBe("INVALID_PACKET");
    expect(enc({ type: 15 } as unknown as Packet)).toBe("INVALID_PACKET");
    expect(enc(pub(), 5)).toBe("INVALID_PACKET");
    expect(enc({ type: 14 }, 5)).toBe("INVALID_PACKET");
  });
});

describe("PROTOCOL_MISMATCH", () => {
  it.each([
    ["MQTT level 3", MQTT, 3],
    ["MQIsdp level 4", MQISDP, 4],
    ["MQIsdp level 5", MQISDP, 5],
    ["MQTT level 6", MQTT, 6],
    ["MQTT level 2", MQTT, 2],
    ["lower case mqtt", str("mqtt"), 4],
    ["bridge mode 0x84", MQTT, 0x84],
    ["empty name", str(""), 4],
  ])("%s", (_n, name, level) => {
    expect(decodeError(frame(0x10, connectBody(level as number, 2, str("c"), name as number[])))).toBe(
      "PROTOCOL_MISMATCH",
    );
  });
  it("encoder: unsupported level", () => {
    expect(enc(conn({ level: 6 }))).toBe("PROTOCOL_MISMATCH");
    expect(enc(conn({ level: 0x84 }))).toBe("PROTOCOL_MISMATCH");
  });
});

describe("INVALID_PROPERTY", () => {
  const props = (p: number[]) => frame(0x10, connectBody(5, 2, [p.length, ...p, ...str("c")]));
  it("unknown property", () => {
    expect(decodeError(props([0x7e, 1]))).toBe("INVALID_PROPERTY");
    expect(decodeError(props([0x00]))).toBe("INVALID_PROPERTY");
  });
  it("a property not allowed in the packet", () => {
    expect(decodeError(props([0x24, 1]))).toBe("INVALID_PROPERTY"); // Maximum QoS is a CONNACK property
    expect(decodeError(props([0x23, 0, 1]))).toBe("INVALID_PROPERTY"); // Topic Alias is a PUBLISH property
    expect(decodeError(frame(0x20, [0, 0, 2, 0x19, 1]), { level: 5 })).toBe("INVALID_PROPERTY"); // Request Response Information
    expect(decodeError(frame(0x10, connectBody(5, 6, [0, ...str("c"), 2, 0x11, 0, ...str("w"), ...str("x")])))).toBe(
      "INVALID_PROPERTY",
    );
  });
  it("a property twice (user properties may repeat)", () => {
    expect(decodeError(props([0x21, 0, 1, 0x21, 0, 2]))).toBe("INVALID_PROPERTY");
    expect(decodeError(props([0x26, ...str("a"), ...str("b"), 0x26, ...str("a"), ...str("b")]))).toBeNull();
  });
  it("a one-byte property other than 0 or 1 (every one-byte 5.0 property is a 0/1 flag)", () => {
    expect(decodeError(props([0x17, 2]))).toBe("INVALID_PROPERTY"); // Request Problem Information
    expect(decodeError(props([0x19, 0xff]))).toBe("INVALID_PROPERTY"); // Request Response Information
    expect(decodeError(props([0x17, 1, 0x19, 0]))).toBeNull();
    for (const id of [0x24, 0x25, 0x28, 0x29, 0x2a]) {
      expect(decodeError(frame(0x20, [0, 0, 2, id, 2]), { level: 5 })).toBe("INVALID_PROPERTY");
      expect(decodeError(frame(0x20, [0, 0, 2, id, 1]), { level: 5 })).toBeNull();
    }
    expect(decodeError(frame(0x10, connectBody(5, 6, [0, ...str("c"), 2, 0x01, 2, ...str("w"), ...str("x")])))).toBe(
      "INVALID_PROPERTY",
    );
  });
  it("a property running past the declared property length", () => {
    // declared 3 bytes, but Session Expiry Interval needs 5
    expect(decodeError(frame(0x10, connectBody(5, 2, [3, 0x11, 0, 0, 0, 1, ...str("c")])))).toBe("INVALID_PROPERTY");
  });
  it("encoder: unknown or misplaced names, out-of-range values, oversized binary data", () => {
    const c5 = (properties: object) => enc(conn({ level: 5, properties }));
    expect(c5({ nonsense: 1 })).toBe("INVALID_PROPERTY");
    expect(c5({ maximumQoS: 1 })).toBe("INVALID_PROPERTY");
    expect(c5({ receiveMaximum: 65536 })).toBe("INVALID_PROPERTY");
    expect(c5({ sessionExpiryInterval: -1 })).toBe("INVALID_PROPERTY");
    expect(c5({ sessionExpiryInterval: 1.5 })).toBe("INVALID_PROPERTY");
    expect(c5({ requestProblemInformation: true })).toBe("INVALID_PROPERTY");
    expect(c5({ requestProblemInformation: 2 })).toBe("INVALID_PROPERTY");
    expect(enc({ type: 2, sessionPresent: false, returnCode: 0, properties: { maximumQoS: 2 } }, 5)).toBe(
      "INVALID_PROPERTY",
    );
    expect(c5({ authenticationData: new Uint8Array(65536) })).toBe("INVALID_PROPERTY");
    expect(c5({ authenticationData: new Uint8Array(65535) })).toBeNull();
    expect(
      enc({ type: 2, sessionPresent: false, returnCode: 0, properties: { requestProblemInformation: 1 } as object }, 5),
    ).toBe("INVALID_PROPERTY");
    expect(
      enc(
        conn({
          level: 5,
          will: {
            topic: "w",
            payload: "",
            qos: 0,
            retain: false,
            properties: { correlationData: new Uint8Array(70000) },
          },
        }),
      ),
    ).toBe("INVALID_PROPERTY");
  });
});

describe("PACKET_TOO_LARGE", () => {
  it("a packet over maxPacketSize, counted whole (fixed header included)", () => {
    const p = encode(pub({ payload: new Uint8Array(10) })); // 2 + 2 + 3 + 10 = 17 bytes
    expect(p.length).toBe(17);
    expect(decodeError(p, { maxPacketSize: 16 })).toBe("PACKET_TOO_LARGE");
    expect(decodeError(p, { maxPacketSize: 17 })).toBeNull();
  });
});

describe("INVALID_PACKET", () => {
  it("decoder: packet identifier 0", () => {
    expect(decodeError(frame(0x40, [0, 0]))).toBe("INVALID_PACKET");
    expect(decodeError(frame(0x32, [...str("a"), 0, 0]))).toBe("INVALID_PACKET");
    expect(decodeError(frame(0x82, [0, 0, ...str("a"), 0]))).toBe("INVALID_PACKET");
  });
  it("encoder: packet identifiers outside 1..65535", () => {
    for (const id of [0, -1, 65536, 1.5, "1", undefined]) {
      expect(enc(pub({ qos: 1, id }))).toBe("INVALID_PACKET");
      expect(enc({ type: 4, id } as unknown as Packet)).toBe("INVALID_PACKET");
    }
  });
  it("encoder: DUP on QoS 0, empty SUBSCRIBE/SUBACK/UNSUBSCRIBE lists, bad keepalive", () => {
    expect(enc(pub({ dup: true }))).toBe("INVALID_PACKET");
    expect(enc({ type: 8, id: 1, subscriptions: [] })).toBe("INVALID_PACKET");
    expect(enc({ type: 9, id: 1, granted: [] })).toBe("INVALID_PACKET");
    expect(enc({ type: 10, id: 1, topics: [] })).toBe("INVALID_PACKET");
    for (const keepalive of [-1, 65536, 1.5, "60"]) expect(enc(conn({ keepalive }))).toBe("INVALID_PACKET");
  });
  it("encoder: password without user name in 3.1/3.1.1", () => {
    expect(enc(conn({ password: "p" }))).toBe("INVALID_PACKET");
    expect(enc(conn({ level: 3, password: "p" }))).toBe("INVALID_PACKET");
    expect(enc(conn({ level: 5, password: "p" }))).toBeNull();
  });
  it("encoder: empty client ID in 3.1, or in 3.1.1 without a clean session [MQTT-3.1.3-7]", () => {
    expect(enc(conn({ level: 3, clientId: "" }))).toBe("INVALID_PACKET");
    expect(enc(conn({ level: 4, clientId: "", clean: false }))).toBe("INVALID_PACKET");
    expect(enc(conn({ level: 4, clientId: "", clean: true }))).toBeNull();
    expect(enc(conn({ level: 5, clientId: "", clean: false }))).toBeNull(); // 5.0: the broker assigns one
  });
  it("decoder: an empty client ID is the broker's to refuse (CONNACK 2), not malformed", () => {
    expect(decode(frame(0x10, connectBody(4, 0, str(""))))).toMatchObject([{ clientId: "", clean: false }]);
  });
  it("encoder: fields of the wrong type are refused, never encoded as garbage", () => {
    expect(enc({ type: 10, id: 1, topics: 5 } as unknown as Packet)).toBe("INVALID_PACKET");
    expect(enc({ type: 8, id: 1, subscriptions: {} } as unknown as Packet)).toBe("INVALID_PACKET");
    expect(enc({ type: 9, id: 1, granted: 0 } as unknown as Packet)).toBe("INVALID_PACKET");
    expect(enc(conn({ username: 42 }))).toBe("INVALID_PACKET");
    expect(enc(conn({ username: "u", password: 42 }))).toBe("INVALID_PACKET");
    expect(enc(conn({ will: { topic: "w", payload: 42, qos: 0, retain: false } }))).toBe("INVALID_PACKET");
    expect(enc(pub({ payload: 42 }))).toBe("INVALID_PACKET");
  });
  it("encoder: a packet over 256 MB", () => {
    expect(enc(pub({ topic: "t", payload: new Uint8Array(268435455 - 3 + 1) }))).toBe("INVALID_PACKET");
  });
});
