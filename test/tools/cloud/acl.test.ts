// The per-device topic ACL: the rules as a table, then the same rules over MQTT (SUBACK 0x80, closed connection).
import { describe, expect, it } from "vitest";
import { SYSTEM_TOPICS, topicDenied, type TopicOwner } from "../../../tools/cloud/acl";
import { UIOT_LIMITS } from "../../../tools/cloud";
import { DSN, login, PSN, testCloud } from "./helpers";

const dev: TopicOwner = { productSN: PSN, deviceSN: DSN, authmode: 1 };
const reg: TopicOwner = { ...dev, authmode: 2 };
const sys = (suffix: string) => `/$system/${PSN}/${DSN}/${suffix}`;
const may = (owner: TopicOwner, topic: string, direction: "publish" | "subscribe") =>
  topicDenied(owner, topic, direction, UIOT_LIMITS) === undefined;

describe("topic rules", () => {
  it("gives each system topic of the table its one direction", () => {
    const publishOnly = Object.entries(SYSTEM_TOPICS)
      .filter(([, d]) => d === "publish")
      .map(([s]) => s);
    expect(publishOnly.sort()).toEqual([
      "ota/upstream",
      "password",
      "shadow/get",
      "shadow/upstream",
      "tmodel/event/post",
      "tmodel/property/desired/delete",
      "tmodel/property/desired/get",
      "tmodel/property/post",
      "tmodel/property/restore",
      "tmodel/property/set_reply",
      "tmodel/template/get",
    ]);
    for (const [suffix, direction] of Object.entries(SYSTEM_TOPICS)) {
      const other = direction === "publish" ? "subscribe" : "publish";
      const owner = suffix.startsWith("password") ? reg : dev;
      expect(may(owner, sys(suffix), direction), `${direction} ${suffix}`).toBe(true);
      expect(topicDenied(owner, sys(suffix), other, UIOT_LIMITS), `${other} ${suffix}`).toBe(
        `the device may only ${direction} ${suffix}`,
      );
    }
    expect(may(dev, sys("tmodel/command_reply/432542341234"), "publish")).toBe(true);
    expect(may(dev, sys("tmodel/command_reply/432542341234"), "subscribe")).toBe(false);
    expect(may(dev, sys("tmodel/command_reply/a/b"), "publish")).toBe(false);
    expect(may(dev, sys("tmodel/command_reply/"), "publish")).toBe(false);
  });

  it("keeps shadow/document and tmodel/property/document for the rule engine", () => {
    for (const suffix of ["shadow/document", "tmodel/property/document"]) {
      for (const d of ["publish", "subscribe"] as const) {
        expect(topicDenied(dev, sys(suffix), d, UIOT_LIMITS)).toBe(`${suffix} is for the platform's rule engine only`);
      }
    }
  });

  it("refuses system topics outside the table, wildcards on them, and other devices' topics", () => {
    expect(may(dev, sys("shadow/nothing"), "publish")).toBe(false);
    expect(may(dev, sys("#"), "subscribe")).toBe(false);
    expect(may(dev, sys("tmodel/+"), "subscribe")).toBe(false);
    expect(may(dev, `/$system/${PSN}/other-device/shadow/get`, "publish")).toBe(false);
    expect(may(dev, `/$system/${PSN}/+/shadow/downstream`, "subscribe")).toBe(false);
    expect(may(dev, `/${PSN}/other-device/upload`, "publish")).toBe(false);
    expect(may(dev, `/${PSN}/+/set`, "subscribe")).toBe(false);
    expect(may(dev, `/otherproduct0000/${DSN}/set`, "subscribe")).toBe(false);
    expect(may(dev, "#", "subscribe")).toBe(false);
    expect(may(dev, "/#", "subscribe")).toBe(false);
    expect(may(dev, `/${PSN}/#`, "subscribe")).toBe(false);
    expect(may(dev, "$SYS/broker/uptime", "subscribe")).toBe(false);
    expect(topicDenied(dev, `/${PSN}/other-device/upload`, "publish", UIOT_LIMITS)).toBe(
      `not a topic of device ${PSN}/${DSN}`,
    );
  });

  it("gives custom topics both directions but upload (publish) and set (subscribe), with the level rules", () => {
    const own = (rest: string) => `/${PSN}/${DSN}/${rest}`;
    expect(may(dev, own("upload"), "publish")).toBe(true);
    expect(may(dev, own("upload"), "subscribe")).toBe(false);
    expect(may(dev, own("set"), "subscribe")).toBe(true);
    expect(may(dev, own("set"), "publish")).toBe(false);
    for (const d of ["publish", "subscribe"] as const) {
      expect(may(dev, own("data"), d)).toBe(true);
      expect(may(dev, own("a-b_c@d:e/2/3/4/5"), d)).toBe(true);
      expect(may(dev, own("1/2/3/4/5/6"), d)).toBe(false); // 6 custom levels (and 8 '/')
      expect(may(dev, own("a.b"), d)).toBe(false);
      expect(may(dev, own("a b"), d)).toBe(false);
      expect(may(dev, own(""), d)).toBe(false);
      expect(may(dev, own("a//b"), d)).toBe(false);
      expect(may(dev, own("x".repeat(64)), d)).toBe(true);
      expect(may(dev, own("x".repeat(65)), d)).toBe(false);
    }
    expect(may(dev, own("+"), "subscribe")).toBe(true);
    expect(may(dev, own("#"), "subscribe")).toBe(true);
    expect(may(dev, own("a/+/c"), "subscribe")).toBe(true);
    expect(may(dev, own("#/c"), "subscribe")).toBe(false);
    expect(may(dev, own("a+"), "subscribe")).toBe(false);
  });

  it("makes broadcast topics subscribe-only", () => {
    expect(may(dev, `/${PSN}/$broadcast/all`, "subscribe")).toBe(true);
    expect(may(dev, `/${PSN}/$broadcast/#`, "subscribe")).toBe(true);
    expect(topicDenied(dev, `/${PSN}/$broadcast/all`, "publish", UIOT_LIMITS)).toBe(
      "broadcast topics are subscribe-only",
    );
    expect(may(dev, `/otherproduct0000/$broadcast/all`, "subscribe")).toBe(false);
  });

  it("limits topics to 128 bytes and 7 '/'", () => {
    const base = `/${PSN}/${DSN}/`; // 32 bytes
    const at128 = base + "a".repeat(64) + "/" + "b".repeat(31);
    expect(Buffer.byteLength(at128)).toBe(128);
    expect(may(dev, at128, "publish")).toBe(true);
    expect(topicDenied(dev, at128 + "b", "publish", UIOT_LIMITS)).toBe("topic is 129 bytes, more than 128");
    expect(may(dev, base + "a/b/c/d/e", "publish")).toBe(true); // 7 '/'
    expect(topicDenied(dev, base + "a/b/c/d/e/f", "publish", UIOT_LIMITS)).toBe("topic has 8 '/', more than 7");
    expect(topicDenied(dev, base + "é".repeat(50), "publish", UIOT_LIMITS)).toBe("topic is 132 bytes, more than 128");
  });

  it("lets the registration connection use password and password_reply only, and nobody else", () => {
    expect(may(reg, sys("password"), "publish")).toBe(true);
    expect(may(reg, sys("password_reply"), "subscribe")).toBe(true);
    for (const t of [sys("shadow/get"), sys("tmodel/property/post"), `/${PSN}/${DSN}/upload`])
      expect(may(reg, t, "publish")).toBe(false);
    for (const t of [sys("shadow/downstream"), `/${PSN}/${DSN}/set`, `/${PSN}/$broadcast/all`])
      expect(may(reg, t, "subscribe")).toBe(false);
    expect(topicDenied(dev, sys("password"), "publish", UIOT_LIMITS)).toBe(
      "password belongs to the dynamic-registration (authmode 2) connection",
    );
    expect(may(dev, sys("password_reply"), "subscribe")).toBe(false);
  });
});

describe("topic ACL over MQTT", () => {
  it("grants the device's own filters and refuses the rest with SUBACK 0x80, in one SUBSCRIBE", async () => {
    const cloud = await testCloud();
    const denied: string[] = [];
    cloud.on("denied", (d) => denied.push(`${d.direction} ${d.topic}: ${d.reason}${d.closed ? " (closed)" : ""}`));
    const device = await login(cloud);
    const filters: Array<[string, number]> = [
      [sys("shadow/downstream"), 1],
      [sys("shadow/upstream"), 128],
      [sys("shadow/document"), 128],
      [sys("tmodel/command"), 1],
      [sys("tmodel/property/document"), 128],
      [`/${PSN}/${DSN}/set`, 1],
      [`/${PSN}/${DSN}/upload`, 128],
      [`/${PSN}/${DSN}/#`, 1],
      [`/${PSN}/$broadcast/+`, 1],
      [`/${PSN}/other-device/set`, 128],
      ["#", 128],
    ];
    expect(await device.subscribe(...filters.map(([f]) => f))).toEqual(filters.map(([, g]) => g));
    expect(denied).toContain(`subscribe ${sys("shadow/upstream")}: the device may only publish shadow/upstream`);
    expect(device.client.connected).toBe(true);
  });

  it("refuses QoS 2 subscriptions with 0x80 and grants QoS 0 and 1 as asked", async () => {
    const cloud = await testCloud();
    const device = await login(cloud);
    const granted = new Promise<number[]>((resolve) =>
      device.client.on("packetreceive", (p) => p.cmd === "suback" && resolve((p.granted as number[]).slice())),
    );
    device.client.subscribe(
      { [`/${PSN}/${DSN}/a`]: { qos: 0 }, [`/${PSN}/${DSN}/b`]: { qos: 1 }, [`/${PSN}/${DSN}/c`]: { qos: 2 } },
      () => {},
    );
    expect(await granted).toEqual([0, 1, 128]);
  });

  it("passes allowed publishes and closes the connection on a publish to a topic it may not use", async () => {
    const cloud = await testCloud();
    const device = await login(cloud);
    await device.publish(`/${PSN}/${DSN}/upload`, "{}");
    await device.publish(`/${PSN}/${DSN}/any/level`, "{}");
    await device.publish(sys("ota/upstream"), {
      Method: "report_version",
      Payload: { Module: "default", Version: "1.0" },
    });
    expect(cloud.log().map((m) => `${m.direction} ${m.topic}`)).toEqual([
      `in /${PSN}/${DSN}/upload`,
      `in /${PSN}/${DSN}/any/level`,
      `in ${sys("ota/upstream")}`,
    ]);

    const refused: Array<[string, object]> = [
      [`/${PSN}/other-device/upload`, {}],
      [`/${PSN}/$broadcast/all`, {}],
      [`/${PSN}/${DSN}/set`, {}],
      [sys("shadow/downstream"), {}],
      [sys("shadow/document"), {}],
      [sys("tmodel/property/document"), {}],
      [sys("password"), {}],
    ];
    await device.end();
    for (const [topic] of refused) {
      const d = await login(cloud);
      const offline = new Promise<string>((resolve) => cloud.once("offline", (e) => resolve(e.reason)));
      await d.publishClosed(topic, "{}");
      expect(await offline).toMatch(new RegExp(`^closed: publish to ${topic.replace(/[$/]/g, "\\$&")}: `));
    }
    expect(cloud.log().filter((m) => m.direction === "in")).toHaveLength(3); // nothing refused got through
  });
});
