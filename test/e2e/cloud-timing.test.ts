// End to end against the emulated UIoT Core where real time is the point: the platform's 5 s command window and
// its 30 messages a second (the device paces them as 30 in any 1.25 s: a margin for the network's jitter). Its own
// file, so it runs beside the other end-to-end tests.
import { describe, expect, it } from "vitest";
import type { CommandEvent, DeniedEvent, OfflineEvent } from "../../tools/cloud";
import { nodeClock } from "../../hosts/node/clock";
import { tcpConnector } from "../../hosts/node/tcp";
import { Client } from "../../src/mqtt/client";
import { UIOT_PUBLISH_WINDOW } from "../../src/uiot/platform";
import { onCurrentTestEnd } from "../helpers/cleanup";
import { startFaultProxy } from "../helpers/fault-proxy";
import { waitFor } from "../helpers/wait";
import { deferred, DSN, e2eCloud, online, PSN, staticIdentity, SYS } from "./rig";

describe("device layer against the emulated UIoT Core, in real time", () => {
  it("answers one command in time while another is late: the console sees 100040, the device reports COMMAND_LATE", async () => {
    const cloud = await e2eCloud();
    const commands: CommandEvent[] = [];
    cloud.on("command", (e) => commands.push(e));
    const d = await online(cloud.port);
    const release = deferred();
    d.thing.onCommand("calibrate", async () => {
      await release.promise;
      return { output: { done: 1 } };
    });
    d.thing.onCommand("ping", () => ({ output: { pong: 1 } }));

    const started = Date.now();
    const late = cloud.sendCommand(PSN, DSN, "calibrate", { seconds: 9 });
    // A command answered in time meanwhile: the slow one holds nothing up.
    expect(await cloud.sendCommand(PSN, DSN, "ping")).toMatchObject({
      RetCode: 0,
      Identifier: "ping",
      Output: { pong: 1 },
    });
    expect(d.errorsOf("COMMAND_LATE")).toEqual([]);

    const reply = await late;
    expect(Date.now() - started).toBeGreaterThanOrEqual(4900);
    expect(reply).toEqual({
      RequestID: reply.RequestID,
      Identifier: "calibrate",
      RetCode: 100040,
      Message: "Command timeout",
    });
    // The device tells the application at its own 5 s mark, before the handler has finished.
    await waitFor(() => d.errorsOf("COMMAND_LATE").length === 1, { message: "COMMAND_LATE on the device" });
    const [error] = d.errorsOf("COMMAND_LATE");
    expect(error.message).toMatch(
      new RegExp(
        `^command "calibrate" \\(RequestID ${reply.RequestID}\\) was not answered within the platform's 5000 ms`,
      ),
    );
    expect(error.message).toContain('the platform has already told the caller "Command timeout" (RetCode 100040)');

    // The answer still goes out when the handler finishes; the cloud logs it and keeps the timeout it gave.
    release.resolve();
    const replyTopic = `${SYS}tmodel/command_reply/${reply.RequestID}`;
    await waitFor(() => cloud.log().some((e) => e.topic === replyTopic), {
      message: "the late answer reached the cloud",
    });
    expect(cloud.log().find((e) => e.topic === replyTopic)?.payload).toBe(
      `{"RetCode":0,"RequestID":"${reply.RequestID}","Identifier":"calibrate","Output":{"done":1}}`,
    );
    expect(commands.map((c) => [c.Identifier, c.reply.RetCode])).toEqual([
      ["ping", 0],
      ["calibrate", 100040],
    ]);
    expect(d.errorsOf("COMMAND_LATE")).toHaveLength(1);
    expect(d.errors.filter((e) => e.code !== "COMMAND_LATE")).toEqual([]);
  });

  it("spaces 100 quick publishes to 30 per 1.25 s: the cloud gets every one, in order, and never kicks", async () => {
    const cloud = await e2eCloud();
    const offline: OfflineEvent[] = [];
    const denied: DeniedEvent[] = [];
    cloud.on("offline", (e) => offline.push(e));
    cloud.on("denied", (e) => denied.push(e));
    const d = await online(cloud.port, { client: { outbox: { maxMessages: 128, maxBytes: 64 * 1024 } } });
    const topic = `/${PSN}/${DSN}/upload`;
    const sent: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      sent.push(
        new Promise((resolve, reject) =>
          d.client.publish(topic, `{"n":${i}}`, { qos: i % 2 === 0 ? 1 : 0 }, (e) => (e ? reject(e) : resolve())),
        ),
      );
    }
    await Promise.all(sent);
    await waitFor(() => cloud.log().length === 100, { message: "100 messages at the cloud" });
    const log = cloud.log();
    // In order per QoS (MQTT orders messages of one QoS; the broker may pass a QoS 0 message before a QoS 1 one).
    for (const qos of [0, 1]) {
      expect(log.filter((e) => e.qos === qos).map((e) => e.payload)).toEqual(
        Array.from({ length: 50 }, (_, i) => `{"n":${2 * i + 1 - qos}}`),
      );
    }
    // 30 per window: the last 10 cannot arrive before 3 windows after the first (a little slack for the loopback).
    expect(log[99].time - log[0].time).toBeGreaterThanOrEqual(3 * UIOT_PUBLISH_WINDOW - 50);
    expect(offline).toEqual([]);
    expect(denied).toEqual([]);
    expect(d.disconnects).toEqual([]);
    expect(d.errors).toEqual([]);
    d.close();
    await waitFor(() => offline.length === 1, { message: "the device went offline" });

    // The same burst from a client without the UIoT profile's pacing: the cloud closes the connection.
    const identity = staticIdentity();
    const plain = new Client({
      clientId: identity.clientId,
      username: identity.username,
      password: identity.revealSecret(),
      keepalive: 300,
      connect: tcpConnector({ host: "127.0.0.1", port: cloud.port }),
      clock: nodeClock,
      backoff: { min: 60000, max: 60000 },
      outbox: { maxMessages: 128, maxBytes: 64 * 1024 },
    });
    await onCurrentTestEnd(() => plain.close());
    plain.start();
    for (let i = 0; i < 100; i++) plain.publish(topic, `{"n":${i}}`, { qos: 0 });
    await waitFor(() => offline.length === 2, { message: "the unpaced client closed by the cloud" });
    expect(offline[1].reason).toBe(`closed: publish to ${topic}: more than 30 messages per second`);
  });

  it("keeps under the cloud's 30 a second through a jittery network (paced exactly at 30 per second, it was kicked)", async () => {
    const cloud = await e2eCloud();
    const offline: OfflineEvent[] = [];
    cloud.on("offline", (e) => offline.push(e));
    // Up to 100 ms of delay now and then on the way up: messages sent a second apart arrive less than a second apart.
    const proxy = await startFaultProxy({ target: { port: cloud.port }, seed: 1 });
    const d = await online(proxy.port, { client: { outbox: { maxMessages: 128, maxBytes: 64 * 1024 } } });
    proxy.setFaults({ stall: { probability: 0.1, maxMs: 100 }, directions: "up" });
    const topic = `/${PSN}/${DSN}/upload`;
    for (let i = 0; i < 100; i++) d.client.publish(topic, `{"n":${i}}`, { qos: 0 });
    await waitFor(() => cloud.log().length === 100 || offline.length > 0, {
      message: "100 messages at the cloud, or a kick",
    });
    expect(offline, `fault proxy seed ${proxy.seed}`).toEqual([]);
    expect(cloud.log().map((e) => e.payload)).toEqual(Array.from({ length: 100 }, (_, i) => `{"n":${i}}`));
    expect(d.disconnects).toEqual([]);
  });
});
