/**
 * What each place the Moddable build runs can hold, as numbers the host glue obeys. Sources (Moddable SDK):
 * modules/files/preference/esp32/modPreference.c (NVS; ESP-IDF names are at most 15 characters),
 * modules/files/preference/esp/modPreference.c (ESP8266: one 4 KB flash sector, kept in two that alternate;
 * names at most 31 characters, a value at most 63 bytes, an entry at most 128 bytes),
 * build/devices/esp/manifest.json (ESP8266 `creation.static` 32768: all the memory XS gets), and
 * documentation/network/securesocket.md (a TLS handshake wants about 10 KB of chunk heap, 6 KB of slot heap,
 * 4 KB of stack and 2 KB of system heap free).
 * Frozen, nested objects too (DESKTOP shares ESP32's): the host module is preloaded, and the XS linker keeps only
 * frozen objects in flash alone (see docs/build-and-flash.md, "Module names, relative imports and preloading").
 */
import { CONFIG_KEY_MAX_LENGTH, CONFIG_VALUE_MAX_BYTES } from "../../src/device/config-keys";
import type { PreferenceLimits } from "./preference-store";

export interface ChipProfile {
  /** "esp32", "esp8266" or "moddable-desktop": Host.name. */
  readonly name: string;
  /** What one `preference` entry can hold. */
  readonly preference: PreferenceLimits;
  /** Largest value of the config store (UTF-8 bytes). Keys are at most CONFIG_KEY_MAX_LENGTH characters everywhere. */
  readonly maxConfigValue: number;
  /** The persistent outbox: off, or its bounds. */
  readonly outbox: { readonly maxMessages: number; readonly maxBytes: number } | undefined;
  /** Asks the broker for TLS records of at most this many bytes (RFC 6066 max_fragment_length), 0 for none. */
  readonly tlsMaxFragment: number;
  /** Largest WebSocket frame (and message) accepted from a broker. */
  readonly maxFrameSize: number;
  /** Largest MQTT packet accepted from a broker (the client holds one whole while it arrives): Host.maxPacketSize. */
  readonly maxPacketSize: number;
}

/** ESP32: NVS behind `preference`; 24 KB NVS partition in the SDK's default partitions.csv. */
export const ESP32: ChipProfile = Object.freeze({
  name: "esp32",
  preference: Object.freeze({ maxName: CONFIG_KEY_MAX_LENGTH, maxEntryBytes: CONFIG_VALUE_MAX_BYTES }),
  maxConfigValue: CONFIG_VALUE_MAX_BYTES,
  outbox: Object.freeze({ maxMessages: 16, maxBytes: 8 * 1024 }),
  tlsMaxFragment: 0,
  maxFrameSize: 16 * 1024,
  // XS takes a packet's bytes from its chunk heap (32 KB to start, growing from the system heap's 200 KB or so)
  maxPacketSize: 32 * 1024,
});

/**
 * ESP8266: the preference area is one 4 KB sector (4092 bytes after its magic) shared by everything, rewritten
 * whole when full. Values over 63 bytes are split into entries of 63. The outbox is off by default: every
 * persisted message would write and zero flash in the very sector that holds the device's secret (see
 * docs/build-and-flash.md, "Memory and storage per chip").
 */
export const ESP8266: ChipProfile = Object.freeze({
  name: "esp8266",
  preference: Object.freeze({ maxName: 31, maxEntryBytes: 63 }),
  maxConfigValue: 256,
  outbox: undefined,
  tlsMaxFragment: 2048,
  maxFrameSize: 2 * 1024,
  // XS has 32 KB in all, and a message's JSON is parsed whole once it has arrived: what a WebSocket frame may hold
  maxPacketSize: 2 * 1024,
});

/** Bounds of the ESP8266 outbox when an application turns it on (`persistOutbox: true`). */
export const ESP8266_OUTBOX = Object.freeze({ maxMessages: 4, maxBytes: 512 } as const);

/** The desktop simulator (lin, mac, win): the ESP32's limits, so it refuses what a board would. */
export const DESKTOP: ChipProfile = Object.freeze({ ...ESP32, name: "moddable-desktop", maxFrameSize: 256 * 1024 });
