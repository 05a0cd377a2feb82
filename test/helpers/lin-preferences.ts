// The file behind the Moddable SDK's `preference` module on the desktop (modules/files/preference/lin/preference.js):
// one JSON object, { domain: { key: value } }, an ArrayBuffer value kept as { buffer: "1,2,3" } (a Uint8Array's
// toString()). Tests provision the real firmware by writing this file with the firmware's own PreferenceStore, and
// read back what the firmware stored (the DeviceSecret after dynamic registration).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { ChipProfile } from "../../hosts/moddable/chips";
import { PreferenceStore, type Preferences } from "../../hosts/moddable/preference-store";
import { caParts } from "../../src/device/config";
import { caPartKey, CONFIG_KEYS, PREFERENCE_DOMAIN } from "../../src/device/config-keys";

type Entry = string | number | boolean | { buffer: string };

export class LinPreferenceFile implements Preferences {
  constructor(readonly path: string) {}

  private load(): Record<string, Record<string, Entry>> {
    return existsSync(this.path)
      ? (JSON.parse(readFileSync(this.path, "utf8")) as Record<string, Record<string, Entry>>)
      : {};
  }

  get(domain: string, key: string): unknown {
    const v = this.load()[domain]?.[key];
    if (v && typeof v === "object") return Uint8Array.from(v.buffer.split(",").map(Number)).buffer;
    return v;
  }

  set(domain: string, key: string, value: ArrayBuffer): void {
    const all = this.load();
    (all[domain] ??= {})[key] = { buffer: new Uint8Array(value).toString() };
    writeFileSync(this.path, JSON.stringify(all));
  }

  delete(domain: string, key: string): void {
    const all = this.load();
    if (all[domain]?.[key] === undefined) return;
    delete all[domain][key];
    if (Object.keys(all[domain]).length === 0) delete all[domain];
    writeFileSync(this.path, JSON.stringify(all));
  }

  keys(domain: string): string[] {
    return Object.keys(this.load()[domain] ?? {});
  }
}

/** The firmware's config store in the preference file at `path`, with `chip`'s limits (what hosts/moddable/host.ts reads). */
export function linConfigStore(path: string, chip: ChipProfile): PreferenceStore {
  return new PreferenceStore(new LinPreferenceFile(path), {
    domain: PREFERENCE_DOMAIN,
    limits: chip.preference,
    maxValueBytes: chip.maxConfigValue,
  });
}

export interface Provisioning {
  productSN: string;
  deviceSN: string;
  deviceSecret?: string;
  productSecret?: string;
  url: string;
  /** PEM CA certificates, cut into parts of at most what one of the chip's values holds. */
  ca?: string;
}

/** Writes a device's configuration into the preference file at `path`, as provisioning would for `chip`. */
export function provisionLin(path: string, chip: ChipProfile, p: Provisioning): PreferenceStore {
  const store = linConfigStore(path, chip);
  store.set(CONFIG_KEYS.productSN, p.productSN);
  store.set(CONFIG_KEYS.deviceSN, p.deviceSN);
  if (p.deviceSecret) store.set(CONFIG_KEYS.deviceSecret, p.deviceSecret);
  if (p.productSecret) store.set(CONFIG_KEYS.productSecret, p.productSecret);
  store.set(CONFIG_KEYS.brokerUrl, p.url);
  if (p.ca) for (const [i, part] of caParts([p.ca], chip.maxConfigValue).entries()) store.set(caPartKey(i), part);
  return store;
}
