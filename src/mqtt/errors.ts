/**
 * The one error type of the MQTT codec and session. `code` is stable and meant for programs;
 * `message` is meant for a person and says what to check. Messages never contain secrets.
 */
export type MqttErrorCode =
  | "MALFORMED_LENGTH"     // remaining length over 4 bytes or beyond the packet
  | "RESERVED_FLAGS"       // reserved bits of a fixed header or CONNECT/CONNACK flags set
  | "INVALID_QOS"          // QoS 3, or a QoS not allowed where it appears
  | "QOS2_UNSUPPORTED"     // QoS 2 or PUBREC/PUBREL/PUBCOMP: this client does QoS 0 and 1 only
  | "INVALID_STRING"       // invalid UTF-8, U+0000, lone surrogate, string over 65535 bytes
  | "INVALID_TOPIC"        // empty or wildcard PUBLISH topic
  | "INVALID_FILTER"       // topic filter with misplaced wildcards or empty
  | "BAD_RETURN_CODE"      // SUBACK/CONNACK code outside the protocol's set
  | "TRUNCATED"            // the packet body ends before its fields do, or the stream ended mid-packet
  | "TRAILING_BYTES"       // the packet body is longer than its fields
  | "UNKNOWN_PACKET"       // packet type 0 or 15, or a type this protocol level does not have
  | "PROTOCOL_MISMATCH"    // wrong protocol name/level pair, or unsupported level
  | "INVALID_PROPERTY"     // unknown, duplicated or malformed MQTT 5.0 property
  | "PACKET_TOO_LARGE"     // over the configured maximum packet size
  | "INVALID_PACKET";      // the encoder was handed a packet it cannot represent

export class MqttError extends Error {
  readonly code: MqttErrorCode;
  constructor(code: MqttErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = "MqttError";
  }
}

export function fail(code: MqttErrorCode, message: string): never {
  throw new MqttError(code, message);
}
