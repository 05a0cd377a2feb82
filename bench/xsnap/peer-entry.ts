// The XS side of bench/xsnap/peers.ts and test/xsnap/host-layer.test.ts: our client as the Moddable host runs it
// (hosts/moddable: the connector, ModdableTransport and ModdableClock) and the Moddable SDK's own MQTT clients, each
// on the same fakes of the SDK's native modules. The fakes are ours; the SDK's files are not in this repository:
// bench/xsnap/peers.ts bundles them from $MODDABLE at bench time with a glue module that imports this file first and
// then calls install() with the SDK's classes ("socket", "timer", "time", "websocket" and "url" resolve to the
// fakes below). Without an SDK, install() is called with none and only ours runs: on the host stack, and (for the
// host layer's share) on a bare sink.
//
// The fakes do what the device's modules do, and nothing more:
// - TCP (ECMA-419 embedded:io/socket/tcp, native on a device): onWritable when connected, onReadable(count) when
//   data arrived; read() in "number" format returns one byte, in "buffer" format a new ArrayBuffer (of `count`
//   bytes, or all); write() counts and returns the room left (kept full: the fake sends instantly).
// - Socket (legacy "socket", native): callback(1) when connected, callback(2, bytes) when data arrived;
//   read(ArrayBuffer) returns all the bytes waiting as a new ArrayBuffer; write() counts.
// - Timer (native, modules/base/timer/modTimer.c): set() or schedule() with no delay or 1 ms runs at the next turn
//   (runTimers(), called after each event, as the device's run loop would), with the timer as its argument;
//   delayed timers (connect timeout, keepalive) never fire; a timer whose repeat interval is 0 is freed when it
//   has fired; schedule() without a delay unschedules.
// - Time.ticks is moved by the benchmark (ours paces its PUBLISH by it); the DNS resolver answers at once; URL
//   parses "scheme://host[:port]".
// A fake is JavaScript where the device runs native code, so each call costs compute units a native call would
// not. So these fakes are the benchmark's own, minimal, and not the tests' (test/helpers/sdk-fakes.ts, which record
// everything they are handed): the "check" op records every call to a fake during one operation, and "replay" makes
// those calls again on their own, either to the fakes or, with `native`, to a native function that allocates what
// the device's native code allocates, so that bench/xsnap/peers.ts can take the fakes' excess out of each side's
// figures.
//
// globalThis.handleCommand takes JSON: {"op":"make"|"setup","peer":"ours"|"host"|"bare"|"legacy"|"ecma419"|"mqttjs"} |
// {"op":"setup"} (the client made last) | {"op":"gc"} |
// {"op":"drop"} | {"op":"noop"} | {"op":"check"} | {"op":"publish"|"publish0"|"incoming","n":N} |
// {"op":"replay","phase":"publish"|"publish0"|"incoming","native":bool,"n":N}.
import type { Client } from "../../src/mqtt/client";
import { parseEndpoint } from "../../src/net/endpoint";
import type { Clock, Connector, Transport, TransportHandlers } from "../../src/host";
import { Identity } from "../../src/uiot/identity";
import { uiotClient } from "../../src/uiot/profile";
import { Thing } from "../../src/uiot/thing";
import { ModdableClock } from "../../hosts/moddable/clock";
import { moddableConnector, type ModdableNet } from "../../hosts/moddable/connector";
import { tcpOpener, type SocketClass } from "../../hosts/moddable/openers";
import type { TimeSync } from "../../hosts/moddable/time-sync";

declare const gc: () => void;

// ---- fakes of the SDK's native modules ----

/** What "check" records: [kind, size] for each call to a fake. */
const READ_BYTE = 0,
  READ_BUFFER = 1,
  TCP_WRITE = 2,
  SOCKET_READ = 3,
  SOCKET_WRITE = 4,
  TIMER_SET = 5,
  TIMER_CLEAR = 6,
  FROM_STRING = 7,
  FROM_BUFFER = 8,
  TIMER_SCHEDULE = 9,
  RUN_LOOP = 10;
const FAKE_CALLS = [
  "TCP read (number)",
  "TCP read (buffer)",
  "TCP write",
  "Socket read",
  "Socket write",
  "Timer.set",
  "Timer.clear",
  "ArrayBuffer.fromString",
  "String.fromArrayBuffer",
  "Timer.schedule",
  "run loop",
];
let recording: number[] | undefined;

/**
 * A timer as modules/base/timer/modTimer.c keeps it: the callback gets the timer; a timer whose repeat interval is
 * 0 when its callback returns is freed; Timer.schedule reschedules (or, without a delay, unschedules) a live one.
 */
interface FakeTimer {
  callback: (timer: FakeTimer) => void;
  /** Not cleared nor freed. */
  live: boolean;
  /** Scheduled to fire at the next turn (delay 0 or 1 ms); longer delays never fire here. */
  soon: boolean;
  repeat: number;
}
let due: FakeTimer[] = [];
/** A delay of 0 or 1 ms fires at the next turn (the run loop's turns are a millisecond apart); longer, never. */
const next = (ms: number | undefined): boolean => !ms || ms <= 1;

export const Timer = {
  set(callback: (timer: FakeTimer) => void, ms?: number, repeat?: number): FakeTimer {
    const t: FakeTimer = { callback, live: true, soon: next(ms), repeat: repeat ?? 0 };
    if (t.soon) due.push(t);
    return t;
  },
  repeat(callback: (timer: FakeTimer) => void, ms: number): FakeTimer {
    return { callback, live: true, soon: false, repeat: ms };
  },
  schedule(t: FakeTimer, ms?: number, repeat?: number): void {
    if (!t.live) throw new Error("invalid");
    if (ms === undefined) {
      t.soon = false;
      t.repeat = -1;
      return;
    }
    t.repeat = repeat ?? 0;
    t.soon = next(ms);
    if (t.soon) due.push(t);
  },
  clear(t: FakeTimer | undefined): void {
    if (t) t.live = false;
  },
};

/** Runs the timers that are due at the next turn (those set with no delay), including ones they set. */
function runTimers(): void {
  const list = due;
  recording?.push(RUN_LOOP, list.length);
  for (let i = 0; i < list.length; i++) {
    const t = list[i];
    if (t.live && t.soon) {
      t.soon = false;
      t.callback(t);
      if (t.repeat === 0) t.live = false;
    }
  }
  list.length = 0;
}

export const Time = {
  ticks: 1_000_000,
  delta(a: number, b: number): number {
    return b - a;
  },
};

/** Set while "check" runs: every packet written, copied. */
let capture: Uint8Array[] | undefined;
function captured(data: ArrayBuffer | ArrayBufferView): void {
  if (!capture) return;
  const v = ArrayBuffer.isView(data)
    ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    : new Uint8Array(data);
  capture.push(v.slice());
}

let written = 0;
/** What the last TCP write was handed (for the packet id of the PUBLISH in it). */
let lastWritten: ArrayBuffer | ArrayBufferView | undefined;

/** The legacy "socket" module's Socket, as modules/network/mqtt/mqtt.js uses it. */
export class Socket {
  callback: (state: number, value?: number) => unknown = () => undefined;
  inbox: Uint8Array | undefined = undefined;
  constructor(_dictionary: object) {
    legacySocket = this;
  }
  read(_type: unknown): ArrayBuffer | undefined {
    const b = this.inbox;
    if (!b) return undefined;
    this.inbox = undefined;
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }
  write(data: ArrayBuffer): void {
    written += data.byteLength;
    if (capture) captured(data);
  }
  close(): void {}
  deliver(bytes: Uint8Array): void {
    this.inbox = bytes;
    this.callback(2, bytes.length);
    runTimers();
  }
}
let legacySocket: Socket | undefined;

/** Never used: the legacy client makes one only for a `path` (MQTT over WebSocket). */
export class WSClient {
  constructor() {
    throw new Error("no WebSocket in this benchmark");
  }
}

/** lwIP's default send buffer on ESP32 (TCP_SND_BUF). */
const WRITABLE = 5744;

interface TcpOptions {
  onReadable(count: number): void;
  onWritable(count: number): void;
  onError(error?: unknown): void;
  target?: unknown;
}

const NOTHING = new Uint8Array(0);

/**
 * ECMA-419 embedded:io/socket/tcp, as MQTTClient and our host use it: it keeps the three callbacks (the native
 * socket keeps them in its C record) and calls them with the socket as `this`; the options' `target` becomes the
 * socket's `target` property, as builtinInitializeTarget does.
 */
export class TCP {
  format = "buffer";
  inbox: Uint8Array = NOTHING;
  pos = 0;
  private readonly onReadable: (count: number) => void;
  private readonly onWritable: (count: number) => void;
  private readonly onError: (error?: unknown) => void;
  constructor(options: TcpOptions) {
    this.onReadable = options.onReadable;
    this.onWritable = options.onWritable;
    this.onError = options.onError;
    if ("target" in options) (this as { target?: unknown }).target = options.target;
    tcpSocket = this;
  }
  /** Connected, or room again: onWritable(count). */
  writable(count: number): void {
    this.onWritable(count);
  }
  read(count?: number): number | ArrayBuffer | undefined {
    const b = this.inbox,
      p = this.pos;
    if (p >= b.length) return undefined;
    if (this.format === "number") {
      this.pos = p + 1;
      return b[p];
    }
    const n = count ?? b.length - p;
    if (n <= 0 || p + n > b.length) throw new Error("invalid");
    this.pos = p + n;
    return b.buffer.slice(b.byteOffset + p, b.byteOffset + p + n) as ArrayBuffer;
  }
  write(data: ArrayBuffer | ArrayBufferView, _options?: object): number {
    written += data.byteLength;
    lastWritten = data;
    if (capture) captured(data);
    return WRITABLE;
  }
  close(): void {}
  deliver(bytes: Uint8Array): void {
    this.inbox = bytes;
    this.pos = 0;
    this.onReadable(bytes.length);
    runTimers();
  }
}
let tcpSocket: TCP | undefined;

/** embedded:network/dns/resolver/udp: answers at once. */
export class Resolver {
  resolve(r: { host: string; onResolved(host: string, address: string): void }): void {
    r.onResolved(r.host, "192.0.2.1");
  }
}

/** Moddable's "url" module, as far as examples/io/tcp/mqtt/mqtt.js uses it. */
export class URL {
  protocol: string;
  hostname: string;
  port: string;
  constructor(href: string) {
    const m = /^([a-z]+:)\/\/([^:/]+)(?::(\d+))?/.exec(href);
    if (!m) throw new Error(`bad URL ${href}`);
    this.protocol = m[1];
    this.hostname = m[2];
    this.port = m[3] ?? "";
  }
}

const log: string[] = [];
Object.defineProperty(globalThis, "trace", { value: (...args: unknown[]) => void log.push(args.join("")) });

/** Records the calls to the fakes while `recording` is set; returns what undoes it. */
function recordFakes(): () => void {
  const undo: (() => void)[] = [];
  /** Wraps target[name]: each call records the kind and the size `size` finds in its arguments and result. */
  const wrap = (
    target: object,
    name: string,
    kind: (self: unknown) => number,
    size: (args: unknown[], result: unknown) => number,
  ) => {
    const o = target as Record<string, (...a: unknown[]) => unknown>;
    const f = o[name];
    o[name] = function (this: unknown, ...args: unknown[]) {
      const result = f.apply(this, args);
      recording?.push(kind(this), size(args, result));
      return result;
    };
    undo.push(() => (o[name] = f));
  };
  const bytes = (v: unknown): number => (v instanceof ArrayBuffer || ArrayBuffer.isView(v) ? v.byteLength : 0);
  wrap(
    TCP.prototype,
    "read",
    (self) => ((self as TCP).format === "number" ? READ_BYTE : READ_BUFFER),
    (_args, result) => bytes(result),
  );
  wrap(
    TCP.prototype,
    "write",
    () => TCP_WRITE,
    (args) => bytes(args[0]),
  );
  wrap(
    Socket.prototype,
    "read",
    () => SOCKET_READ,
    (_args, result) => bytes(result),
  );
  wrap(
    Socket.prototype,
    "write",
    () => SOCKET_WRITE,
    (args) => bytes(args[0]),
  );
  wrap(
    Timer,
    "set",
    () => TIMER_SET,
    (args) => (typeof args[1] === "number" ? args[1] : 0),
  );
  wrap(
    Timer,
    "clear",
    () => TIMER_CLEAR,
    () => 0,
  );
  wrap(
    Timer,
    "schedule",
    () => TIMER_SCHEDULE,
    (args) => (typeof args[1] === "number" ? args[1] : -1),
  );
  return () => {
    for (const u of undo) u();
  };
}

/** ArrayBuffer.fromString and String.fromArrayBuffer, made by bench/xsnap/peers.ts before the primordials froze. */
const builtinsHook = (
  globalThis as unknown as { __moddableBuiltinsHook?: (f: ((kind: number, size: number) => void) | undefined) => void }
).__moddableBuiltinsHook;

// ---- the same workload for every client ----

const PSN = "prod0123456789ab",
  DSN = "dev-001";
const ID = `${PSN}.${DSN}`,
  USER = `${PSN}|${DSN}|1`,
  PASSWORD = "zlc3d21u5k8fq0d2";
const TOPIC = `/${PSN}/${DSN}/upload`;
const CONTROL = `/${PSN}/${DSN}/control`;

function ascii(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

const PAYLOAD = ascii('{"t":21.5,"h":40}');
const PAYLOAD_BUFFER = PAYLOAD.buffer as ArrayBuffer;

/** A 64-byte QoS 0 PUBLISH to the device on one of its own topics. */
const INCOMING = (() => {
  const topic = ascii(CONTROL);
  const b = new Uint8Array(64);
  b[0] = 0x30;
  b[1] = 62;
  b[3] = topic.length;
  b.set(topic, 4);
  b.fill(0x78, 4 + topic.length);
  return b;
})();
const INCOMING_PAYLOAD = 64 - 4 - CONTROL.length;

const CONNACK = new Uint8Array([0x20, 2, 0, 0]);
function suback(id: number): Uint8Array {
  return new Uint8Array([0x90, 3, id >> 8, id & 255, 1]);
}
// One PUBACK buffer, its id set in place: the broker's bytes are not the device's allocation
const ack = new Uint8Array([0x40, 2, 0, 0]);
function puback(id: number): Uint8Array {
  ack[2] = id >> 8;
  ack[3] = id & 255;
  return ack;
}

let received = 0,
  acked = 0,
  wrongAcks = 0,
  errors = 0;
let lastTopic = "",
  lastLength = -1;
let checking = false;
function onMessage(topic: string, length: number): void {
  received++;
  if (checking) {
    lastTopic = topic;
    lastLength = length;
  }
}

interface Peer {
  /** What `publish` does: a QoS 1 round trip (publish, PUBACK) or, where the client has no QoS 1, a QoS 0 publish. */
  qos: 0 | 1;
  setup(): void;
  publish(n: number): void;
  /** A QoS 0 publish, where `publish` is QoS 1 (ours: to compare with the legacy module). */
  publish0?(n: number): void;
  incoming(n: number): void;
}

/** What the Moddable host makes once per device, before any client: its clock and the broker's connector. */
interface OursHost {
  clock: ModdableClock;
  connect: Connector;
}

function oursHost(): OursHost {
  const clock = new ModdableClock(
    () => Time.ticks,
    Timer,
    () => void errors++,
  );
  const net: ModdableNet = {
    network: { up: true, onChange: undefined },
    resolve: (_host, callback) => callback("192.0.2.1"),
    openTcp: tcpOpener(TCP as unknown as SocketClass), // host.ts's, on the fake TCP
    openTls: () => {
      throw new Error("no TLS in this benchmark");
    },
    time: { valid: true } as unknown as TimeSync,
    defer: (f) => void clock.setTimer(f, 0),
    random: () => 0.5,
    log: (_level, message) => void log.push(message),
    maxFragment: 0,
    maxFrameSize: 0,
  };
  return { clock, connect: moddableConnector(parseEndpoint("mqtt://192.0.2.1:1883"), undefined, net) };
}

/**
 * Ours as a device runs it: uiotClient (Client with the UIoT profile) on hosts/moddable's connector,
 * ModdableTransport and ModdableClock, over the fake TCP. The clock moves 50 ms per publish: UIoT allows 30
 * PUBLISH in 1.25 s, and ours paces itself to that.
 */
function oursPeer(host: OursHost): Peer {
  let client: Client | undefined;
  let socket: TCP | undefined;
  let id = 1;
  const QOS1 = { qos: 1 as const };
  const done = (error?: unknown): void => {
    if (error) errors++;
    else acked++;
  };
  return {
    qos: 1,
    setup() {
      const identity = new Identity({ productSN: PSN, deviceSN: DSN, deviceSecret: PASSWORD });
      const c = (client = uiotClient(identity, { connect: host.connect, clock: host.clock, random: () => 0.5 }));
      c.onMessage = (topic, payload) => onMessage(topic, payload.length);
      c.onError = (e) => void log.push(e.message);
      c.start();
      const s = (socket = tcpSocket as TCP);
      s.writable(WRITABLE); // connected: the client writes CONNECT (on the next turn)
      runTimers();
      s.deliver(CONNACK);
      c.subscribe(CONTROL, 1);
      s.deliver(suback(1));
    },
    publish(n) {
      const c = client as Client,
        s = socket as TCP;
      for (let i = 0; i < n; i++) {
        Time.ticks += 50;
        c.publish(TOPIC, PAYLOAD, QOS1, done);
        id = id === 65535 ? 1 : id + 1;
        s.deliver(puback(id));
      }
    },
    publish0(n) {
      const c = client as Client;
      for (let i = 0; i < n; i++) {
        Time.ticks += 50;
        c.publish(TOPIC, PAYLOAD);
      }
    },
    incoming(n) {
      const s = socket as TCP;
      for (let i = 0; i < n; i++) s.deliver(INCOMING);
    },
  };
}

/**
 * The packet id of the last QoS 1 PUBLISH in the last write (one write may hold several packets), or, with
 * `subscribe`, [id, number of filters] of the SUBSCRIBE in it. Reads the bytes in place: allocates nothing.
 */
function lastId(): number {
  const w = lastWritten;
  if (!w || !ArrayBuffer.isView(w)) return 0;
  const data = w as Uint8Array;
  let id = 0;
  for (let p = 0; p < data.length; ) {
    const head = data[p];
    let len = 0,
      mul = 1,
      q = p + 1;
    for (;;) {
      const b = data[q++];
      len += (b & 127) * mul;
      mul *= 128;
      if (b < 128) break;
    }
    if ((head & 0xf6) === 0x32) {
      const t = q + 2 + ((data[q] << 8) | data[q + 1]);
      id = (data[t] << 8) | data[t + 1];
    } else if (head === 0x82) {
      // SUBSCRIBE: the id and the count of filters, as id * 256 + count
      let count = 0;
      for (let f = q + 2; f < q + len; f += 2 + ((data[f] << 8) | data[f + 1]) + 1) count++;
      id = ((data[q] << 8) | data[q + 1]) * 256 + count;
    }
    p = q + len;
  }
  return id;
}

/** A clock for the bare sink: Time.ticks, and a timer that is kept but never fires (as the host's delayed ones). */
class BareClock implements Clock {
  timer: (() => void) | undefined = undefined;
  now(): number {
    return Time.ticks;
  }
  setTimer(callback: () => void, _ms: number): unknown {
    this.timer = callback;
    return 1;
  }
  clearTimer(_timer: unknown): void {
    this.timer = undefined;
  }
}

/** A transport that keeps nothing: the bare sink bench/xsnap/client.ts measures the client on, for the host layer's share. */
class Sink implements Transport {
  inbox: Uint8Array | undefined = undefined;
  constructor(readonly h: TransportHandlers) {}
  read(): Uint8Array | undefined {
    const b = this.inbox;
    this.inbox = undefined;
    return b;
  }
  write(data: Uint8Array): boolean {
    written += data.byteLength;
    lastWritten = data;
    if (capture) captured(data);
    return true;
  }
  close(): void {}
  deliver(bytes: Uint8Array): void {
    this.inbox = bytes;
    this.h.onReadable(bytes.length);
  }
}

/**
 * The firmware's stack as bench/xsnap/client.ts measures it, a connected client (UIoT profile) with the thing layer,
 * subscribed, over either the Moddable host (`host`: the connector, ModdableTransport, ModdableClock, on the fake
 * TCP and Timer) or a bare sink and a clock that does nothing (`bare`). The difference between the two is what the
 * host layer costs (with the fakes' share, which "replay" measures, taken out).
 */
function thingPeer(host: OursHost | undefined): Peer {
  let client: Client | undefined;
  let socket: TCP | undefined;
  let sink: Sink | undefined;
  const QOS1 = { qos: 1 as const };
  const done = (error?: unknown): void => {
    if (error) errors++;
    else acked++;
  };
  const deliver = (bytes: Uint8Array): void => {
    if (socket) socket.deliver(bytes);
    else (sink as Sink).deliver(bytes);
  };
  const connect: Connector = host ? host.connect : (h) => (sink = new Sink(h));
  const clock: Clock = host ? host.clock : new BareClock();
  return {
    qos: 1,
    setup() {
      const identity = new Identity({ productSN: PSN, deviceSN: DSN, deviceSecret: PASSWORD });
      const c = (client = uiotClient(identity, { connect, clock, random: () => 0.5 }));
      // the application's handlers, as bench/xsnap/client.ts has them
      const t = new Thing(c, identity, { clock, onError: (e) => void log.push(e.message), log: () => {} });
      c.onMessage = (topic, payload) => onMessage(topic, payload.length);
      c.onError = (e) => void log.push(e.message);
      t.start();
      c.start();
      if (host) {
        socket = tcpSocket as TCP;
        socket.writable(WRITABLE); // connected: the client writes CONNECT
        runTimers();
      } else (sink as Sink).h.onConnect();
      deliver(CONNACK);
      const sub = lastId(); // the thing layer's SUBSCRIBE
      const granted = new Uint8Array(4 + (sub & 255));
      granted.set([0x90, 2 + (sub & 255), sub >> 16, (sub >> 8) & 255]);
      granted.fill(1, 4);
      deliver(granted);
    },
    publish(n) {
      const c = client as Client;
      for (let i = 0; i < n; i++) {
        Time.ticks += 50;
        c.publish(TOPIC, PAYLOAD, QOS1, done);
        deliver(puback(lastId()));
      }
    },
    incoming(n) {
      for (let i = 0; i < n; i++) deliver(INCOMING);
    },
  };
}

// ---- the SDK's clients, as far as the benchmark uses them ----

interface LegacyClient {
  onReady?: () => void;
  onMessage?: (topic: string, payload: ArrayBuffer) => void;
  onClose?: () => void;
  publish(topic: string, data: ArrayBuffer, flags?: object): void;
  subscribe(topic: string): void;
}
interface LegacyClientClass {
  new (dictionary: object): LegacyClient;
}

interface ControlMessage {
  operation: number;
  id?: number;
}
interface MqttClient {
  read(count: number): ArrayBuffer | undefined;
  write(data: ArrayBufferView | ArrayBuffer | null, options: object): number;
}
interface MqttClientClass {
  new (options: object): MqttClient;
  readonly PUBACK: number;
  readonly SUBSCRIBE: number;
}

interface JsClient {
  on(event: string, listener: (...args: never[]) => void): void;
  publish(topic: string, message: Uint8Array, options: object, callback: (error?: unknown) => void): void;
  subscribe(topic: string, options: object, callback: (error?: unknown) => void): void;
  getLastMessageId(): number;
}
interface JsClientClass {
  new (url: string, options: object): JsClient;
}

export interface PeerClasses {
  /** modules/network/mqtt/mqtt.js */
  LegacyClient: LegacyClientClass;
  /** examples/io/tcp/mqttclient/mqttclient.js: embedded:network/mqtt/client */
  MQTTClient: MqttClientClass;
  /** examples/io/tcp/mqtt/mqtt.js: the MQTT.js-style client on top of MQTTClient */
  JsClient: JsClientClass;
}

/**
 * modules/network/mqtt/mqtt.js: QoS 0 only (it sets the QoS bits and a packet id if asked, but never handles a
 * PUBACK, nor answers an incoming QoS 1 PUBLISH), so its `publish` is a QoS 0 publish.
 */
function legacyPeer(LegacyClient: LegacyClientClass): Peer {
  let client: LegacyClient | undefined;
  let socket: Socket | undefined;
  return {
    qos: 0,
    setup() {
      client = new LegacyClient({
        host: "mqtt.example",
        port: 1883,
        id: ID,
        user: USER,
        password: PASSWORD,
        timeout: 300_000,
      });
      client.onReady = () => undefined;
      client.onMessage = (topic, payload) => onMessage(topic, payload.byteLength);
      client.onClose = () => void errors++;
      socket = legacySocket as Socket;
      socket.callback(1); // connected: the client writes CONNECT
      socket.deliver(CONNACK);
      client.subscribe(CONTROL);
      socket.deliver(suback(2));
    },
    publish(n) {
      const c = client as LegacyClient;
      for (let i = 0; i < n; i++) c.publish(TOPIC, PAYLOAD_BUFFER);
    },
    incoming(n) {
      const s = socket as Socket;
      for (let i = 0; i < n; i++) s.deliver(INCOMING);
    },
  };
}

/**
 * examples/io/tcp/mqttclient/mqttclient.js (embedded:network/mqtt/client): QoS 1 PUBLISH with a packet id the
 * application chooses, the PUBACK handed to onControl; nothing kept for a retransmit. The application here keeps
 * the one id it waits for (the least bookkeeping a QoS 1 sender needs) and reads each message's payload with
 * read(count), as the SDK's example does.
 */
function ecma419Peer(MQTTClient: MqttClientClass): Peer {
  let client: MqttClient | undefined;
  let socket: TCP | undefined;
  const pub = { topic: TOPIC, QoS: 1, id: 0 };
  const PUBACK = MQTTClient.PUBACK;
  return {
    qos: 1,
    setup() {
      client = new MQTTClient({
        host: "mqtt.example",
        port: 1883,
        id: ID,
        user: USER,
        password: PASSWORD,
        keepalive: 300_000,
        dns: { io: Resolver },
        socket: { io: TCP },
        onControl(msg: ControlMessage) {
          if (msg.operation === PUBACK) {
            if (msg.id === pub.id) acked++;
            else wrongAcks++;
          }
        },
        onReadable(this: MqttClient, count: number, options: { topic?: string }) {
          const payload = this.read(count) as ArrayBuffer;
          onMessage(options.topic ?? "", payload.byteLength);
        },
        onWritable() {},
        onError() {
          errors++;
        },
      });
      socket = tcpSocket as TCP;
      socket.writable(WRITABLE); // connected: the client writes CONNECT
      runTimers();
      socket.deliver(CONNACK);
      client.write(null, { operation: MQTTClient.SUBSCRIBE, items: [{ topic: CONTROL, QoS: 1 }], id: 1 });
      socket.deliver(suback(1));
    },
    publish(n) {
      const c = client as MqttClient,
        s = socket as TCP;
      for (let i = 0; i < n; i++) {
        pub.id = (pub.id % 65535) + 1;
        c.write(PAYLOAD, pub);
        s.deliver(puback(pub.id));
      }
    },
    incoming(n) {
      const s = socket as TCP;
      for (let i = 0; i < n; i++) s.deliver(INCOMING);
    },
  };
}

/**
 * examples/io/tcp/mqtt/mqtt.js: an MQTT.js-style client on top of MQTTClient that keeps each QoS 1 message until
 * its PUBACK (to publish it again after a reconnect) and calls the publish callback on PUBACK.
 */
function mqttjsPeer(JsClient: JsClientClass): Peer {
  let client: JsClient | undefined;
  let socket: TCP | undefined;
  const QOS1 = { qos: 1 };
  const done = (error?: unknown): void => {
    if (error) errors++;
    else acked++;
  };
  return {
    qos: 1,
    setup() {
      client = new JsClient("mqtt://mqtt.example", {
        clientId: ID,
        username: USER,
        password: PASSWORD,
        keepalive: 300,
      });
      client.on("message", (topic: string, message: ArrayBuffer) => onMessage(topic, message.byteLength));
      client.on("error", () => void errors++);
      socket = tcpSocket as TCP;
      socket.writable(WRITABLE);
      runTimers();
      socket.deliver(CONNACK);
      client.subscribe(CONTROL, QOS1, (e) => void (e && errors++));
      socket.deliver(suback(client.getLastMessageId()));
    },
    publish(n) {
      const c = client as JsClient,
        s = socket as TCP;
      for (let i = 0; i < n; i++) {
        c.publish(TOPIC, PAYLOAD, QOS1, done);
        s.deliver(puback(c.getLastMessageId()));
      }
    },
    incoming(n) {
      const s = socket as TCP;
      for (let i = 0; i < n; i++) s.deliver(INCOMING);
    },
  };
}

// ---- replaying the fakes' calls ----

const recorded: Record<string, number[]> = {};
const CAL = new Uint8Array(256);
const CAL_BUFFER = CAL.buffer as ArrayBuffer;
const noop = (): void => undefined;

/**
 * Makes the calls recorded for `phase` again, `n` times: to the fakes, or (`native`) to a native function that
 * allocates what the device's native module allocates (an ArrayBuffer for a read or fromString, an object for a
 * timer, nothing otherwise). Everything else in the loop is the same either way, so the difference between the two
 * is what the fakes cost beyond native code.
 */
function replay(phase: string, n: number, native: boolean): void {
  const calls = recorded[phase] ?? [];
  const t = Object.create(TCP.prototype) as TCP;
  t.format = "buffer";
  const s = Object.create(Socket.prototype) as Socket;
  const strings: string[] = [],
    buffers: ArrayBuffer[] = [];
  for (let i = 0; i < calls.length; i += 2) {
    if (calls[i] !== FROM_STRING && calls[i] !== FROM_BUFFER) continue;
    strings[calls[i + 1]] = "x".repeat(calls[i + 1]);
    buffers[calls[i + 1]] = new ArrayBuffer(calls[i + 1]);
  }
  const timer = Timer.set(noop, 1);
  const dead = Timer.set(noop, 1);
  Timer.clear(dead);
  const fromString = (ArrayBuffer as unknown as { fromString(s: string): ArrayBuffer }).fromString;
  const fromArrayBuffer = (String as unknown as { fromArrayBuffer(b: ArrayBuffer): string }).fromArrayBuffer;
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < calls.length; i += 2) {
      const size = calls[i + 1];
      switch (calls[i]) {
        case READ_BYTE:
          t.inbox = CAL;
          t.pos = 0;
          t.format = "number";
          if (native) Math.abs(size);
          else t.read();
          break;
        case READ_BUFFER: // size 0: the read found nothing
          t.inbox = CAL;
          t.pos = size ? 0 : CAL.length;
          t.format = "buffer";
          if (native) size ? new ArrayBuffer(size) : Math.abs(size);
          else t.read(size || undefined);
          break;
        case TCP_WRITE:
          if (native) Math.abs(size);
          else t.write(CAL);
          break;
        case SOCKET_READ:
          s.inbox = size ? CAL : undefined;
          if (native) size ? new ArrayBuffer(size) : Math.abs(size);
          else s.read(ArrayBuffer);
          break;
        case SOCKET_WRITE:
          if (native) Math.abs(size);
          else s.write(CAL_BUFFER);
          break;
        case TIMER_SET:
          if (native) Object.create(null);
          else Timer.set(noop, size);
          break;
        case TIMER_CLEAR:
          if (native) Math.abs(size);
          else Timer.clear(timer);
          break;
        case TIMER_SCHEDULE: // size -1: unscheduled
          if (native) Math.abs(size);
          else if (size < 0) Timer.schedule(timer);
          else Timer.schedule(timer, size, 0x7fffffff);
          due.length = 0;
          break;
        case RUN_LOOP: // the run loop's turn: native on a device; size: the timers on the list
          if (native) Math.abs(size);
          else {
            for (let k = 0; k < size; k++) due.push(dead);
            runTimers();
          }
          break;
        case FROM_STRING:
          if (native) new ArrayBuffer(size);
          else fromString(strings[size]);
          break;
        case FROM_BUFFER:
          if (native) Math.abs(size);
          else fromArrayBuffer(buffers[size]);
          break;
      }
    }
  }
}

function reply(value: unknown): ArrayBuffer {
  return ascii(JSON.stringify(value)).buffer as ArrayBuffer;
}

function text(message: ArrayBuffer): string {
  const b = new Uint8Array(message);
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

function hex(chunks: Uint8Array[]): string {
  let s = "";
  for (const c of chunks) for (let i = 0; i < c.length; i++) s += (c[i] < 16 ? "0" : "") + c[i].toString(16);
  return s;
}

/** Counts of the fakes' calls by name. */
function summary(calls: number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < calls.length; i += 2) out[FAKE_CALLS[calls[i]]] = (out[FAKE_CALLS[calls[i]]] ?? 0) + 1;
  return out;
}

/**
 * Called by the glue module with the SDK's classes, or with none (bench/xsnap/peers.ts without an SDK, and
 * test/xsnap/host-layer.test.ts): then only ours can be set up ("ours", "host", "bare").
 */
export function install(classes?: PeerClasses): void {
  // examples/io/tcp/mqtt/mqtt.js finds MQTTClient and its configuration here, as on a device (its config.js)
  if (classes)
    Object.defineProperty(globalThis, "device", {
      value: Object.freeze({
        network: { mqtt: { io: classes.MQTTClient, dns: { io: Resolver }, socket: { io: TCP } } },
      }),
    });
  // made now, before any measurement: a device has them before it makes a client, as it has the SDK's modules
  const host = oursHost();
  const makers: Record<string, () => Peer> = {
    ours: () => oursPeer(host),
    host: () => thingPeer(host),
    bare: () => thingPeer(undefined),
  };
  if (classes) {
    makers.legacy = () => legacyPeer(classes.LegacyClient);
    makers.ecma419 = () => ecma419Peer(classes.MQTTClient);
    makers.mqttjs = () => mqttjsPeer(classes.JsClient);
  }
  let peer: Peer | undefined;
  (globalThis as unknown as { handleCommand: (m: ArrayBuffer) => unknown }).handleCommand = (message: ArrayBuffer) => {
    const cmd = JSON.parse(text(message)) as {
      op: string;
      n?: number;
      peer?: string;
      phase?: string;
      native?: boolean;
    };
    const n = cmd.n ?? 0;
    let check: object | undefined;
    switch (cmd.op) {
      case "make": // the benchmark's own closures for a client, made before the heap at rest is counted
      case "setup": {
        if (cmd.peer !== undefined || !peer) {
          const make = makers[cmd.peer ?? ""];
          if (!make) throw new Error(`unknown client ${String(cmd.peer)}`);
          peer = make();
        }
        if (cmd.op === "setup") peer.setup();
        break;
      }
      case "drop":
        peer = undefined;
        legacySocket = undefined;
        tcpSocket = undefined;
        lastWritten = undefined;
        due = [];
        break;
      case "gc":
        gc();
        break;
      case "noop":
        break;
      case "publish":
        (peer as Peer).publish(n);
        break;
      case "publish0":
        ((peer as Peer).publish0 as (n: number) => void)(n);
        break;
      case "incoming":
        (peer as Peer).incoming(n);
        break;
      case "replay":
        replay(cmd.phase ?? "", n, !!cmd.native);
        break;
      case "check": {
        // one of each operation, with every byte written kept and every call to a fake recorded
        const p = peer as Peer;
        const undo = recordFakes();
        builtinsHook?.((kind, size) => void recording?.push(kind === 0 ? FROM_STRING : FROM_BUFFER, size));
        const phase = (name: string, f: () => void): string => {
          capture = [];
          recording = recorded[name] = [];
          f();
          recording = undefined;
          const bytes = hex(capture);
          capture = undefined;
          return bytes;
        };
        const a0 = acked;
        const publish = phase("publish", () => p.publish(1));
        const ackedOne = acked - a0;
        const publish0 = p.publish0 ? phase("publish0", () => (p.publish0 as (n: number) => void)(1)) : undefined;
        checking = true;
        phase("incoming", () => p.incoming(1));
        checking = false;
        builtinsHook?.(undefined);
        undo();
        check = {
          qos: p.qos,
          publish,
          publish0,
          acked: ackedOne,
          topic: lastTopic,
          length: lastLength,
          expectedLength: INCOMING_PAYLOAD,
          calls: {
            publish: summary(recorded.publish),
            publish0: recorded.publish0 && summary(recorded.publish0),
            incoming: summary(recorded.incoming),
          },
        };
        break;
      }
      default:
        throw new Error(`unknown op ${cmd.op}`);
    }
    return reply({ received, acked, wrongAcks, errors, written, log, check });
  };
}
