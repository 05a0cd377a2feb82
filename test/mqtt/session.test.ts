// Deterministic tests of the MQTT session and client on a fake clock and a scripted transport: the test
// plays the broker, byte for byte.
import { describe, expect, it } from "vitest";
import { Client, type ClientOptions } from "../../src/mqtt/client";
import { MqttError, PUBLISH, encode, type Packet, type PublishPacket } from "../../src/mqtt/codec";
import { mqtt5 } from "../../src/mqtt/mqtt5";
import type { OutboxStore } from "../../src/host";
import { FakeClock } from "../helpers/fake-clock";
import { ScriptedNetwork, type ScriptedConnection } from "../helpers/scripted-transport";

type Event = [string, ...unknown[]];

function setup(opts: Partial<ClientOptions> = {}) {
  const clock = new FakeClock();
  const net = new ScriptedNetwork();
  const events: Event[] = [];
  const messages: { topic: string; payload: string; qos: number; dup: boolean }[] = [];
  const client = new Client({
    clientId: "dev1",
    connect: net.connect,
    clock,
    random: () => 0.5,
    onConnect: (i) => events.push(["connect", i.sessionPresent]),
    onDisconnect: (e, d) => events.push(["down", e.code, d]),
    onError: (e) => events.push(["error", e.code, e.message]),
    onMessage: (topic, payload, m) => {
      messages.push({ topic, payload: new TextDecoder().decode(payload), qos: m.qos, dup: m.dup });
    },
    ...opts,
  });
  return { clock, net, client, events, messages };
}

type S = ReturnType<typeof setup>;

function up(s: S, sessionPresent = false): ScriptedConnection {
  if (s.client.state === "idle") s.client.start();
  const c = s.net.last;
  c.open();
  c.connack(sessionPresent);
  return c;
}

const publishes = (c: ScriptedConnection) => c.of(3) as PublishPacket[];
const text = (p: PublishPacket) => new TextDecoder().decode(p.payload as Uint8Array);

describe("connect", () => {
  it("sends CONNECT with the configured fields, level 4 by default", () => {
    const s = setup({ username: "u", password: "secret", keepalive: 300, clean: false });
    s.client.start();
    s.net.last.open();
    const [c] = s.net.last.of(1);
    expect(c).toMatchObject({ level: 4, clientId: "dev1", username: "u", keepalive: 300, clean: false });
    expect(new TextDecoder().decode(c.password as Uint8Array)).toBe("secret");
    expect(Array.from(s.net.last.raw[0].subarray(2, 8))).toEqual([0, 4, 0x4d, 0x51, 0x54, 0x54]);
  });

  it("speaks MQTT 3.1 (MQIsdp, level 3) when asked", () => {
    const s = setup({ level: 3 });
    s.client.start();
    s.net.last.open();
    expect(Array.from(s.net.last.raw[0].subarray(2, 11))).toEqual([0, 6, 0x4d, 0x51, 0x49, 0x73, 0x64, 0x70, 3]);
    s.net.last.connack();
    expect(s.client.state).toBe("connected");
  });

  it("turns a refused CONNACK into a typed error a person can act on, then retries with backoff", () => {
    const s = setup();
    s.client.start();
    s.net.last.open();
    s.net.last.connack(false, 4);
    expect(s.events[0][1]).toBe("CONNECT_REFUSED");
    const errs: MqttError[] = [];
    s.client.onDisconnect = (e) => errs.push(e);
    s.clock.advance(1000);
    s.net.last.open();
    s.net.last.connack(false, 5);
    expect(errs[0].message).toMatch(/not authorized/);
    expect(errs[0].returnCode).toBe(5);
    expect(s.net.connections).toHaveLength(2);
    expect(s.net.connections[0].closed).toBe(true);
  });

  it("explains bad credentials in plain words", () => {
    const s = setup();
    const errs: MqttError[] = [];
    s.client.onDisconnect = (e) => errs.push(e);
    s.client.start();
    s.net.last.open();
    s.net.last.connack(false, 4);
    expect(errs[0].message).toMatch(/bad user name or password: check the credentials/);
    expect(errs[0].message).toMatch(/DeviceSecret and the authmode/);
  });

  it("does not call the credentials valid on CONNACK 5: Mosquitto answers a wrong password with it", () => {
    const s = setup();
    const errs: MqttError[] = [];
    s.client.onDisconnect = (e) => errs.push(e);
    s.client.start();
    s.net.last.open();
    s.net.last.connack(false, 5);
    expect(errs[0].message).toBe(
      "connection refused (code 5): not authorized: the broker refused this client: check the password (some brokers, Mosquitto among them, answer a wrong one with this code) and that the client may connect (device disabled, or not allowed)",
    );
    expect(errs[0].message).not.toMatch(/credentials are valid/);
  });

  it("times out a connect that never completes (TCP/TLS) and one that gets no CONNACK", () => {
    const s = setup({ connectTimeout: 10000 });
    s.client.start();
    s.clock.advance(9999);
    expect(s.events).toEqual([]);
    s.clock.advance(1);
    expect(s.events[0]).toEqual(["down", "CONNECT_TIMEOUT", 500]);
    expect(s.net.connections[0].closed).toBe(true);
    s.clock.advance(500);
    s.net.last.open();
    s.clock.advance(10000);
    expect(s.events[1][1]).toBe("CONNECT_TIMEOUT");
  });

  it("validates the keepalive against the profile before connecting, and refuses a will the profile forbids", () => {
    const profile = { name: "UIoT Core", keepalive: [30, 1200] as [number, number], will: false, retain: false };
    expect(() => setup({ keepalive: 10, profile })).toThrow(/keepalive from 30 to 1200 s, not 10 s/);
    expect(() => setup({ keepalive: 300, profile, will: { topic: "a", payload: "x", qos: 0, retain: false } })).toThrow(
      /does not allow a will/,
    );
    const s = setup({ keepalive: 300, profile });
    expect(() => s.client.publish("a/b", "x", { retain: true })).toThrow(/does not allow retained/);
  });
});

describe("keepalive", () => {
  it("sends PINGREQ after keepalive without traffic, and carries on when PINGRESP comes", () => {
    const s = setup({ keepalive: 60 });
    const c = up(s);
    s.clock.advance(59999);
    expect(c.of(12)).toHaveLength(0);
    s.clock.advance(1);
    expect(c.of(12)).toHaveLength(1);
    s.clock.advance(1000);
    c.send({ type: 13 });
    s.clock.advance(60000);
    expect(c.of(12)).toHaveLength(2);
    expect(s.client.state).toBe("connected");
  });

  it("does not re-arm the host timer for each packet: traffic only moves the keepalive deadline later", () => {
    const s = setup({ keepalive: 60 });
    const c = up(s);
    let sets = 0,
      clears = 0;
    const setTimer = s.clock.setTimer.bind(s.clock),
      clearTimer = s.clock.clearTimer.bind(s.clock);
    s.clock.setTimer = (cb, ms) => (sets++, setTimer(cb, ms));
    s.clock.clearTimer = (t) => (clears++, clearTimer(t));
    for (let i = 0; i < 100; i++) {
      s.clock.advance(100);
      s.client.publish("d/telemetry", "21.5", { qos: 1 });
      c.send({ type: 4, id: (publishes(c).at(-1) as PublishPacket).id as number });
    }
    // at most the timer armed while connecting fires early, finds nothing due and is armed again for the keepalive
    expect(sets + clears).toBeLessThanOrEqual(1);
    // 60 s after the last packet, PINGREQ goes out on time all the same
    s.clock.advance(60000 - 1);
    expect(c.of(12)).toHaveLength(0);
    s.clock.advance(1);
    expect(c.of(12)).toHaveLength(1);
  });

  it("does not even compute the deadline again for a round trip: only what can bring it earlier makes it", () => {
    const s = setup({ keepalive: 60, profile: { name: "limited", publishRate: 5, publishWindow: 1000 } });
    const c = up(s);
    const session = s.client.session;
    let computed = 0;
    const deadline = session.deadline.bind(session);
    session.deadline = () => (computed++, deadline());
    for (let i = 0; i < 5; i++) {
      s.client.publish("d/telemetry", "21.5", { qos: 1 });
      c.send({ type: 4, id: (publishes(c).at(-1) as PublishPacket).id as number });
    }
    expect(computed).toBe(0);
    // the sixth waits for the rate limit: that brings the deadline earlier than the keepalive's, and it is computed
    s.client.publish("d/telemetry", "21.5", { qos: 1 });
    expect(publishes(c)).toHaveLength(5);
    expect(computed).toBe(1);
    s.clock.advance(1000);
    expect(publishes(c)).toHaveLength(6);
  });

  // A packet that arrives over a long time holds the ping and idle checks back; its end, and a PINGRESP, bring the
  // deadline earlier again, so the client's timer must be set again for it.
  const big = encode({ type: 3, topic: "in", payload: "y".repeat(50 * 1024), qos: 0, retain: false, dup: false });

  it("a PINGREQ sent while a large packet arrives times out 5 s after that packet ends, not after the packet's allowance", () => {
    const s = setup({ keepalive: 10 });
    const c = up(s);
    s.clock.advance(9000);
    c.bytes(big.subarray(0, 1024));
    s.clock.advance(1000); // 10 s: PINGREQ, while the packet is still arriving
    expect(c.of(12)).toHaveLength(1);
    s.clock.advance(1000);
    c.bytes(big.subarray(1024)); // 11 s: the packet ends; the PINGRESP would come behind it
    s.clock.advance(4999);
    expect(s.events.filter((e) => e[0] === "down")).toEqual([]);
    s.clock.advance(1);
    expect(s.events.filter((e) => e[0] === "down")[0]?.[1]).toBe("PING_TIMEOUT");
  });

  it("the same with a packet skipped for its size", () => {
    const s = setup({ keepalive: 10, maxPacketSize: 32 * 1024 });
    const c = up(s);
    s.clock.advance(9000);
    c.bytes(big.subarray(0, 1024));
    s.clock.advance(1000);
    expect(c.of(12)).toHaveLength(1);
    s.clock.advance(1000);
    c.bytes(big.subarray(1024));
    s.clock.advance(4999);
    expect(s.events.filter((e) => e[0] === "down")).toEqual([]);
    s.clock.advance(1);
    expect(s.events.filter((e) => e[0] === "down")[0]?.[1]).toBe("PING_TIMEOUT");
  });

  it("after such a packet and its PINGRESP, the next PINGREQ goes one keepalive after the last", () => {
    const s = setup({ keepalive: 10 });
    const c = up(s);
    s.clock.advance(9000);
    c.bytes(big.subarray(0, 1024));
    s.clock.advance(2000);
    c.bytes(big.subarray(1024));
    s.clock.advance(50);
    c.send({ type: 13 });
    s.clock.advance(20000 - 11050 - 1);
    expect(c.of(12)).toHaveLength(1);
    s.clock.advance(1);
    expect(c.of(12)).toHaveLength(2);
  });

  it("with a keepalive shorter than the ping timeout, a PINGRESP brings the next PINGREQ back to its time", () => {
    const s = setup({ keepalive: 1 });
    const c = up(s);
    s.clock.advance(900);
    c.send({ type: 3, topic: "x", payload: "a", qos: 0, retain: false, dup: false });
    s.clock.advance(100); // 1 s: PINGREQ
    expect(c.of(12)).toHaveLength(1);
    s.clock.advance(50);
    c.send({ type: 13 });
    s.clock.advance(949);
    expect(c.of(12)).toHaveLength(1);
    s.clock.advance(1);
    expect(c.of(12)).toHaveLength(2); // at 2 s, one keepalive after the first
  });

  it("declares the connection dead when PINGRESP does not come within 5 s, and reconnects", () => {
    const s = setup({ keepalive: 60 });
    const c = up(s);
    s.clock.advance(60000);
    s.clock.advance(4999);
    expect(s.client.state).toBe("connected");
    s.clock.advance(1);
    expect(s.events).toContainEqual(["down", "PING_TIMEOUT", 500]);
    expect(c.closed).toBe(true);
    s.clock.advance(500);
    expect(s.net.connections).toHaveLength(2);
  });

  it("detects a half-open link even while the device keeps publishing (nothing comes back)", () => {
    const s = setup({ keepalive: 60 });
    const c = up(s);
    for (let t = 0; t < 60; t += 10) {
      s.client.publish("d/telemetry", "21.5");
      s.clock.advance(10000);
    }
    // Outbound traffic does not hide inbound silence: PINGREQ goes out at 60 s, and the link dies 5 s later.
    expect(c.of(12)).toHaveLength(1);
    s.clock.advance(5000);
    expect(s.events).toContainEqual(["down", "PING_TIMEOUT", 500]);
  });

  it("treats inbound traffic after PINGREQ as a sign of life on a slow link", () => {
    const s = setup({ keepalive: 60 });
    const c = up(s);
    s.clock.advance(60000);
    s.clock.advance(4000);
    c.send({ type: 3, topic: "x", payload: "busy", qos: 0, retain: false, dup: false });
    s.clock.advance(4000);
    expect(s.client.state).toBe("connected");
    c.send({ type: 13 });
    expect(s.client.state).toBe("connected");
  });

  it("gives up after 1.5x keepalive of silence when even PINGREQ cannot be written", () => {
    const s = setup({ keepalive: 60 });
    const c = up(s);
    c.blocked = true;
    s.clock.advance(60000);
    expect(c.of(12)).toHaveLength(0);
    s.clock.advance(29999);
    expect(s.client.state).toBe("connected");
    s.clock.advance(1);
    expect(s.events).toContainEqual(["down", "IDLE_TIMEOUT", 500]);
  });

  it("uses the MQTT 5.0 Server Keep Alive instead of its own", () => {
    const s = setup({ keepalive: 60, level: 5, mqtt5 });
    s.client.start();
    const c = s.net.last;
    c.open();
    c.bytes(encode({ type: 2, sessionPresent: false, returnCode: 0, properties: { serverKeepAlive: 20 } }, 5));
    s.clock.advance(20000);
    expect(c.of(12)).toHaveLength(1);
  });
});

describe("a broker that misbehaves: bounded memory, bounded time", () => {
  const pub = (id: number): Packet => ({ type: 3, topic: "in", payload: "x", qos: 1, id, retain: false, dup: false });

  it("stops reading while 64 PUBACKs wait for a broker that floods QoS 1 and does not read, and answers them all, in order, once it does", () => {
    const s = setup({ keepalive: 60 });
    const c = up(s);
    c.blocked = true;
    for (let i = 1; i <= 1000; i++) c.send(pub(i));
    // What the client did not read stays in the transport (on a device: the TCP window, which holds the broker back).
    expect(s.messages).toHaveLength(64);
    expect(s.client.session.backlog).toBe(64 * 4);
    c.unblock();
    expect(s.messages).toHaveLength(1000);
    expect(c.of(4).map((p) => p.id)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(s.client.session.backlog).toBe(0);
    expect(s.client.state).toBe("connected");
  });

  it("takes the PUBACKs of a whole chunk, then stops: one read can hold many packets", () => {
    const s = setup({ keepalive: 60 });
    const c = up(s);
    c.blocked = true;
    const chunk = (from: number, n: number) => {
      const parts = Array.from({ length: n }, (_, i) => encode(pub(from + i)));
      const b = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
      let at = 0;
      for (const p of parts) b.set(p, (at += p.length) - p.length);
      return b;
    };
    c.bytes(chunk(1, 200));
    c.bytes(chunk(201, 200));
    expect(s.messages).toHaveLength(200);
    expect(s.client.session.backlog).toBe(200 * 4);
    c.unblock();
    expect(s.messages).toHaveLength(400);
    expect(c.of(4)).toHaveLength(400);
  });

  it("gives up with WRITE_STALLED when the broker takes nothing for 1.5x keepalive, and resends the QoS 1 in flight on the next connection", () => {
    const s = setup({ keepalive: 10 });
    const c = up(s);
    s.client.publish("d/t", "kept", { qos: 1 });
    c.blocked = true;
    s.client.publish("d/t", "waits", { qos: 1 });
    for (let i = 1; i <= 10; i++) {
      c.send({ type: 3, topic: "in", payload: "flood", qos: 0, retain: false, dup: false }); // QoS 0: nothing to answer
      s.clock.advance(1000);
    }
    s.clock.advance(4999);
    expect(s.client.state).toBe("connected");
    s.clock.advance(1);
    const down = s.events.find((e) => e[0] === "down") as Event;
    expect(down.slice(0, 2)).toEqual(["down", "WRITE_STALLED"]);
    s.clock.advance(down[2] as number);
    const c2 = up(s);
    expect(publishes(c2).map((p) => new TextDecoder().decode(p.payload as Uint8Array))).toEqual(["kept", "waits"]);
  });

  it("drops a broker that trickles a packet (slowloris) after packetTimeout plus 1 ms a byte, however often a byte comes", () => {
    const s = setup({ keepalive: 60 });
    const c = up(s);
    const b = encode({ type: 3, topic: "in", payload: "x".repeat(995), qos: 0, retain: false, dup: false });
    expect(b.length).toBe(1002);
    let sent = 0;
    while (s.client.state === "connected" && sent < b.length) {
      c.bytes(b.subarray(sent, sent + 1));
      sent++;
      s.clock.advance(500);
    }
    const down = s.events.find((e) => e[0] === "down") as Event;
    expect(down[1]).toBe("PACKET_TIMEOUT");
    // 10 s + 1,002 ms from the first byte, in steps of 500 ms
    expect(sent).toBe(23);
    expect(s.messages).toHaveLength(0);
  });

  it("drops a broker that trickles a fixed header as PACKET_TIMEOUT after 10 s", () => {
    const s = setup({ keepalive: 60 });
    const c = up(s);
    c.bytes(new Uint8Array([0x30, 0xff]));
    s.clock.advance(9999);
    c.bytes(new Uint8Array([0xff]));
    expect(s.client.state).toBe("connected");
    s.clock.advance(1);
    expect(s.events.find((e) => e[0] === "down")?.[1]).toBe("PACKET_TIMEOUT");
  });

  it("lets a large message through a slow link: 30 KB at 1 KB a second, longer than 1.5x keepalive, without a ping or idle timeout", () => {
    const s = setup({ keepalive: 10, maxPacketSize: 32 * 1024 });
    const c = up(s);
    const b = encode({
      type: 3,
      topic: "in",
      payload: "y".repeat(30 * 1024),
      qos: 1,
      id: 9,
      retain: false,
      dup: false,
    });
    for (let at = 0; at < b.length; at += 1024) {
      c.bytes(b.subarray(at, at + 1024));
      s.clock.advance(1000);
    }
    expect(s.events.filter((e) => e[0] === "down")).toEqual([]);
    expect(s.messages).toHaveLength(1);
    expect(c.of(4).map((p) => p.id)).toEqual([9]);
    // PINGREQ went out at 10 s, while the message arrived; its PINGRESP comes after the message, as from a broker
    expect(c.of(12)).toHaveLength(1);
    s.clock.advance(1000);
    c.send({ type: 13 });
    // the keepalive checks count from there
    s.clock.advance(10000);
    expect(c.of(12)).toHaveLength(2);
    c.send({ type: 13 });
    s.clock.advance(9000);
    expect(s.client.state).toBe("connected");
  });

  it("a flood of whole packets does not put off the PINGRESP past one keepalive, whatever the chunking", () => {
    const s = setup({ keepalive: 10 });
    const c = up(s);
    const p = encode({ type: 3, topic: "in", payload: "x".repeat(20), qos: 0, retain: false, dup: false });
    // every chunk ends in the middle of a packet: one is always under way
    c.bytes(p.subarray(0, 10));
    for (let t = 0; t < 30000 && s.client.state === "connected"; t += 100) {
      s.clock.advance(100);
      const b = new Uint8Array(p.length);
      b.set(p.subarray(10));
      b.set(p.subarray(0, 10), p.length - 10);
      c.bytes(b);
    }
    expect(c.of(12)).toHaveLength(1);
    const down = s.events.find((e) => e[0] === "down") as Event;
    expect(down[1]).toBe("PING_TIMEOUT");
    expect(down[2]).toBe(500);
    expect(s.clock.now()).toBe(20000);
  });
});

describe("QoS 1 out", () => {
  it("reports completion on PUBACK, with packet ids 1, 2, 3 ...", () => {
    const s = setup();
    const c = up(s);
    const done: (string | undefined)[] = [];
    for (let i = 0; i < 3; i++) s.client.publish("t", `m${i}`, { qos: 1 }, (e) => done.push(e?.code));
    expect(publishes(c).map((p) => p.id)).toEqual([1, 2, 3]);
    c.send({ type: 4, id: 2 }, { type: 4, id: 1 });
    expect(done).toEqual([undefined, undefined]);
    expect(s.client.outbox).toMatchObject({ messages: 1, inflight: 1 });
  });

  it("keeps at most `window` messages in flight; the rest wait in order", () => {
    const s = setup({ window: 10, outbox: { maxMessages: 100, maxBytes: 100000 } });
    const c = up(s);
    for (let i = 0; i < 15; i++) s.client.publish("t", `m${i}`, { qos: 1 });
    expect(publishes(c)).toHaveLength(10);
    c.send({ type: 4, id: 1 }, { type: 4, id: 2 });
    expect(publishes(c).map(text)).toEqual(Array.from({ length: 12 }, (_, i) => `m${i}`));
  });

  it("resends unacknowledged messages with DUP=1 first, in order, when the broker kept the session", () => {
    const s = setup({ clean: false, outbox: { maxMessages: 100, maxBytes: 100000 } });
    const c1 = up(s);
    for (let i = 0; i < 4; i++) s.client.publish("t", `m${i}`, { qos: 1 });
    c1.send({ type: 4, id: 2 });
    c1.fail();
    s.client.publish("t", "m4", { qos: 1 });
    s.clock.advance(500);
    const c2 = up(s, true);
    expect(publishes(c2).map((p) => [text(p), p.id, p.dup])).toEqual([
      ["m0", 1, true],
      ["m2", 3, true],
      ["m3", 4, true],
      ["m4", 5, false],
    ]);
  });

  it("sends them again as new messages (DUP=0) when the broker did not keep the session", () => {
    const s = setup({ clean: true });
    const c1 = up(s);
    s.client.publish("t", "a", { qos: 1 });
    s.client.publish("t", "b", { qos: 1 });
    c1.fail();
    s.clock.advance(500);
    const c2 = up(s, false);
    expect(publishes(c2).map((p) => [text(p), p.dup])).toEqual([
      ["a", false],
      ["b", false],
    ]);
  });

  it("never resends on a live connection (no timed retransmission)", () => {
    const s = setup({ keepalive: 60 });
    const c = up(s);
    s.client.publish("t", "once", { qos: 1 });
    for (let i = 0; i < 10; i++) {
      s.clock.advance(30000);
      c.send({ type: 13 });
    }
    expect(publishes(c)).toHaveLength(1);
  });

  it("wraps packet ids around 65535 without reusing one still in flight", () => {
    const s = setup({ window: 65535, outbox: { maxMessages: 70000, maxBytes: 10_000_000 } });
    const c = up(s);
    s.client.publish("t", "stuck", { qos: 1 }); // id 1 stays in flight throughout
    for (let i = 2; i <= 65535; i++) {
      s.client.publish("t", "x", { qos: 1 });
      c.send({ type: 4, id: i });
    }
    s.client.publish("t", "after wrap", { qos: 1 });
    const last = publishes(c).at(-1)!;
    expect(text(last)).toBe("after wrap");
    expect(last.id).toBe(2);
  });

  it("is QoS 0 and 1 only: QoS 2 is refused up front", () => {
    const s = setup();
    up(s);
    expect(() => s.client.publish("t", "x", { qos: 2 as 1 })).toThrow(MqttError);
    expect(() => s.client.publish("t", "x", { qos: 2 as 1 })).toThrow(/QoS 2 is not supported/);
  });

  it("refuses invalid topics with a clear error", () => {
    const s = setup();
    expect(() => s.client.publish("a/+/b", "x")).toThrow(/wildcard/);
    expect(() => s.client.publish("", "x")).toThrow(/empty/);
  });
});

describe("the outbox", () => {
  it("holds messages published offline and sends them in order on connect", () => {
    const s = setup();
    s.client.publish("t", "q0", { qos: 0 });
    s.client.publish("t", "q1", { qos: 1 });
    const c = up(s);
    expect(publishes(c).map(text)).toEqual(["q0", "q1"]);
  });

  it("when full, drops the oldest QoS 0 messages first, and refuses a new QoS 1 message rather than grow", () => {
    const s = setup({ outbox: { maxMessages: 4, maxBytes: 100000 } });
    const dropped: string[] = [];
    s.client.publish("t", "a0", { qos: 0 }, (e) => e && dropped.push("a0:" + e.code));
    s.client.publish("t", "b1", { qos: 1 });
    s.client.publish("t", "c0", { qos: 0 }, (e) => e && dropped.push("c0:" + e.code));
    s.client.publish("t", "d1", { qos: 1 });
    s.client.publish("t", "e1", { qos: 1 });
    expect(dropped).toEqual(["a0:OUTBOX_FULL"]);
    s.client.publish("t", "f1", { qos: 1 });
    expect(dropped).toEqual(["a0:OUTBOX_FULL", "c0:OUTBOX_FULL"]);
    expect(() => s.client.publish("t", "g1", { qos: 1 })).toThrow(/outbox is full/);
    expect(() => s.client.publish("t", "h0", { qos: 0 })).toThrow(expect.objectContaining({ code: "OUTBOX_FULL" }));
    const c = up(s);
    expect(publishes(c).map(text)).toEqual(["b1", "d1", "e1", "f1"]);
  });

  it("is bounded by bytes as well as by count", () => {
    const s = setup({ outbox: { maxMessages: 100, maxBytes: 300 } });
    s.client.publish("t", "x".repeat(100), { qos: 1 });
    s.client.publish("t", "x".repeat(100), { qos: 1 });
    expect(() => s.client.publish("t", "x".repeat(100), { qos: 1 })).toThrow(/outbox is full/);
    expect(() => s.client.publish("t", "x".repeat(400), { qos: 0 })).toThrow(/larger than the whole outbox/);
    expect(s.client.outbox.bytes).toBeLessThanOrEqual(300);
  });

  it("waits while the transport would block, then sends everything in order", () => {
    const s = setup();
    const c = up(s);
    c.blocked = true;
    for (let i = 0; i < 5; i++) s.client.publish("t", `m${i}`, { qos: (i % 2) as 0 | 1 });
    expect(publishes(c)).toHaveLength(0);
    c.unblock();
    expect(publishes(c).map(text)).toEqual(["m0", "m1", "m2", "m3", "m4"]);
  });

  it("keeps QoS 1 messages in a persistent store until acknowledged, across a restart", () => {
    const saved = new Map<number, Uint8Array>();
    const store: OutboxStore = {
      load: () => [...saved].map(([key, packet]) => ({ key, packet })),
      save: (k, p) => void saved.set(k, p.slice()),
      remove: (k) => void saved.delete(k),
    };
    const s1 = setup({ outbox: { store } });
    s1.client.publish("t", "kept-1", { qos: 1 });
    s1.client.publish("t", "not kept", { qos: 0 });
    s1.client.publish("t", "kept-2", { qos: 1 });
    expect(saved.size).toBe(2);
    s1.client.close(); // power loss before the broker saw them
    const s2 = setup({ outbox: { store } });
    const c = up(s2);
    expect(publishes(c).map(text)).toEqual(["kept-1", "kept-2"]);
    c.send({ type: 4, id: publishes(c)[0].id! });
    expect(saved.size).toBe(1);
    s2.client.publish("t", "new", { qos: 1 });
    expect(publishes(c)[2].id).not.toBe(publishes(c)[1].id); // no id in flight reused
  });

  it("fails a QoS 1 publish clearly when the store cannot save it", () => {
    const store: OutboxStore = {
      load: () => [],
      save: () => {
        throw new Error("flash full");
      },
      remove: () => {},
    };
    const s = setup({ outbox: { store } });
    expect(() => s.client.publish("t", "x", { qos: 1 })).toThrow(/could not save .* flash full/);
    expect(s.client.outbox.messages).toBe(0);
  });
});

/** Records the clock time of every PUBLISH the client writes. */
function publishTimes(s: S, c: ScriptedConnection): number[] {
  const at: number[] = [];
  const write = c.write.bind(c);
  c.write = (d) => {
    const ok = write(d);
    if (ok && d[0] >> 4 === PUBLISH) at.push(s.clock.now());
    return ok;
  };
  return at;
}

describe("rate limit", () => {
  it("never sends more than the profile's messages per second; the rest wait in the outbox", () => {
    const s = setup({
      profile: { name: "UIoT Core", publishRate: 30 },
      outbox: { maxMessages: 200, maxBytes: 100000 },
    });
    const c = up(s);
    const at = publishTimes(s, c);
    for (let i = 0; i < 100; i++) s.client.publish("t", `m${i}`);
    expect(at).toHaveLength(30);
    s.clock.advance(5000);
    expect(at).toHaveLength(100);
    for (let i = 30; i < at.length; i++) expect(at[i] - at[i - 30]).toBeGreaterThanOrEqual(1000);
    expect(publishes(c).map(text)).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`));
  });

  it("keeps to the profile's publishWindow: at most publishRate messages in any window that long", () => {
    const s = setup({
      profile: { name: "UIoT Core", publishRate: 30, publishWindow: 1250 },
      outbox: { maxMessages: 200, maxBytes: 100000 },
    });
    const c = up(s);
    const at = publishTimes(s, c);
    for (let i = 0; i < 100; i++) s.client.publish("t", `m${i}`);
    expect(at).toHaveLength(30);
    s.clock.advance(1249);
    expect(at).toHaveLength(30);
    s.clock.advance(1);
    expect(at).toHaveLength(60);
    s.clock.advance(5000);
    expect(at).toHaveLength(100);
    for (let i = 30; i < at.length; i++) expect(at[i] - at[i - 30]).toBeGreaterThanOrEqual(1250);
    expect(publishes(c).map(text)).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`));
  });
});

describe("QoS 1 in", () => {
  const pub = (id: number, dup = false, payload = `p${id}`): Packet => ({
    type: 3,
    topic: "in",
    payload,
    qos: 1,
    id,
    retain: false,
    dup,
  });

  it("acknowledges after the handler returns", () => {
    const s = setup();
    const c = up(s);
    const order: string[] = [];
    const write = c.write.bind(c);
    c.write = (d) => (order.push(`write ${d[0] >> 4}`), write(d));
    s.client.onMessage = () => void order.push("handler");
    c.send(pub(7));
    expect(order).toEqual(["handler", "write 4"]);
    expect(c.of(4)).toEqual([{ type: 4, id: 7 }]);
  });

  it("acknowledges a redelivery of an id it just handled, without delivering it twice", () => {
    const s = setup();
    const c = up(s);
    c.send(pub(7));
    c.send(pub(7, true));
    expect(s.messages).toHaveLength(1);
    expect(c.of(4)).toHaveLength(2);
    c.send(pub(8)); // a fresh id is delivered
    expect(s.messages).toHaveLength(2);
  });

  it("treats a reused id without DUP as a new message (MQTT-4.3.2-2)", () => {
    const s = setup();
    const c = up(s);
    c.send(pub(7, false, "one"), pub(7, false, "two"));
    expect(s.messages.map((m) => m.payload)).toEqual(["one", "two"]);
  });

  it("with an async handler, acknowledges when its promise settles and ignores a redelivery meanwhile", async () => {
    const s = setup();
    const c = up(s);
    let finish!: () => void;
    let calls = 0;
    s.client.onMessage = () => {
      calls++;
      return new Promise<void>((r) => (finish = r));
    };
    c.send(pub(9));
    c.send(pub(9, true));
    expect(calls).toBe(1);
    expect(c.of(4)).toHaveLength(0);
    finish();
    await Promise.resolve();
    await Promise.resolve();
    expect(c.of(4)).toEqual([{ type: 4, id: 9 }]);
  });

  it("rejects QoS 2 from the broker as a protocol error and reconnects", () => {
    const s = setup();
    const c = up(s);
    c.bytes(new Uint8Array([0x34, 7, 0, 1, 0x74, 0, 1, 0x68, 0x69]));
    expect(s.events.find((e) => e[0] === "down")?.[1]).toBe("QOS2_UNSUPPORTED");
    expect(c.closed).toBe(true);
  });

  it("rejects a packet only a broker receives (CONNECT, SUBSCRIBE, UNSUBSCRIBE) as it rejects a PINGREQ from the broker", () => {
    const got: [string, string][] = [];
    for (const [packet, whole] of [
      [{ type: 12 }, true],
      [{ type: 1, level: 4, clientId: "x", clean: true, keepalive: 60 }, false],
      [{ type: 8, id: 1, subscriptions: [{ topic: "a", qos: 0 }] }, false],
      [{ type: 10, id: 1, topics: ["a"] }, false],
    ] as [Packet, boolean][]) {
      let error: MqttError | undefined;
      const s = setup({ onDisconnect: (e) => (error ??= e) });
      const c = up(s);
      // the device's decoder has no parser for them: refused at their first byte, before any of the body is kept
      const bytes = encode(packet);
      c.bytes(whole ? bytes : bytes.subarray(0, 1));
      expect(c.closed).toBe(true);
      got.push([error?.code ?? "", error?.message ?? ""]);
    }
    expect(got).toEqual(
      [12, 1, 8, 10].map((t) => [
        "PROTOCOL_ERROR",
        `the broker broke the MQTT protocol: unexpected packet type ${t} from the broker`,
      ]),
    );
  });

  it("skips an oversize message with a clear error and goes on with the next", () => {
    const s = setup({ maxPacketSize: 100 });
    const c = up(s);
    c.send({ type: 3, topic: "big", payload: "x".repeat(200), qos: 0, retain: false, dup: false });
    c.send({ type: 3, topic: "small", payload: "ok", qos: 0, retain: false, dup: false });
    expect(s.events.find((e) => e[0] === "error")?.[1]).toBe("PACKET_TOO_LARGE");
    expect(s.messages.map((m) => m.topic)).toEqual(["small"]);
    expect(s.client.state).toBe("connected");
  });
});

describe("subscriptions", () => {
  it("reports SUBACK 0x80 per filter as a refusal, not a success", () => {
    const s = setup();
    const c = up(s);
    let result: [string | undefined, number[]] | undefined;
    s.client.subscribe(["a/#", "b/+"], 1, (e, g) => (result = [e?.message, g]));
    const [sub] = c.of(8);
    expect(sub.subscriptions).toEqual([
      { topic: "a/#", qos: 1 },
      { topic: "b/+", qos: 1 },
    ]);
    c.send({ type: 9, id: sub.id, granted: [1, 0x80] });
    expect(result).toEqual(["the broker refused the subscription to b/+", [1, 0x80]]);
    expect([...s.client.session.subscriptions.keys()]).toEqual(["a/#"]);
  });

  it("takes a SUBACK with too few or too many return codes as a protocol error, and subscribes again on the next connection", () => {
    for (const granted of [[1], [1, 1, 1]]) {
      const s = setup();
      const c = up(s);
      let result: string | undefined = "unanswered";
      s.client.subscribe(["a/#", "b/+"], 1, (e) => (result = e?.code));
      c.send({ type: 9, id: c.of(8)[0].id, granted });
      const drop = s.events.find((e) => e[0] === "down");
      expect(drop?.[1], `${granted.length} codes`).toBe("PROTOCOL_ERROR");
      expect(s.client.session.subscriptions.size).toBe(0);
      expect(result).toBe("unanswered");
      s.clock.advance(60000);
      const c2 = up(s);
      expect(c2.of(8)[0].subscriptions.map((x: { topic: string }) => x.topic)).toEqual(["a/#", "b/+"]);
    }
  });

  it("restores subscriptions after a reconnect without a kept session, before anything else", () => {
    const s = setup({ outbox: { maxMessages: 10, maxBytes: 10000 } });
    const c1 = up(s);
    s.client.subscribe("cmd/#", 1);
    c1.send({ type: 9, id: c1.of(8)[0].id, granted: [1] });
    s.client.publish("t", "queued", { qos: 1 });
    c1.fail();
    s.clock.advance(1000);
    const c2 = up(s, false);
    expect(c2.sent[1]).toMatchObject({ type: 8, subscriptions: [{ topic: "cmd/#", qos: 1 }] });
    expect(c2.sent[2]).toMatchObject({ type: 3 });
  });

  it("does not restore them when the broker kept the session", () => {
    const s = setup({ clean: false });
    const c1 = up(s);
    s.client.subscribe("cmd/#", 1);
    c1.send({ type: 9, id: c1.of(8)[0].id, granted: [1] });
    c1.fail();
    s.clock.advance(1000);
    const c2 = up(s, true);
    expect(c2.of(8)).toHaveLength(0);
  });

  it("sends subscriptions requested offline once connected, and answers the callback", () => {
    const s = setup();
    let granted: number[] = [];
    s.client.subscribe("x/y", 0, (_e, g) => (granted = g));
    const c = up(s);
    const [sub] = c.of(8);
    c.send({ type: 9, id: sub.id, granted: [0] });
    expect(granted).toEqual([0]);
  });

  it("unsubscribes and forgets the filter", () => {
    const s = setup();
    const c = up(s);
    s.client.subscribe("a", 1);
    c.send({ type: 9, id: c.of(8)[0].id, granted: [1] });
    let done = false;
    s.client.unsubscribe("a", () => (done = true));
    c.send({ type: 11, id: c.of(10)[0].id });
    expect(done).toBe(true);
    expect(s.client.session.subscriptions.size).toBe(0);
  });

  it("enforces the profile's subscription limit locally", () => {
    const s = setup({ profile: { name: "UIoT Core", maxSubscriptions: 2 } });
    s.client.subscribe(["a", "b"], 1);
    expect(() => s.client.subscribe("c", 1)).toThrow(/at most 2 subscriptions/);
  });
});

describe("reconnect and backoff", () => {
  it("backs off exponentially with full jitter up to the maximum", () => {
    const s = setup({ random: () => 0.999 });
    s.client.start();
    const delays: number[] = [];
    s.client.onDisconnect = (_e, d) => delays.push(d);
    for (let i = 0; i < 9; i++) {
      s.net.last.fail("ECONNREFUSED");
      s.clock.advance(delays[i]);
    }
    expect(delays).toEqual([999, 1998, 3996, 7992, 15984, 31968, 59940, 59940, 59940]);
  });

  it("backs off from a broker that accepts then kicks the client, and says why", () => {
    const s = setup({
      random: () => 0.999,
      profile: { name: "UIoT Core", kickHint: "is another device using this DeviceSN?" },
    });
    const delays: number[] = [];
    const errors: string[] = [];
    s.client.onDisconnect = (_e, d) => delays.push(d);
    s.client.onError = (e) => errors.push(e.message);
    s.client.start();
    for (let i = 0; i < 4; i++) {
      s.net.last.open();
      s.net.last.connack();
      s.clock.advance(2000);
      s.net.last.fail("the broker closed the connection");
      s.clock.advance(delays[i]);
    }
    expect(delays).toEqual([999, 1998, 3996, 7992]);
    // Once per row of kicks, not again on every later loss.
    expect(errors).toEqual(["kicked 3 times within a minute of connecting: is another device using this DeviceSN?"]);
  });

  it("reports KICKED only for closes by the broker: a loss the client caused (a timeout, a protocol error) breaks the row", () => {
    const s = setup({ random: () => 0.999, keepalive: 10, kickThreshold: 2 });
    const errors: string[] = [];
    const downs: string[] = [];
    s.client.onError = (e) => errors.push(e.code);
    s.client.onDisconnect = (e) => downs.push(e.code);
    s.client.start();
    const cycle = (end: () => void) => {
      s.net.last.open();
      s.net.last.connack();
      s.clock.advance(1000);
      end();
      const dialled = s.net.connections.length;
      while (s.net.connections.length === dialled) s.clock.advance(100); // the backoff, to the next dial
    };
    cycle(() => s.net.last.fail("the broker closed the connection"));
    cycle(() => s.net.last.send({ type: 2, sessionPresent: false, returnCode: 0 })); // a second CONNACK: our PROTOCOL_ERROR
    cycle(() => s.net.last.fail("the broker closed the connection"));
    cycle(() => s.clock.advance(20000)); // no PINGRESP: our PING_TIMEOUT
    expect(downs).toEqual(["CONNECTION_LOST", "PROTOCOL_ERROR", "CONNECTION_LOST", "PING_TIMEOUT"]);
    expect(errors).toEqual([]);
    cycle(() => s.net.last.fail("the broker closed the connection"));
    expect(errors).toEqual([]);
    cycle(() => s.net.last.fail("the broker closed the connection"));
    expect(errors).toEqual(["KICKED"]);
  });

  it("resets the backoff only after a connection stayed up for a while", () => {
    const s = setup({ random: () => 0.999 });
    const delays: number[] = [];
    s.client.onDisconnect = (_e, d) => delays.push(d);
    s.client.start();
    s.net.last.fail();
    s.clock.advance(delays[0]);
    s.net.last.fail();
    s.clock.advance(delays[1]);
    up(s);
    s.clock.advance(60000);
    s.net.last.send({ type: 13 });
    s.net.last.fail();
    expect(delays).toEqual([999, 1998, 999]);
  });
});

describe("application callbacks", () => {
  it("an exception in the message handler is reported, the message is acknowledged, the session lives on", () => {
    const s = setup();
    const c = up(s);
    s.client.onMessage = () => {
      throw new Error("app bug");
    };
    c.send({ type: 3, topic: "in", payload: "x", qos: 1, id: 3, retain: false, dup: false });
    expect(s.events).toContainEqual(["error", "CALLBACK_ERROR", "the message handler threw for in: Error: app bug"]);
    expect(c.of(4)).toEqual([{ type: 4, id: 3 }]);
    expect(s.client.state).toBe("connected");
  });

  it("exceptions in publish callbacks and onConnect are reported, never swallowed", () => {
    const s = setup();
    s.client.onConnect = () => {
      throw new Error("boom");
    };
    const c = up(s);
    s.client.publish("t", "x", { qos: 1 }, () => {
      throw new Error("cb bug");
    });
    c.send({ type: 4, id: 1 });
    const codes = s.events.filter((e) => e[0] === "error").map((e) => e[2]);
    expect(codes).toEqual([
      "the application's onConnect handler threw: Error: boom",
      "a publish callback threw: Error: cb bug",
    ]);
    expect(s.client.state).toBe("connected");
  });

  it("an onError handler that throws is logged, not lost", () => {
    const logs: string[] = [];
    const s = setup({ log: (m) => logs.push(m) });
    s.client.onError = () => {
      throw new Error("worse");
    };
    const c = up(s);
    s.client.onMessage = () => {
      throw new Error("bad");
    };
    c.send({ type: 3, topic: "in", payload: "x", qos: 0, retain: false, dup: false });
    expect(logs[0]).toMatch(/onError threw while reporting .*worse/);
  });
});

describe("close", () => {
  it("sends DISCONNECT, closes the transport and leaves no timer behind", () => {
    const s = setup();
    const c = up(s);
    let err: string | undefined;
    s.client.publish("t", "x", { qos: 1 }, (e) => (err = e?.code));
    s.client.close();
    expect(c.of(14)).toHaveLength(1);
    expect(c.closed).toBe(true);
    expect(err).toBe("CLOSED");
    expect(s.clock.pending).toBe(0);
    expect(() => s.client.publish("t", "x")).toThrow(/closed/);
  });

  it("cancels a dial in progress and a pending retry", () => {
    const s = setup();
    s.client.start();
    s.client.close();
    expect(s.net.last.closed).toBe(true);
    expect(s.clock.pending).toBe(0);
    const s2 = setup();
    s2.client.start();
    s2.net.last.fail();
    expect(s2.client.state).toBe("waiting");
    s2.client.close();
    expect(s2.clock.pending).toBe(0);
    s2.clock.advance(120000);
    expect(s2.net.connections).toHaveLength(1);
  });
});

describe("MQTT 5.0", () => {
  it("is refused at level 5 without the mqtt5 module, which a 3.1.1 build leaves out, saying how to add it", () => {
    const refused = (() => {
      try {
        setup({ level: 5 });
      } catch (e) {
        return e as MqttError;
      }
      throw new Error("a level-5 client without mqtt5 was made");
    })();
    expect(refused).toBeInstanceOf(MqttError);
    expect(refused.code).toBe("PROTOCOL_MISMATCH");
    expect(refused.message).toMatch(/needs the mqtt5 module \(src\/mqtt\/mqtt5\.ts\): pass \{ mqtt5 \} with level 5/);
  });

  it("sends the CONNECT properties, reads the CONNACK's, and names a 5.0 reason code", () => {
    const s = setup({ level: 5, mqtt5, properties: { sessionExpiryInterval: 60, receiveMaximum: 5 } });
    const errs: MqttError[] = [];
    s.client.onDisconnect = (e) => errs.push(e);
    s.client.start();
    const c = s.net.last;
    c.open();
    expect(c.of(1)[0]).toMatchObject({ level: 5, properties: { sessionExpiryInterval: 60, receiveMaximum: 5 } });
    c.bytes(encode({ type: 2, sessionPresent: false, returnCode: 0x86 }, 5));
    expect(errs[0].code).toBe("CONNECT_REFUSED");
    expect(errs[0].returnCode).toBe(0x86);
    expect(errs[0].message).toBe("connection refused (code 134): bad user name or password");
  });

  it("explains the 3.1.1 refusal of a 5.0 CONNECT", () => {
    const s = setup({ level: 5, mqtt5 });
    const errs: MqttError[] = [];
    s.client.onDisconnect = (e) => errs.push(e);
    s.client.start();
    s.net.last.open();
    s.net.last.bytes(new Uint8Array([0x20, 2, 0, 1]));
    expect(errs[0].message).toMatch(/does not accept this MQTT protocol level: try level 4/);
  });
});

describe("profile topic rules", () => {
  it("run once per topic the session caches, and refuse a forbidden topic every time", () => {
    const seen: string[] = [];
    const s = setup({
      profile: {
        name: "UIoT Core",
        checkTopic: (t) => {
          seen.push(t);
          if (t.startsWith("other/")) throw new MqttError("NOT_ALLOWED", `${t} is not this device's topic`);
        },
      },
    });
    up(s);
    s.client.publish("mine/a", "1");
    s.client.publish("mine/a", "2");
    expect(() => s.client.publish("other/a", "x")).toThrow(/not this device's topic/);
    expect(() => s.client.publish("other/a", "x")).toThrow(/not this device's topic/);
    expect(seen).toEqual(["mine/a", "other/a", "other/a"]);
  });
});
