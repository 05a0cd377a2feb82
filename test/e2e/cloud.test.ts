// End to end over real sockets: the device layer (uiotClient + Thing on the Node host's TCP connector and clock)
// against the emulated UIoT Core (tools/cloud), one flow per test, each checked on both sides: what the
// device's API answered and what the console shows (its state, its events and its message log).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { DeniedEvent, LogEntry, OfflineEvent, RefusedEvent } from "../../tools/cloud";
import { nodeClock } from "../../hosts/node/clock";
import { FileConfigStore } from "../../hosts/node/config-store";
import { nodeConnector } from "../../hosts/node/connect";
import { tcpConnector } from "../../hosts/node/tcp";
import { MqttError } from "../../src/mqtt/errors";
import { parseEndpoint } from "../../src/net/endpoint";
import { uiotTls } from "../../src/uiot/platform";
import { UiotError } from "../../src/uiot/errors";
import { CONFIG_KEYS, Identity, loadIdentity } from "../../src/uiot/identity";
import { uiotClient } from "../../src/uiot/profile";
import { register } from "../../src/uiot/register";
import { getTestCerts } from "../helpers/certs";
import { onCurrentTestEnd } from "../helpers/cleanup";
import { sleep, waitFor } from "../helpers/wait";
import {
  deferred,
  device,
  DSN,
  e2eCloud,
  FAST,
  online,
  PRODUCT_SECRET,
  PSN,
  PSN_DYN,
  SECRET,
  staticIdentity,
  SYS,
  TEMPLATE,
  THING_TOPICS,
} from "./rig";

/** 2019-07-12T04:03:32Z, the spec's first shadow timestamp. */
const NOW = 1562904212000;
const T = NOW / 1000;

/** The cloud's log as [direction, topic (suffix for the device's system topics), payload]. */
function wire(entries: LogEntry[], filter: (e: LogEntry) => boolean = () => true): [string, string, string][] {
  return entries
    .filter(filter)
    .map((e) => [e.direction, e.topic.startsWith(SYS) ? e.topic.slice(SYS.length) : e.topic, e.payload]);
}
const on = (suffix: string) => (e: LogEntry) => e.topic === SYS + suffix;
const shadowTraffic = (e: LogEntry) => e.topic.startsWith(SYS + "shadow/");

/** Runs `fn` (once) when the cloud logs the device's next message on `suffix`, before the cloud serves it. */
function beforeServing(cloud: Awaited<ReturnType<typeof e2eCloud>>, suffix: string, fn: () => void, times = 1): void {
  let left = times;
  const hook = (e: LogEntry) => {
    if (e.direction !== "in" || e.topic !== SYS + suffix) return;
    if (--left === 0) cloud.off("message", hook);
    fn();
  };
  cloud.on("message", hook);
}

describe("device layer against the emulated UIoT Core", () => {
  it("logs in statically (3.1.1 and 3.1): ClientID, UserName, every system subscription granted", async () => {
    const cloud = await e2eCloud({ now: () => NOW });
    const denied: DeniedEvent[] = [];
    cloud.on("denied", (e) => denied.push(e));
    for (const level of [4, 3] as const) {
      const d = await online(cloud.port, { client: { level } });
      expect(cloud.online()).toEqual([
        { productSN: PSN, deviceSN: DSN, clientId: `${PSN}.${DSN}`, authmode: 1, since: NOW, address: "127.0.0.1" },
      ]);
      expect([...d.client.session.subscriptions.keys()].sort()).toEqual(THING_TOPICS.map((t) => SYS + t).sort());
      expect(d.errors).toEqual([]);
      expect(d.disconnects).toEqual([]);
      d.close();
      await waitFor(() => cloud.online().length === 0, { message: "the device went offline" });
    }
    expect(cloud.device(PSN, DSN)).toMatchObject({ registered: true, activated: true, online: false });
    expect(denied).toEqual([]);
  });

  it("posts properties and gets the platform's reply; restore gives them back", async () => {
    const cloud = await e2eCloud({ now: () => NOW });
    const d = await online(cloud.port);
    const measured = 1700000000000;
    await d.thing.post({ temperature: 21.5, on: true }, { time: measured });
    expect(cloud.properties(PSN, DSN)).toEqual({
      temperature: { Value: 21.5, Time: measured },
      on: { Value: 1, Time: measured },
    });
    await d.thing.post({ temperature: 22 }); // no Time: the platform stamps it
    expect(wire(cloud.log())).toEqual([
      [
        "in",
        "tmodel/property/post",
        `{"RequestID":"1","Property":{"temperature":{"Value":21.5,"Time":${measured}},"on":{"Value":1,"Time":${measured}}}}`,
      ],
      ["out", "tmodel/property/post_reply", '{"RequestID":"1","RetCode":0,"Message":"success"}'],
      ["in", "tmodel/property/post", '{"RequestID":"2","Property":{"temperature":{"Value":22}}}'],
      ["out", "tmodel/property/post_reply", '{"RequestID":"2","RetCode":0,"Message":"success"}'],
    ]);
    expect(await d.thing.restore()).toEqual({
      latestUpdateTime: NOW,
      properties: { temperature: { value: 22, time: NOW }, on: { value: 1, time: measured } },
    });
    expect(d.errors).toEqual([]);
  });

  it("answers a property set from the console while a shadow update is in flight, and both complete", async () => {
    const cloud = await e2eCloud({ now: () => NOW });
    const d = await online(cloud.port);
    const sets: { properties: unknown; requestId: string; shadowInFlight: boolean }[] = [];
    d.thing.onSet((properties, requestId) => {
      sets.push({ properties, requestId, shadowInFlight: d.thing.shadow.deadline() >= 0 });
      return 0;
    });
    // The console sets properties the moment the device's shadow update reaches the cloud, before the cloud answers
    // it: the set reaches the device first, with the update still waiting for its reply.
    let setReply: Promise<unknown> | undefined;
    beforeServing(
      cloud,
      "shadow/upstream",
      () => (setReply = cloud.setProperties(PSN, DSN, { on: true, target: 22.5 })),
    );
    expect(await d.thing.shadow.report({ temperature: 21 })).toBe(1);
    expect(await setReply).toEqual({ RequestID: "1", RetCode: 0 });
    expect(sets).toEqual([{ properties: { on: 1, target: 22.5 }, requestId: "1", shadowInFlight: true }]);
    expect(wire(cloud.log())).toEqual([
      ["in", "shadow/upstream", '{"Method":"update","State":{"Reported":{"temperature":21}},"Version":0}'],
      ["out", "tmodel/property/set", '{"RequestID":"1","Property":{"on":1,"target":22.5}}'],
      ["out", "shadow/downstream", `{"Method":"reply","Payload":{"RetCode":0},"Version":1,"Timestamp":${T}}`],
      ["in", "tmodel/property/set_reply", '{"RequestID":"1","RetCode":0}'],
    ]);
    // A handler's refusal reaches the console as its RetCode.
    d.thing.onSet(() => 4);
    expect(await cloud.setProperties(PSN, DSN, { on: false })).toEqual({ RequestID: "2", RetCode: 4 });
    expect(d.errors).toEqual([]);
  });

  it("posts an event and gets the platform's reply", async () => {
    const cloud = await e2eCloud({ now: () => NOW });
    const d = await online(cloud.port);
    await d.thing.event("high_temp", { temperature: 80, alarm: true }, { time: 1524448723000 });
    await d.thing.event("high_temp", { temperature: 81 });
    expect(cloud.thingEvents(PSN, DSN)).toEqual([
      { RequestID: "1", Identifier: "high_temp", Output: { temperature: 80, alarm: 1 }, Time: 1524448723000 },
      { RequestID: "2", Identifier: "high_temp", Output: { temperature: 81 }, Time: NOW },
    ]);
    expect(wire(cloud.log(), on("tmodel/event/post"))).toEqual([
      [
        "in",
        "tmodel/event/post",
        '{"RequestID":"1","Identifier":"high_temp","Output":{"temperature":80,"alarm":1},"Time":1524448723000}',
      ],
      ["in", "tmodel/event/post", '{"RequestID":"2","Identifier":"high_temp","Output":{"temperature":81}}'],
    ]);
    expect(d.errors).toEqual([]);
  });

  it("answers commands in time: output, the handler's RetCode, and -1 with NO_HANDLER for an unknown one", async () => {
    const cloud = await e2eCloud();
    const d = await online(cloud.port);
    d.thing.onCommand("reboot", async (input) => {
      await sleep(20);
      return { output: { accepted: true, delay: input.delay as number } };
    });
    d.thing.onCommand("selftest", () => ({ retCode: 7 }));
    const reply = await cloud.sendCommand(PSN, DSN, "reboot", { delay: 3 });
    expect(reply).toEqual({
      RetCode: 0,
      RequestID: reply.RequestID,
      Identifier: "reboot",
      Output: { accepted: 1, delay: 3 },
    });
    expect(await cloud.sendCommand(PSN, DSN, "selftest")).toMatchObject({
      RetCode: 7,
      Identifier: "selftest",
      Output: {},
    });
    expect(await cloud.sendCommand(PSN, DSN, "format")).toMatchObject({ RetCode: -1, Identifier: "format" });
    expect(d.errors.map((e) => e.code)).toEqual(["NO_HANDLER"]);
    expect(d.errors[0].message).toContain('command "format"');
  });

  it("gets the product's thing-model template", async () => {
    const cloud = await e2eCloud();
    const d = await online(cloud.port);
    expect(await d.thing.template()).toEqual(TEMPLATE);
    expect(wire(cloud.log())[0]).toEqual(["in", "tmodel/template/get", '{"RequestID":"1"}']);
  });

  it("gets desired values with their versions and deletes one (only with its current version)", async () => {
    const cloud = await e2eCloud();
    const d = await online(cloud.port);
    cloud.setDesired(PSN, DSN, { target: 22, mode: "eco" });
    cloud.setDesired(PSN, DSN, { target: 23 });
    expect(await d.thing.desired(["target", "mode", "fan"])).toEqual({
      target: { value: 23, version: 2 },
      mode: { value: "eco", version: 1 },
    });
    await d.thing.deleteDesired({ target: 1 }); // stale: no effect
    expect(Object.keys(cloud.desired(PSN, DSN)).sort()).toEqual(["mode", "target"]);
    await d.thing.deleteDesired({ target: 2 });
    expect(cloud.desired(PSN, DSN)).toEqual({ mode: { Value: "eco", Version: 1 } });
    expect(await d.thing.desired(["target"])).toEqual({});
    expect(wire(cloud.log(), (e) => e.direction === "in")).toEqual([
      ["in", "tmodel/property/desired/get", '{"RequestID":"1","Require":["target","mode","fan"]}'],
      ["in", "tmodel/property/desired/delete", '{"RequestID":"2","Delete":{"target":{"Version":1}}}'],
      ["in", "tmodel/property/desired/delete", '{"RequestID":"3","Delete":{"target":{"Version":2}}}'],
      ["in", "tmodel/property/desired/get", '{"RequestID":"4","Require":["target"]}'],
    ]);
    expect(d.errors).toEqual([]);
  });

  it("runs the shadow: get, report, desired pushed from the console (accepted, applied otherwise, later), delete one and all, reset", async () => {
    const cloud = await e2eCloud({
      now: () => NOW,
      devices: [
        { productSN: PSN, deviceSN: DSN, deviceSecret: SECRET, shadow: { reported: { temperature: 20 }, version: 5 } },
      ],
    });
    const d = await online(cloud.port);
    const shadow = d.thing.shadow;
    expect(await shadow.get()).toEqual({
      reported: { temperature: 20 },
      desired: {},
      metadata: { reported: { temperature: { Timestamp: T } }, desired: {} },
      timestamp: T,
      version: 5,
    });
    expect(await shadow.report({ temperature: 21, humidity: 57 })).toBe(6);

    // Desired from the console: `control` on shadow/downstream; true accepts it (Desired null, copied to Reported).
    const pushed: { desired: unknown; version: number; timestamp?: number }[] = [];
    shadow.onDesired((desired, info) => (pushed.push({ desired, ...info }), true));
    cloud.setShadowDesired(PSN, DSN, { temperature: 17 });
    await waitFor(() => cloud.shadow(PSN, DSN).Version === 8, { message: "the device accepted the desired state" });
    expect(pushed).toEqual([{ desired: { temperature: 17 }, version: 7, timestamp: T }]);
    expect(cloud.shadow(PSN, DSN).State).toEqual({ Reported: { temperature: 17, humidity: 57 }, Desired: {} });

    // Applied another value: reported with Desired null.
    shadow.onDesired(() => ({ temperature: 18 }));
    cloud.setShadowDesired(PSN, DSN, { temperature: 16 });
    await waitFor(() => cloud.shadow(PSN, DSN).Version === 10, { message: "the device answered the desired state" });
    expect(cloud.shadow(PSN, DSN).State).toEqual({ Reported: { temperature: 18, humidity: 57 }, Desired: {} });

    // Not now: the desired state stays until the device accepts it.
    shadow.onDesired(() => false);
    cloud.setShadowDesired(PSN, DSN, { humidity: 40 });
    await waitFor(() => shadow.version === 11, { message: "the control push reached the device" });
    expect(cloud.shadow(PSN, DSN).State.Desired).toEqual({ humidity: 40 });
    expect(await shadow.accept()).toBe(12);
    expect(cloud.shadow(PSN, DSN).State).toEqual({ Reported: { temperature: 18, humidity: 40 }, Desired: {} });

    expect(await shadow.delete("humidity")).toBe(13);
    expect(cloud.shadow(PSN, DSN).State.Reported).toEqual({ temperature: 18 });
    expect(await shadow.report({ a: 1, b: [1, 2], c: { d: true } })).toBe(14);
    expect(await shadow.delete(["a", "b"])).toBe(15);
    expect(cloud.shadow(PSN, DSN).State.Reported).toEqual({ temperature: 18, c: { d: true } });
    expect(await shadow.delete()).toBe(16);
    expect(cloud.shadow(PSN, DSN).State.Reported).toEqual({});
    expect(await shadow.resetVersion({ temperature: 19 })).toBe(0);
    expect(cloud.shadow(PSN, DSN)).toMatchObject({ State: { Reported: { temperature: 19 } }, Version: 0 });
    expect(await shadow.report({ temperature: 20 })).toBe(1);

    expect(wire(cloud.log(), (e) => e.direction === "in")).toEqual([
      ["in", "shadow/get", '{"Method":"get"}'],
      [
        "in",
        "shadow/upstream",
        '{"Method":"update","State":{"Reported":{"temperature":21,"humidity":57}},"Version":5}',
      ],
      ["in", "shadow/upstream", '{"Method":"update","State":{"Desired":null},"Version":7}'],
      [
        "in",
        "shadow/upstream",
        '{"Method":"update","State":{"Reported":{"temperature":18},"Desired":null},"Version":9}',
      ],
      ["in", "shadow/upstream", '{"Method":"update","State":{"Desired":null},"Version":11}'],
      ["in", "shadow/upstream", '{"Method":"delete","State":{"Reported":{"humidity":null}},"Version":12}'],
      [
        "in",
        "shadow/upstream",
        '{"Method":"update","State":{"Reported":{"a":1,"b":[1,2],"c":{"d":true}}},"Version":13}',
      ],
      ["in", "shadow/upstream", '{"Method":"delete","State":{"Reported":{"a":null,"b":null}},"Version":14}'],
      ["in", "shadow/upstream", '{"Method":"delete","State":{"Reported":null},"Version":15}'],
      ["in", "shadow/upstream", '{"Method":"update","State":{"Reported":{"temperature":19}},"Version":-1}'],
      ["in", "shadow/upstream", '{"Method":"update","State":{"Reported":{"temperature":20}},"Version":0}'],
    ]);
    expect(d.errors).toEqual([]);
  });

  it("follows the shadow version across the int32 wrap-around", async () => {
    const cloud = await e2eCloud({
      devices: [{ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET, shadow: { version: 2147483646 } }],
    });
    const d = await online(cloud.port);
    expect((await d.thing.shadow.get()).version).toBe(2147483646);
    expect(await d.thing.shadow.report({ n: 1 })).toBe(2147483647);
    expect(await d.thing.shadow.report({ n: 2 })).toBe(-2147483648);
    d.thing.shadow.onDesired(() => true);
    cloud.setShadowDesired(PSN, DSN, { n: 3 });
    await waitFor(() => cloud.shadow(PSN, DSN).Version === -2147483646, { message: "the desired state accepted" });
    expect(await d.thing.shadow.report({ n: 4 })).toBe(-2147483645);
    expect(cloud.shadow(PSN, DSN).State).toEqual({ Reported: { n: 4 }, Desired: {} });
    expect(d.errors).toEqual([]);
  });

  it("refuses shadow requests with 100027 when the product's shadow is off, naming the console switch", async () => {
    const cloud = await e2eCloud({ products: [{ productSN: PSN, productSecret: PRODUCT_SECRET, shadow: false }] });
    const d = await online(cloud.port);
    for (const request of [d.thing.shadow.report({ t: 1 }), d.thing.shadow.get()]) {
      const error = await request.catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "REFUSED", retCode: 100027 });
      expect((error as Error).message).toContain(
        "the device shadow is disabled for this product: enable it in the UIoT Core console",
      );
    }
    await d.thing.post({ t: 1 }); // the thing model is not affected
  });

  it("re-aligns and retries once when the console moves the shadow version behind the device's back", async () => {
    const cloud = await e2eCloud({ now: () => NOW });
    const d = await online(cloud.port);
    const shadow = d.thing.shadow;
    const pushed: { desired: unknown; version: number }[] = [];
    shadow.onDesired((desired, { version }) => void pushed.push({ desired, version }));
    expect(await shadow.report({ temperature: 21 })).toBe(1);

    // 1. The console changes desired while the device's update is on its way: 100026, re-align to 2, retry once.
    beforeServing(cloud, "shadow/upstream", () => cloud.setShadowDesired(PSN, DSN, { temperature: 17 }));
    expect(await shadow.report({ temperature: 22 })).toBe(3);
    expect(pushed).toEqual([{ desired: { temperature: 17 }, version: 2 }]);
    const conflict = JSON.parse(
      cloud
        .log()
        .filter(on("shadow/downstream"))
        .map((e) => e.payload)
        .find((p) => p.includes("100026"))!,
    );
    expect(conflict).toMatchObject({
      Method: "control",
      Payload: { RetCode: 100026, State: { Reported: { temperature: 21 }, Desired: { temperature: 17 } } },
      Version: 2,
    });
    expect(d.logs).toContain(
      "info: shadow update: version conflict, re-aligned to the platform's version 2 and retrying once",
    );

    // 2. Desired changed while the device was offline (no push reached it): its next update conflicts, the desired
    //    values come with the conflict answer, and the retry succeeds.
    await cloud.stop();
    cloud.setShadowDesired(PSN, DSN, { temperature: 16 });
    await cloud.start();
    await waitFor(() => d.connects === 2 && d.client.state === "connected", { message: "the device reconnected" });
    expect(await shadow.report({ temperature: 23 })).toBe(5);
    expect(pushed).toEqual([
      { desired: { temperature: 17 }, version: 2 },
      { desired: { temperature: 16 }, version: 4 },
    ]);

    // 3. It moves again during the retry: VERSION_CONFLICT, after exactly one retry; the next update goes through.
    beforeServing(cloud, "shadow/upstream", () => cloud.setShadowDesired(PSN, DSN, { temperature: 15 }), 2);
    const error = await shadow.report({ temperature: 24 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UiotError);
    expect(error).toMatchObject({ code: "VERSION_CONFLICT", retCode: 100026 });
    expect((error as Error).message).toContain("now version 7");
    expect(await shadow.report({ temperature: 24 })).toBe(8);

    expect(
      wire(cloud.log(), (e) => shadowTraffic(e) && e.direction === "in").map(([, , p]) => JSON.parse(p).Version),
    ).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(d.errors).toEqual([]);
  });

  it("never clears desired values the application did not accept, when the console changes them during an accept", async () => {
    const cloud = await e2eCloud({ now: () => NOW });
    const d = await online(cloud.port);
    const shown: unknown[] = [];
    // 17 is fine, a humidity of 40 is not for this device: "not now".
    d.thing.shadow.onDesired((desired) => (shown.push(desired), !("humidity" in desired)));
    // The console adds humidity the moment the device's accept of { temperature: 17 } reaches the cloud.
    beforeServing(cloud, "shadow/upstream", () => cloud.setShadowDesired(PSN, DSN, { humidity: 40 }));
    cloud.setShadowDesired(PSN, DSN, { temperature: 17 });
    await waitFor(() => shown.length === 2, { message: "both desired states shown to the device" });
    await waitFor(() => d.thing.shadow.deadline() < 0 && d.thing.shadow.queued === 0, { message: "the shadow idle" });
    await d.thing.shadow.get(); // a barrier: everything before it was served
    expect(shown).toEqual([{ temperature: 17 }, { temperature: 17, humidity: 40 }]);
    // The platform must not believe the device applied humidity 40: it is still desired, not reported.
    expect(cloud.shadow(PSN, DSN).State).toEqual({ Reported: {}, Desired: { temperature: 17, humidity: 40 } });
    // The acceptance of { temperature: 17 } was not retried over the new state, and the device says so.
    expect(wire(cloud.log(), on("shadow/upstream")).map(([, , p]) => p)).toEqual([
      '{"Method":"update","State":{"Desired":null},"Version":1}',
    ]);
    expect(d.errors.map((e) => e.code)).toEqual(["VERSION_CONFLICT"]);
    expect(d.errors[0].message).toContain(
      "the desired state changed on the platform (now version 2) while this device was accepting it: not retried",
    );
  });

  it("accepts a desired state at the version it was shown with, when the answer comes after a newer push", async () => {
    const cloud = await e2eCloud({ now: () => NOW });
    const d = await online(cloud.port);
    const answers: ((a: boolean) => void)[] = [];
    d.thing.shadow.onDesired(() => new Promise<boolean>((resolve) => answers.push(resolve))); // e.g. a motor moving
    cloud.setShadowDesired(PSN, DSN, { temperature: 17 });
    cloud.setShadowDesired(PSN, DSN, { humidity: 40 });
    await waitFor(() => answers.length === 2, { message: "both desired states shown to the device" });
    answers[0](true); // 17 reached
    await waitFor(() => d.errors.length > 0, { message: "the answer to the first state settled" });
    answers[1](false); // humidity 40: not now
    await d.thing.shadow.get(); // a barrier
    expect(wire(cloud.log(), on("shadow/upstream")).map(([, , p]) => p)).toEqual([
      '{"Method":"update","State":{"Desired":null},"Version":1}',
    ]);
    expect(d.errors.map((e) => e.code)).toEqual(["VERSION_CONFLICT"]);
    expect(cloud.shadow(PSN, DSN).State).toEqual({ Reported: {}, Desired: { temperature: 17, humidity: 40 } });
  });

  it("keeps requests made while the cloud is down and completes them once the device is back", async () => {
    const cloud = await e2eCloud({ now: () => NOW });
    const d = await online(cloud.port);
    await cloud.stop();
    await waitFor(() => d.client.state !== "connected", { message: "the device saw the cloud go" });
    const long = { timeout: 15000 };
    const post = d.thing.post({ temperature: 5 }, long);
    const event = d.thing.event("high_temp", { temperature: 5 }, long);
    const report = d.thing.shadow.report({ temperature: 5 }, long);
    const doc = d.thing.shadow.get(long);
    await cloud.start();
    await Promise.all([post, event]);
    expect(await report).toBe(1);
    expect(await doc).toMatchObject({ reported: { temperature: 5 }, version: 1 });
    expect(cloud.properties(PSN, DSN)).toEqual({ temperature: { Value: 5, Time: NOW } });
    expect(d.connects).toBe(2);
    expect(d.errors).toEqual([]);
  });

  it("registers dynamically, persists the secret before reconnecting, logs in statically; a second registration is refused clearly", async () => {
    const cloud = await e2eCloud();
    const dir = mkdtempSync(join(tmpdir(), "uiot-e2e-"));
    await onCurrentTestEnd(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "config.json");
    const store = new FileConfigStore(file);
    const dsn = "sensor-42";
    store.set(CONFIG_KEYS.productSN, PSN_DYN);
    store.set(CONFIG_KEYS.deviceSN, dsn);
    store.set(CONFIG_KEYS.productSecret, PRODUCT_SECRET);
    const connect = tcpConnector({ host: "127.0.0.1", port: cloud.port });
    const refused: RefusedEvent[] = [];
    cloud.on("refused", (e) => refused.push(e));
    // What is on disk when the cloud sees the registration connection end.
    const onDiskAtOffline: (string | undefined)[] = [];
    cloud.on("offline", (e) => {
      if (e.authmode === 2)
        onDiskAtOffline.push(`${e.reason}: ${new FileConfigStore(file).get(CONFIG_KEYS.deviceSecret)}`);
    });

    const boot = loadIdentity(store);
    expect(boot.authmode).toBe(2);
    const registered = await register(boot, { store, connect, clock: nodeClock, backoff: FAST });
    const secret = cloud.device(PSN_DYN, dsn)?.deviceSecret as string;
    expect(secret).toMatch(/^[a-z0-9]{16}$/);
    expect(registered.toString()).toBe(
      `UIoT device ${PSN_DYN}.${dsn} (authmode 1, DeviceSecret ****${secret.slice(-2)})`,
    );
    await waitFor(() => onDiskAtOffline.length === 1, { message: "the registration connection ended" });
    expect(onDiskAtOffline).toEqual([`DISCONNECT: ${secret}`]);
    expect(cloud.device(PSN_DYN, dsn)).toMatchObject({ registered: true, activated: false });

    // Reboot: the identity comes from the store, now authmode 1 with the stored secret.
    const rebooted = loadIdentity(new FileConfigStore(file));
    expect([rebooted.authmode, rebooted.username]).toEqual([1, `${PSN_DYN}|${dsn}|1`]);
    const d = await online(cloud.port, { identity: rebooted });
    expect(cloud.device(PSN_DYN, dsn)).toMatchObject({ activated: true, online: true });
    await d.thing.post({ temperature: 1 });

    // Registering again with the secret stored: refused on the device, nothing reaches the cloud.
    const again = new Identity({ productSN: PSN_DYN, deviceSN: dsn, productSecret: PRODUCT_SECRET });
    const local = await register(again, { store, connect, clock: nodeClock, backoff: FAST }).catch((e: unknown) => e);
    expect(local).toMatchObject({ code: "SECRET_EXISTS" });
    // The secret lost (a blank store): the cloud refuses (once only) and the device says why; the online one stays.
    const lost = new FileConfigStore(join(dir, "blank.json"));
    const remote = await register(again, { store: lost, connect, clock: nodeClock, backoff: FAST }).catch(
      (e: unknown) => e,
    );
    expect(remote).toBeInstanceOf(UiotError);
    expect(remote).toMatchObject({ code: "REGISTRATION_FAILED", cause: { code: "CONNECT_REFUSED", returnCode: 5 } });
    expect((remote as Error).message).toContain(
      "registration works once: after the first login with the DeviceSecret it is refused",
    );
    expect(lost.get(CONFIG_KEYS.deviceSecret)).toBeUndefined();
    expect(refused).toEqual([
      {
        clientId: `${PSN_DYN}.${dsn}`,
        username: `${PSN_DYN}|${dsn}|2`,
        returnCode: 5,
        reason: "the device has logged in with its DeviceSecret: dynamic registration works once only",
      },
    ]);
    expect(new FileConfigStore(file).get(CONFIG_KEYS.deviceSecret)).toBe(secret);
    // A product with dynamic registration off: refused at CONNECT, and the device says what to check.
    const off = new Identity({ productSN: PSN, deviceSN: "sensor-43", productSecret: PRODUCT_SECRET });
    const switchedOff = await register(off, { store: lost, connect, clock: nodeClock, backoff: FAST }).catch(
      (e: unknown) => e,
    );
    expect(switchedOff).toMatchObject({ code: "REGISTRATION_FAILED", cause: { returnCode: 5 } });
    expect((switchedOff as Error).message).toContain("that dynamic registration is switched on for the product");
    expect(refused.at(-1)?.reason).toBe("dynamic registration is off for this product");

    expect(d.client.state).toBe("connected");
    expect(d.disconnects).toEqual([]);
    expect(JSON.stringify(cloud.log())).not.toContain(secret);
  });

  it("logs in over TLS with the CA given; with only the platform's root CA (the default) the emulator's certificate is refused", async () => {
    const certs = await getTestCerts();
    const cloud = await e2eCloud({ tls: { cert: certs.server.chain, key: certs.server.key } });
    const endpoint = parseEndpoint(`mqtts://localhost:${cloud.tlsPort}`);
    const logs: string[] = [];
    const log = (level: string, message: string) => void logs.push(`${level}: ${message}`);
    const d = await online(nodeConnector(endpoint, uiotTls(endpoint, { ca: [certs.ca.cert] }), log));
    await d.thing.post({ temperature: 20 });
    expect(cloud.online()).toHaveLength(1);
    d.close();
    const untrusting = await device(nodeConnector(endpoint, uiotTls(endpoint), log));
    await waitFor(() => untrusting.disconnects.length > 0, { message: "the TLS failure" });
    expect(untrusting.disconnects[0]).toMatchObject({ code: "CONNECTION_LOST", cause: { code: "TLS_UNKNOWN_CA" } });
    expect(untrusting.connects).toBe(0);
    expect(logs.filter((l) => l.startsWith("warn"))).toEqual([]);
  });

  it("refuses a topic outside the device's own space locally: nothing reaches the cloud", async () => {
    const cloud = await e2eCloud();
    const denied: DeniedEvent[] = [];
    cloud.on("denied", (e) => denied.push(e));
    const d = await online(cloud.port);
    const publishes = [
      `/${PSN}/other-device/upload`,
      `/otherproduct0001/${DSN}/upload`,
      `/$system/${PSN}/other-device/shadow/upstream`,
      "/devices/thermostat",
      "upload",
      `${SYS}tmodel/property/set`,
      `${SYS}shadow/document`,
      `/${PSN}/${DSN}/set`,
      `/${PSN}/$broadcast/all`,
    ];
    for (const topic of publishes) {
      const error = (() => {
        try {
          d.client.publish(topic, "{}", { qos: 1 });
        } catch (e) {
          return e;
        }
      })();
      expect(error, topic).toBeInstanceOf(MqttError);
      expect(error, topic).toMatchObject({ code: "NOT_ALLOWED", message: expect.stringMatching(/^UIoT Core: /) });
    }
    const filters = [
      `/${PSN}/other-device/set`,
      `/${PSN}/+/set`,
      "#",
      `/$system/${PSN}/${DSN}/#`,
      `/$system/${PSN}/other-device/tmodel/command`,
      `${SYS}shadow/upstream`,
      `/${PSN}/${DSN}/upload`,
    ];
    for (const filter of filters)
      expect(() => d.client.subscribe(filter, 1), filter).toThrow(expect.objectContaining({ code: "NOT_ALLOWED" }));
    expect(() => d.client.publish(`/${PSN}/${DSN}/upload`, "x", { qos: 1, retain: true })).toThrow(
      "UIoT Core does not allow retained messages",
    );
    expect(() => d.client.publish(`/${PSN}/${DSN}/upload`, "x", { qos: 2 as 1 })).toThrow(MqttError);

    // The connection carries on: an own topic still works, and it is the only message the cloud ever saw.
    const sent = deferred<unknown>();
    d.client.publish(`/${PSN}/${DSN}/upload`, '{"ok":1}', { qos: 1 }, (e) => sent.resolve(e));
    expect(await sent.promise).toBeUndefined();
    expect(cloud.log().map((e) => [e.direction, e.topic, e.payload])).toEqual([
      ["in", `/${PSN}/${DSN}/upload`, '{"ok":1}'],
    ]);
    expect(denied).toEqual([]);
    expect(d.disconnects).toEqual([]);
    expect(d.client.state).toBe("connected");
  });

  it("reports a wrong DeviceSecret as CONNECT_REFUSED with a message a person can act on (and no secret)", async () => {
    const cloud = await e2eCloud();
    const refused: RefusedEvent[] = [];
    cloud.on("refused", (e) => refused.push(e));
    const d = await device(cloud.port, { identity: staticIdentity(DSN, "wrongsecret00001") });
    await waitFor(() => d.disconnects.length >= 1, { message: "the refusal" });
    const [error] = d.disconnects;
    expect(error).toMatchObject({ code: "CONNECT_REFUSED", returnCode: 4 });
    expect(error.message).toBe(
      "connection refused (code 4): bad user name or password: check the credentials (for UIoT Core, the DeviceSecret and the authmode in the user name)",
    );
    expect(refused[0]).toEqual({
      clientId: `${PSN}.${DSN}`,
      username: `${PSN}|${DSN}|1`,
      returnCode: 4,
      reason: "wrong DeviceSecret",
    });
    expect(d.connects).toBe(0);
    // An unknown DeviceSN is refused the same way.
    const stranger = await device(cloud.port, { identity: staticIdentity("nobody-01") });
    await waitFor(() => stranger.disconnects.length >= 1, { message: "the refusal" });
    expect(stranger.disconnects[0]).toMatchObject({ code: "CONNECT_REFUSED", returnCode: 4 });
    expect(refused.find((r) => r.clientId === `${PSN}.nobody-01`)?.reason).toBe(`unknown device ${PSN}/nobody-01`);
    for (const e of [...d.disconnects, ...d.errors]) expect(e.message).not.toContain("wrongsecret");
  });

  it("refuses a keepalive outside 30..1200 s before connecting; the edges log in", async () => {
    const cloud = await e2eCloud();
    const refused: RefusedEvent[] = [];
    cloud.on("refused", (e) => refused.push(e));
    let dials = 0;
    const tcp = tcpConnector({ host: "127.0.0.1", port: cloud.port });
    const connect: typeof tcp = (h) => (dials++, tcp(h));
    for (const keepalive of [0, 10, 29, 1201, 3600]) {
      expect(() => uiotClient(staticIdentity(), { connect, clock: nodeClock, keepalive }), String(keepalive)).toThrow(
        new MqttError("NOT_ALLOWED", `UIoT Core requires a keepalive from 30 to 1200 s, not ${keepalive} s`),
      );
    }
    expect(dials).toBe(0);
    for (const keepalive of [30, 1200]) {
      const d = await online(cloud.port, { client: { keepalive } });
      d.close();
      await waitFor(() => cloud.online().length === 0, { message: "offline" });
    }
    expect(refused).toEqual([]);
  });

  it("comes back after a kick from the console, without calling it a duplicated DeviceSN", async () => {
    const cloud = await e2eCloud();
    const offline: OfflineEvent[] = [];
    cloud.on("offline", (e) => offline.push(e));
    const d = await online(cloud.port);
    expect(cloud.kick(PSN, DSN)).toBe(true);
    await waitFor(() => d.connects === 2 && d.client.state === "connected", { message: "the device reconnected" });
    expect(d.disconnects.map((e) => e.code)).toEqual(["CONNECTION_LOST"]);
    expect(offline.map((e) => e.reason)).toEqual(["kicked from the console"]);
    await d.thing.post({ temperature: 1 });
    expect(d.errors).toEqual([]);
  });

  it("surfaces a duplicated DeviceSN on both devices: each is kicked and reports KICKED with the hint", async () => {
    const cloud = await e2eCloud();
    const offline: OfflineEvent[] = [];
    cloud.on("offline", (e) => offline.push(e));
    const first = await online(cloud.port);
    const second = await device(cloud.port);
    await waitFor(() => first.errorsOf("KICKED").length > 0 && second.errorsOf("KICKED").length > 0, {
      timeoutMs: 15000,
      message: "KICKED on both devices",
    });
    for (const d of [first, second]) {
      const [kicked] = d.errorsOf("KICKED");
      expect(kicked.message).toBe(
        "kicked 3 times within a minute of connecting: is another device using this DeviceSN?",
      );
      expect(kicked.cause).toMatchObject({ code: "CONNECTION_LOST" });
    }
    expect(
      offline.filter((e) => e.reason === "kicked: the same device logged in on another connection").length,
    ).toBeGreaterThanOrEqual(6);
  });
});
