// A Host for the firmware running inside Moddable's XS engine as a desktop process (xsnap-worker), with everything
// that touches the world served by the Node process that started it (tools/simulator/xs-device.ts): sockets (the Node
// host's connectors: TCP, TLS, WebSocket), timers, the clock, randomness, the config store, the outbox store and
// the log. Calls out are xsnap's synchronous issueCommand(), so a write() can answer true or false honestly;
// what happens on the Node side (bytes arrived, a socket closed, a timer fired, the link went down) comes in as
// events, one at a time, through deliver(). The message format is hosts/xsnap/wire.ts.
// When the Node host has a firmware slot, so does this host: the running version comes with START, the image the
// OTA agent downloads and checks here goes to the Node host's image writer a chunk at a time, and restart() asks the
// Node side to stop this device and start it again (hosts/node/firmware.ts).
//
// Runs inside XS only: no Node APIs, no TextEncoder/TextDecoder, no timer globals (checked by tsconfig.device.json).
import type {
  Clock,
  Connector,
  Endpoint,
  Firmware,
  Host,
  ImageWriter,
  KeyValueStore,
  LogLevel,
  NetworkLink,
  OutboxStore,
  TlsOptions,
  Transport,
  TransportHandlers,
} from "../../src/host";
import { decodeUtf8, utf8Length, writeUtf8 } from "../../src/mqtt/utf8";
import { NetError, type NetErrorCode } from "../../src/net/errors";
import { derToPem } from "../../src/net/pem";
import {
  E,
  ERROR,
  frame,
  HEADER,
  idOf,
  LEVELS,
  NONE,
  numberOf,
  opOf,
  Q,
  u32,
  unpackEntries,
  withBytes,
  withText,
  withU32,
  type StartOptions,
} from "./wire";

/** xsnap-worker's: sends a message to the parent process and returns its answer (XS waits for it). */
declare function issueCommand(message: ArrayBuffer): ArrayBuffer;

/** Sends a query (a buffer made by wire.ts's frame(): it spans its whole ArrayBuffer) and returns the answer. */
function ask(message: Uint8Array): Uint8Array {
  const a = new Uint8Array(issueCommand(message.buffer as ArrayBuffer));
  if (a[0] === ERROR) throw thrown(a, 1);
  return a;
}

export function text(b: Uint8Array, at: number): string {
  return decodeUtf8(b, at, b.length);
}

/** The error an ERROR answer or event carries: a NetError as the Node host made it, or an Error with its code. */
function thrown(b: Uint8Array, at: number): Error {
  let o: { name?: string; code?: string; message?: string };
  try {
    o = JSON.parse(decodeUtf8(b, at, b.length)) as typeof o;
  } catch {
    o = { message: "the Node host reported an error that could not be read" };
  }
  const message = o.message ?? "unknown error";
  if (o.name === "NetError" && o.code) return new NetError(o.code as NetErrorCode, message);
  const e = new Error(message) as Error & { code?: string };
  if (o.code) e.code = o.code;
  return e;
}

// Queries without a body, made once.
const NOW = frame(Q.NOW, 0, 0);
const RANDOM = frame(Q.RANDOM, 0, 0);

class BridgeTransport implements Transport {
  dead = false;
  private readonly chunks: Uint8Array[] = [];
  constructor(
    readonly id: number,
    readonly h: TransportHandlers,
    private readonly owner: XsHost,
  ) {}

  read(): Uint8Array | undefined {
    return this.chunks.shift();
  }

  write(data: Uint8Array): boolean {
    if (this.dead) return false;
    return ask(withBytes(Q.WRITE, this.id, data))[1] === 1;
  }

  close(): void {
    if (this.dead) return;
    this.dead = true;
    this.owner.transports.delete(this.id);
    ask(frame(Q.CLOSE, this.id, 0));
  }

  /** Bytes from the socket: a view into the event's own buffer (kept, not copied). */
  data(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.h.onReadable(bytes.length);
  }
}

/** An image written by the Node host's writer: each call one query, each chunk sent as the download hands it over. */
class BridgeWriter implements ImageWriter {
  constructor(
    private readonly id: number,
    private readonly version: string,
  ) {}

  begin(size: number): void {
    ask(withText(Q.FW_BEGIN, this.id, JSON.stringify({ version: this.version, size })));
  }

  write(chunk: Uint8Array): void {
    ask(withBytes(Q.FW_WRITE, this.id, chunk));
  }

  complete(): void {
    ask(frame(Q.FW_COMPLETE, this.id, 0));
  }

  cancel(): void {
    try {
      ask(frame(Q.FW_CANCEL, this.id, 0));
    } catch {
      // cancel never throws: the image is abandoned either way
    }
  }
}

/** The host's firmware slot, served by the Node host's (the version and the slot's size as START gave them). */
function bridgeFirmware(f: NonNullable<StartOptions["firmware"]>): Firmware {
  let lastWriter = 0;
  return {
    version: f.version,
    capacity: f.capacity,
    unsupported: f.unsupported,
    writer: (version: string): ImageWriter => new BridgeWriter(++lastWriter, version),
    restart: () => void ask(frame(Q.FW_RESTART, 0, 0)),
  };
}

/** TLS options as JSON can carry them: DER bytes as PEM text (what the Node host takes anyway). */
function tlsJson(tls: TlsOptions | undefined): TlsOptions | undefined {
  if (!tls) return undefined;
  const o: TlsOptions = {};
  if (tls.ca) o.ca = tls.ca.map((c) => (typeof c === "string" ? c : derToPem(c, "CERTIFICATE")));
  if (tls.cert !== undefined) o.cert = typeof tls.cert === "string" ? tls.cert : derToPem(tls.cert, "CERTIFICATE");
  if (tls.key !== undefined) o.key = typeof tls.key === "string" ? tls.key : derToPem(tls.key, "PRIVATE KEY");
  if (tls.serverName !== undefined) o.serverName = tls.serverName;
  if (tls.alpn) o.alpn = tls.alpn;
  if (tls.insecure !== undefined) o.insecure = tls.insecure;
  return o;
}

export class XsHost {
  readonly transports = new Map<number, BridgeTransport>();
  private readonly timers = new Map<number, () => void>();
  private lastTransport = 0;
  private lastTimer = 0;
  private lastConnector = 0;
  private readonly link: { up: boolean; onChange: ((up: boolean) => void) | undefined };
  readonly host: Host;

  constructor(options: { up: boolean; outbox: boolean; firmware?: StartOptions["firmware"] }) {
    this.link = { up: options.up, onChange: undefined };
    const clock: Clock = {
      now: () => numberOf(ask(NOW)),
      setTimer: (callback, ms) => {
        const id = ++this.lastTimer;
        this.timers.set(id, callback);
        ask(withU32(Q.TIMER_SET, id, ms > 0 ? Math.min(0xffffffff, Math.ceil(ms)) : 0));
        return id;
      },
      clearTimer: (timer) => {
        if (this.timers.delete(timer as number)) ask(frame(Q.TIMER_CLEAR, timer as number, 0));
      },
    };
    const config: KeyValueStore = {
      get: (key) => {
        const a = ask(withText(Q.CONFIG_GET, 0, key));
        return a[0] === NONE ? undefined : text(a, 1);
      },
      set: (key, value) => void ask(withText(Q.CONFIG_SET, 0, JSON.stringify([key, value]))),
      delete: (key) => void ask(withText(Q.CONFIG_DELETE, 0, key)),
    };
    const outbox: OutboxStore | undefined = options.outbox
      ? {
          load: () => unpackEntries(ask(frame(Q.OUTBOX_LOAD, 0, 0)), 1),
          save: (key, packet) => void ask(withBytes(Q.OUTBOX_SAVE, key, packet)),
          remove: (key) => void ask(frame(Q.OUTBOX_REMOVE, key, 0)),
        }
      : undefined;
    this.host = {
      name: "xs",
      clock,
      // Not Math.random: xsnap's (like Moddable's desktop builds') is C rand() never seeded, the same numbers in
      // every run (a board's is the hardware generator). Backoff jitter and registration nonces need real ones.
      random: () => numberOf(ask(RANDOM)),
      connector: (endpoint: Endpoint, tls?: TlsOptions): Connector => this.connector(endpoint, tls),
      config,
      outbox,
      network: this.link as NetworkLink,
      log: (level: LogLevel, message: string) => void ask(withText(Q.LOG, LEVELS.indexOf(level), message)),
      firmware: options.firmware ? bridgeFirmware(options.firmware) : undefined,
    };
  }

  private connector(endpoint: Endpoint, tls: TlsOptions | undefined): Connector {
    const cid = ++this.lastConnector;
    // Throws what the Node host's connector throws for a bad endpoint or bad TLS options (a NetError).
    ask(withText(Q.CONNECTOR, cid, JSON.stringify({ endpoint, tls: tlsJson(tls) })));
    return (h) => {
      const t = new BridgeTransport(++this.lastTransport, h, this);
      this.transports.set(t.id, t);
      ask(withU32(Q.OPEN, t.id, cid));
      return t;
    };
  }

  /** Handles one event from the Node side; false if it is not one of the host's. */
  deliver(m: Uint8Array): boolean {
    const op = opOf(m),
      id = idOf(m);
    switch (op) {
      case E.TIMER: {
        const f = this.timers.get(id);
        if (!f) return true; // cleared after it fired on the Node side
        this.timers.delete(id);
        f();
        return true;
      }
      case E.LINK: {
        const up = id === 1;
        if (this.link.up === up) return true;
        this.link.up = up;
        if (this.link.onChange) this.link.onChange(up);
        return true;
      }
      case E.CONNECTED:
      case E.DATA:
      case E.WRITABLE:
      case E.ERROR: {
        const t = this.transports.get(id);
        if (!t) return true; // closed here while the event was on its way
        if (op === E.CONNECTED) t.h.onConnect();
        else if (op === E.DATA) t.data(m.subarray(HEADER));
        else if (op === E.WRITABLE) t.h.onWritable(u32(m, HEADER));
        else {
          t.dead = true;
          this.transports.delete(id);
          t.h.onError(thrown(m, HEADER));
        }
        return true;
      }
    }
    return false;
  }
}

/** A trace message: [u16 topic length][topic][payload]. */
export function traceMessage(direction: 0 | 1, topic: string, payload: Uint8Array | string): Uint8Array {
  const tl = utf8Length(topic, true);
  const pl = typeof payload === "string" ? utf8Length(payload, true) : payload.length;
  const b = frame(Q.TRACE, direction, 2 + tl + pl);
  b[HEADER] = tl >> 8;
  b[HEADER + 1] = tl & 0xff;
  writeUtf8(topic, b, HEADER + 2);
  if (typeof payload === "string") writeUtf8(payload, b, HEADER + 2 + tl);
  else b.set(payload, HEADER + 2 + tl);
  return b;
}

export { ask };
