/**
 * One connection on a Moddable ECMA-419 socket (embedded:io/socket/tcp, or the SDK's TLSSocket over it), as the
 * portable Transport (src/host.ts). In order: the network link must be up; for a TLS connection that
 * verifies certificates the clock must be set (SNTP, see time-sync.ts); the host name is resolved (the ECMA-419
 * TCP socket takes an IPv4 `address`, never a name); then the socket opens.
 *
 * What the SDK's sockets do, and what this class does about it (modules/io/socket/lwip/tcp.c,
 * examples/io/tcp/tlssocket/tlssocket.js):
 * - TCP calls onWritable once connected (that is the "connected" event) and then whenever lwIP frees send buffer;
 *   `write` throws "would block" when the bytes do not fit the send buffer and returns the room left. So writes
 *   are queued whole here and fed to the socket in pieces that fit.
 * - TLSSocket packetizes and encrypts each write as one record before the TCP write: a record that then does not
 *   fit would be lost with its sequence number, breaking the stream. So under TLS a piece is never larger than the
 *   room the socket reported less a margin for the record's overhead (`ByteSocket.write` reports room that way).
 * - onError carries no reason (lwIP does not say refused from unreachable) and also fires on a clean remote close;
 *   the reason here comes from how far the connection got.
 * - The TLS engine throws from inside socket callbacks (a failed certificate check, an alert from the broker); an
 *   exception left uncaught there aborts the XS machine, so every callback is guarded and the exception becomes a
 *   NetError. One path stays out of reach: TLSSocket re-reads buffered records from a timer of its own, and an
 *   exception there (a fatal alert in the middle of a session) still aborts (the device reboots).
 */
import { formatEndpoint, hostPort } from "../../src/net/endpoint";
import { NetError, netError } from "../../src/net/errors";
import type { Endpoint, NetworkLink, Transport, TransportHandlers } from "../../src/host";
import type { TimeSync } from "./time-sync";

/** A socket as the transport uses it; host.ts adapts TCP and TLSSocket to this. */
export interface ByteSocket {
  /** All bytes available now (TLS: the next record's data), or undefined. */
  read(): ArrayBuffer | undefined;
  /** Sends the bytes (they fit the room last reported) and returns the room left; throws when they do not fit. */
  write(data: Uint8Array): number;
  close(): void;
}

export interface SocketCallbacks {
  onReadable(count: number): void;
  /** `count`: room for the next write, as ByteSocket.write reports it. */
  onWritable(count: number): void;
  onError(): void;
  /** An exception the socket's own code threw inside a callback (the TLS engine's): the connection is dead. */
  onException(error: unknown): void;
}

/** What happened on the TCP connection underneath (for TLS: below the TLS layer), for the error mapping. */
export interface Probe {
  /** TCP connected. */
  opened: boolean;
  /** At least one byte arrived. */
  received: boolean;
}

/** The connection a socket reports to: its callbacks (guarded there) and the probe the socket's opener sets. */
export type SocketTarget = SocketCallbacks & Probe;

/** Opens a socket to an IPv4 address for `target` (see openers.ts). May throw. */
export type OpenSocket = (address: string, port: number, target: SocketTarget) => ByteSocket;

/** Net.resolve: calls back once with an address, or undefined when the name does not resolve. May throw. */
export type Resolve = (host: string, callback: (address: string | undefined) => void) => void;

export interface DialOptions {
  endpoint: Endpoint;
  /** TLS facts for the error mapping and the record size; undefined for plain TCP. */
  tls?: { verify: boolean; clientCert: boolean; serverName: string; maxRecord: number };
  network: NetworkLink;
  resolve: Resolve;
  open: OpenSocket;
  time: TimeSync;
  /** Runs `f` on a later turn (Timer.set(f, 0)). */
  defer(f: () => void): void;
}

const START = 0;
const CLOCK = 1;
const RESOLVING = 2;
const CONNECTING = 3;
const OPEN = 4;
const DEAD = 5;

/**
 * Four dot-separated groups of 1 to 3 digits: an address the TCP socket takes as it is. A loop, not a RegExp: it runs
 * at every dial, and XS's RegExp exec crashed (SIGSEGV in fx_RegExp_prototype_exec) on a dial from a timer in the
 * desktop build under the ESP8266's small, often collected heaps (the keepalive scenario of test/hosts/moddable).
 */
export function isIPv4(s: string): boolean {
  let groups = 0,
    digits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (++digits > 3) return false;
    } else if (c === 46 && digits > 0 && groups < 3) {
      groups++;
      digits = 0;
    } else return false;
  }
  return groups === 3 && digits > 0;
}

const ALERTS: Readonly<Record<number, string>> = Object.freeze({
  10: "unexpected_message",
  20: "bad_record_mac",
  22: "record_overflow",
  40: "handshake_failure",
  42: "bad_certificate",
  43: "unsupported_certificate",
  44: "certificate_revoked",
  45: "certificate_expired",
  46: "certificate_unknown",
  47: "illegal_parameter",
  48: "unknown_ca",
  49: "access_denied",
  50: "decode_error",
  51: "decrypt_error",
  70: "protocol_version",
  71: "insufficient_security",
  80: "internal_error",
  90: "user_canceled",
  110: "unsupported_extension",
  112: "unrecognized_name",
  116: "certificate_required",
});
const CLIENT_CERT_ALERTS: readonly number[] = Object.freeze([42, 43, 44, 45, 46, 48, 49, 51]);

export interface TlsFailure {
  endpoint: Endpoint;
  serverName: string;
  /** The handshake had finished. */
  open: boolean;
  clientCert: boolean;
  /** Date.now(), to say what the clock read. */
  now: number;
  clockValid: boolean;
}

// No RegExp here: these run on failures, often under memory pressure, and XS's RegExp exec on a preloaded RegExp
// can crash when a collection runs inside it (see isIPv4).

/** The description of "alert: <level>, <description>" (the TLS engine's message for an alert), or -1. */
function alertNumber(m: string): number {
  if (!m.startsWith("alert: ")) return -1;
  const comma = m.indexOf(", ", 7);
  if (comma < 8) return -1;
  let n = 0,
    i = comma + 2;
  const from = i;
  for (; i < m.length && i < from + 3; i++) {
    const c = m.charCodeAt(i);
    if (c < 48 || c > 57) break;
    n = n * 10 + c - 48;
  }
  return i > from ? n : -1;
}

function has(m: string, ...words: string[]): boolean {
  for (let i = 0; i < words.length; i++) if (m.indexOf(words[i]) >= 0) return true;
  return false;
}

function text(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.length > 160 ? m.slice(0, 160) : m;
}

/** Maps an exception of the Moddable TLS engine (modules/crypt/ssl/*.js) to a NetError. */
export function describeTlsException(e: unknown, f: TlsFailure): NetError {
  if (e instanceof NetError) return e;
  const where = hostPort(f.endpoint.host, f.endpoint.port);
  const url = formatEndpoint(f.endpoint);
  const m = text(e);
  const n = alertNumber(m);
  if (n >= 0) {
    const name = `alert ${n}${ALERTS[n] ? ` ${ALERTS[n]}` : ""}`;
    if (f.open) return netError("CLOSED", `${url}: the broker ended the TLS session (${name})`, e);
    if (n === 116) return netError("TLS_CLIENT_CERT_REQUIRED", `${where} requires a client certificate (${name})`, e);
    if (f.clientCert && CLIENT_CERT_ALERTS.indexOf(n) >= 0)
      return netError("TLS_CLIENT_CERT_REJECTED", `${where} refused our client certificate (${name})`, e);
    if (n === 40)
      return netError(
        "TLS_HANDSHAKE_FAILED",
        `${where} ended the TLS handshake (${name}): it shares no cipher suite with this build${f.clientCert ? "" : ", or it requires a client certificate (set tls.cert and tls.key)"}`,
        e,
      );
    if (n === 70 || n === 71)
      return netError(
        "TLS_HANDSHAKE_FAILED",
        `${where} does not accept what this device offers (${name}): TLS 1.2 with AES suites`,
        e,
      );
    if (n === 112)
      return netError(
        "TLS_HANDSHAKE_FAILED",
        `${where} does not serve the name "${f.serverName}" (${name}): set tls.serverName to a name it serves`,
        e,
      );
    return netError("TLS_HANDSHAKE_FAILED", `${where} ended the TLS handshake (${name})`, e);
  }
  if (m.indexOf("certificate: auth err") >= 0) {
    if (!f.clockValid)
      return netError(
        "TLS_EXPIRED",
        `the certificate of ${where} could not be checked: this device's clock is not set`,
        e,
      );
    return netError(
      "TLS_UNKNOWN_CA",
      `the certificate of ${where} did not verify: it is not signed by the CA in tls.ca, is not valid at ${new Date(f.now).toISOString()}, or does not name "${f.serverName}" in its subjectAltName (the device's TLS stack does not say which)`,
      e,
    );
  }
  if (m.indexOf("date validation failed") >= 0)
    return netError(
      "TLS_EXPIRED",
      `a certificate (the CA in tls.ca or one from ${where}) is not valid at ${new Date(f.now).toISOString()}`,
      e,
    );
  if (
    has(
      m,
      "unsupported cipher",
      "unsuported cipher",
      "unsupoorted cipher",
      "unsuppoorted cipher",
      "unsupported compression",
    )
  )
    return netError("TLS_HANDSHAKE_FAILED", `${where} chose a cipher suite this build does not offer (${m})`, e);
  if (has(m, "unsupported algorithm", "unsupported curve", "invalid curve", "unimplemented"))
    return netError("TLS_HANDSHAKE_FAILED", `${where} uses an algorithm the device's TLS stack lacks (${m})`, e);
  if (f.open) return netError("CLOSED", `${url}: the TLS session failed (${m})`, e);
  return netError("TLS_HANDSHAKE_FAILED", `TLS with ${where} failed: ${m}`, e);
}

/**
 * One dial and the connection it makes. It is also the socket's side of the connection: the socket calls its
 * SocketCallbacks methods and sets its Probe fields (one object per connection; nothing is made per event).
 *
 * Every socket callback is guarded: inside it, an exception of this class's own code or of the socket's (the TLS
 * engine throws from inside the calls it makes) becomes this connection's error, and one of the owner's handlers
 * is reported as the owner's bug (CLOSED, "the connection's handler threw"). None reaches the native socket, where
 * it would abort the XS machine.
 */
export class ModdableTransport implements Transport, SocketCallbacks, Probe {
  /** TCP connected (Probe: set by the socket opener; for TLS, about the TCP connection underneath). */
  opened = false;
  /** At least one byte arrived (Probe). */
  received = false;
  private phase = START;
  private readonly d: DialOptions;
  private readonly h: TransportHandlers;
  private socket: ByteSocket | undefined = undefined;
  private cancelClock: (() => void) | undefined = undefined;
  private address = "";
  /** Bytes arrived above TLS. */
  private answered = false;
  private pending: Uint8Array | undefined = undefined;
  private offset = 0;
  private room = 0;
  private blocked = false;
  /** Inside a call from the owner (constructor, read, write): errors are reported on a later turn. */
  private sync = 0;
  /** The owner called close(): no callback follows, not even a deferred one. */
  private closed = false;
  /** Inside a socket callback: under TLS a write is sent on a later turn (see write()). */
  private inside = 0;
  private pumpLater = false;
  /** Largest piece one socket write takes (TLS: one record's data). */
  private readonly limit: number;
  /** What runs a write deferred from inside a socket callback (TLS): made on the first one, kept for the next. */
  private flush: (() => void) | undefined = undefined;

  constructor(d: DialOptions, h: TransportHandlers) {
    this.d = d;
    this.h = h;
    this.limit = d.tls ? d.tls.maxRecord : 0x7fffffff;
    this.sync++;
    try {
      if (!d.network.up)
        this.fail(netError("NETWORK_DOWN", `cannot reach ${formatEndpoint(d.endpoint)}: the network is down`));
      else if (d.tls?.verify && !d.time.valid) {
        this.phase = CLOCK;
        this.cancelClock = d.time.whenValid((error) => {
          this.cancelClock = undefined;
          if (this.phase !== CLOCK) return;
          if (error) this.fail(error);
          else this.lookup();
        });
      } else this.lookup();
    } finally {
      this.sync--;
    }
  }

  /** The socket's bytes as they came (the native read makes a new ArrayBuffer; this adds the view on it). */
  read(): Uint8Array | undefined {
    const socket = this.socket;
    if (this.phase !== OPEN || !socket) return undefined;
    try {
      const b = socket.read();
      return b?.byteLength ? new Uint8Array(b) : undefined;
    } catch (e) {
      this.ownerCrash(e);
      return undefined;
    }
  }

  write(data: Uint8Array): boolean {
    if (this.phase !== OPEN) return false;
    if (this.pending) {
      this.blocked = true;
      return false;
    }
    const n = data.length;
    if (n === 0) return true;
    const socket = this.socket;
    if ((this.inside === 0 || !this.d.tls) && n <= this.room && n <= this.limit && socket) {
      // the common case, in short: the whole write fits the socket now
      let left: number;
      try {
        left = socket.write(data);
      } catch (e) {
        this.pending = data;
        this.offset = 0;
        this.refused(e, true);
        return true;
      }
      this.room = typeof left === "number" && left > 0 ? left : 0;
      return true;
    }
    this.pending = data;
    this.offset = 0;
    if (this.inside > 0 && this.d.tls) {
      // Called from the owner's handler inside a socket callback (a CONNACK arrived, the owner answers at once):
      // under TLS the stack is then the socket's, the TLS engine's, the owner's and the TLS engine's again, which
      // overflows the XS stack (384 slots by default). Sending on the next turn unwinds it first. Plain TCP sends
      // at once (lwIP's write only copies the bytes and calls nothing back), with no timer and no closure for it.
      if (!this.pumpLater) {
        this.pumpLater = true;
        this.d.defer(
          (this.flush ??= () => {
            this.pumpLater = false;
            if (this.phase === OPEN && !this.closed) this.pump(false);
          }),
        );
      }
      return true;
    }
    this.pump(true);
    return true;
  }

  close(): void {
    this.closed = true;
    if (this.phase === DEAD) return;
    this.phase = DEAD;
    this.shut();
  }

  // ---- SocketCallbacks: what the socket calls, each guarded ----
  // (On XS a try block costs compute units: each hot path has one, and what cannot throw stays outside it.)

  onReadable(count: number): void {
    if (this.phase !== OPEN) return;
    this.answered = true;
    this.inside++;
    try {
      this.h.onReadable(count);
    } catch (e) {
      this.threw(e);
    }
    this.inside--;
  }

  onWritable(count: number): void {
    this.inside++;
    try {
      this.writable(count);
    } catch (e) {
      try {
        this.crash(e);
      } finally {
        this.inside--;
      }
      return;
    }
    this.inside--;
  }

  onError(): void {
    this.inside++;
    try {
      this.fail(this.ended());
    } catch (e) {
      this.crash(e);
    } finally {
      this.inside--;
    }
  }

  onException(error: unknown): void {
    this.crash(error);
  }

  private lookup(): void {
    const host = this.d.endpoint.host;
    if (host.indexOf(":") >= 0)
      return this.fail(
        netError(
          "UNREACHABLE",
          `${formatEndpoint(this.d.endpoint)}: this device's TCP socket (embedded:io/socket/tcp) takes IPv4 addresses only`,
        ),
      );
    if (isIPv4(host)) return this.connect(host);
    if (host === "localhost") return this.connect("127.0.0.1"); // Net.resolve does not know it on every platform
    this.phase = RESOLVING;
    try {
      this.d.resolve(host, (address) => {
        if (this.phase !== RESOLVING) return; // closed meanwhile: the lookup cannot be cancelled
        try {
          if (!address) this.fail(netError("DNS_FAILED", `cannot resolve the host name "${host}"`));
          else if (!isIPv4(address))
            this.fail(
              netError(
                "UNREACHABLE",
                `"${host}" resolved to ${address}, not an IPv4 address, which this device's TCP socket needs`,
              ),
            );
          else this.connect(address);
        } catch (e) {
          this.crash(e);
        }
      });
    } catch (e) {
      this.fail(netError("DNS_FAILED", `cannot resolve the host name "${host}" (${text(e)})`, e));
    }
  }

  private connect(address: string): void {
    this.phase = CONNECTING;
    this.address = address;
    try {
      this.socket = this.d.open(address, this.d.endpoint.port, this);
    } catch (e) {
      this.socket = undefined;
      if (this.d.tls) this.crash(e);
      else
        this.fail(
          netError(
            "CLOSED",
            `could not open a TCP socket to ${this.where()} (${text(e)}): the device may have too many open sockets or too little memory`,
            e,
          ),
        );
    }
  }

  private writable(count: number): void {
    if (this.phase === CONNECTING) {
      this.phase = OPEN;
      this.room = count;
      try {
        this.h.onConnect();
      } catch (e) {
        this.threw(e);
      }
      return;
    }
    if (this.phase !== OPEN) return;
    this.room = count;
    if (this.pending) this.pump(false);
    if (!this.pending && this.blocked && this.phase === OPEN) {
      this.blocked = false;
      try {
        this.h.onWritable(this.room);
      } catch (e) {
        this.threw(e);
      }
    }
  }

  /**
   * Feeds the pending write to the socket in pieces that fit; a whole write that fits goes as it is, uncut.
   * `owner`: called from the owner's write(), so a failure is reported on a later turn.
   */
  private pump(owner: boolean): void {
    const socket = this.socket,
      max = this.limit;
    for (let data = this.pending; data && socket && this.phase === OPEN && this.room > 0; data = this.pending) {
      const offset = this.offset;
      let n = data.length - offset;
      if (n > this.room) n = this.room;
      if (n > max) n = max;
      let left: number;
      try {
        left = socket.write(offset === 0 && n === data.length ? data : data.subarray(offset, offset + n));
      } catch (e) {
        return this.refused(e, owner);
      }
      this.room = typeof left === "number" && left > 0 ? left : 0;
      this.offset = offset + n;
      if (this.offset >= data.length) this.pending = undefined;
    }
  }

  /** The socket's write threw: TCP's "would block" waits for onWritable; anything else ends the connection. */
  private refused(e: unknown, owner: boolean): void {
    if (!this.d.tls && text(e).indexOf("would block") >= 0)
      this.room = 0; // onWritable follows when lwIP has room
    else if (owner) this.ownerCrash(e);
    else this.crash(e);
  }

  /** An owner's handler threw: the owner's bug, reported as such, not as a TLS failure. */
  private threw(e: unknown): void {
    try {
      this.fail(
        netError("CLOSED", `${formatEndpoint(this.d.endpoint)}: the connection's handler threw (${text(e)})`, e),
      );
    } catch (again) {
      this.crash(again); // the owner's onError threw too: the connection is dead already, so this ends it quietly
    }
  }

  /** A failure inside a call from the owner: reported on a later turn, never inside the owner's call. */
  private ownerCrash(e: unknown): void {
    this.sync++;
    try {
      this.crash(e);
    } finally {
      this.sync--;
    }
  }

  /** How the connection ended when the socket says only "error". */
  private ended(): NetError {
    const where = this.where();
    if (this.phase === OPEN)
      return this.answered
        ? netError(
            "CLOSED",
            `${formatEndpoint(this.d.endpoint)}: the connection closed (the broker or the network ended it)`,
          )
        : netError("NO_ANSWER", `${where} closed the connection without answering`);
    if (!this.d.tls || !this.opened)
      return netError(
        "CONNECTION_REFUSED",
        `the TCP connection to ${where} failed (refused or unreachable: the device's network stack does not say which)`,
      );
    if (this.received)
      return netError("TLS_HANDSHAKE_FAILED", `${where} closed the connection during the TLS handshake`);
    return netError("NOT_TLS", `${where} closed the connection during the TLS handshake without a byte of answer`);
  }

  private crash(e: unknown): void {
    if (this.phase === DEAD) return;
    const tls = this.d.tls;
    if (!tls)
      return this.fail(
        e instanceof NetError ? e : netError("CLOSED", `${formatEndpoint(this.d.endpoint)}: ${text(e)}`, e),
      );
    const now = Date.now();
    this.fail(
      describeTlsException(e, {
        endpoint: this.d.endpoint,
        serverName: tls.serverName,
        open: this.phase === OPEN,
        clientCert: tls.clientCert,
        now,
        clockValid: this.d.time.valid,
      }),
    );
  }

  private fail(error: NetError): void {
    if (this.phase === DEAD) return;
    this.phase = DEAD;
    this.shut();
    if (this.sync > 0) this.d.defer(() => this.closed || this.h.onError(error));
    else this.h.onError(error);
  }

  private shut(): void {
    this.cancelClock?.();
    this.cancelClock = undefined;
    this.pending = undefined;
    const s = this.socket;
    this.socket = undefined;
    try {
      s?.close();
    } catch {
      // already closed
    }
  }

  private where(): string {
    const w = hostPort(this.d.endpoint.host, this.d.endpoint.port);
    return this.address && this.address !== this.d.endpoint.host ? `${w} (${this.address})` : w;
  }
}
