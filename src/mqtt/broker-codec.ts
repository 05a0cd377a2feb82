/**
 * The broker's side of the codec: parsing the packets only a broker receives (CONNECT, SUBSCRIBE, UNSUBSCRIBE)
 * and encoding the ones only a broker sends (CONNACK, SUBACK, UNSUBACK, PINGRESP). The client's session never
 * imports this module, so a device build carries none of it; codec.ts puts it together with decode and encode
 * for the full codec (tests, tools, the emulated cloud).
 */
import { fail } from "./errors";
import { checkTopicFilter, checkTopicName } from "./topic";
import { checkQos, type Parser } from "./decode";
import { ack, alloc, checkId, varintSize } from "./encode";
import { mqtt5Codec } from "./mqtt5";
import { IN_CONNACK, IN_CONNECT, IN_WILL, propertiesLength, readProperties, writeProperties } from "./properties";
import type { Reader } from "./reader";
import {
  CONNACK,
  CONNECT,
  PINGRESP,
  SUBACK,
  SUBSCRIBE,
  UNSUBACK,
  UNSUBSCRIBE,
  type ConnectPacket,
  type Packet,
  type ProtocolLevel,
  type Subscription,
} from "./packets";

function parseConnect(r: Reader): ConnectPacket {
  const name = r.str();
  const level = r.u8();
  if (!((level === 3 && name === "MQIsdp") || ((level === 4 || level === 5) && name === "MQTT")))
    fail(
      "PROTOCOL_MISMATCH",
      `protocol "${name}" level ${level} is not MQTT 3.1 (MQIsdp, 3), 3.1.1 (MQTT, 4) or 5.0 (MQTT, 5)`,
    );
  const flags = r.u8();
  if (flags & 1) fail("RESERVED_FLAGS", "CONNECT flags bit 0 is reserved and must be 0");
  const willFlag = flags & 4,
    willQos = (flags >> 3) & 3;
  if (!willFlag && flags & 0x38) fail("RESERVED_FLAGS", "will QoS and will retain must be 0 without a will");
  checkQos(willQos);
  if (level !== 5 && flags & 0x40 && !(flags & 0x80))
    fail("RESERVED_FLAGS", "MQTT 3.1/3.1.1 do not allow a password without a user name");
  const p: ConnectPacket = {
    type: CONNECT,
    level: level as ProtocolLevel,
    clientId: "",
    clean: (flags & 2) === 2,
    keepalive: r.u16(),
  };
  if (level === 5) {
    const props = readProperties(r, IN_CONNECT);
    if (props) p.properties = props;
  }
  p.clientId = r.str();
  if (willFlag) {
    const props = level === 5 ? readProperties(r, IN_WILL) : undefined;
    const topic = r.str();
    checkTopicName(topic);
    p.will = { topic, payload: r.bin(), qos: willQos as 0 | 1, retain: (flags & 0x20) === 0x20 };
    if (props) p.will.properties = props;
  }
  if (flags & 0x80) p.username = r.str();
  if (flags & 0x40) p.password = r.bin();
  r.done();
  return p;
}

function parseSubscribe(r: Reader): Packet {
  const id = r.id();
  const subscriptions: Subscription[] = [];
  while (r.pos < r.end) {
    const topic = r.str();
    checkTopicFilter(topic);
    const o = r.u8();
    if (o & 0xfc) fail("RESERVED_FLAGS", "SUBSCRIBE options bits 7-2 must be 0");
    subscriptions.push({ topic, qos: checkQos(o & 3) });
  }
  if (!subscriptions.length) fail("TRUNCATED", "SUBSCRIBE has no topic filter");
  return { type: SUBSCRIBE, id, subscriptions };
}

function parseUnsubscribe(r: Reader): Packet {
  const id = r.id();
  const topics: string[] = [];
  while (r.pos < r.end) {
    const t = r.str();
    checkTopicFilter(t);
    topics.push(t);
  }
  if (!topics.length) fail("TRUNCATED", "UNSUBSCRIBE has no topic filter");
  return { type: UNSUBSCRIBE, id, topics };
}

/** The Decoder's `parsers` for a broker (by packet type): CONNECT, SUBSCRIBE, UNSUBSCRIBE. */
export const BROKER_PARSERS: (Parser | undefined)[] = [];
BROKER_PARSERS[CONNECT] = parseConnect;
BROKER_PARSERS[SUBSCRIBE] = parseSubscribe;
BROKER_PARSERS[UNSUBSCRIBE] = parseUnsubscribe;

/**
 * Encodes a packet only a broker sends: CONNACK (2), SUBACK (9), UNSUBACK (11), PINGRESP (13); undefined for the
 * others. `level` is the connection's: a 5.0 CONNACK carries properties.
 */
export function encodeBroker(p: Packet, level: ProtocolLevel): Uint8Array | undefined {
  switch (p.type) {
    case CONNACK: {
      const v5 = level === 5,
        code = p.returnCode;
      if (v5 ? mqtt5Codec.connackCodes.indexOf(code) < 0 : !(code >= 0 && code <= 5 && (code | 0) === code))
        fail("BAD_RETURN_CODE", `CONNACK code ${code} is not defined for this protocol level`);
      const pl = v5 ? propertiesLength(p.properties, IN_CONNACK) : 0;
      const rl = 2 + (v5 ? varintSize(pl) + pl : 0);
      const b = alloc(0x20, rl),
        q = b.length - rl;
      b[q] = p.sessionPresent ? 1 : 0;
      b[q + 1] = code;
      if (v5) writeProperties(p.properties, pl, b, q + 2, IN_CONNACK);
      return b;
    }
    case SUBACK: {
      checkId(p.id);
      const g = p.granted;
      if (!g || !(g.length > 0)) fail("INVALID_PACKET", "SUBACK needs at least one return code");
      for (let i = 0; i < g.length; i++)
        if (g[i] !== 0 && g[i] !== 1 && g[i] !== 2 && g[i] !== 0x80)
          fail("BAD_RETURN_CODE", `SUBACK return code ${g[i]} is not 0, 1, 2 or 128`);
      const rl = 2 + g.length;
      const b = alloc(0x90, rl),
        q = b.length - rl;
      b[q] = p.id >> 8;
      b[q + 1] = p.id & 0xff;
      b.set(g, q + 2);
      return b;
    }
    case UNSUBACK:
      return ack(0xb0, p.id);
    case PINGRESP:
      return new Uint8Array([0xd0, 0]);
  }
  return undefined;
}
