// Device shadow flows on a fake clock, the test playing the platform: one request in flight, version conflicts
// re-aligned and retried once, int32 wrap-around, timeouts, return codes, desired pushes.
import { describe, expect, it } from "vitest";
import { UiotError } from "../../src/uiot/errors";
import { newerVersion } from "../../src/uiot/shadow";
import { rig, settle } from "./harness";

const reply = (version: number, code = 0) =>
  `{"Method":"reply","Payload":{"RetCode":${code}},"Version":${version},"Timestamp":1562909435}`;
const conflict = (version: number, desired = "{}") =>
  `{"Method":"control","Payload":{"RetCode":100026,"State":{"Reported":{"temperature":20},"Desired":${desired}},"Metadata":{"Reported":{},"Desired":{}}},"Version":${version},"Timestamp":1562917504}`;
const push = (version: number, desired: string) =>
  `{"Method":"control","Payload":{"RetCode":0,"State":{"Desired":${desired}},"Metadata":{"Desired":{}}},"Version":${version},"Timestamp":1562917504}`;

async function outcome<T>(p: Promise<T>): Promise<T | UiotError> {
  return p.catch((e: UiotError) => e);
}

describe("one shadow request at a time", () => {
  it("holds the others in order until the one in flight is answered", async () => {
    const r = rig();
    const a = r.thing.shadow.report({ a: 1 });
    const b = r.thing.shadow.report({ b: 2 });
    const g = r.thing.shadow.get();
    const ups = () => r.sent().filter((p) => p.topic.startsWith("shadow/"));
    expect(ups().map((p) => p.json)).toEqual(['{"Method":"update","State":{"Reported":{"a":1}},"Version":0}']);
    expect(r.thing.shadow.queued).toBe(2);
    r.push("shadow/downstream", reply(1));
    expect(await a).toBe(1);
    expect(
      ups()
        .map((p) => p.json)
        .at(-1),
    ).toBe('{"Method":"update","State":{"Reported":{"b":2}},"Version":1}');
    r.push("shadow/downstream", reply(2));
    expect(await b).toBe(2);
    expect(ups().at(-1)).toMatchObject({ topic: "shadow/get", json: '{"Method":"get"}' });
    r.push(
      "shadow/get_reply",
      '{"State":{"Reported":{"a":1,"b":2},"Desired":{}},"Metadata":{"Reported":{},"Desired":{}},"Timestamp":1,"Version":2}',
    );
    expect((await g).reported).toEqual({ a: 1, b: 2 });
  });

  it("bounds the queue: beyond it, BUSY at once and nothing sent", async () => {
    const r = rig({ shadowQueue: 2 });
    void r.thing.shadow.report({ a: 1 });
    void r.thing.shadow.report({ a: 2 });
    void r.thing.shadow.report({ a: 3 });
    const e = await outcome(r.thing.shadow.report({ a: 4 }));
    expect(e).toBeInstanceOf(UiotError);
    expect((e as UiotError).code).toBe("BUSY");
    expect((e as UiotError).message).toMatch(/2 shadow requests already wait behind the one in flight/);
    expect(r.sent()).toHaveLength(1);
  });

  it("sends what waits from a loop, not by recursion: 300 queued requests whose publish fails at once settle at one depth", async () => {
    const r = rig({ shadowQueue: 300 });
    const all = Array.from({ length: 301 }, (_, i) => outcome(r.thing.shadow.report({ a: i })));
    const depths: number[] = [];
    // V8 shows the whole stack with a larger limit; XS (whose Error is frozen) shows it whole anyway
    const E = Error as { stackTraceLimit?: number };
    const limit = E.stackTraceLimit,
      settable = Object.isExtensible(Error) && typeof limit === "number";
    if (settable) E.stackTraceLimit = 10000;
    r.client.publish = () => {
      depths.push((new Error().stack ?? "").split("\n").length);
      throw new Error("refused at once");
    };
    try {
      r.clock.advance(5000); // the request in flight times out; each next one fails as it is sent
    } finally {
      if (settable) E.stackTraceLimit = limit;
    }
    const results = await Promise.all(all);
    expect(results.filter((e) => e instanceof UiotError && e.code === "TIMEOUT")).toHaveLength(1);
    expect(results.filter((e) => e instanceof UiotError && e.code !== "TIMEOUT")).toHaveLength(300);
    expect(depths).toHaveLength(300);
    expect(Math.max(...depths)).toBe(Math.min(...depths));
  });

  it("times out with a clear error, then sends the next request", async () => {
    const r = rig();
    const a = outcome(r.thing.shadow.report({ a: 1 }));
    const b = r.thing.shadow.report({ b: 1 }, { timeout: 1000 });
    r.clock.advance(4999);
    expect(r.sent()).toHaveLength(1);
    r.clock.advance(1);
    const e = (await a) as UiotError;
    expect(e.code).toBe("TIMEOUT");
    expect(e.message).toMatch(
      /no answer to the shadow update within 5000 ms: is the shadow enabled, and the device connected\?/,
    );
    expect(r.last("shadow/upstream")).toBe('{"Method":"update","State":{"Reported":{"b":1}},"Version":0}');
    r.clock.advance(1000);
    expect(((await outcome(b)) as UiotError).code).toBe("TIMEOUT");
  });
});

describe("versions", () => {
  it("100026: re-aligns to the platform's version and retries once, then resolves", async () => {
    const r = rig();
    const p = r.thing.shadow.report({ temperature: 21 });
    expect(r.last("shadow/upstream")).toBe('{"Method":"update","State":{"Reported":{"temperature":21}},"Version":0}');
    r.push("shadow/downstream", conflict(5));
    expect(r.thing.shadow.version).toBe(5);
    expect(r.last("shadow/upstream")).toBe('{"Method":"update","State":{"Reported":{"temperature":21}},"Version":5}');
    r.push("shadow/downstream", reply(6));
    expect(await p).toBe(6);
    expect(r.sent().filter((s) => s.topic === "shadow/upstream")).toHaveLength(2);
    expect(r.logs.join("\n")).toMatch(/version conflict, re-aligned to the platform's version 5 and retrying once/);
  });

  it("a second conflict is VERSION_CONFLICT (RetCode 100026) and the queue moves on", async () => {
    const r = rig();
    const p = outcome(r.thing.shadow.delete("temperature"));
    const next = r.thing.shadow.get();
    r.push("shadow/downstream", conflict(5));
    expect(r.last("shadow/upstream")).toBe('{"Method":"delete","State":{"Reported":{"temperature":null}},"Version":5}');
    r.push("shadow/downstream", conflict(6));
    const e = (await p) as UiotError;
    expect(e.code).toBe("VERSION_CONFLICT");
    expect(e.retCode).toBe(100026);
    expect(e.message).toMatch(
      /changed on the platform again while retrying \(now version 6\): get the shadow and decide again/,
    );
    expect(r.sent().filter((s) => s.topic === "shadow/upstream")).toHaveLength(2);
    expect(r.sent().at(-1)!.topic).toBe("shadow/get");
    r.push(
      "shadow/get_reply",
      '{"State":{"Reported":{},"Desired":{}},"Metadata":{"Reported":{},"Desired":{}},"Timestamp":1,"Version":6}',
    );
    expect((await next).version).toBe(6);
  });

  it("desired values that come with a conflict answer reach the application", async () => {
    const r = rig();
    const seen: unknown[] = [];
    r.thing.shadow.onDesired((d, info) => void seen.push(d, info.version));
    void r.thing.shadow.report({ temperature: 21 });
    r.push("shadow/downstream", conflict(5, '{"temperature":17}'));
    expect(seen).toEqual([{ temperature: 17 }, 5]);
  });

  it("follows the int32 version across the wrap-around, and a stale push does not move it back", async () => {
    const r = rig();
    const g = r.thing.shadow.get();
    r.push(
      "shadow/get_reply",
      '{"State":{"Reported":{},"Desired":{}},"Metadata":{"Reported":{},"Desired":{}},"Timestamp":1,"Version":2147483647}',
    );
    await g;
    const a = r.thing.shadow.report({ n: 1 });
    expect(r.last("shadow/upstream")).toBe('{"Method":"update","State":{"Reported":{"n":1}},"Version":2147483647}');
    r.push("shadow/downstream", reply(-2147483648));
    expect(await a).toBe(-2147483648);
    r.thing.shadow.onDesired(() => undefined);
    r.push("shadow/downstream", push(2147483647, '{"n":0}')); // older than -2147483648 in int32 order
    expect(r.thing.shadow.version).toBe(-2147483648);
    r.push("shadow/downstream", push(-2147483647, '{"n":2}'));
    expect(r.thing.shadow.version).toBe(-2147483647);
    void r.thing.shadow.report({ n: 2 });
    expect(r.last("shadow/upstream")).toBe('{"Method":"update","State":{"Reported":{"n":2}},"Version":-2147483647}');
  });

  it("compares versions as int32 serial numbers", () => {
    expect(newerVersion(1, 0)).toBe(true);
    expect(newerVersion(0, 1)).toBe(false);
    expect(newerVersion(5, 5)).toBe(false);
    expect(newerVersion(-2147483648, 2147483647)).toBe(true);
    expect(newerVersion(2147483647, -2147483648)).toBe(false);
    expect(newerVersion(3, -3)).toBe(true);
  });

  it("refuses a Version that is not an int32", async () => {
    const r = rig();
    const p = outcome(r.thing.shadow.report({ a: 1 }));
    r.push("shadow/downstream", '{"Method":"reply","Payload":{"RetCode":0},"Version":4294967296}');
    expect(((await p) as UiotError).message).toMatch(/reply has no int32 Version/);
  });
});

describe("return codes", () => {
  for (const [code, re] of [
    [
      230,
      /RetCode 230\): the platform could not parse the request \(bad JSON, or Method, State or Desired missing, or a non-numeric Version\)/,
    ],
    [130, /RetCode 130\): server error on the platform: try again later/],
    [100027, /RetCode 100027\): the device shadow is disabled for this product: enable it in the UIoT Core console/],
    [4242, /RetCode 4242\): see the UIoT Core documentation/],
  ] as const) {
    it(`${code} is REFUSED with a message a person can act on`, async () => {
      const r = rig();
      const p = outcome(r.thing.shadow.report({ a: 1 }));
      r.push("shadow/downstream", reply(3, code));
      const e = (await p) as UiotError;
      expect(e.code).toBe("REFUSED");
      expect(e.retCode).toBe(code);
      expect(e.message).toMatch(/^shadow update refused by the platform/);
      expect(e.message).toMatch(re);
    });
  }

  it("a get answered by an error reply fails", async () => {
    const r = rig();
    const p = outcome(r.thing.shadow.get());
    r.push("shadow/downstream", reply(0, 100027));
    expect(((await p) as UiotError).retCode).toBe(100027);
  });

  it("a reply with nothing in flight is ignored", async () => {
    const r = rig();
    r.push("shadow/downstream", reply(9));
    expect(r.errors).toEqual([]);
    expect(r.logs.join("\n")).toMatch(/no update or delete in flight was ignored/);
  });
});

describe("desired values", () => {
  it("a handler that answers later (a promise) accepts when it resolves", async () => {
    const r = rig();
    let apply!: (v: boolean) => void;
    r.thing.shadow.onDesired(() => new Promise<boolean>((res) => (apply = res)));
    r.push("shadow/downstream", push(2, '{"temperature":17}'));
    expect(r.sent().filter((s) => s.topic === "shadow/upstream")).toHaveLength(0);
    apply(true);
    await settle();
    expect(r.last("shadow/upstream")).toBe('{"Method":"update","State":{"Desired":null},"Version":2}');
  });

  it("false leaves desired as it is; accept() later clears it", async () => {
    const r = rig();
    r.thing.shadow.onDesired(() => false);
    r.push("shadow/downstream", push(4, '{"temperature":17}'));
    expect(r.sent()).toHaveLength(0);
    void r.thing.shadow.accept();
    expect(r.last("shadow/upstream")).toBe('{"Method":"update","State":{"Desired":null},"Version":4}');
  });

  it("no handler, a throwing handler, a bad control message: reported, never a crash", async () => {
    const r = rig();
    r.push("shadow/downstream", push(2, '{"t":1}'));
    expect(r.errors.map((e) => e.code)).toEqual(["NO_HANDLER"]);
    r.thing.shadow.onDesired(() => {
      throw new Error("boom");
    });
    r.push("shadow/downstream", push(3, '{"t":1}'));
    r.push("shadow/downstream", "{]");
    r.push("shadow/downstream", '{"Method":"control","Payload":{"RetCode":0},"Version":4}');
    r.push("shadow/downstream", '{"Method":"dance"}');
    expect(r.errors.map((e) => e.code)).toEqual([
      "NO_HANDLER",
      "CALLBACK_ERROR",
      "BAD_PAYLOAD",
      "BAD_PAYLOAD",
      "BAD_PAYLOAD",
    ]);
    expect(r.errors[1].message).toMatch(/onDesired handler threw: Error: boom/);
    expect(r.errors[2].message).toMatch(/shadow\/downstream: the 2-byte payload is not valid UTF-8 JSON/);
    expect(r.client.state).toBe("connected");
  });

  it("a push while an update is in flight: the update conflicts, is retried once at the new version, then the acceptance follows", async () => {
    const r = rig();
    r.thing.shadow.onDesired(() => true);
    const p = r.thing.shadow.report({ humidity: 50 });
    r.push("shadow/downstream", push(3, '{"temperature":17}'));
    // The acceptance waits behind the update.
    expect(r.sent().filter((s) => s.topic === "shadow/upstream")).toHaveLength(1);
    r.push("shadow/downstream", conflict(3, '{"temperature":17}'));
    expect(r.last("shadow/upstream")).toBe('{"Method":"update","State":{"Reported":{"humidity":50}},"Version":3}');
    r.push("shadow/downstream", reply(4));
    expect(await p).toBe(4);
    expect(r.last("shadow/upstream")).toBe('{"Method":"update","State":{"Desired":null},"Version":4}');
    // The conflict answer carried the same desired values: handed over once, accepted once.
    r.push("shadow/downstream", reply(5));
    await settle();
    expect(r.sent().filter((s) => s.topic === "shadow/upstream")).toHaveLength(3);
    expect(r.thing.shadow.queued).toBe(0);
  });
});

describe("accepting desired values across a version conflict", () => {
  const upstream = (r: ReturnType<typeof rig>) =>
    r
      .sent()
      .filter((p) => p.topic === "shadow/upstream")
      .map((p) => p.json);

  it("does not retry an acceptance when the desired state changed: values the application declined stay desired", async () => {
    const r = rig();
    r.thing.shadow.onDesired((d) => !("humidity" in d));
    r.push("shadow/downstream", push(1, '{"temperature":17}'));
    expect(upstream(r)).toEqual(['{"Method":"update","State":{"Desired":null},"Version":1}']);
    // The console added humidity before the acceptance arrived: the device is shown it and declines it.
    r.push("shadow/downstream", push(2, '{"temperature":17,"humidity":40}'));
    r.push("shadow/downstream", conflict(2, '{"temperature":17,"humidity":40}'));
    await settle();
    expect(upstream(r)).toHaveLength(1); // a retry would have cleared humidity 40 and had it copied into Reported
    expect(r.errors.map((e) => e.code)).toEqual(["VERSION_CONFLICT"]);
    expect(r.errors[0].message).toMatch(
      /the desired state changed on the platform \(now version 2\) while this device was accepting it: not retried/,
    );
    expect((r.errors[0] as UiotError).retCode).toBe(100026);
  });

  it("retries an acceptance when only the version moved (the same desired state, keys in any order)", async () => {
    const r = rig();
    r.thing.shadow.onDesired(() => true);
    r.push("shadow/downstream", push(1, '{"a":1,"b":{"c":[1,2]}}'));
    r.push("shadow/downstream", conflict(3, '{"b":{"c":[1,2]},"a":1}'));
    expect(upstream(r)).toEqual([
      '{"Method":"update","State":{"Desired":null},"Version":1}',
      '{"Method":"update","State":{"Desired":null},"Version":3}',
    ]);
    r.push("shadow/downstream", reply(4));
    await settle();
    expect(r.errors).toEqual([]);
  });

  it("an accept() or a report clearing desired accepts what the application was last shown (a push or a get)", async () => {
    const r = rig();
    const shown: unknown[] = [];
    r.thing.shadow.onDesired((d) => void shown.push(d)); // not now
    const g = r.thing.shadow.get();
    r.push(
      "shadow/get_reply",
      '{"State":{"Reported":{},"Desired":{"t":17}},"Metadata":{"Reported":{},"Desired":{}},"Timestamp":1,"Version":4}',
    );
    expect((await g).desired).toEqual({ t: 17 });
    const a = outcome(r.thing.shadow.report({ t: 18 }, { clearDesired: true }));
    r.push("shadow/downstream", conflict(5, '{"t":16}'));
    expect(((await a) as UiotError).code).toBe("VERSION_CONFLICT");
    expect(shown).toEqual([{ t: 16 }]); // the new desired state, from the conflict answer
    const b = r.thing.shadow.accept();
    r.push("shadow/downstream", conflict(6, '{"t":16}'));
    expect(upstream(r).at(-1)).toBe('{"Method":"update","State":{"Desired":null},"Version":6}'); // the same state: retried
    r.push("shadow/downstream", reply(7));
    expect(await b).toBe(7);
  });

  it("an answer that comes after a newer push accepts the state it was asked about, at that state's version", async () => {
    const r = rig();
    const answers: ((a: boolean) => void)[] = [];
    r.thing.shadow.onDesired(() => new Promise<boolean>((resolve) => answers.push(resolve)));
    r.push("shadow/downstream", push(1, '{"temperature":17}'));
    r.push("shadow/downstream", push(2, '{"temperature":17,"humidity":40}'));
    answers[0](true); // 17 applied
    await settle();
    // Version 1, not the 2 the device knows: at 2 the platform would clear humidity 40, which is still being decided.
    expect(upstream(r)).toEqual(['{"Method":"update","State":{"Desired":null},"Version":1}']);
    r.push("shadow/downstream", conflict(2, '{"temperature":17,"humidity":40}'));
    answers[1](false); // humidity 40: not now
    await settle();
    expect(upstream(r)).toHaveLength(1);
    expect(r.errors.map((e) => e.code)).toEqual(["VERSION_CONFLICT"]);
  });

  it("the device's own updates move an acceptance's version along with them (no needless conflict)", async () => {
    const r = rig();
    r.thing.shadow.onDesired(() => false);
    r.push("shadow/downstream", push(1, '{"t":17}'));
    const own = r.thing.shadow.report({ h: 50 });
    expect(upstream(r).at(-1)).toBe('{"Method":"update","State":{"Reported":{"h":50}},"Version":1}');
    r.push("shadow/downstream", reply(2));
    expect(await own).toBe(2);
    const a = r.thing.shadow.accept();
    expect(upstream(r).at(-1)).toBe('{"Method":"update","State":{"Desired":null},"Version":2}');
    r.push("shadow/downstream", reply(3));
    expect(await a).toBe(3);
    expect(r.errors).toEqual([]);
  });

  it("an accept() before anything was shown is retried as before", async () => {
    const r = rig();
    const a = r.thing.shadow.accept();
    r.push("shadow/downstream", conflict(2, '{"t":1}'));
    expect(upstream(r)).toEqual([
      '{"Method":"update","State":{"Desired":null},"Version":0}',
      '{"Method":"update","State":{"Desired":null},"Version":2}',
    ]);
    r.push("shadow/downstream", reply(3));
    expect(await a).toBe(3);
  });
});

describe("what the application gives", () => {
  it("refuses values JSON cannot carry and empty reports, before sending", async () => {
    const r = rig();
    for (const bad of [{ a: NaN }, { a: Infinity }, { a: undefined }, {}, { a: () => 1 }]) {
      const e = (await outcome(r.thing.shadow.report(bad as never))) as UiotError;
      expect(e.code).toBe("INVALID_VALUE");
    }
    expect(((await outcome(r.thing.shadow.delete([]))) as UiotError).code).toBe("INVALID_VALUE");
    expect(r.sent()).toHaveLength(0);
  });

  it("shadow values are plain JSON: booleans stay true/false, null is allowed, dates are ms", async () => {
    const r = rig();
    void r.thing.shadow.report({ on: true, x: null, at: new Date(5), nested: { list: [1, "a", false] } });
    expect(r.last("shadow/upstream")).toBe(
      '{"Method":"update","State":{"Reported":{"on":true,"x":null,"at":5,"nested":{"list":[1,"a",false]}}},"Version":0}',
    );
  });

  it("a property set from the platform is answered while a shadow update is in flight", async () => {
    const r = rig();
    r.thing.onSet(() => 0);
    const p = r.thing.shadow.report({ a: 1 });
    r.push("tmodel/property/set", '{"RequestID":"55","Property":{"p1":3}}');
    expect(r.sent().map((s) => s.topic)).toEqual(["shadow/upstream", "tmodel/property/set_reply"]);
    expect(r.last("tmodel/property/set_reply")).toBe('{"RequestID":"55","RetCode":0}');
    r.push("shadow/downstream", reply(1));
    expect(await p).toBe(1);
  });

  it("stop() fails the request in flight and the queued ones with CLOSED", async () => {
    const r = rig();
    const a = outcome(r.thing.shadow.report({ a: 1 }));
    const b = outcome(r.thing.shadow.get());
    r.thing.stop();
    expect(((await a) as UiotError).code).toBe("CLOSED");
    expect(((await b) as UiotError).code).toBe("CLOSED");
    expect(((await outcome(r.thing.shadow.get())) as UiotError).code).toBe("CLOSED");
  });
});
