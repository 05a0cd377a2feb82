// Redaction by construction: every object that holds a secret (the running device, its loaded configuration,
// Wi-Fi settings, the host's config store, the client's options, a provisioning plan) prints its secrets as `****`
// under String(), util.inspect (depth 10, showHidden) and JSON.stringify; and no error quotes input that can hold
// a secret (a malformed password_reply, a damaged config file), neither in its message, its stack nor its cause.
import * as fs from "node:fs";
import * as path from "node:path";
import { inspect } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { FileConfigStore } from "../../hosts/node/config-store";
import { planProvisioning } from "../../tools/provision/provision";
import { WiFiLink, type WiFiConstructor } from "../../hosts/moddable/wifi-link";
import { loadDeviceConfig } from "../../src/device/config";
import { CONFIG_KEYS } from "../../src/device/config-keys";
import { start } from "../../src/device/main";
import { thermostat } from "../../src/device/thermostat";
import { parseObject } from "../../src/uiot/json";
import { Identity } from "../../src/uiot/identity";
import { register } from "../../src/uiot/register";
import { FakeClock } from "../helpers/fake-clock";
import { ScriptedNetwork } from "../helpers/scripted-transport";
import { cloudWith, DSN, hostOn, provision, PSN, tmpDir, type Cleanups } from "../helpers/device-rig";
import { MemoryStore } from "../uiot/harness";

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

// Secrets with no common word in them: no 6-character piece of one may show anywhere.
const DEVICE_SECRET = "Zq8Xv2Lw9Kp4Tn7R";
const PRODUCT_SECRET = "Hj3Bm6Yc1Wf5Gd0S";
const WIFI_PASSWORD = "Vu7Qe2Nx9Ra4Lk";

/** Every printed form of `x` an application might log. */
function printed(x: unknown): string {
  const forms = [String(x), inspect(x, { depth: 10 }), inspect(x, { depth: 10, showHidden: true })];
  try {
    forms.push(JSON.stringify(x) ?? "");
  } catch (e) {
    forms.push(`JSON.stringify threw: ${(e as Error).message}`);
  }
  if (x instanceof Error)
    forms.push(x.message, x.stack ?? "", inspect(x.cause, { depth: 10, showHidden: true }), String(x.cause));
  return forms.join("\n");
}

/** `text` holds none of `secrets`, nor any 6-character piece of one. */
function expectClean(text: string, secrets: string[]): void {
  for (const s of secrets) {
    expect(text).not.toContain(s);
    for (let i = 0; i + 6 <= s.length; i++)
      expect(text, `a piece of a secret: "${s.slice(i, i + 6)}"`).not.toContain(s.slice(i, i + 6));
  }
}

describe("objects that hold secrets print them as ****", () => {
  it("the running device, its config, Wi-Fi settings, host store and client (V8, against the emulated cloud)", async () => {
    const cloud = await cloudWith(cleanups, { deviceSecret: DEVICE_SECRET });
    const { host } = hostOn(tmpDir(cleanups));
    provision(host, cloud.url, { device: DEVICE_SECRET });
    host.config.set(CONFIG_KEYS.wifiSsid, "office");
    host.config.set(CONFIG_KEYS.wifiPassword, WIFI_PASSWORD);
    const device = await start(host, thermostat({ postInterval: 200 }));
    expect(device).toBeDefined();
    cleanups.push(() => device!.stop());
    for (let i = 0; i < 400 && device!.connects === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(device!.connects).toBe(1);

    for (const x of [
      device,
      device!.config,
      device!.config.wifi,
      device!.config.identity,
      device!.host,
      device!.host.config,
      device!.client,
    ])
      expectClean(printed(x), [DEVICE_SECRET, WIFI_PASSWORD]);
    expectClean(printed({ nested: { deeper: { device } } }), [DEVICE_SECRET, WIFI_PASSWORD]);

    // What the summaries say instead.
    expect(String(device)).toMatch(
      new RegExp(`^UIoT device ${PSN}\\.${DSN} on node, mqtt://127\\.0\\.0\\.1:\\d+: connected, 1 connection`),
    );
    const json = JSON.parse(JSON.stringify(device)) as {
      identity: { secret: string };
      config: { wifi: { ssid: string; password: string } };
    };
    expect(json.identity.secret).toBe("****7R");
    expect(json.config.wifi).toEqual({ ssid: "office", password: "****Lk" });
    expect(inspect(device!.config.wifi)).toBe('Wi-Fi "office" (password ****Lk)');
    expect(inspect(device!.host.config)).toMatch(
      /^FileConfigStore \S+config\.json \(keys: uiot_psn, uiot_dsn, uiot_dsecret, uiot_url, wifi\.ssid, wifi\.password; values not shown\)$/,
    );
    // The secrets are still there for the code that needs them.
    expect(device!.config.wifi!.password).toBe(WIFI_PASSWORD);
    expect(device!.identity.revealSecret()).toBe(DEVICE_SECRET);
  });

  it("a loaded config with the ProductSecret, a provisioning plan, a Wi-Fi link", () => {
    const store = new MemoryStore();
    for (const [k, v] of [
      [CONFIG_KEYS.productSN, PSN],
      [CONFIG_KEYS.deviceSN, DSN],
      [CONFIG_KEYS.productSecret, PRODUCT_SECRET],
      [CONFIG_KEYS.brokerUrl, "mqtts://localhost:8883"],
      [CONFIG_KEYS.wifiSsid, "office"],
      [CONFIG_KEYS.wifiPassword, WIFI_PASSWORD],
    ])
      store.set(k, v);
    const loaded = loadDeviceConfig(store);
    expect(loaded.ok).toBe(true);
    if (!loaded.ok) return;
    expectClean(printed(loaded), [PRODUCT_SECRET, WIFI_PASSWORD]);
    expect(String(loaded.config)).toBe(
      `device config: UIoT device ${PSN}.${DSN} (authmode 2, ProductSecret ****0S), broker mqtts://localhost:8883, Wi-Fi "office" (password ****Lk)`,
    );

    const plan = planProvisioning({
      productSN: PSN,
      deviceSN: DSN,
      deviceSecret: DEVICE_SECRET,
      url: "mqtts://localhost:8883",
      wifiSsid: "office",
      wifiPassword: WIFI_PASSWORD,
    });
    expectClean(printed(plan), [DEVICE_SECRET, WIFI_PASSWORD]);

    const clock = new FakeClock();
    const WiFi = class {
      connection = 200;
      connect(): void {}
      disconnect(): void {}
      close(): void {}
    } as unknown as WiFiConstructor;
    const link = new WiFiLink({
      WiFi,
      ssid: "office",
      password: WIFI_PASSWORD,
      clock,
      random: () => 0.5,
      log: () => undefined,
    });
    expectClean(printed(link), [WIFI_PASSWORD]);
    expect(String(link)).toBe('Wi-Fi link "office" (down; password ****Lk)');
  });
});

describe("no error quotes input that can hold a secret", () => {
  it("a malformed password_reply: BAD_PAYLOAD without any of it, in message, stack or cause", async () => {
    // V8's JSON.parse message quotes the text around the fault ("Unexpected token ... is not valid JSON").
    const bad = `{"RequestID":"1","RetCode":0,"Password":${DEVICE_SECRET}}`; // the quotes lost on the way
    expect(() => JSON.parse(bad)).toThrow(DEVICE_SECRET.slice(0, 6));
    let error: unknown;
    try {
      parseObject(new TextEncoder().encode(bad), "password_reply");
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({
      code: "BAD_PAYLOAD",
      message: `password_reply: the ${bad.length}-byte payload is not valid UTF-8 JSON`,
    });
    expectClean(printed(error), [DEVICE_SECRET]);

    // The same through dynamic registration, the client playing against a scripted platform.
    const clock = new FakeClock();
    const net = new ScriptedNetwork();
    const store = new MemoryStore();
    const identity = new Identity({ productSN: PSN, deviceSN: DSN, productSecret: PRODUCT_SECRET });
    const outcome = register(identity, { connect: net.connect, clock, random: () => 0.5, store }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const c = net.last;
    c.open();
    c.connack();
    c.send({ type: 9, id: c.of(8)[0].id, granted: [1] });
    c.send({
      type: 3,
      topic: `/$system/${PSN}/${DSN}/password_reply`,
      payload: bad,
      qos: 1,
      id: 7,
      retain: false,
      dup: false,
    });
    const e = await outcome;
    expect(e).toMatchObject({ code: "BAD_PAYLOAD" });
    expectClean(printed(e), [DEVICE_SECRET, PRODUCT_SECRET]);
    expect(store.get(CONFIG_KEYS.deviceSecret)).toBeUndefined();
  });

  it("a refusal with a RetCode that is not a number does not quote it", async () => {
    const clock = new FakeClock();
    const net = new ScriptedNetwork();
    const identity = new Identity({ productSN: PSN, deviceSN: DSN, productSecret: PRODUCT_SECRET });
    const outcome = register(identity, {
      connect: net.connect,
      clock,
      random: () => 0.5,
      store: new MemoryStore(),
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const c = net.last;
    c.open();
    c.connack();
    c.send({ type: 9, id: c.of(8)[0].id, granted: [1] });
    c.send({
      type: 3,
      topic: `/$system/${PSN}/${DSN}/password_reply`,
      payload: `{"RequestID":"1","RetCode":"${DEVICE_SECRET}"}`,
      qos: 1,
      id: 7,
      retain: false,
      dup: false,
    });
    const e = await outcome;
    expect(e).toMatchObject({
      code: "REGISTRATION_FAILED",
      message: expect.stringMatching(/refused by the platform \(no numeric RetCode\)/),
    });
    expectClean(printed(e), [DEVICE_SECRET]);
  });

  it("a damaged config file: CORRUPT, and neither the message nor the cause quotes it", () => {
    const dir = tmpDir(cleanups);
    const file = path.join(dir, "config.json");
    // A hand edit that lost the quotes: V8's parse message would quote the text around the fault.
    const text = `{"${CONFIG_KEYS.wifiPassword}": ${WIFI_PASSWORD}, "${CONFIG_KEYS.deviceSecret}": "${DEVICE_SECRET}"}`;
    expect(() => JSON.parse(text)).toThrow(WIFI_PASSWORD.slice(0, 6));
    fs.writeFileSync(file, text, { mode: 0o600 });
    let error: unknown;
    try {
      new FileConfigStore(file);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({
      code: "CORRUPT",
      message: expect.stringMatching(/is not valid JSON: repair it or move it away/),
    });
    expectClean(printed(error), [DEVICE_SECRET, WIFI_PASSWORD]);
  });
});
