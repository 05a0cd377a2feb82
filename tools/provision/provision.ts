// Provisioning: the device's identity, broker, CA and Wi-Fi settings checked against the platform's rules (the
// same functions the firmware uses on boot: src/uiot/identity.ts and src/device/config.ts) and written where the
// firmware reads them: the simulator's config store (hosts/node/config-store.ts, the very class the Node host
// uses) or an ESP32 NVS partition image holding exactly what hosts/moddable/preference-store.ts would have
// written with Moddable's `preference` module. Nothing here ever prints, logs or throws a secret: summaries and
// messages show `****` and at most the last two characters.
import * as path from "node:path";
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
  checkWifiPassword,
  checkWifiSsid,
  ConfigError,
  sendsSecretsInClear,
  wifiConfig,
} from "../../src/device/config";
import type { Endpoint, KeyValueStore } from "../../src/host";
import { isSecure } from "../../src/net/endpoint";
import { UiotError } from "../../src/uiot/errors";
import { Identity, printsAs, redact, scrub, storeDeviceSecret } from "../../src/uiot/identity";
import { ESP32 } from "../../hosts/moddable/chips";
import { PreferenceStore, type Preferences } from "../../hosts/moddable/preference-store";
import { makePrivateDir, TargetExistsError, writeFileAtomic } from "../../hosts/node/atomic-file";
import { ConfigStoreError, FileConfigStore } from "../../hosts/node/config-store";
import { buildNvsImage, MODDABLE_ESP32_NVS, NvsError, type NvsItem } from "./nvs";

/** Where the simulator keeps its state (relative to the working directory): `.simulator/`, ignored by git. */
export const SIMULATOR_DIR = ".simulator";
/** The simulator's config store, what `--target simulator` writes by default (createNodeHost({ dir: SIMULATOR_DIR })). */
export const SIMULATOR_CONFIG_FILE = path.join(SIMULATOR_DIR, "config.json");

/** The command-line option each setting comes from, for messages. */
export const FIELD_OPTION: Record<string, string> = {
  ProductSN: "--product-sn",
  DeviceSN: "--device-sn",
  DeviceSecret: "--device-secret",
  ProductSecret: "--product-secret",
  "broker URL": "--url",
  CA: "--ca",
  "Wi-Fi SSID": "--wifi-ssid",
  "Wi-Fi password": "--wifi-password",
};

/** Why provisioning stopped. `option` names the command-line option at fault, when one is. Never holds a secret. */
export class ProvisionError extends Error {
  constructor(
    message: string,
    readonly option?: string,
    readonly exitCode = 2,
  ) {
    super(message);
    this.name = "ProvisionError";
  }
}

export interface ProvisionInput {
  productSN?: string;
  deviceSN?: string;
  /** Authmode 1. */
  deviceSecret?: string;
  /** Authmode 2: the device registers once and stores the DeviceSecret it is given. */
  productSecret?: string;
  url?: string;
  /** The CA file's text, and its name for messages. */
  ca?: { text: string; file: string };
  wifiSsid?: string;
  wifiPassword?: string;
  /** Plain mqtt:// or ws:// to a host that is not loopback: the secret crosses the network in clear. */
  allowPlaintext?: boolean;
  /** Keep the ProductSecret on the device after dynamic registration (it is deleted by default). */
  keepProductSecret?: boolean;
}

/**
 * Everything checked, and the config store's content. Printed (String, util.inspect, JSON.stringify) it shows
 * describePlan's summary: secrets as `****`.
 */
export interface ProvisionPlan {
  identity: Identity;
  url: string;
  endpoint: Endpoint;
  caCerts: string[];
  wifi?: { ssid: string; password: string };
  allowPlaintext: boolean;
  keepProductSecret: boolean;
  /** Key/value pairs for the config store, in writing order. */
  values: [string, string][];
}

/** Checks every setting; throws ProvisionError naming the option and the rule. */
export function planProvisioning(input: ProvisionInput): ProvisionPlan {
  const secret = input.deviceSecret ?? input.productSecret;
  let identity: Identity;
  try {
    if (input.deviceSecret !== undefined && input.productSecret !== undefined)
      throw new ProvisionError(
        "give either the DeviceSecret (static registration, authmode 1) or the ProductSecret (dynamic registration, authmode 2), not both",
        "--device-secret",
      );
    identity = new Identity({
      productSN: input.productSN as string,
      deviceSN: input.deviceSN as string,
      deviceSecret: input.deviceSecret,
      productSecret: input.productSecret,
    });
  } catch (e) {
    if (e instanceof ProvisionError) throw e;
    const message = e instanceof Error ? scrub(e.message, secret ?? "") : "invalid identity";
    const field =
      ["ProductSN", "DeviceSN", "DeviceSecret", "ProductSecret"].find((f) => message.startsWith(f)) ??
      (/no secret/.test(message) ? "DeviceSecret" : "ProductSN");
    throw new ProvisionError(message, FIELD_OPTION[field]);
  }

  try {
    const { url, endpoint } = checkBrokerUrl(input.url);
    if (input.keepProductSecret && identity.authmode !== 2)
      throw new ProvisionError(
        "--keep-product-secret is for dynamic registration (a ProductSecret); this device has its DeviceSecret",
        "--keep-product-secret",
      );
    let caCerts: string[] = [];
    if (input.ca) {
      if (!isSecure(endpoint.scheme))
        throw new ConfigError(
          "CA",
          `a CA was given but ${url} does not use TLS: use mqtts:// or wss://, or leave out --ca`,
        );
      try {
        caCerts = checkCaPem(input.ca.text);
      } catch (e) {
        if (e instanceof ConfigError) throw new ConfigError("CA", `${input.ca.file}: ${e.message}`);
        throw e;
      }
    }
    if (!input.allowPlaintext && sendsSecretsInClear(endpoint))
      throw new ProvisionError(
        `${url} is plain ${endpoint.scheme}:// to a host that is not this machine: the ${identity.authmode === 1 ? "DeviceSecret" : "ProductSecret"} would cross the network in clear, and the device refuses to boot with it. Use mqtts:// or wss:// (the broker's TLS port), or, only on a network you trust, give --allow-plaintext`,
        "--url",
      );
    const parts = caCerts.length ? caParts(caCerts) : [];
    let wifi: ProvisionPlan["wifi"];
    if (input.wifiSsid !== undefined)
      wifi = wifiConfig(checkWifiSsid(input.wifiSsid), checkWifiPassword(input.wifiPassword ?? ""));
    else if (input.wifiPassword !== undefined)
      throw new ConfigError("Wi-Fi password", "a Wi-Fi password was given without --wifi-ssid");

    const K = CONFIG_KEYS;
    const values: [string, string][] = [
      [K.productSN, identity.productSN],
      [K.deviceSN, identity.deviceSN],
      [identity.authmode === 1 ? K.deviceSecret : K.productSecret, identity.revealSecret()],
      [K.brokerUrl, url],
    ];
    for (const [i, part] of parts.entries()) values.push([caPartKey(i), part]);
    if (wifi) values.push([K.wifiSsid, wifi.ssid], [K.wifiPassword, wifi.password]);
    if (input.allowPlaintext) values.push([K.allowPlaintext, "1"]);
    if (input.keepProductSecret) values.push([K.keepProductSecret, "1"]);
    for (const [key, value] of values)
      if (Buffer.byteLength(value, "utf8") > CONFIG_VALUE_MAX_BYTES)
        throw new ProvisionError(`the value of ${key} is over ${CONFIG_VALUE_MAX_BYTES} bytes`);
    const plan: ProvisionPlan = {
      identity,
      url,
      endpoint,
      caCerts,
      values,
      allowPlaintext: input.allowPlaintext === true,
      keepProductSecret: input.keepProductSecret === true,
    };
    if (wifi) plan.wifi = wifi;
    return printsAs(
      plan,
      () =>
        `provisioning plan: ${describePlan(plan)
          .map((l) => l.replace(/ +/g, " "))
          .join("; ")}`,
      () => ({ summary: describePlan(plan) }),
    );
  } catch (e) {
    if (e instanceof ConfigError) throw new ProvisionError(e.message, FIELD_OPTION[e.field]);
    throw e;
  }
}

/** What was provisioned, one line each, secrets redacted. */
export function describePlan(plan: ProvisionPlan): string[] {
  const id = plan.identity;
  const lines = [
    `ProductSN      ${id.productSN}`,
    `DeviceSN       ${id.deviceSN}`,
    id.authmode === 1
      ? `DeviceSecret   ${redact(id.revealSecret())} (authmode 1, static registration)`
      : `ProductSecret  ${redact(id.revealSecret())} (authmode 2: the device registers once and keeps the DeviceSecret it gets)`,
    `broker         ${plan.url}`,
  ];
  if (plan.caCerts.length)
    lines.push(`CA             ${plan.caCerts.length} certificate(s), ${plan.caCerts.join("").length} bytes of PEM`);
  else if (isSecure(plan.endpoint.scheme))
    lines.push("CA             none given: the platform's root (UIoT Core) or the host's trust store");
  if (plan.wifi)
    lines.push(
      `Wi-Fi          "${plan.wifi.ssid}", password ${plan.wifi.password === "" ? "none (open network)" : redact(plan.wifi.password)}`,
    );
  if (plan.allowPlaintext)
    lines.push(
      `plain text     allowed (--allow-plaintext)${sendsSecretsInClear(plan.endpoint) ? `: the ${id.authmode === 1 ? "DeviceSecret" : "ProductSecret"} crosses the network in clear` : ""}`,
    );
  if (id.authmode === 2)
    lines.push(
      plan.keepProductSecret
        ? "ProductSecret  kept on the device after registration (--keep-product-secret)"
        : "ProductSecret  deleted from the device once it has registered and stored its DeviceSecret",
    );
  return lines;
}

// ---- the simulator ----

export interface SimulatorOptions {
  /** Allow replacing (or, for authmode 2, deleting) a stored DeviceSecret. */
  replace?: boolean;
}

function read(store: KeyValueStore, key: string): string | undefined {
  const v = store.get(key);
  return v === "" ? undefined : v;
}

/**
 * Writes the plan into the simulator's config store at `file` (created 0600 by FileConfigStore, the Node host's
 * own store). A stored DeviceSecret is never replaced or dropped unless `replace`: the platform hands one out once.
 * Settings not given this time (CA, Wi-Fi) are removed, so the store holds exactly this configuration.
 * Returns notes for the user.
 */
export function provisionSimulator(plan: ProvisionPlan, file: string, options: SimulatorOptions = {}): string[] {
  let store: FileConfigStore;
  try {
    store = new FileConfigStore(file);
  } catch (e) {
    throw new ProvisionError(
      `cannot open the simulator's config store: ${e instanceof Error ? e.message : String(e)}`,
      "--store",
      1,
    );
  }
  try {
    store.checkWritable(); // a JSON file that is not a store of ours: refused before anything else is said about it
  } catch (e) {
    throw new ProvisionError(e instanceof Error ? e.message : String(e), "--store", 1);
  }
  const K = CONFIG_KEYS;
  const id = plan.identity;
  const notes: string[] = [];
  const stored = read(store, K.deviceSecret);
  if (stored !== undefined) {
    const sameDevice = read(store, K.productSN) === id.productSN && read(store, K.deviceSN) === id.deviceSN;
    const keepsIt = sameDevice && (id.authmode === 2 || stored === id.revealSecret());
    if (!keepsIt && !options.replace) {
      const why = !sameDevice
        ? `it belongs to ${read(store, K.productSN) ?? "?"}.${read(store, K.deviceSN) ?? "?"}, not ${id.clientId}`
        : `it differs from the DeviceSecret given`;
      throw new ProvisionError(
        `${file} already holds a DeviceSecret (${redact(stored)}) and ${why}; it is kept, because UIoT Core hands out a device's DeviceSecret once (dynamic registration works once). Pass --replace to overwrite it`,
        "--replace",
      );
    }
    if (id.authmode === 1 && stored !== id.revealSecret())
      notes.push(`the stored DeviceSecret (${redact(stored)}) was replaced (--replace)`);
    if (id.authmode === 2 && sameDevice && !options.replace)
      notes.push(
        `a DeviceSecret (${redact(stored)}) from an earlier registration is kept: the device connects with it and does not register again (--replace deletes it)`,
      );
  }

  // The whole configuration in one atomic write: a crash leaves the old store or the new one, never a mix.
  try {
    store.update((draft) => {
      for (const [key, value] of plan.values) {
        if (key === K.deviceSecret)
          storeDeviceSecret(draft, value, true); // conflicts were settled above
        else draft.set(key, value);
      }
      if (id.authmode === 1) draft.delete(K.productSecret);
      else if (stored !== undefined && options.replace) {
        draft.delete(K.deviceSecret);
        notes.push(
          `the stored DeviceSecret (${redact(stored)}) was deleted: the device registers again, which UIoT Core refuses for a device that has already logged in with its DeviceSecret`,
        );
      }
      const given = new Set(plan.values.map(([k]) => k));
      const stale = [
        K.wifiSsid,
        K.wifiPassword,
        K.allowPlaintext,
        K.keepProductSecret,
        ...Array.from({ length: CA_MAX_PARTS }, (_, i) => caPartKey(i)),
      ].filter((k) => !given.has(k) && draft.get(k) !== undefined);
      for (const k of stale) draft.delete(k);
      if (stale.length) notes.push(`removed settings not given this time: ${stale.join(", ")}`);
    });
  } catch (e) {
    if (e instanceof ConfigStoreError && e.code === "NOT_A_STORE") throw new ProvisionError(e.message, "--store", 1);
    const message = e instanceof UiotError || e instanceof Error ? scrub(e.message, id.revealSecret()) : String(e);
    throw new ProvisionError(`could not write ${file}: ${message}`, undefined, 1);
  }
  return notes;
}

// ---- the ESP32 ----

/** An in-memory `preference` module: what PreferenceStore writes, domain by domain. */
class RecordingPreferences implements Preferences {
  readonly domains = new Map<string, Map<string, ArrayBuffer>>();
  get(domain: string, key: string): unknown {
    const v = this.domains.get(domain)?.get(key);
    return v === undefined ? undefined : v.slice(0);
  }
  set(domain: string, key: string, value: ArrayBuffer): void {
    if (!(value instanceof ArrayBuffer)) throw new Error("preference values here are ArrayBuffers");
    let d = this.domains.get(domain);
    if (!d) this.domains.set(domain, (d = new Map()));
    d.set(key, value.slice(0));
  }
  delete(domain: string, key: string): void {
    this.domains.get(domain)?.delete(key);
  }
  keys(domain: string): string[] {
    return [...(this.domains.get(domain)?.keys() ?? [])];
  }
}

/**
 * The preference entries (NVS namespace, key, bytes) the ESP32 host's config store holds after `values` are set:
 * PreferenceStore with the ESP32's limits, writing into memory instead of flash.
 */
export function esp32PreferenceItems(values: readonly [string, string][]): NvsItem[] {
  const prefs = new RecordingPreferences();
  const store = new PreferenceStore(prefs, {
    domain: PREFERENCE_DOMAIN,
    limits: ESP32.preference,
    maxValueBytes: ESP32.maxConfigValue,
  });
  for (const [key, value] of values) store.set(key, value);
  const items: NvsItem[] = [];
  for (const domain of [...prefs.domains.keys()].sort())
    for (const [key, value] of [...(prefs.domains.get(domain) as Map<string, ArrayBuffer>).entries()].sort(
      ([a], [b]) => (a < b ? -1 : a > b ? 1 : 0),
    ))
      items.push({ namespace: domain, key, value: { type: "blob", value: new Uint8Array(value) } });
  return items;
}

export interface Esp32ImageOptions {
  /** NVS partition size (default 0x6000, the Moddable SDK's default partition table). */
  size?: number;
}

export interface Esp32Image {
  image: Uint8Array;
  pagesUsed: number;
  entriesUsed: number;
  namespaces: string[];
}

/** The NVS partition image holding the plan's configuration. */
export function esp32Image(plan: ProvisionPlan, options: Esp32ImageOptions = {}): Esp32Image {
  const size = options.size ?? MODDABLE_ESP32_NVS.size;
  let built: ReturnType<typeof buildNvsImage>;
  try {
    const items = esp32PreferenceItems(plan.values);
    // Leave the device room: NVS needs one free page to start, and the device writes too (the DeviceSecret it
    // registers; a changed value is written whole before the old copy goes), so two stay erased when possible.
    built = buildNvsImage(items, { size, freePages: size / 4096 >= 4 ? 2 : 1 });
  } catch (e) {
    throw new ProvisionError(
      `cannot build the NVS image: ${e instanceof Error ? e.message : String(e)}`,
      e instanceof NvsError && e.code === "INVALID_SIZE" ? "--size" : undefined,
    );
  }
  return {
    image: built.image,
    pagesUsed: built.pagesUsed,
    entriesUsed: built.entriesUsed,
    namespaces: [...built.namespaces.keys()],
  };
}

/**
 * Writes a file only its owner can read (it holds secrets) in one atomic step (atomic-file.ts: a temporary file
 * with a random name, created exclusively, fsync, rename, fsync of the folder). A file (or anything else) already
 * at `file` is replaced only with `force`; otherwise it is kept and ProvisionError says to pass --force.
 */
export function writePrivateFile(file: string, bytes: Uint8Array, options: { force?: boolean } = {}): void {
  try {
    makePrivateDir(path.dirname(path.resolve(file)));
    writeFileAtomic(file, bytes, { mode: 0o600, overwrite: options.force === true });
  } catch (e) {
    if (e instanceof TargetExistsError) {
      if (e.kind === "directory")
        throw new ProvisionError(`${file} is a directory: give a file name for the image`, "--out");
      throw new ProvisionError(
        `${file} already exists${e.kind === "file" ? "" : ` (a ${e.kind})`} and is kept: it may be another device's image or a file you need. Choose another file, or pass --force to replace it`,
        "--out",
      );
    }
    throw new ProvisionError(
      `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      "--out",
      1,
    );
  }
}

/** The command that flashes `file` at the NVS partition. */
export function flashCommand(file: string, offset: number = MODDABLE_ESP32_NVS.offset, port?: string): string {
  const q = (s: string) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);
  return `esptool.py --chip esp32${port ? ` --port ${q(port)}` : ""} write_flash 0x${offset.toString(16)} ${q(file)}`;
}
