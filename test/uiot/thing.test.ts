// Thing-model flows on a fake clock, the test playing the platform: RequestID correlation, timeouts, the bounded
// pending table, handlers for property sets and commands (late ones too), local checks of the thing-model rules.
import { describe, expect, it } from "vitest";
import type { PublishPacket } from "../../src/mqtt/codec";
import { UiotError } from "../../src/uiot/errors";
import { Thing } from "../../src/uiot/thing";
import { DSN, PSN, rig, settle, SYS } from "./harness";

async function outcome<T>(p: Promise<T>): Promise<T | UiotError> {
  return p.catch((e: UiotError) => e);
}

const ok = (id: string) => `{"RequestID":"${id}","RetCode":0,"Message":"success"}`;

describe("requests and replies", () => {
  it("correlates replies by RequestID, in any order; stray replies are ignored", async () => {
    const r = rig();
    const a = r.thing.post({ a: 1 });
    const b = r.thing.event("alarm", {});
    const c = r.thing.post({ c: 3 });
    expect(r.sent().map((s) => JSON.parse(s.json).RequestID)).toEqual(["1", "2", "3"]);
    const done: string[] = [];
    void a.then(() => done.push("a"));
    void b.then(() => done.push("b"));
    void c.then(() => done.push("c"));
    r.push("tmodel/property/post_reply", ok("3"));
    r.push("tmodel/property/post_reply", ok("2")); // an event's id on the post topic: not this request
    r.push("tmodel/property/post_reply", ok("99"));
    await settle();
    expect(done).toEqual(["c"]);
    r.push("tmodel/event/post_reply", ok("2"));
    r.push("tmodel/property/post_reply", '{"RequestID":1,"RetCode":"0"}'); // numeric id and string RetCode accepted
    await settle();
    expect(done.sort()).toEqual(["a", "b", "c"]);
    expect(r.thing.busy.pending).toBe(0);
    expect(r.errors).toEqual([]);
  });

  it("a non-zero RetCode is REFUSED, with the platform's Message", async () => {
    const r = rig();
    const p = outcome(r.thing.post({ a: 1 }));
    r.push("tmodel/property/post_reply", '{"RequestID":"1","RetCode":160001,"Message":"property a not in template"}');
    const e = (await p) as UiotError;
    expect(e.code).toBe("REFUSED");
    expect(e.retCode).toBe(160001);
    expect(e.message).toMatch(
      /^property post refused by the platform \(RetCode 160001\).*\(platform says: property a not in template\)$/,
    );
  });

  it("each request has its own timeout (default 5 s)", async () => {
    const r = rig();
    const a = outcome(r.thing.post({ a: 1 }));
    const b = outcome(r.thing.restore({ timeout: 2000 }));
    r.clock.advance(1999);
    await settle();
    expect(r.thing.busy.pending).toBe(2);
    r.clock.advance(1);
    const eb = (await b) as UiotError;
    expect(eb.code).toBe("TIMEOUT");
    expect(eb.message).toBe("no property restore reply from the platform within 2000 ms (RequestID 2)");
    r.clock.advance(2999);
    await settle();
    expect(r.thing.busy.pending).toBe(1);
    r.clock.advance(1);
    expect(((await a) as UiotError).message).toBe(
      "no property post reply from the platform within 5000 ms (RequestID 1)",
    );
    // A reply after the timeout matches nothing.
    r.push("tmodel/property/post_reply", ok("1"));
    expect(r.errors).toEqual([]);
  });

  it("offline, a request waits in the outbox; its timeout says so; it is sent on reconnect", async () => {
    const r = rig();
    r.c.fail();
    const p = outcome(r.thing.post({ a: 1 }));
    r.clock.advance(5000);
    const e = (await p) as UiotError;
    expect(e.message).toMatch(
      /the client is (waiting|connecting): the request waits in the outbox and may still be sent, but its reply will be ignored/,
    );
    const q = r.thing.post({ b: 2 });
    r.net.last.open();
    r.net.last.connack();
    const sent = r.net.last.of(3) as PublishPacket[];
    expect(sent.map((s) => s.topic)).toEqual([`${SYS}tmodel/property/post`, `${SYS}tmodel/property/post`]);
    r.net.last.send({
      type: 3,
      topic: `${SYS}tmodel/property/post_reply`,
      payload: ok("2"),
      qos: 1,
      id: 9,
      retain: false,
      dup: false,
    });
    await expect(q).resolves.toBeUndefined();
  });

  it("bounds the pending table: BUSY at once, nothing sent", async () => {
    const r = rig({ maxPending: 2 });
    void r.thing.post({ a: 1 });
    void r.thing.post({ a: 2 });
    const e = (await outcome(r.thing.post({ a: 3 }))) as UiotError;
    expect(e.code).toBe("BUSY");
    expect(e.message).toMatch(/2 requests already await the platform's reply/);
    expect(r.sent()).toHaveLength(2);
  });

  it("a message the client cannot take fails the request with SEND_FAILED", async () => {
    const r = rig({}, { outbox: { maxMessages: 1 } });
    r.c.fail();
    void r.thing.post({ a: 1 });
    const e = (await outcome(r.thing.post({ a: 2 }))) as UiotError;
    expect(e.code).toBe("SEND_FAILED");
    expect(e.message).toMatch(/could not send to .*tmodel\/property\/post: OUTBOX_FULL/);
    expect(r.thing.busy.pending).toBe(1);
  });

  it("stop(): pending requests fail with CLOSED, the client's handler comes back, the topics are unsubscribed", async () => {
    const r = rig();
    const thingHandler = r.client.onMessage;
    const p = outcome(r.thing.post({ a: 1 }));
    r.thing.stop();
    expect(((await p) as UiotError).code).toBe("CLOSED");
    expect(r.client.onMessage).not.toBe(thingHandler);
    expect(r.c.of(10)[0].topics).toHaveLength(10);
    expect(((await outcome(r.thing.restore())) as UiotError).code).toBe("CLOSED");
    expect(() => r.thing.start()).toThrow(/stopped/);
    r.clock.advance(10000);
    expect(r.errors).toEqual([]);
  });

  it("messages on other topics still reach the application's own handler", async () => {
    const r = rig();
    r.thing.stop();
    const seen: string[] = [];
    r.client.onMessage = (t, p) => void seen.push(`${t} ${new TextDecoder().decode(p)}`);
    const errors: unknown[] = [];
    const t = new Thing(
      r.client,
      { productSN: PSN, deviceSN: DSN },
      { clock: r.clock, onError: (e) => errors.push(e) },
    );
    t.start();
    r.c.send({ type: 3, topic: `/${PSN}/${DSN}/set`, payload: "hello", qos: 0, retain: false, dup: false });
    r.push("ota/downstream", "{}", 0);
    r.push("device/status", "not JSON: not the thing's business", 0);
    expect(seen).toEqual([
      `/${PSN}/${DSN}/set hello`,
      `${SYS}ota/downstream {}`,
      `${SYS}device/status not JSON: not the thing's business`,
    ]);
    expect(errors).toEqual([]);
    r.push("shadow/downstream", "not JSON", 0);
    expect(errors).toHaveLength(1);
  });
});

describe("the thing-model rules, checked before sending", () => {
  const cases: [string, (r: ReturnType<typeof rig>) => Promise<unknown>, RegExp][] = [
    [
      "identifier starting with a digit",
      (r) => r.thing.post({ "1a": 1 }),
      /property "1a" is not a thing-model identifier/,
    ],
    ["identifier of 33 characters", (r) => r.thing.post({ ["a".repeat(33)]: 1 }), /not a thing-model identifier/],
    ["identifier with a dash", (r) => r.thing.post({ "a-b": 1 }), /not a thing-model identifier/],
    [
      "string over 2048 bytes",
      (r) => r.thing.post({ s: "é".repeat(1025) }),
      /property s: the string has 2050 bytes of UTF-8; the thing model allows at most 2048/,
    ],
    ["NaN", (r) => r.thing.post({ n: NaN }), /JSON has no NaN or Infinity/],
    ["null", (r) => r.thing.post({ n: null }), /null is not a thing-model value/],
    ["empty array", (r) => r.thing.post({ a: [] }), /an array has 1 to 128 items in the thing model, not 0/],
    ["129 items", (r) => r.thing.post({ a: Array(129).fill(1) }), /not 129/],
    [
      "struct key",
      (r) => r.thing.post({ s: { "bad key": 1 } }),
      /property s: key "bad key" is not a thing-model identifier/,
    ],
    ["no properties", (r) => r.thing.post({}), /give at least one property/],
    [
      "101 properties",
      (r) => r.thing.post(Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`p${i}`, i]))),
      /101 properties; a product has at most 100/,
    ],
    ["bad time", (r) => r.thing.post({ a: 1 }, { time: -1 }), /the time must be a date or an integer of ms/],
    ["event identifier", (r) => r.thing.event("high temp", {}), /event "high temp" is not a thing-model identifier/],
    [
      "21 event params",
      (r) => r.thing.event("e", Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`o${i}`, i]))),
      /event e output: 21 entries; at most 20 are allowed/,
    ],
    ["desired of nothing", (r) => r.thing.desired([]), /give 1 to 100 property identifiers/],
    ["desired identifier", (r) => r.thing.desired(["ok", "not ok"]), /not a thing-model identifier/],
    ["desired delete version", (r) => r.thing.deleteDesired({ p1: 1.5 }), /the version of p1 must be an integer/],
    ["a function", (r) => r.thing.post({ f: (() => 1) as never }), /a function cannot be sent/],
  ];
  for (const [name, call, re] of cases) {
    it(`refuses ${name} with INVALID_VALUE and sends nothing`, async () => {
      const r = rig();
      const e = (await outcome(call(r))) as UiotError;
      expect(e).toBeInstanceOf(UiotError);
      expect(e.code).toBe("INVALID_VALUE");
      expect(e.message).toMatch(re);
      expect(r.sent()).toHaveLength(0);
      expect(r.thing.busy.pending).toBe(0);
    });
  }

  it("accepts the largest legal values", async () => {
    const r = rig();
    void r.thing.post({
      s: "x".repeat(2048),
      a: Array(128).fill(true),
      st: { in_ner: { deep: [1] } },
      ["_" + "a".repeat(31)]: 0,
    });
    void r.thing.event("e", Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`o${i}`, i])));
    expect(r.sent()).toHaveLength(2);
    expect(r.sent()[0].json).toContain('"a":{"Value":[1,1,1');
    expect(r.sent()[0].json).toContain('"st":{"Value":{"in_ner":{"deep":[1]}}}');
  });
});

describe("property set from the platform", () => {
  it("answers with the handler's RetCode; an async handler's answer (and the PUBACK) wait for it", async () => {
    const r = rig();
    let finish!: (code: number) => void;
    r.thing.onSet(() => new Promise<number>((res) => (finish = res)));
    r.push("tmodel/property/set", '{"RequestID":"7","Property":{"p1":1}}');
    const acks = () => r.c.of(4).length;
    const before = acks();
    expect(r.sent()).toHaveLength(0);
    finish(3);
    await settle();
    expect(r.last("tmodel/property/set_reply")).toBe('{"RequestID":"7","RetCode":3}');
    expect(acks()).toBe(before + 1);
  });

  it("a handler returning nothing answers 0", async () => {
    const r = rig();
    r.thing.onSet(() => undefined);
    r.push("tmodel/property/set", '{"RequestID":"8","Property":{"on":1}}');
    expect(r.last("tmodel/property/set_reply")).toBe('{"RequestID":"8","RetCode":0}');
  });

  it("no handler, a throwing or rejecting handler, a non-integer RetCode, no Property: answered -1 and reported", async () => {
    const r = rig();
    r.push("tmodel/property/set", '{"RequestID":"1","Property":{"p":1}}');
    r.thing.onSet(() => {
      throw new Error("relay stuck");
    });
    r.push("tmodel/property/set", '{"RequestID":"2","Property":{"p":1}}');
    r.thing.onSet(() => Promise.reject(new Error("later")));
    r.push("tmodel/property/set", '{"RequestID":"3","Property":{"p":1}}');
    await settle();
    r.thing.onSet(() => "yes" as never);
    r.push("tmodel/property/set", '{"RequestID":"4","Property":{"p":1}}');
    r.push("tmodel/property/set", '{"RequestID":"5"}');
    expect(r.sent().map((s) => s.json)).toEqual(
      ["1", "2", "3", "4", "5"].map((id) => `{"RequestID":"${id}","RetCode":-1}`),
    );
    expect(r.errors.map((e) => e.code)).toEqual([
      "NO_HANDLER",
      "CALLBACK_ERROR",
      "CALLBACK_ERROR",
      "CALLBACK_ERROR",
      "BAD_PAYLOAD",
    ]);
    expect(r.errors[1].message).toMatch(
      /the onSet handler threw for property set 2: Error: relay stuck; answered RetCode -1/,
    );
  });

  it("garbage from the platform is reported, acknowledged and survived", async () => {
    const r = rig();
    r.thing.onSet(() => 0);
    const acks = r.c.of(4).length;
    r.push("tmodel/property/set", "not json at all");
    r.push("tmodel/property/set", "[1,2]");
    r.push("tmodel/property/set", '{"Property":{"p":1}}');
    r.c.send({
      type: 3,
      topic: `${SYS}tmodel/property/set`,
      payload: new Uint8Array([0x7b, 0xff, 0x7d]),
      qos: 1,
      id: 4242,
      retain: false,
      dup: false,
    });
    expect(r.errors.map((e) => [e.code, e.message])).toEqual([
      ["BAD_PAYLOAD", expect.stringMatching(/^tmodel\/property\/set: the 15-byte payload is not valid UTF-8 JSON/)],
      ["BAD_PAYLOAD", "tmodel/property/set: the payload is JSON but not an object"],
      ["BAD_PAYLOAD", "property set without a RequestID: not answered"],
      ["BAD_PAYLOAD", expect.stringMatching(/the 3-byte payload is not valid UTF-8 JSON/)],
    ]);
    expect(r.sent()).toHaveLength(0);
    expect(r.c.of(4).length).toBe(acks + 4);
    expect(r.client.state).toBe("connected");
  });
});

describe("commands", () => {
  it("an async handler within 5 s: answered, nothing reported", async () => {
    const r = rig();
    r.thing.onCommand("reboot", async () => ({ output: { delay: 3 } }));
    r.push("tmodel/command", '{"RequestID":"c1","Identifier":"reboot","Input":{}}');
    r.clock.advance(4000);
    await settle();
    expect(r.last("tmodel/command_reply/c1")).toBe(
      '{"RetCode":0,"RequestID":"c1","Identifier":"reboot","Output":{"delay":3}}',
    );
    r.clock.advance(2000);
    expect(r.errors).toEqual([]);
  });

  it("a late handler: COMMAND_LATE at the 5 s mark, naming the platform's timeout; the reply still follows", async () => {
    const r = rig();
    let answer!: (v: { retCode: number }) => void;
    r.thing.onCommand("calibrate", () => new Promise((res) => (answer = res)));
    r.push("tmodel/command", '{"RequestID":"432542341234","Identifier":"calibrate","Input":{"input1":"v"}}');
    r.clock.advance(4999);
    expect(r.errors).toEqual([]);
    r.clock.advance(1);
    expect(r.errors.map((e) => e.code)).toEqual(["COMMAND_LATE"]);
    expect(r.errors[0].message).toMatch(
      /command "calibrate" \(RequestID 432542341234\) was not answered within the platform's 5000 ms \(5000 ms so far\): the platform has already told the caller "Command timeout" \(RetCode 100040\)/,
    );
    r.clock.advance(1200);
    answer({ retCode: 0 });
    await settle();
    expect(r.last("tmodel/command_reply/432542341234")).toBe(
      '{"RetCode":0,"RequestID":"432542341234","Identifier":"calibrate","Output":{}}',
    );
    expect(r.errors).toHaveLength(1);
    expect(r.logs.join("\n")).toMatch(/command "calibrate" \(RequestID 432542341234\) answered after 6200 ms/);
    expect(r.thing.busy.commands).toBe(0);
  });

  it("a handler that never answers does not hold its slot after the 5 s report", async () => {
    const r = rig({ maxCommands: 1 });
    r.thing.onCommand("*", () => new Promise(() => {}));
    r.push("tmodel/command", '{"RequestID":"a","Identifier":"x","Input":{}}');
    r.push("tmodel/command", '{"RequestID":"b","Identifier":"x","Input":{}}');
    expect(r.errors.map((e) => e.code)).toEqual(["BUSY"]);
    expect(r.last("tmodel/command_reply/b")).toBe('{"RetCode":-1,"RequestID":"b","Identifier":"x","Output":{}}');
    r.clock.advance(5000);
    expect(r.thing.busy.commands).toBe(0);
    r.push("tmodel/command", '{"RequestID":"c","Identifier":"x","Input":{}}');
    expect(r.thing.busy.commands).toBe(1);
  });

  it('per-identifier handlers, with "*" for the rest; an unknown command is answered -1', async () => {
    const r = rig();
    r.thing.onCommand("a", () => ({ retCode: 0 }));
    r.push("tmodel/command", '{"RequestID":"1","Identifier":"b","Input":{}}');
    expect(r.last("tmodel/command_reply/1")).toBe('{"RetCode":-1,"RequestID":"1","Identifier":"b","Output":{}}');
    expect(r.errors.map((e) => e.code)).toEqual(["NO_HANDLER"]);
    r.thing.onCommand("*", (_input, _id, identifier) => ({ retCode: 7, output: { echo: identifier } }));
    r.push("tmodel/command", '{"RequestID":"2","Identifier":"b"}');
    expect(r.last("tmodel/command_reply/2")).toBe(
      '{"RetCode":7,"RequestID":"2","Identifier":"b","Output":{"echo":"b"}}',
    );
    r.push("tmodel/command", '{"RequestID":"3","Identifier":"a","Input":{}}');
    expect(r.last("tmodel/command_reply/3")).toBe('{"RetCode":0,"RequestID":"3","Identifier":"a","Output":{}}');
    expect(() => r.thing.onCommand("not valid", () => undefined)).toThrow(/not a thing-model identifier/);
  });

  it("a handler that throws, or gives output the thing model refuses, is answered -1 and reported", async () => {
    const r = rig();
    r.thing.onCommand("t", () => {
      throw new Error("no");
    });
    r.push("tmodel/command", '{"RequestID":"1","Identifier":"t","Input":{}}');
    r.thing.onCommand("t", () => ({ output: { "bad key": 1 } }));
    r.push("tmodel/command", '{"RequestID":"2","Identifier":"t","Input":{}}');
    expect(r.sent().map((s) => s.json)).toEqual([
      '{"RetCode":-1,"RequestID":"1","Identifier":"t","Output":{}}',
      '{"RetCode":-1,"RequestID":"2","Identifier":"t","Output":{}}',
    ]);
    expect(r.errors.map((e) => e.code)).toEqual(["CALLBACK_ERROR", "INVALID_VALUE"]);
  });

  it("a RequestID that cannot be a topic level is reported, not sent anywhere else", async () => {
    const r = rig();
    r.thing.onCommand("*", () => ({}));
    r.push("tmodel/command", '{"RequestID":"a/b","Identifier":"x","Input":{}}');
    expect(r.sent()).toHaveLength(0);
    expect(r.errors[0].code).toBe("SEND_FAILED");
    expect(r.errors[0].message).toMatch(
      /NOT_ALLOWED: UIoT Core: a command reply topic ends with exactly one RequestID level/,
    );
  });
});
