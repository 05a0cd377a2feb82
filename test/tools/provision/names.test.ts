// The names provisioning writes must be the names the hosts read, and every host's config store must take the same
// keys. The ESP32 host reading a provisioning image is test/tools/provision/board-reads.test.ts.
import * as fs from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SIMULATOR_CONFIG_FILE, SIMULATOR_DIR } from "../../../tools/provision/provision";
import {
  CA_MAX_PARTS,
  CONFIG_KEY_MAX_LENGTH,
  CONFIG_KEYS,
  CONFIG_VALUE_MAX_BYTES,
  caPartKey,
  isConfigKey,
} from "../../../src/device/config-keys";
import { CONFIG_KEYS as IDENTITY_KEYS } from "../../../src/uiot/identity";
import { OTA_STATE_KEY } from "../../../src/uiot/ota";
import { ESP32 } from "../../../hosts/moddable/chips";
import { PreferenceStore, StoreError } from "../../../hosts/moddable/preference-store";
import { ConfigStoreError, FileConfigStore } from "../../../hosts/node/config-store";
import { FakePreferences, ESP32_PREFS } from "../../hosts/moddable/fake-preferences";

const dir = fs.mkdtempSync(join(os.tmpdir(), "uiot-names-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The error code a store throws for set(key, value), or "ok". */
function verdict(set: () => void): string {
  try {
    set();
    return "ok";
  } catch (e) {
    if (e instanceof StoreError || e instanceof ConfigStoreError) return e.code;
    throw e;
  }
}

describe("names shared with the hosts", () => {
  it("every key the device uses is a config key", () => {
    const keys = [
      ...Object.values(CONFIG_KEYS),
      ...Array.from({ length: CA_MAX_PARTS }, (_, i) => caPartKey(i)),
      OTA_STATE_KEY,
    ];
    for (const k of keys) expect(isConfigKey(k), k).toBe(true);
  });

  it("both config stores take exactly the keys the rule takes, and values up to the same size", () => {
    const board = new PreferenceStore(new FakePreferences(ESP32_PREFS), {
      limits: ESP32.preference,
      maxValueBytes: ESP32.maxConfigValue,
    });
    const desktop = new FileConfigStore(join(dir, "config.json"));
    const keys = [
      "k",
      "uiot_psn",
      "wifi.password",
      "x".repeat(CONFIG_KEY_MAX_LENGTH),
      "x".repeat(CONFIG_KEY_MAX_LENGTH + 1),
      "",
      "two words",
      "tab\tkey",
      "é",
      "~!@#$%^&*()_+",
    ];
    for (const key of keys) {
      const expected = isConfigKey(key) ? "ok" : "INVALID_KEY";
      expect(
        verdict(() => board.set(key, "v")),
        `board: ${JSON.stringify(key)}`,
      ).toBe(expected);
      expect(
        verdict(() => desktop.set(key, "v")),
        `desktop: ${JSON.stringify(key)}`,
      ).toBe(expected);
    }
    for (const [bytes, expected] of [
      [CONFIG_VALUE_MAX_BYTES, "ok"],
      [CONFIG_VALUE_MAX_BYTES + 1, "VALUE_TOO_LARGE"],
    ] as const) {
      expect(
        verdict(() => board.set("big", "x".repeat(bytes))),
        `board: ${bytes} bytes`,
      ).toBe(expected);
      expect(
        verdict(() => desktop.set("big", "x".repeat(bytes))),
        `desktop: ${bytes} bytes`,
      ).toBe(expected);
    }
  });

  it("identity keys are the thing layer's (loadIdentity reads them)", () => {
    for (const k of Object.keys(IDENTITY_KEYS) as (keyof typeof IDENTITY_KEYS)[])
      expect(CONFIG_KEYS[k]).toBe(IDENTITY_KEYS[k]);
  });

  it("the simulator's store is .simulator/config.json (git ignores .simulator/)", () => {
    expect(SIMULATOR_CONFIG_FILE).toBe(join(SIMULATOR_DIR, "config.json"));
    expect(fs.readFileSync(join(import.meta.dirname, "..", "..", "..", ".gitignore"), "utf8").split("\n")).toContain(
      `${SIMULATOR_DIR}/`,
    );
  });
});
