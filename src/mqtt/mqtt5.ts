/**
 * MQTT 5.0 CONNECT and CONNACK, as a module a build includes only when it speaks 5.0: the property codec and the
 * reason codes. UIoT Core speaks 3.1.1, so the device image leaves it out; a client that connects at level 5 is
 * handed it:
 *
 *   import { mqtt5 } from "./mqtt5";
 *   new Client({ level: 5, mqtt5, properties: { sessionExpiryInterval: 60 }, ... });
 *
 * The full codec (codec.ts: tests, tools, the emulated cloud) always has it. PUBLISH, SUBSCRIBE and the other
 * packets are not yet in 5.0 form: a level-5 session connects, keeps alive and refuses the rest (NOT_ALLOWED).
 */
import { IN_CONNACK, IN_CONNECT, IN_WILL, propertiesLength, readProperties, writeProperties } from "./properties";
import type { Mqtt5, Mqtt5Codec } from "./packets";

const CONNACK_CODES: readonly number[] = Object.freeze([
  0, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c,
  0x9d, 0x9f,
]);

// (pure: a bundle that takes only the codec's part, such as codec.ts, leaves the reasons' text out)
const REASONS: { readonly [code: number]: string } = /* @__PURE__ */ Object.freeze({
  0x80: "unspecified error",
  0x81: "malformed packet",
  0x82: "protocol error",
  0x83: "implementation specific error",
  0x84: "unsupported protocol version",
  0x85: "client identifier not valid",
  0x86: "bad user name or password",
  0x87: "not authorized",
  0x88: "server unavailable",
  0x89: "server busy",
  0x8a: "banned",
  0x8c: "bad authentication method",
  0x90: "topic name invalid",
  0x95: "packet too large",
  0x97: "quota exceeded",
  0x99: "payload format invalid",
  0x9a: "retain not supported",
  0x9b: "QoS not supported",
  0x9c: "use another server",
  0x9d: "server moved",
  0x9f: "connection rate exceeded",
});

const connectLength: Mqtt5Codec["propertiesLength"] = (props, will) =>
  propertiesLength(props, will ? IN_WILL : IN_CONNECT);
const writeConnect: Mqtt5Codec["writeProperties"] = (props, len, b, p, will) =>
  writeProperties(props, len, b, p, will ? IN_WILL : IN_CONNECT);
const readConnack: Mqtt5Codec["readConnack"] = (r) => readProperties(r, IN_CONNACK);

/** The codec's part (what encode and the Decoder take). Frozen: a preloaded module's objects live in flash. */
export const mqtt5Codec: Mqtt5Codec = Object.freeze({
  propertiesLength: connectLength,
  writeProperties: writeConnect,
  readConnack,
  connackCodes: CONNACK_CODES,
});

/** MQTT 5.0 CONNECT/CONNACK for a client (see the module's comment): the codec's part and the reasons' text. */
export const mqtt5: Mqtt5 = /* @__PURE__ */ Object.freeze({
  propertiesLength: connectLength,
  writeProperties: writeConnect,
  readConnack,
  connackCodes: CONNACK_CODES,
  reasons: REASONS,
});
