// The UIoT profile on a real client: documented limits and the own-topic guard, refused locally (nothing is sent).
import { describe, expect, it } from "vitest";
import { MqttError } from "../../src/mqtt/errors";
import { Identity } from "../../src/uiot/identity";
import { uiotClient, uiotProfile } from "../../src/uiot/profile";
import { SYSTEM_TOPICS, TopicGuard } from "../../src/uiot/topics";
import { FakeClock } from "../helpers/fake-clock";
import { ScriptedNetwork } from "../helpers/scripted-transport";
import { DSN, PSN, SECRET, SYS, identity } from "./harness";

const guard = new TopicGuard(PSN, DSN);
const C = `/${PSN}/${DSN}/`;
const B = `/${PSN}/$broadcast/`;

/** The NOT_ALLOWED message for `topic`, or "ok". */
function verdict(topic: string, subscribe: boolean): string {
  try {
    guard.check(topic, subscribe);
    return "ok";
  } catch (e) {
    if (e instanceof MqttError && e.code === "NOT_ALLOWED") return e.message;
    throw e;
  }
}

describe("UIoT profile", () => {
  it("states the documented limits", () => {
    const p = uiotProfile(PSN, DSN);
    expect(p).toMatchObject({
      name: "UIoT Core",
      keepalive: [30, 1200],
      will: false,
      retain: false,
      maxSubscriptions: 100,
      publishRate: 30,
      publishWindow: 1250,
      maxPacketSize: 256 * 1024,
      kickHint: "is another device using this DeviceSN?",
    });
  });

  it("connects with ClientID, UserName, password, keepalive 300 by default and MQTT 3.1.1", () => {
    const net = new ScriptedNetwork();
    const client = uiotClient(identity(), { connect: net.connect, clock: new FakeClock() });
    client.start();
    net.last.open();
    const [c] = net.last.of(1);
    expect(c).toMatchObject({
      level: 4,
      clientId: `${PSN}.${DSN}`,
      username: `${PSN}|${DSN}|1`,
      keepalive: 300,
      clean: true,
    });
    expect(new TextDecoder().decode(c.password as Uint8Array)).toBe(SECRET);
    expect(c.will).toBeUndefined();
  });

  it("speaks MQTT 3.1 when asked, and nothing else", () => {
    const net = new ScriptedNetwork();
    uiotClient(identity(), { connect: net.connect, clock: new FakeClock(), level: 3 }).start();
    net.last.open();
    expect(net.last.of(1)[0].level).toBe(3);
    expect(() => uiotClient(identity(), { connect: net.connect, clock: new FakeClock(), level: 5 as 4 })).toThrow(
      /MQTT 3.1.1 \(level 4\) or 3.1 \(level 3\), not level 5/,
    );
  });

  it("refuses a keepalive outside 30..1200 s before connecting", () => {
    const make = (keepalive: number) => () =>
      uiotClient(identity(), { connect: new ScriptedNetwork().connect, clock: new FakeClock(), keepalive });
    expect(make(29)).toThrow(/UIoT Core requires a keepalive from 30 to 1200 s, not 29 s/);
    expect(make(1201)).toThrow(/not 1201 s/);
    expect(make(0)).toThrow(/not 0 s/);
    expect(make(30)).not.toThrow();
    expect(make(1200)).not.toThrow();
  });

  it("refuses retain, and QoS 2, locally", () => {
    const net = new ScriptedNetwork();
    const client = uiotClient(identity(), { connect: net.connect, clock: new FakeClock() });
    expect(() => client.publish(`${C}upload`, "x", { retain: true })).toThrow(/does not allow retained/);
    expect(() => client.publish(`${C}upload`, "x", { qos: 2 as 1 })).toThrow(MqttError);
  });

  it("refuses more than 100 subscriptions", () => {
    const client = uiotClient(identity(), { connect: new ScriptedNetwork().connect, clock: new FakeClock() });
    const filters = Array.from({ length: 100 }, (_, i) => `${C}t${i}`);
    client.subscribe(filters);
    expect(() => client.subscribe(`${C}one-more`)).toThrow(/at most 100 subscriptions/);
  });

  it("a topic outside the device's own space is refused locally with NOT_ALLOWED and never sent", () => {
    const net = new ScriptedNetwork();
    const client = uiotClient(identity(), { connect: net.connect, clock: new FakeClock() });
    client.start();
    net.last.open();
    net.last.connack();
    let err: unknown;
    try {
      client.publish(`/${PSN}/other-device/upload`, "x", { qos: 1 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MqttError);
    expect((err as MqttError).code).toBe("NOT_ALLOWED");
    expect((err as MqttError).message).toMatch(/is outside this device's topics: a device may use only/);
    expect(() => client.subscribe("#")).toThrow(/outside this device's topics/);
    expect(() => client.subscribe(`/${PSN}/+/set`)).toThrow(/outside this device's topics/);
    expect(net.last.of(3)).toHaveLength(0);
    expect(net.last.of(8)).toHaveLength(0);
  });
});

describe("own-topic guard", () => {
  it("allows the device's custom topics both ways, with wildcards only when subscribing", () => {
    expect(verdict(`${C}upload`, false)).toBe("ok");
    expect(verdict(`${C}set`, true)).toBe("ok");
    expect(verdict(`${C}a/b-c/d_e/f@g/h:i`, false)).toBe("ok");
    expect(verdict(`${C}a/+/c`, true)).toBe("ok");
    expect(verdict(`${C}#`, true)).toBe("ok");
    expect(verdict(`${C}a/+`, false)).toMatch(/wildcards are for subscribing only/);
    expect(verdict(`${C}${"x".repeat(64)}`, false)).toBe("ok");
  });

  it("knows upload is publish-only and set subscribe-only", () => {
    expect(verdict(`${C}upload`, true)).toMatch(
      /is for publishing \(device to cloud\): the device may not subscribe to it/,
    );
    expect(verdict(`${C}set`, false)).toMatch(
      /is for subscribing \(cloud to device\): the device may not publish to it/,
    );
    expect(verdict(`${C}setx`, false)).toBe("ok");
  });

  it("applies the custom topic level rules of the spec's table", () => {
    expect(verdict(`${C}a/b/c/d/e`, false)).toBe("ok");
    expect(verdict(`${C}a/b/c/d/e/f`, false)).toMatch(/has \d+ '\/'; at most 7|more than 5 levels/);
    expect(verdict(`${C}${"x".repeat(65)}`, false)).toMatch(/longer than 64 characters/);
    expect(verdict(`${C}a.b`, false)).toMatch(/letters, digits and - _ @ :/);
    expect(verdict(`${C}a b`, false)).toMatch(/may not contain/);
    expect(verdict(`${C}a$b`, false)).toMatch(/may not contain/);
    expect(verdict(`${C}a//b`, false)).toMatch(/empty topic level/);
    expect(verdict(`${C}a/`, false)).toMatch(/empty topic level/);
    expect(verdict(C, false)).toMatch(/names no topic level/);
    expect(verdict(`/${PSN}/${DSN}`, false)).toMatch(/outside this device's topics/);
  });

  it("limits topics to 128 bytes and 7 '/'", () => {
    const long = `${C}${"a".repeat(60)}/${"b".repeat(128 - C.length - 61)}`;
    expect(long.length).toBe(128);
    expect(verdict(long, false)).toBe("ok");
    expect(verdict(long + "c", false)).toMatch(/has 129 bytes; at most 128 are allowed/);
    expect(verdict(`${SYS}a/b/c/d/e`, false)).toMatch(/has 8 '\/'; at most 7 are allowed/);
  });

  it("broadcast topics are subscribe-only", () => {
    expect(verdict(`${B}news`, true)).toBe("ok");
    expect(verdict(`${B}#`, true)).toBe("ok");
    expect(verdict(`${B}news`, false)).toMatch(/broadcast topics .* are subscribe-only/);
    expect(verdict(`/other0123456789/$broadcast/news`, true)).toMatch(/outside this device's topics/);
  });

  it("follows the system topic table in both directions", () => {
    for (const [suffix, dir] of SYSTEM_TOPICS) {
      const pub = verdict(SYS + suffix, false),
        sub = verdict(SYS + suffix, true);
      if (dir === 0) {
        expect(pub, suffix).toMatch(/for the platform's rule engine only/);
        expect(sub, suffix).toMatch(/for the platform's rule engine only/);
      } else if (dir === 1) {
        expect(pub, suffix).toBe("ok");
        expect(sub, suffix).toMatch(/is publish-only for the device \(device to cloud\)/);
      } else {
        expect(sub, suffix).toBe("ok");
        expect(pub, suffix).toMatch(/is subscribe-only for the device \(cloud to device\)/);
      }
    }
    expect(SYSTEM_TOPICS.size).toBe(26);
  });

  it("refuses the document topics, wildcards on system topics, and other devices' system topics", () => {
    expect(verdict(`${SYS}shadow/document`, true)).toMatch(/shadow\/document is for the platform's rule engine only/);
    expect(verdict(`${SYS}tmodel/property/document`, false)).toMatch(/rule engine only/);
    expect(verdict(`${SYS}#`, true)).toMatch(/system topics take no wildcards/);
    expect(verdict(`${SYS}shadow/+`, true)).toMatch(/system topics take no wildcards/);
    expect(verdict(`/$system/${PSN}/other-dev/shadow/get`, false)).toMatch(/outside this device's topics/);
  });

  it("command replies go to exactly one RequestID level, publish only", () => {
    expect(verdict(`${SYS}tmodel/command_reply/432542341234`, false)).toBe("ok");
    expect(verdict(`${SYS}tmodel/command_reply/432542341234`, true)).toMatch(/publish-only/);
    expect(verdict(`${SYS}tmodel/command_reply/`, false)).toMatch(/exactly one RequestID level/);
  });

  it("leaves system topics it has no entry for to the platform", () => {
    expect(verdict(`${SYS}ntp/request`, false)).toBe("ok");
  });

  it("is the profile's checkTopic for other identities too", () => {
    const other = new Identity({ productSN: "AAAA", deviceSN: "dev:2@x", deviceSecret: SECRET });
    const p = uiotProfile(other.productSN, other.deviceSN);
    expect(() => p.checkTopic!("/AAAA/dev:2@x/upload", false)).not.toThrow();
    expect(() => p.checkTopic!(`${C}upload`, false)).toThrow(/outside this device's topics/);
  });
});
