// Dynamic registration on a fake clock with the test playing the platform: the DeviceSecret is stored before
// anything else, a stored one is never overwritten, and every failure is a clear, typed error.
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import type { PublishPacket } from "../../src/mqtt/codec";
import type { UiotError } from "../../src/uiot/errors";
import { CONFIG_KEYS, Identity } from "../../src/uiot/identity";
import { uiotClient } from "../../src/uiot/profile";
import { register, type RegisterOptions, type UnstoredRegistration } from "../../src/uiot/register";
import { FakeClock } from "../helpers/fake-clock";
import { ScriptedNetwork, type ScriptedConnection } from "../helpers/scripted-transport";
import { DSN, MemoryStore, PRODUCT_SECRET, PSN, SECRET, SYS, settle, text } from "./harness";

const dynamic = () => new Identity({ productSN: PSN, deviceSN: DSN, productSecret: PRODUCT_SECRET });

function start(options: Partial<RegisterOptions> = {}) {
  const clock = new FakeClock();
  const net = new ScriptedNetwork();
  const store = new MemoryStore();
  const logs: string[] = [];
  const outcome: { identity?: Identity; error?: UiotError } = {};
  const run = (o: Partial<RegisterOptions> = {}) =>
    register(dynamic(), {
      connect: net.connect,
      clock,
      random: () => 0.5,
      store,
      log: (m) => logs.push(m),
      ...options,
      ...o,
    }).then(
      (identity) => void (outcome.identity = identity),
      (error: UiotError) => void (outcome.error = error),
    );
  return { clock, net, store, logs, outcome, run };
}

/** Opens the connection, accepts it, grants the subscription: the device then asks for the password. */
function accept(c: ScriptedConnection): void {
  c.open();
  c.connack();
  const sub = c.of(8)[0];
  c.send({ type: 9, id: sub.id, granted: [1] });
}

function reply(c: ScriptedConnection, json: string): void {
  c.send({ type: 3, topic: `${SYS}password_reply`, payload: json, qos: 1, id: 77, retain: false, dup: false });
}

describe("dynamic registration", () => {
  it('connects with authmode 2 and the ProductSecret, subscribes password_reply (QoS 1), asks with {"RequestID":"1"}', async () => {
    const s = start();
    void s.run();
    const c = s.net.last;
    c.open();
    const [connect] = c.of(1);
    expect(connect).toMatchObject({ clientId: `${PSN}.${DSN}`, username: `${PSN}|${DSN}|2`, keepalive: 300 });
    expect(new TextDecoder().decode(connect.password as Uint8Array)).toBe(PRODUCT_SECRET);
    c.connack();
    expect(c.of(8)[0].subscriptions).toEqual([{ topic: `${SYS}password_reply`, qos: 1 }]);
    expect(c.of(3)).toHaveLength(0); // not before the subscription is granted
    c.send({ type: 9, id: c.of(8)[0].id, granted: [1] });
    const [req] = c.of(3) as PublishPacket[];
    expect([req.topic, text(req), req.qos]).toEqual([`${SYS}password`, '{"RequestID":"1"}', 1]);
  });

  it("stores the DeviceSecret before it disconnects, then the device connects with authmode 1 and that secret", async () => {
    const s = start();
    const c = () => s.net.last;
    let packetsAtStore = -1;
    const set = s.store.set.bind(s.store);
    s.store.set = (k, v) => {
      packetsAtStore = c().sent.length;
      expect(c().of(14)).toHaveLength(0); // no DISCONNECT yet
      set(k, v);
    };
    const done = s.run();
    accept(c());
    reply(c(), '{"RetCode":"0","RequestID":"1","Password":"zlc3d21u5k8fq0d2"}');
    await done;
    expect(s.store.map.get(CONFIG_KEYS.deviceSecret)).toBe(SECRET);
    expect(packetsAtStore).toBeGreaterThan(0);
    // After the store: DISCONNECT, then nothing else on that connection.
    expect(
      c()
        .sent.slice(packetsAtStore)
        .map((p) => p.type),
    ).toEqual([14]);
    expect(c().closed).toBe(true);
    const id = s.outcome.identity!;
    expect([id.authmode, id.username, id.revealSecret()]).toEqual([1, `${PSN}|${DSN}|1`, SECRET]);
    // Reconnect with authmode 1.
    const net2 = new ScriptedNetwork();
    uiotClient(id, { connect: net2.connect, clock: s.clock }).start();
    net2.last.open();
    const [again] = net2.last.of(1);
    expect(again.username).toBe(`${PSN}|${DSN}|1`);
    expect(new TextDecoder().decode(again.password as Uint8Array)).toBe(SECRET);
    expect(s.logs.join("\n")).not.toContain(SECRET);
    expect(s.logs.join("\n")).toContain("****d2");
  });

  it("deletes the ProductSecret from the store once the DeviceSecret is stored and read back, unless kept", async () => {
    const s = start();
    s.store.map.set(CONFIG_KEYS.productSecret, PRODUCT_SECRET);
    const order: string[] = [];
    const del = s.store.delete.bind(s.store);
    s.store.delete = (k) => {
      order.push(
        `delete ${k} (DeviceSecret ${s.store.map.get(CONFIG_KEYS.deviceSecret) === SECRET ? "stored" : "not stored"})`,
      );
      del(k);
    };
    const done = s.run();
    accept(s.net.last);
    reply(s.net.last, '{"RetCode":"0","RequestID":"1","Password":"zlc3d21u5k8fq0d2"}');
    await done;
    expect(order).toEqual([`delete ${CONFIG_KEYS.productSecret} (DeviceSecret stored)`]);
    expect([...s.store.map.keys()]).toEqual([CONFIG_KEYS.deviceSecret]);
    expect(s.logs.join("\n")).toMatch(/the ProductSecret was deleted from the config store \(uiot_psecret\)/);

    const k = start({ keepProductSecret: true });
    k.store.map.set(CONFIG_KEYS.productSecret, PRODUCT_SECRET);
    const kept = k.run();
    accept(k.net.last);
    reply(k.net.last, '{"RetCode":"0","RequestID":"1","Password":"zlc3d21u5k8fq0d2"}');
    await kept;
    expect(k.store.map.get(CONFIG_KEYS.productSecret)).toBe(PRODUCT_SECRET);
    expect(k.store.map.get(CONFIG_KEYS.deviceSecret)).toBe(SECRET);
  });

  it("a ProductSecret that cannot be deleted is a warning, not a failure: the device is registered", async () => {
    const s = start();
    s.store.map.set(CONFIG_KEYS.productSecret, PRODUCT_SECRET);
    s.store.delete = (k) => {
      throw new Error(`flash full while deleting ${k} (${PRODUCT_SECRET})`);
    };
    const done = s.run();
    accept(s.net.last);
    reply(s.net.last, '{"RetCode":"0","RequestID":"1","Password":"zlc3d21u5k8fq0d2"}');
    await done;
    expect(s.outcome.identity?.revealSecret()).toBe(SECRET);
    const log = s.logs.join("\n");
    expect(log).toMatch(
      /WARNING: the ProductSecret could not be deleted from the config store \(uiot_psecret\): flash full .*provision this device again to remove it/,
    );
    expect(log).not.toContain(PRODUCT_SECRET);
  });

  it("accepts RetCode as a number too", async () => {
    const s = start();
    const done = s.run();
    accept(s.net.last);
    reply(s.net.last, '{"RetCode":0,"RequestID":"1","Password":"zlc3d21u5k8fq0d2"}');
    await done;
    expect(s.outcome.identity?.revealSecret()).toBe(SECRET);
  });

  it("refuses to register when a DeviceSecret is stored, without connecting; overwrites only with replace: true", async () => {
    const s = start();
    s.store.map.set(CONFIG_KEYS.deviceSecret, "oldsecret0123456");
    await s.run();
    expect(s.outcome.error?.code).toBe("SECRET_EXISTS");
    expect(s.outcome.error?.message).toMatch(
      /already stored in uiot_dsecret: connect with it \(loadIdentity gives it\)/,
    );
    expect(s.net.connections).toHaveLength(0);
    expect(s.store.writes).toEqual([]);
    const done = s.run({ replace: true });
    accept(s.net.last);
    reply(s.net.last, '{"RetCode":"0","RequestID":"1","Password":"zlc3d21u5k8fq0d2"}');
    await done;
    expect(s.store.map.get(CONFIG_KEYS.deviceSecret)).toBe(SECRET);
  });

  it("a store that fails is a hard STORE_FAILED; the registered identity rides along, redacted everywhere", async () => {
    const s = start();
    s.store.failSet = true;
    const done = s.run();
    accept(s.net.last);
    reply(s.net.last, '{"RetCode":"0","RequestID":"1","Password":"zlc3d21u5k8fq0d2"}');
    await done;
    const e = s.outcome.error! as UnstoredRegistration;
    expect(e.code).toBe("STORE_FAILED");
    expect(e.message).toMatch(
      /succeeded but the DeviceSecret could not be stored: .*The platform will not hand it out again/,
    );
    expect(e.identity?.revealSecret()).toBe(SECRET);
    expect(Object.keys(e)).not.toContain("identity");
    const printed = [String(e), e.stack, inspect(e, { depth: 10 }), JSON.stringify(e), inspect(e.identity)].join("\n");
    expect(printed).not.toContain(SECRET);
    expect(s.net.last.closed).toBe(true);
  });

  it("waits 5 s for the reply, then fails with TIMEOUT and closes the connection", async () => {
    const s = start();
    const done = s.run();
    accept(s.net.last);
    s.clock.advance(4999);
    await settle();
    expect(s.outcome).toEqual({});
    s.clock.advance(1);
    await done;
    expect(s.outcome.error?.code).toBe("TIMEOUT");
    expect(s.outcome.error?.message).toMatch(/no password_reply within 5000 ms/);
    expect(s.net.last.closed).toBe(true);
    expect(s.store.writes).toEqual([]);
  });

  it("a non-zero RetCode (string or number) is REGISTRATION_FAILED with the code; nothing is stored", async () => {
    for (const rc of ['"1001"', "1001"]) {
      const s = start();
      const done = s.run();
      accept(s.net.last);
      reply(s.net.last, `{"RetCode":${rc},"RequestID":"1"}`);
      await done;
      expect(s.outcome.error?.code).toBe("REGISTRATION_FAILED");
      expect(s.outcome.error?.retCode).toBe(1001);
      expect(s.outcome.error?.message).toMatch(/refused by the platform \(RetCode 1001\)/);
      expect(s.store.writes).toEqual([]);
    }
  });

  it("a refused connection explains the usual causes, including that registration works once", async () => {
    const s = start();
    const done = s.run();
    s.net.last.open();
    s.net.last.connack(false, 4);
    await done;
    expect(s.outcome.error?.code).toBe("REGISTRATION_FAILED");
    expect(s.outcome.error?.message).toMatch(
      /refused the registration connection .*ProductSecret.*dynamic registration is switched on.*has not registered before \(registration works once/,
    );
    expect(s.outcome.error?.message).not.toContain(PRODUCT_SECRET);
  });

  it("an unreadable reply or one without a usable Password stores nothing", async () => {
    for (const [json, re] of [
      ["{not json", /password_reply: the 9-byte payload is not valid UTF-8 JSON/],
      ['{"RetCode":"0","RequestID":"1"}', /no usable Password: DeviceSecret is missing/],
      [
        '{"RetCode":"0","RequestID":"1","Password":"short"}',
        /no usable Password: DeviceSecret \*\*\*\* has 5 characters/,
      ],
    ] as const) {
      const s = start();
      const done = s.run();
      accept(s.net.last);
      reply(s.net.last, json);
      await done;
      expect(s.outcome.error?.message).toMatch(re);
      expect(s.store.writes).toEqual([]);
      expect(s.net.last.closed).toBe(true);
    }
  });

  it("ignores a reply to another RequestID", async () => {
    const s = start();
    const done = s.run();
    accept(s.net.last);
    reply(s.net.last, '{"RetCode":"0","RequestID":"2","Password":"abcdefghijklmnop"}');
    await settle();
    expect(s.outcome).toEqual({});
    reply(s.net.last, '{"RetCode":"0","RequestID":"1","Password":"zlc3d21u5k8fq0d2"}');
    await done;
    expect(s.store.map.get(CONFIG_KEYS.deviceSecret)).toBe(SECRET);
  });

  it("wants the ProductSecret identity", async () => {
    const s = start();
    const e = await register(new Identity({ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET }), {
      connect: s.net.connect,
      clock: s.clock,
      store: s.store,
    }).catch((x: UiotError) => x);
    expect((e as UiotError).code).toBe("INVALID_IDENTITY");
  });
});
