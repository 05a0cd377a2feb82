// Every payload of docs/uiot-platform.md, both ways: what the device sends is compared byte for byte with the
// spec's JSON (the spec's example RequestID "100" stands for the device's own counter); what the spec shows the
// platform sending is played to the device and must come out as the right values.
import { describe, expect, it } from "vitest";
import { rig, settle, SYS } from "./harness";

/** The spec's JSON with its example RequestID replaced by the one the device generated. */
const withId = (json: string, id: string) => json.replace('"RequestID":"100"', `"RequestID":"${id}"`);

describe("device shadow payloads", () => {
  it('get: {"Method":"get"} on shadow/get; the bare document on get_reply parses to its values', async () => {
    const r = rig();
    const p = r.thing.shadow.get();
    expect(r.sent().at(-1)).toMatchObject({ topic: "shadow/get", json: '{"Method":"get"}', qos: 1 });
    r.push(
      "shadow/get_reply",
      '{"State":{"Reported":{},"Desired":{}},"Metadata":{"Reported":{},"Desired":{}},"Timestamp":1562904212,"Version":0}',
    );
    expect(await p).toEqual({
      reported: {},
      desired: {},
      metadata: { reported: {}, desired: {} },
      timestamp: 1562904212,
      version: 0,
    });
    expect(r.thing.shadow.version).toBe(0);
  });

  it("update: the spec's update byte for byte; the success reply resolves with the new Version", async () => {
    const r = rig();
    const p = r.thing.shadow.report({ temperature: 26, humidity: 57 });
    expect(r.sent().at(-1)).toMatchObject({
      topic: "shadow/upstream",
      json: '{"Method":"update","State":{"Reported":{"temperature":26,"humidity":57}},"Version":0}',
      qos: 1,
    });
    r.push("shadow/downstream", '{"Method":"reply","Payload":{"RetCode":0},"Version":1,"Timestamp":1562909435}');
    expect(await p).toBe(1);
    expect(r.thing.shadow.version).toBe(1);
  });

  it('delete one and delete all, with the Version the device last saw ("Version", as the SDK sends)', async () => {
    const r = rig();
    const g = r.thing.shadow.get();
    r.push(
      "shadow/get_reply",
      '{"State":{"Reported":{"temperature":26},"Desired":{}},"Metadata":{"Reported":{},"Desired":{}},"Timestamp":1562904212,"Version":1}',
    );
    await g;
    const one = r.thing.shadow.delete("temperature");
    expect(r.last("shadow/upstream")).toBe('{"Method":"delete","State":{"Reported":{"temperature":null}},"Version":1}');
    r.push("shadow/downstream", '{"Method":"reply","Payload":{"RetCode":0},"Version":2,"Timestamp":1562909435}');
    expect(await one).toBe(2);
    const g2 = r.thing.shadow.get();
    r.push(
      "shadow/get_reply",
      '{"State":{"Reported":{},"Desired":{}},"Metadata":{"Reported":{},"Desired":{}},"Timestamp":1562904212,"Version":1}',
    );
    await g2;
    const all = r.thing.shadow.delete();
    expect(r.last("shadow/upstream")).toBe('{"Method":"delete","State":{"Reported":null},"Version":1}');
    r.push("shadow/downstream", '{"Method":"reply","Payload":{"RetCode":0},"Version":2,"Timestamp":1562909436}');
    expect(await all).toBe(2);
  });

  it('reset version: an update with "Version":-1; the platform answers version 0', async () => {
    const r = rig();
    const p = r.thing.shadow.resetVersion();
    expect(r.last("shadow/upstream")).toBe('{"Method":"update","State":{"Reported":{}},"Version":-1}');
    r.push("shadow/downstream", '{"Method":"reply","Payload":{"RetCode":0},"Version":0,"Timestamp":1562909435}');
    expect(await p).toBe(0);
    r.thing.shadow.resetVersion({ temperature: 20 });
    expect(r.last("shadow/upstream")).toBe('{"Method":"update","State":{"Reported":{"temperature":20}},"Version":-1}');
  });

  it("desired push: the spec's control message reaches the application; accepting clears Desired at its Version", async () => {
    const r = rig();
    const seen: unknown[] = [];
    r.thing.shadow.onDesired((desired, info) => {
      seen.push(desired, info);
      return true;
    });
    r.push(
      "shadow/downstream",
      '{"Method":"control","Payload":{"RetCode":0,"State":{"Desired":{"temperature":17}},"Metadata":{"Desired":{"temperature":{"Timestamp":1562917500}}}},"Version":2,"Timestamp":1562917504}',
    );
    expect(seen).toEqual([{ temperature: 17 }, { version: 2, timestamp: 1562917504 }]);
    expect(r.last("shadow/upstream")).toBe('{"Method":"update","State":{"Desired":null},"Version":2}');
  });

  it("desired push applied with another value: Reported with that value and Desired null", async () => {
    const r = rig();
    r.thing.shadow.onDesired(() => ({ k: 18 }));
    r.push(
      "shadow/downstream",
      '{"Method":"control","Payload":{"RetCode":0,"State":{"Desired":{"k":17}},"Metadata":{"Desired":{"k":{"Timestamp":1562917500}}}},"Version":7,"Timestamp":1562917504}',
    );
    expect(r.last("shadow/upstream")).toBe(
      '{"Method":"update","State":{"Reported":{"k":18},"Desired":null},"Version":7}',
    );
  });
});

describe("thing model payloads", () => {
  it("property post (with Time, ms) and its post_reply", async () => {
    const r = rig();
    const p = r.thing.post({ p1: "v1" }, { time: 1524448722000 });
    const s = r.sent().at(-1)!;
    expect(s.topic).toBe("tmodel/property/post");
    expect(s.qos).toBe(1);
    expect(s.json).toBe(withId('{"RequestID":"100","Property":{"p1":{"Value":"v1","Time":1524448722000}}}', "1"));
    r.push("tmodel/property/post_reply", withId('{"RequestID":"100","RetCode":0,"Message":"success"}', "1"));
    await expect(p).resolves.toBeUndefined();
  });

  it("property post without a time has no Time; bool travels as 0/1 and a date as ms", async () => {
    const r = rig();
    void r.thing.post({ on: true, off: false, at: new Date(1524448722000), n: 1.5 });
    expect(r.last("tmodel/property/post")).toBe(
      '{"RequestID":"1","Property":{"on":{"Value":1},"off":{"Value":0},"at":{"Value":1524448722000},"n":{"Value":1.5}}}',
    );
  });

  it("property set from the platform (plain values) and the device's set_reply", async () => {
    const r = rig();
    let got: unknown;
    r.thing.onSet((props, id) => {
      got = [props, id];
      return 0;
    });
    r.push("tmodel/property/set", '{"RequestID":"100","Property":{"p1":"v1","p2":"v2"}}');
    expect(got).toEqual([{ p1: "v1", p2: "v2" }, "100"]);
    expect(r.last("tmodel/property/set_reply")).toBe('{"RequestID":"100","RetCode":0}');
  });

  it('restore: {"RequestID":...}; the reply parses to the last values and times', async () => {
    const r = rig();
    const p = r.thing.restore();
    expect(r.last("tmodel/property/restore")).toBe(withId('{"RequestID":"100"}', "1"));
    r.push(
      "tmodel/property/restore_reply",
      withId(
        '{"RetCode":0,"RequestID":"100","LatestUpdateTime":1516541821599,"Property":{"p1":{"Value":"v1","Time":1516541885630}}}',
        "1",
      ),
    );
    expect(await p).toEqual({
      latestUpdateTime: 1516541821599,
      properties: { p1: { value: "v1", time: 1516541885630 } },
    });
  });

  it("desired get: Require list; the reply parses to value and version", async () => {
    const r = rig();
    const p = r.thing.desired(["p1", "p2"]);
    expect(r.last("tmodel/property/desired/get")).toBe(withId('{"RequestID":"100","Require":["p1","p2"]}', "1"));
    r.push(
      "tmodel/property/desired/get_reply",
      withId('{"RetCode":0,"RequestID":"100","Desired":{"p1":{"Value":"x","Version":1}}}', "1"),
    );
    expect(await p).toEqual({ p1: { value: "x", version: 1 } });
  });

  it("desired delete: Delete with each Version; the reply like a post reply", async () => {
    const r = rig();
    const p = r.thing.deleteDesired({ p1: 1 });
    expect(r.last("tmodel/property/desired/delete")).toBe(
      withId('{"RequestID":"100","Delete":{"p1":{"Version":1}}}', "1"),
    );
    r.push("tmodel/property/desired/delete_reply", withId('{"RequestID":"100","RetCode":0,"Message":"success"}', "1"));
    await expect(p).resolves.toBeUndefined();
  });

  it("event post (one event per message, Time in ms) and its reply", async () => {
    const r = rig();
    const p = r.thing.event("high_temp", { temperature: 80 }, { time: 1524448723000 });
    expect(r.last("tmodel/event/post")).toBe(
      withId('{"RequestID":"100","Identifier":"high_temp","Output":{"temperature":80},"Time":1524448723000}', "1"),
    );
    r.push("tmodel/event/post_reply", withId('{"RequestID":"100","RetCode":0,"Message":"success"}', "1"));
    await expect(p).resolves.toBeUndefined();
  });

  // biome-ignore lint/suspicious/noTemplateCurlyInString: the topic as the platform writes it
  it("command: the spec's request reaches the handler; the reply goes to command_reply/${RequestID} byte for byte", async () => {
    const r = rig();
    let got: unknown;
    r.thing.onCommand("cmd", (input, id, identifier) => {
      got = [input, id, identifier];
      return { retCode: 0, output: { o1: "v" } };
    });
    r.push("tmodel/command", '{"RequestID":"432542341234","Identifier":"cmd","Input":{"input1":"v"}}');
    expect(got).toEqual([{ input1: "v" }, "432542341234", "cmd"]);
    const s = r.sent().at(-1)!;
    expect(s.topic).toBe("tmodel/command_reply/432542341234");
    expect(s.qos).toBe(1);
    expect(s.json).toBe('{"RetCode":0,"RequestID":"432542341234","Identifier":"cmd","Output":{"o1":"v"}}');
  });

  it("template get and its reply", async () => {
    const r = rig();
    const p = r.thing.template();
    expect(r.last("tmodel/template/get")).toBe(withId('{"RequestID":"100"}', "1"));
    r.push("tmodel/template/get_reply", withId('{"RetCode":0,"RequestID":"100","Template":{"properties":[]}}', "1"));
    expect(await p).toEqual({ properties: [] });
  });
});

describe("subscriptions and QoS", () => {
  it("subscribes every system topic the layer reads with QoS 1, in one SUBSCRIBE", async () => {
    const r = rig();
    const subs = r.c.of(8);
    expect(subs).toHaveLength(1);
    expect(subs[0].subscriptions.map((s) => [s.topic.slice(SYS.length), s.qos])).toEqual([
      ["shadow/downstream", 1],
      ["shadow/get_reply", 1],
      ["tmodel/property/post_reply", 1],
      ["tmodel/property/set", 1],
      ["tmodel/property/restore_reply", 1],
      ["tmodel/property/desired/get_reply", 1],
      ["tmodel/property/desired/delete_reply", 1],
      ["tmodel/event/post_reply", 1],
      ["tmodel/command", 1],
      ["tmodel/template/get_reply", 1],
    ]);
    await settle();
  });

  it("only the shadow topics, or only the thing-model topics, when asked", () => {
    expect(
      rig({ thingModel: false })
        .c.of(8)[0]
        .subscriptions.map((s) => s.topic.slice(SYS.length)),
    ).toEqual(["shadow/downstream", "shadow/get_reply"]);
    expect(rig({ shadow: false }).c.of(8)[0].subscriptions).toHaveLength(8);
  });
});

describe("nesting: what the platform sends is checked before it is parsed", () => {
  const nested = (levels: number, inner = "1") => '{"a":'.repeat(levels) + inner + "}".repeat(levels);
  const TOPICS = [
    "shadow/downstream",
    "shadow/get_reply",
    "tmodel/property/post_reply",
    "tmodel/event/post_reply",
    "tmodel/property/restore_reply",
    "tmodel/property/desired/get_reply",
    "tmodel/property/desired/delete_reply",
    "tmodel/template/get_reply",
    "tmodel/property/set",
    "tmodel/command",
  ];

  it("refuses a payload nested 5,000 levels deep on every system topic it reads, with BAD_PAYLOAD, and goes on working", async () => {
    const r = rig();
    let sets = 0;
    r.thing.onSet(() => void sets++);
    for (const t of TOPICS) r.push(t, nested(5000));
    await settle();
    const refused = r.errors.filter((e) => e.code === "BAD_PAYLOAD");
    expect(refused).toHaveLength(TOPICS.length);
    for (const e of refused) {
      expect(e.message).toMatch(/nests objects and arrays deeper than 16 levels: not parsed/);
      expect(e.message).not.toContain('{"a"');
    }
    r.push("tmodel/property/set", '{"RequestID":"7","Property":{"p1":1}}');
    expect(sets).toBe(1);
    expect(r.last("tmodel/property/set_reply")).toBe('{"RequestID":"7","RetCode":0}');
  });

  it("survives a huge flat payload (24 KB, 4,000 members) on every system topic: each is answered or refused, and it goes on working", async () => {
    const r = rig();
    let sets = 0;
    r.thing.onSet(() => void sets++);
    const members = Array.from({ length: 4000 }, (_, i) => `"k${i}":${i}`).join(",");
    for (const t of TOPICS)
      r.push(
        t,
        `{"RequestID":"1","Method":"x","Property":{${members}},"Params":{${members}},"State":{"Desired":{${members}}},"Version":1}`,
      );
    await settle();
    for (const e of r.errors) expect(e.message.length).toBeLessThan(400);
    r.push("tmodel/property/set", '{"RequestID":"7","Property":{"p1":1}}');
    expect(sets).toBeGreaterThanOrEqual(1);
    expect(r.last("tmodel/property/set_reply")).toBe('{"RequestID":"7","RetCode":0}');
  });

  it("takes 16 levels (a thing-model struct nested 8 deep in its envelope) and brackets inside strings", () => {
    const r = rig();
    const got: unknown[] = [];
    r.thing.onSet((props) => void got.push(props));
    // {"RequestID", "Property": {"p": <14 levels>}} is 16 levels in all
    r.push("tmodel/property/set", `{"RequestID":"8","Property":{"p":${nested(14)}}}`);
    r.push("tmodel/property/set", `{"RequestID":"9","Property":{"p":"${"[{".repeat(100)}\\"[{"}}`);
    expect(got).toHaveLength(2);
    expect(JSON.stringify(got[0]).split("{").length - 1).toBe(15);
    expect((got[1] as { p: string }).p).toBe(`${"[{".repeat(100)}"[{`);
    r.push("tmodel/property/set", `{"RequestID":"10","Property":{"p":${nested(15)}}}`);
    expect(got).toHaveLength(2);
    expect(r.errors.at(-1)?.code).toBe("BAD_PAYLOAD");
  });
});
