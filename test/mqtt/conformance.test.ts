// Conformance against mqtt-packet: every fixture of its own test suite (node_modules/mqtt-packet/test.js), through
// an adapter to our packet model. Parse/generate fixtures: our encoder is byte-exact with the fixture's bytes and our
// decoder (fed a Uint8Array) gives the fixture's fields. Parse-error fixtures: our decoder rejects the bytes.
// Generate-error fixtures: our encoder refuses the packet. What our model cannot carry is excluded with a reason;
// fixtures excluded only for QoS 2 are also run as derived variants with QoS 1 in both the object and the bytes.
import { afterAll, describe, expect, it } from "vitest";
import { Decoder, encode, MqttError, type Packet, type ProtocolLevel } from "../../src/mqtt/codec.ts";
import { canon, fromHex, hex } from "../helpers/canon.ts";
import {
  fixtureLevel,
  hasQos2,
  loadFixtures,
  mqttPacket,
  QOS2_TO_1,
  REASON,
  STRICTER,
  toModel,
  Unsupported,
  type Fixture,
  type Loose,
} from "../helpers/mqtt-packet-fixtures.ts";

const fixtures = loadFixtures();

type Status = "passed" | "excluded";
const outcomes: { name: string; kind: string; status: Status; reason?: string; derived?: boolean }[] = [];
const rejectCodes = new Map<string, number>();
const excludedCodes = new Map<string, number>();

const view = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

function decodeAll(bytes: Uint8Array, level: ProtocolLevel): Packet[] {
  const out: Packet[] = [];
  const d = new Decoder((p) => out.push(p), { level, maxPacketSize: 268435460 });
  d.push(bytes);
  d.finish();
  return out;
}

function sameBytes(ours: Uint8Array, theirs: Uint8Array): void {
  if (ours.length < 4096 && theirs.length < 4096) expect(hex(ours)).toBe(hex(theirs));
  else {
    expect(ours.length).toBe(theirs.length);
    expect(
      Buffer.compare(
        Buffer.from(ours.buffer, ours.byteOffset, ours.length),
        Buffer.from(theirs.buffer, theirs.byteOffset, theirs.length),
      ),
    ).toBe(0);
  }
}

/** Why our decoder rejects `bytes`: the MqttError code, "TRUNCATED" from finish(), or null if it accepts them. */
function rejection(bytes: Uint8Array, level: ProtocolLevel): string | null {
  const d = new Decoder(() => {}, { level });
  try {
    d.push(bytes);
    d.finish();
    return null;
  } catch (e) {
    if (!(e instanceof MqttError)) throw e;
    return e.code;
  }
}

function runParseGenerate(f: Fixture, object: Loose, parsed: Loose, buffer: Buffer): void {
  const level = fixtureLevel(f.opts);
  if (f.kind !== "parseOnly") {
    const g = toModel(object, { level });
    sameBytes(encode(g.packet, g.level), view(buffer));
  }
  if (f.kind !== "generateOnly") {
    // test.js compares parsed packets with normalExpectedObject(expected): a string password is expected as bytes
    const expected = parsed.password != null ? { ...parsed, password: Buffer.from(parsed.password) } : parsed;
    const want = toModel(expected, { level });
    const got = decodeAll(view(buffer), level);
    expect(got.length).toBe(1);
    expect(canon(got[0])).toStrictEqual(canon(want.packet));
  }
}

/** The reason a fixture is excluded, or undefined if it runs as it is. */
function exclusion(f: Fixture): string | undefined {
  if (STRICTER[f.name] && f.kind !== "parseError" && f.kind !== "generateError") return STRICTER[f.name].reason;
  const level = fixtureLevel(f.opts);
  try {
    if (f.object !== undefined) toModel(f.object, { level, downgrade: f.kind === "generateError" });
    if (f.parsed !== undefined) toModel(f.parsed, { level });
  } catch (e) {
    if (e instanceof Unsupported) return e.message;
    throw e;
  }
  return undefined;
}

describe("mqtt-packet fixtures", () => {
  it("loads the fixtures of mqtt-packet's test suite", () => {
    expect(fixtures.length).toBeGreaterThan(150);
    const kinds = new Set(fixtures.map((f) => f.kind));
    expect([...kinds].sort()).toEqual(["generateError", "generateOnly", "parseError", "parseGenerate", "parseOnly"]);
  });

  fixtures.forEach((f, i) => {
    const title = `#${i} ${f.helper}: ${f.name}`;
    const reason = exclusion(f);
    if (reason !== undefined) {
      it(`${title} (excluded)`, () => {
        // Keep the exclusion honest: what we do not support, our decoder refuses; it never misreads it.
        if (f.buffer) {
          const code = rejection(view(f.buffer), fixtureLevel(f.opts));
          expect(code, `accepted ${hex(f.buffer)}`).not.toBeNull();
          excludedCodes.set(code as string, (excludedCodes.get(code as string) ?? 0) + 1);
        }
        // ... and what the spec forbids, our encoder refuses too.
        if (STRICTER[f.name] && f.object) {
          const g = toModel(f.object, { level: fixtureLevel(f.opts) });
          expect(() => encode(g.packet, g.level)).toThrow(MqttError);
        }
        outcomes.push({ name: f.name, kind: f.kind, status: "excluded", reason });
      });
      const derive =
        STRICTER[f.name]?.derive ??
        (reason === REASON.QOS2 && (hasQos2(f.object) || hasQos2(f.parsed)) && f.kind !== "parseError"
          ? QOS2_TO_1
          : undefined);
      if (derive && f.buffer) {
        it(`${title} (derived: ${derive.what})`, () => {
          const obj = f.object && derive.object(f.object);
          const parsed = f.parsed && derive.object(f.parsed);
          const bytes = derive.bytes(f.buffer as Buffer);
          // mqtt-packet agrees with the derived pair, so it is still an external oracle.
          if (obj) expect(mqttPacket.generate(obj, f.opts).toString("hex")).toBe(bytes.toString("hex"));
          runParseGenerate(f, obj, parsed, bytes);
          outcomes.push({ name: f.name, kind: f.kind, status: "passed", derived: true });
        });
      }
      return;
    }
    it(title, () => {
      const level = fixtureLevel(f.opts);
      switch (f.kind) {
        case "parseError": {
          const code = rejection(view(f.buffer as Buffer), level);
          expect(code, `accepted ${hex(f.buffer as Buffer)}`).not.toBeNull();
          rejectCodes.set(code as string, (rejectCodes.get(code as string) ?? 0) + 1);
          break;
        }
        case "generateError": {
          const g = toModel(f.object, { level, downgrade: true });
          let thrown: unknown;
          try {
            encode(g.packet, g.level);
          } catch (e) {
            thrown = e;
          }
          expect(thrown, "encoder accepted it").toBeInstanceOf(MqttError);
          rejectCodes.set(
            `encode:${(thrown as MqttError).code}`,
            (rejectCodes.get(`encode:${(thrown as MqttError).code}`) ?? 0) + 1,
          );
          break;
        }
        default:
          runParseGenerate(f, f.object, f.parsed, f.buffer as Buffer);
      }
      outcomes.push({ name: f.name, kind: f.kind, status: "passed" });
    });
  });

  it("accounts for every fixture: each one passed or was excluded with a known reason", () => {
    const original = outcomes.filter((o) => !o.derived);
    expect(original).toHaveLength(fixtures.length);
    const known = new Set<string>([...Object.values(REASON), ...Object.values(STRICTER).map((x) => x.reason)]);
    for (const o of original) if (o.status === "excluded") expect(known).toContain(o.reason);
    // parse-error fixtures are never excluded: whatever mqtt-packet refuses, we refuse
    expect(original.filter((o) => o.kind === "parseError" && o.status !== "passed")).toEqual([]);
  });

  afterAll(() => {
    const original = outcomes.filter((o) => !o.derived);
    const count = (m: Map<string, number>) => [...m].map(([c, n]) => `${c} ${n}`).join(", ");
    const byReason = new Map<string, number>();
    for (const o of original)
      if (o.status === "excluded") byReason.set(o.reason as string, (byReason.get(o.reason as string) ?? 0) + 1);
    const byKind = new Map<string, string>();
    for (const k of ["parseGenerate", "parseOnly", "generateOnly", "parseError", "generateError"]) {
      const of = original.filter((o) => o.kind === k);
      byKind.set(k, `${of.filter((o) => o.status === "passed").length}/${of.length}`);
    }
    const passed = original.filter((o) => o.status === "passed").length;
    const derived = outcomes.filter((o) => o.derived).length;
    console.log(
      [
        `mqtt-packet fixtures: ${fixtures.length} loaded, ${original.length} ran, ${passed} passed, ${original.length - passed} excluded;` +
          ` ${derived} derived variants of excluded fixtures passed (QoS 2 -> 1, Maximum QoS 2 -> 1)`,
        `  passed by kind: ${count(byKind as unknown as Map<string, number>)}`,
        ...[...byReason].map(([r, n]) => `  excluded ${n}: ${r}`),
        `  how we refuse the error fixtures: ${count(rejectCodes)}`,
        `  how our decoder refuses the bytes of excluded fixtures: ${count(excludedCodes)}`,
      ].join("\n"),
    );
  });
});

describe("captured MQTT 5.0 vectors (MQTTX CLI against EMQX, docs/brokers.md)", () => {
  const CONNECT =
    "10 2f 00 04 4d 51 54 54 05 c2 00 3c 05 11 00 00 01 2c 00 0e 6d 71 74 74 78 5f 30 63 36 36 38 64 30 64 00 05 61 64 6d 69 6e 00 06 70 75 62 6c 69 63";
  const CONNACK = "20 13 00 00 10 27 00 10 00 00 25 01 2a 01 29 01 22 ff ff 28 01";

  it("decodes the CONNECT to its fields and re-encodes it byte for byte", () => {
    const bytes = fromHex(CONNECT);
    const [p] = decodeAll(bytes, 4);
    expect(canon(p)).toStrictEqual(
      canon({
        type: 1,
        level: 5,
        clean: true,
        keepalive: 60,
        properties: { sessionExpiryInterval: 300 },
        clientId: "mqttx_0c668d0d",
        username: "admin",
        password: new TextEncoder().encode("public"),
      }),
    );
    expect(hex(encode(p))).toBe(hex(bytes));
    // mqtt-packet reads the same fields
    let theirs: Loose;
    mqttPacket
      .parser({ protocolVersion: 5 })
      .on("packet", (x) => (theirs = x))
      .parse(Buffer.from(bytes));
    expect(canon(toModel(theirs, { level: 5 }).packet)).toStrictEqual(canon(p));
  });

  it("decodes the CONNACK to its fields and re-encodes it byte for byte", () => {
    const bytes = fromHex(CONNACK);
    const [p] = decodeAll(bytes, 5);
    expect(canon(p)).toStrictEqual(
      canon({
        type: 2,
        sessionPresent: false,
        returnCode: 0,
        properties: {
          maximumPacketSize: 1048576,
          retainAvailable: 1,
          sharedSubscriptionAvailable: 1,
          subscriptionIdentifiersAvailable: 1,
          topicAliasMaximum: 65535,
          wildcardSubscriptionAvailable: 1,
        },
      }),
    );
    // wire order of the properties is kept, so re-encoding is byte-exact
    expect(Object.keys((p as { properties: object }).properties)).toEqual([
      "maximumPacketSize",
      "retainAvailable",
      "sharedSubscriptionAvailable",
      "subscriptionIdentifiersAvailable",
      "topicAliasMaximum",
      "wildcardSubscriptionAvailable",
    ]);
    expect(hex(encode(p, 5))).toBe(hex(bytes));
    let theirs: Loose;
    mqttPacket
      .parser({ protocolVersion: 5 })
      .on("packet", (x) => (theirs = x))
      .parse(Buffer.from(bytes));
    expect(canon(toModel(theirs, { level: 5 }).packet)).toStrictEqual(canon(p));
  });
});
