/**
 * The packet model. Each packet is a plain object tagged by its MQTT control packet type number, so a
 * switch on `type` is a small-integer compare on XS. The same model serves the client and the broker side.
 *
 * Encoders accept strings where bytes are expected (payload, password, will payload) and encode them as UTF-8
 * straight into the packet; decoders always give `Uint8Array`s.
 */

export const CONNECT = 1;
export const CONNACK = 2;
export const PUBLISH = 3;
export const PUBACK = 4;
export const PUBREC = 5;
export const PUBREL = 6;
export const PUBCOMP = 7;
export const SUBSCRIBE = 8;
export const SUBACK = 9;
export const UNSUBSCRIBE = 10;
export const UNSUBACK = 11;
export const PINGREQ = 12;
export const PINGRESP = 13;
export const DISCONNECT = 14;
/** A PUBACK's first byte (its flags are 0), what the QoS 1 round trip's fast paths look for. */
export const PUBACK_BYTE = PUBACK << 4;

/** 3 = MQTT 3.1 ("MQIsdp"), 4 = MQTT 3.1.1 ("MQTT"), 5 = MQTT 5.0 ("MQTT"). */
import type { Reader } from "./reader";

export type ProtocolLevel = 3 | 4 | 5;
/** QoS 2 is not supported by this client, by design. */
export type QoS = 0 | 1;
export type Bytes = Uint8Array;

/** A user property (MQTT 5.0), kept as an ordered pair so re-encoding is byte-exact. */
export type UserProperty = [name: string, value: string];

/** MQTT 5.0 CONNECT properties. Decoding keeps the wire order of keys; encoding writes keys in object order. */
export interface ConnectProperties {
  sessionExpiryInterval?: number;
  receiveMaximum?: number;
  maximumPacketSize?: number;
  topicAliasMaximum?: number;
  requestResponseInformation?: number;
  requestProblemInformation?: number;
  userProperties?: UserProperty[];
  authenticationMethod?: string;
  authenticationData?: Bytes;
}

/** MQTT 5.0 will properties (in the CONNECT payload). */
export interface WillProperties {
  willDelayInterval?: number;
  payloadFormatIndicator?: number;
  messageExpiryInterval?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Bytes;
  userProperties?: UserProperty[];
}

/** MQTT 5.0 CONNACK properties. */
export interface ConnackProperties {
  sessionExpiryInterval?: number;
  receiveMaximum?: number;
  maximumQoS?: number;
  retainAvailable?: number;
  maximumPacketSize?: number;
  assignedClientIdentifier?: string;
  topicAliasMaximum?: number;
  reasonString?: string;
  userProperties?: UserProperty[];
  wildcardSubscriptionAvailable?: number;
  subscriptionIdentifiersAvailable?: number;
  sharedSubscriptionAvailable?: number;
  serverKeepAlive?: number;
  responseInformation?: string;
  serverReference?: string;
  authenticationMethod?: string;
  authenticationData?: Bytes;
}

export interface Will {
  topic: string;
  payload: Bytes | string;
  qos: QoS;
  retain: boolean;
  properties?: WillProperties;
}

export interface ConnectPacket {
  type: 1;
  level: ProtocolLevel;
  clientId: string;
  clean: boolean;
  keepalive: number;
  username?: string;
  password?: Bytes | string;
  will?: Will;
  properties?: ConnectProperties;
}

export interface ConnackPacket {
  type: 2;
  sessionPresent: boolean;
  /** 3.1/3.1.1 return code (0..5), or the 5.0 reason code. */
  returnCode: number;
  properties?: ConnackProperties;
}

export interface PublishPacket {
  type: 3;
  topic: string;
  payload: Bytes | string;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  /** Packet identifier, present exactly when qos is 1. */
  id?: number;
}

export interface PubackPacket {
  type: 4;
  id: number;
}

export interface Subscription {
  topic: string;
  qos: QoS;
}

export interface SubscribePacket {
  type: 8;
  id: number;
  subscriptions: Subscription[];
}

/** SUBACK return codes: 0, 1, 2 (granted QoS) or 0x80 (refused). */
export interface SubackPacket {
  type: 9;
  id: number;
  granted: number[];
}

export interface UnsubscribePacket {
  type: 10;
  id: number;
  topics: string[];
}

export interface UnsubackPacket {
  type: 11;
  id: number;
}

export interface PingreqPacket {
  type: 12;
}
export interface PingrespPacket {
  type: 13;
}
export interface DisconnectPacket {
  type: 14;
}

export type Packet =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | PubackPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | UnsubackPacket
  | PingreqPacket
  | PingrespPacket
  | DisconnectPacket;

/**
 * MQTT 5.0's part of CONNECT and CONNACK for the codec: the properties and the reason codes a CONNACK may carry.
 * A module of its own (`mqtt5Codec` in mqtt5.ts) that an encoder or decoder is handed when it speaks level 5, so a
 * 3.1.1 build (a UIoT Core device) carries none of it.
 */
export interface Mqtt5Codec {
  /** Byte length of CONNECT's properties (`will`: the will's), without their own length prefix. */
  propertiesLength(props: ConnectProperties | WillProperties | undefined, will: boolean): number;
  /** Writes them, length prefix first, at `p`; `len` is propertiesLength's answer. Returns the position after. */
  writeProperties(
    props: ConnectProperties | WillProperties | undefined,
    len: number,
    b: Uint8Array,
    p: number,
    will: boolean,
  ): number;
  /** Reads CONNACK's properties (length prefix first); undefined when there are none. */
  readConnack(r: Reader): ConnackProperties | undefined;
  /** The reason codes a 5.0 CONNACK may carry. */
  readonly connackCodes: readonly number[];
}

/** MQTT 5.0 for a session (`mqtt5` in mqtt5.ts): the codec's part and what each CONNACK failure code means. */
export interface Mqtt5 extends Mqtt5Codec {
  readonly reasons: { readonly [code: number]: string };
}
