/**
 * The MQTT packet codec: packet model, encoder, incremental decoder, topic rules. No I/O, no time.
 * The full codec, both sides: the client's decode and encode with broker-codec's parsers and encoders, and MQTT
 * 5.0's CONNECT/CONNACK (mqtt5). The client's session imports decode and encode alone, so a device carries only the
 * packets a client handles, at the levels it speaks.
 */
import { Decoder as ClientDecoder, type DecoderOptions, type PacketSink } from "./decode";
import type { Allocator } from "../host";
import { encode as encodeClient } from "./encode";
import { BROKER_PARSERS, encodeBroker } from "./broker-codec";
import { mqtt5Codec } from "./mqtt5";
import { slabAllocator } from "./slab";
import type { Packet, ProtocolLevel } from "./packets";

export * from "./packets";
export { MqttError } from "./errors";
export { mqtt5Codec } from "./mqtt5";
export type { MqttErrorCode } from "./errors";
export { encodePublish } from "./encode";
export { DEFAULT_MAX_PACKET_SIZE } from "./decode";
export type { DecoderOptions } from "./decode";
export { checkTopicName, checkTopicFilter, topicMatches } from "./topic";
export { utf8Bytes, decodeUtf8 } from "./utf8";
export { slabAllocator } from "./slab";

/**
 * Where the full codec's decoders assemble a packet split across chunks, unless given an allocator: the policy of
 * Node's own pool of byte buffers (8 KB slabs, packets up to 4 KB), which is what mqtt-packet gets from Node.
 */
const pooled = slabAllocator(8 * 1024, 4 * 1024);

/**
 * The incremental decoder of every packet, both sides' (see decode's Decoder). Off the device, by default it
 * assembles a packet of up to 4 KB split across chunks in a view of a shared 8 KB slab (slab.ts), not in a buffer of
 * its own: a payload kept keeps its slab alive, as a pooled byte buffer keeps Node's pool.
 */
export class Decoder extends ClientDecoder {
  constructor(onPacket: ((packet: Packet) => void) | PacketSink, options: DecoderOptions = {}) {
    super(onPacket, {
      ...options,
      parsers: options.parsers ?? BROKER_PARSERS,
      mqtt5: options.mqtt5 ?? mqtt5Codec,
      alloc: options.alloc ?? pooled,
    });
  }
}

/**
 * Encodes any packet. `level` is the connection's protocol level; it matters for CONNACK (5.0 carries
 * properties) and refuses the 5.0 packets this codec does not have yet. CONNECT carries its own level.
 */
export function encode(p: Packet, level: ProtocolLevel = 4, allocate?: Allocator): Uint8Array {
  const t = p.type;
  // SUBACK and UNSUBACK at 5.0 go on to the client's encode, which refuses them as it refuses SUBSCRIBE
  if (t === 2 || t === 13 || ((t === 9 || t === 11) && level !== 5)) return encodeBroker(p, level) as Uint8Array;
  return encodeClient(p, level, allocate, mqtt5Codec);
}
