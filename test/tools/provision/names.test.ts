// The names provisioning writes must be the names the hosts read. The Moddable host (hosts/moddable/host.ts) imports
// the SDK's modules, so it cannot run under Node: its source is read instead, and its preference domain and Wi-Fi
// keys must be ours (or come from src/device/config-keys.ts).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SIMULATOR_CONFIG_FILE, SIMULATOR_DIR } from "../../../tools/provision/provision";
import { CONFIG_KEYS, PREFERENCE_DOMAIN } from "../../../src/device/config-keys";
import { CONFIG_KEYS as IDENTITY_KEYS } from "../../../src/uiot/identity";

const host = readFileSync(join(import.meta.dirname, "..", "..", "..", "hosts", "moddable", "host.ts"), "utf8");
const importsKeys = /from "\.\.\/\.\.\/src\/device\/config-keys"/.test(host);

describe("names shared with the hosts", () => {
  it("the ESP32 host's config store uses the preference domain the image is written for", () => {
    if (importsKeys && /domain: PREFERENCE_DOMAIN/.test(host)) return;
    const m = /new PreferenceStore\(prefs, \{ domain: "([^"]+)"/.exec(host);
    expect(m, "hosts/moddable/host.ts builds its PreferenceStore with a literal domain or PREFERENCE_DOMAIN").not.toBeNull();
    expect(m![1]).toBe(PREFERENCE_DOMAIN);
  });

  it("the ESP32 host reads Wi-Fi from the keys provisioning writes", () => {
    if (importsKeys && /CONFIG_KEYS\.wifiSsid/.test(host)) return;
    const m = /WIFI_KEYS = \{ ssid: "([^"]+)", password: "([^"]+)" \}/.exec(host);
    expect(m, "hosts/moddable/host.ts names its Wi-Fi keys in WIFI_KEYS or uses CONFIG_KEYS").not.toBeNull();
    expect([m![1], m![2]]).toEqual([CONFIG_KEYS.wifiSsid, CONFIG_KEYS.wifiPassword]);
  });

  it("identity keys are the thing layer's (loadIdentity reads them)", () => {
    for (const k of Object.keys(IDENTITY_KEYS) as (keyof typeof IDENTITY_KEYS)[]) expect(CONFIG_KEYS[k]).toBe(IDENTITY_KEYS[k]);
  });

  it("the simulator's store is .simulator/config.json (git ignores .simulator/)", () => {
    expect(SIMULATOR_CONFIG_FILE).toBe(join(SIMULATOR_DIR, "config.json"));
    expect(readFileSync(join(import.meta.dirname, "..", "..", "..", ".gitignore"), "utf8").split("\n")).toContain(`${SIMULATOR_DIR}/`);
  });
});
