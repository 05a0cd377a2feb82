/**
 * Incremental push decoder. Feed it chunks of any size; it calls `onPacket` once per complete packet, whatever
 * the chunking. Memory is bounded by `maxPacketSize`: the fixed header is checked before any body byte is kept.
 * A packet that lies whole inside one pushed chunk is parsed in place, so its payload is a view of that chunk
 * (the caller must not reuse the chunk's memory); a packet split across chunks is assembled once into its own buffer.
 *
 * Packets go to a callback as objects, or to a PacketSink (the session), which takes the packets of its hot paths
 * as arguments: a PUBLISH as its fields, a PUBACK as its id, so that receiving them makes no object.
 *
 * This Decoder parses what a client receives. The packets only a broker receives (CONNECT, SUBSCRIBE,
 * UNSUBSCRIBE) are parsed by the functions of a `parsers` table (see broker-codec; codec's Decoder has them);
 * without one they are a PROTOCOL_ERROR, rejected at their first byte, so a device carries no code for them.
 */
import { MqttError, fail } from "./errors";
import { Reader } from "./reader";
import { decodeUtf8 } from "./utf8";
import { checkTopicName } from "./topic";
import { NO_MQTT5 } from "./encode";
import {
  CONNACK,
  CONNECT,
  DISCONNECT,
  PINGREQ,
  PINGRESP,
  PUBACK,
  PUBACK_BYTE,
  PUBCOMP,
  PUBLISH,
  PUBREC,
  SUBACK,
  SUBSCRIBE,
  UNSUBACK,
  UNSUBSCRIBE,
  type Mqtt5Codec,
  type Packet,
  type ProtocolLevel,
  type QoS,
} from "./packets";
import type { Allocator } from "../host";

export const DEFAULT_MAX_PACKET_SIZE = 256 * 1024;
const NAMES: readonly string[] = Object.freeze([
  "",
  "CONNECT",
  "CONNACK",
  "PUBLISH",
  "PUBACK",
  "",
  "",
  "",
  "SUBSCRIBE",
  "SUBACK",
  "UNSUBSCRIBE",
  "UNSUBACK",
  "PINGREQ",
  "PINGRESP",
  "DISCONNECT",
]);

/** Where a decoder delivers packets without making objects for the common ones. */
export interface PacketSink {
  /** A packet without a path of its own below. */
  received(packet: Packet): void;
  /** A PUBLISH, from its fields; `id` is 0 at QoS 0. */
  receivedPublish(topic: string, payload: Uint8Array, qos: QoS, retain: boolean, dup: boolean, id: number): void;
  /** PUBACK (4) or UNSUBACK (11) with its packet id; PINGREQ (12), PINGRESP (13) or DISCONNECT (14) with id 0. */
  receivedBare(type: number, id: number): void;
  /** A packet skipped for its size (with skipOversize). */
  skipped(error: MqttError): void;
}

/**
 * Parses the body of one packet kind only a broker receives: `r` holds the body, `level` is the connection's.
 * A parsed CONNECT sets the decoder's level to its own.
 */
export type Parser = (r: Reader, level: ProtocolLevel) => Packet;

export interface DecoderOptions {
  /** Largest whole packet (fixed header included) accepted, in bytes. Default 256 KB. */
  maxPacketSize?: number;
  /** Protocol level of the connection; a decoded CONNECT sets it (broker side). Default 4. */
  level?: ProtocolLevel;
  /** Skip an oversize packet's body and carry on instead of failing the stream. */
  skipOversize?: boolean;
  /** Told of each packet skipped for its size (with skipOversize). */
  onSkip?: (error: MqttError) => void;
  /** Makes the buffer a packet split across chunks is assembled in (see Allocator in src/host.ts). */
  alloc?: Allocator;
  /**
   * How many recent PUBLISH topics to remember (default 8; 0 turns it off): a topic seen again is matched by
   * its bytes and answered with the same string, without decoding or validating it again.
   */
  topicCache?: number;
  /**
   * Parsers of the packet kinds a client never receives (CONNECT, SUBSCRIBE, UNSUBSCRIBE), by packet type
   * (broker-codec's BROKER_PARSERS). Without them, those packets are a PROTOCOL_ERROR.
   */
  parsers?: (Parser | undefined)[];
  /** MQTT 5.0's CONNACK properties and reason codes (the mqtt5 module): needed to decode a 5.0 CONNACK. */
  mqtt5?: Mqtt5Codec;
}

const HEADER = 0,
  LENGTH = 1,
  BODY = 2,
  SKIP = 3;
const NONE = new Uint8Array(0);
function ignore(): void {}

export class Decoder {
  onPacket: (packet: Packet) => void;
  level: ProtocolLevel;
  maxPacketSize: number;
  skipOversize: boolean;
  // onSkip, alloc, parsers and v5 are properties only when given: fields a client's decoder would carry for nothing
  // (a heap slot each on XS).
  declare onSkip: ((error: MqttError) => void) | undefined;
  private r = new Reader();
  /** @internal Where in a packet the next byte goes (0: at a packet's first byte); read by the session's PUBACK path. */
  state = HEADER;
  private header = 0;
  private rl = 0;
  private lenBytes = 0;
  private body: Uint8Array | null = null;
  private filled = 0;
  private skipLeft = 0;
  /** @internal What the stream failed with (null: it has not); read by the session's PUBACK path. */
  failed: unknown = null;
  declare private alloc: Allocator | undefined;
  private sink: PacketSink | null = null;
  private cacheSize: number;
  declare private parsers: (Parser | undefined)[] | undefined;
  declare private v5: Mqtt5Codec | undefined;
  /**
   * Recent PUBLISH topics, [topic, offset, length, ...], their bytes at `offset` in one buffer for all (one object
   * for the cache, however many topics it holds); made on first use, remade exactly to size when a topic is added.
   */
  private cache: (string | number)[] | null = null;
  private cacheBytes: Uint8Array = NONE;
  private cacheNext = 0;

  /** `onPacket`: a callback that gets every packet as an object, or a PacketSink. */
  constructor(onPacket: ((packet: Packet) => void) | PacketSink, options: DecoderOptions = {}) {
    if (typeof onPacket === "function") this.onPacket = onPacket;
    else {
      this.sink = onPacket;
      this.onPacket = ignore;
    }
    this.level = options.level ?? 4;
    const max = options.maxPacketSize ?? DEFAULT_MAX_PACKET_SIZE;
    if (!(max >= 2 && max <= 268435460)) throw new RangeError("maxPacketSize must be from 2 to 268435460 bytes");
    this.maxPacketSize = max;
    this.skipOversize = !!options.skipOversize;
    if (options.onSkip) this.onSkip = options.onSkip;
    if (options.alloc) this.alloc = options.alloc;
    this.cacheSize = options.topicCache ?? 8;
    if (options.parsers) this.parsers = options.parsers;
    if (options.mqtt5) this.v5 = options.mqtt5;
  }

  /**
   * Bytes of an unfinished packet held right now: its body so far. The fixed header is read into counters, not
   * kept, and a skipped body is dropped as it arrives, so this never exceeds maxPacketSize, whatever that is.
   */
  get pending(): number {
    return this.state === BODY ? this.filled : 0;
  }

  /** Inside a packet: its first byte came and its last has not. */
  get midPacket(): boolean {
    return this.state !== HEADER;
  }

  /** The whole size of the packet being read (fixed header included), once its remaining length is known; else 0. */
  get expected(): number {
    return this.state === BODY || this.state === SKIP ? 1 + this.lenBytes + this.rl : 0;
  }

  /** Feeds bytes. Throws MqttError on malformed input; after that the stream is dead and push throws again. */
  push(chunk: Uint8Array): void {
    if (this.failed) throw this.failed;
    try {
      this.run(chunk);
    } catch (e) {
      this.failed = e;
      this.r.b = NONE;
      throw e;
    }
    this.r.b = NONE; // do not keep the chunk (and its whole buffer) alive between pushes (no finally: XS runs it dearer)
  }

  /** The stream ended: throws TRUNCATED if it ended inside a packet. */
  finish(): void {
    if (this.state !== HEADER) fail("TRUNCATED", "the connection ended in the middle of a packet");
  }

  /** Forgets all state, for a new connection. */
  reset(level: ProtocolLevel = this.level): void {
    this.level = level;
    this.state = HEADER;
    this.body = null;
    this.failed = null;
  }

  private run(chunk: Uint8Array): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      switch (this.state) {
        case HEADER:
          // A whole PUBACK to the session, the one packet of a QoS 1 round trip: straight to it, no header state.
          if (
            chunk[i] === PUBACK_BYTE &&
            n - i >= 4 &&
            chunk[i + 1] === 2 &&
            this.sink &&
            this.level !== 5 &&
            this.maxPacketSize >= 4
          ) {
            const id = (chunk[i + 2] << 8) | chunk[i + 3];
            if (id) {
              i += 4;
              this.sink.receivedBare(4, id);
              break;
            }
          }
          this.header = checkHeader(chunk[i++], this.level, this.parsers);
          this.rl = 0;
          this.lenBytes = 0;
          this.state = LENGTH;
          break;
        case LENGTH: {
          const d = chunk[i++];
          this.rl += (d & 0x7f) << (7 * this.lenBytes); // at most 127 << 21: no overflow
          if (++this.lenBytes === 4 && d & 0x80) fail("MALFORMED_LENGTH", "remaining length is longer than 4 bytes");
          if (d & 0x80) break;
          const rl = this.rl,
            total = 1 + this.lenBytes + rl;
          if (total > this.maxPacketSize) {
            const err = new MqttError(
              "PACKET_TOO_LARGE",
              `a ${total}-byte ${NAMES[this.header >> 4]} exceeds the ${this.maxPacketSize}-byte maximum packet size`,
            );
            if (!this.skipOversize) throw err;
            this.skipLeft = rl;
            this.state = SKIP;
            if (this.sink) this.sink.skipped(err);
            if (this.onSkip) this.onSkip(err);
            break;
          }
          if (n - i >= rl) {
            this.state = HEADER;
            const s = i;
            i += rl;
            this.parse(chunk, s, i);
          } else {
            this.body = this.alloc ? this.alloc(rl) : new Uint8Array(rl);
            this.filled = 0;
            this.state = BODY;
          }
          break;
        }
        case BODY: {
          const body = this.body as Uint8Array;
          const k = Math.min(n - i, body.length - this.filled);
          body.set(k === n && i === 0 ? chunk : chunk.subarray(i, i + k), this.filled);
          this.filled += k;
          i += k;
          if (this.filled === body.length) {
            this.body = null;
            this.state = HEADER;
            this.parse(body, 0, body.length);
          }
          break;
        }
        default: {
          const k = Math.min(n - i, this.skipLeft);
          i += k;
          this.skipLeft -= k;
          if (this.skipLeft === 0) this.state = HEADER;
        }
      }
    }
  }

  private parse(b: Uint8Array, s: number, e: number): void {
    const r = this.r,
      h = this.header,
      type = h >> 4,
      sink = this.sink;
    r.reset(b, s, e);
    let p: Packet;
    switch (type) {
      case PUBLISH:
        return this.publish(r, b, e, h);
      case PUBACK:
      case UNSUBACK: {
        const id = r.id();
        r.done();
        if (sink) return sink.receivedBare(type, id);
        p = { type, id };
        break;
      }
      case PINGREQ:
      case PINGRESP:
      case DISCONNECT:
        r.done();
        if (sink) return sink.receivedBare(type, 0);
        p = { type };
        break;
      case CONNACK: {
        const flags = r.u8();
        if (flags & 0xfe) fail("RESERVED_FLAGS", "CONNACK flags bits 7-1 must be 0");
        const code = r.u8();
        // At 5.0 a CONNACK without properties may be in 3.1.1 form: a 3.1.1-only broker refuses a 5.0 CONNECT
        // with return code 1 (unacceptable protocol version), and the session must be told that, not "malformed".
        const v5 = this.level === 5,
          props = v5 && r.pos < r.end,
          m = this.v5;
        if (v5 && !m) fail("PROTOCOL_MISMATCH", NO_MQTT5);
        if (code > 5 ? !v5 || (m as Mqtt5Codec).connackCodes.indexOf(code) < 0 : props && code !== 0)
          fail("BAD_RETURN_CODE", `CONNACK code ${code} is not defined for this protocol level`);
        p = { type: CONNACK, sessionPresent: flags === 1, returnCode: code };
        if (props) {
          const pr = (m as Mqtt5Codec).readConnack(r);
          if (pr) p.properties = pr;
        }
        r.done();
        break;
      }
      case SUBACK: {
        const id = r.id();
        const granted: number[] = [];
        while (r.pos < r.end) {
          const c = r.u8();
          if (c > 2 && c !== 0x80) fail("BAD_RETURN_CODE", `SUBACK return code ${c} is not 0, 1, 2 or 128`);
          granted.push(c);
        }
        if (!granted.length) fail("TRUNCATED", "SUBACK has no return code");
        p = { type: SUBACK, id, granted };
        break;
      }
      default: // CONNECT, SUBSCRIBE or UNSUBSCRIBE, which checkHeader let through only with a parser for it
        p = (this.parsers as Parser[])[type](r, this.level);
        if (p.type === CONNECT) this.level = p.level;
    }
    if (sink) sink.received(p);
    else this.onPacket(p);
  }

  /** A PUBLISH: the hot path, in a method of its own (small functions are what V8 inlines and XS runs fastest). */
  private publish(r: Reader, b: Uint8Array, e: number, h: number): void {
    const qos = ((h >> 1) & 3) as QoS;
    const topic = this.topic(r);
    const id = qos ? r.id() : 0;
    const sink = this.sink;
    // (the payload view made inside each call: held in a variable first, V8 decodes a mixed stream at half speed)
    if (sink) sink.receivedPublish(topic, b.subarray(r.pos, e), qos, (h & 1) === 1, (h & 8) === 8, id);
    else
      this.onPacket({
        type: 3,
        topic,
        payload: b.subarray(r.pos, e),
        qos,
        retain: (h & 1) === 1,
        dup: (h & 8) === 8,
        id: qos ? id : undefined,
      });
  }

  /** A PUBLISH topic: from the cache when its bytes match a recent one, else decoded, checked and remembered. */
  private topic(r: Reader): string {
    const n = r.u16();
    r.need(n);
    const b = r.b,
      start = r.pos;
    r.pos = start + n;
    const cache = this.cache,
      bytes = this.cacheBytes;
    if (cache) {
      for (let k = 0; k < cache.length; k += 3) {
        if (cache[k + 2] !== n) continue;
        // Backwards: a device's topics share their long prefix and differ at the end.
        const o = cache[k + 1] as number;
        let i = n - 1;
        while (i >= 0 && bytes[o + i] === b[start + i]) i--;
        if (i < 0) return cache[k] as string;
      }
    }
    const t = decodeUtf8(b, start, start + n);
    checkTopicName(t);
    if (this.cacheSize > 0) this.remember(t, b, start, n);
    return t;
  }

  /** Adds a topic to the cache in place of the oldest, its bytes and the others' copied into a new buffer. */
  private remember(t: string, b: Uint8Array, start: number, n: number): void {
    const c = this.cache ?? (this.cache = []),
      old = this.cacheBytes,
      at = this.cacheNext;
    this.cacheNext = (at + 3) % (3 * this.cacheSize);
    let total = n;
    for (let k = 0; k < c.length; k += 3) if (k !== at) total += c[k + 2] as number;
    const bytes = new Uint8Array(total);
    let end = 0;
    for (let k = 0; k < c.length; k += 3) {
      if (k === at) continue;
      const o = c[k + 1] as number,
        len = c[k + 2] as number;
      for (let i = 0; i < len; i++) bytes[end + i] = old[o + i];
      c[k + 1] = end;
      end += len;
    }
    for (let i = 0; i < n; i++) bytes[end + i] = b[start + i];
    c[at] = t;
    c[at + 1] = end;
    c[at + 2] = n;
    this.cacheBytes = bytes;
  }
}

export function checkQos(q: number): 0 | 1 {
  if (q === 3) fail("INVALID_QOS", "QoS 3 does not exist");
  if (q === 2) fail("QOS2_UNSUPPORTED", "QoS 2 is not supported by this client");
  return q as 0 | 1;
}

/** Checks the first byte of a packet, before anything else of it is read. */
function checkHeader(h: number, level: ProtocolLevel, parsers: (Parser | undefined)[] | undefined): number {
  const type = h >> 4,
    flags = h & 15;
  if (type === 0 || type === 15) fail("UNKNOWN_PACKET", `packet type ${type} is not an MQTT 3.1/3.1.1 packet`);
  if (type >= PUBREC && type <= PUBCOMP)
    fail("QOS2_UNSUPPORTED", "PUBREC, PUBREL and PUBCOMP belong to QoS 2, which is not supported");
  if (level === 5 && type !== CONNECT && type !== CONNACK && type !== PINGREQ && type !== PINGRESP)
    fail("UNKNOWN_PACKET", `MQTT 5.0 ${NAMES[type]} packets are not supported yet`);
  if (type === PUBLISH) {
    checkQos((flags >> 1) & 3);
    if (flags & 8 && !(flags & 6)) fail("RESERVED_FLAGS", "DUP must be 0 on a QoS 0 PUBLISH");
  } else {
    // Without a parser for it (a device's decoder), the same error the session gives a PINGREQ from the broker.
    if ((type === CONNECT || type === SUBSCRIBE || type === UNSUBSCRIBE) && !parsers?.[type])
      fail("PROTOCOL_ERROR", `the broker broke the MQTT protocol: unexpected packet type ${type} from the broker`);
    if (flags !== (type === SUBSCRIBE || type === UNSUBSCRIBE ? 2 : 0))
      fail("RESERVED_FLAGS", `reserved flag bits of ${NAMES[type]} are set wrong`);
  }
  return h;
}
