// loadDeviceConfig: what the firmware does on boot with its config store. Every missing or invalid setting is one
// message that names the setting and says what to run; no message ever contains a secret.
import { describe, expect, it } from "vitest";
import {
  CA_MAX_PARTS,
  CONFIG_KEYS,
  CONFIG_VALUE_MAX_BYTES,
  PREFERENCE_DOMAIN,
  caPartKey,
} from "../../src/device/config-keys";
import {
  caParts,
  checkBrokerUrl,
  checkCaPem,
  checkPlaintext,
  checkWifiPassword,
  checkWifiSsid,
  ConfigError,
  loadDeviceConfig,
} from "../../src/device/config";
import type { KeyValueStore } from "../../src/host";
import { UIOT_ROOT_CA_PEM } from "../../src/uiot/platform";
import { getTestCerts } from "../helpers/certs";
import { thrown } from "../helpers/thrown";

const PSN = "abcdefgh12345678";
const DSN = "thermostat-01";
const SECRET = "Qw3rtyUi0pAsDfGh";
const PSECRET = "Pr0ductS3cretXyZ";
const WIFI = "correct horse battery";

class Store implements KeyValueStore {
  map = new Map<string, string>();
  constructor(init: Record<string, string> = {}) {
    for (const [k, v] of Object.entries(init)) this.map.set(k, v);
  }
  get(key: string): string | undefined {
    return this.map.get(key);
  }
  set(key: string, value: string): void {
    this.map.set(key, value);
  }
  delete(key: string): void {
    this.map.delete(key);
  }
}

const K = CONFIG_KEYS;
const base = (): Record<string, string> => ({
  [K.productSN]: PSN,
  [K.deviceSN]: DSN,
  [K.deviceSecret]: SECRET,
  [K.brokerUrl]: "mqtts://mqtt-cn-sh2.iot.ucloud.cn:8883",
});

function fails(init: Record<string, string>, options = {}): string {
  const r = loadDeviceConfig(new Store(init), options);
  expect(r.ok).toBe(false);
  const message = (r as { message: string }).message;
  for (const s of [SECRET, PSECRET, WIFI]) expect(message).not.toContain(s);
  expect(message).toMatch(/^the device is not provisioned: /);
  expect(message).toContain("npm run provision");
  expect(message.split("\n")).toHaveLength(1);
  return message;
}

describe("config keys", () => {
  it("fit ESP32 NVS names (15 characters) and the preference domain leaves room for slot and chunk", () => {
    for (const k of [...Object.values(K), ...Array.from({ length: CA_MAX_PARTS }, (_, i) => caPartKey(i))])
      expect(k.length).toBeLessThanOrEqual(15);
    expect(PREFERENCE_DOMAIN.length + 2).toBeLessThanOrEqual(15);
    expect(new Set(Object.values(K)).size).toBe(Object.values(K).length);
  });
});

describe("loadDeviceConfig: a good store", () => {
  it("authmode 1 with the broker, no CA, no Wi-Fi", () => {
    const r = loadDeviceConfig(new Store(base()));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.identity.authmode).toBe(1);
    expect(r.config.identity.revealSecret()).toBe(SECRET);
    expect(r.config.endpoint).toEqual({ scheme: "mqtts", host: "mqtt-cn-sh2.iot.ucloud.cn", port: 8883, path: "" });
    expect(r.config.tls).toBeUndefined();
    expect(r.config.wifi).toBeUndefined();
  });

  it("authmode 2 (ProductSecret only), CA in parts joined back, Wi-Fi", async () => {
    const pems = checkCaPem(UIOT_ROOT_CA_PEM + (await getTestCerts()).ca.cert + UIOT_ROOT_CA_PEM + UIOT_ROOT_CA_PEM);
    const parts = caParts(pems);
    expect(parts.length).toBeGreaterThan(1);
    const init: Record<string, string> = {
      ...base(),
      [K.productSecret]: PSECRET,
      [K.wifiSsid]: "office",
      [K.wifiPassword]: WIFI,
    };
    delete init[K.deviceSecret];
    for (const [i, p] of parts.entries()) init[caPartKey(i)] = p;
    const r = loadDeviceConfig(new Store(init), { requireWifi: true });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.identity.authmode).toBe(2);
    expect(r.config.tls?.ca).toEqual(pems);
    expect(r.config.wifi).toEqual({ ssid: "office", password: WIFI });
  });

  it("a keepalive, when one is stored", () => {
    const none = loadDeviceConfig(new Store(base()));
    expect(none.ok && none.config.keepalive).toBeUndefined();
    for (const [v, n] of [
      ["30", 30],
      ["300", 300],
      ["1200", 1200],
    ] as const) {
      const r = loadDeviceConfig(new Store({ ...base(), [K.keepalive]: v }));
      expect(r.ok && r.config.keepalive, v).toBe(n);
    }
  });

  it("an open network (SSID, empty password)", () => {
    const r = loadDeviceConfig(new Store({ ...base(), [K.wifiSsid]: "cafe", [K.wifiPassword]: "" }), {
      requireWifi: true,
    });
    expect(r.ok && r.config.wifi).toEqual({ ssid: "cafe", password: "" });
  });
});

describe("loadDeviceConfig: plain mqtt:// and ws:// only to loopback, unless allowed explicitly", () => {
  it("refuses them to any other host, naming the fix; the switch is 1 or 0", () => {
    for (const url of [
      "mqtt://broker.example.com:1883",
      "ws://10.1.2.3:8083/mqtt",
      "mqtt://[2001:db8::1]:1883",
      "ws://mqtt-cn-sh2.iot.ucloud.cn",
    ]) {
      const m = fails({ ...base(), [K.brokerUrl]: url });
      expect(m, url).toMatch(
        /is plain (mqtt|ws):\/\/ to a host that is not this machine: the DeviceSecret \(during dynamic registration the ProductSecret\) would cross the network in clear: use mqtts:\/\/ or wss:\/\//,
      );
      expect(m).toMatch(/config key uiot_plaintext = 1: `npm run provision -- \.\.\. --allow-plaintext`/);
      expect(fails({ ...base(), [K.brokerUrl]: url, [K.allowPlaintext]: "0" })).toBe(m);
    }
    expect(fails({ ...base(), [K.allowPlaintext]: "yes" })).toMatch(
      /the config key uiot_plaintext is 1 \(on\) or 0 \(off\), not "yes"/,
    );
    expect(fails({ ...base(), [K.keepProductSecret]: "true" })).toMatch(
      /the config key uiot_keep_psec is 1 \(on\) or 0 \(off\), not "true"/,
    );
  });

  it("takes them with the opt-in, and to loopback without it; TLS never needs it", () => {
    const allowed = loadDeviceConfig(
      new Store({ ...base(), [K.brokerUrl]: "mqtt://broker.example.com", [K.allowPlaintext]: "1" }),
    );
    expect(allowed.ok && [allowed.config.url, allowed.config.allowPlaintext]).toEqual([
      "mqtt://broker.example.com:1883",
      true,
    ]);
    for (const url of [
      "mqtt://127.0.0.1:1883",
      "mqtt://localhost:1883",
      "ws://[::1]:8083/mqtt",
      "mqtts://broker.example.com:8883",
      "wss://broker.example.com:8084/mqtt",
    ]) {
      const r = loadDeviceConfig(new Store({ ...base(), [K.brokerUrl]: url }));
      expect(r.ok && [r.config.url, r.config.allowPlaintext, r.config.keepProductSecret], url).toEqual([
        url,
        false,
        false,
      ]);
    }
    const keep = loadDeviceConfig(new Store({ ...base(), [K.keepProductSecret]: "1" }));
    expect(keep.ok && keep.config.keepProductSecret).toBe(true);
  });

  it("checkPlaintext: a typed error, PLAINTEXT_REFUSED", () => {
    let error: unknown;
    try {
      checkPlaintext(checkBrokerUrl("ws://h").endpoint, false);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ code: "PLAINTEXT_REFUSED", field: "broker URL" });
    expect(() => checkPlaintext(checkBrokerUrl("ws://h").endpoint, true)).not.toThrow();
  });
});

describe("loadDeviceConfig: one clear message for what is missing or wrong", () => {
  it("an empty store", () => {
    expect(fails({})).toMatch(/ProductSN is missing.*\(uiot_psn\)/);
  });
  it("no DeviceSN", () => {
    const s = base();
    delete s[K.deviceSN];
    expect(fails(s)).toMatch(/DeviceSN is missing.*\(uiot_dsn\)/);
  });
  it("no secret at all", () => {
    const s = base();
    delete s[K.deviceSecret];
    expect(fails(s)).toMatch(/no uiot_dsecret nor uiot_psecret/);
  });
  it("a cut-short DeviceSecret: redacted, named", () => {
    expect(fails({ ...base(), [K.deviceSecret]: SECRET.slice(0, 10) })).toMatch(
      /DeviceSecret \*\*\*\*0p has 10 characters.*\(uiot_dsecret\)/,
    );
  });
  it("a DeviceSecret with a newline", () => {
    expect(fails({ ...base(), [K.deviceSecret]: `${SECRET}\n` })).toMatch(
      /DeviceSecret .*control or non-ASCII character at position 17/,
    );
  });
  it("a bad ProductSN and DeviceSN", () => {
    expect(fails({ ...base(), [K.productSN]: "abc!" })).toMatch(
      /ProductSN "abc!" may contain only letters and digits.*\(uiot_psn\)/,
    );
    expect(fails({ ...base(), [K.deviceSN]: "ab" })).toMatch(/DeviceSN "ab" has 2 characters.*4 to 64.*\(uiot_dsn\)/);
  });
  it("no broker URL, or a bad one", () => {
    const s = base();
    delete s[K.brokerUrl];
    expect(fails(s)).toMatch(/the broker URL is missing.*\(uiot_url\)/);
    expect(fails({ ...base(), [K.brokerUrl]: "tcp://x:1883" })).toMatch(/write mqtt:\/\/.*\(uiot_url\)/);
  });
  it("a keepalive outside UIoT Core's 30..1200 s, or not whole seconds", () => {
    for (const v of ["29", "1201", "0", "-5", "30.5", "abc", "99999", " 60"])
      expect(fails({ ...base(), [K.keepalive]: v }), v).toMatch(
        /the keepalive must be whole seconds from 30 to 1200 .*\(uiot_keepalive\)/,
      );
  });
  it("a CA with a plain URL, a damaged CA", () => {
    expect(fails({ ...base(), [K.brokerUrl]: "mqtt://h:1883", [K.caCert]: UIOT_ROOT_CA_PEM })).toMatch(
      /a CA is stored .* does not use TLS/,
    );
    expect(fails({ ...base(), [K.caCert]: UIOT_ROOT_CA_PEM.slice(0, 400) })).toMatch(
      /without its END line|cut short.*\(uiot_ca\)/,
    );
  });
  it("Wi-Fi: required and missing, password without SSID, bad password", () => {
    expect(fails(base(), { requireWifi: true })).toMatch(/no Wi-Fi network is configured \(wifi\.ssid\)/);
    expect(fails({ ...base(), [K.wifiPassword]: WIFI })).toMatch(
      /Wi-Fi password is stored \(wifi\.password\) without a Wi-Fi SSID/,
    );
    expect(fails({ ...base(), [K.wifiSsid]: "x", [K.wifiPassword]: "short" })).toMatch(
      /has 5 characters; a WPA2 passphrase has 8 to 63.*\(wifi\.password\)/,
    );
  });
  it("a store that cannot be read", () => {
    const broken: KeyValueStore = {
      get: () => {
        throw new Error("the config file x is not valid JSON");
      },
      set: () => undefined,
      delete: () => undefined,
    };
    expect(fails({}) && loadDeviceConfig(broken)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/config store cannot be read \(the config file x is not valid JSON\)/),
    });
  });
});

describe("the rules", () => {
  const rule = (f: () => unknown): ConfigError => thrown(f, ConfigError);

  it("broker URLs: the four schemes, ports written out, UIoT Core's WebSocket ports", () => {
    expect(checkBrokerUrl("mqtt://h").url).toBe("mqtt://h:1883");
    expect(checkBrokerUrl("mqtts://h").url).toBe("mqtts://h:8883");
    expect(checkBrokerUrl("ws://h").url).toBe("ws://h:8083/mqtt");
    expect(checkBrokerUrl("wss://h:9000/x").url).toBe("wss://h:9000/x");
    expect(checkBrokerUrl("wss://mqtt-cn-gd.iot.ucloud.cn").url).toBe("wss://mqtt-cn-gd.iot.ucloud.cn:443/mqtt");
    expect(checkBrokerUrl("ws://mqtt-cn-gd.iot.ucloud.cn").url).toBe("ws://mqtt-cn-gd.iot.ucloud.cn:80/mqtt");
    for (const bad of ["", "h:1883", "http://h", "mqtt://u:pw@h", "mqtt://h:0", "mqtt://h/x"])
      expect(rule(() => checkBrokerUrl(bad)).field).toBe("broker URL");
    expect(rule(() => checkBrokerUrl("mqtt://user:Pa55word@h")).message).not.toContain("Pa55word");
  });

  it("CA: certificates only, whole, no private key", async () => {
    const certs = await getTestCerts();
    const pems = checkCaPem(`# comment\n${UIOT_ROOT_CA_PEM}`);
    expect(pems).toHaveLength(1);
    expect(pems[0]).toMatch(/^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{1,64}\n)+-----END CERTIFICATE-----\n$/);
    expect(rule(() => checkCaPem("")).message).toMatch(/empty/);
    expect(rule(() => checkCaPem(certs.ca.key)).message).toMatch(/contains a private key/);
    expect(rule(() => checkCaPem(UIOT_ROOT_CA_PEM + certs.ca.key)).message).toMatch(/contains a private key/);
    expect(rule(() => checkCaPem("not a pem")).message).toMatch(/no PEM certificate/);
    expect(
      rule(() => checkCaPem("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")).message,
    ).toMatch(/"CERTIFICATE REQUEST" block/);
    const body = UIOT_ROOT_CA_PEM.split("\n");
    const cut = [...body.slice(0, 6), ...body.slice(-3)].join("\n"); // base64 lines missing in the middle
    expect(rule(() => checkCaPem(cut)).message).toMatch(/damaged|not valid/);
  });

  it("CA: cut into parts of at most 4000 bytes, at most 8 of them", () => {
    const one = checkCaPem(UIOT_ROOT_CA_PEM);
    expect(caParts(one)).toEqual([one[0]]);
    const many = Array.from({ length: 30 }, () => one[0]);
    const parts = caParts(many.slice(0, 20));
    expect(parts.every((p) => p.length <= CONFIG_VALUE_MAX_BYTES)).toBe(true);
    expect(parts.join("")).toBe(many.slice(0, 20).join(""));
    expect(rule(() => caParts(many)).message).toMatch(/at most 32000/);
  });

  it("CA: in parts of an ESP8266's 256-byte values, at most 8 of them (2048 bytes)", () => {
    const one = checkCaPem(UIOT_ROOT_CA_PEM)[0];
    const parts = caParts([one], 256);
    expect(parts.length).toBe(Math.ceil(one.length / 256));
    expect(parts.every((p) => p.length <= 256)).toBe(true);
    expect(parts.join("")).toBe(one);
    expect(rule(() => caParts([one, one], 256)).message).toMatch(/keeps at most 2048 \(8 values of 256\)/);
  });

  it("Wi-Fi SSID: 1..32 bytes, no control characters", () => {
    expect(checkWifiSsid("x".repeat(32))).toHaveLength(32);
    expect(checkWifiSsid("咖啡馆")).toBe("咖啡馆");
    expect(rule(() => checkWifiSsid("")).message).toMatch(/empty/);
    expect(rule(() => checkWifiSsid("咖".repeat(11))).message).toMatch(/33 bytes; an SSID is at most 32/);
    expect(rule(() => checkWifiSsid("office\n")).message).toMatch(/control character/);
  });

  it("Wi-Fi password: empty, 8..63 printable ASCII, or 64 hex digits; never quoted", () => {
    for (const ok of ["", "12345678", "x".repeat(63), "a".repeat(64), "0123456789abcdefABCDEF".padEnd(64, "0")])
      expect(checkWifiPassword(ok)).toBe(ok);
    const cases: [string, RegExp][] = [
      ["Secret7", /has 7 characters; a WPA2 passphrase has 8 to 63/],
      ["S".repeat(65), /has 65 characters/],
      ["g".repeat(64), /64 hex digits/],
      ["Secret789\n", /control or non-ASCII character at position 10/],
      ["Sécret789", /non-ASCII/],
    ];
    for (const [pw, re] of cases) {
      const e = rule(() => checkWifiPassword(pw));
      expect(e.field).toBe("Wi-Fi password");
      expect(e.message).toMatch(re);
      expect(e.message).not.toContain(pw.trim());
    }
  });
});
