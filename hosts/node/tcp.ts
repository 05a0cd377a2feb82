// TCP transport for the Node host, shaped like ECMA-419 (see src/net/transport.ts).
import * as net from "node:net";
import type { Connector, Transport, TransportHandlers } from "../../src/net/transport";

/** Bytes Node may hold unsent before write() reports "would block". */
const HIGH_WATER = 64 * 1024;

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
  return end.kind === "error" ? end.error : new Error(end.kind === "end" ? "the broker closed the connection" : "the connection closed");
}

/** A transport over an already-created Node socket (plain TCP or TLS). */
export function socketTransport(socket: net.Socket, h: TransportHandlers, options: string | SocketTransportOptions = "connect"): Transport {
  const o = typeof options === "string" ? { connectEvent: options } : options;
  const describe = o.describe ?? plain;
  const chunks: Uint8Array[] = [];
  let dead = false;
  const state = { opened: false, received: false };
  const fail = (end: SocketEnd) => {
    if (dead) return;
    dead = true;
    socket.destroy();
    h.onError(describe(end, state));
  };
  socket.setNoDelay(true);
  socket.on(o.connectEvent ?? "connect", () => {
    state.opened = true;
    if (!dead) h.onConnect();
  });
  socket.on("data", (d: Buffer) => {
    if (dead) return;
    state.received = true;
    chunks.push(new Uint8Array(d.buffer, d.byteOffset, d.length));
    h.onReadable(d.length);
  });
  socket.on("drain", () => !dead && h.onWritable(HIGH_WATER));
  socket.on("error", (error) => fail({ kind: "error", error }));
  socket.on("end", () => fail({ kind: "end" }));
  socket.on("close", () => fail({ kind: "close" }));
  return {
    read: () => chunks.shift(),
    write(data) {
      if (dead) return false;
      if (socket.writableLength > HIGH_WATER) return false;
      socket.write(data);
      return true;
    },
    close() {
      if (dead) return;
      dead = true;
      // While still dialling, abort; once open, flush what was written (e.g. DISCONNECT), then close.
      if (socket.connecting) socket.destroy();
      else socket.destroySoon();
    },
  };
}

export function tcpConnector(options: TcpOptions): Connector {
  return (h) => socketTransport(net.connect({ host: options.host, port: options.port }), h);
}
