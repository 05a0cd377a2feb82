// The aedes helper: an in-process broker on a free loopback port, with auth hooks.
import { describe, expect, it } from "vitest";
import { startAedes } from "../helpers/aedes.ts";
import { canConnect } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { connect, end, nextMessage } from "./mqttjs.ts";

describe("aedes helper", () => {
  it("round-trips a message and shows it to the test through broker events", async () => {
    const aedes = await startAedes();
    expect(aedes.url).toBe(`mqtt://127.0.0.1:${aedes.port}`);
    const published: string[] = [];
    aedes.broker.on("publish", (packet, client) => {
      if (client) published.push(packet.topic);
    });
    const { client } = await connect(aedes.url);
    await client.subscribeAsync("a/b", { qos: 1 });
    const got = nextMessage(client, "a/b");
    await client.publishAsync("a/b", "hi", { qos: 1 });
    expect((await got).toString()).toBe("hi");
    // aedes emits "publish" once its own series for the message is done, which can come after the delivery
    await waitFor(() => published.length > 0, { message: "aedes's publish event" });
    expect(published).toEqual(["a/b"]);
    await end(client);
    await aedes.close();
    await aedes.close(); // idempotent
    expect(await canConnect(aedes.port)).toBe(false);
  });

  it("takes authenticate / authorizePublish / authorizeSubscribe hooks", async () => {
    const aedes = await startAedes({
      authenticate: (_client, username, password, done) =>
        done(null, username === "dev" && password?.toString() === "pw"),
      authorizePublish: (_client, packet, done) =>
        done(packet.topic.startsWith("dev/") ? null : new Error("not yours")),
      authorizeSubscribe: (_client, sub, done) => done(null, sub.topic.startsWith("dev/") ? sub : null),
    });
    await expect(connect(aedes.url, { username: "dev", password: "nope" })).rejects.toMatchObject({ code: 5 });

    const { client } = await connect(aedes.url, { username: "dev", password: "pw" });
    expect((await client.subscribeAsync("dev/in", { qos: 1 })).map((g) => g.qos)).toEqual([1]);
    // MQTT.js turns a SUBACK failure (0x80) into a rejection
    await expect(client.subscribeAsync("other/in", { qos: 1 })).rejects.toThrow(/Subscribe error/);
    const got = nextMessage(client, "dev/in");
    await client.publishAsync("dev/in", "ok", { qos: 1 });
    expect((await got).toString()).toBe("ok");
    await end(client);
    await aedes.close();
  });

  it("closes with clients still connected", async () => {
    const aedes = await startAedes();
    const { client } = await connect(aedes.url);
    const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
    await aedes.close();
    await closed;
    await end(client, true);
  });
});
