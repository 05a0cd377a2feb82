// The console API that the simulator and the tests drive: online devices and their events, kick, custom and
// broadcast publishes, the bounded message log, stop/start on the same port, TLS.
import { describe, expect, it } from "vitest";
import { startCloud, type LogEntry, type OfflineEvent, type OnlineDevice } from "../../../tools/cloud";
import { getTestCerts } from "../../helpers/certs";
import { onCurrentTestEnd } from "../../helpers/cleanup";
import { canConnect, getFreePort } from "../../helpers/ports";
import { waitFor } from "../../helpers/wait";
import { DSN, login, NOW, PSN, SECRET, testCloud } from "./helpers";

describe("console", () => {
  it("lists online devices and reports online/offline with the reason", async () => {
    let now = NOW;
    const cloud = await testCloud({ now: () => now });
    const onlines: OnlineDevice[] = [];
    const offlines: OfflineEvent[] = [];
    cloud.on("online", (d) => onlines.push(d));
    cloud.on("offline", (d) => offlines.push(d));
    expect(cloud.online()).toEqual([]);

    const device = await login(cloud);
    const listed = cloud.online();
    expect(listed).toEqual([
      { productSN: PSN, deviceSN: DSN, clientId: `${PSN}.${DSN}`, authmode: 1, since: NOW, address: "127.0.0.1" },
    ]);
    expect(onlines).toEqual(listed);
    now += 1000;
    await device.client.endAsync(false); // sends DISCONNECT
    await waitForOffline(offlines, 1);
    expect(offlines[0]).toEqual({
      productSN: PSN,
      deviceSN: DSN,
      clientId: `${PSN}.${DSN}`,
      authmode: 1,
      reason: "DISCONNECT",
    });

    const again = await login(cloud);
    again.client.stream.destroy(); // the link drops
    await waitForOffline(offlines, 2);
    expect(offlines[1].reason).toBe("connection closed");
    expect(cloud.online()).toEqual([]);
    expect(cloud.device(PSN, DSN)?.online).toBe(false);
  });

  it("kicks a device", async () => {
    const cloud = await testCloud();
    const device = await login(cloud);
    const offline = new Promise<OfflineEvent>((resolve) => cloud.once("offline", resolve));
    expect(cloud.kick(PSN, DSN)).toBe(true);
    await device.closed;
    expect((await offline).reason).toBe("kicked from the console");
    expect(cloud.kick(PSN, DSN)).toBe(false);
  });

  it("publishes on the device's custom topics and the product's broadcast topics", async () => {
    const cloud = await testCloud({ now: () => NOW });
    const device = await login(cloud);
    expect(await device.subscribe(`/${PSN}/${DSN}/set`, `/${PSN}/$broadcast/#`)).toEqual([1, 1]);
    const set = device.next(`/${PSN}/${DSN}/set`);
    cloud.publish(`/${PSN}/${DSN}/set`, '{"light":1}');
    expect(await set).toBe('{"light":1}');
    const all = device.next(`/${PSN}/$broadcast/news`);
    cloud.publish(`/${PSN}/$broadcast/news`, "hello everyone");
    expect(await all).toBe("hello everyone");
    expect(cloud.log()).toEqual([
      {
        seq: 1,
        time: NOW,
        direction: "out",
        productSN: PSN,
        deviceSN: DSN,
        topic: `/${PSN}/${DSN}/set`,
        qos: 1,
        payload: '{"light":1}',
      },
      {
        seq: 2,
        time: NOW,
        direction: "out",
        productSN: PSN,
        topic: `/${PSN}/$broadcast/news`,
        qos: 1,
        payload: "hello everyone",
      },
    ]);
    expect(() => cloud.publish(`/${PSN}/nobody/set`, "x")).toThrow("not a topic of a known product or device");
    expect(() => cloud.publish(`/$system/${PSN}/${DSN}/shadow/downstream`, "x")).toThrow(
      "system topics are the platform's",
    );
  });

  it("keeps a bounded log of both directions and emits each entry", async () => {
    const cloud = await testCloud({ logSize: 3 });
    const emitted: LogEntry[] = [];
    cloud.on("message", (m) => emitted.push(m));
    const device = await login(cloud);
    await device.subscribe(device.sys("shadow/get_reply"));
    for (let i = 0; i < 2; i++) await device.request("shadow/get", { Method: "get" }, "shadow/get_reply");
    await device.publish(`/${PSN}/${DSN}/upload`, "last");
    expect(emitted.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(cloud.log()).toEqual(emitted.slice(2));
    expect(cloud.log().map((m) => `${m.direction} ${m.topic.split("/").pop()}`)).toEqual([
      "in get",
      "out get_reply",
      "in upload",
    ]);
  });

  it("stops and starts on the same port, keeping devices and shadows; a stopped cloud refuses connections", async () => {
    const port = await getFreePort();
    const cloud = await testCloud({ port });
    expect(cloud.port).toBe(port);
    const device = await login(cloud);
    await device.subscribe(device.sys("shadow/downstream"));
    await device.request(
      "shadow/upstream",
      { Method: "update", State: { Reported: { a: 1 } }, Version: 0 },
      "shadow/downstream",
    );
    const offline = new Promise<OfflineEvent>((resolve) => cloud.once("offline", resolve));

    await cloud.stop();
    expect(cloud.running).toBe(false);
    await device.closed;
    expect((await offline).reason).toBe("the cloud stopped");
    expect(cloud.online()).toEqual([]);
    expect(await canConnect(port)).toBe(false);

    await cloud.start();
    expect(cloud.port).toBe(port);
    const back = await login(cloud);
    await back.subscribe(back.sys("shadow/get_reply"));
    expect(JSON.parse(await back.request("shadow/get", { Method: "get" }, "shadow/get_reply"))).toMatchObject({
      State: { Reported: { a: 1 } },
      Version: 1,
    });
    expect(cloud.device(PSN, DSN)).toMatchObject({ activated: true, online: true });
  });

  it("cannot start again once closed", async () => {
    const cloud = await testCloud();
    await cloud.close();
    await cloud.close();
    await expect(cloud.start()).rejects.toThrow("the cloud is closed");
  });

  it("adds products and devices while running, and refuses unknown ones in the console", async () => {
    const cloud = await testCloud();
    cloud.addProduct({ productSN: "newproduct000001", productSecret: "newproductsecret" });
    cloud.addDevice({ productSN: "newproduct000001", deviceSN: "new-01", deviceSecret: SECRET });
    await login(cloud, { productSN: "newproduct000001", deviceSN: "new-01" });
    expect(() => cloud.addDevice({ productSN: "nope", deviceSN: "new-01" })).toThrow("unknown product nope");
    expect(() => cloud.addDevice({ productSN: PSN, deviceSN: "x" })).toThrow("not a DeviceSN");
    expect(() => cloud.shadow(PSN, "nobody")).toThrow(`unknown device ${PSN}/nobody`);
    expect(cloud.device(PSN, "nobody")).toBeUndefined();
  });

  it("listens with TLS too when given a certificate and key", async () => {
    const certs = await getTestCerts();
    const cloud = await startCloud({
      products: [{ productSN: PSN, productSecret: "productsecret001" }],
      devices: [{ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET }],
      tls: { cert: certs.server.chain, key: certs.server.key },
    });
    await onCurrentTestEnd(() => cloud.close());
    expect(cloud.tlsUrl).toBe(`mqtts://127.0.0.1:${cloud.tlsPort}`);
    expect(cloud.tlsPort).not.toBe(cloud.port);
    const secure = await login(cloud, { url: cloud.tlsUrl, mqtt: { ca: certs.ca.cert, servername: "localhost" } });
    expect(cloud.online()).toHaveLength(1);
    await secure.end();
    await login(cloud); // plain MQTT still listens
    const plainOnly = await testCloud();
    expect(plainOnly.tlsUrl).toBeUndefined();
  });
});

async function waitForOffline(list: OfflineEvent[], n: number): Promise<void> {
  await waitFor(() => list.length >= n, { message: `${n} offline events` });
}
