// TCP transport for the Node host, shaped like ECMA-419 (see src/net/transport.ts).
import * as net from "node:net";
import type { Connector, Transport, TransportHandlers } from "../../src/net/transport";

/** Bytes Node may hold unsent before write() reports "would block". */
const HIGH_WATER = 64 * 1024;

export interface TcpOptions {
  host: string;
  port: number;
}

/** A transport over an already-created Node socket (plain TCP or TLS). */
export function socketTransport(socket: net.Socket, h: TransportHandlers, connectEvent = "connect"): Transport {
  const chunks: Uint8Array[] = [];
  let dead = false;
  const fail = (e: Error) => {
    if (dead) return;
    dead = true;
    socket.destroy();
    h.onError(e);
  };
  socket.setNoDelay(true);
  socket.on(connectEvent, () => !dead && h.onConnect());
  socket.on("data", (d: Buffer) => {
    if (dead) return;
    chunks.push(new Uint8Array(d.buffer, d.byteOffset, d.length));
    h.onReadable(d.length);
  });
  socket.on("drain", () => !dead && h.onWritable(HIGH_WATER));
  socket.on("error", (e) => fail(e));
  socket.on("end", () => fail(new Error("the broker closed the connection")));
  socket.on("close", () => fail(new Error("the connection closed")));
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
