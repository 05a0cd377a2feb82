// The same device layer against Mosquitto standing in for the platform: its password file holds the devices'
// UIoT credentials (`${PSN}|${DSN}|1` / DeviceSecret), its ACL gives each device only its own topics in the spec's
// directions, `max_keepalive` is the platform's 1200 s, and a small backend (MQTT.js, ./stand-in.ts) answers the
// system topics with the spec's JSON. Nothing here is the emulated cloud: the flows work on documented behaviour.
//
// Mosquitto's %u is the whole user name (`PSN|DSN|1`) and %c the ClientID (`PSN.DSN`); neither is the
// `/${PSN}/${DSN}` of the topics, so no `pattern` line can express "own topics". The ACL has a `user` section per
// device instead, as a provisioning script would write it.
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeClock } from "../../hosts/node/clock";
import { tcpConnector } from "../../hosts/node/tcp";
import { MqttError } from "../../src/mqtt/errors";
import { Identity } from "../../src/uiot/identity";
import { uiotClient } from "../../src/uiot/profile";
import { startMosquitto, type AclRule, type MosquittoBroker } from "../helpers/mosquitto";
import { waitFor, withTimeout } from "../helpers/wait";
import { device, online, PSN, THING_TOPICS } from "./rig";
import { StandInPlatform } from "./stand-in";

const DEVICES = [
  { deviceSN: "thermostat-01", secret: "devsecret0000001" },
  { deviceSN: "thermostat-02", secret: "devsecret0000002" },
  { deviceSN: "thermostat-03", secret: "devsecret0000003" },
];
const BACKEND = { username: "uiot-backend", password: "backendsecret001" };

/** The spec's table of system topics (docs/uiot-platform.md, "Topics"), as Mosquitto access: the device reads
 * (subscribes) or writes (publishes). `password*` belong to dynamic registration, which this stand-in has not. */
const SYSTEM: [string, "read" | "write"][] = [
  ["device/status", "read"],
  ["shadow/upstream", "write"],
  ["shadow/downstream", "read"],
  ["shadow/get", "write"],
  ["shadow/get_reply", "read"],
  ["tmodel/template/get", "write"],
  ["tmodel/template/get_reply", "read"],
  ["tmodel/property/post", "write"],
  ["tmodel/property/post_reply", "read"],
  ["tmodel/property/set", "read"],
  ["tmodel/property/set_reply", "write"],
  ["tmodel/property/restore", "write"],
  ["tmodel/property/restore_reply", "read"],
  ["tmodel/property/desired/get", "write"],
  ["tmodel/property/desired/get_reply", "read"],
  ["tmodel/property/desired/delete", "write"],
  ["tmodel/property/desired/delete_reply", "read"],
  ["tmodel/event/post", "write"],
  ["tmodel/event/post_reply", "read"],
  ["tmodel/command", "read"],
  ["tmodel/command_reply/+", "write"],
  ["ota/upstream", "write"],
  ["ota/downstream", "read"],
];

function deviceAcl(dsn: string): AclRule[] {
  return [
    { access: "write", topic: `/${PSN}/${dsn}/upload` },
    { access: "read", topic: `/${PSN}/${dsn}/set` },
    { access: "readwrite", topic: `/${PSN}/${dsn}/custom/#` },
    { access: "read", topic: `/${PSN}/$broadcast/#` },
    ...SYSTEM.map(([suffix, access]) => ({ access, topic: `/$system/${PSN}/${dsn}/${suffix}` })),
  ];
}

const identity = (i: number) =>
  new Identity({ productSN: PSN, deviceSN: DEVICES[i].deviceSN, deviceSecret: DEVICES[i].secret });
const sys = (i: number) => `/$system/${PSN}/${DEVICES[i].deviceSN}/`;

let broker: MosquittoBroker;
let platform: StandInPlatform;

beforeAll(async () => {
  const users: Record<string, string> = { [BACKEND.username]: BACKEND.password };
  const acl: Record<string, AclRule[]> = { [BACKEND.username]: [{ access: "readwrite", topic: "#" }] };
  for (const d of DEVICES) {
    users[`${PSN}|${d.deviceSN}|1`] = d.secret;
    acl[`${PSN}|${d.deviceSN}|1`] = deviceAcl(d.deviceSN);
  }
  broker = await startMosquitto({ users, acl: { users: acl }, maxKeepalive: 1200, stopAfterTest: false });
  platform = await StandInPlatform.start(broker.url, BACKEND.username, BACKEND.password);
});

afterAll(async () => {
  await platform?.close();
  await broker?.close();
});

describe("device layer against Mosquitto as a stand-in platform", () => {
  it("logs in with the password file's UIoT user name and gets every system subscription", async () => {
    const mark = broker.logMark();
    const d = await online(broker.port, { identity: identity(0) });
    await broker.waitForLog(
      new RegExp(
        `New client connected from 127\\.0\\.0\\.1:\\d+ as ${PSN}\\.thermostat-01 \\(p2, c1, k300, u'${PSN}\\|thermostat-01\\|1'\\)`,
      ),
      { since: mark },
    );
    expect([...d.client.session.subscriptions.keys()].sort()).toEqual(THING_TOPICS.map((t) => sys(0) + t).sort());
    expect(d.errors).toEqual([]);
    expect(d.disconnects).toEqual([]);
  });

  it("posts properties and events and gets the replies", async () => {
    const d = await online(broker.port, { identity: identity(0) });
    await d.thing.post({ temperature: 21.5, on: true });
    await d.thing.event("high_temp", { temperature: 80 });
    expect(platform.properties.get(`${PSN}/thermostat-01`)).toMatchObject({ temperature: 21.5, on: 1 });
    expect(d.errors).toEqual([]);
  });

  it("updates and gets the shadow, re-aligning once to a platform that is ahead", async () => {
    const d = await online(broker.port, { identity: identity(1) });
    platform.setShadow(PSN, "thermostat-02", { reported: { temperature: 19 }, desired: {}, version: 3 });
    expect(await d.thing.shadow.report({ temperature: 21 })).toBe(4); // sent with 0: 100026, re-aligned to 3, retried
    expect(await d.thing.shadow.get()).toMatchObject({ reported: { temperature: 21 }, desired: {}, version: 4 });
    expect(await d.thing.shadow.delete("temperature")).toBe(5);
    expect(platform.shadow(PSN, "thermostat-02")).toEqual({ reported: {}, desired: {}, version: 5 });
    const upstream = platform.received.filter((m) => m.topic === `${sys(1)}shadow/upstream`).map((m) => m.payload);
    expect(upstream).toEqual([
      '{"Method":"update","State":{"Reported":{"temperature":21}},"Version":0}',
      '{"Method":"update","State":{"Reported":{"temperature":21}},"Version":3}',
      '{"Method":"delete","State":{"Reported":{"temperature":null}},"Version":4}',
    ]);
    expect(d.errors).toEqual([]);
  });

  it("applies desired values pushed by the platform (control) and clears them", async () => {
    const d = await online(broker.port, { identity: identity(2) });
    const pushed: unknown[] = [];
    d.thing.shadow.onDesired((desired, { version }) => (pushed.push({ desired, version }), true));
    const v = platform.shadow(PSN, "thermostat-03").version;
    platform.pushDesired(PSN, "thermostat-03", { temperature: 17 });
    await waitFor(() => platform.shadow(PSN, "thermostat-03").version === v + 2, {
      message: "the device accepted the desired state",
    });
    expect(pushed).toEqual([{ desired: { temperature: 17 }, version: v + 1 }]);
    expect(platform.shadow(PSN, "thermostat-03")).toMatchObject({ reported: { temperature: 17 }, desired: {} });
    expect(d.errors).toEqual([]);
  });

  it("answers a command and a property set from the platform", async () => {
    const d = await online(broker.port, { identity: identity(0) });
    d.thing.onCommand("reboot", (input) => ({ output: { delay: input.delay as number, accepted: true } }));
    const sets: unknown[] = [];
    d.thing.onSet((properties) => void sets.push(properties));
    const reply = await platform.sendCommand(PSN, "thermostat-01", "reboot", { delay: 3 });
    expect(reply).toEqual({
      RetCode: 0,
      RequestID: reply.RequestID,
      Identifier: "reboot",
      Output: { delay: 3, accepted: 1 },
    });
    const set = await platform.setProperties(PSN, "thermostat-01", { on: 1, target: 22.5 });
    expect(set).toEqual({ RequestID: set?.RequestID, RetCode: 0 });
    expect(sets).toEqual([{ on: 1, target: 22.5 }]);
    expect(d.errors).toEqual([]);
  });

  it("refuses other devices' topics locally: Mosquitto would drop them without a word under MQTT 3.1.1", async () => {
    const d = await online(broker.port, { identity: identity(0) });
    const other = sys(1);
    for (const topic of [`${other}shadow/upstream`, `/${PSN}/thermostat-02/upload`, `${sys(0)}tmodel/command`]) {
      expect(() => d.client.publish(topic, '{"Method":"get"}', { qos: 1 }), topic).toThrow(
        expect.objectContaining({ code: "NOT_ALLOWED" }),
      );
    }
    for (const filter of [`${other}tmodel/command`, `/${PSN}/+/set`, `${sys(0)}shadow/upstream`]) {
      expect(() => d.client.subscribe(filter, 1), filter).toThrow(MqttError);
    }

    expect(d.client.state).toBe("connected");
    expect(d.disconnects).toEqual([]);
    d.close(); // its client id is about to be used by the client below

    // What the guard saves the device from: a client without it, logged in as thermostat-01, gets PUBACK for a
    // publish to thermostat-02's topics and a granted SUBSCRIBE to them, yet nothing moves either way.
    const raw = mqtt.connect(broker.url, {
      clientId: `${PSN}.thermostat-01`,
      username: `${PSN}|thermostat-01|1`,
      password: DEVICES[0].secret,
      protocolVersion: 4,
      keepalive: 300,
      reconnectPeriod: 0,
      connectTimeout: 10000,
    });
    try {
      await withTimeout(
        new Promise((resolve, reject) => raw.once("connect", resolve).once("error", reject)),
        15000,
        "CONNACK",
      );
      const snooped: string[] = [];
      raw.on("message", (topic) => snooped.push(topic));
      const granted = await raw.subscribeAsync(`${other}tmodel/command`, { qos: 1 });
      expect(granted.map((g) => g.qos)).toEqual([1]); // "granted", silently never delivered
      const before = platform.received.length;
      await raw.publishAsync(
        `${other}shadow/upstream`,
        '{"Method":"update","State":{"Reported":{"evil":1}},"Version":0}',
        { qos: 1 },
      ); // PUBACK
      await raw.publishAsync(`${sys(0)}shadow/get`, '{"Method":"get"}', { qos: 1 }); // an allowed one, as a barrier
      await waitFor(() => platform.received.length > before, { message: "the allowed message at the backend" });
      expect(platform.received.slice(before).map((m) => m.topic)).toEqual([`${sys(0)}shadow/get`]);
      // thermostat-02 gets a command (so it was delivered); the snooping subscription got nothing.
      const victim = await online(broker.port, { identity: identity(1) });
      victim.thing.onCommand("noop", () => ({}));
      expect(await platform.sendCommand(PSN, "thermostat-02", "noop", {})).toMatchObject({ RetCode: 0 });
      expect(snooped).toEqual([]);
      expect(platform.shadow(PSN, "thermostat-02").reported).not.toHaveProperty("evil");
    } finally {
      await raw.endAsync(true);
    }
  });

  it("refuses a keepalive outside 30..1200 s before connecting: nothing reaches Mosquitto", async () => {
    // Mosquitto has no minimum, and 2.0.11 lets a 3.1.1 client past max_keepalive (later releases answer CONNACK 2):
    // the device's own guard is what keeps it inside the platform's range.
    const mark = broker.logMark();
    let dials = 0;
    const tcp = tcpConnector({ host: "127.0.0.1", port: broker.port });
    const connect: typeof tcp = (h) => (dials++, tcp(h));
    for (const keepalive of [10, 29, 1201]) {
      expect(() => uiotClient(identity(0), { connect, clock: nodeClock, keepalive })).toThrow(
        `UIoT Core requires a keepalive from 30 to 1200 s, not ${keepalive} s`,
      );
    }
    expect(dials).toBe(0);
    await online(broker.port, { identity: identity(0), client: { keepalive: 1200 } });
    const line = await broker.waitForLog(/New client connected/, { since: mark });
    expect(line).toContain("k1200");
  });

  it("reports a wrong DeviceSecret as CONNECT_REFUSED (Mosquitto answers 5 under 3.1.1)", async () => {
    const d = await device(broker.port, {
      identity: new Identity({ productSN: PSN, deviceSN: "thermostat-01", deviceSecret: "wrongsecret00001" }),
    });
    await waitFor(() => d.disconnects.length > 0, { message: "the refusal" });
    expect(d.disconnects[0]).toMatchObject({ code: "CONNECT_REFUSED", returnCode: 5 });
    expect(d.disconnects[0].message).toMatch(/^connection refused \(code 5\): not authorized: .*check the password/);
    expect(d.disconnects[0].message).not.toContain("wrongsecret");
    expect(d.connects).toBe(0);
  });
});
