/**
 * The host contract: everything a place the firmware runs on supplies to portable code, in one file below every
 * layer of src/ (device -> uiot -> mqtt -> net -> this). Each host (hosts/esp32, hosts/esp8266,
 * hosts/moddable-desktop through hosts/moddable, hosts/node, hosts/xsnap) builds a Host; nothing in src/ imports a
 * host. Types only, imported with `import type`: it compiles to nothing and is not a module on the device.
 *
 * The byte streams are shaped like ECMA-419 IO (onReadable / onWritable / onError, a write that can refuse when it
 * would block) so the Moddable hosts map onto embedded:io/socket/tcp and its TLS socket with little glue, and the
 * Node host onto net/tls.
 */

// ---- where to connect ----

export type Scheme = "mqtt" | "mqtts" | "ws" | "wss";

/** Where a broker is and how to reach it: the portable shape every host's connector understands (src/net/endpoint.ts parses it). */
export interface Endpoint {
  scheme: Scheme;
  host: string;
  port: number;
  /** WebSocket path (default "/mqtt"); "" for mqtt/mqtts. */
  path: string;
}

/**
 * TLS settings, one shape for every host. Verification is on unless `insecure` is set explicitly, and hosts log
 * loudly on every connect when it is.
 */
export interface TlsOptions {
  /** Trusted CAs, PEM text or DER bytes; several allowed. The UIoT profile defaults to the platform's root. */
  ca?: (string | Uint8Array)[];
  /** Name for SNI and certificate verification; default: the endpoint's host. */
  serverName?: string;
  /** Client certificate (PEM or DER) and its private key (PKCS#8 PEM or DER), for mutual TLS. */
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
  /** ALPN protocol names, e.g. ["mqtt"]. */
  alpn?: string[];
  /** Turns certificate verification off. Never the default; logged on every connect. */
  insecure?: boolean;
}

// ---- byte streams and time ----

/** What a transport tells its owner. */
export interface TransportHandlers {
  /** The byte stream is open (TCP connected and, for TLS, the handshake done; for WebSocket, upgraded). */
  onConnect(): void;
  /** `count` bytes (at least) can be read now with read(). */
  onReadable(count: number): void;
  /** The transport can take more bytes now; a write that returned false may be tried again. */
  onWritable(count: number): void;
  /** The transport failed or was closed by the peer; it is dead and sends no further callbacks. */
  onError(error: Error): void;
}

/** One connection's byte stream. */
export interface Transport {
  /** Takes the bytes available now (a fresh buffer the caller may keep), or undefined if there are none. */
  read(): Uint8Array | undefined;
  /**
   * Queues `data` whole and returns true, or returns false without taking any of it when it would block
   * (then onWritable follows). The caller must not change `data` after a true answer.
   */
  write(data: Uint8Array): boolean;
  /** Closes now, also while still connecting (DNS, TCP, TLS): no callback follows. */
  close(): void;
}

/** Opens a new transport to the configured endpoint; `handlers` are called from then on. Never throws. */
export type Connector = (handlers: TransportHandlers) => Transport;

/** Time for portable code: a monotonic millisecond clock and one-shot timers. */
export interface Clock {
  now(): number;
  setTimer(callback: () => void, ms: number): unknown;
  clearTimer(timer: unknown): void;
}

/** The network link under TCP (Wi-Fi on a board, a scripted link in the simulator). */
export interface NetworkLink {
  readonly up: boolean;
  /** Called with the new state whenever the link goes up or down. */
  onChange: ((up: boolean) => void) | undefined;
}

// ---- storage and memory ----

/** Small persistent key/value storage for configuration and secrets (ESP32: NVS via `preference`). */
export interface KeyValueStore {
  get(key: string): string | undefined;
  /** Throws when the value cannot be stored (too large, storage full); a secret is never half-written. */
  set(key: string, value: string): void;
  delete(key: string): void;
}

/**
 * Persistence for QoS 1 messages that the broker has not acknowledged yet, so they survive a reboot (a file per
 * message on the desktop, `preference` on a board). Entries are whole encoded PUBLISH packets keyed by a sequence
 * number that grows with each message.
 */
export interface OutboxStore {
  /** Every stored entry, in any order; the client sorts by key. */
  load(): { key: number; packet: Uint8Array }[];
  /** Saves one entry; throws when it cannot (full, I/O error): the publish then fails instead of pretending. */
  save(key: number, packet: Uint8Array): void;
  /** Forgets one entry (acknowledged). Removing an absent key is not an error. */
  remove(key: number): void;
}

/**
 * Makes MQTT packet buffers. Every byte of a packet is written, so an allocator need not zero memory. The portable
 * default (src/mqtt/encode.ts, newBytes) suits XS; a host may pass a faster one (the Node host takes them from
 * slabs, as Node's own buffer pool serves the MQTT libraries of Node).
 */
export type Allocator = (size: number) => Uint8Array;

// ---- logging ----

export type LogLevel = "debug" | "info" | "warn" | "error";

/** Where messages go. Never called with a secret: portable code redacts before logging. */
export type LogFunction = (level: LogLevel, message: string) => void;

// ---- firmware updates (src/uiot/ota.ts) ----

/** Where the host writes a new image (ESP32: the SDK's `ota` module into the next app partition). */
export interface ImageWriter {
  /** Prepares for an image of `size` bytes; throws when it cannot (no partition, too large). */
  begin(size: number): void;
  /** Writes the next bytes, in order; throws when the write failed. */
  write(chunk: Uint8Array): void;
  /** All bytes written and checked: makes the image the one to boot next; throws when it cannot. */
  complete(): void;
  /** Abandons the image: the running one stays the one to boot. Never throws. */
  cancel(): void;
}

/** What a host offers for updates (Host.firmware). */
export interface Firmware {
  /** The version of the running image, as the platform knows versions ("1.0.3"). */
  readonly version: string;
  /** Set when this device cannot be updated over the air: update_firmware is answered report_fail -5, this logged. */
  readonly unsupported?: string;
  /** The largest image the update partition holds, bytes (a larger Size is refused before downloading). */
  readonly capacity?: number;
  /** A writer for the image of `version`. */
  writer?(version: string): ImageWriter;
  /** Restarts into the image made bootable by complete(). */
  restart?(): void;
  /** The running image has logged in: keep it (cancels a bootloader's rollback where the host has one). */
  confirm?(): void;
}

// ---- the whole host ----

/** What a place the firmware runs on hands to portable code at start (src/device/main.ts, start). */
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
