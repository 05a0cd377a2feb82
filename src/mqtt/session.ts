/**
 * The MQTT session as pure logic (sans-I/O): it is fed bytes, clock readings and API calls, and answers with
 * bytes to send (through `SessionHost.send`), a deadline for its next tick, and events. It owns everything
 * that must outlive one TCP connection: packet ids, the outbox and the QoS 1 messages in flight, the
 * subscriptions to restore, the dedupe of redelivered messages. It never touches a socket or a timer.
 */
import { Decoder } from "./decode";
import { encode, encodePublishFields, TopicCache, type Allocator } from "./encode";
import { MqttError } from "./errors";
import { GENERIC, type Profile } from "./profile";
import type { OutboxStore } from "./store";
import { checkTopicFilter } from "./topic";
import type { ConnackPacket, ConnectProperties, Packet, ProtocolLevel, QoS, Will } from "./packets";

/** Completion of a publish: no error when the broker acknowledged it (QoS 1) or it was written (QoS 0). */
export type PublishCallback = (error?: MqttError) => void;
/** Completion of a subscribe: `granted` holds the SUBACK code per filter (0x80 = refused). */
export type SubscribeCallback = (error: MqttError | undefined, granted: number[]) => void;
export type UnsubscribeCallback = (error?: MqttError) => void;

export interface OutboxOptions {
  /** Most messages held (queued and in flight together). Default 16. */
  maxMessages?: number;
  /** Most bytes of encoded packets held. Default 8 KB: an ESP8266 has about 32 KB of heap in all. */
  maxBytes?: number;
  /** Keeps QoS 1 messages across reboots. */
  store?: OutboxStore;
}

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
  /** Milliseconds from dialling to CONNACK (TCP, TLS and CONNECT included). Default 10 s. */
  connectTimeout?: number;
  /** Milliseconds to wait for PINGRESP (or any inbound traffic) after PINGREQ. Default 5 s. */
  pingTimeout?: number;
  /** Most QoS 1 messages awaiting PUBACK at once. Default 10. */
  window?: number;
  outbox?: OutboxOptions;
  /** Largest incoming packet accepted, in bytes; larger ones are skipped and reported. Default 256 KB. */
  maxPacketSize?: number;
  profile?: Profile;
  /** Makes packet buffers (see encode's Allocator); the portable default suits a device. */
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

interface Entry {
  packet: Uint8Array;
  qos: QoS;
  id: number;
  /** Store key, 0 when not persisted. */
  key: number;
  /** Sent at least once (on this or an earlier connection). */
  sent: boolean;
  cb: PublishCallback | undefined;
}

interface Request {
  id: number;
  packet: Uint8Array;
  filters: string[];
  sub: boolean;
  cb: SubscribeCallback | UnsubscribeCallback | undefined;
}

const IDLE = 0, DIALING = 1, CONNECTING = 2, CONNECTED = 3;
/** Inbound QoS 1 ids remembered to drop redeliveries: covers a broker's in-flight window (Mosquitto's default is 20). */
const RECENT = 32;
const CONNACK_TEXT = [
  "",
  "the broker does not accept this MQTT protocol level: try level 4 (3.1.1) or 3 (3.1)",
  "the broker rejected the client id",
  "the broker is unavailable",
  "bad user name or password: check the credentials (for UIoT Core, the DeviceSecret and the authmode in the user name)",
  // Not "the credentials are valid": Mosquitto answers a wrong password with 5 under 3.1.1.
  "not authorized: the broker refused this client: check the password (some brokers, Mosquitto among them, answer a wrong one with this code) and that the client may connect (device disabled, or not allowed)",
];
const REASON_TEXT: { [code: number]: string } = {
  0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error", 0x83: "implementation specific error",
  0x84: "unsupported protocol version", 0x85: "client identifier not valid", 0x86: "bad user name or password",
  0x87: "not authorized", 0x88: "server unavailable", 0x89: "server busy", 0x8a: "banned",
  0x8c: "bad authentication method", 0x90: "topic name invalid", 0x95: "packet too large", 0x97: "quota exceeded",
  0x99: "payload format invalid", 0x9a: "retain not supported", 0x9b: "QoS not supported", 0x9c: "use another server",
  0x9d: "server moved", 0x9f: "connection rate exceeded",
};

export function connackMessage(code: number, level: ProtocolLevel): string {
  // A 3.1.1-only broker answers a 5.0 CONNECT with a 3.1.1 code (1: unacceptable protocol version).
  const text = level === 5 && code >= 0x80 ? REASON_TEXT[code] : CONNACK_TEXT[code];
  return `connection refused (code ${code}): ${text ?? "unknown reason"}`;
}

export class Session {
  readonly options: SessionOptions;
  readonly profile: Profile;
  private host: SessionHost;
  private decoder: Decoder;
  private topics: TopicCache;
  private alloc: Allocator | undefined;
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
  private window: number;
  private peerWindow = 65535;

  // Outbound QoS 0/1 messages: queue (waiting) and inflight (awaiting PUBACK), in order.
  private queue: Entry[] = [];
  private inflight: Entry[] = [];
  private byId = new Map<number, Entry | Request>();
  private nextId = 1;
  private bytes = 0;
  private maxMessages: number;
  private maxBytes: number;
  private store: OutboxStore | undefined;
  private nextKey = 1;
  private sendTimes: number[] | null = null; // ring of the last `publishRate` send times, made on first use
  private sendRing = 0;
  private rateWait = 0;

  // Control packets waiting for the transport (PUBACK, PINGREQ, SUBSCRIBE ...).
  private ctl: Uint8Array[] = [];
  private requests: Request[] = []; // subscribe/unsubscribe not yet acknowledged, in order
  private subs = new Map<string, QoS>(); // acknowledged subscriptions, restored after a clean reconnect

  // Inbound QoS 1: ids being handled (async handler) and ids recently acknowledged; made on first use, so an
  // idle client holds neither.
  private handling: Set<number> | null = null;
  private recent: Uint16Array | null = null; // ring; 0 = empty (never a packet id)
  private recentAt = 0;

  constructor(options: SessionOptions, host: SessionHost) {
    const profile = options.profile ?? GENERIC;
    this.options = options;
    this.profile = profile;
    this.host = host;
    this.level = options.level ?? 4;
    const ka = options.keepalive ?? 60;
    const range = profile.keepalive;
    if (!(ka >= 0 && ka <= 65535 && (ka | 0) === ka)) throw new MqttError("INVALID_PACKET", "keepalive must be an integer from 0 to 65535 seconds");
    if (range && (ka < range[0] || ka > range[1]))
      throw new MqttError("NOT_ALLOWED", `${profile.name} requires a keepalive from ${range[0]} to ${range[1]} s, not ${ka} s`);
    if (options.will && profile.will === false) throw new MqttError("NOT_ALLOWED", `${profile.name} does not allow a will message`);
    if (options.will && options.will.retain && profile.retain === false) throw new MqttError("NOT_ALLOWED", `${profile.name} does not allow retained messages`);
    this.keepalive = ka * 1000;
    this.window = Math.max(1, options.window ?? 10);
    const ob = options.outbox ?? {};
    this.maxMessages = ob.maxMessages ?? 16;
    this.maxBytes = ob.maxBytes ?? 8192;
    this.store = ob.store;
    const max = Math.min(options.maxPacketSize ?? 256 * 1024, profile.maxPacketSize ?? 268435460);
    this.alloc = options.alloc;
    // The profile's topic rules run once per topic, when the topic enters the cache; a cached topic passed them.
    const check = profile.checkTopic;
    this.topics = new TopicCache(4, check ? (t) => check(t, false) : undefined);
    this.decoder = new Decoder((p) => this.packet(p), {
      alloc: options.alloc,
      maxPacketSize: max,
      level: this.level,
      skipOversize: true,
      onSkip: (e) => this.host.error(e),
    });
    if (this.store) this.restore(this.store);
  }

  /** Messages held (queued and in flight) and their bytes. */
  get outbox(): { messages: number; bytes: number; inflight: number } {
    return { messages: this.queue.length + this.inflight.length, bytes: this.bytes, inflight: this.inflight.length };
  }

  get isConnected(): boolean {
    return this.state === CONNECTED;
  }

  /** Subscriptions the broker acknowledged (restored after a reconnect without a kept session). */
  get subscriptions(): ReadonlyMap<string, QoS> {
    return this.subs;
  }

  // ---- connection lifecycle (called by the client) ----

  /** A transport is being opened: the connect timeout starts now. */
  dialing(now: number): void {
    this.state = DIALING;
    this.connectDeadline = now + (this.options.connectTimeout ?? 10000);
  }

  /** The transport is open: send CONNECT. */
  open(now: number): void {
    const o = this.options;
    this.state = CONNECTING;
    this.decoder.reset(this.level);
    this.lastRecv = now;
    this.pingSentAt = -1;
    this.pingQueued = false;
    this.ctl.length = 0;
    this.write(encode({
      type: 1, level: this.level, clientId: o.clientId, clean: o.clean ?? true, keepalive: this.keepalive / 1000,
      username: o.username, password: o.password, will: o.will, properties: o.properties,
    }), now);
  }

  /** Bytes arrived. */
  receive(chunk: Uint8Array, now: number): void {
    this.lastRecv = now;
    this.now = now;
    try {
      this.decoder.push(chunk);
    } catch (e) {
      this.host.drop(e instanceof MqttError ? e : new MqttError("PROTOCOL_ERROR", String(e), e));
    }
  }

  /** The connection is gone (whatever the reason): keep everything that must be resent on the next one. */
  lost(): void {
    if (this.state === IDLE) return;
    this.state = IDLE;
    // Unacknowledged messages go back to the head of the queue, in their original order.
    if (this.inflight.length) {
      this.queue = this.inflight.concat(this.queue);
      this.inflight = [];
    }
    this.ctl.length = 0;
    this.pingSentAt = -1;
    this.pingQueued = false;
  }

  /** Graceful end: DISCONNECT (best effort). */
  disconnect(now: number): void {
    if (this.state === CONNECTED) this.write(encode({ type: 14 }), now);
    this.lost();
  }

  /** The earliest time `tick` has something to do, or -1. */
  deadline(): number {
    switch (this.state) {
      case DIALING:
      case CONNECTING:
        return this.connectDeadline;
      case CONNECTED: {
        let d = this.rateWait || Infinity;
        const ka = this.keepalive;
        if (ka) {
          d = Math.min(d, this.lastRecv + ka * 1.5);
          if (this.pingSentAt >= 0) d = Math.min(d, Math.max(this.pingSentAt, this.lastRecv) + (this.options.pingTimeout ?? 5000));
          else if (!this.pingQueued) d = Math.min(d, Math.min(this.lastSend, this.lastRecv) + ka);
        }
        return d === Infinity ? -1 : d;
      }
    }
    return -1;
  }

  /** Time passed: timeouts, keepalive, rate-limited sends. */
  tick(now: number): void {
    this.now = now;
    if (this.state === DIALING || this.state === CONNECTING) {
      if (now >= this.connectDeadline)
        this.host.drop(new MqttError("CONNECT_TIMEOUT", `no CONNACK within ${this.options.connectTimeout ?? 10000} ms: the broker is unreachable, slow, or not an MQTT broker`));
      return;
    }
    if (this.state !== CONNECTED) return;
    const ka = this.keepalive;
    if (ka) {
      if (this.pingSentAt >= 0 && now - Math.max(this.pingSentAt, this.lastRecv) >= (this.options.pingTimeout ?? 5000))
        return this.host.drop(new MqttError("PING_TIMEOUT", `no answer to PINGREQ within ${this.options.pingTimeout ?? 5000} ms: the connection is dead or half-open`));
      if (now - this.lastRecv >= ka * 1.5)
        return this.host.drop(new MqttError("IDLE_TIMEOUT", `nothing received for ${(ka * 1.5) / 1000} s (1.5x keepalive): the connection is dead or half-open`));
      if (this.pingSentAt < 0 && !this.pingQueued && now - Math.min(this.lastSend, this.lastRecv) >= ka) {
        this.pingQueued = true;
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
    if (this.state !== CONNECTED) return;
    const ctl = this.ctl;
    while (ctl.length) {
      if (!this.write(ctl[0], now)) return;
      ctl.shift();
    }
    this.rateWait = 0;
    const q = this.queue, rate = this.profile.publishRate ?? 0;
    while (q.length) {
      const e = q[0];
      if (e.qos && this.inflight.length >= Math.min(this.window, this.peerWindow)) return;
      if (rate) {
        const times = this.sendTimes ?? (this.sendTimes = []);
        const oldest = times.length < rate ? -Infinity : times[this.sendRing];
        const span = this.profile.publishWindow ?? 1000;
        if (now - oldest < span) {
          this.rateWait = oldest + span;
          return;
        }
      }
      if (this.peerMaxPacket && e.packet.length > this.peerMaxPacket) {
        q.shift();
        this.release(e);
        this.done(e.cb, new MqttError("PACKET_TOO_LARGE", `a ${e.packet.length}-byte PUBLISH exceeds the broker's maximum packet size of ${this.peerMaxPacket} bytes`));
        continue;
      }
      if (e.qos) {
        // DUP only when the broker kept the session that saw the first copy.
        if (e.sent && this.sessionPresent) e.packet[0] |= 8;
        else e.packet[0] &= ~8;
      }
      if (!this.write(e.packet, now)) return;
      q.shift();
      if (rate) {
        const times = this.sendTimes as number[];
        if (times.length < rate) times.push(now);
        else {
          times[this.sendRing] = now;
          this.sendRing = (this.sendRing + 1) % rate;
        }
      }
      if (e.qos) {
        e.sent = true;
        this.inflight.push(e);
      } else {
        this.release(e);
        this.done(e.cb);
      }
    }
  }

  // ---- application API ----

  /**
   * Queues a message. Throws MqttError when it is not accepted: invalid topic or payload, QoS 2, refused by the
   * profile, larger than the broker takes, or no room in the outbox (OUTBOX_FULL) or the store (STORE_FAILED).
   * `cb` is called once: QoS 1 when the broker acknowledges it, QoS 0 when written; or with an error.
   */
  publish(topic: string, payload: Uint8Array | string, qos: QoS, retain: boolean, cb: PublishCallback | undefined, now: number): void {
    const profile = this.profile;
    this.refuseV5();
    if (retain && profile.retain === false) throw new MqttError("NOT_ALLOWED", `${profile.name} does not allow retained messages`);
    const id = qos === 1 ? this.freeId() : 0;
    const packet = encodePublishFields(topic, payload, qos, retain, false, id, this.topics, this.alloc);
    const n = packet.length;
    const max = this.peerMaxPacket || profile.maxPacketSize || 0;
    if (max && n > max) throw new MqttError("PACKET_TOO_LARGE", `a ${n}-byte PUBLISH exceeds the maximum packet size of ${max} bytes`);
    this.makeRoom(n, qos);
    const e: Entry = { packet, qos, id, key: 0, sent: false, cb };
    if (qos && this.store) {
      const key = this.nextKey++;
      try {
        this.store.save(key, packet);
      } catch (err) {
        throw new MqttError("STORE_FAILED", `could not save the message for ${topic} in the persistent outbox: ${String(err)}`, err);
      }
      e.key = key;
    }
    if (qos) this.byId.set(id, e);
    this.bytes += n;
    this.queue.push(e);
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
      if (!this.subs.has(t) && filters.indexOf(t) < 0) fresh++;
      filters.push(t);
    }
    const max = this.profile.maxSubscriptions;
    if (max && this.subs.size + this.pendingSubs() + fresh > max)
      throw new MqttError("NOT_ALLOWED", `${this.profile.name} allows at most ${max} subscriptions per connection`);
    const id = this.freeId();
    const packet = encode({ type: 8, id, subscriptions }, this.level);
    this.request({ id, packet, filters, sub: true, cb }, now);
  }

  unsubscribe(filters: string[], cb: UnsubscribeCallback | undefined, now: number): void {
    this.refuseV5();
    const id = this.freeId();
    const packet = encode({ type: 10, id, topics: filters }, this.level);
    // Forget them now, so a restore after a reconnect cannot bring them back.
    for (let i = 0; i < filters.length; i++) this.subs.delete(filters[i]);
    this.request({ id, packet, filters, sub: false, cb }, now);
  }

  /** Fails every pending callback (the client was closed); persisted messages stay in the store. */
  abandon(error: MqttError): void {
    const all = this.inflight.concat(this.queue);
    this.inflight = [];
    this.queue = [];
    this.byId.clear();
    this.bytes = 0;
    for (let i = 0; i < all.length; i++) this.done(all[i].cb, error);
    const reqs = this.requests;
    this.requests = [];
    for (let i = 0; i < reqs.length; i++) this.answer(reqs[i], error, []);
  }

  // ---- internals ----

  private now = 0;

  /** MQTT 5.0 sessions connect (CONNECT/CONNACK and keepalive are complete) but the codec has no 5.0 PUBLISH yet. */
  private refuseV5(): void {
    if (this.level === 5)
      throw new MqttError("NOT_ALLOWED", "MQTT 5.0 PUBLISH, SUBSCRIBE and UNSUBSCRIBE are not supported yet: connect with level 4 (3.1.1)");
  }

  private write(bytes: Uint8Array, now: number): boolean {
    if (!this.host.send(bytes)) return false;
    this.lastSend = now;
    if (bytes === PINGREQ_BYTES) {
      this.pingQueued = false;
      this.pingSentAt = now;
    }
    return true;
  }

  /** Sends a control packet now, or after whatever control packets already wait. */
  private control(bytes: Uint8Array, now: number): void {
    if (this.state !== CONNECTED) return;
    if (this.ctl.length || !this.write(bytes, now)) this.ctl.push(bytes);
  }

  private request(r: Request, now: number): void {
    this.byId.set(r.id, r);
    this.requests.push(r);
    this.control(r.packet, now);
  }

  private pendingSubs(): number {
    let n = 0;
    for (let i = 0; i < this.requests.length; i++) if (this.requests[i].sub) n += this.requests[i].filters.length;
    return n;
  }

  private freeId(): number {
    if (this.byId.size >= 65535) throw new MqttError("OUTBOX_FULL", "all 65535 packet identifiers are in use");
    let id = this.nextId;
    while (this.byId.has(id)) id = id === 65535 ? 1 : id + 1;
    this.nextId = id === 65535 ? 1 : id + 1;
    return id;
  }

  /** Frees room for `n` bytes by dropping the oldest queued QoS 0 messages, or throws OUTBOX_FULL. */
  private makeRoom(n: number, qos: QoS): void {
    const q = this.queue;
    let freeCount = this.maxMessages - q.length - this.inflight.length, freeBytes = this.maxBytes - this.bytes;
    if (freeCount >= 1 && freeBytes >= n) return;
    if (n > this.maxBytes) throw new MqttError("OUTBOX_FULL", `a ${n}-byte message is larger than the whole outbox (${this.maxBytes} bytes): raise outbox.maxBytes`);
    // Would dropping queued QoS 0 messages make room? Count first, so nothing is dropped in vain.
    let last = -1;
    for (let i = 0; i < q.length && !(freeCount >= 1 && freeBytes >= n); i++) {
      if (q[i].qos === 0) {
        freeCount++;
        freeBytes += q[i].packet.length;
        last = i;
      }
    }
    if (!(freeCount >= 1 && freeBytes >= n))
      throw new MqttError("OUTBOX_FULL", `the outbox is full (${q.length + this.inflight.length} messages, ${this.bytes} bytes) with unacknowledged QoS 1 messages: ${qos ? "this QoS 1" : "the"} message was not queued`);
    // Drop the oldest QoS 0 messages, up to and including index `last`.
    const dropped: Entry[] = [];
    for (let i = 0; i <= last - dropped.length; ) {
      const e = q[i];
      if (e.qos === 0) {
        q.splice(i, 1);
        this.bytes -= e.packet.length;
        dropped.push(e);
      } else i++;
    }
    for (let i = 0; i < dropped.length; i++)
      this.done(dropped[i].cb, new MqttError("OUTBOX_FULL", "dropped from the full outbox to make room for a newer message"));
  }

  private release(e: Entry): void {
    this.bytes -= e.packet.length;
    if (e.qos) this.byId.delete(e.id);
    if (e.key && this.store) {
      try {
        this.store.remove(e.key);
      } catch (err) {
        this.host.error(new MqttError("STORE_FAILED", `could not remove an acknowledged message from the persistent outbox: ${String(err)}`, err));
      }
    }
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
      this.host.error(new MqttError("CALLBACK_ERROR", `a ${r.sub ? "subscribe" : "unsubscribe"} callback threw: ${String(e)}`, e));
    }
  }

  private restore(store: OutboxStore): void {
    let entries: { key: number; packet: Uint8Array }[];
    try {
      entries = store.load().sort((a, b) => a.key - b.key);
    } catch (err) {
      this.host.error(new MqttError("STORE_FAILED", `could not read the persistent outbox: ${String(err)}`, err));
      return;
    }
    const box: { p: Packet | undefined } = { p: undefined };
    const d = new Decoder((p) => (box.p = p), { maxPacketSize: 268435460 });
    for (let i = 0; i < entries.length; i++) {
      const { key, packet } = entries[i];
      box.p = undefined;
      try {
        d.reset();
        d.push(packet);
      } catch {
        box.p = undefined;
      }
      const found = box.p as Packet | undefined;
      if (!found || found.type !== 3 || found.qos !== 1 || this.byId.has(found.id as number)) {
        this.host.error(new MqttError("STORE_FAILED", `discarded an unreadable entry (key ${key}) from the persistent outbox`));
        try { store.remove(key); } catch { /* reported above */ }
        continue;
      }
      const e: Entry = { packet: packet.slice(), qos: 1, id: found.id as number, key, sent: true, cb: undefined };
      this.byId.set(e.id, e);
      this.bytes += packet.length;
      this.queue.push(e);
      if (key >= this.nextKey) this.nextKey = key + 1;
    }
  }

  private packet(p: Packet): void {
    const now = this.now;
    if (this.state === IDLE) return; // dropped earlier in this same chunk
    switch (p.type) {
      case 3: {
        if (this.state !== CONNECTED) return this.protocol("PUBLISH before CONNACK");
        const msg: Message = { topic: p.topic, payload: p.payload as Uint8Array, qos: p.qos, retain: p.retain, dup: p.dup };
        if (p.qos === 0) {
          this.deliver(msg);
          return;
        }
        const id = p.id as number;
        const handling = this.handling;
        if (handling && handling.has(id)) return; // still with the application: its PUBACK follows when it is done
        if (p.dup && this.recent && this.recent.indexOf(id) >= 0) return this.ack(id, now); // redelivery of one already handled
        const r = this.deliver(msg);
        if (r && typeof (r as PromiseLike<unknown>).then === "function") {
          const busy = this.handling ?? (this.handling = new Set());
          busy.add(id);
          const settle = () => {
            busy.delete(id);
            this.ack(id, this.now);
          };
          (r as PromiseLike<unknown>).then(settle, (e: unknown) => {
            this.host.error(new MqttError("CALLBACK_ERROR", `the message handler failed for ${p.topic}: ${String(e)}`, e));
            settle();
          });
        } else this.ack(id, now);
        return;
      }
      case 4: {
        const e = this.byId.get(p.id);
        if (!e || !("qos" in e)) return; // a late duplicate PUBACK
        const i = this.inflight.indexOf(e);
        if (i < 0) return;
        this.inflight.splice(i, 1);
        this.release(e);
        this.done(e.cb);
        this.flush(now);
        return;
      }
      case 9:
      case 11: {
        const r = this.byId.get(p.id);
        if (!r || "qos" in r || r.sub !== (p.type === 9)) return;
        this.byId.delete(p.id);
        this.requests.splice(this.requests.indexOf(r), 1);
        if (p.type === 11) return this.answer(r, undefined, []);
        const granted = p.granted, refused: string[] = [];
        for (let i = 0; i < r.filters.length; i++) {
          const code = granted[i] ?? 0x80;
          if (code === 0x80) refused.push(r.filters[i]);
          else this.subs.set(r.filters[i], Math.min(code, 1) as QoS);
        }
        this.answer(r, refused.length ? new MqttError("SUBSCRIBE_REFUSED", `the broker refused the subscription to ${refused.join(", ")}`) : undefined, granted);
        return;
      }
      case 13:
        this.pingSentAt = -1;
        return;
      case 2:
        return this.connack(p, now);
    }
    this.protocol(`unexpected packet type ${p.type} from the broker`);
  }

  private connack(p: ConnackPacket, now: number): void {
    if (this.state !== CONNECTING) return this.protocol("CONNACK when already connected");
    if (p.returnCode !== 0) {
      const e = new MqttError("CONNECT_REFUSED", connackMessage(p.returnCode, this.level));
      e.returnCode = p.returnCode;
      return this.host.drop(e);
    }
    this.state = CONNECTED;
    this.sessionPresent = p.sessionPresent;
    this.lastRecv = now;
    const props = p.properties;
    if (props) {
      if (props.serverKeepAlive !== undefined) this.keepalive = props.serverKeepAlive * 1000;
      if (props.receiveMaximum) this.peerWindow = props.receiveMaximum;
      if (props.maximumPacketSize) this.peerMaxPacket = props.maximumPacketSize;
    }
    if (!p.sessionPresent) {
      if (this.recent) this.recent.fill(0);
      // The broker forgot everything: acknowledged subscriptions are restored first, pending requests re-sent.
      const restore: { topic: string; qos: QoS }[] = [];
      this.subs.forEach((qos, topic) => restore.push({ topic, qos }));
      this.resend();
      if (restore.length) {
        const id = this.freeId();
        const r: Request = { id, packet: encode({ type: 8, id, subscriptions: restore }, this.level), filters: restore.map((s) => s.topic), sub: true, cb: undefined };
        this.byId.set(id, r);
        this.requests.unshift(r);
        this.ctl.unshift(r.packet);
      }
    } else this.resend();
    this.host.connected(p);
    this.flush(now);
  }

  /** Requests not yet acknowledged go out again on the new connection. */
  private resend(): void {
    for (let i = 0; i < this.requests.length; i++) this.ctl.push(this.requests[i].packet);
  }

  private ack(id: number, now: number): void {
    const recent = this.recent ?? (this.recent = new Uint16Array(RECENT));
    if (recent.indexOf(id) < 0) {
      recent[this.recentAt] = id;
      this.recentAt = (this.recentAt + 1) % RECENT;
    }
    this.control(encode({ type: 4, id }), now);
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
