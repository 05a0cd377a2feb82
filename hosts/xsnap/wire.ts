// The message format between the firmware on XS (hosts/xsnap/host.ts) and the Node process that serves its I/O
// (tools/simulator/xs-device.ts). Shared by both sides, so portable: Uint8Array and DataView only.
//
// Every message, either way, is a 5-byte header and a body:  [op: u8][id: u32 big-endian][body...]
// `id` names a transport, a timer or an outbox key (0 when the op has none); the body is raw bytes (socket data,
// PUBLISH packets) or UTF-8 text (JSON for the few structured, rare messages). Bytes are never re-encoded.
//
// XS -> Node: queries, through xsnap's issueCommand(), answered at once (XS waits): [status: u8][body...]
// Node -> XS: events, through handleCommand(), one at a time; the reply of each is the device's status as JSON.
import { utf8Length, writeUtf8 } from "../../src/mqtt/utf8";

export const HEADER = 5;

/** Queries: what the firmware asks of the Node host. */
export const Q = {
  NOW: 1, // -> f64 ms (the host's monotonic clock)
  RANDOM: 2, // -> f64 in [0, 1)
  TIMER_SET: 3, // id, body u32 ms
  TIMER_CLEAR: 4, // id
  CONNECTOR: 5, // id = connector, body JSON { endpoint, tls } -> OK | ERROR message
  OPEN: 6, // id = transport, body u32 connector id
  WRITE: 7, // id, body bytes -> OK [1 | 0]: taken, or would block (WRITABLE follows)
  CLOSE: 8, // id
  CONFIG_GET: 9, // body key -> OK value | NONE
  CONFIG_SET: 10, // body JSON [key, value] -> OK | ERROR message
  CONFIG_DELETE: 11, // body key
  OUTBOX_LOAD: 12, // -> OK entries: [u32 key][u32 length][packet] ...
  OUTBOX_SAVE: 13, // id = key, body packet -> OK | ERROR message
  OUTBOX_REMOVE: 14, // id = key
  LOG: 15, // id = level (LEVELS index), body message
  TRACE: 16, // id = 0 in / 1 out, body [u16 topic length][topic][payload] (the simulator's view)
  STARTED: 17, // id = 1 the device runs / 0 it could not start (the reason was logged)
  // The firmware slot (StartOptions.firmware): the Node host's image writer, one per update, named by `id`.
  FW_BEGIN: 18, // id = writer, body JSON { version, size } -> OK | ERROR message (the writer refused)
  FW_WRITE: 19, // id, body the next bytes of the image (a chunk as it arrived) -> OK | ERROR message
  FW_COMPLETE: 20, // id: every byte written and checked, make it the image to boot -> OK | ERROR message
  FW_CANCEL: 21, // id: abandon the image
  FW_RESTART: 22, // restart into the image made bootable (the Node side stops this device and starts it again)
} as const;

/** Events: what happens on the Node side that the firmware must hear of. */
export const E = {
  START: 1, // body JSON StartOptions
  CONNECTED: 2, // id = transport
  DATA: 3, // id, body bytes
  WRITABLE: 4, // id, body u32 count
  ERROR: 5, // id, body JSON { code, message } (a NetError on the Node side) or { message }
  TIMER: 6, // id
  LINK: 7, // id = 1 up / 0 down
  STOP: 8, // stop the device (DISCONNECT), the reply follows once it is done
  STATUS: 9, // nothing: just the reply
} as const;

/** Answer statuses. */
export const OK = 0,
  NONE = 1,
  ERROR = 2;

export const LEVELS = ["debug", "info", "warn", "error"] as const;

/** What the Node side sends with START. */
export interface StartOptions {
  /** The link's state at start. */
  up: boolean;
  /** Whether the host keeps an outbox store (the Node host's FileOutboxStore). */
  outbox: boolean;
  /** The thermostat's options (src/device/thermostat.ts). */
  thermostat?: {
    postInterval?: number;
    timeConstant?: number;
    highTemp?: number;
    temperature?: number;
    target?: number;
  };
  keepalive?: number;
  /** Report every message in and out (Q.TRACE), for the simulator's view. */
  trace?: boolean;
  /** The Node host's firmware slot, when it has one: the running version and the slot's size (Q.FW_*). */
  firmware?: { version: string; capacity?: number; unsupported?: string };
  /** Firmware-update settings (src/device/main.ts StartOptions.ota). */
  ota?: { timeout?: number; retries?: number; retryDelay?: number; progressInterval?: number; rebootDelay?: number };
  /** Options of a test's application (test/hosts/xsnap/bridge-entry.ts). */
  app?: Record<string, unknown>;
}

/** The device as the simulator shows it: the reply to every event. */
export interface DeviceStatus {
  /** The client's state, or "starting" before the device runs, "stopped" after it could not start. */
  state: string;
  connects: number;
  /** Connections that were up and then lost; attempts that never connected; the last reason (empty once connected). */
  drops: number;
  failedDials: number;
  problem: string;
  /** QoS 1 messages waiting. */
  outbox: number;
  thermostat: {
    temperature: number;
    humidity: number;
    target: number;
    correction: number;
    posts: number;
    events: number;
    hot: boolean;
  };
}

/** A message of `op` and `id` with room for `length` body bytes at HEADER. */
export function frame(op: number, id: number, length: number): Uint8Array {
  const b = new Uint8Array(HEADER + length);
  b[0] = op;
  put32(b, 1, id);
  return b;
}

/** A message whose body is `bytes`. */
export function withBytes(op: number, id: number, bytes: Uint8Array): Uint8Array {
  const b = frame(op, id, bytes.length);
  b.set(bytes, HEADER);
  return b;
}

/** `text` as UTF-8 bytes (any string: U+0000 included). */
export function textBytes(text: string): Uint8Array {
  const b = new Uint8Array(utf8Length(text, true));
  writeUtf8(text, b, 0);
  return b;
}

/** A message whose body is `text` as UTF-8 (any string: U+0000 included). */
export function withText(op: number, id: number, text: string): Uint8Array {
  const b = frame(op, id, utf8Length(text, true));
  writeUtf8(text, b, HEADER);
  return b;
}

/** Writes `n` as a big-endian u32 at `at`. */
export function put32(b: Uint8Array, at: number, n: number): void {
  b[at] = n >>> 24;
  b[at + 1] = (n >>> 16) & 0xff;
  b[at + 2] = (n >>> 8) & 0xff;
  b[at + 3] = n & 0xff;
}

/** A message whose body is one u32. */
export function withU32(op: number, id: number, n: number): Uint8Array {
  const b = frame(op, id, 4);
  put32(b, HEADER, n);
  return b;
}

export function opOf(b: Uint8Array): number {
  return b[0];
}

export function idOf(b: Uint8Array): number {
  return u32(b, 1);
}

/** A u32 at `at` (big-endian). */
export function u32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) >>> 0) + (b[at + 1] << 16) + (b[at + 2] << 8) + b[at + 3];
}

/** An answer: a status byte and a body. */
export function answer(status: number, body?: Uint8Array): Uint8Array {
  const b = new Uint8Array(1 + (body ? body.length : 0));
  b[0] = status;
  if (body) b.set(body, 1);
  return b;
}

/** An answer holding one float64 (NOW, RANDOM). */
export function answerNumber(n: number): Uint8Array {
  const b = new Uint8Array(9);
  new DataView(b.buffer).setFloat64(1, n);
  return b;
}

export function numberOf(a: Uint8Array): number {
  return new DataView(a.buffer, a.byteOffset, a.byteLength).getFloat64(1);
}

/** The outbox entries as one body: [u32 key][u32 length][packet] each. */
export function packEntries(entries: { key: number; packet: Uint8Array }[]): Uint8Array {
  let n = 0;
  for (let i = 0; i < entries.length; i++) n += 8 + entries[i].packet.length;
  const b = new Uint8Array(n);
  let at = 0;
  for (let i = 0; i < entries.length; i++) {
    const { key, packet } = entries[i];
    put32(b, at, key);
    put32(b, at + 4, packet.length);
    b.set(packet, at + 8);
    at += 8 + packet.length;
  }
  return b;
}

/** The entries of a packEntries body (`at` where it starts); packets are views into `b`, not copies. */
export function unpackEntries(b: Uint8Array, at = 0): { key: number; packet: Uint8Array }[] {
  const out: { key: number; packet: Uint8Array }[] = [];
  while (at + 8 <= b.length) {
    const key = u32(b, at),
      n = u32(b, at + 4);
    out.push({ key, packet: b.subarray(at + 8, at + 8 + n) });
    at += 8 + n;
  }
  return out;
}
