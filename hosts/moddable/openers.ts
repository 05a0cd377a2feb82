/**
 * Socket openers on the SDK's socket classes, which host.ts hands in (this file imports none of the SDK's modules,
 * so the benchmarks and tests run it on fakes): plain TCP (embedded:io/socket/tcp) and TLS (the SDK's TLSSocket,
 * examples/io/tcp/tlssocket, over a TCP socket of ours).
 *
 * What a connection holds here, and what it does not: the native TCP socket calls its callbacks with the socket as
 * `this`, and ECMA-419's `target` option puts the connection on the socket (builtinInitializeTarget in the SDK's
 * modules/io/common/builtinCommon.c), so the callbacks are functions of this module, one set for every connection,
 * and not closures made for each socket (on XS a closure is about 9 heap slots). Nothing is made per event.
 */
import type { ByteSocket, OpenSocket, SocketTarget } from "./socket";
import type { ModdableTls } from "./tls-options";

/** An SDK socket instance as used here (the classes' typings differ between SDK versions). */
export interface SdkSocket {
  read(count?: number): unknown;
  write(data: Uint8Array): unknown;
  close(): void;
  /** ECMA-419: the `target` of the options. */
  target?: unknown;
}

export type SocketClass = new (options: Record<string, unknown>) => SdkSocket;

/** Bytes of margin for one TLS record's header, IV, MAC and padding (AES-CBC with SHA-256: at most 69). */
const RECORD_OVERHEAD = 64;

/** Puts `target` on the socket where the native constructor did not (the mac build ignores the option). */
function withTarget(s: SdkSocket, target: unknown): void {
  if (s.target !== target) s.target = target;
}

/**
 * An SDK socket as a ByteSocket (TLSSocket): `overhead` is taken off the room it reports (a TLS record's margin);
 * `copy` hands it a copy of each piece instead of the caller's view.
 */
export class SocketAdapter implements ByteSocket {
  constructor(
    private readonly s: SdkSocket,
    private readonly overhead: number,
    private readonly copy: boolean,
  ) {}
  read(): ArrayBuffer | undefined {
    return this.s.read() as ArrayBuffer | undefined;
  }
  write(data: Uint8Array): number {
    const left = this.s.write(this.copy ? data.slice() : data);
    return (typeof left === "number" ? left : 0) - this.overhead;
  }
  close(): void {
    this.s.close();
  }
}

// ---- plain TCP ----

function tcpReadable(this: { target: SocketTarget }, count: number): void {
  const t = this.target;
  t.received = true;
  t.onReadable(count);
}

function tcpWritable(this: { target: SocketTarget }, count: number): void {
  const t = this.target;
  t.opened = true;
  t.onWritable(count);
}

function tcpError(this: { target: SocketTarget }): void {
  this.target.onError();
}

/**
 * Opens plain TCP sockets of the SDK's class `TCP`. The socket itself is the ByteSocket, with no adapter between:
 * in the "buffer" format its read() returns an ArrayBuffer of all the bytes there or undefined, and its write()
 * returns the room left (undefined once the connection failed, which ModdableTransport takes as no room; lwIP
 * copies the bytes, so a view is fine).
 */
export function tcpOpener(TCP: SocketClass): OpenSocket {
  return (address, port, target) => {
    const s = new TCP({
      address,
      port,
      nodelay: true,
      format: "buffer",
      target,
      onReadable: tcpReadable,
      onWritable: tcpWritable,
      onError: tcpError,
    });
    withTarget(s, target);
    return s as unknown as ByteSocket;
  };
}

// ---- TLS ----

/** What the TCP socket under a TLSSocket reports to: the TLS engine's callbacks for it, and the connection. */
interface TlsLink {
  readonly t: SocketTarget;
  readonly r: (count: number) => void;
  readonly w: (count: number) => void;
  readonly e: () => void;
}

// The TLS engine runs inside these callbacks and throws from them (a failed certificate check, an alert from the
// broker): an exception left uncaught there aborts the XS machine, so each one becomes the connection's error.

function tlsTcpReadable(this: { target: TlsLink }, count: number): void {
  const l = this.target;
  l.t.received = true;
  try {
    l.r(count);
  } catch (e) {
    l.t.onException(e);
  }
}

function tlsTcpWritable(this: { target: TlsLink }, count: number): void {
  const l = this.target;
  l.t.opened = true;
  try {
    l.w(count);
  } catch (e) {
    l.t.onException(e);
  }
}

function tlsTcpError(this: { target: TlsLink }): void {
  const l = this.target;
  try {
    l.e();
  } catch (e) {
    l.t.onException(e);
  }
}

/**
 * The TCP class TLSSocket builds its socket with (`new options.TCP.io({...options, onReadable, ...})`): the SDK's
 * TCP with every callback guarded. TLSSocket passes on the options it was given, `target` (the connection) with them.
 */
function guardedTcp(TCP: SocketClass): SocketClass {
  // A function, not an arrow: TLSSocket calls it with `new`.
  // biome-ignore lint/complexity/useArrowFunction: an arrow function cannot be called with new
  const Guarded = function (options: Record<string, unknown>): SdkSocket {
    const o = options as {
      target: SocketTarget;
      onReadable(n: number): void;
      onWritable(n: number): void;
      onError(): void;
    };
    const link: TlsLink = { t: o.target, r: o.onReadable, w: o.onWritable, e: o.onError };
    const s = new TCP({
      ...options,
      nodelay: true,
      target: link,
      onReadable: tlsTcpReadable,
      onWritable: tlsTcpWritable,
      onError: tlsTcpError,
    });
    withTarget(s, link);
    return s;
  };
  return Guarded as unknown as SocketClass;
}

/** Opens TLS sockets of the SDK's class `TLSSocket` over `TCP`, for one TLS configuration at a time. */
export function tlsOpener(TCP: SocketClass, TLSSocket: SocketClass): (tls: ModdableTls) => OpenSocket {
  // Frozen: made once at preload (host.ts), and TLSSocket only reads it.
  const io = Object.freeze({ io: guardedTcp(TCP) });
  return (tls) => (address, port, target) => {
    const s = new TLSSocket({
      address,
      port,
      host: tls.serverName,
      secure: tls.secure,
      TCP: io,
      target,
      // TLSSocket calls these with its own `this` (no target): bound once per connection
      onReadable: (count: number) => target.onReadable(count),
      onWritable: (count: number) => target.onWritable(count),
      onError: () => target.onError(),
    });
    return new SocketAdapter(s, RECORD_OVERHEAD, true);
  };
}
