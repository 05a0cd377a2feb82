/**
 * The contracts between portable code and a host. Shaped like ECMA-419 IO (onReadable / onWritable / onError,
 * a write that can refuse when it would block) so the ESP32/ESP8266 hosts map onto Moddable's
 * embedded:io/socket/tcp and TLS socket with little glue, and the Node host onto net/tls.
 */

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
