// The platform's connection limits: subscriptions, publish rate, packet size, retain and QoS 2, one login per device.
import { describe, expect, it } from "vitest";
import type { OfflineEvent } from "../../../tools/cloud";
import { waitFor } from "../../helpers/wait";
import { DSN, login, PSN, testCloud } from "./helpers";

const own = (rest: string) => `/${PSN}/${DSN}/${rest}`;

function nextOffline(cloud: Awaited<ReturnType<typeof testCloud>>): Promise<OfflineEvent> {
  return new Promise((resolve) => cloud.once("offline", resolve));
}

describe("limits", () => {
  it("grants 100 subscriptions and refuses the 101st with SUBACK 0x80; re-subscribing is not a new one", async () => {
    const cloud = await testCloud();
    const device = await login(cloud);
    const hundred = Array.from({ length: 100 }, (_, i) => own(`t${i}`));
    expect(await device.subscribe(...hundred)).toEqual(hundred.map(() => 1));
    expect(await device.subscribe(own("t100"), own("t0"))).toEqual([128, 1]);
    await device.client.unsubscribeAsync(own("t0"));
    expect(await device.subscribe(own("t100"))).toEqual([1]);
    expect(await device.subscribe(own("#"))).toEqual([128]);
    expect(device.client.connected).toBe(true);
  });

  it("closes a connection that publishes more than 30 messages in a second, any QoS", async () => {
    const cloud = await testCloud();
    const device = await login(cloud);
    for (let i = 0; i < 30; i++) device.client.publish(own("upload"), `{"n":${i}}`, { qos: i % 2 === 0 ? 0 : 1 });
    await waitFor(() => cloud.log().length === 30);
    expect(device.client.connected).toBe(true);
    const offline = nextOffline(cloud);
    for (let i = 0; i < 40; i++) device.client.publish(own("upload"), `{"n":${30 + i}}`, { qos: 0 });
    await device.closed;
    expect((await offline).reason).toBe(`closed: publish to ${own("upload")}: more than 30 messages per second`);
  });

  it("lets 30 messages a second through for seconds on end", async () => {
    const cloud = await testCloud();
    const device = await login(cloud);
    for (let second = 0; second < 3; second++) {
      const sent = Array.from({ length: 30 }, (_, i) => device.publish(own("upload"), `{"s":${second},"n":${i}}`));
      await Promise.all(sent);
      await new Promise((resolve) => setTimeout(resolve, 1050));
    }
    expect(device.client.connected).toBe(true);
    expect(cloud.log()).toHaveLength(90);
  });

  it("accepts a packet of exactly 256 KB and closes the connection on a larger one before keeping it", async () => {
    const cloud = await testCloud();
    const device = await login(cloud);
    const topic = own("upload"); // 38 bytes; PUBLISH QoS 1 = 1 + 3 (length) + 2 + 38 + 2 (id) + payload
    const fits = 256 * 1024 - (1 + 3 + 2 + topic.length + 2);
    await device.publish(topic, "x".repeat(fits));
    expect(cloud.log().at(-1)?.payload).toMatch(/^x{4096}… \(262098 characters\)$/);
    const offline = nextOffline(cloud);
    await device.publishClosed(topic, "x".repeat(fits + 1));
    expect((await offline).reason).toBe("closed: a packet of 262145 bytes, more than 262144");
    expect(cloud.log()).toHaveLength(1);
  });

  it("closes the connection on a retained publish and on a QoS 2 publish", async () => {
    const cloud = await testCloud();
    for (const [options, why] of [
      [{ retain: true }, "retained messages are not supported"],
      [{ qos: 2 as const }, "QoS 2 is not supported"],
    ] as const) {
      const device = await login(cloud);
      const offline = nextOffline(cloud);
      await device.publishClosed(own("upload"), "{}", options);
      expect((await offline).reason).toBe(`closed: publish to ${own("upload")}: ${why}`);
    }
    expect(cloud.log()).toEqual([]);
  });

  it("kicks the older connection when the same device logs in again", async () => {
    const cloud = await testCloud();
    const first = await login(cloud);
    const offline = nextOffline(cloud);
    const second = await login(cloud);
    await first.closed;
    expect(await offline).toMatchObject({
      productSN: PSN,
      deviceSN: DSN,
      reason: "kicked: the same device logged in on another connection",
    });
    expect(second.client.connected).toBe(true);
    expect(cloud.online()).toHaveLength(1);
    expect(cloud.device(PSN, DSN)?.online).toBe(true);
    expect(await second.subscribe(second.sys("shadow/get_reply"))).toEqual([1]);
    expect(JSON.parse(await second.request("shadow/get", { Method: "get" }, "shadow/get_reply")).Version).toBe(0);
  });
});
