// fast-check arbitraries for valid packets of our model, per protocol level. `compat` restricts them to what
// mqtt-packet's generate can express the same way (password only with a user name, a client ID unless clean,
// user properties grouped by name), so encode() can be compared with it byte for byte.
import fc from "fast-check";
import type {
  ConnackPacket,
  ConnectPacket,
  Packet,
  ProtocolLevel,
  PublishPacket,
  UserProperty,
} from "../../src/mqtt/codec.ts";
import { mqttPacketPairOrder } from "./mqtt-packet-fixtures.ts";

export const CONNACK_V5_CODES = [
  0, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c,
  0x9d, 0x9f,
];

/** Mostly ASCII (no U+0000), with 2-, 3- and 4-byte UTF-8 characters mixed in. */
const char = fc
  .oneof(
    { weight: 8, arbitrary: fc.integer({ min: 1, max: 0x7f }) },
    { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0x7ff }) },
    { weight: 1, arbitrary: fc.integer({ min: 0x800, max: 0xfffd }).filter((c) => c < 0xd800 || c > 0xdfff) },
    { weight: 1, arbitrary: fc.integer({ min: 0x10000, max: 0x10ffff }) },
  )
  .map((c) => String.fromCodePoint(c));

export const mqttString = (maxLength = 10, minLength = 0) => fc.string({ unit: char, minLength, maxLength });

const levelChar = fc
  .oneof({ weight: 9, arbitrary: char }, { weight: 1, arbitrary: fc.constant("$") })
  .filter((c) => c !== "/" && c !== "+" && c !== "#");
const topicLevel = fc.string({ unit: levelChar, maxLength: 6 });

export const topicName = fc
  .array(topicLevel, { minLength: 1, maxLength: 4 })
  .map((l) => l.join("/"))
  .filter((t) => t.length > 0);

export const topicFilter = fc
  .oneof(
    { weight: 1, arbitrary: fc.constant("#") },
    {
      weight: 9,
      arbitrary: fc
        .tuple(
          fc.array(fc.oneof({ weight: 3, arbitrary: topicLevel }, { weight: 1, arbitrary: fc.constant("+") }), {
            minLength: 1,
            maxLength: 4,
          }),
          fc.boolean(),
        )
        .map(([levels, hash]) => (hash ? [...levels, "#"] : levels).join("/")),
    },
  )
  .filter((f) => f.length > 0);

export const packetId = fc.integer({ min: 1, max: 65535 });
export const bytes = (max = 48) =>
  fc.oneof(
    { weight: 5, arbitrary: fc.uint8Array({ maxLength: max }) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 120, maxLength: 300 }) }, // 2-byte remaining lengths
  );
const smallBytes = fc.uint8Array({ maxLength: 16 });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const flag = fc.constantFrom(0, 1);
const qos = fc.constantFrom<0 | 1>(0, 1);

function userProperties(compat: boolean) {
  const pairs = fc.array(fc.tuple(mqttString(6), mqttString(6)), { minLength: 1, maxLength: 3 }) as fc.Arbitrary<
    UserProperty[]
  >;
  return compat ? pairs.map(mqttPacketPairOrder) : pairs;
}

/** A non-empty property set, keys in a random order (encoding keeps it, decoding reads it back). */
function properties<T extends object>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc
    .record(model, { requiredKeys: [] })
    .filter((o) => Object.keys(o).length > 0)
    .chain((o) => {
      const entries = Object.entries(o);
      return fc
        .shuffledSubarray(entries, { minLength: entries.length, maxLength: entries.length })
        .map((e) => Object.fromEntries(e) as T);
    });
}

const connectProperties = (compat: boolean) =>
  properties({
    sessionExpiryInterval: u32,
    receiveMaximum: u16,
    maximumPacketSize: u32,
    topicAliasMaximum: u16,
    requestResponseInformation: flag,
    requestProblemInformation: flag,
    userProperties: userProperties(compat),
    authenticationMethod: mqttString(),
    authenticationData: smallBytes,
  });

const willProperties = (compat: boolean) =>
  properties({
    willDelayInterval: u32,
    payloadFormatIndicator: flag,
    messageExpiryInterval: u32,
    contentType: mqttString(),
    responseTopic: topicName,
    correlationData: smallBytes,
    userProperties: userProperties(compat),
  });

const connackProperties = (compat: boolean) =>
  properties({
    sessionExpiryInterval: u32,
    receiveMaximum: u16,
    maximumQoS: flag,
    retainAvailable: flag,
    maximumPacketSize: u32,
    assignedClientIdentifier: mqttString(),
    topicAliasMaximum: u16,
    reasonString: mqttString(),
    userProperties: userProperties(compat),
    wildcardSubscriptionAvailable: flag,
    subscriptionIdentifiersAvailable: flag,
    sharedSubscriptionAvailable: flag,
    serverKeepAlive: u16,
    responseInformation: mqttString(),
    serverReference: mqttString(),
    authenticationMethod: mqttString(),
    authenticationData: smallBytes,
  });

export function connect(level: ProtocolLevel, compat = false): fc.Arbitrary<ConnectPacket> {
  const will = fc.record(
    {
      topic: topicName,
      payload: bytes(24),
      qos,
      retain: fc.boolean(),
      ...(level === 5 ? { properties: willProperties(compat) } : {}),
    },
    { requiredKeys: ["topic", "payload", "qos", "retain"] },
  );
  return fc
    .record(
      {
        type: fc.constant(1 as const),
        level: fc.constant(level),
        clientId: mqttString(12),
        clean: fc.boolean(),
        keepalive: u16,
        username: mqttString(),
        password: bytes(16),
        will,
        ...(level === 5 ? { properties: connectProperties(compat) } : {}),
      },
      { requiredKeys: ["type", "level", "clientId", "clean", "keepalive"] },
    )
    .filter(
      (p) =>
        (p.clientId !== "" || (level === 4 && p.clean) || (level === 5 && (p.clean || !compat))) &&
        (p.password === undefined || p.username !== undefined || (level === 5 && !compat)),
    ) as fc.Arbitrary<ConnectPacket>;
}

export function connack(level: ProtocolLevel, compat = false): fc.Arbitrary<ConnackPacket> {
  return fc.record(
    {
      type: fc.constant(2 as const),
      sessionPresent: fc.boolean(),
      returnCode: level === 5 ? fc.constantFrom(...CONNACK_V5_CODES) : fc.integer({ min: 0, max: 5 }),
      ...(level === 5 ? { properties: connackProperties(compat) } : {}),
    },
    { requiredKeys: ["type", "sessionPresent", "returnCode"] },
  ) as fc.Arbitrary<ConnackPacket>;
}

export const publish: fc.Arbitrary<PublishPacket> = fc.oneof(
  fc.record({
    type: fc.constant(3 as const),
    topic: topicName,
    payload: bytes(),
    qos: fc.constant(0 as const),
    retain: fc.boolean(),
    dup: fc.constant(false),
  }),
  fc.record({
    type: fc.constant(3 as const),
    topic: topicName,
    payload: bytes(),
    qos: fc.constant(1 as const),
    retain: fc.boolean(),
    dup: fc.boolean(),
    id: packetId,
  }),
);

/** Any valid packet of the codec at `level` (5.0: CONNECT, CONNACK, PINGREQ, PINGRESP). */
export function packet(level: ProtocolLevel, compat = false): fc.Arbitrary<Packet> {
  const ping = fc.constantFrom<Packet>({ type: 12 }, { type: 13 });
  if (level === 5) return fc.oneof(connect(5, compat), connack(5, compat), ping);
  return fc.oneof(
    connect(level, compat),
    connack(level, compat),
    publish,
    publish,
    fc.record({ type: fc.constant(4 as const), id: packetId }),
    fc.record({
      type: fc.constant(8 as const),
      id: packetId,
      subscriptions: fc.array(fc.record({ topic: topicFilter, qos }), { minLength: 1, maxLength: 4 }),
    }),
    fc.record({
      type: fc.constant(9 as const),
      id: packetId,
      granted: fc.array(fc.constantFrom(0, 1, 2, 0x80), { minLength: 1, maxLength: 5 }),
    }),
    fc.record({
      type: fc.constant(10 as const),
      id: packetId,
      topics: fc.array(topicFilter, { minLength: 1, maxLength: 4 }),
    }),
    fc.record({ type: fc.constant(11 as const), id: packetId }),
    ping,
    fc.constant<Packet>({ type: 14 }),
  );
}

export const level = fc.constantFrom<ProtocolLevel>(3, 4, 5);

/** Edits to apply to bytes, as plain data so fast-check can shrink them; see mutate() in decode-check. */
export const mutations = fc.array(
  fc.record({
    op: fc.integer({ min: 0, max: 8 }),
    pos: fc.nat(),
    val: fc.integer({ min: 0, max: 255 }),
    len: fc.integer({ min: 1, max: 8 }),
  }),
  { minLength: 1, maxLength: 4 },
);

/** Cut points for chunking a stream. */
export const cuts = fc.array(fc.nat(), { maxLength: 12 });
