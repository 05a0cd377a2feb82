// The device shadow service: the spec's payloads byte for byte, over MQTT, then the edge cases on the Shadow class.
import { describe, expect, it } from "vitest";
import { Shadow } from "../../../tools/cloud/shadow";
import { DSN, login, NOW, PSN, SECRET, testCloud, type TestDevice } from "./helpers";

const T = NOW / 1000; // 1562904212

async function shadowDevice(device: TestDevice): Promise<TestDevice> {
  expect(await device.subscribe(device.sys("shadow/downstream"), device.sys("shadow/get_reply"))).toEqual([1, 1]);
  return device;
}

const update = (d: TestDevice, msg: object) => d.request("shadow/upstream", msg, "shadow/downstream");
const get = (d: TestDevice) => d.request("shadow/get", { Method: "get" }, "shadow/get_reply");

describe("shadow over MQTT", () => {
  it("answers get with the bare document, exactly as the spec shows it", async () => {
    const cloud = await testCloud({ now: () => NOW });
    const device = await shadowDevice(await login(cloud));
    expect(await get(device)).toBe(
      `{"State":{"Reported":{},"Desired":{}},"Metadata":{"Reported":{},"Desired":{}},"Timestamp":${T},"Version":0}`,
    );
  });

  it("updates Reported when Version matches, answers reply with the new version, and get shows it", async () => {
    let now = NOW;
    const cloud = await testCloud({ now: () => now });
    const device = await shadowDevice(await login(cloud));
    now = 1562909435000;
    expect(
      await update(device, { Method: "update", State: { Reported: { temperature: 26, humidity: 57 } }, Version: 0 }),
    ).toBe('{"Method":"reply","Payload":{"RetCode":0},"Version":1,"Timestamp":1562909435}');
    expect(await get(device)).toBe(
      '{"State":{"Reported":{"temperature":26,"humidity":57},"Desired":{}},' +
        '"Metadata":{"Reported":{"temperature":{"Timestamp":1562909435},"humidity":{"Timestamp":1562909435}},"Desired":{}},' +
        '"Timestamp":1562909435,"Version":1}',
    );
    expect(cloud.shadow(PSN, DSN).State.Reported).toEqual({ temperature: 26, humidity: 57 });
  });

  it("answers a stale Version with control 100026, the full State and Metadata and the current Version", async () => {
    const cloud = await testCloud({ now: () => NOW });
    const device = await shadowDevice(await login(cloud));
    await update(device, { Method: "update", State: { Reported: { temperature: 26 } }, Version: 0 });
    const pushed = device.next(device.sys("shadow/downstream"));
    cloud.setShadowDesired(PSN, DSN, { temperature: 17 });
    await pushed;
    expect(await update(device, { Method: "update", State: { Reported: { temperature: 27 } }, Version: 1 })).toBe(
      '{"Method":"control","Payload":{"RetCode":100026,' +
        '"State":{"Reported":{"temperature":26},"Desired":{"temperature":17}},' +
        `"Metadata":{"Reported":{"temperature":{"Timestamp":${T}}},"Desired":{"temperature":{"Timestamp":${T}}}}},` +
        `"Version":2,"Timestamp":${T}}`,
    );
    expect(cloud.shadow(PSN, DSN).State.Reported).toEqual({ temperature: 26 }); // nothing applied
    expect(await update(device, { Method: "update", State: { Reported: { temperature: 27 } }, Version: 2 })).toBe(
      `{"Method":"reply","Payload":{"RetCode":0},"Version":3,"Timestamp":${T}}`,
    );
  });

  it('deletes one key with null and all of Reported with "Reported":null ("version" accepted as the docs write it)', async () => {
    const cloud = await testCloud({ now: () => NOW });
    const device = await shadowDevice(await login(cloud));
    await update(device, {
      Method: "update",
      State: { Reported: { temperature: 26, humidity: 57, co2: 400 } },
      Version: 0,
    });
    expect(await update(device, { Method: "delete", State: { Reported: { temperature: null } }, Version: 1 })).toBe(
      `{"Method":"reply","Payload":{"RetCode":0},"Version":2,"Timestamp":${T}}`,
    );
    expect(cloud.shadow(PSN, DSN).State.Reported).toEqual({ humidity: 57, co2: 400 });
    expect(Object.keys(cloud.shadow(PSN, DSN).Metadata.Reported)).toEqual(["humidity", "co2"]);
    expect(await update(device, { Method: "delete", State: { Reported: null }, version: 2 })).toBe(
      `{"Method":"reply","Payload":{"RetCode":0},"Version":3,"Timestamp":${T}}`,
    );
    expect(cloud.shadow(PSN, DSN)).toMatchObject({ State: { Reported: {} }, Metadata: { Reported: {} }, Version: 3 });
  });

  it("resets the version to 0 on an update with Version -1", async () => {
    const cloud = await testCloud({
      now: () => NOW,
      devices: [{ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET, shadow: { version: 41 } }],
    });
    const device = await shadowDevice(await login(cloud));
    expect(await update(device, { Method: "update", State: { Reported: { on: 1 } }, Version: -1 })).toBe(
      `{"Method":"reply","Payload":{"RetCode":0},"Version":0,"Timestamp":${T}}`,
    );
    expect(cloud.shadow(PSN, DSN)).toMatchObject({ State: { Reported: { on: 1 } }, Version: 0 });
  });

  it('pushes console desired values as control, and an update with "Desired":null copies them into Reported', async () => {
    let now = NOW;
    const cloud = await testCloud({ now: () => now });
    const device = await shadowDevice(await login(cloud));
    await update(device, { Method: "update", State: { Reported: { temperature: 26 } }, Version: 0 });
    now = 1562917500000;
    const pushed = device.next(device.sys("shadow/downstream"));
    const doc = cloud.setShadowDesired(PSN, DSN, { temperature: 17 });
    expect(doc).toMatchObject({ State: { Desired: { temperature: 17 } }, Version: 2 });
    expect(await pushed).toBe(
      '{"Method":"control","Payload":{"RetCode":0,"State":{"Desired":{"temperature":17}},' +
        '"Metadata":{"Desired":{"temperature":{"Timestamp":1562917500}}}},"Version":2,"Timestamp":1562917500}',
    );
    now = 1562917504000;
    expect(await update(device, { Method: "update", State: { Desired: null }, Version: 2 })).toBe(
      '{"Method":"reply","Payload":{"RetCode":0},"Version":3,"Timestamp":1562917504}',
    );
    expect(cloud.shadow(PSN, DSN)).toEqual({
      State: { Reported: { temperature: 17 }, Desired: {} },
      Metadata: { Reported: { temperature: { Timestamp: 1562917504 } }, Desired: {} },
      Timestamp: 1562917504,
      Version: 3,
    });
  });

  it("lets the device report another value while clearing Desired", async () => {
    const cloud = await testCloud({ now: () => NOW });
    const device = await shadowDevice(await login(cloud));
    const pushed = device.next(device.sys("shadow/downstream"));
    cloud.setShadowDesired(PSN, DSN, { temperature: 17, fan: 2 });
    expect(JSON.parse(await pushed).Payload.State).toEqual({ Desired: { temperature: 17, fan: 2 } });
    expect(
      await update(device, { Method: "update", State: { Reported: { temperature: 18 }, Desired: null }, Version: 1 }),
    ).toBe(`{"Method":"reply","Payload":{"RetCode":0},"Version":2,"Timestamp":${T}}`);
    expect(cloud.shadow(PSN, DSN).State).toEqual({ Reported: { temperature: 18, fan: 2 }, Desired: {} });
  });

  it("answers 230 to bad JSON, a missing Method or State, a State with neither side, and a non-numeric Version", async () => {
    const cloud = await testCloud({ now: () => NOW });
    const device = await shadowDevice(await login(cloud));
    const bad = `{"Method":"reply","Payload":{"RetCode":230},"Version":0,"Timestamp":${T}}`;
    for (const msg of [
      "{not json",
      { State: { Reported: { a: 1 } }, Version: 0 },
      { Method: "patch", State: { Reported: { a: 1 } }, Version: 0 },
      { Method: "update", Version: 0 },
      { Method: "update", State: {}, Version: 0 },
      { Method: "update", State: { Reported: 5 }, Version: 0 },
      { Method: "update", State: { Reported: { a: 1 } }, Version: "0" },
      { Method: "update", State: { Reported: { a: 1 } } },
      { Method: "update", State: { Reported: { a: 1 } }, Version: 0.5 },
      { Method: "update", State: { Reported: { a: 1 } }, Version: 2 ** 31 },
    ]) {
      expect(await update(device, msg as object), JSON.stringify(msg)).toBe(bad);
    }
    expect(await device.request("shadow/get", { Method: "update" }, "shadow/get_reply")).toBe(bad);
    expect(cloud.shadow(PSN, DSN).Version).toBe(0);
  });

  it("answers 100027 on every shadow request when the product's shadow service is off", async () => {
    const cloud = await testCloud({
      now: () => NOW,
      products: [{ productSN: PSN, productSecret: "x".repeat(16), shadow: false }],
      devices: [{ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET }],
    });
    const device = await shadowDevice(await login(cloud));
    const off = `{"Method":"reply","Payload":{"RetCode":100027},"Version":0,"Timestamp":${T}}`;
    expect(await get(device)).toBe(off);
    expect(await update(device, { Method: "update", State: { Reported: { a: 1 } }, Version: 0 })).toBe(off);
    expect(() => cloud.setShadowDesired(PSN, DSN, { a: 1 })).toThrow(/shadow service is off/);
  });
});

describe("Shadow", () => {
  const up = (s: Shadow, msg: object) => JSON.parse(s.upstream(JSON.stringify(msg), NOW));

  it("counts versions as int32, wrapping from 2147483647 to -2147483648", () => {
    const s = new Shadow(NOW, { version: 2147483647 });
    expect(up(s, { Method: "update", State: { Reported: { a: 1 } }, Version: 2147483647 }).Version).toBe(-2147483648);
    expect(up(s, { Method: "update", State: { Reported: { a: 2 } }, Version: -2147483648 }).Version).toBe(-2147483647);
    expect(s.document().State.Reported).toEqual({ a: 2 });
  });

  it("bumps the version once per accepted request and for console desired changes, never for refused ones", () => {
    const s = new Shadow(NOW);
    up(s, { Method: "update", State: { Reported: { a: 1, b: 2 }, Desired: { c: 3 } }, Version: 0 });
    expect(s.version).toBe(1);
    up(s, { Method: "update", State: { Reported: { a: 1 } }, Version: 0 }); // conflict
    up(s, { Method: "update", State: {}, Version: 1 }); // 230
    expect(s.version).toBe(1);
    s.setDesired({ c: null, d: 4 }, NOW);
    expect(s.document()).toMatchObject({ State: { Reported: { a: 1, b: 2 }, Desired: { d: 4 } }, Version: 2 });
  });

  it("deletes Desired keys and all of Desired with delete too", () => {
    const s = new Shadow(NOW, { desired: { a: 1, b: 2, c: 3 }, reported: { a: 0 } });
    up(s, { Method: "delete", State: { Desired: { a: null } }, Version: 0 });
    expect(s.document().State).toEqual({ Reported: { a: 0 }, Desired: { b: 2, c: 3 } });
    up(s, { Method: "delete", State: { Desired: null }, Version: 1 });
    expect(s.document().State).toEqual({ Reported: { a: 0 }, Desired: {} });
  });

  it("keeps nested values whole and is not fooled by a __proto__ key", () => {
    const s = new Shadow(NOW);
    up(s, { Method: "update", State: { Reported: { cfg: { mode: "eco", list: [1, 2] } } }, Version: 0 });
    s.upstream('{"Method":"update","State":{"Reported":{"__proto__":{"polluted":1}}},"Version":1}', NOW);
    const doc = s.document();
    expect(doc.State.Reported.cfg).toEqual({ mode: "eco", list: [1, 2] });
    expect(JSON.stringify(doc.State.Reported)).toBe('{"cfg":{"mode":"eco","list":[1,2]},"__proto__":{"polluted":1}}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe("what a device cannot do to the cloud", () => {
  it("survives shadow updates and gets nested 10,000 levels deep: answered as bad requests, and the next update works", async () => {
    const cloud = await testCloud({ now: () => NOW });
    const device = await shadowDevice(await login(cloud));
    const deep = '{"a":'.repeat(10000) + "1" + "}".repeat(10000);
    const reply = await device.request(
      "shadow/upstream",
      `{"Method":"update","State":{"Reported":${deep}},"Version":0}`,
      "shadow/downstream",
    );
    expect(JSON.parse(reply).Payload.RetCode).not.toBe(0);
    expect(JSON.parse(await get(device)).Version).toBe(0);
    expect(
      JSON.parse(await update(device, { Method: "update", State: { Reported: { temperature: 26 } }, Version: 0 }))
        .Payload.RetCode,
    ).toBe(0);
    expect(cloud.running).toBe(true);
  });
});
