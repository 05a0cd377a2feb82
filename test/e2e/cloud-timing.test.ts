// End to end against the emulated UIoT Core where real time is the point: the platform's 5 s command window and
// its 30 messages a second. Its own file, so it runs beside the other end-to-end tests.
import { describe, expect, it } from "vitest";
import type { CommandEvent, DeniedEvent, OfflineEvent } from "../../hosts/node/cloud";
import { nodeClock } from "../../hosts/node/clock";
import { tcpConnector } from "../../hosts/node/tcp";
import { Client } from "../../src/mqtt/client";
import { onCurrentTestEnd } from "../helpers/cleanup";
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
    expect(await cloud.sendCommand(PSN, DSN, "ping")).toMatchObject({ RetCode: 0, Identifier: "ping", Output: { pong: 1 } });
    expect(d.errorsOf("COMMAND_LATE")).toEqual([]);

    const reply = await late;
    expect(Date.now() - started).toBeGreaterThanOrEqual(4900);
    expect(reply).toEqual({ RequestID: reply.RequestID, Identifier: "calibrate", RetCode: 100040, Message: "Command timeout" });
    // The device tells the application at its own 5 s mark, before the handler has finished.
    await waitFor(() => d.errorsOf("COMMAND_LATE").length === 1, { message: "COMMAND_LATE on the device" });
    const [error] = d.errorsOf("COMMAND_LATE");
    expect(error.message).toMatch(new RegExp(`^command "calibrate" \\(RequestID ${reply.RequestID}\\) was not answered within the platform's 5000 ms`));
    expect(error.message).toContain('the platform has already told the caller "Command timeout" (RetCode 100040)');

    // The answer still goes out when the handler finishes; the cloud logs it and keeps the timeout it gave.
    release.resolve();
    const replyTopic = `${SYS}tmodel/command_reply/${reply.RequestID}`;
    await waitFor(() => cloud.log().some((e) => e.topic === replyTopic), { message: "the late answer reached the cloud" });
    expect(cloud.log().find((e) => e.topic === replyTopic)?.payload).toBe(`{"RetCode":0,"RequestID":"${reply.RequestID}","Identifier":"calibrate","Output":{"done":1}}`);
    expect(commands.map((c) => [c.Identifier, c.reply.RetCode])).toEqual([["ping", 0], ["calibrate", 100040]]);
    expect(d.errorsOf("COMMAND_LATE")).toHaveLength(1);
    expect(d.errors.filter((e) => e.code !== "COMMAND_LATE")).toEqual([]);
  });

  it("spaces 100 quick publishes to 30 a second: the cloud gets every one, in order, and never kicks", async () => {
    const cloud = await e2eCloud();
    const offline: OfflineEvent[] = [];
    const denied: DeniedEvent[] = [];
    cloud.on("offline", (e) => offline.push(e));
    cloud.on("denied", (e) => denied.push(e));
    const d = await online(cloud.port, { client: { outbox: { maxMessages: 128, maxBytes: 64 * 1024 } } });
    const topic = `/${PSN}/${DSN}/upload`;
    const sent: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      sent.push(new Promise((resolve, reject) => d.client.publish(topic, `{"n":${i}}`, { qos: i % 2 === 0 ? 1 : 0 }, (e) => (e ? reject(e) : resolve()))));
    }
    await Promise.all(sent);
    await waitFor(() => cloud.log().length === 100, { message: "100 messages at the cloud" });
    const log = cloud.log();
    // In order per QoS (MQTT orders messages of one QoS; the broker may pass a QoS 0 message before a QoS 1 one).
    for (const qos of [0, 1]) {
      expect(log.filter((e) => e.qos === qos).map((e) => e.payload)).toEqual(Array.from({ length: 50 }, (_, i) => `{"n":${2 * i + 1 - qos}}`));
    }
    // 30 a second: the last 10 cannot arrive before 3 s after the first (a little slack for the loopback's jitter).
    expect(log[99].time - log[0].time).toBeGreaterThanOrEqual(2950);
    expect(offline).toEqual([]);
    expect(denied).toEqual([]);
    expect(d.disconnects).toEqual([]);
    expect(d.errors).toEqual([]);
    d.close();
    await waitFor(() => offline.length === 1, { message: "the device went offline" });

    // The same burst from a client without the UIoT profile's pacing: the cloud closes the connection.
    const identity = staticIdentity();
    const plain = new Client({
      clientId: identity.clientId, username: identity.username, password: identity.revealSecret(), keepalive: 300,
      connect: tcpConnector({ host: "127.0.0.1", port: cloud.port }), clock: nodeClock, backoff: { min: 60000, max: 60000 },
      outbox: { maxMessages: 128, maxBytes: 64 * 1024 },
    });
    await onCurrentTestEnd(() => plain.close());
    plain.start();
    for (let i = 0; i < 100; i++) plain.publish(topic, `{"n":${i}}`, { qos: 0 });
    await waitFor(() => offline.length === 2, { message: "the unpaced client closed by the cloud" });
    expect(offline[1].reason).toBe(`closed: publish to ${topic}: more than 30 messages per second`);
  });
});
