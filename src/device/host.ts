/**
 * What a place the firmware runs on hands to portable code at start. Each host (hosts/esp32, hosts/esp8266,
 * hosts/moddable-desktop, hosts/node) builds one of these; nothing in src/ imports a host.
 */
import type { OutboxStore } from "../mqtt/store";
import type { Endpoint, TlsOptions } from "../net/endpoint";
import type { Clock, Connector } from "../net/transport";
import type { Firmware } from "../uiot/ota";

/** Small persistent key/value storage for configuration and secrets (ESP32: NVS via `preference`). */
export interface KeyValueStore {
  get(key: string): string | undefined;
  /** Throws when the value cannot be stored (too large, storage full); a secret is never half-written. */
  set(key: string, value: string): void;
  delete(key: string): void;
}

/** The network link under TCP (Wi-Fi on a board, a scripted link in the simulator). */
export interface NetworkLink {
  readonly up: boolean;
  /** Called with the new state whenever the link goes up or down. */
  onChange: ((up: boolean) => void) | undefined;
}

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Host {
  readonly name: string;
  clock: Clock;
  /** Uniform in [0, 1). */
  random(): number;
  /** A connector for one endpoint; TLS for mqtts/wss. Transport errors are reported as typed errors. */
  connector(endpoint: Endpoint, tls?: TlsOptions): Connector;
  /** Configuration and secrets. */
  config: KeyValueStore;
  /** Where QoS 1 messages wait across reboots, if this host can keep them. */
  outbox?: OutboxStore;
  network: NetworkLink;
  /**
   * The largest MQTT packet accepted from the broker, in bytes (default 256 KB): the client holds a packet whole
   * while it arrives, so a board bounds it by its RAM. A larger one is skipped with PACKET_TOO_LARGE and the
   * connection goes on.
   */
  readonly maxPacketSize?: number;
  /**
   * Firmware updates over the air (src/uiot/ota.ts): the running version, the image writer and the restart. Without
   * it the device ignores ota/downstream; with `unsupported` set it answers every update_firmware with report_fail.
   */
  readonly firmware?: Firmware;
  /** Never called with a secret: portable code redacts before logging. */
  log(level: LogLevel, message: string): void;
}
