// The XS side of bench/xsnap/client.ts (tools/xsnap/meter.ts): a connected client with the thing layer on a sink transport (it keeps
// nothing it is given: writes are dropped, reads hand over one prepared chunk) and a manual clock, so what the meters
// see is the firmware's own work. The application's callbacks are module functions, as a device's preloaded ones
// are (in flash, not in the heap): the heap figures are the client's and the thing layer's.
// globalThis.handleCommand takes JSON: {"op":"setup"} | {"op":"warm"} | {"op":"gc"} | {"op":"<name>","n":N}.
import type { Client } from "../../src/mqtt/client";
import { encode, type PublishPacket } from "../../src/mqtt/codec";
import { decodeUtf8, utf8Bytes } from "../../src/mqtt/utf8";
import type { Clock, Connector, Transport, TransportHandlers } from "../../src/host";
import { Identity } from "../../src/uiot/identity";
import { uiotClient } from "../../src/uiot/profile";
import { Thing } from "../../src/uiot/thing";

declare const gc: () => void;

class ManualClock implements Clock {
  t = 1_700_000_000_000;
  timer: (() => void) | undefined;
  now(): number {
    return this.t;
  }
  setTimer(callback: () => void, _ms: number): unknown {
    this.timer = callback;
    return 1;
  }
  clearTimer(_timer: unknown): void {
    this.timer = undefined;
  }
}

class Sink implements Transport {
  inbox: Uint8Array | undefined;
  written = 0;
  constructor(readonly h: TransportHandlers) {}
  read(): Uint8Array | undefined {
    const b = this.inbox;
    this.inbox = undefined;
    return b;
  }
  /** The packet id of the last QoS 1 PUBLISH written (read from its bytes, allocating nothing). */
  lastId = 0;
  /** The number of filters of the last SUBSCRIBE written. */
  filters = 0;
  write(data: Uint8Array): boolean {
    this.written += data.length;
    // one write may hold several packets
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
        this.lastId = (data[t] << 8) | data[t + 1];
      } else if (head === 0x82) {
        // a SUBSCRIBE: its filters (length, name, QoS) after the packet id, for a SUBACK with as many codes
        let n = 0;
        for (let f = q + 2; f < q + len; f += 3 + ((data[f] << 8) | data[f + 1])) n++;
        this.filters = n;
      }
      p = q + len;
    }
    return true;
  }
  close(): void {}
  deliver(bytes: Uint8Array): void {
    this.inbox = bytes;
    this.h.onReadable(bytes.length);
  }
}

const PSN = "prod0123456789ab",
  DSN = "dev-001";
const SYS = `/$system/${PSN}/${DSN}/`;

let clock: ManualClock | undefined;
let sink: Sink | undefined;
let client: Client | undefined;
let thing: Thing | undefined;
let received = 0;

// The application's side
const connect: Connector = (h) => (sink = new Sink(h));
const random = (): number => 0.5;
const onMessage = (): void => void received++;
function ignore(): void {}

/** Sets up a client with the thing layer, connected and subscribed, with everything settled. */
function setup(): void {
  clock = new ManualClock();
  const identity = new Identity({ productSN: PSN, deviceSN: DSN, deviceSecret: "zlc3d21u5k8fq0d2" });
  client = uiotClient(identity, { connect, clock, random });
  thing = new Thing(client, identity, { clock, onError: ignore, log: ignore });
  client.onMessage = onMessage;
  thing.start();
  client.start();
  const s = sink as Sink;
  s.h.onConnect();
  s.deliver(encode({ type: 2, sessionPresent: false, returnCode: 0 }));
  // the SUBSCRIBE of the thing layer went out with packet id 1: one return code per filter
  const granted: number[] = [];
  for (let i = 0; i < s.filters; i++) granted.push(1);
  s.deliver(encode({ type: 9, id: 1, granted }));
}

// One PUBACK buffer, its id set in place: the broker's bytes are not the device's allocation
const ack = new Uint8Array([0x40, 2, 0, 0]);
function puback(id: number): Uint8Array {
  ack[2] = id >> 8;
  ack[3] = id & 255;
  return ack;
}

const payload = utf8Bytes('{"t":21.5,"h":40}');
const QOS1 = { qos: 1 as const };
const TOPIC = `/${PSN}/${DSN}/upload`;

/** QoS 1 publish round trip: encode and send the PUBLISH, take the PUBACK, settle the bookkeeping. */
function publishRoundTrip(n: number): void {
  const c = client as Client,
    s = sink as Sink;
  for (let i = 0; i < n; i++) {
    // UIoT allows 30 PUBLISH a second (the profile's rate limit): let 50 ms pass for each (at most 30 in its 1250 ms window)
    (clock as ManualClock).t += 50;
    c.publish(TOPIC, payload, QOS1);
    s.deliver(puback(s.lastId));
  }
}

// A 64-byte QoS 0 PUBLISH to the device on one of its own topics.
const incoming = (() => {
  const topic = `/${PSN}/${DSN}/control`;
  const body = 64 - 2 - (2 + topic.length);
  return encode({ type: 3, topic, payload: "x".repeat(body), qos: 0, retain: false, dup: false } as PublishPacket);
})();

function incomingPublish(n: number): void {
  const s = sink as Sink;
  for (let i = 0; i < n; i++) s.deliver(incoming);
}

let version = 0;
const replies: Uint8Array[] = [];
/** One shadow update: the report, its PUBLISH and PUBACK, the platform's reply and its PUBACK back. */
function shadowUpdate(n: number): void {
  const t = thing as Thing,
    s = sink as Sink;
  for (let i = 0; i < n; i++) {
    (clock as ManualClock).t += 50;
    void t.shadow.report({ temperature: 26, humidity: 57 });
    s.deliver(puback(s.lastId));
    version++;
    s.deliver(replies[i]);
  }
}
function prepareShadow(n: number): void {
  replies.length = 0;
  for (let i = 0; i < n; i++) {
    const json = `{"Method":"reply","Payload":{"RetCode":0},"Version":${version + i + 1},"Timestamp":1562909435}`;
    replies.push(
      encode({
        type: 3,
        topic: `${SYS}shadow/downstream`,
        payload: json,
        qos: 0,
        retain: false,
        dup: false,
      } as PublishPacket),
    );
  }
}

let posts = 0;
/**
 * Some of each kind of traffic, so that what is made on first use exists, as on a device that has been running:
 * QoS 1 publishes, incoming QoS 0 and QoS 1 messages, a shadow update and a property post with their replies.
 */
function warm(): void {
  const s = sink as Sink,
    c = clock as ManualClock;
  publishRoundTrip(3);
  s.deliver(incoming);
  s.deliver(
    encode({ type: 3, topic: `/${PSN}/${DSN}/control`, payload: "on", qos: 1, id: 7, retain: false, dup: false }),
  );
  prepareShadow(1);
  shadowUpdate(1);
  c.t += 50;
  void (thing as Thing).post({ temperature: 26 });
  s.deliver(puback(s.lastId));
  const json = `{"RequestID":"${++posts}","RetCode":0}`;
  s.deliver(
    encode({
      type: 3,
      topic: `${SYS}tmodel/property/post_reply`,
      payload: json,
      qos: 1,
      id: 8,
      retain: false,
      dup: false,
    }),
  );
}

/** The packet a QoS 1 round trip publishes, made and dropped: the heap slots of its bytes alone. */
const PACKET_SIZE = encode({ type: 3, topic: TOPIC, payload, qos: 1, id: 1, retain: false, dup: false }).length;
let packets = 0;
function packetOnly(n: number): void {
  for (let i = 0; i < n; i++) packets += new Uint8Array(PACKET_SIZE).length;
}

function reply(value: unknown): ArrayBuffer {
  const b = utf8Bytes(JSON.stringify(value));
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

(globalThis as unknown as { handleCommand: (m: ArrayBuffer) => unknown }).handleCommand = (message: ArrayBuffer) => {
  const bytes = new Uint8Array(message);
  const cmd = JSON.parse(decodeUtf8(bytes, 0, bytes.length)) as { op: string; n?: number };
  const n = cmd.n ?? 0;
  switch (cmd.op) {
    case "setup":
      setup();
      break;
    case "warm":
      warm();
      break;
    case "packet":
      packetOnly(n);
      break;
    case "drop":
      clock = undefined;
      sink = undefined;
      client = undefined;
      thing = undefined;
      break;
    case "gc":
      gc();
      break;
    case "noop":
      break;
    case "prepare":
      prepareShadow(n);
      break;
    case "publish":
      publishRoundTrip(n);
      break;
    case "incoming":
      incomingPublish(n);
      break;
    case "shadow":
      shadowUpdate(n);
      break;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
  return reply({
    received,
    written: sink?.written ?? 0,
    state: client?.state,
    shadowVersion: thing?.shadow.version,
    packets,
    busy: thing?.busy,
  });
};
