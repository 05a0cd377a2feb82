/**
 * MQTT over WebSocket (RFC 6455, MQTT 3.1.1 section 6) as portable framing over any byte Transport: TCP or TLS on
 * any host. `webSocketConnector(inner, endpoint, options)` returns a Connector that dials `inner`, upgrades with
 * `Sec-WebSocket-Protocol: mqtt`, verifies the answer, then carries MQTT bytes in masked binary frames. Upward it is
 * the same Transport contract: read() gives the unwrapped MQTT bytes, write() frames them, false means would block.
 *
 * Memory: the payload of each data frame is handed up as views of the chunks the inner transport gave (no copy);
 * a WebSocket message is an MQTT byte stream, so fragments are "reassembled" simply by passing them on in order.
 * Frames and messages over `maxFrameSize` are refused from their header, before any payload is kept. The only
 * buffers held are a 14-byte header, a 125-byte control payload and, during the upgrade, the HTTP response head
 * (at most 4 KB). Each write makes one masked copy of the data, which the contract requires anyway.
 */
import { base64Encode } from "./base64";
import type { Connector, Endpoint, Transport, TransportHandlers } from "../host";
import { hostPort, isSecure } from "./endpoint";
import { NetError, describeBytes, netError } from "./errors";
import { sha1 } from "./sha1";

export interface WebSocketOptions {
  /** Uniform in [0, 1): the Sec-WebSocket-Key and every frame's masking key come from here. */
  random: () => number;
  /** Largest frame, and largest fragmented message, accepted from the server, in bytes. Default 256 KB (the codec's maximum packet). */
  maxFrameSize?: number;
  /** The subprotocol asked for and required in the answer. Default "mqtt". */
  protocol?: string;
}

/** Default maximum frame and message size: the MQTT codec's default maximum packet size. */
const DEFAULT_MAX_FRAME_SIZE = 256 * 1024;

/** Largest HTTP response head (status line and headers) accepted during the upgrade. */
const MAX_HEAD = 4096;
/** Unwrapped bytes held for an owner that is not reading before the inner transport is left unread. */
const OUT_HIGH = 16 * 1024;

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Opcodes
const CONTINUATION = 0x0;
const TEXT = 0x1;
const BINARY = 0x2;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;

// Phases
const DIALING = 0;
const UPGRADING = 1;
const OPEN = 2;
const DEAD = 3;

/** Stands in until the inner connector has returned (it may call back before). */
const NO_TRANSPORT: Transport = Object.freeze({ read: () => undefined, write: () => false, close: () => {} });

/** Wraps a byte-stream Connector (TCP or TLS to the endpoint's host and port) into an MQTT-over-WebSocket one. */
export function webSocketConnector(inner: Connector, endpoint: Endpoint, options: WebSocketOptions): Connector {
  // The Host header names the port unless it is the scheme's default (80 for ws, 443 for wss).
  const defaultPort = endpoint.port === (isSecure(endpoint.scheme) ? 443 : 80);
  const name = endpoint.host.indexOf(":") >= 0 ? `[${endpoint.host}]` : endpoint.host;
  const hostHeader = defaultPort ? name : hostPort(endpoint.host, endpoint.port);
  const max = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  if (!(max >= 1 && max <= 0x7fffffff && (max | 0) === max))
    throw new NetError(
      "INVALID_URL",
      `maxFrameSize must be an integer from 1 to ${0x7fffffff}, not ${String(options.maxFrameSize)}`,
    );
  const config: Config = {
    path: endpoint.path || "/",
    host: hostHeader,
    protocol: options.protocol ?? "mqtt",
    random: options.random,
    max,
  };
  return (handlers) => new WebSocketTransport(inner, config, handlers);
}

interface Config {
  path: string;
  host: string;
  protocol: string;
  random: () => number;
  max: number;
}

function ascii(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

/** Printable ASCII as it is, CR and LF too when `lines`, anything else as "?". */
function latin1(bytes: Uint8Array, from: number, to: number, lines = false): string {
  let s = "";
  for (let i = from; i < to; i++) {
    const b = bytes[i];
    s += (b >= 32 && b < 127) || (lines && (b === 13 || b === 10)) ? String.fromCharCode(b) : "?";
  }
  return s;
}

/** One WebSocket connection: a Transport upward, the handlers of the inner transport downward. */
class WebSocketTransport implements Transport, TransportHandlers {
  private t: Transport = NO_TRANSPORT;
  private phase = DIALING;
  private userClosed = false;
  private failure: Error | null = null;
  private reported = false;
  private key = "";
  private request: Uint8Array | null = null;
  private head: Uint8Array | null = null;
  private headLen = 0;
  /** A pong or close frame that the inner transport would not take yet. */
  private pending: Uint8Array | null = null;
  // Frame parser
  private readonly hdr = new Uint8Array(14);
  private hdrLen = 0;
  private hdrNeed = 2;
  private inPayload = false;
  private opcode = 0;
  private remaining = 0;
  private inMessage = false;
  private messageBytes = 0;
  private ctl: Uint8Array | null = null;
  private ctlLen = 0;
  // Unwrapped MQTT bytes for read(); past OUT_HIGH of them the inner transport is left unread (held) until the
  // owner reads, so an owner that stops reading holds the server back through TCP, not through our memory.
  private readonly out: Uint8Array[] = [];
  private outBytes = 0;
  private held = false;

  constructor(
    inner: Connector,
    private readonly c: Config,
    private readonly h: TransportHandlers,
  ) {
    try {
      this.t = inner(this);
    } catch (e) {
      // A connector must not throw; if one does, this is a failed dial like any other.
      this.onError(e instanceof Error ? e : new Error(String(e)));
    }
  }

  // ---- Transport (upward) ----

  read(): Uint8Array | undefined {
    if (this.held && !this.out.length && this.phase === OPEN) this.pull();
    const v = this.out.shift();
    if (v) this.outBytes -= v.length;
    else if (this.failure && !this.reported && !this.userClosed) {
      // a frame error found while pulling for this read: reported once what came before it was read
      this.reported = true;
      this.h.onError(this.failure);
    }
    return v;
  }

  write(data: Uint8Array): boolean {
    if (this.phase !== OPEN) return false;
    if (this.pending && !this.flushPending()) return false;
    return this.t.write(this.frame(BINARY, data, 0, data.length));
  }

  close(): void {
    if (this.userClosed) return;
    this.userClosed = true;
    if (this.phase === OPEN) this.sendControl(this.closeFrame(1000)); // best effort: the inner close flushes it
    this.phase = DEAD;
    this.out.length = 0;
    this.outBytes = 0;
    this.t.close();
  }

  // ---- TransportHandlers (from the inner transport) ----

  onConnect(): void {
    if (this.phase !== DIALING) return;
    this.phase = UPGRADING;
    const r = this.c.random;
    const k = new Uint8Array(16);
    for (let i = 0; i < 16; i += 4) {
      const v = (r() * 0x100000000) >>> 0;
      k[i] = v >>> 24;
      k[i + 1] = (v >>> 16) & 0xff;
      k[i + 2] = (v >>> 8) & 0xff;
      k[i + 3] = v & 0xff;
    }
    this.key = base64Encode(k);
    const req = ascii(
      `GET ${this.c.path} HTTP/1.1\r\nHost: ${this.c.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${this.c.protocol}\r\n\r\n`,
    );
    if (!this.t.write(req)) this.request = req;
  }

  onReadable(): void {
    if (this.phase === DEAD) return;
    this.pull();
    this.deliver();
  }

  onWritable(count: number): void {
    if (this.phase === DEAD) return;
    if (this.request) {
      if (!this.t.write(this.request)) return;
      this.request = null;
      return;
    }
    if (this.pending && !this.flushPending()) return;
    if (this.phase === OPEN) this.h.onWritable(count);
  }

  onError(error: Error): void {
    if (this.phase === DEAD) return;
    let e = error;
    if (this.phase === UPGRADING && error instanceof NetError && error.code === "CLOSED")
      e = netError(
        "WS_HANDSHAKE_FAILED",
        "the server closed the connection in the middle of the WebSocket upgrade",
        error,
      );
    this.phase = DEAD;
    this.failure = e;
    this.deliver();
  }

  // ---- internals ----

  /** Reads the inner transport until it has nothing more or OUT_HIGH unwrapped bytes wait for the owner. */
  private pull(): void {
    while (this.phase !== DEAD && this.outBytes < OUT_HIGH) {
      const chunk = this.t.read();
      if (!chunk) break;
      let rest: Uint8Array | undefined = chunk;
      if (this.phase === UPGRADING) rest = this.upgrade(chunk);
      if (rest?.length && this.phase === OPEN) this.frames(rest);
    }
    this.held = this.outBytes >= OUT_HIGH;
  }

  /** Hands up what was unwrapped, then reports a failure, unless the owner closed us meanwhile. */
  private deliver(): void {
    if (this.outBytes > 0 && !this.userClosed) this.h.onReadable(this.outBytes);
    if (this.failure && !this.reported && !this.userClosed) {
      this.reported = true;
      this.out.length = 0;
      this.outBytes = 0;
      this.h.onError(this.failure);
    }
  }

  /** Ends the connection with `error`: a close frame with `code` when open (best effort), then the inner close. */
  private fail(error: NetError, code = 1002): void {
    if (this.phase === DEAD) return;
    if (this.phase === OPEN && code) this.sendControl(this.closeFrame(code));
    this.phase = DEAD;
    this.failure = error;
    this.t.close();
  }

  /** Collects the HTTP response head; returns the bytes after it (frames) once the upgrade is verified. */
  private upgrade(chunk: Uint8Array): Uint8Array | undefined {
    if (!this.head) {
      this.head = new Uint8Array(MAX_HEAD);
      const b = chunk[0];
      // Not HTTP at all: say what it looks like.
      if (b !== 0x48) {
        // 'H'
        if ((b === 0x15 || b === 0x16) && chunk[1] === 0x03)
          this.fail(netError("TLS_REQUIRED", "the server answered the WebSocket upgrade with a TLS record"), 0);
        else if (b === 0x20)
          this.fail(
            netError(
              "WS_HANDSHAKE_FAILED",
              "the server answered the WebSocket upgrade with an MQTT packet: this is a plain MQTT port, use mqtt:// (or mqtts://)",
            ),
            0,
          );
        else
          this.fail(
            netError(
              "WS_HANDSHAKE_FAILED",
              `the server answered the WebSocket upgrade with ${describeBytes(chunk)}, not HTTP`,
            ),
            0,
          );
        return undefined;
      }
    }
    const head = this.head;
    let len = this.headLen;
    for (let i = 0; i < chunk.length; i++) {
      if (len === MAX_HEAD) {
        this.fail(
          netError(
            "WS_HANDSHAKE_FAILED",
            `the server's answer to the WebSocket upgrade has no end of headers within ${MAX_HEAD} bytes`,
          ),
          0,
        );
        return undefined;
      }
      const b = chunk[i];
      head[len++] = b;
      if (b === 10 && len >= 4 && head[len - 2] === 13 && head[len - 3] === 10 && head[len - 4] === 13) {
        this.headLen = len;
        const error = this.verify(latin1(head, 0, len - 4, true));
        this.head = null;
        if (error) {
          this.fail(error, 0);
          return undefined;
        }
        this.phase = OPEN;
        this.h.onConnect();
        return i + 1 < chunk.length ? chunk.subarray(i + 1) : undefined;
      }
    }
    this.headLen = len;
    return undefined;
  }

  /** Checks the HTTP answer to the upgrade; returns what is wrong, or null. */
  private verify(text: string): NetError | null {
    const lines = text.split("\r\n");
    const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!status)
      return netError(
        "WS_HANDSHAKE_FAILED",
        `the server's answer to the WebSocket upgrade is not an HTTP status line (${JSON.stringify(lines[0].slice(0, 60))})`,
      );
    const code = Number(status[1]);
    if (code !== 101) {
      const why =
        code === 404
          ? "; the path is wrong (EMQX and Mosquitto serve /mqtt)"
          : code === 401 || code === 403
            ? "; the server wants authentication or refuses this client"
            : code === 200
              ? "; that is a web page, not a WebSocket endpoint"
              : code === 400 || code === 426
                ? "; the server does not take this WebSocket upgrade"
                : "";
      return netError(
        "WS_HANDSHAKE_FAILED",
        `the server refused the WebSocket upgrade with HTTP ${code}${status[2] ? ` ${status[2].slice(0, 60)}` : ""}${why}`,
      );
    }
    let upgrade = "",
      connection = "",
      accept = "",
      protocol: string | undefined,
      extensions: string | undefined;
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":");
      if (colon <= 0) continue;
      const name = lines[i].slice(0, colon).trim().toLowerCase();
      const value = lines[i].slice(colon + 1).trim();
      if (name === "upgrade") upgrade = value;
      else if (name === "connection") connection = value;
      else if (name === "sec-websocket-accept") accept = value;
      else if (name === "sec-websocket-protocol") protocol = protocol === undefined ? value : `${protocol}, ${value}`;
      else if (name === "sec-websocket-extensions") extensions = value;
    }
    if (upgrade.toLowerCase() !== "websocket")
      return netError("WS_HANDSHAKE_FAILED", 'the server\'s 101 answer lacks "Upgrade: websocket"');
    if (!/(^|[\s,])upgrade($|[\s,])/i.test(connection))
      return netError("WS_HANDSHAKE_FAILED", 'the server\'s 101 answer lacks "Connection: Upgrade"');
    const expected = base64Encode(sha1(ascii(this.key + GUID)));
    if (accept !== expected)
      return netError(
        "WS_HANDSHAKE_FAILED",
        `the server's Sec-WebSocket-Accept ${accept ? "does not match our key" : "is missing"} (a proxy in the way, or not an RFC 6455 server)`,
      );
    if (protocol === undefined)
      return netError(
        "WS_HANDSHAKE_FAILED",
        `the server did not agree to the "${this.c.protocol}" subprotocol (no Sec-WebSocket-Protocol in its answer), so it may not speak MQTT over WebSocket`,
      );
    if (protocol !== this.c.protocol)
      return netError(
        "WS_HANDSHAKE_FAILED",
        `the server chose the subprotocol "${protocol.slice(0, 40)}", not "${this.c.protocol}"`,
      );
    if (extensions !== undefined && extensions !== "")
      return netError(
        "WS_HANDSHAKE_FAILED",
        `the server turned on the WebSocket extension "${extensions.slice(0, 40)}", which this client did not ask for`,
      );
    return null;
  }

  /** Parses frames in `c`; payloads of data frames go to `out` as views of `c`. */
  private frames(c: Uint8Array): void {
    const n = c.length;
    let i = 0;
    while (i < n && this.phase === OPEN) {
      if (!this.inPayload) {
        const hdr = this.hdr;
        while (i < n && this.hdrLen < this.hdrNeed) {
          hdr[this.hdrLen++] = c[i++];
          if (this.hdrLen === 2) {
            const len7 = hdr[1] & 0x7f;
            this.hdrNeed = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (hdr[1] & 0x80 ? 4 : 0);
          }
        }
        if (this.hdrLen < this.hdrNeed) return;
        this.startFrame();
        continue;
      }
      const left = n - i;
      const take = this.remaining < left ? this.remaining : left;
      if (this.opcode >= CLOSE) {
        this.ctl!.set(c.subarray(i, i + take), this.ctlLen);
        this.ctlLen += take;
      } else if (take > 0) {
        this.out.push(take === n ? c : c.subarray(i, i + take));
        this.outBytes += take;
      }
      i += take;
      this.remaining -= take;
      if (this.remaining === 0) this.endFrame();
    }
  }

  private startFrame(): void {
    const hdr = this.hdr;
    const fin = (hdr[0] & 0x80) !== 0;
    const op = hdr[0] & 0x0f;
    this.hdrLen = 0;
    this.hdrNeed = 2;
    if (hdr[0] & 0x70)
      return this.fail(
        netError("WS_PROTOCOL_ERROR", "the server set reserved bits in a frame header without a negotiated extension"),
      );
    if (hdr[1] & 0x80)
      return this.fail(
        netError("WS_PROTOCOL_ERROR", "the server masked a frame, which servers must not do (RFC 6455 5.1)"),
      );
    const len7 = hdr[1] & 0x7f;
    let len = len7;
    if (len7 === 126) len = (hdr[2] << 8) | hdr[3];
    else if (len7 === 127) {
      const high = ((hdr[2] << 24) | (hdr[3] << 16) | (hdr[4] << 8) | hdr[5]) >>> 0;
      if (high & 0x80000000)
        return this.fail(netError("WS_PROTOCOL_ERROR", "the server sent a 64-bit frame length with its top bit set"));
      const low = ((hdr[6] << 24) | (hdr[7] << 16) | (hdr[8] << 8) | hdr[9]) >>> 0;
      len = high * 0x100000000 + low;
    }
    if (op === TEXT)
      return this.fail(
        netError(
          "WS_PROTOCOL_ERROR",
          "the server sent a text frame; MQTT over WebSocket uses binary frames only (MQTT 3.1.1 section 6)",
        ),
        1003,
      );
    if (op === BINARY || op === CONTINUATION) {
      if (op === CONTINUATION && !this.inMessage)
        return this.fail(
          netError("WS_PROTOCOL_ERROR", "the server sent a continuation frame with no fragmented message to continue"),
        );
      if (op === BINARY && this.inMessage)
        return this.fail(
          netError("WS_PROTOCOL_ERROR", "the server began a new message before finishing its fragmented one"),
        );
      if (op === BINARY) this.messageBytes = 0;
      if (len > this.c.max)
        return this.fail(
          netError(
            "FRAME_TOO_LARGE",
            `the server sent a WebSocket frame of ${len} bytes, over the limit of ${this.c.max}`,
          ),
          1009,
        );
      this.messageBytes += len;
      if (this.messageBytes > this.c.max)
        return this.fail(
          netError(
            "FRAME_TOO_LARGE",
            `the server sent a fragmented WebSocket message of more than ${this.c.max} bytes, over the limit`,
          ),
          1009,
        );
      this.inMessage = !fin;
    } else if (op === CLOSE || op === PING || op === PONG) {
      if (!fin) return this.fail(netError("WS_PROTOCOL_ERROR", "the server fragmented a control frame"));
      if (len > 125)
        return this.fail(
          netError("WS_PROTOCOL_ERROR", `the server sent a control frame of ${len} bytes (at most 125 allowed)`),
        );
      this.ctl ??= new Uint8Array(125);
      this.ctlLen = 0;
    } else {
      return this.fail(
        netError("WS_PROTOCOL_ERROR", `the server sent a frame with the unknown opcode 0x${op.toString(16)}`),
      );
    }
    this.opcode = op;
    this.remaining = len;
    this.inPayload = true;
    if (len === 0) this.endFrame();
  }

  private endFrame(): void {
    this.inPayload = false;
    const op = this.opcode;
    if (op === PING) this.sendControl(this.frame(PONG, this.ctl!, 0, this.ctlLen));
    else if (op === CLOSE) this.closed();
  }

  /** The server's close frame: answer it, then report the connection closed. */
  private closed(): void {
    const ctl = this.ctl!;
    const n = this.ctlLen;
    if (n === 1) return this.fail(netError("WS_PROTOCOL_ERROR", "the server sent a close frame with a 1-byte body"));
    const code = n >= 2 ? (ctl[0] << 8) | ctl[1] : 0;
    const reason = n > 2 ? latin1(ctl, 2, n) : "";
    this.sendControl(code ? this.frame(CLOSE, ctl, 0, 2) : this.frame(CLOSE, ctl, 0, 0));
    this.phase = DEAD;
    this.failure = netError(
      "CLOSED",
      `the server closed the WebSocket${code ? ` (code ${code}${reason ? `: ${reason}` : ""})` : ""}`,
    );
    this.t.close();
  }

  private closeFrame(code: number): Uint8Array {
    const body = new Uint8Array(2);
    body[0] = code >> 8;
    body[1] = code & 0xff;
    return this.frame(CLOSE, body, 0, 2);
  }

  /** Sends a control frame now, or keeps it (only the latest) until the inner transport is writable. */
  private sendControl(frame: Uint8Array): void {
    if (this.pending === null && this.t.write(frame)) return;
    if (this.pending === null || (frame[0] & 0x0f) === CLOSE || (this.pending[0] & 0x0f) !== CLOSE)
      this.pending = frame;
  }

  private flushPending(): boolean {
    if (!this.pending) return true;
    if (!this.t.write(this.pending)) return false;
    this.pending = null;
    return true;
  }

  /** One masked frame with FIN set, holding payload[from, to). */
  private frame(op: number, payload: Uint8Array, from: number, to: number): Uint8Array {
    const n = to - from;
    const ext = n < 126 ? 0 : n < 0x10000 ? 2 : 8;
    const start = 2 + ext + 4;
    const f = new Uint8Array(start + n);
    f[0] = 0x80 | op;
    if (ext === 0) f[1] = 0x80 | n;
    else if (ext === 2) {
      f[1] = 0x80 | 126;
      f[2] = n >> 8;
      f[3] = n & 0xff;
    } else {
      f[1] = 0x80 | 127; // bytes 2..5, the high half, stay zero: a Uint8Array is far below 2^32 bytes
      f[6] = (n >>> 24) & 0xff;
      f[7] = (n >>> 16) & 0xff;
      f[8] = (n >>> 8) & 0xff;
      f[9] = n & 0xff;
    }
    const m = (this.c.random() * 0x100000000) >>> 0;
    const m0 = m >>> 24,
      m1 = (m >>> 16) & 0xff,
      m2 = (m >>> 8) & 0xff,
      m3 = m & 0xff;
    const k = 2 + ext;
    f[k] = m0;
    f[k + 1] = m1;
    f[k + 2] = m2;
    f[k + 3] = m3;
    let i = 0;
    for (; i + 3 < n; i += 4) {
      const p = from + i,
        o = start + i;
      f[o] = payload[p] ^ m0;
      f[o + 1] = payload[p + 1] ^ m1;
      f[o + 2] = payload[p + 2] ^ m2;
      f[o + 3] = payload[p + 3] ^ m3;
    }
    // At most three bytes are left, at mask offsets 0, 1 and 2.
    if (i < n) f[start + i] = payload[from + i] ^ m0;
    if (i + 1 < n) f[start + i + 1] = payload[from + i + 1] ^ m1;
    if (i + 2 < n) f[start + i + 2] = payload[from + i + 2] ^ m2;
    return f;
  }
}
