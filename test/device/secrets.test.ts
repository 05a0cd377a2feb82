// The firmware entry (src/device/main.ts) on the Node host against the emulated cloud, for what it does with the
// device's secrets: plain text to a host that is not loopback only with the opt-in, and a warning at every connect
// when it is given; the ProductSecret deleted from the store once the DeviceSecret is stored (unless kept).
import type * as dns from "node:dns";
import type * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createNodeHost } from "../../hosts/node/host";
import { CONFIG_KEYS } from "../../src/device/config-keys";
import type { LogLevel } from "../../src/device/host";
import { start, type Device } from "../../src/device/main";
import { thermostat } from "../../src/device/thermostat";
import { cloudWith, DEVICE_SECRET, DSN, hostOn, PRODUCT_SECRET, provision, PSN, tmpDir, type Cleanups } from "../helpers/device-rig";

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function until<T>(f: () => T | undefined | false, what: string, ms = 8000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function boot(host: Parameters<typeof start>[0]): Promise<Device> {
  const device = await start(host, thermostat({ postInterval: 200 }));
  expect(device).toBeDefined();
  cleanups.push(() => device!.stop());
  return device!;
}

/**
 * A Node host whose resolver sends "broker.test" to 127.0.0.1: a broker on a host that is not loopback by name
 * (the rule looks at the URL), reachable on this machine.
 */
function remoteHost(dir: string) {
  const logs: [LogLevel, string][] = [];
  const lookup = ((hostname: string, options: unknown, callback: (e: Error | null, address: string | dns.LookupAddress[], family?: number) => void) => {
    const cb = typeof options === "function" ? (options as typeof callback) : callback;
    if (hostname !== "broker.test") return cb(new Error(`unexpected lookup of ${hostname}`), "");
    if (typeof options === "object" && options !== null && (options as { all?: boolean }).all) return cb(null, [{ address: "127.0.0.1", family: 4 }]);
    cb(null, "127.0.0.1", 4);
  }) as net.LookupFunction;
  const host = createNodeHost({ dir, log: (level, message) => void logs.push([level, message]), connect: { lookup } });
  return { host, logs };
}

describe("plain text to a host that is not loopback", () => {
  it("is refused at boot without the opt-in: one error naming the fix, nothing dialled", async () => {
    const cloud = await cloudWith(cleanups, { deviceSecret: DEVICE_SECRET });
    let connections = 0;
    cloud.on("online", () => connections++);
    const { host, logs } = remoteHost(tmpDir(cleanups));
    provision(host, `mqtt://broker.test:${cloud.port}`, { device: DEVICE_SECRET });
    expect(await start(host)).toBeUndefined();
    expect(logs).toHaveLength(1);
    expect(logs[0][0]).toBe("error");
    expect(logs[0][1]).toMatch(/mqtt:\/\/broker\.test:\d+ is plain mqtt:\/\/ to a host that is not this machine: the DeviceSecret .* would cross the network in clear: use mqtts:\/\/ or wss:\/\/.*config key uiot_plaintext = 1: `npm run provision -- \.\.\. --allow-plaintext`/);
    expect(host.link.openSockets).toBe(0);
    expect(connections).toBe(0);
  });

  it("with uiot_plaintext = 1 connects, and warns at every connect which secret crosses in clear", async () => {
    const cloud = await cloudWith(cleanups, {});
    const { host, logs } = remoteHost(tmpDir(cleanups));
    provision(host, `mqtt://broker.test:${cloud.port}`, { product: PRODUCT_SECRET });
    host.config.set(CONFIG_KEYS.allowPlaintext, "1");
    const warnings = () => logs.filter(([level, m]) => level === "warn" && /^PLAIN TEXT/.test(m)).map(([, m]) => m);
    const device = await boot(host);
    await until(() => device.connects === 1, "the first connection");
    // The registration's connection (the ProductSecret), then the device's (the DeviceSecret).
    expect(warnings()).toEqual([
      expect.stringMatching(/^PLAIN TEXT: connecting to mqtt:\/\/broker\.test:\d+ without TLS: the ProductSecret \(the secret of every device of the product\) crosses the network in clear, readable by anyone on the way \(allowed by uiot_plaintext = 1; use mqtts:\/\/ or wss:\/\/ to protect it\)$/),
      expect.stringMatching(/^PLAIN TEXT: connecting to mqtt:\/\/broker\.test:\d+ without TLS: the DeviceSecret crosses the network in clear/),
    ]);
    host.link.down();
    await until(() => device.client.state === "waiting", "the drop");
    host.link.up();
    await until(() => device.connects === 2, "the reconnect");
    expect(warnings()).toHaveLength(3);
    expect(warnings()[2]).toMatch(/the DeviceSecret crosses the network in clear/);
    for (const [, m] of logs) for (const s of [PRODUCT_SECRET, host.config.get(CONFIG_KEYS.deviceSecret)!]) expect(m).not.toContain(s);
  });

  it("to loopback needs no opt-in and logs no warning (the emulated cloud)", async () => {
    const cloud = await cloudWith(cleanups, { deviceSecret: DEVICE_SECRET });
    const { host, logs } = hostOn(tmpDir(cleanups));
    provision(host, cloud.url.replace("127.0.0.1", "localhost"), { device: DEVICE_SECRET });
    const device = await boot(host);
    await until(() => device.connects === 1, "the connection");
    expect(logs.filter(([, m]) => /PLAIN TEXT/.test(m))).toEqual([]);
  });
});

describe("the ProductSecret after dynamic registration (the Node host's file store)", () => {
  it("is deleted once the DeviceSecret is stored; the device then runs on the DeviceSecret", async () => {
    const cloud = await cloudWith(cleanups, {});
    const dir = tmpDir(cleanups);
    const { host, logs } = hostOn(dir);
    provision(host, cloud.url, { product: PRODUCT_SECRET });
    const device = await boot(host);
    await until(() => device.connects === 1, "the first connection");
    const secret = cloud.device(PSN, DSN)!.deviceSecret!;
    // Read from the file again, not from the store object in memory.
    const file = hostOn(dir).host.config;
    expect(file.get(CONFIG_KEYS.deviceSecret)).toBe(secret);
    expect(file.get(CONFIG_KEYS.productSecret)).toBeUndefined();
    expect(logs.some(([, m]) => /the ProductSecret was deleted from the config store \(uiot_psecret\)/.test(m))).toBe(true);
  });

  it("stays with uiot_keep_psec = 1", async () => {
    const cloud = await cloudWith(cleanups, {});
    const dir = tmpDir(cleanups);
    const { host } = hostOn(dir);
    provision(host, cloud.url, { product: PRODUCT_SECRET });
    host.config.set(CONFIG_KEYS.keepProductSecret, "1");
    const device = await boot(host);
    await until(() => device.connects === 1, "the first connection");
    const file = hostOn(dir).host.config;
    expect(file.get(CONFIG_KEYS.deviceSecret)).toBe(cloud.device(PSN, DSN)!.deviceSecret);
    expect(file.get(CONFIG_KEYS.productSecret)).toBe(PRODUCT_SECRET);
  });

  it("left beside a DeviceSecret (a device registered before), is deleted at boot", async () => {
    const cloud = await cloudWith(cleanups, { deviceSecret: DEVICE_SECRET });
    const dir = tmpDir(cleanups);
    const { host, logs } = hostOn(dir);
    provision(host, cloud.url, { device: DEVICE_SECRET, product: PRODUCT_SECRET });
    const device = await boot(host);
    await until(() => device.connects === 1, "the connection");
    const file = hostOn(dir).host.config;
    expect([file.get(CONFIG_KEYS.deviceSecret), file.get(CONFIG_KEYS.productSecret)]).toEqual([DEVICE_SECRET, undefined]);
    expect(logs.some(([, m]) => /the ProductSecret \(uiot_psecret\) was deleted from the config store: this device has its DeviceSecret/.test(m))).toBe(true);
  });
});

