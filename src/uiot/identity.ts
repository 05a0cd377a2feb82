/**
 * Who the device is on UIoT Core: ProductSN, DeviceSN and one secret (the DeviceSecret for static registration,
 * authmode 1, or the ProductSecret for dynamic registration, authmode 2), validated against the documented
 * formats. The secret never appears in toString, JSON, util.inspect, a log or an error: only `****` and at most its
 * last two characters do.
 *
 * What is accepted, exactly:
 * - ProductSN: 1 to 16 ASCII letters and digits. The console generates 16 and the official SDK's buffer holds 16;
 *   shorter ones are accepted for private and emulated clouds. Nothing else, because the ProductSN is a topic level
 *   and part of the ClientID (`.`) and UserName (`|`).
 * - DeviceSN: 4 to 64 characters of [A-Za-z0-9-_@:], as documented.
 * - DeviceSecret / ProductSecret: 16 to 63 printable ASCII characters without spaces (0x21..0x7E). The platform
 *   generates 16; a shorter one is a truncated paste and would only fail at CONNACK. Up to 63 because an ESP8266
 *   `preference` value holds at most 63 bytes; no spaces or control characters because a pasted newline or blank
 *   is the usual configuration mistake and cannot be seen.
 */
import type { KeyValueStore } from "../host";
import { UiotError } from "./errors";

/** 1 = static registration (一机一密, DeviceSecret), 2 = dynamic registration (一型一密, ProductSecret). */
export type AuthMode = 1 | 2;

export interface IdentityInit {
  productSN: string;
  deviceSN: string;
  /** Static registration (authmode 1). */
  deviceSecret?: string;
  /** Dynamic registration (authmode 2): only to fetch the DeviceSecret once. */
  productSecret?: string;
}

const INSPECT = Symbol.for("nodejs.util.inspect.custom");

/** `text` with every occurrence of `secret` redacted (for messages that come from elsewhere, e.g. a host error). */
export function scrub(text: string, secret: string): string {
  return secret && text.indexOf(secret) >= 0 ? text.split(secret).join(redact(secret)) : text;
}

/**
 * Makes `target` print as `text()` under String() and util.inspect (at any depth, with showHidden too) and as
 * `json()` under JSON.stringify, by defining toString, toJSON and Node's inspect hook on it, non-enumerable. For
 * objects that hold a secret (the running device, its loaded configuration, Wi-Fi settings): `text` and `json` show
 * the secrets as `redact()` does. Returns `target`. Portable (XS has Symbol.for; it has no util.inspect, and the
 * hook is then an unused function).
 */
export function printsAs<T extends object>(target: T, text: () => string, json: () => unknown): T {
  const hidden = { enumerable: false, configurable: true, writable: true };
  Object.defineProperty(target, "toString", { ...hidden, value: text });
  Object.defineProperty(target, "toJSON", { ...hidden, value: json });
  Object.defineProperty(target, INSPECT, { ...hidden, value: text });
  return target;
}

/** `****` and, for a secret of 8 characters or more, its last two characters. */
export function redact(secret: string | undefined): string {
  if (typeof secret !== "string" || secret.length < 8) return "****";
  return "****" + secret.slice(-2);
}

function isAlnum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** A character of a DeviceSN or a custom topic level: [A-Za-z0-9-_@:]. */
export function isSnChar(c: number): boolean {
  return isAlnum(c) || c === 0x2d || c === 0x5f || c === 0x40 || c === 0x3a;
}

function invalid(message: string): never {
  throw new UiotError("INVALID_IDENTITY", message);
}

function checkProductSN(psn: unknown): string {
  if (typeof psn !== "string" || psn.length === 0)
    invalid("ProductSN is missing: copy it from the product page of the UIoT Core console");
  if (psn.length > 16)
    invalid(`ProductSN ${JSON.stringify(psn)} has ${psn.length} characters; UIoT Core ProductSNs have at most 16`);
  for (let i = 0; i < psn.length; i++)
    if (!isAlnum(psn.charCodeAt(i)))
      invalid(`ProductSN ${JSON.stringify(psn)} may contain only letters and digits (character ${i + 1} is not one)`);
  return psn;
}

function checkDeviceSN(dsn: unknown): string {
  if (typeof dsn !== "string" || dsn.length === 0)
    invalid("DeviceSN is missing: copy it from the device page of the UIoT Core console");
  if (dsn.length < 4 || dsn.length > 64)
    invalid(`DeviceSN ${JSON.stringify(dsn)} has ${dsn.length} characters; UIoT Core DeviceSNs have 4 to 64`);
  for (let i = 0; i < dsn.length; i++)
    if (!isSnChar(dsn.charCodeAt(i)))
      invalid(
        `DeviceSN ${JSON.stringify(dsn)} may contain only letters, digits and - _ @ : (character ${i + 1} is not one)`,
      );
  return dsn;
}

/** Checks a DeviceSecret or ProductSecret; the message describes the problem without showing the secret. */
export function checkSecret(secret: unknown, name: "DeviceSecret" | "ProductSecret"): string {
  if (typeof secret !== "string" || secret.length === 0) invalid(`${name} is missing (empty)`);
  let bad = -1;
  for (let i = 0; i < secret.length && bad < 0; i++) {
    const c = secret.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) bad = i;
  }
  if (bad >= 0)
    invalid(
      `${name} ${redact(secret)} contains a space, control or non-ASCII character at position ${bad + 1} of ${secret.length} (a pasted newline or blank?)`,
    );
  if (secret.length < 16)
    invalid(`${name} ${redact(secret)} has ${secret.length} characters; the platform generates 16: was it cut short?`);
  if (secret.length > 63) invalid(`${name} ${redact(secret)} has ${secret.length} characters; at most 63 are accepted`);
  return secret;
}

export class Identity {
  readonly productSN: string;
  readonly deviceSN: string;
  readonly authmode: AuthMode;
  #secret: string;

  constructor(init: IdentityInit) {
    if (!init || typeof init !== "object")
      invalid("an identity needs productSN, deviceSN and deviceSecret (or productSecret)");
    this.productSN = checkProductSN(init.productSN);
    this.deviceSN = checkDeviceSN(init.deviceSN);
    const ds = init.deviceSecret,
      ps = init.productSecret;
    if (ds !== undefined && ps !== undefined)
      invalid(
        "give either the DeviceSecret (static registration, authmode 1) or the ProductSecret (dynamic registration, authmode 2), not both",
      );
    if (ds !== undefined) {
      this.#secret = checkSecret(ds, "DeviceSecret");
      this.authmode = 1;
    } else if (ps !== undefined) {
      this.#secret = checkSecret(ps, "ProductSecret");
      this.authmode = 2;
    } else
      invalid(
        `device ${this.productSN}.${this.deviceSN} has no secret: give its DeviceSecret, or the ProductSecret to register it dynamically`,
      );
  }

  /** `${ProductSN}.${DeviceSN}` */
  get clientId(): string {
    return `${this.productSN}.${this.deviceSN}`;
  }

  /** `${ProductSN}|${DeviceSN}|${authmode}` */
  get username(): string {
    return `${this.productSN}|${this.deviceSN}|${this.authmode}`;
  }

  /** The MQTT password (DeviceSecret or ProductSecret). Named so every use of it stands out in review. */
  revealSecret(): string {
    return this.#secret;
  }

  /** The authmode-1 identity of the same device with `deviceSecret`. */
  withDeviceSecret(deviceSecret: string): Identity {
    return new Identity({ productSN: this.productSN, deviceSN: this.deviceSN, deviceSecret });
  }

  toString(): string {
    return `UIoT device ${this.clientId} (authmode ${this.authmode}, ${this.authmode === 1 ? "DeviceSecret" : "ProductSecret"} ${redact(this.#secret)})`;
  }

  toJSON(): { productSN: string; deviceSN: string; authmode: AuthMode; secret: string } {
    return {
      productSN: this.productSN,
      deviceSN: this.deviceSN,
      authmode: this.authmode,
      secret: redact(this.#secret),
    };
  }

  [INSPECT](): string {
    return this.toString();
  }
}

// ---- persistence in the host's config store (ESP32 `preference` names are at most 15 characters) ----

export const CONFIG_KEYS = Object.freeze({
  productSN: "uiot_psn",
  deviceSN: "uiot_dsn",
  deviceSecret: "uiot_dsecret",
  productSecret: "uiot_psecret",
} as const);

/**
 * The identity kept in `config`: with the DeviceSecret when one is stored (authmode 1), else with the
 * ProductSecret (authmode 2: dynamic registration still to do).
 */
export function loadIdentity(config: KeyValueStore): Identity {
  const productSN = config.get(CONFIG_KEYS.productSN),
    deviceSN = config.get(CONFIG_KEYS.deviceSN);
  const deviceSecret = config.get(CONFIG_KEYS.deviceSecret);
  if (deviceSecret !== undefined && deviceSecret !== "")
    return new Identity({ productSN: productSN as string, deviceSN: deviceSN as string, deviceSecret });
  const productSecret = config.get(CONFIG_KEYS.productSecret);
  if (productSecret !== undefined && productSecret !== "")
    return new Identity({ productSN: productSN as string, deviceSN: deviceSN as string, productSecret });
  checkProductSN(productSN);
  checkDeviceSN(deviceSN);
  return invalid(
    `no ${CONFIG_KEYS.deviceSecret} nor ${CONFIG_KEYS.productSecret} in the config store: provision the device's DeviceSecret (or the ProductSecret for dynamic registration)`,
  );
}

/**
 * Stores a DeviceSecret, read back to be sure. A stored secret is never overwritten with nothing, and with another
 * secret only when `replace` is set: on UIoT Core dynamic registration works once, so losing the stored secret
 * loses the device's identity. Throws UiotError: INVALID_IDENTITY (not a secret), SECRET_EXISTS, STORE_FAILED.
 */
export function storeDeviceSecret(config: KeyValueStore, secret: string, replace = false): void {
  checkSecret(secret, "DeviceSecret");
  const key = CONFIG_KEYS.deviceSecret;
  let existing: string | undefined;
  try {
    existing = config.get(key);
  } catch (e) {
    throw new UiotError(
      "STORE_FAILED",
      `could not read ${key} from the config store before writing it: ${String(e)}`,
      e,
    );
  }
  if (existing === secret) return;
  if (existing !== undefined && existing !== "" && !replace)
    throw new UiotError(
      "SECRET_EXISTS",
      `a DeviceSecret (${redact(existing)}) is already stored in ${key}; it is not overwritten unless replace is set explicitly, because the platform hands out a DeviceSecret only once`,
    );
  try {
    config.set(key, secret);
  } catch (e) {
    const why = scrub(String(e), secret);
    throw new UiotError(
      "STORE_FAILED",
      `could not store the DeviceSecret in ${key}: ${why}`,
      why === String(e) ? e : undefined,
    );
  }
  let back: string | undefined;
  try {
    back = config.get(key);
  } catch {
    back = undefined;
  }
  if (back !== secret)
    throw new UiotError(
      "STORE_FAILED",
      `the DeviceSecret written to ${key} did not read back the same: the config store is not keeping it`,
    );
}
