// The outbox's ring of records and the packet ids found without a map (src/mqtt/outbox.ts), in a session and on
// its own: wrap-around, growth and shrinking, a full window, removal from the middle, making room, the persistent
// store's keys and reload order, DUP resends, and the rate limiter's ring in a session (the unit itself:
// rate-limit.test.ts). Deterministic: a fake clock and a scripted transport; the test plays the broker.
import { describe, expect, it } from "vitest";
import { Client, type ClientOptions } from "../../src/mqtt/client";
import { encode, PUBLISH, type MqttError, type PublishPacket } from "../../src/mqtt/codec";
import { FIRST_RECORDS, ITEMS, Outbox, QOS1, type PublishCallback } from "../../src/mqtt/outbox";
import type { OutboxStore } from "../../src/host";
import { FakeClock } from "../helpers/fake-clock";
import { ScriptedNetwork, type ScriptedConnection } from "../helpers/scripted-transport";

function setup(opts: Partial<ClientOptions> = {}) {
  const clock = new FakeClock();
  const net = new ScriptedNetwork();
  const errors: string[] = [];
  const retry = { in: 0 };
  const client = new Client({
    clientId: "dev1",
    connect: net.connect,
    clock,
    random: () => 0.5,
    onError: (e) => errors.push(e.code),
    onDisconnect: (_e, ms) => (retry.in = ms),
    ...opts,
  });
  return { clock, net, client, errors, retry };
}

type S = ReturnType<typeof setup>;

function up(s: S, sessionPresent = false): ScriptedConnection {
  if (s.client.state === "idle") s.client.start();
  else s.clock.advance(s.retry.in); // the backoff after the last loss
  const c = s.net.last;
  c.open();
  c.connack(sessionPresent);
  return c;
}

const publishes = (c: ScriptedConnection) => c.of(3) as PublishPacket[];
const text = (p: PublishPacket) => new TextDecoder().decode(p.payload as Uint8Array);
const sent = (c: ScriptedConnection) =>
  publishes(c).map((p) => `${text(p)}${p.qos ? `#${p.id}${p.dup ? "d" : ""}` : ""}`);
const ack = (c: ScriptedConnection, ...ids: number[]) => c.send(...ids.map((id) => ({ type: 4 as const, id })));
/** The ring's capacity, in records: how much the outbox holds on to. */
const records = (s: S) => s.client.outbox.capacity;

describe("the outbox ring", () => {
  it("wraps around: acknowledgements in order and out of order keep the order of everything else", () => {
    const s = setup({ window: 3, outbox: { maxMessages: 4, maxBytes: 100000 } });
    const c = up(s);
    const done: string[] = [];
    const pub = (m: string) => s.client.publish("t", m, { qos: 1 }, (e) => done.push(e ? `${m}:${e.code}` : m));
    for (const m of ["a", "b", "c", "d"]) pub(m);
    expect(sent(c)).toEqual(["a#1", "b#2", "c#3"]);
    ack(c, 1); // the head leaves: d goes out
    pub("e");
    ack(c, 3); // from the middle of the flight
    pub("f");
    ack(c, 2, 4);
    pub("g");
    pub("h");
    expect(sent(c)).toEqual(["a#1", "b#2", "c#3", "d#4", "e#5", "f#6", "g#7"]);
    expect(done).toEqual(["a", "c", "b", "d"]);
    expect(s.client.outbox).toEqual({ messages: 4, bytes: expect.any(Number), inflight: 3, capacity: 4 });
    ack(c, 7, 5, 6);
    expect(sent(c).at(-1)).toBe("h#8");
    ack(c, 8);
    expect(done).toEqual(["a", "c", "b", "d", "g", "e", "f", "h"]);
    expect(s.client.outbox).toEqual({ messages: 0, bytes: 0, inflight: 0, capacity: 0 });
  });

  it("grows by doubling up to maxMessages while wrapped, keeps the order, and shrinks back once empty", () => {
    const s = setup({ window: 100, outbox: { maxMessages: 10, maxBytes: 100000 } });
    const c = up(s);
    for (const m of ["a", "b"]) s.client.publish("t", m, { qos: 1 });
    ack(c, 1); // the head has moved: the next records wrap
    for (const m of ["c", "d", "e", "f", "g", "h", "i", "j", "k"]) s.client.publish("t", m, { qos: 1 });
    expect(() => s.client.publish("t", "l", { qos: 1 })).toThrow(/outbox is full \(10 messages/);
    expect(records(s)).toBe(10);
    expect(sent(c)).toEqual(["a#1", "b#2", "c#3", "d#4", "e#5", "f#6", "g#7", "h#8", "i#9", "j#10", "k#11"]);
    ack(c, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
    expect(s.client.outbox.messages).toBe(0);
    expect(records(s)).toBe(0); // the grown ring went
    s.client.publish("t", "m", { qos: 1 });
    expect(records(s)).toBe(2);
    expect(sent(c).at(-1)).toBe("m#13"); // the refused "l" took id 12, as before
  });

  it("a full window holds back the next QoS 1 message and everything queued behind it", () => {
    const s = setup({ window: 1 });
    const c = up(s);
    const done: string[] = [];
    s.client.publish("t", "A", { qos: 1 });
    s.client.publish("t", "B", { qos: 1 });
    s.client.publish("t", "c", { qos: 0 }, () => done.push("c"));
    expect(sent(c)).toEqual(["A#1"]);
    expect(s.client.outbox).toMatchObject({ messages: 3, inflight: 1 });
    ack(c, 1);
    expect(sent(c)).toEqual(["A#1", "B#2", "c"]);
    expect(done).toEqual(["c"]);
    expect(s.client.outbox).toMatchObject({ messages: 1, inflight: 1 });
  });

  it("when full, drops queued QoS 0 messages from the middle of a wrapped ring, oldest first", () => {
    const s = setup({ window: 1, outbox: { maxMessages: 4, maxBytes: 100000 } });
    const c = up(s);
    const dropped: string[] = [];
    for (const m of ["a", "b", "c"]) s.client.publish("t", m, { qos: 1 });
    ack(c, 1, 2); // c is in flight in the third record: what follows wraps to the first ones
    s.client.publish("t", "Z", { qos: 1 }); // waits for the window, and the QoS 0 messages wait behind it
    s.client.publish("t", "q1", { qos: 0 }, (e) => e && dropped.push(`q1:${e.code}`));
    s.client.publish("t", "q2", { qos: 0 }, (e) => e && dropped.push(`q2:${e.code}`));
    expect(records(s)).toBe(4);
    s.client.publish("t", "W", { qos: 1 });
    expect(dropped).toEqual(["q1:OUTBOX_FULL"]);
    s.client.publish("t", "V", { qos: 1 });
    expect(dropped).toEqual(["q1:OUTBOX_FULL", "q2:OUTBOX_FULL"]);
    expect(() => s.client.publish("t", "U", { qos: 1 })).toThrow(/outbox is full/);
    for (let id = 3; id <= 6; id++) ack(c, id);
    expect(sent(c)).toEqual(["a#1", "b#2", "c#3", "Z#4", "W#5", "V#6"]);
    expect(s.client.outbox.messages).toBe(0);
  });

  it("resends what is unacknowledged after a reconnect, DUP set, in publish order, whatever order the acks came in", () => {
    const s = setup({ clean: false, window: 4, outbox: { maxMessages: 8, maxBytes: 100000 } });
    const c1 = up(s);
    for (const m of ["a", "b", "c", "d", "e", "f"]) s.client.publish("t", m, { qos: 1 });
    ack(c1, 2, 4); // e and f go out
    s.client.publish("t", "g", { qos: 1 }); // waits: the window is full
    c1.fail();
    s.client.publish("t", "h", { qos: 0 });
    const c2 = up(s, true);
    expect(sent(c2)).toEqual(["a#1d", "c#3d", "e#5d", "f#6d"]);
    ack(c2, 5, 1);
    expect(sent(c2)).toEqual(["a#1d", "c#3d", "e#5d", "f#6d", "g#7", "h"]);
    c2.fail();
    const c3 = up(s, false); // the broker forgot the session: the same messages again, as new ones
    expect(sent(c3)).toEqual(["c#3", "f#6", "g#7"]);
  });

  it("fails every callback in order, with CLOSED, when the client is closed", () => {
    const s = setup({ window: 2 });
    const c = up(s);
    const done: string[] = [];
    for (const m of ["a", "b", "c", "d"]) s.client.publish("t", m, { qos: 1 }, (e) => done.push(`${m}:${e?.code}`));
    ack(c, 1);
    s.client.close();
    expect(done).toEqual(["a:undefined", "b:CLOSED", "c:CLOSED", "d:CLOSED"]);
    expect(s.client.outbox).toEqual({ messages: 0, bytes: 0, inflight: 0, capacity: 0 });
  });
});

describe("packet ids without a map", () => {
  it("never gives a publish the id of a SUBSCRIBE still waiting for its SUBACK", () => {
    const s = setup();
    const c = up(s);
    s.client.subscribe("cmd/#", 1);
    const sub = c.of(8)[0];
    expect(sub.id).toBe(1);
    for (let i = 0; i < 3; i++) s.client.publish("t", `m${i}`, { qos: 1 });
    expect(publishes(c).map((p) => p.id)).toEqual([2, 3, 4]);
    c.send({ type: 9, id: 1, granted: [1] });
    expect([...s.client.session.subscriptions]).toEqual([["cmd/#", 1]]);
  });

  it("after wrapping, skips every id still held, wherever it sits, and goes on after the run", () => {
    const s = setup({ window: 65535, outbox: { maxMessages: 70000, maxBytes: 10_000_000 } });
    const c = up(s);
    // ids 1, 2, 3 and 5 stay in flight; every other one is acknowledged at once, up to 65535
    for (let id = 1; id <= 65535; id++) {
      s.client.publish("t", "x", { qos: 1 });
      if (id > 5 || id === 4) ack(c, id);
    }
    for (let i = 0; i < 3; i++) s.client.publish("t", "after", { qos: 1 });
    expect(
      publishes(c)
        .slice(-3)
        .map((p) => p.id),
    ).toEqual([4, 6, 7]);
    expect(s.client.outbox.inflight).toBe(7);
  });
});

describe("the persistent store", () => {
  class MemoryOutbox implements OutboxStore {
    saved = new Map<number, Uint8Array>();
    load() {
      // any order: the session sorts by key
      return [...this.saved].reverse().map(([key, packet]) => ({ key, packet }));
    }
    save(key: number, packet: Uint8Array) {
      this.saved.set(key, packet.slice());
    }
    remove(key: number) {
      this.saved.delete(key);
    }
  }
  const pub = (topic: string, id: number, payload: string) =>
    encode({ type: 3, topic, payload, qos: 1, id, retain: false, dup: false });

  it("reloads in key order, resends with the stored ids, and gives new messages ids and keys after them", () => {
    const store = new MemoryOutbox();
    store.saved.set(7, pub("t", 5, "third"));
    store.saved.set(2, pub("t", 1, "first"));
    store.saved.set(4, pub("t", 2, "second"));
    store.saved.set(5, new Uint8Array([0x30, 9])); // unreadable: dropped and reported
    const s = setup({ clean: false, outbox: { store } });
    expect(s.errors).toEqual(["STORE_FAILED"]);
    expect([...store.saved.keys()].sort()).toEqual([2, 4, 7]);
    const c = up(s, true);
    for (const m of ["n1", "n2", "n3", "n4"]) s.client.publish("t", m, { qos: 1 });
    expect(sent(c)).toEqual(["first#1d", "second#2d", "third#5d", "n1#3", "n2#4", "n3#6", "n4#7"]);
    expect([...store.saved.keys()]).toEqual([7, 2, 4, 8, 9, 10, 11]);
    ack(c, 2, 3, 5);
    expect([...store.saved.keys()].sort((a, b) => a - b)).toEqual([2, 9, 10, 11]);
  });
});

describe("the rate limit's ring", () => {
  it("holds the window across 50 days without a send (the 32-bit times move their base)", () => {
    const s = setup({ keepalive: 0, profile: { name: "limited", publishRate: 3, publishWindow: 1000 } });
    const c = up(s);
    const at: number[] = [];
    const write = c.write.bind(c);
    c.write = (d) => {
      const ok = write(d);
      if (ok && d[0] >> 4 === PUBLISH) at.push(s.clock.now());
      return ok;
    };
    const burst = () => {
      for (let i = 0; i < 5; i++) s.client.publish("t", `m${i}`);
    };
    burst();
    expect(at).toHaveLength(3);
    s.clock.advance(1000);
    expect(at).toHaveLength(5);
    s.clock.advance(50 * 86400000);
    const t = s.clock.now();
    burst();
    expect(at.slice(5)).toEqual([t, t, t]);
    s.clock.advance(999);
    expect(at).toHaveLength(8);
    s.clock.advance(1);
    expect(at.slice(8)).toEqual([t + 1000, t + 1000]);
  });

  it("holds sending back by one window at most when the clock is set back", () => {
    let t = 10_000_000;
    const timers: { at: number; cb: () => void }[] = [];
    const clock = {
      now: () => t,
      setTimer: (cb: () => void, ms: number) => timers.push({ at: t + ms, cb }),
      clearTimer: (id: unknown) => void timers.splice((id as number) - 1, 1, { at: Infinity, cb: () => {} }),
    };
    const s = setup({ keepalive: 0, clock, profile: { name: "limited", publishRate: 2, publishWindow: 1000 } });
    const c = up(s);
    for (let i = 0; i < 2; i++) s.client.publish("t", `a${i}`);
    t -= 5_000_000; // the host's clock was set back
    for (let i = 0; i < 3; i++) s.client.publish("t", `b${i}`);
    expect(sent(c)).toEqual(["a0", "a1"]);
    const next = timers.filter((x) => x.at !== Infinity).at(-1)!;
    expect(next.at - t).toBeLessThanOrEqual(1000);
    t = next.at;
    next.cb();
    expect(sent(c)).toEqual(["a0", "a1", "b0", "b1"]);
  });
});

describe("subscriptions without a map", () => {
  it("keeps the granted QoS per filter, in order, through a re-grant and an unsubscribe", () => {
    const s = setup();
    const c = up(s);
    s.client.subscribe(["a", "b", "c"], 1);
    c.send({ type: 9, id: c.of(8)[0].id, granted: [1, 0, 2] });
    expect([...s.client.session.subscriptions]).toEqual([
      ["a", 1],
      ["b", 0],
      ["c", 1],
    ]);
    s.client.subscribe(["b", "a"], 1);
    c.send({ type: 9, id: c.of(8)[1].id, granted: [1, 0] });
    expect([...s.client.session.subscriptions]).toEqual([
      ["a", 0],
      ["b", 1],
      ["c", 1],
    ]);
    s.client.unsubscribe(["a", "c"]);
    expect([...s.client.session.subscriptions]).toEqual([["b", 1]]);
    c.fail();
    const c2 = up(s, false);
    expect(c2.of(8)[0].subscriptions).toEqual([{ topic: "b", qos: 1 }]);
  });
});

// The outbox unit itself (src/mqtt/outbox.ts), without a session: its ring, its ids, making room and the store.
describe("the Outbox unit", () => {
  const bytes = (n: number) => new Uint8Array(n);
  const held = (o: Outbox) => Array.from({ length: o.count }, (_, i) => o.flags(o.record(i)) & 0xffff);
  const report = (errors: string[]) => ({ error: (e: MqttError) => void errors.push(e.code) });

  it("makes its ring on first use, doubles it up to maxMessages while wrapped, and lets a grown one go when empty", () => {
    const o = new Outbox({ maxMessages: 5 });
    expect(o.records).toBe(0);
    o.append(bytes(3), undefined, 1 | QOS1, 0);
    expect(o.records).toBe(FIRST_RECORDS);
    o.append(bytes(3), undefined, 2 | QOS1, 0);
    o.remove(0, report([])); // the head moves: what follows wraps
    for (const id of [3, 4, 5, 6]) o.append(bytes(3), undefined, id | QOS1, 0);
    expect(o.records).toBe(5); // 2, 4, then 5: never past maxMessages
    expect(held(o)).toEqual([2, 3, 4, 5, 6]);
    expect(o.bytes).toBe(15);
    for (let i = 0; i < 5; i++) o.remove(0, report([]));
    expect(o).toMatchObject({ count: 0, bytes: 0, records: 0 });
    o.append(bytes(1), undefined, 7 | QOS1, 0);
    o.remove(0, report([]));
    expect(o.records).toBe(FIRST_RECORDS); // a ring that never grew stays
  });

  it("takes a message from the middle from the nearer end and keeps the order of the others", () => {
    const o = new Outbox({});
    for (let id = 1; id <= 7; id++) o.append(bytes(id), undefined, id | QOS1, 0);
    o.remove(1, report([]));
    o.remove(4, report([]));
    expect(held(o)).toEqual([1, 3, 4, 5, 7]);
    expect(o.bytes).toBe(1 + 3 + 4 + 5 + 7);
  });

  it("hands out ids in turn, skipping those held by its messages and by the requests", () => {
    const o = new Outbox({});
    expect([o.takeId([]), o.takeId([]), o.takeId([])]).toEqual([1, 2, 3]);
    o.append(bytes(1), undefined, 5 | QOS1, 0);
    o.idsFree = 0; // look again (as after a reload)
    expect([o.takeId([{ id: 4 }]), o.takeId([{ id: 4 }])]).toEqual([6, 7]);
    o.nextId = 65534;
    o.idsFree = 0;
    o.append(bytes(1), undefined, 65535 | QOS1, 0);
    o.append(bytes(1), undefined, 1 | QOS1, 0);
    expect([o.takeId([{ id: 2 }]), o.takeId([{ id: 2 }])]).toEqual([65534, 3]);
  });

  it("makes room by dropping the oldest queued QoS 0 messages, never a QoS 1 one, and says whose", () => {
    const o = new Outbox({ maxMessages: 4, maxBytes: 100 });
    const names = new Map<PublishCallback | undefined, string>();
    const cb = (name: string) => {
      const f: PublishCallback = () => {};
      names.set(f, name);
      return f;
    };
    const labels = (cbs: (PublishCallback | undefined)[] | null) =>
      cbs === null ? null : cbs.map((f) => names.get(f));
    o.append(bytes(10), cb("q1"), 1 | QOS1, 0);
    o.append(bytes(10), cb("a"), 0, 0);
    o.append(bytes(10), cb("q2"), 2 | QOS1, 0);
    o.append(bytes(10), cb("b"), 0, 0);
    expect(labels(o.makeRoom(10, 0, report([])))).toEqual(["a"]);
    expect(held(o)).toEqual([1, 2, 0]);
    expect(o.makeRoom(10, 0, report([]))).toBeNull(); // room enough already
    o.append(bytes(10), cb("q3"), 3 | QOS1, 0);
    expect(labels(o.makeRoom(65, 1, report([])))).toEqual(["b"]);
    o.append(bytes(65), cb("q4"), 4 | QOS1, 0);
    expect(() => o.makeRoom(1, 1, report([]))).toThrow(/outbox is full \(4 messages, 95 bytes\)/);
    expect(() => o.makeRoom(101, 1, report([]))).toThrow(/larger than the whole outbox/);
    expect(labels(o.clear())).toEqual(["q1", "q2", "q3", "q4"]);
    expect(o).toMatchObject({ count: 0, bytes: 0, records: 0, flying: 0 });
  });

  it("keeps store keys with the records, removes an entry with its message, and reports a removal that fails", () => {
    const saved = new Map<number, Uint8Array>();
    let failRemove = false;
    const store: OutboxStore = {
      load: () => [],
      save: (key, packet) => void saved.set(key, packet),
      remove: (key) => {
        if (failRemove) throw new Error("flash worn out");
        saved.delete(key);
      },
    };
    const o = new Outbox({ store });
    for (let id = 1; id <= 3; id++) {
      const p = bytes(4),
        key = o.nextKey++;
      store.save(key, p);
      o.append(p, undefined, id | QOS1, key);
    }
    expect([...saved.keys()]).toEqual([1, 2, 3]);
    const errors: string[] = [];
    o.remove(1, report(errors));
    expect([...saved.keys()]).toEqual([1, 3]);
    failRemove = true;
    o.remove(0, report(errors));
    expect(errors).toEqual(["STORE_FAILED"]);
    expect(o.keys![o.record(0) / ITEMS]).toBe(3);
  });
});
