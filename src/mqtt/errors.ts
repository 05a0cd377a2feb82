/**
 * The one error type of the MQTT codec and session. `code` is stable and meant for programs;
 * `message` is meant for a person and says what to check. Messages never contain secrets.
 */
export type MqttErrorCode =
  | "MALFORMED_LENGTH" // remaining length over 4 bytes or beyond the packet
  | "RESERVED_FLAGS" // reserved bits of a fixed header or CONNECT/CONNACK flags set
  | "INVALID_QOS" // QoS 3, or a QoS not allowed where it appears
  | "QOS2_UNSUPPORTED" // QoS 2 or PUBREC/PUBREL/PUBCOMP: this client does QoS 0 and 1 only
  | "INVALID_STRING" // invalid UTF-8, U+0000, lone surrogate, string over 65535 bytes
  | "INVALID_TOPIC" // empty or wildcard PUBLISH topic
  | "INVALID_FILTER" // topic filter with misplaced wildcards or empty
  | "BAD_RETURN_CODE" // SUBACK/CONNACK code outside the protocol's set
  | "TRUNCATED" // the packet body ends before its fields do, or the stream ended mid-packet
  | "TRAILING_BYTES" // the packet body is longer than its fields
  | "UNKNOWN_PACKET" // packet type 0 or 15, or a type this protocol level does not have
  | "PROTOCOL_MISMATCH" // wrong protocol name/level pair, or unsupported level
  | "INVALID_PROPERTY" // unknown, duplicated or malformed MQTT 5.0 property
  | "PACKET_TOO_LARGE" // over the configured maximum packet size
  | "INVALID_PACKET" // a field has a value the protocol forbids (encoder input, packet id 0, ...)
  // Client and session errors:
  | "CONNECT_REFUSED" // CONNACK with a non-zero return/reason code (see `returnCode`)
  | "CONNECT_TIMEOUT" // no CONNACK (TCP, TLS and CONNECT included) within the connect timeout
  | "PING_TIMEOUT" // PINGREQ unanswered within the ping timeout: the link is dead or half-open
  | "IDLE_TIMEOUT" // nothing received for 1.5x keepalive: the link is dead or half-open
  | "PACKET_TIMEOUT" // a packet began to arrive and did not end in time (packetTimeout + 1 ms per byte)
  | "WRITE_STALLED" // the broker took nothing we sent for 1.5x keepalive (it does not read)
  | "CONNECTION_LOST" // the transport closed or failed
  | "KICKED" // the broker closed connections again and again soon after accepting them
  | "PROTOCOL_ERROR" // the broker broke the protocol (unexpected packet, QoS 2 delivery, ...)
  | "OUTBOX_FULL" // the bounded outbox has no room: the message was not queued
  | "STORE_FAILED" // the persistent outbox store could not save or remove a message
  | "SUBSCRIBE_REFUSED" // SUBACK 0x80 for one or more filters
  | "NOT_ALLOWED" // refused locally by the connection profile (UIoT Core forbids will, retain, ...)
  | "CALLBACK_ERROR" // an application callback threw; the session carries on
  | "CLOSED"; // the client was closed before the operation completed

export class MqttError extends Error {
  // A field, defined on the instance: on XS Error.prototype is frozen, so assigning `this.name` would throw.
  override name = "MqttError";
  readonly code: MqttErrorCode;
  /** CONNECT_REFUSED: the CONNACK return code (3.1/3.1.1) or reason code (5.0). */
  returnCode?: number;
  /** CALLBACK_ERROR, CONNECTION_LOST: what was thrown or reported underneath. */
  override cause?: unknown;
  constructor(code: MqttErrorCode, message: string, cause?: unknown) {
    super(message);
    this.code = code;
    if (cause !== undefined) this.cause = cause;
  }
}

export function fail(code: MqttErrorCode, message: string): never {
  throw new MqttError(code, message);
}
