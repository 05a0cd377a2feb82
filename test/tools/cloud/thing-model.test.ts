// The thing-model service over MQTT, with the spec's payloads byte for byte.
import { describe, expect, it } from "vitest";
import { type CommandEvent, UIOT_LIMITS } from "../../../tools/cloud";
import { DSN, login, NOW, PSN, PSECRET, SECRET, testCloud, type TestDevice } from "./helpers";

async function thingDevice(device: TestDevice, ...replies: string[]): Promise<TestDevice> {
  const filters = replies.map((r) => device.sys(r));
  expect(await device.subscribe(...filters)).toEqual(filters.map(() => 1));
  return device;
}

describe("thing model over MQTT", () => {
  it("acknowledges a property post with post_reply and keeps Value and Time (the receive time when Time is absent)", async () => {
    const cloud = await testCloud({ now: () => NOW });
    const device = await thingDevice(await login(cloud), "tmodel/property/post_reply");
    const post = { RequestID: "100", Property: { p1: { Value: "v1", Time: 1524448722000 }, temp: { Value: 21.5 } } };
    expect(await device.request("tmodel/property/post", post, "tmodel/property/post_reply")).toBe(
      '{"RequestID":"100","RetCode":0,"Message":"success"}',
    );
    expect(cloud.properties(PSN, DSN)).toEqual({
      p1: { Value: "v1", Time: 1524448722000 },
      temp: { Value: 21.5, Time: NOW },
    });
  });

  it("answers restore with LatestUpdateTime (when the last post arrived) and every property's Value and Time", async () => {
    let now = NOW;
    const cloud = await testCloud({ now: () => now });
    const device = await thingDevice(await login(cloud), "tmodel/property/post_reply", "tmodel/property/restore_reply");
    expect(await device.request("tmodel/property/restore", { RequestID: "99" }, "tmodel/property/restore_reply")).toBe(
      '{"RetCode":0,"RequestID":"99","LatestUpdateTime":0,"Property":{}}',
    );
    now = 1516541821599;
    await device.request(
      "tmodel/property/post",
      { RequestID: "1", Property: { p1: { Value: "v1", Time: 1516541885630 } } },
      "tmodel/property/post_reply",
    );
    now = NOW;
    expect(await device.request("tmodel/property/restore", { RequestID: "100" }, "tmodel/property/restore_reply")).toBe(
      '{"RetCode":0,"RequestID":"100","LatestUpdateTime":1516541821599,"Property":{"p1":{"Value":"v1","Time":1516541885630}}}',
    );
  });

  it("pushes a console property set with plain values (bool as 0/1) and resolves with the device's set_reply", async () => {
    const cloud = await testCloud();
    const device = await thingDevice(await login(cloud), "tmodel/property/set");
    const pushed = device.next(device.sys("tmodel/property/set"));
    const replied = cloud.setProperties(PSN, DSN, { p1: "v1", p2: "v2", on: true, list: [false, 2] });
    const payload = await pushed;
    expect(payload).toBe('{"RequestID":"1","Property":{"p1":"v1","p2":"v2","on":1,"list":[0,2]}}');
    await device.publish(device.sys("tmodel/property/set_reply"), {
      RequestID: JSON.parse(payload).RequestID,
      RetCode: 0,
    });
    expect(await replied).toEqual({ RequestID: "1", RetCode: 0 });
    expect(cloud.properties(PSN, DSN)).toEqual({}); // a set is not a report: the device posts what it applied
  });

  it("resolves a property set that gets no set_reply in time with undefined", async () => {
    const cloud = await testCloud({ limits: { commandTimeoutMs: 200 } });
    const device = await thingDevice(await login(cloud), "tmodel/property/set");
    expect(await cloud.setProperties(PSN, DSN, { p1: 1 })).toBeUndefined();
    // A reply of another device or kind, or a stray one, settles nothing.
    await device.publish(device.sys("tmodel/property/set_reply"), { RequestID: "1", RetCode: 0 });
  });

  it("serves desired get (all or Require) and delete with per-property versions", async () => {
    const cloud = await testCloud();
    const device = await thingDevice(
      await login(cloud),
      "tmodel/property/desired/get_reply",
      "tmodel/property/desired/delete_reply",
    );
    expect(cloud.setDesired(PSN, DSN, { p1: "x", p2: 5, on: true })).toEqual({
      p1: { Value: "x", Version: 1 },
      p2: { Value: 5, Version: 1 },
      on: { Value: 1, Version: 1 },
    });
    cloud.setDesired(PSN, DSN, { p1: "y" });
    const get = (msg: object) =>
      device.request("tmodel/property/desired/get", msg, "tmodel/property/desired/get_reply");
    const del = (msg: object) =>
      device.request("tmodel/property/desired/delete", msg, "tmodel/property/desired/delete_reply");
    expect(await get({ RequestID: "100", Require: ["p1", "nope"] })).toBe(
      '{"RetCode":0,"RequestID":"100","Desired":{"p1":{"Value":"y","Version":2}}}',
    );
    expect(await get({ RequestID: "101" })).toBe(
      '{"RetCode":0,"RequestID":"101","Desired":{"p1":{"Value":"y","Version":2},"p2":{"Value":5,"Version":1},"on":{"Value":1,"Version":1}}}',
    );
    // A stale Version (or none) has no effect; the reply is success either way.
    expect(await del({ RequestID: "102", Delete: { p1: { Version: 1 }, p2: {} } })).toBe(
      '{"RequestID":"102","RetCode":0,"Message":"success"}',
    );
    expect(Object.keys(cloud.desired(PSN, DSN))).toEqual(["p1", "p2", "on"]);
    expect(await del({ RequestID: "103", Delete: { p1: { Version: 2 }, p2: { Version: 1 } } })).toBe(
      '{"RequestID":"103","RetCode":0,"Message":"success"}',
    );
    expect(cloud.desired(PSN, DSN)).toEqual({ on: { Value: 1, Version: 1 } });
    // Set again after a delete: the version goes on, so an old delete cannot remove the new value.
    expect(cloud.setDesired(PSN, DSN, { p1: "z" }).p1).toEqual({ Value: "z", Version: 3 });
    expect(cloud.setDesired(PSN, DSN, { on: null })).toEqual({ p1: { Value: "z", Version: 3 } });
  });

  it("acknowledges an event post and keeps the event", async () => {
    const cloud = await testCloud({ now: () => NOW });
    const device = await thingDevice(await login(cloud), "tmodel/event/post_reply");
    const event = { RequestID: "100", Identifier: "high_temp", Output: { temperature: 80 }, Time: 1524448723000 };
    expect(await device.request("tmodel/event/post", event, "tmodel/event/post_reply")).toBe(
      '{"RequestID":"100","RetCode":0,"Message":"success"}',
    );
    await device.request("tmodel/event/post", { RequestID: "101", Identifier: "boot" }, "tmodel/event/post_reply");
    expect(cloud.thingEvents(PSN, DSN)).toEqual([
      { RequestID: "100", Identifier: "high_temp", Output: { temperature: 80 }, Time: 1524448723000 },
      { RequestID: "101", Identifier: "boot", Output: {}, Time: NOW },
    ]);
  });

  // biome-ignore lint/suspicious/noTemplateCurlyInString: the topic as the platform writes it
  it("sends a command and resolves with the reply from command_reply/${RequestID}", async () => {
    const cloud = await testCloud();
    const device = await thingDevice(await login(cloud), "tmodel/command");
    device.client.on("message", (topic, payload) => {
      if (topic !== device.sys("tmodel/command")) return;
      const cmd = JSON.parse(payload.toString());
      const reply = { RetCode: 0, RequestID: cmd.RequestID, Identifier: cmd.Identifier, Output: { o1: "v" } };
      device.client.publish(device.sys(`tmodel/command_reply/${cmd.RequestID}`), JSON.stringify(reply), { qos: 1 });
    });
    const events: CommandEvent[] = [];
    cloud.on("command", (e) => events.push(e));
    const pushed = device.next(device.sys("tmodel/command"));
    const reply = await cloud.sendCommand(PSN, DSN, "cmd", { input1: "v", enable: false });
    expect(await pushed).toBe('{"RequestID":"1","Identifier":"cmd","Input":{"input1":"v","enable":0}}');
    expect(reply).toEqual({ RetCode: 0, RequestID: "1", Identifier: "cmd", Output: { o1: "v" } });
    expect(events).toEqual([{ productSN: PSN, deviceSN: DSN, RequestID: "1", Identifier: "cmd", reply }]);
    expect(cloud.log().map((m) => `${m.direction} ${m.topic.split("/").slice(4).join("/")}`)).toEqual([
      "out tmodel/command",
      "in tmodel/command_reply/1",
    ]);
  });

  it('records RetCode 100040 "Command timeout" when no reply comes within 5 s, and ignores the late one', async () => {
    const cloud = await testCloud();
    const device = await thingDevice(await login(cloud), "tmodel/command");
    const started = performance.now();
    const pushed = device.next(device.sys("tmodel/command"));
    const result = cloud.sendCommand(PSN, DSN, "reboot");
    expect(await pushed).toBe('{"RequestID":"1","Identifier":"reboot","Input":{}}');
    const reply = await result;
    const waited = performance.now() - started;
    expect(reply).toEqual({ RequestID: "1", Identifier: "reboot", RetCode: 100040, Message: "Command timeout" });
    // It waited the platform's 5 s (a timer never fires early; how late it fires depends on the machine's load).
    expect(UIOT_LIMITS.commandTimeoutMs).toBe(5000);
    expect(waited).toBeGreaterThanOrEqual(4900);
    await device.publish(device.sys("tmodel/command_reply/1"), { RetCode: 0, RequestID: "1", Identifier: "reboot" });
    expect(cloud.log().at(-1)).toMatchObject({ direction: "in", topic: device.sys("tmodel/command_reply/1") });
  }, 15000);

  it("answers template get with the product's template", async () => {
    const template = { properties: [{ identifier: "temp", type: "float" }], events: [], commands: [] };
    const cloud = await testCloud({
      products: [{ productSN: PSN, productSecret: PSECRET, template }],
      devices: [{ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET }],
    });
    const device = await thingDevice(await login(cloud), "tmodel/template/get_reply");
    expect(await device.request("tmodel/template/get", { RequestID: "100" }, "tmodel/template/get_reply")).toBe(
      `{"RetCode":0,"RequestID":"100","Template":${JSON.stringify(template)}}`,
    );
  });

  it("answers malformed requests with RetCode 230 and what is wrong, keeping nothing", async () => {
    const cloud = await testCloud();
    const device = await thingDevice(
      await login(cloud),
      "tmodel/property/post_reply",
      "tmodel/event/post_reply",
      "tmodel/property/desired/get_reply",
    );
    const post = (msg: string | object) => device.request("tmodel/property/post", msg, "tmodel/property/post_reply");
    const bad = (id: string, message: string) => JSON.stringify({ RequestID: id, RetCode: 230, Message: message });
    expect(await post("{oops")).toBe(bad("", "the payload is not a JSON object"));
    expect(await post({ RequestID: 100, Property: { p1: { Value: 1 } } })).toBe(
      bad("100", "RequestID must be a string"),
    );
    expect(await post({ RequestID: "1" })).toBe(bad("1", 'Property must be an object of {"Value": ..., "Time": ms}'));
    expect(await post({ RequestID: "2", Property: { p1: 1 } })).toBe(
      bad("2", 'Property.p1 must be {"Value": ..., "Time": ms}'),
    );
    expect(await post({ RequestID: "3", Property: { ok: { Value: 1 }, on: { Value: true } } })).toBe(
      bad("3", "Property.on.Value is a JSON boolean: bool travels as 0/1"),
    );
    expect(await post({ RequestID: "4", Property: { "1st": { Value: 1 } } })).toBe(
      bad("4", '"1st" is not an identifier ([A-Za-z_][A-Za-z0-9_]{0,31})'),
    );
    expect(await post({ RequestID: "5", Property: { s: { Value: "x".repeat(2049) } } })).toBe(
      bad("5", "Property.s.Value is a string over 2048 bytes"),
    );
    expect(await post({ RequestID: "6", Property: { a: { Value: [] } } })).toBe(
      bad("6", "Property.a.Value is an array of 0 items: 1..128 allowed"),
    );
    expect(await post({ RequestID: "7", Property: { t: { Value: 1, Time: "now" } } })).toBe(
      bad("7", "Property.t.Time must be a UTC time in ms"),
    );
    expect(cloud.properties(PSN, DSN)).toEqual({});
    expect(await device.request("tmodel/event/post", { RequestID: "8", Output: {} }, "tmodel/event/post_reply")).toBe(
      bad("8", "Identifier must be a string"),
    );
    expect(
      await device.request(
        "tmodel/property/desired/get",
        { RequestID: "9", Require: "p1" },
        "tmodel/property/desired/get_reply",
      ),
    ).toBe(bad("9", "Require must be an array of property identifiers"));
    expect(cloud.thingEvents(PSN, DSN)).toEqual([]);
  });

  it("refuses console requests to an offline device at once, and values that are not thing-model values", async () => {
    const cloud = await testCloud();
    await expect(cloud.sendCommand(PSN, DSN, "cmd")).rejects.toThrow(`device ${PSN}/${DSN} is offline`);
    await expect(cloud.setProperties(PSN, DSN, { p1: 1 })).rejects.toThrow(`device ${PSN}/${DSN} is offline`);
    await expect(cloud.sendCommand(PSN, "nobody", "cmd")).rejects.toThrow(`unknown device ${PSN}/nobody`);
    await login(cloud);
    await expect(cloud.sendCommand(PSN, DSN, "bad-name")).rejects.toThrow("not a thing-model identifier");
    await expect(cloud.setProperties(PSN, DSN, { p: "x".repeat(3000) })).rejects.toThrow(
      "p is a string over 2048 bytes",
    );
    expect(() => cloud.setDesired(PSN, DSN, { p: [] })).toThrow("p is an array of 0 items");
  });
});
