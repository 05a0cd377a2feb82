// Logging in to the emulated cloud: credentials, CONNACK codes, keepalive range, will refusal, dynamic registration.
import { describe, expect, it } from "vitest";
import type { RefusedEvent } from "../../../tools/cloud";
import { DSN, login, PSECRET, PSN, PSN_PREAUTH, PSN_STATIC, refusedWith, register, SECRET, testCloud } from "./helpers";

describe("authmode 1 (DeviceSecret)", () => {
  it("logs in with ClientID PSN.DSN, UserName PSN|DSN|1 and the DeviceSecret", async () => {
    const cloud = await testCloud();
    const online = new Promise((resolve) => cloud.once("online", resolve));
    expect(cloud.device(PSN, DSN)).toMatchObject({ registered: true, activated: false, online: false });
    const device = await login(cloud);
    expect(device.client.connected).toBe(true);
    expect(await online).toMatchObject({ productSN: PSN, deviceSN: DSN, clientId: `${PSN}.${DSN}`, authmode: 1 });
    expect(cloud.online().map((d) => d.deviceSN)).toEqual([DSN]);
    expect(cloud.device(PSN, DSN)).toMatchObject({ registered: true, activated: true, online: true });
  });

  it("refuses bad credentials with CONNACK 4 and a mismatched ClientID with 2, saying why", async () => {
    const cloud = await testCloud();
    const refused: RefusedEvent[] = [];
    cloud.on("refused", (e) => refused.push(e));
    expect(await refusedWith(cloud, { password: "wrong-secret0000" })).toBe(4);
    expect(await refusedWith(cloud, { productSN: "nosuchproduct000" })).toBe(4);
    expect(await refusedWith(cloud, { deviceSN: "no-such-device" })).toBe(4);
    expect(await refusedWith(cloud, { username: `${PSN}|${DSN}` })).toBe(4);
    expect(await refusedWith(cloud, { username: `${PSN}|${DSN}|3` })).toBe(4);
    expect(await refusedWith(cloud, { mqtt: { password: undefined } })).toBe(4);
    expect(await refusedWith(cloud, { password: PSECRET })).toBe(4); // the ProductSecret is not a DeviceSecret
    expect(await refusedWith(cloud, { clientId: `${PSN}.other-device` })).toBe(2);
    expect(await refusedWith(cloud, { clientId: `${DSN}` })).toBe(2);
    expect(refused.map((r) => [r.returnCode, r.reason])).toEqual([
      [4, "wrong DeviceSecret"],
      [4, "unknown product nosuchproduct000"],
      [4, `unknown device ${PSN}/no-such-device`],
      [4, "UserName must be ProductSN|DeviceSN|authmode with authmode 1 or 2"],
      [4, "UserName must be ProductSN|DeviceSN|authmode with authmode 1 or 2"],
      [4, "wrong DeviceSecret"],
      [4, "wrong DeviceSecret"],
      [2, `ClientID must be ${PSN}.${DSN}`],
      [2, `ClientID must be ${PSN}.${DSN}`],
    ]);
    expect(refused[0]).toMatchObject({ clientId: `${PSN}.${DSN}`, username: `${PSN}|${DSN}|1` });
    expect(cloud.online()).toEqual([]);
    expect(cloud.device(PSN, DSN)?.activated).toBe(false);
  });

  it("refuses a device that has no DeviceSecret yet with 4", async () => {
    const cloud = await testCloud({ devices: [{ productSN: PSN, deviceSN: "unregistered" }] });
    expect(cloud.device(PSN, "unregistered")).toMatchObject({ registered: false, deviceSecret: undefined });
    expect(await refusedWith(cloud, { deviceSN: "unregistered" })).toBe(4);
  });

  it("accepts Keep Alive 30..1200 s and refuses anything else (0 included) with CONNACK 2", async () => {
    const cloud = await testCloud();
    for (const keepalive of [30, 300, 1200]) await (await login(cloud, { keepalive })).end();
    const reasons: string[] = [];
    cloud.on("refused", (e) => reasons.push(e.reason));
    for (const keepalive of [0, 29, 1201, 65535]) expect(await refusedWith(cloud, { keepalive })).toBe(2);
    expect(reasons[1]).toBe("Keep Alive 29 s is outside 30..1200 s");
  });

  it("refuses a CONNECT with a Will with CONNACK 5", async () => {
    const cloud = await testCloud();
    const will = { topic: `/${PSN}/${DSN}/upload`, payload: Buffer.from("bye"), qos: 0 as const, retain: false };
    expect(await refusedWith(cloud, { mqtt: { will } })).toBe(5);
  });

  it("speaks MQTT 3.1 (MQIsdp) too, with a ClientID longer than 3.1's 23 characters", async () => {
    const cloud = await testCloud();
    const device = await login(cloud, { mqtt: { protocolVersion: 3, protocolId: "MQIsdp" } });
    expect(`${PSN}.${DSN}`.length).toBeGreaterThan(23);
    expect(await device.subscribe(device.sys("shadow/get_reply"))).toEqual([1]);
    expect(JSON.parse(await device.request("shadow/get", { Method: "get" }, "shadow/get_reply"))).toMatchObject({
      Version: 0,
    });
  });
});

describe("dynamic registration (authmode 2)", () => {
  it("hands out a 16-character DeviceSecret that then logs in with authmode 1", async () => {
    const cloud = await testCloud();
    const registered = new Promise((resolve) => cloud.once("registered", resolve));
    const reply = JSON.parse(await register(cloud, { deviceSN: "new-device-01" }));
    expect(Object.keys(reply)).toEqual(["RetCode", "RequestID", "Password"]);
    expect(reply).toMatchObject({ RetCode: "0", RequestID: "1" });
    expect(reply.Password).toMatch(/^[a-z0-9]{16}$/);
    expect(await registered).toEqual({ productSN: PSN, deviceSN: "new-device-01" });
    expect(cloud.device(PSN, "new-device-01")).toMatchObject({
      registered: true,
      activated: false,
      deviceSecret: reply.Password,
    });

    const device = await login(cloud, { deviceSN: "new-device-01", password: reply.Password });
    expect(device.client.connected).toBe(true);
    expect(cloud.device(PSN, "new-device-01")?.activated).toBe(true);
  });

  it("works once only: after the first authmode-1 login authmode 2 is refused with CONNACK 5", async () => {
    const cloud = await testCloud();
    const first = JSON.parse(await register(cloud, { deviceSN: "once-only-01" }));
    // Until the device logs in with its secret, registering again gives the same secret (a lost reply is retried).
    const again = JSON.parse(await register(cloud, { deviceSN: "once-only-01" }));
    expect(again.Password).toBe(first.Password);

    const device = await login(cloud, { deviceSN: "once-only-01", password: first.Password });
    const reasons: string[] = [];
    cloud.on("refused", (e) => reasons.push(e.reason));
    expect(await refusedWith(cloud, { deviceSN: "once-only-01", authmode: 2 })).toBe(5);
    expect(reasons).toEqual(["the device has logged in with its DeviceSecret: dynamic registration works once only"]);
    // ... and the refused attempt did not kick the device that is online
    expect(device.client.connected).toBe(true);
    expect(cloud.online().map((d) => d.deviceSN)).toEqual(["once-only-01"]);
    await device.end();
    expect(await refusedWith(cloud, { deviceSN: "once-only-01", authmode: 2 })).toBe(5);
  });

  it("refuses a device created as activated (it has logged in before) from the start", async () => {
    const cloud = await testCloud({
      devices: [{ productSN: PSN, deviceSN: "old-device", deviceSecret: SECRET, activated: true }],
    });
    expect(await refusedWith(cloud, { deviceSN: "old-device", authmode: 2 })).toBe(5);
  });

  it("gives a statically created device that never logged in its existing secret", async () => {
    const cloud = await testCloud();
    const reply = JSON.parse(await register(cloud));
    expect(reply.Password).toBe(SECRET);
  });

  it("needs the product's switch on, the ProductSecret, and on pre-authentication a whitelisted DeviceSN", async () => {
    const cloud = await testCloud();
    expect(await refusedWith(cloud, { productSN: PSN_STATIC, deviceSN: "dev-0001", authmode: 2 })).toBe(5);
    expect(await refusedWith(cloud, { deviceSN: "dev-0001", authmode: 2, password: "wrong-product-se" })).toBe(4);
    expect(await refusedWith(cloud, { deviceSN: "dev-0001", authmode: 2, password: SECRET })).toBe(4);
    expect(await refusedWith(cloud, { productSN: PSN_PREAUTH, deviceSN: "not-listed", authmode: 2 })).toBe(5);
    expect(await refusedWith(cloud, { deviceSN: "no", authmode: 2 })).toBe(4); // DeviceSN of 4..64 characters
    const reply = JSON.parse(await register(cloud, { productSN: PSN_PREAUTH, deviceSN: "listed-01" }));
    expect(reply.RetCode).toBe("0");
    expect(cloud.device(PSN_STATIC, "dev-0001")).toBeUndefined();
  });

  it("lets the registration connection use password and password_reply only", async () => {
    const cloud = await testCloud();
    const device = await login(cloud, { deviceSN: "reg-acl-01", authmode: 2 });
    expect(
      await device.subscribe(device.sys("password_reply"), device.sys("shadow/downstream"), `/${PSN}/reg-acl-01/set`),
    ).toEqual([1, 128, 128]);
    await device.publishClosed(`/${PSN}/reg-acl-01/upload`, "{}");
    expect(cloud.device(PSN, "reg-acl-01")).toBeUndefined(); // no password was asked for
  });

  it('answers a request without a string RequestID with RetCode "230" and no password', async () => {
    const cloud = await testCloud();
    const device = await login(cloud, { deviceSN: "reg-bad-01", authmode: 2 });
    await device.subscribe(device.sys("password_reply"));
    expect(await device.request("password", "not json", "password_reply")).toBe('{"RetCode":"230","RequestID":""}');
    expect(await device.request("password", { RequestID: 7 }, "password_reply")).toBe(
      '{"RetCode":"230","RequestID":"7"}',
    );
    expect(cloud.device(PSN, "reg-bad-01")).toBeUndefined();
  });

  it("masks the password in the message log and its events", async () => {
    const cloud = await testCloud();
    const seen: string[] = [];
    cloud.on("message", (m) => seen.push(m.payload));
    const reply = JSON.parse(await register(cloud, { deviceSN: "masked-01" }));
    const out = cloud.log().find((m) => m.topic.endsWith("/password_reply"));
    expect(out).toMatchObject({ direction: "out", productSN: PSN, deviceSN: "masked-01", qos: 1 });
    expect(out?.payload).toBe('{"RetCode":"0","RequestID":"1","Password":"****"}');
    expect(JSON.stringify(cloud.log())).not.toContain(reply.Password);
    expect(seen.join("\n")).not.toContain(reply.Password);
  });
});
