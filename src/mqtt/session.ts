/**
 * The MQTT session as pure logic (sans-I/O): it is fed bytes, clock readings and API calls, and answers with
 * bytes to send (through `SessionHost.send`), a deadline for its next tick, and events. It keeps the connection's
 * state (CONNECT/CONNACK, keepalive, timeouts, what waits for the transport) and the subscriptions to restore, and
 * joins the units that outlive one TCP connection: the outbox and its packet ids (outbox.ts), the rate limit
 * (rate-limit.ts) and the dedupe of redelivered QoS 1 messages (inbound.ts). It never touches a socket or a timer.
 *
 * Memory: a QoS 1 publish and its PUBACK allocate nothing but the packet's bytes (and, on XS, the Uint8Array that
 * holds them): publish, flush and the PUBACK work on the outbox's ring directly; the decoder hands PUBLISH and
 * PUBACK over as arguments, not as packet objects.
 */
import { Decoder, type PacketSink } from "./decode";
import type { Allocator } from "../host";
import { encode, encodeAck, encodePublishFields, NO_MQTT5, TopicCache } from "./encode";
import { MqttError } from "./errors";
import { Inbound } from "./inbound";
import {
  CALLBACK,
  FIRST_RECORDS,
  FLAGS,
  ITEMS,
  Outbox,
  QOS1,
  SENT,
  type OutboxOptions,
  type PublishCallback,
} from "./outbox";
import { GENERIC, type Profile } from "./profile";
import { RateLimit } from "./rate-limit";
import { checkTopicFilter } from "./topic";
import {
  CONNACK,
  PINGRESP,
  PUBACK,
  PUBACK_BYTE,
  SUBACK,
  UNSUBACK,
  type ConnackPacket,
  type ConnectProperties,
  type Mqtt5,
  type Packet,
  type ProtocolLevel,
  type QoS,
  type Will,
} from "./packets";

export type { OutboxOptions, PublishCallback };
/** Completion of a subscribe: `granted` holds the SUBACK code per filter (0x80 = refused). */
export type SubscribeCallback = (error: MqttError | undefined, granted: number[]) => void;
export type UnsubscribeCallback = (error?: MqttError) => void;

export interface SessionOptions {
  clientId: string;
  username?: string;
  password?: string | Uint8Array;
  /** Seconds; 0 disables keepalive. Default 60. */
  keepalive?: number;
  /** Clean session (3.1/3.1.1) or clean start (5.0). Default true. */
  clean?: boolean;
  /** 3 = MQTT 3.1, 4 = MQTT 3.1.1 (default), 5 = MQTT 5.0. */
  level?: ProtocolLevel;
  will?: Will;
  /** MQTT 5.0 CONNECT properties. */
  properties?: ConnectProperties;
  /**
   * MQTT 5.0's CONNECT/CONNACK support, needed with level 5: `mqtt5` of src/mqtt/mqtt5.ts. A 3.1.1
   * build leaves the module out.
   */
  mqtt5?: Mqtt5;
  /** Milliseconds from dialling to CONNACK (TCP, TLS and CONNECT included). Default 10 s. */
  connectTimeout?: number;
  /** Milliseconds to wait for PINGRESP (or any other whole packet) after PINGREQ. Default 5 s. */
  pingTimeout?: number;
  /**
   * Milliseconds a packet may take to arrive once its first byte came, plus 1 ms per byte of its size (a 32 KB
   * packet has 10 + 32.8 s by default): a peer that trickles bytes cannot hold the connection open. Default 10 s.
   */
  packetTimeout?: number;
  /** Most QoS 1 messages awaiting PUBACK at once. Default 10. */
  window?: number;
  outbox?: OutboxOptions;
  /** Largest incoming packet accepted, in bytes; larger ones are skipped and reported. Default 256 KB. */
  maxPacketSize?: number;
  profile?: Profile;
  /** Makes packet buffers (see Allocator in src/host.ts); the portable default suits a device. */
  alloc?: Allocator;
}

export interface Message {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  dup: boolean;
}

/** What the session needs from its owner (the client). */
export interface SessionHost {
  /** Writes bytes; false when the transport would block (the session retries on `flush`). */
  send(bytes: Uint8Array): boolean;
  /** The session wants the connection closed: the broker refused, broke the protocol or stopped answering. */
  drop(error: MqttError): void;
  connected(connack: ConnackPacket): void;
  /** A message for the application; for QoS 1 the PUBACK follows its return, or the settling of its promise. */
  message(message: Message): unknown;
  /** Something went wrong that does not end the connection. */
  error(error: MqttError): void;
}

interface Request {
  id: number;
  packet: Uint8Array;
  filters: string[];
  sub: boolean;
  cb: SubscribeCallback | UnsubscribeCallback | undefined;
}

const IDLE = 0,
  DIALING = 1,
  CONNECTING = 2,
  CONNECTED = 3;
/**
 * PUBACKs that may wait for the transport before the client stops reading (256 bytes of them): a broker that floods
 * QoS 1 and does not read our answers is held back by TCP's flow control, not by our memory. One read may add the
 * PUBACKs of the chunk it brought (a 1,460-byte segment holds at most 208 QoS 1 PUBLISH packets).
 */
export const MAX_ACKS = 64;
/** Milliseconds a refused write may wait without keepalive before the connection is given up (with it: 1.5x). */
const STALL = 90000;
const CONNACK_TEXT: readonly string[] = Object.freeze([
  "",
  "the broker does not accept this MQTT protocol level: try level 4 (3.1.1) or 3 (3.1)",
  "the broker rejected the client id",
  "the broker is unavailable",
  "bad user name or password: check the credentials (for UIoT Core, the DeviceSecret and the authmode in the user name)",
  // Not "the credentials are valid": Mosquitto answers a wrong password with 5 under 3.1.1.
  "not authorized: the broker refused this client: check the password (some brokers, Mosquitto among them, answer a wrong one with this code) and that the client may connect (device disabled, or not allowed)",
]);

function connackMessage(code: number, v5: Mqtt5 | undefined): string {
  // A 3.1.1-only broker answers a 5.0 CONNECT with a 3.1.1 code (1: unacceptable protocol version).
  const text = v5 && code >= 0x80 ? v5.reasons[code] : CONNACK_TEXT[code];
  return `connection refused (code ${code}): ${text ?? "unknown reason"}`;
}

export class Session implements PacketSink {
  readonly options: SessionOptions;
  readonly profile: Profile;
  private host: SessionHost;
  private decoder: Decoder;
  private topics: TopicCache;
  private state = IDLE;
  private level: ProtocolLevel;
  private keepalive: number; // ms, 0 = off
  private connectDeadline = 0;
  private lastSend = 0;
  private lastRecv = 0;
  private pingSentAt = -1;
  private pingQueued = false;
  private sessionPresent = false;
  private peerMaxPacket = 0;
  /** Most QoS 1 messages in flight: the `window` option, or the broker's receive maximum if that is lower. */
  private window: number;

  /** @internal The outbox: the messages held, in publish order, and the packet ids (outbox.ts). */
  private readonly ring: Outbox;
  /** The profile's publish rate limit (rate-limit.ts), if it has one. */
  private readonly limit: RateLimit | null;
  /** When a send held back by the rate limit may go (0: none is). */
  private rateWait = 0;
  // Read on every publish: copied from the (frozen) options once.
  private readonly alloc: Allocator | undefined;

  // Control packets waiting for the transport (PINGREQ, SUBSCRIBE, UNSUBSCRIBE): a few at most.
  private ctl: Uint8Array[] = [];
  /** PUBACKs the transport would not take yet, 4 bytes each in order in one buffer (made when needed), written at once. */
  private acks: Uint8Array | null = null;
  /** @internal PUBACKs in `acks`; the client stops reading at MAX_ACKS (see `reading`). */
  ackCount = 0;
  /**
   * @internal Set by each change that may bring deadline() earlier: a state, a refused write, a packet begun or
   * ended, a PINGREQ queued or sent, a PINGRESP, a send held by the rate limit, PUBACKs written after reading paused;
   * cleared by the client when it reads the deadline. Sending and receiving otherwise only move the deadline later
   * (lastSend, lastRecv), so while it is clear the client's timer, set for the deadline before, is early enough, and
   * the client skips computing it again (see Client.rearm). forget() runs only beside a state change, which sets it.
   */
  sooner = true;
  /** When a write was refused, if none has been taken since (-1: nothing waits for the transport). */
  private blockedAt = -1;
  /** When the packet being read began to arrive (-1: between packets); packets completed so far. */
  private partialAt = -1;
  private packetsIn = 0;
  /** A lone PUBACK may skip the decoder: MQTT 3.1/3.1.1 (a 5.0 PUBACK is not decoded yet), packets of 4 bytes taken. */
  private readonly fastAcks: boolean;
  private requests: Request[] = []; // subscribe/unsubscribe not yet acknowledged, in order
  /** Acknowledged subscriptions (restored after a clean reconnect), and those of them granted QoS 0, made if any. */
  private subs: string[] = [];
  private subs0: string[] | null = null;

  /** Inbound QoS 1 ids being handled and recently acknowledged (inbound.ts): made at the first such message. */
  private inbound: Inbound | null = null;
  /**
   * What a chunk brought for the application, handed over once the decoder has returned (see receive()): the
   * CONNACK, the first PUBLISH and its packet id, then any more as [message, id, ...] in an array made on first use.
   */
  private heldConnack: ConnackPacket | null = null;
  private heldMsg: Message | null = null;
  private heldId = 0;
  private heldMore: (Message | number)[] | null = null;
  /** Connections lost so far: a handler that closes the client or drops the link stops the hand-over. */
  private losses = 0;
  /** Inside handOver(): what is queued is written when it ends. */
  private handing = false;

  constructor(options: SessionOptions, host: SessionHost) {
    const profile = options.profile ?? GENERIC;
    this.options = options;
    this.profile = profile;
    this.host = host;
    this.level = options.level ?? 4;
    if (this.level === 5 && !options.mqtt5) throw new MqttError("PROTOCOL_MISMATCH", NO_MQTT5);
    const ka = options.keepalive ?? 60;
    const range = profile.keepalive;
    if (!(ka >= 0 && ka <= 65535 && (ka | 0) === ka))
      throw new MqttError("INVALID_PACKET", "keepalive must be an integer from 0 to 65535 seconds");
    if (range && (ka < range[0] || ka > range[1]))
      throw new MqttError(
        "NOT_ALLOWED",
        `${profile.name} requires a keepalive from ${range[0]} to ${range[1]} s, not ${ka} s`,
      );
    if (options.will && profile.will === false)
      throw new MqttError("NOT_ALLOWED", `${profile.name} does not allow a will message`);
    if (options.will?.retain && profile.retain === false)
      throw new MqttError("NOT_ALLOWED", `${profile.name} does not allow retained messages`);
    this.keepalive = ka * 1000;
    this.window = Math.max(1, options.window ?? 10);
    this.ring = new Outbox(options.outbox ?? {});
    this.limit = profile.publishRate ? new RateLimit(profile.publishRate, profile.publishWindow ?? 1000) : null;
    this.alloc = options.alloc;
    const max = Math.min(options.maxPacketSize ?? 256 * 1024, profile.maxPacketSize ?? 268435460);
    // The profile's topic rules run once per topic, when the topic enters the cache; a cached topic passed them.
    this.topics = new TopicCache(4, profile);
    this.fastAcks = this.level !== 5 && max >= 4;
    this.decoder = new Decoder(this, {
      alloc: options.alloc,
      maxPacketSize: max,
      level: this.level,
      skipOversize: true,
      mqtt5: options.mqtt5,
    });
    this.ring.restore(host);
  }

  /** Messages held (queued and in flight) and their bytes. */
  get outbox(): { messages: number; bytes: number; inflight: number; capacity: number } {
    const ring = this.ring;
    return { messages: ring.count, bytes: ring.bytes, inflight: ring.flying, capacity: ring.records };
  }

  get isConnected(): boolean {
    return this.state === CONNECTED;
  }

  /**
   * False while MAX_ACKS PUBACKs wait for the transport: the client then stops reading until they are written, so
   * a broker that floods and does not read is held back by TCP's flow control.
   */
  get reading(): boolean {
    return this.ackCount < MAX_ACKS;
  }

  /** Bytes of PUBACKs and other control packets waiting for the transport to take them. */
  get backlog(): number {
    let n = this.ackCount * 4;
    for (let i = 0; i < this.ctl.length; i++) n += this.ctl[i].length;
    return n;
  }

  /** Subscriptions the broker acknowledged (restored after a reconnect without a kept session); a new map each time. */
  get subscriptions(): ReadonlyMap<string, QoS> {
    const m = new Map<string, QoS>(),
      subs = this.subs;
    for (let i = 0; i < subs.length; i++) m.set(subs[i], this.subQos(subs[i]));
    return m;
  }

  // ---- connection lifecycle (called by the client) ----

  /** A transport is being opened: the connect timeout starts now. */
  dialing(now: number): void {
    this.sooner = true;
    this.state = DIALING;
    this.connectDeadline = now + (this.options.connectTimeout ?? 10000);
  }

  /** The transport is open: send CONNECT. */
  open(now: number): void {
    const o = this.options;
    this.sooner = true;
    this.state = CONNECTING;
    this.decoder.reset(this.level);
    this.lastRecv = now;
    this.pingSentAt = -1;
    this.pingQueued = false;
    this.forget();
    this.write(
      encode(
        {
          type: 1,
          level: this.level,
          clientId: o.clientId,
          clean: o.clean ?? true,
          keepalive: this.keepalive / 1000,
          username: o.username,
          password: o.password,
          will: o.will,
          properties: o.properties,
        },
        4,
        undefined,
        o.mqtt5,
      ),
      now,
    );
  }

  /**
   * Bytes arrived. The application's handlers (onConnect, onMessage) run after the decoder has returned, not from
   * inside it: what they do next (publish, write, store) then starts five calls higher on the stack. XS's stack is
   * 384 slots on an ESP32 and 256 on an ESP8266, and a handler that publishes from inside the decoder needed 440.
   */
  receive(chunk: Uint8Array, now: number): void {
    this.now = now;
    const dec = this.decoder;
    // A chunk that is one PUBACK, between packets, connected: the one packet of a QoS 1 round trip, straight to
    // puback() (what the decoder would do, without its calls). A whole packet: the broker is alive.
    if (
      chunk.length === 4 &&
      chunk[0] === PUBACK_BYTE &&
      chunk[1] === 2 &&
      this.state === CONNECTED &&
      this.fastAcks &&
      dec.state === 0 &&
      !dec.failed
    ) {
      const id = (chunk[2] << 8) | chunk[3];
      if (id) {
        this.packetsIn++;
        this.lastRecv = now;
        this.puback(id);
        return;
      }
    }
    const before = this.packetsIn;
    let error: unknown = null;
    try {
      dec.push(chunk);
    } catch (e) {
      error = e;
    }
    // Only whole packets show the broker alive: a byte now and then cannot put off the keepalive checks. A packet
    // begun has until partialAt + packetTimeout + its size in ms to end (see deadline()).
    if (this.packetsIn !== before) {
      // The PINGRESP to a PINGREQ sent while a packet was arriving came behind it: its time counts from now.
      if (this.partialAt >= 0 && this.partialAt < this.pingSentAt) this.pingSentAt = now;
      this.lastRecv = now;
      // (a packet begun, or one ended that held the keepalive's checks back: the deadline may come sooner)
      if (dec.midPacket) {
        this.partialAt = now;
        this.sooner = true;
      } else if (this.partialAt >= 0) {
        this.partialAt = -1;
        this.sooner = true;
      }
    } else if (dec.midPacket) {
      if (this.partialAt < 0) {
        this.partialAt = now;
        this.sooner = true;
      }
    } else if (this.partialAt >= 0) {
      this.partialAt = -1; // the last bytes of a packet skipped for its size
      this.lastRecv = now;
      this.sooner = true;
    }
    if (this.heldConnack || this.heldMsg) this.handOver(now);
    if (error)
      this.host.drop(error instanceof MqttError ? error : new MqttError("PROTOCOL_ERROR", String(error), error));
  }

  /**
   * Hands what the last chunk brought to the application, in the order it came. What the handlers send (their
   * publishes, the PUBACKs) is written once they are all done: the socket's write then runs from here, not from
   * under a handler's publish, which is where the firmware's stack was deepest.
   */
  private handOver(now: number): void {
    const losses = this.losses,
      connack = this.heldConnack,
      msg = this.heldMsg,
      more = this.heldMore;
    this.heldConnack = this.heldMsg = null;
    this.handing = true;
    if (connack) this.host.connected(connack);
    if (msg && this.losses === losses) {
      this.handle(msg, this.heldId, now);
      if (more?.length) {
        this.heldMore = null; // a handler that publishes cannot add to it (only a socket callback brings messages)
        for (let i = 0; i < more.length && this.losses === losses; i += 2)
          this.handle(more[i] as Message, more[i + 1] as number, now);
      }
    }
    if (more) {
      more.length = 0;
      this.heldMore = more; // kept for the next burst
    }
    this.handing = false;
    this.flush(now);
  }

  /** The connection is gone (whatever the reason): keep everything that must be resent on the next one. */
  lost(): void {
    if (this.state === IDLE) return;
    this.sooner = true;
    this.state = IDLE;
    this.losses++;
    // Unacknowledged messages wait again, in their original order, ahead of the others.
    this.ring.flying = 0;
    this.forget();
    this.pingSentAt = -1;
    this.pingQueued = false;
  }

  /** What belonged to one connection only: control packets and PUBACKs not yet written, a packet half read. */
  private forget(): void {
    this.ctl.length = 0;
    this.acks = null;
    this.ackCount = 0;
    this.blockedAt = this.partialAt = -1;
  }

  /** Graceful end: DISCONNECT (best effort). */
  disconnect(now: number): void {
    if (this.state === CONNECTED) this.write(encode({ type: 14 }), now);
    this.lost();
  }

  /** The earliest time `tick` has something to do, or -1. */
  deadline(): number {
    const ka = this.keepalive;
    // The common case, connected with nothing waiting (no refused write, no packet half read, no PINGREQ out or
    // queued, reading): the keepalive's next PINGREQ, or a rate-limited send before it. What the checks below give then.
    // (Each of blockedAt, partialAt and pingSentAt is -1 or a time, never negative: their sum is -3 when none is set.)
    if (
      this.state === CONNECTED &&
      ka &&
      this.blockedAt + this.partialAt + this.pingSentAt === -3 &&
      !this.pingQueued &&
      this.ackCount < MAX_ACKS
    ) {
      const sent = this.lastSend,
        recv = this.lastRecv,
        wait = this.rateWait;
      const k = (sent < recv ? sent : recv) + ka;
      return wait && wait < k ? wait : k;
    }
    switch (this.state) {
      case DIALING:
      case CONNECTING:
        return this.connectDeadline;
      case CONNECTED: {
        // (comparisons, not Math.min and Math.max: this runs after every packet sent or received)
        const d = this.rateWait; // ka 0: none
        // The same checks as tick(), in the same order: a deadline tick() would not act on would spin the timer.
        let k = this.blockedAt >= 0 ? this.blockedAt + (ka ? ka * 1.5 : STALL) : -1;
        if (this.ackCount < MAX_ACKS) {
          const part = this.partialAt;
          if (part >= 0) {
            const p = part + this.packetAllowance();
            if (k < 0 || p < k) k = p;
          }
          if (ka) {
            const recv = this.lastRecv,
              ping = this.pingSentAt;
            let t = -1;
            if (ping >= 0) {
              if (part < 0) t = (ping > recv ? ping : recv) + this.pingTimeout;
              if (part < 0 || part > ping) {
                const cap = ping + (ka > this.pingTimeout ? ka : this.pingTimeout);
                if (t < 0 || cap < t) t = cap;
              }
            } else if (!this.pingQueued) t = (this.lastSend < recv ? this.lastSend : recv) + ka;
            if (part < 0 && (t < 0 || recv + ka * 1.5 < t)) t = recv + ka * 1.5;
            if (t >= 0 && (k < 0 || t < k)) k = t;
          }
        }
        return d && (k < 0 || d < k) ? d : k;
      }
    }
    return -1;
  }

  /** Time passed: timeouts, keepalive, rate-limited sends. */
  tick(now: number): void {
    this.now = now;
    if (this.state === DIALING || this.state === CONNECTING) {
      if (now >= this.connectDeadline)
        this.host.drop(
          new MqttError(
            "CONNECT_TIMEOUT",
            `no CONNACK within ${this.options.connectTimeout ?? 10000} ms: the broker is unreachable, slow, or not an MQTT broker`,
          ),
        );
      return;
    }
    if (this.state !== CONNECTED) return;
    const ka = this.keepalive,
      stall = ka ? ka * 1.5 : STALL;
    if (this.blockedAt >= 0 && now - this.blockedAt >= stall)
      return this.host.drop(
        new MqttError(
          "WRITE_STALLED",
          `the broker took nothing this client sent for ${stall / 1000} s${ka ? " (1.5x keepalive)" : ""}${this.ackCount ? `, with ${this.ackCount} PUBACKs waiting` : ""}: it is not reading, or the link is one-way`,
        ),
      );
    const part = this.partialAt;
    if (this.ackCount >= MAX_ACKS) {
      // Reading stopped until the PUBACKs are written: a PINGRESP could not be read, so the stall is the check.
    } else {
      const size = this.decoder.expected;
      if (part >= 0 && now - part >= this.packetAllowance())
        return this.host.drop(
          new MqttError(
            "PACKET_TIMEOUT",
            `${size ? `a ${size}-byte packet` : "a packet's fixed header"} began to arrive ${Math.round((now - this.partialAt) / 100) / 10} s ago and is still incomplete${size ? ` (${this.decoder.pending} bytes of its body so far)` : ""}: the link is too slow or the broker stalls (a packet may take ${this.packetTimeout} ms plus 1 ms per byte: packetTimeout)`,
          ),
        );
      // A packet under way is a sign of life with a deadline of its own: the PINGRESP queues behind it.
      const ping = this.pingSentAt;
      if (ka && ping >= 0 && part < 0 && now - Math.max(ping, this.lastRecv) >= this.pingTimeout)
        return this.host.drop(
          new MqttError(
            "PING_TIMEOUT",
            `no answer to PINGREQ within ${this.pingTimeout} ms: the connection is dead or half-open`,
          ),
        );
      // Other traffic puts off the PINGRESP (it may queue behind it on a slow link), but not past one keepalive, unless
      // a packet begun before the PINGREQ is still arriving: a broker that floods us and reads nothing we send would
      // otherwise hold the connection forever.
      if (ka && ping >= 0 && (part < 0 || part > ping) && now - ping >= Math.max(ka, this.pingTimeout))
        return this.host.drop(
          new MqttError(
            "PING_TIMEOUT",
            `no answer to PINGREQ within ${Math.max(ka, this.pingTimeout) / 1000} s, though the broker kept sending: it is not reading what this client sends`,
          ),
        );
      if (ka && part < 0 && now - this.lastRecv >= ka * 1.5)
        return this.host.drop(
          new MqttError(
            "IDLE_TIMEOUT",
            `nothing received for ${(ka * 1.5) / 1000} s (1.5x keepalive): the connection is dead or half-open`,
          ),
        );
      if (ka && ping < 0 && !this.pingQueued && now - Math.min(this.lastSend, this.lastRecv) >= ka) {
        this.pingQueued = true;
        this.sooner = true;
        this.control(PINGREQ_BYTES, now);
      }
    }
    if (this.rateWait && now >= this.rateWait) {
      this.rateWait = 0;
      this.flush(now);
    }
  }

  /** The transport can take bytes again (or something was queued): send what waits, in order. */
  flush(now: number): void {
    if (this.state !== CONNECTED || this.handing) return;
    if (this.ackCount) {
      if (!this.write((this.acks as Uint8Array).subarray(0, this.ackCount * 4), now)) return;
      this.acks = null; // the transport holds them now
      this.ackCount = 0;
      this.sooner = true; // reading may go on: the keepalive's checks count again
    }
    const ctl = this.ctl;
    while (ctl.length) {
      if (!this.write(ctl[0], now)) return;
      ctl.shift();
    }
    if (this.rateWait) this.rateWait = 0;
    const ring = this.ring;
    while (ring.flying < ring.count) {
      let r = ring.head + ring.flying;
      if (r >= ring.records) r -= ring.records;
      r *= ITEMS;
      const box = ring.box;
      const packet = box[r] as Uint8Array,
        flags = box[r + FLAGS] as number; // PACKET, FLAGS
      if (flags & QOS1 && ring.flying >= this.window) return;
      // (the rate limit's next() and sent() written out: this runs for every message written)
      const limit = this.limit;
      if (limit) {
        const times = now < limit.base || now - limit.base > 0xffffffff ? limit.times(now) : limit.ring;
        const oldest = limit.base + times[limit.at];
        if (now - oldest < limit.span) {
          this.rateWait = oldest + limit.span;
          this.sooner = true;
          return;
        }
      }
      if (this.peerMaxPacket && packet.length > this.peerMaxPacket) {
        const cb = box[r + CALLBACK] as PublishCallback | undefined;
        ring.remove(ring.flying, this.host);
        this.done(
          cb,
          new MqttError(
            "PACKET_TOO_LARGE",
            `a ${packet.length}-byte PUBLISH exceeds the broker's maximum packet size of ${this.peerMaxPacket} bytes`,
          ),
        );
        continue;
      }
      // DUP only when the broker kept the session that saw the first copy (a message never sent has it clear).
      if (flags & SENT) packet[0] = this.sessionPresent ? packet[0] | 8 : packet[0] & ~8;
      if (!this.write(packet, now)) return;
      if (limit) {
        limit.ring[limit.at] = now - limit.base;
        limit.at = limit.at + 1 === limit.rate ? 0 : limit.at + 1;
      }
      if (flags & QOS1) {
        box[r + FLAGS] = flags | SENT;
        ring.flying++;
      } else {
        const cb = box[r + CALLBACK] as PublishCallback | undefined;
        ring.remove(ring.flying, this.host);
        this.done(cb);
      }
    }
  }

  // ---- application API ----

  /**
   * Queues a message. Throws MqttError when it is not accepted: invalid topic or payload, QoS 2, refused by the
   * profile, larger than the broker takes, or no room in the outbox (OUTBOX_FULL) or the store (STORE_FAILED).
   * `cb` is called once: QoS 1 when the broker acknowledges it, QoS 0 when written; or with an error.
   */
  publish(
    topic: string,
    payload: Uint8Array | string,
    qos: QoS,
    retain: boolean,
    cb: PublishCallback | undefined,
    now: number,
  ): void {
    // (the profile read where needed, not kept in a local: this frame is on the deepest stack, a handler's publish)
    if (this.level === 5) this.refuseV5();
    if (retain && this.profile.retain === false)
      throw new MqttError("NOT_ALLOWED", `${this.profile.name} does not allow retained messages`);
    // (the outbox's takeId() and append() written out here: this runs once per publish, and a call is dear on XS)
    const ring = this.ring;
    let id = 0;
    if (qos === 1) {
      if (ring.idsFree === 0) ring.findIds(this.requests);
      ring.idsFree--;
      id = ring.nextId;
      ring.nextId = id === 65535 ? 1 : id + 1;
    }
    // The common message, a byte array to a topic cached (checked and encoded before) in under 128 bytes, made here;
    // any other by the codec, which checks what it is given.
    const tb = this.topics.get(topic);
    let packet: Uint8Array | undefined;
    if (tb && typeof payload !== "string" && (qos === 1 || qos === 0)) {
      const tl = tb.length,
        pl = payload.length,
        rl = qos ? tl + 2 + pl : tl + pl;
      if (rl < 128) {
        packet = this.alloc ? this.alloc(2 + rl) : new Uint8Array(2 + rl);
        packet[0] = retain ? 0x31 | (qos << 1) : 0x30 | (qos << 1);
        packet[1] = rl;
        packet.set(tb, 2);
        if (qos) {
          packet[2 + tl] = id >> 8;
          packet[3 + tl] = id & 0xff;
        }
        packet.set(payload, 2 + rl - pl);
      }
    }
    if (!packet) packet = encodePublishFields(topic, payload, qos, retain, false, id, this.topics, this.alloc);
    const n = packet.length;
    const max = this.peerMaxPacket || this.profile.maxPacketSize || 0;
    if (max && n > max)
      throw new MqttError("PACKET_TOO_LARGE", `a ${n}-byte PUBLISH exceeds the maximum packet size of ${max} bytes`);
    if (ring.count >= ring.maxMessages || ring.bytes + n > ring.maxBytes) {
      const dropped = ring.makeRoom(n, qos, this.host);
      if (dropped)
        for (let i = 0; i < dropped.length; i++)
          this.done(
            dropped[i],
            new MqttError("OUTBOX_FULL", "dropped from the full outbox to make room for a newer message"),
          );
    }
    const store = ring.store;
    if (store) {
      let key = 0;
      if (qos) {
        key = ring.nextKey++;
        try {
          store.save(key, packet);
        } catch (err) {
          throw new MqttError(
            "STORE_FAILED",
            `could not save the message for ${topic} in the persistent outbox: ${String(err)}`,
            err,
          );
        }
      }
      ring.append(packet, cb, qos ? id | QOS1 : 0, key);
    } else {
      const count = ring.count;
      if (count === ring.records) ring.grow();
      let p = ring.head + count;
      if (p >= ring.records) p -= ring.records;
      p *= ITEMS;
      const box = ring.box;
      box[p] = packet; // PACKET
      box[p + CALLBACK] = cb;
      box[p + FLAGS] = qos ? id | QOS1 : 0;
      ring.count = count + 1;
      ring.bytes += n;
    }
    this.flush(now);
  }

  /** Subscribes; `cb` gets the SUBACK codes. Throws for invalid filters, QoS 2, or too many subscriptions. */
  subscribe(subscriptions: { topic: string; qos: QoS }[], cb: SubscribeCallback | undefined, now: number): void {
    this.refuseV5();
    const filters: string[] = [];
    let fresh = 0;
    for (let i = 0; i < subscriptions.length; i++) {
      const t = subscriptions[i].topic;
      checkTopicFilter(t);
      if (this.profile.checkTopic) this.profile.checkTopic(t, true);
      if (this.subs.indexOf(t) < 0 && filters.indexOf(t) < 0) fresh++;
      filters.push(t);
    }
    const max = this.profile.maxSubscriptions;
    if (max && this.subs.length + this.pendingSubs() + fresh > max)
      throw new MqttError("NOT_ALLOWED", `${this.profile.name} allows at most ${max} subscriptions per connection`);
    const id = this.ring.takeId(this.requests);
    const packet = encode({ type: 8, id, subscriptions }, this.level);
    this.request({ id, packet, filters, sub: true, cb }, now);
  }

  unsubscribe(filters: string[], cb: UnsubscribeCallback | undefined, now: number): void {
    this.refuseV5();
    const id = this.ring.takeId(this.requests);
    const packet = encode({ type: 10, id, topics: filters }, this.level);
    // Forget them now, so a restore after a reconnect cannot bring them back.
    for (let i = 0; i < filters.length; i++) {
      drop(this.subs, filters[i]);
      if (this.subs0) drop(this.subs0, filters[i]);
    }
    this.request({ id, packet, filters, sub: false, cb }, now);
  }

  /** Fails every pending callback (the client was closed); persisted messages stay in the store. */
  abandon(error: MqttError): void {
    const cbs = this.ring.clear();
    for (let i = 0; i < cbs.length; i++) this.done(cbs[i], error);
    const reqs = this.requests;
    this.requests = [];
    for (let i = 0; i < reqs.length; i++) this.answer(reqs[i], error, []);
  }

  // ---- internals ----

  private now = 0;

  // Read only while a PINGREQ is out or a packet is arriving: from the options, not copied into every session.
  private get pingTimeout(): number {
    return this.options.pingTimeout ?? 5000;
  }

  private get packetTimeout(): number {
    return this.options.packetTimeout ?? 10000;
  }

  /**
   * How long the packet being read may take from its first byte: packetTimeout plus 1 ms per byte of its size, the
   * size counted up to the largest packet taken (a packet skipped for its size cannot buy more time by announcing more).
   */
  private packetAllowance(): number {
    const size = this.decoder.expected,
      max = this.decoder.maxPacketSize;
    return this.packetTimeout + (size < max ? size : max);
  }

  /** MQTT 5.0 sessions connect (CONNECT/CONNACK and keepalive are complete) but the codec has no 5.0 PUBLISH yet. */
  private refuseV5(): void {
    if (this.level === 5)
      throw new MqttError(
        "NOT_ALLOWED",
        "MQTT 5.0 PUBLISH, SUBSCRIBE and UNSUBSCRIBE are not supported yet: connect with level 4 (3.1.1)",
      );
  }

  private write(bytes: Uint8Array, now: number): boolean {
    if (!this.host.send(bytes)) {
      if (this.blockedAt < 0) {
        this.blockedAt = now;
        this.sooner = true;
      }
      return false;
    }
    this.lastSend = now;
    this.blockedAt = -1;
    if (bytes === PINGREQ_BYTES) {
      this.pingQueued = false;
      this.pingSentAt = now;
      this.sooner = true;
    }
    return true;
  }

  /** Sends a control packet now, or after whatever control packets already wait. */
  private control(bytes: Uint8Array, now: number): void {
    if (this.state !== CONNECTED) return;
    // after the PUBACKs that wait: while any do, a write was refused and nothing has been taken since (blockedAt)
    if (this.ctl.length || this.ackCount || !this.write(bytes, now)) this.ctl.push(bytes);
  }

  private request(r: Request, now: number): void {
    this.requests.push(r);
    this.control(r.packet, now);
  }

  private subQos(filter: string): QoS {
    return this.subs0 && this.subs0.indexOf(filter) >= 0 ? 0 : 1;
  }

  private pendingSubs(): number {
    let n = 0;
    for (let i = 0; i < this.requests.length; i++) if (this.requests[i].sub) n += this.requests[i].filters.length;
    return n;
  }

  private done(cb: PublishCallback | UnsubscribeCallback | undefined, error?: MqttError): void {
    if (!cb) {
      if (error && error.code !== "CLOSED") this.host.error(error);
      return;
    }
    try {
      cb(error);
    } catch (e) {
      this.host.error(new MqttError("CALLBACK_ERROR", `a publish callback threw: ${String(e)}`, e));
    }
  }

  private answer(r: Request, error: MqttError | undefined, granted: number[]): void {
    if (!r.cb) {
      if (error && error.code !== "CLOSED") this.host.error(error);
      return;
    }
    try {
      (r.cb as SubscribeCallback)(error, granted);
    } catch (e) {
      this.host.error(
        new MqttError("CALLBACK_ERROR", `a ${r.sub ? "subscribe" : "unsubscribe"} callback threw: ${String(e)}`, e),
      );
    }
  }

  /** @internal A PUBLISH from the decoder: held until the decoder returns (see receive()). */
  receivedPublish(topic: string, payload: Uint8Array, qos: QoS, retain: boolean, dup: boolean, id: number): void {
    this.packetsIn++;
    if (this.state === IDLE) return; // dropped earlier in this same chunk
    if (this.state !== CONNECTED) return this.protocol("PUBLISH before CONNACK");
    // The one object made per message: what the application is handed (with the payload, a view of the bytes).
    const msg: Message = { topic, payload, qos, retain, dup };
    if (!this.heldMsg) {
      this.heldMsg = msg;
      this.heldId = id;
    } else (this.heldMore ??= []).push(msg, id);
  }

  private handle(msg: Message, id: number, now: number): void {
    if (msg.qos === 0) {
      this.deliver(msg);
      return;
    }
    const inbound = this.inbound ?? (this.inbound = new Inbound());
    if (inbound.busy(id)) return; // still with the application: its PUBACK follows when it is done
    if (msg.dup && inbound.seen(id)) return this.ack(id, now); // redelivery of one already handled
    const r = this.deliver(msg);
    if (r && typeof (r as PromiseLike<unknown>).then === "function")
      this.later(r as PromiseLike<unknown>, msg.topic, id, inbound);
    else this.ack(id, now);
  }

  /**
   * The PUBACK of `id` waits for the handler's promise. A method of its own: on XS, a function that makes closures
   * keeps the variables they use on the heap from its first line, even on paths that make none.
   */
  private later(r: PromiseLike<unknown>, topic: string, id: number, inbound: Inbound): void {
    inbound.start(id);
    const settle = () => {
      inbound.end(id);
      this.ack(id, this.now);
    };
    r.then(settle, (e: unknown) => {
      this.host.error(new MqttError("CALLBACK_ERROR", `the message handler failed for ${topic}: ${String(e)}`, e));
      settle();
    });
  }

  /** @internal PUBACK, UNSUBACK (with their ids), PINGREQ, PINGRESP, DISCONNECT from the decoder. */
  receivedBare(type: number, id: number): void {
    this.packetsIn++;
    if (this.state === IDLE) return;
    if (type === PUBACK) return this.puback(id);
    if (type === PINGRESP) {
      this.pingSentAt = -1;
      this.sooner = true; // the next PINGREQ's time may come before the ping's deadline
      return;
    }
    if (type === UNSUBACK) return this.answered(type, id, undefined);
    this.protocol(`unexpected packet type ${type} from the broker`);
  }

  /** @internal A packet too large was skipped. */
  skipped(error: MqttError): void {
    this.packetsIn++;
    this.host.error(error);
  }

  /** A PUBACK: the message in flight with that id is done. Nothing is made: the in-flight records are scanned. */
  private puback(id: number): void {
    const ring = this.ring,
      box = ring.box;
    // The oldest in flight, as a broker acknowledges in order, without a persistent store: the outbox's remove()
    // written out.
    if (ring.flying && !ring.keys) {
      const head = ring.head,
        r = head * ITEMS;
      if (((box[r + FLAGS] as number) & 0xffff) === id) {
        const cb = box[r + CALLBACK] as PublishCallback | undefined;
        ring.bytes -= (box[r] as Uint8Array).length; // PACKET
        box[r] = box[r + CALLBACK] = undefined;
        ring.flying--;
        if (--ring.count) ring.head = head + 1 === ring.records ? 0 : head + 1;
        else if (ring.records > FIRST_RECORDS) ring.emptied();
        else ring.head = 0;
        if (cb) this.done(cb);
        if (ring.flying < ring.count || this.ctl.length) this.flush(this.now);
        return;
      }
    }
    for (let i = 0, r = ring.head * ITEMS; i < ring.flying; i++, r += ITEMS) {
      if (r === ring.records * ITEMS) r = 0;
      if (((box[r + FLAGS] as number) & 0xffff) !== id) continue;
      const cb = box[r + CALLBACK] as PublishCallback | undefined;
      ring.remove(i, this.host);
      ring.flying--;
      if (cb) this.done(cb);
      if (ring.flying < ring.count || this.ctl.length) this.flush(this.now);
      return;
    }
    // a late duplicate PUBACK
  }

  /** @internal The packets without a path of their own: CONNACK, SUBACK, and what a broker must not send. */
  received(p: Packet): void {
    this.packetsIn++;
    if (this.state === IDLE) return; // dropped earlier in this same chunk
    switch (p.type) {
      case SUBACK:
        return this.answered(SUBACK, p.id, p.granted);
      case CONNACK:
        return this.connack(p, this.now);
    }
    this.protocol(`unexpected packet type ${p.type} from the broker`);
  }

  /** SUBACK (with its codes) or UNSUBACK: the request with that id is answered. */
  private answered(type: number, id: number, granted: number[] | undefined): void {
    const reqs = this.requests;
    let k = 0;
    while (k < reqs.length && reqs[k].id !== id) k++;
    const r = reqs[k];
    if (!r || r.sub !== (type === SUBACK)) return;
    // A SUBACK has one return code per filter of its SUBSCRIBE (MQTT-3.9.3-1): another count is a broken broker, not
    // a refusal (too few) or a success (too many).
    if (granted && granted.length !== r.filters.length)
      return this.protocol(
        `a SUBACK with ${granted.length} return code${granted.length === 1 ? "" : "s"} for a SUBSCRIBE of ${r.filters.length} filter${r.filters.length === 1 ? "" : "s"}`,
      );
    reqs.splice(k, 1);
    if (!granted) return this.answer(r, undefined, []);
    const refused: string[] = [];
    for (let i = 0; i < r.filters.length; i++) {
      const code = granted[i] ?? 0x80,
        f = r.filters[i];
      if (code === 0x80) {
        refused.push(f);
        continue;
      }
      if (this.subs.indexOf(f) < 0) this.subs.push(f);
      if (code) {
        if (this.subs0) drop(this.subs0, f);
      } else if (this.subQos(f)) (this.subs0 ??= []).push(f);
    }
    this.answer(
      r,
      refused.length
        ? new MqttError("SUBSCRIBE_REFUSED", `the broker refused the subscription to ${refused.join(", ")}`)
        : undefined,
      granted,
    );
  }

  private connack(p: ConnackPacket, now: number): void {
    if (this.state !== CONNECTING) return this.protocol("CONNACK when already connected");
    if (p.returnCode !== 0) {
      const e = new MqttError(
        "CONNECT_REFUSED",
        connackMessage(p.returnCode, this.level === 5 ? this.options.mqtt5 : undefined),
      );
      e.returnCode = p.returnCode;
      return this.host.drop(e);
    }
    // A broker cannot have kept a session this client asked it to discard (MQTT-3.2.2-1): believing it would resend
    // with DUP and skip restoring the subscriptions.
    if (p.sessionPresent && (this.options.clean ?? true))
      return this.protocol("CONNACK says a session was kept, though this client asked for a clean one");
    this.sooner = true;
    this.state = CONNECTED;
    this.window = Math.max(1, this.options.window ?? 10);
    this.sessionPresent = p.sessionPresent;
    this.lastRecv = now;
    const props = p.properties;
    if (props) {
      if (props.serverKeepAlive !== undefined) this.keepalive = props.serverKeepAlive * 1000;
      if (props.receiveMaximum && props.receiveMaximum < this.window) this.window = props.receiveMaximum;
      if (props.maximumPacketSize) this.peerMaxPacket = props.maximumPacketSize;
    }
    if (!p.sessionPresent) {
      if (this.inbound) this.inbound.forget();
      // The broker forgot everything: acknowledged subscriptions are restored first, pending requests re-sent.
      const restore: { topic: string; qos: QoS }[] = [],
        subs = this.subs;
      for (let i = 0; i < subs.length; i++) restore.push({ topic: subs[i], qos: this.subQos(subs[i]) });
      this.resend();
      if (restore.length) {
        const id = this.ring.takeId(this.requests);
        const r: Request = {
          id,
          packet: encode({ type: 8, id, subscriptions: restore }, this.level),
          filters: restore.map((s) => s.topic),
          sub: true,
          cb: undefined,
        };
        this.requests.unshift(r);
        this.ctl.unshift(r.packet);
      }
    } else this.resend();
    this.heldConnack = p; // the application hears of it once the decoder has returned (see receive())
  }

  /** Requests not yet acknowledged go out again on the new connection. */
  private resend(): void {
    for (let i = 0; i < this.requests.length; i++) this.ctl.push(this.requests[i].packet);
  }

  private ack(id: number, now: number): void {
    if (this.inbound) this.inbound.acked(id);
    if (this.state !== CONNECTED) return;
    if (!this.ackCount && this.write(encodeAck(4, id), now)) return;
    // The transport is full: the PUBACK waits with the others, 4 bytes in a buffer that doubles as needed.
    let a = this.acks;
    const at = this.ackCount * 4;
    if (!a || at === a.length) {
      const b = new Uint8Array(a ? a.length * 2 : 64);
      if (a) b.set(a);
      a = this.acks = b;
    }
    a[at] = PUBACK_BYTE;
    a[at + 1] = 2;
    a[at + 2] = id >> 8;
    a[at + 3] = id & 0xff;
    this.ackCount++;
  }

  private deliver(msg: Message): unknown {
    try {
      return this.host.message(msg);
    } catch (e) {
      this.host.error(new MqttError("CALLBACK_ERROR", `the message handler threw for ${msg.topic}: ${String(e)}`, e));
      return undefined;
    }
  }

  private protocol(what: string): void {
    this.host.drop(new MqttError("PROTOCOL_ERROR", `the broker broke the MQTT protocol: ${what}`));
  }
}

const PINGREQ_BYTES = new Uint8Array([0xc0, 0]);

/** Removes `item` from `list` if it is there. */
function drop(list: string[], item: string): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}
