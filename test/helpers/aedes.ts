// An in-process aedes broker (npm `aedes` v1: `await Aedes.createBroker(options)`) on a free loopback port.
//
//   const { url, broker, close } = await startAedes({ authenticate: (client, user, pass, done) => done(null, user === "a") });
//   ...
//   await close();
//
// In-process means its hooks and events (broker.on("publish", ...)) are plain callbacks a test can observe.

import net from "node:net";
import { Aedes, type AedesOptions } from "aedes";
import { onCurrentTestEnd } from "./cleanup.ts";

export interface AedesHelperOptions {
  authenticate?: AedesOptions["authenticate"];
  authorizePublish?: AedesOptions["authorizePublish"];
  authorizeSubscribe?: AedesOptions["authorizeSubscribe"];
  preConnect?: AedesOptions["preConnect"];
  /** Any other aedes option (heartbeatInterval, keepaliveLimit, …). */
  options?: AedesOptions;
  /** Listen on this port instead of a free one (e.g. to come back on the same port after close()). */
  port?: number;
  /** Started inside a test: close it when the test ends (default true). Outside a test: close it in afterAll. */
  stopAfterTest?: boolean;
}

export interface AedesBroker {
  port: number;
  /** mqtt://127.0.0.1:PORT */
  url: string;
  broker: Aedes;
  server: net.Server;
  /** Closes the broker, the server and every client connection. Idempotent. */
  close(): Promise<void>;
}

export async function startAedes(opts: AedesHelperOptions = {}): Promise<AedesBroker> {
  const options: AedesOptions = { ...opts.options };
  if (opts.authenticate) options.authenticate = opts.authenticate;
  if (opts.authorizePublish) options.authorizePublish = opts.authorizePublish;
  if (opts.authorizeSubscribe) options.authorizeSubscribe = opts.authorizeSubscribe;
  if (opts.preConnect) options.preConnect = opts.preConnect;
  const broker = await Aedes.createBroker(options);

  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    broker.handle(socket);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.port ?? 0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw error;
  }
  const port = (server.address() as net.AddressInfo).port;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await serverClosed;
    })());

  const handle: AedesBroker = { port, url: `mqtt://127.0.0.1:${port}`, broker, server, close };
  if (opts.stopAfterTest ?? true) await onCurrentTestEnd(close);
  return handle;
}
