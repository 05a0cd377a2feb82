// A board reads what provisioning writes: the ESP32 host (hosts/moddable/host.ts, run here with the SDK's modules
// stood in for) opens its config store on the preference entries of a provisioning image and finds every value,
// and its Wi-Fi link connects with the provisioned network.
import { describe, expect, it, vi } from "vitest";
import type { ChipProfile } from "../../../hosts/moddable/chips";
import type { KeyValueStore, LogFunction } from "../../../src/host";

vi.mock("mc/config", () => ({ default: {} }));
vi.mock("net", () => ({ default: { resolve: () => undefined } }));
vi.mock("sntp", () => ({ default: class {} }));
vi.mock("time", () => ({ default: { ticks: 0, set: () => undefined } }));
vi.mock("timer", () => ({ default: { set: () => 1, schedule: () => undefined, clear: () => undefined } }));
vi.mock("embedded:io/socket/tcp", () => ({ default: class {} }));
vi.mock("embedded:io/socket/tcp/tls", () => ({ default: class {} }));

const { ESP32 } = await import("../../../hosts/moddable/chips");
// Typed against the SDK's modules (tsconfig.device.json), the host is imported by a path TypeScript does not follow.
const HOST = "../../../hosts/moddable/host";
const { createModdableHost, wifiNetwork } = (await import(/* @vite-ignore */ HOST)) as {
  createModdableHost(options: { chip: ChipProfile; preferences: unknown; log: LogFunction; network?: unknown }): {
    config: KeyValueStore;
  };
  wifiNetwork(WiFi: unknown): unknown;
};
const { esp32PreferenceItems } = await import("../../../tools/provision/provision");
const { CONFIG_KEYS } = await import("../../../src/device/config-keys");
const { FakePreferences, ESP32_PREFS } = await import("../../hosts/moddable/fake-preferences");

class RecordingWiFi {
  static joined: { SSID: string; password?: string }[] = [];
  readonly connection = 200;
  constructor(readonly options: { onChanged: (property: string) => void }) {}
  connect(options: { SSID: string; password?: string }): void {
    RecordingWiFi.joined.push(options);
  }
  disconnect(): void {}
  close(): void {}
}

describe("the ESP32 host reads the provisioning image's config", () => {
  const values: [string, string][] = [
    [CONFIG_KEYS.productSN, "abcdefgh12345678"],
    [CONFIG_KEYS.deviceSN, "thermostat-01"],
    [CONFIG_KEYS.deviceSecret, "Zq3x9Lk2Vb7Nm4Rt"],
    [CONFIG_KEYS.brokerUrl, "mqtts://mqtt-cn-sh2.iot.ucloud.cn:8883"],
    [CONFIG_KEYS.wifiSsid, "home network"],
    [CONFIG_KEYS.wifiPassword, "correct horse battery"],
  ];
  const prefs = new FakePreferences(ESP32_PREFS);
  for (const item of esp32PreferenceItems(values)) {
    if (item.value.type !== "blob") throw new Error(`unexpected ${item.value.type} item ${item.key}`);
    prefs.set(item.namespace, item.key, item.value.value.slice().buffer);
  }
  const logs: string[] = [];
  const log = (level: string, message: string): void => void logs.push(`${level} ${message}`);

  it("finds every value provisioning wrote", () => {
    const host = createModdableHost({ chip: ESP32, preferences: prefs, log });
    for (const [key, value] of values) expect(host.config.get(key), key).toBe(value);
  });

  it("joins the provisioned Wi-Fi network", () => {
    createModdableHost({ chip: ESP32, preferences: prefs, log, network: wifiNetwork(RecordingWiFi) });
    expect(RecordingWiFi.joined.at(-1)).toEqual({ SSID: "home network", password: "correct horse battery" });
    expect(logs.filter((l) => l.startsWith("error"))).toEqual([]);
  });
});
