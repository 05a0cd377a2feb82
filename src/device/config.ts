/**
 * The device's configuration as provisioned into its host's config store, with the rules every field must follow.
 * `npm run provision` checks its input with these same functions before writing, and the firmware entry calls
 * `loadDeviceConfig(host.config)` on boot: missing or invalid settings give one message that says what is wrong
 * and what to run, never a secret.
 *
 * Rules (identity rules are src/uiot/identity.ts's):
 * - broker URL: mqtt://, mqtts://, ws:// or wss:// as parseEndpoint takes it; stored with its port written out
 *   (UIoT Core hosts, *.iot.ucloud.cn, get the platform's WebSocket ports 80 and 443 when none is written).
 *   Plain mqtt:// and ws:// to a host that is not loopback only with the opt-in CONFIG_KEYS.allowPlaintext = "1"
 *   (checkPlaintext): the DeviceSecret would cross the network in clear.
 * - CA: one or more PEM certificates ("-----BEGIN CERTIFICATE-----"), nothing else (a private key is refused: a
 *   CA file never needs one), only for mqtts:// and wss://. Stored re-encoded (64-column base64, no comments) and
 *   cut into parts of at most CONFIG_VALUE_MAX_BYTES, CA_MAX_PARTS at most.
 * - Wi-Fi SSID: 1 to 32 bytes of UTF-8 (IEEE 802.11), no control characters.
 * - Wi-Fi password: empty (an open network), 8 to 63 printable ASCII characters (a WPA2 passphrase), or 64 hex
 *   digits (a raw pre-shared key). Only with an SSID.
 */
import type { Endpoint, KeyValueStore, TlsOptions } from "../host";
import { formatEndpoint, isLoopback, isSecure, parseEndpoint } from "../net/endpoint";
import { NetError } from "../net/errors";
import { derToPem, pemToDer } from "../net/pem";
import { UiotError } from "../uiot/errors";
import { CONFIG_KEYS as IDENTITY_KEYS, loadIdentity, printsAs, redact, type Identity } from "../uiot/identity";
import { isUiotHost, UIOT_KEEPALIVE, UIOT_PORTS } from "../uiot/platform";
import { CA_MAX_PARTS, CONFIG_KEYS, CONFIG_VALUE_MAX_BYTES, caPartKey } from "./config-keys";

/** Which setting a ConfigError is about (the name people know it by). */
export type ConfigField =
  | "ProductSN"
  | "DeviceSN"
  | "DeviceSecret"
  | "ProductSecret"
  | "broker URL"
  | "CA"
  | "Wi-Fi SSID"
  | "Wi-Fi password"
  | "option";

/**
 * INVALID_CONFIG: a setting breaks its rule. PLAINTEXT_REFUSED: a plain mqtt:// or ws:// URL to a host that is not
 * loopback, without the opt-in (checkPlaintext).
 */
export type ConfigErrorCode = "INVALID_CONFIG" | "PLAINTEXT_REFUSED";

/** A setting that breaks its rule. The message names the rule and never contains a secret. */
export class ConfigError extends Error {
  // A field, defined on the instance: on XS Error.prototype is frozen, so assigning `this.name` would throw.
  override name = "ConfigError";
  readonly code: ConfigErrorCode;
  readonly field: ConfigField;
  constructor(field: ConfigField, message: string, code: ConfigErrorCode = "INVALID_CONFIG") {
    super(message);
    this.field = field;
    this.code = code;
  }
}

export interface WifiConfig {
  ssid: string;
  /** "" for an open network. */
  password: string;
}

/** Wi-Fi settings that print their password as `****` (see printsAs). */
export function wifiConfig(ssid: string, password: string): WifiConfig {
  const wifi: WifiConfig = { ssid, password };
  const shown = (): { ssid: string; password: string } => ({
    ssid: wifi.ssid,
    password: wifi.password === "" ? "" : redact(wifi.password),
  });
  return printsAs(
    wifi,
    () => `Wi-Fi "${wifi.ssid}" (password ${wifi.password === "" ? "none: open network" : redact(wifi.password)})`,
    shown,
  );
}

export interface DeviceConfig {
  /** Authmode 1 (DeviceSecret) or 2 (ProductSecret: dynamic registration to do first). */
  identity: Identity;
  /** The broker URL as stored (port written out). */
  url: string;
  endpoint: Endpoint;
  /** `{ ca }` when CA certificates were provisioned; otherwise undefined (the UIoT profile uses the platform root). */
  tls?: TlsOptions;
  wifi?: WifiConfig;
  /** MQTT keepalive in seconds, when provisioned (CONFIG_KEYS.keepalive); otherwise the UIoT default. */
  keepalive?: number;
  /** CONFIG_KEYS.allowPlaintext is "1": plain mqtt:// / ws:// to a host that is not loopback is allowed. */
  allowPlaintext: boolean;
  /** CONFIG_KEYS.keepProductSecret is "1": the ProductSecret stays in the store after dynamic registration. */
  keepProductSecret: boolean;
}

export type LoadDeviceConfigResult = { ok: true; config: DeviceConfig } | { ok: false; message: string };

export interface LoadDeviceConfigOptions {
  /** A board needs Wi-Fi settings; the simulator does not (default false). */
  requireWifi?: boolean;
}

/** What to run, for every boot message. */
const PROVISION_HINT =
  "provision the device: `npm run provision -- --product-sn <ProductSN> --device-sn <DeviceSN> --url <broker URL>` " +
  "for the simulator, or with `--target esp32 --out <file>` and flash that image to an ESP32 (README, Provisioning)";

// ---- rules ----

/** How to allow plain text, for messages. */
const PLAINTEXT_HINT =
  `use mqtts:// or wss:// (the broker's TLS port), or, only on a network you trust, allow plain text explicitly ` +
  `(config key ${CONFIG_KEYS.allowPlaintext} = 1: \`npm run provision -- ... --allow-plaintext\`)`;

/**
 * Whether the secret crosses a network in clear: a plain scheme (mqtt://, ws://) to a host that is not loopback.
 */
export function sendsSecretsInClear(endpoint: Endpoint): boolean {
  return !isSecure(endpoint.scheme) && !isLoopback(endpoint.host);
}

/**
 * Refuses plain mqtt:// and ws:// to a host that is not loopback unless `allowPlaintext`: the DeviceSecret (or,
 * during dynamic registration, the product-wide ProductSecret) would cross the network in clear. Throws
 * ConfigError "broker URL" with code PLAINTEXT_REFUSED and what to do.
 */
export function checkPlaintext(endpoint: Endpoint, allowPlaintext: boolean): void {
  if (allowPlaintext || !sendsSecretsInClear(endpoint)) return;
  throw new ConfigError(
    "broker URL",
    `${formatEndpoint(endpoint)} is plain ${endpoint.scheme}:// to a host that is not this machine: the DeviceSecret (during dynamic registration the ProductSecret) would cross the network in clear: ${PLAINTEXT_HINT}`,
    "PLAINTEXT_REFUSED",
  );
}

/** The value of a "1"/"0" switch (absent: false). Throws ConfigError "option" naming the key. */
function checkSwitch(value: string | undefined, key: string): boolean {
  if (value === undefined || value === "" || value === "0") return false;
  if (value === "1") return true;
  throw new ConfigError(
    "option",
    `the config key ${key} is 1 (on) or 0 (off), not ${JSON.stringify(value.slice(0, 8))}`,
  );
}

/** The broker URL parsed, and written back with its port. Throws ConfigError "broker URL". */
export function checkBrokerUrl(url: unknown): { url: string; endpoint: Endpoint } {
  if (typeof url !== "string" || url.trim() === "")
    throw new ConfigError(
      "broker URL",
      "the broker URL is missing: give it as mqtts://host:8883 (or mqtt://, ws://, wss://)",
    );
  let endpoint: Endpoint;
  try {
    endpoint = parseEndpoint(url);
    if (isUiotHost(endpoint.host)) endpoint = parseEndpoint(url, { ports: UIOT_PORTS });
  } catch (e) {
    throw new ConfigError("broker URL", e instanceof NetError ? e.message : "the broker URL cannot be parsed");
  }
  return { url: formatEndpoint(endpoint), endpoint };
}

/** Whether `der` is one whole DER SEQUENCE (a certificate is one). */
function wholeSequence(der: Uint8Array): boolean {
  if (der.length < 2 || der[0] !== 0x30) return false;
  let len = der[1];
  let at = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || der.length < 2 + n) return false;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[at++];
  }
  return at + len === der.length;
}

/**
 * The certificates of a CA bundle, each re-encoded as plain PEM. Throws ConfigError "CA" when the text holds a
 * private key, anything but certificates, a damaged certificate, or no certificate at all.
 */
export function checkCaPem(text: unknown): string[] {
  if (typeof text !== "string" || text.trim() === "")
    throw new ConfigError(
      "CA",
      "the CA file is empty: it must hold one or more PEM certificates (-----BEGIN CERTIFICATE-----)",
    );
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text))
    throw new ConfigError(
      "CA",
      "the CA file contains a private key: a CA file holds only the certificates that sign the broker's certificate; never copy a private key onto the device this way",
    );
  const labels = [...text.matchAll(/-----BEGIN ([^-\r\n]*)-----/g)].map((m) => m[1]);
  if (labels.length === 0)
    throw new ConfigError(
      "CA",
      "the CA file holds no PEM certificate (no -----BEGIN CERTIFICATE----- line): a DER file must be converted to PEM first (openssl x509 -inform der)",
    );
  const other = labels.find((l) => l !== "CERTIFICATE");
  if (other !== undefined)
    throw new ConfigError("CA", `the CA file holds a "${other}" block: only CERTIFICATE blocks belong in it`);
  let ders: Uint8Array[];
  try {
    ders = pemToDer(text, "CERTIFICATE", "the CA file");
  } catch (e) {
    throw new ConfigError("CA", e instanceof NetError ? e.message : "the CA file is not valid PEM");
  }
  if (ders.length !== labels.length)
    throw new ConfigError("CA", "a certificate in the CA file has no END line: is the file cut short?");
  return ders.map((der, i) => {
    if (!wholeSequence(der))
      throw new ConfigError(
        "CA",
        `certificate ${i + 1} of the CA file is damaged (its DER encoding is not one whole SEQUENCE): is it cut short?`,
      );
    return derToPem(der, "CERTIFICATE");
  });
}

/**
 * The CA certificates as the values of caPartKey(0), caPartKey(1), ...; throws ConfigError "CA" when too large.
 * `partBytes`: the largest value the device's store takes (ESP32 4000, the default; ESP8266 256).
 */
export function caParts(pems: readonly string[], partBytes = CONFIG_VALUE_MAX_BYTES): string[] {
  const text = pems.join("");
  const parts: string[] = [];
  for (let at = 0; at < text.length; at += partBytes) parts.push(text.slice(at, at + partBytes)); // PEM is ASCII
  if (parts.length > CA_MAX_PARTS)
    throw new ConfigError(
      "CA",
      `the CA certificates take ${text.length} bytes as PEM; the device keeps at most ${CA_MAX_PARTS * partBytes} (${CA_MAX_PARTS} values of ${partBytes}): give only the root or intermediate the broker's certificate chains to`,
    );
  return parts;
}

function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
        continue;
      }
    }
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : 3;
  }
  return n;
}

export function checkWifiSsid(ssid: unknown): string {
  if (typeof ssid !== "string" || ssid.length === 0)
    throw new ConfigError("Wi-Fi SSID", "the Wi-Fi SSID is empty: give the network's name");
  const bytes = utf8Bytes(ssid);
  if (bytes > 32)
    throw new ConfigError(
      "Wi-Fi SSID",
      `the Wi-Fi SSID ${JSON.stringify(ssid)} is ${bytes} bytes; an SSID is at most 32 bytes (IEEE 802.11)`,
    );
  for (let i = 0; i < ssid.length; i++) {
    const c = ssid.charCodeAt(i);
    if (
      c < 0x20 ||
      c === 0x7f ||
      (c >= 0xd800 &&
        c <= 0xdfff &&
        !(c <= 0xdbff && i + 1 < ssid.length && ssid.charCodeAt(i + 1) >= 0xdc00 && ssid.charCodeAt(i + 1) <= 0xdfff))
    )
      throw new ConfigError(
        "Wi-Fi SSID",
        `the Wi-Fi SSID has a control character or broken text at position ${i + 1} (a pasted newline?)`,
      );
    if (c >= 0xd800 && c <= 0xdbff) i++;
  }
  return ssid;
}

/** Checks a Wi-Fi password without ever quoting it. */
export function checkWifiPassword(password: unknown): string {
  if (typeof password !== "string") throw new ConfigError("Wi-Fi password", "the Wi-Fi password must be text");
  if (password === "") return password; // an open network
  for (let i = 0; i < password.length; i++) {
    const c = password.charCodeAt(i);
    if (c < 0x20 || c > 0x7e)
      throw new ConfigError(
        "Wi-Fi password",
        `the Wi-Fi password has a control or non-ASCII character at position ${i + 1} of ${password.length} (a pasted newline?); WPA2 passphrases are printable ASCII`,
      );
  }
  if (password.length === 64) {
    if (!/^[0-9A-Fa-f]{64}$/.test(password))
      throw new ConfigError(
        "Wi-Fi password",
        "the Wi-Fi password has 64 characters, so it must be a raw key of 64 hex digits; a passphrase has 8 to 63 characters",
      );
    return password;
  }
  if (password.length < 8 || password.length > 63)
    throw new ConfigError(
      "Wi-Fi password",
      `the Wi-Fi password has ${password.length} characters; a WPA2 passphrase has 8 to 63 (or give 64 hex digits, or nothing for an open network)`,
    );
  return password;
}

// ---- printing a loaded configuration (secrets redacted) ----

function describeConfig(c: DeviceConfig): string {
  return (
    `device config: ${String(c.identity)}, broker ${c.url}${c.tls ? `, ${c.tls.ca ? c.tls.ca.length : 0} CA certificate(s)` : ""}` +
    `${c.wifi ? `, ${String(c.wifi)}` : ""}${c.keepalive !== undefined ? `, keepalive ${c.keepalive} s` : ""}` +
    `${c.allowPlaintext ? ", plain text allowed" : ""}${c.keepProductSecret ? ", ProductSecret kept" : ""}`
  );
}

function configJson(c: DeviceConfig): { [key: string]: unknown } {
  const out: { [key: string]: unknown } = { identity: c.identity.toJSON(), url: c.url, endpoint: c.endpoint };
  if (c.tls) out.tls = { ca: c.tls.ca ? c.tls.ca.length : 0 };
  if (c.wifi) out.wifi = { ssid: c.wifi.ssid, password: c.wifi.password === "" ? "" : redact(c.wifi.password) };
  if (c.keepalive !== undefined) out.keepalive = c.keepalive;
  out.allowPlaintext = c.allowPlaintext;
  out.keepProductSecret = c.keepProductSecret;
  return out;
}

// ---- boot ----

/** " (uiot_psn)" etc. for an identity message that does not name its key already. */
function identityKey(message: string): string {
  if (message.indexOf("uiot_") >= 0) return "";
  for (const [name, key] of [
    ["ProductSN", IDENTITY_KEYS.productSN],
    ["DeviceSN", IDENTITY_KEYS.deviceSN],
    ["DeviceSecret", IDENTITY_KEYS.deviceSecret],
    ["ProductSecret", IDENTITY_KEYS.productSecret],
  ] as const)
    if (message.startsWith(name)) return ` (${key})`;
  return "";
}

/** `text` on one line: control characters (a stored value may end in a pasted newline) written as \\n, \\u0007, ... */
function oneLine(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x20 && c !== 0x7f) out += text[i];
    else if (c === 10) out += "\\n";
    else if (c === 13) out += "\\r";
    else if (c === 9) out += "\\t";
    else out += `\\u${(c + 0x10000).toString(16).slice(1)}`;
  }
  return out;
}

function problem(text: string): LoadDeviceConfigResult {
  return { ok: false, message: `the device is not provisioned: ${oneLine(text)}; ${PROVISION_HINT}` };
}

/**
 * Reads and checks the configuration in `store`. Never throws: a missing or invalid setting, or a store that
 * cannot be read, is `{ ok: false, message }` with one message to show at boot (never containing a secret).
 */
export function loadDeviceConfig(store: KeyValueStore, options: LoadDeviceConfigOptions = {}): LoadDeviceConfigResult {
  const get = (key: string): string | undefined => {
    const v = store.get(key);
    return v === "" ? undefined : v;
  };
  try {
    let identity: Identity;
    try {
      identity = loadIdentity(store);
    } catch (e) {
      if (!(e instanceof UiotError)) throw e;
      return problem(`${e.message}${identityKey(e.message)}`);
    }

    let url: string, endpoint: Endpoint, allowPlaintext: boolean, keepProductSecret: boolean;
    try {
      allowPlaintext = checkSwitch(get(CONFIG_KEYS.allowPlaintext), CONFIG_KEYS.allowPlaintext);
      keepProductSecret = checkSwitch(get(CONFIG_KEYS.keepProductSecret), CONFIG_KEYS.keepProductSecret);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      return problem(e.message);
    }
    try {
      ({ url, endpoint } = checkBrokerUrl(get(CONFIG_KEYS.brokerUrl)));
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      return problem(`${e.message} (${CONFIG_KEYS.brokerUrl})`);
    }

    let tls: TlsOptions | undefined;
    const parts: string[] = [];
    for (let i = 0; i < CA_MAX_PARTS; i++) {
      const part = get(caPartKey(i));
      if (part === undefined) break;
      parts.push(part);
    }
    if (parts.length > 0) {
      if (!isSecure(endpoint.scheme))
        return problem(
          `a CA is stored (${CONFIG_KEYS.caCert}) but the broker URL ${url} does not use TLS: use mqtts:// or wss://, or provision without a CA`,
        );
      try {
        tls = { ca: checkCaPem(parts.join("")) };
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        return problem(`${e.message} (${CONFIG_KEYS.caCert})`);
      }
    }

    try {
      checkPlaintext(endpoint, allowPlaintext);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      return problem(`${e.message} (${CONFIG_KEYS.brokerUrl})`);
    }

    let wifi: WifiConfig | undefined;
    const ssid = get(CONFIG_KEYS.wifiSsid);
    const password = store.get(CONFIG_KEYS.wifiPassword);
    if (ssid === undefined) {
      if (password !== undefined && password !== "")
        return problem(
          `a Wi-Fi password is stored (${CONFIG_KEYS.wifiPassword}) without a Wi-Fi SSID (${CONFIG_KEYS.wifiSsid})`,
        );
      if (options.requireWifi)
        return problem(`no Wi-Fi network is configured (${CONFIG_KEYS.wifiSsid}): give --wifi-ssid and the password`);
    } else {
      try {
        wifi = wifiConfig(checkWifiSsid(ssid), checkWifiPassword(password ?? ""));
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        return problem(`${e.message} (${e.field === "Wi-Fi SSID" ? CONFIG_KEYS.wifiSsid : CONFIG_KEYS.wifiPassword})`);
      }
    }
    let keepalive: number | undefined;
    const ka = get(CONFIG_KEYS.keepalive);
    if (ka !== undefined) {
      keepalive = /^\d{1,4}$/.test(ka) ? Number(ka) : -1;
      if (keepalive < UIOT_KEEPALIVE[0] || keepalive > UIOT_KEEPALIVE[1])
        return problem(
          `the keepalive must be whole seconds from ${UIOT_KEEPALIVE[0]} to ${UIOT_KEEPALIVE[1]} (UIoT Core's range), not ${JSON.stringify(oneLine(ka).slice(0, 12))} (${CONFIG_KEYS.keepalive})`,
        );
    }
    const config: DeviceConfig = { identity, url, endpoint, allowPlaintext, keepProductSecret };
    if (keepalive !== undefined) config.keepalive = keepalive;
    if (tls) config.tls = tls;
    if (wifi) config.wifi = wifi;
    return {
      ok: true,
      config: printsAs(
        config,
        () => describeConfig(config),
        () => configJson(config),
      ),
    };
  } catch (e) {
    // The store itself failed (unreadable, corrupt). Store errors never quote values.
    return problem(`its config store cannot be read (${e instanceof Error ? e.message : String(e)})`);
  }
}
