/**
 * The MQTT client: binds a Session to transports and the host clock, and keeps the device connected for
 * months on bad links: reconnect forever with exponential backoff and full jitter, reset only after a
 * connection stayed up a while, so a broker that accepts and then kicks the client is backed off from too.
 */
import { MqttError } from "./errors";
import {
  MAX_ACKS,
  Session,
  type Message,
  type PublishCallback,
  type SessionHost,
  type SessionOptions,
  type SubscribeCallback,
  type UnsubscribeCallback,
} from "./session";
import { NetError, checkBrokerAnswer } from "../net/errors";
import type { Clock, Connector, Transport, TransportHandlers } from "../host";
import type { ConnackPacket, QoS } from "./packets";

export interface BackoffOptions {
  /** First retry delay ceiling, ms. Default 1000. */
  min?: number;
  /** Largest retry delay ceiling, ms. Default 60000. */
  max?: number;
  /** A connection must stay up this long (ms) before the backoff starts again from `min`. Default 60000. */
  resetAfter?: number;
}

export interface ClientOptions extends SessionOptions {
  /** Opens a transport to the broker (host-provided: TCP, TLS or WebSocket). */
  connect: Connector;
  clock: Clock;
  /** Uniform in [0, 1), for the backoff jitter. Default Math.random. */
  random?: () => number;
  backoff?: BackoffOptions;
  /**
   * The broker closed this many connections in a row within `resetAfter` of accepting them: reported once as
   * KICKED (a loss the client caused, a timeout or a protocol error, breaks the row). Default 3.
   */
  kickThreshold?: number;
  /** Where the client writes what it cannot hand to a callback (e.g. an onError handler that threw). */
  log?: (message: string) => void;
  onConnect?: Client["onConnect"];
  onDisconnect?: Client["onDisconnect"];
  onMessage?: Client["onMessage"];
  onError?: Client["onError"];
}

export interface PublishOptions {
  qos?: QoS;
  retain?: boolean;
}

export type ClientState = "idle" | "connecting" | "connected" | "waiting" | "closed";

function noop(): void {}

export class Client implements SessionHost {
  /** Connected (CONNACK accepted). `sessionPresent` tells whether the broker kept the session. */
  onConnect: (info: { sessionPresent: boolean; connack: ConnackPacket }) => void;
  /** A connection ended or could not be made; the client retries in `retryIn` ms (-1 when closed). */
  onDisconnect: (error: MqttError, retryIn: number) => void;
  /** A message arrived. For QoS 1 the PUBACK is sent when this returns, or when its promise settles. */
  onMessage: (topic: string, payload: Uint8Array, message: Message) => unknown;
  /** Something went wrong that the client survives (a callback threw, a packet was too large, kicks). */
  onError: (error: MqttError) => void;

  readonly session: Session;
  /** The options, kept as given: what is read only on a dial or a loss is read from them then. */
  private options: ClientOptions;
  private clock: Clock;
  private transport: Transport | null = null;
  private gen = 0;
  private timer: unknown = undefined;
  private timerAt = -1;
  private retryAt = -1;
  private attempt = 0;
  private kicks = 0;
  private connectedAt = -1;
  private started = false;
  private closed = false;
  private offline = false;

  constructor(options: ClientOptions) {
    this.options = options;
    this.clock = options.clock;
    this.onConnect = options.onConnect ?? noop;
    this.onDisconnect = options.onDisconnect ?? noop;
    this.onMessage = options.onMessage ?? noop;
    this.onError = options.onError ?? noop;
    this.session = new Session(options, this);
  }

  get state(): ClientState {
    if (this.closed) return "closed";
    if (this.session.isConnected) return "connected";
    if (this.transport) return "connecting";
    return this.retryAt >= 0 ? "waiting" : "idle";
  }

  /**
   * Messages held in the outbox (queued or awaiting PUBACK), their bytes, those in flight, and `capacity`: the
   * records its ring holds memory for now (it grows with a burst up to maxMessages and is dropped once empty).
   */
  get outbox(): { messages: number; bytes: number; inflight: number; capacity: number } {
    return this.session.outbox;
  }

  /** Connects, and keeps reconnecting until close(). */
  start(): void {
    if (this.closed) throw new MqttError("CLOSED", "the client was closed: make a new one");
    if (this.started) return;
    this.started = true;
    if (!this.offline) return this.dial();
    this.retryAt = this.clock.now();
    this.arm();
  }

  /**
   * Dials now instead of waiting out the backoff, e.g. when the host's network link has just come back. Does
   * nothing unless the client is waiting to retry (not while connecting, connected, idle or closed). The backoff
   * itself is not reset, so a link that flaps cannot cause a dial storm.
   */
  retryNow(): void {
    if (this.closed || !this.started || this.transport || this.retryAt < 0 || this.offline) return;
    this.retryAt = this.clock.now();
    this.arm();
  }

  /**
   * The host's network link is down (true) or back (false). While offline the client does not dial: a retry
   * that falls due waits; a live connection is left to fail on its own (the host drops it with the link). Back
   * online, a waiting client dials at once.
   */
  setOffline(offline: boolean): void {
    if (this.offline === offline) return;
    this.offline = offline;
    if (offline) this.arm();
    else this.retryNow();
  }

  /**
   * Publishes. Throws MqttError when the message is not accepted (invalid topic, QoS 2, not allowed by the
   * profile, too large, outbox or store full). Offline, it waits in the outbox. `cb` is called once: on
   * PUBACK (QoS 1), when written (QoS 0), or with an error.
   */
  publish(topic: string, payload: Uint8Array | string, options?: PublishOptions, cb?: PublishCallback): void {
    if (this.closed) throw new MqttError("CLOSED", "the client was closed");
    this.session.publish(topic, payload, options?.qos ?? 0, options?.retain ?? false, cb, this.clock.now());
    this.rearm();
  }

  /** Subscribes to one or more filters (remembered and restored after reconnects). */
  subscribe(filters: string | string[] | { topic: string; qos: QoS }[], qos: QoS = 1, cb?: SubscribeCallback): void {
    if (this.closed) throw new MqttError("CLOSED", "the client was closed");
    const list =
      typeof filters === "string"
        ? [{ topic: filters, qos }]
        : filters.map((f) => (typeof f === "string" ? { topic: f, qos } : f));
    this.session.subscribe(list, cb, this.clock.now());
    this.arm();
  }

  unsubscribe(filters: string | string[], cb?: UnsubscribeCallback): void {
    if (this.closed) throw new MqttError("CLOSED", "the client was closed");
    this.session.unsubscribe(typeof filters === "string" ? [filters] : filters, cb, this.clock.now());
    this.arm();
  }

  /**
   * Sends DISCONNECT if connected, closes the transport and cancels every timer, dial and retry. Pending
   * callbacks get CLOSED; QoS 1 messages in a persistent store stay there for the next start.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const t = this.transport;
    if (t) this.session.disconnect(this.clock.now());
    this.transport = null;
    this.gen++;
    if (t) t.close();
    this.session.lost();
    this.retryAt = -1;
    this.disarm();
    this.session.abandon(new MqttError("CLOSED", "the client was closed before this completed"));
  }

  // ---- SessionHost ----

  send(bytes: Uint8Array): boolean {
    const t = this.transport;
    return t ? t.write(bytes) : false;
  }

  drop(error: MqttError): void {
    this.lost(error);
  }

  connected(connack: ConnackPacket): void {
    this.connectedAt = this.clock.now();
    // no closure and no call() between the session and the handler: it runs two frames less deep on the XS stack
    try {
      this.onConnect({ sessionPresent: connack.sessionPresent, connack });
    } catch (e) {
      this.error(new MqttError("CALLBACK_ERROR", `the application's onConnect handler threw: ${String(e)}`, e));
    }
  }

  message(message: Message): unknown {
    return this.onMessage(message.topic, message.payload, message);
  }

  error(error: MqttError): void {
    try {
      this.onError(error);
    } catch (e) {
      const log = this.options.log;
      if (log) log(`onError threw while reporting "${error.message}": ${String(e)}`);
    }
  }

  // ---- internals ----

  private dial(): void {
    this.retryAt = -1;
    const link = new Link(this, ++this.gen);
    this.session.dialing(this.clock.now());
    let t: Transport;
    try {
      t = this.options.connect(link);
    } catch (e) {
      // A connector must not throw; if one does, treat it as a failed dial rather than a dead client.
      this.lost(new MqttError("CONNECTION_LOST", `could not open a connection: ${String(e)}`, e));
      return;
    }
    if (link.gen !== this.gen) {
      t.close(); // it failed synchronously and was already handled
      return;
    }
    this.transport = t;
    this.arm();
  }

  /** @internal Transport events of the current dial (older dials' links are ignored). */
  linkConnect(link: Link): void {
    if (link.gen !== this.gen) return;
    this.session.open(this.clock.now());
    this.arm();
  }

  /**
   * @internal Reads while the session takes more: when PUBACKs pile up unwritten it stops (link.paused), and the
   * transport's own flow control holds the broker back until they are written (see linkWritable).
   */
  linkReadable(link: Link): void {
    const t = this.transport,
      s = this.session;
    if (link.gen !== this.gen || !t) return;
    let c: Uint8Array | undefined;
    // (the session's count of PUBACKs waiting, not its `reading` getter: this runs for every chunk)
    while (!(link.paused = s.ackCount >= MAX_ACKS) && (c = t.read())) {
      if (!link.answered && c.length > 0) {
        // A broker's first byte is CONNACK's (or AUTH's): anything else is not an MQTT broker (or a TLS port).
        link.answered = true;
        const wrong = checkBrokerAnswer(c);
        if (wrong) return this.lost(new MqttError("CONNECTION_LOST", wrong.message, wrong));
      }
      s.receive(c, this.clock.now());
      if (link.gen !== this.gen) break;
    }
    this.rearm();
  }

  /** @internal */
  linkWritable(link: Link): void {
    if (link.gen !== this.gen) return;
    this.session.flush(this.clock.now());
    if (link.paused && this.session.reading) return this.linkReadable(link);
    this.arm();
  }

  /** @internal */
  linkError(link: Link, e: Error): void {
    if (link.gen !== this.gen) return;
    // A NetError's message already says what happened and what to do; its code stays reachable as `cause`.
    this.lost(
      e instanceof MqttError
        ? e
        : new MqttError("CONNECTION_LOST", e instanceof NetError ? e.message : `connection lost: ${e.message}`, e),
      !(e instanceof MqttError) && (!(e instanceof NetError) || e.code === "CLOSED"),
    );
  }

  /**
   * `byPeer`: the transport closed under us (the broker or the network ended it), not for something this client
   * found wrong (a timeout, a protocol error, an oversize WebSocket frame).
   */
  private lost(error: MqttError, byPeer = false): void {
    if (this.closed) return;
    const t = this.transport;
    this.transport = null;
    this.gen++;
    if (t) t.close();
    const wasConnected = this.session.isConnected;
    this.session.lost();
    const now = this.clock.now(),
      o = this.options,
      b = o.backoff;
    let kicked = false;
    if (wasConnected) {
      if (now - this.connectedAt >= (b?.resetAfter ?? 60000)) {
        this.attempt = 0;
        this.kicks = 0;
      } else if (byPeer) kicked = ++this.kicks === (o.kickThreshold ?? 3);
      else this.kicks = 0; // the client ended it (a timeout, a protocol error): not a kick, and the row is broken
    }
    const ceiling = Math.min(b?.max ?? 60000, (b?.min ?? 1000) * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    const delay = Math.floor((o.random ?? Math.random)() * ceiling);
    this.retryAt = now + delay;
    this.arm();
    this.call(() => this.onDisconnect(error, delay), "onDisconnect");
    if (kicked) {
      const hint = this.session.profile.kickHint ?? "is another client using the same client id?";
      this.error(new MqttError("KICKED", `kicked ${this.kicks} times within a minute of connecting: ${hint}`, error));
    }
  }

  /** The clock's timer callback: a closure that only calls a method (its instance costs heap; keep it short). */
  private tick = (): void => this.expire();

  private expire(): void {
    this.timer = undefined;
    this.timerAt = -1;
    if (this.closed) return;
    const now = this.clock.now();
    if (this.retryAt >= 0 && !this.offline && now >= this.retryAt) this.dial();
    else this.session.tick(now);
    this.arm();
  }

  /**
   * After a publish or what a read brought: arm() only if the session's deadline may have come earlier than the
   * timer set (Session.sooner), or no timer is set. The deadline's computation and arm's checks cost about 145
   * compute units on XS, twice per QoS 1 round trip; a late deadline needs nothing (the timer fires early, the
   * tick finds nothing due and sets it again).
   */
  private rearm(): void {
    if (this.timer === undefined || this.session.sooner) this.arm();
  }

  /**
   * Keeps one host timer armed no later than the earliest deadline of the session and the retry. Each packet sent
   * or received moves the keepalive deadline later: a timer already armed for an earlier time is kept (it fires
   * early, finds nothing due and re-arms for the real deadline), so traffic costs no timer clear and set.
   */
  private arm(): void {
    if (this.closed) return;
    this.session.sooner = false;
    let d = this.transport ? this.session.deadline() : -1;
    if (this.retryAt >= 0 && !this.offline && (d < 0 || this.retryAt < d)) d = this.retryAt;
    if (this.timer !== undefined && (d < 0 || d >= this.timerAt)) return;
    this.disarm();
    if (d < 0) return;
    this.timerAt = d;
    this.timer = this.clock.setTimer(this.tick, Math.max(0, d - this.clock.now()));
  }

  private disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = -1;
  }

  private call(f: () => void, name: string): void {
    try {
      f();
    } catch (e) {
      this.error(new MqttError("CALLBACK_ERROR", `the application's ${name} handler threw: ${String(e)}`, e));
    }
  }
}

/** The handlers one dial hands its transport: a small object with prototype methods, not a bag of closures. */
class Link implements TransportHandlers {
  answered = false;
  /** Reading stopped while PUBACKs wait for the transport. */
  paused = false;
  constructor(
    readonly client: Client,
    readonly gen: number,
  ) {}
  onConnect(): void {
    this.client.linkConnect(this);
  }
  onReadable(): void {
    this.client.linkReadable(this);
  }
  onWritable(): void {
    this.client.linkWritable(this);
  }
  onError(e: Error): void {
    this.client.linkError(this, e);
  }
}
