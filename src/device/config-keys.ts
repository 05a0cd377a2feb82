/**
 * The names under which a device's configuration lives in its host's config store (`Host.config`, a
 * KeyValueStore): what `npm run provision` writes and what the firmware reads on boot. One list for every host:
 * the Node host keeps them in a JSON file; the ESP32 host keeps them with Moddable's `preference` module through
 * hosts/moddable/preference-store.ts, in the NVS namespaces `<PREFERENCE_DOMAIN>a0`, `<PREFERENCE_DOMAIN>a1`, ...
 * (slot "a" is the one a fresh provisioning image fills).
 *
 * Every key follows isConfigKey's rule (at most CONFIG_KEY_MAX_LENGTH characters: ESP32 NVS names); every value
 * is at most CONFIG_VALUE_MAX_BYTES bytes of UTF-8. Both config stores (hosts/node/config-store.ts,
 * hosts/moddable/preference-store.ts) enforce these.
 */
import { CONFIG_KEYS as IDENTITY_KEYS } from "../uiot/identity";

export const CONFIG_KEYS = Object.freeze({
  /** UIoT Core identity (see src/uiot/identity.ts): uiot_psn, uiot_dsn, uiot_dsecret, uiot_psecret. */
  ...IDENTITY_KEYS,
  /** The broker URL, normalized with an explicit port: mqtts://host:8883, wss://host:443/mqtt, ... */
  brokerUrl: "uiot_url",
  /**
   * CA certificates (PEM) that the broker's certificate must chain to, when not the platform's own root. Longer
   * than one value can hold, the text is cut into parts: `uiot_ca`, `uiot_ca1`, ... `uiot_ca7`, read in order
   * until one is missing, and joined.
   */
  caCert: "uiot_ca",
  /**
   * Wi-Fi network name (1..32 bytes) and WPA2 passphrase (8..63 characters, 64 hex digits, or empty for open):
   * the names hosts/moddable/host.ts reads before mcconfig's ssid= and password=.
   */
  wifiSsid: "wifi.ssid",
  wifiPassword: "wifi.password",
  /** MQTT keepalive in seconds (optional; default 300): whole seconds, 30..1200 as UIoT Core allows. */
  keepalive: "uiot_keepalive",
  /**
   * "1": plain mqtt:// or ws:// to a host that is not loopback is allowed (the DeviceSecret, and during dynamic
   * registration the ProductSecret, then cross the network in clear; a warning is logged at every connect).
   * Absent or "0": such a URL is refused at boot. Loopback (localhost, 127.0.0.0/8, ::1) needs no opt-in.
   */
  allowPlaintext: "uiot_plaintext",
  /**
   * "1": keep the ProductSecret in the store after dynamic registration. Absent or "0": it is deleted once the
   * DeviceSecret is stored and read back (one board's flash must not yield the secret of the whole product).
   */
  keepProductSecret: "uiot_keep_psec",
} as const);

/** How many parts a CA may be cut into (CONFIG_KEYS.caCert, then caCert + "1" ... caCert + "7"). */
export const CA_MAX_PARTS = 8;

/** The longest config key: ESP32 NVS names are at most 15 characters. */
export const CONFIG_KEY_MAX_LENGTH = 15;

/** The largest value of one key: what Moddable's `preference` holds on ESP32, and what the Node host enforces. */
export const CONFIG_VALUE_MAX_BYTES = 4000;

/**
 * Whether `key` can name a config value: 1 to `maxLength` printable ASCII characters without spaces (default
 * CONFIG_KEY_MAX_LENGTH; 0 for no length limit). The rule of every host's config store.
 */
export function isConfigKey(key: unknown, maxLength = CONFIG_KEY_MAX_LENGTH): boolean {
  return (
    typeof key === "string" && key !== "" && (maxLength <= 0 || key.length <= maxLength) && /^[\x21-\x7e]+$/.test(key)
  );
}

/**
 * The preference domain prefix of the ESP32 config store (PreferenceStore's `domain`): its entries live in NVS
 * namespaces "cfga0", "cfgb0", "cfga1", ... The ESP32 host and the provisioning image must use the same one.
 */
export const PREFERENCE_DOMAIN = "cfg";

/** The key of CA part `i` (0-based). */
export function caPartKey(i: number): string {
  return i === 0 ? CONFIG_KEYS.caCert : `${CONFIG_KEYS.caCert}${i}`;
}
