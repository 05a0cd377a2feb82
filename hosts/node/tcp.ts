// TCP transport for the Node host, shaped like ECMA-419 (see src/host.ts).
import * as net from "node:net";
import type { Connector, Transport, TransportHandlers } from "../../src/host";

/** Bytes Node may hold unsent before write() reports "would block". */
const HIGH_WATER = 64 * 1024;
/** Chunks held for an owner that is not reading before the socket is paused (TCP's flow control then holds the peer). */
const READ_CHUNKS = 8;

export interface TcpOptions {
  host: string;
  port: number;
}

/** How a socket's end is reported: `error` (with Node's error), `end` (the peer's FIN) or `close`. */
export type SocketEnd = { kind: "error"; error: Error } | { kind: "end" } | { kind: "close" };

export interface SocketTransportOptions {
  /** The event that means open: "connect" for TCP, "secureConnect" for TLS. Default "connect". */
  connectEvent?: string;
  /**
   * Turns how the socket ended into the error handed to onError (default: Node's error, or a plain message).
   * `opened`: the connect event came; `received`: any byte was read.
   */
  describe?: (end: SocketEnd, state: { opened: boolean; received: boolean }) => Error;
}

function plain(end: SocketEnd): Error {
  return end.kind === "error"
    ? end.error
    : new Error(end.kind === "end" ? "the broker closed the connection" : "the connection closed");
}

const OWNER = Symbol("socketTransport");
type Owned = net.Socket & { [OWNER]: SocketTransport };

/**
 * A transport over a Node socket. One object per connection, and the socket's listeners are shared module
 * functions that find it through a symbol, so an idle connection holds no closures. Writes made in the same
 * turn of the event loop are corked into one system call.
 */
class SocketTransport implements Transport {
  dead = false;
  corked = false;
  paused = false;
  readonly state = { opened: false, received: false };
  private pending: Uint8Array | undefined;
  private more: Uint8Array[] | undefined;

  constructor(
    readonly socket: net.Socket,
    readonly h: TransportHandlers,
    readonly describe: SocketTransportOptions["describe"] & {},
  ) {}

  read(): Uint8Array | undefined {
    const c = this.pending;
    this.pending = this.more?.length ? this.more.shift() : undefined;
    if (this.paused && !this.pending && !this.dead) {
      this.paused = false;
      this.socket.resume();
    }
    return c;
  }

  push(c: Uint8Array): void {
    if (!this.pending) this.pending = c;
    else if ((this.more ??= []).push(c) >= READ_CHUNKS && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  write(data: Uint8Array): boolean {
    const socket = this.socket;
    if (this.dead || socket.writableLength > HIGH_WATER) return false;
    if (!this.corked && !socket.connecting) {
      this.corked = true;
      socket.cork();
      process.nextTick(uncork, this);
    }
    socket.write(data);
    return true;
  }

  close(): void {
    if (this.dead) return;
    this.dead = true;
    // While still dialling, abort; once open, flush what was written (e.g. DISCONNECT), then close.
    if (this.socket.connecting) this.socket.destroy();
    else {
      if (this.corked) uncork(this);
      this.socket.destroySoon();
    }
  }

  fail(end: SocketEnd): void {
    if (this.dead) return;
    this.dead = true;
    this.socket.destroy();
    this.h.onError(this.describe(end, this.state));
  }
}

function uncork(t: SocketTransport): void {
  if (!t.corked) return;
  t.corked = false;
  t.socket.uncork();
}

function onOpen(this: Owned): void {
  const t = this[OWNER];
  t.state.opened = true;
  if (!t.dead) t.h.onConnect();
}

function onData(this: Owned, d: Buffer): void {
  const t = this[OWNER];
  if (t.dead) return;
  t.state.received = true;
  t.push(new Uint8Array(d.buffer, d.byteOffset, d.length));
  t.h.onReadable(d.length);
}

function onDrain(this: Owned): void {
  const t = this[OWNER];
  if (!t.dead) t.h.onWritable(HIGH_WATER);
}

function onSocketError(this: Owned, error: Error): void {
  this[OWNER].fail({ kind: "error", error });
}

function onEnd(this: Owned): void {
  this[OWNER].fail({ kind: "end" });
}

function onClose(this: Owned): void {
  this[OWNER].fail({ kind: "close" });
}

/** A transport over an already-created Node socket (plain TCP or TLS). */
export function socketTransport(
  socket: net.Socket,
  h: TransportHandlers,
  options: string | SocketTransportOptions = "connect",
): Transport {
  const o = typeof options === "string" ? { connectEvent: options } : options;
  const t = new SocketTransport(socket, h, o.describe ?? plain);
  (socket as Owned)[OWNER] = t;
  socket.setNoDelay(true);
  socket.on(o.connectEvent ?? "connect", onOpen);
  socket.on("data", onData);
  socket.on("drain", onDrain);
  socket.on("error", onSocketError);
  socket.on("end", onEnd);
  socket.on("close", onClose);
  return t;
}

export function tcpConnector(options: TcpOptions): Connector {
  return (h) => socketTransport(net.connect({ host: options.host, port: options.port }), h);
}
