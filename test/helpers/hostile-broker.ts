// A scriptable misbehaving MQTT broker on loopback, for the hostile-broker suite (test/mqtt/hostile-broker.test.ts).
//
// Connection n runs scripts[n] (it plays the broker: it reads what the client sends, decoded by mqtt-packet, an
// independent parser, and writes whatever bytes it likes); a connection beyond the scripts is piped to a sane broker
// (Mosquitto), so a test can check what happens after the misbehaviour: the client reconnects and loses nothing.
import * as net from "node:net";
import * as mqttPacket from "mqtt-packet";
import { onCurrentTestEnd } from "./cleanup";

export type Script = (c: HostileConnection) => unknown;

export interface HostileBroker {
  port: number;
  /** Every connection accepted so far, scripted or piped. */
  connections: HostileConnection[];
  close(): Promise<void>;
}

export class HostileConnection {
  /** Packets the client sent, in order (mqtt-packet's objects), while `keep`; and how many of each kind. */
  readonly packets: mqttPacket.Packet[] = [];
  keep = true;
  readonly counts: Record<string, number> = {};
  /** Bytes this broker wrote to the client. */
  written = 0;
  /** Set when the client's side ended (FIN, reset or our own close). */
  ended = false;
  private waiters: { cmd: string; resolve: (p: mqttPacket.Packet) => void }[] = [];
  private parser = mqttPacket.parser({ protocolVersion: 4 });

  constructor(
    readonly socket: net.Socket,
    readonly index: number,
  ) {
    this.parser.on("packet", (p: mqttPacket.Packet) => {
      this.counts[p.cmd] = (this.counts[p.cmd] ?? 0) + 1;
      if (!this.keep) return;
      this.packets.push(p);
      const k = this.waiters.findIndex((w) => w.cmd === p.cmd);
      if (k >= 0) this.waiters.splice(k, 1)[0].resolve(p);
    });
    this.parser.on("error", () => {}); // what a client sends is checked elsewhere: here only bytes matter
    socket.on("close", () => (this.ended = true));
  }

  /** @internal */
  listen(): void {
    this.socket.on("data", (d) => this.parser.parse(d));
  }

  /** The next packet of this kind from the client (or one it already sent and nobody took). */
  next(cmd: string, timeoutMs = 10000): Promise<mqttPacket.Packet> {
    const seen = this.packets.filter((p) => p.cmd === cmd);
    const taken = (this.taken[cmd] ??= 0);
    if (seen.length > taken) {
      this.taken[cmd]++;
      return Promise.resolve(seen[taken]);
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the client sent no ${cmd} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        cmd,
        resolve: (p) => {
          clearTimeout(t);
          this.taken[cmd]++;
          resolve(p);
        },
      });
    });
  }
  private taken: Record<string, number> = {};

  /** Writes raw bytes; false when the socket is gone. */
  send(bytes: Uint8Array | number[]): boolean {
    if (this.socket.destroyed) return false;
    const b = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
    this.written += b.length;
    this.socket.write(b);
    return true;
  }

  /** Writes a packet made by mqtt-packet. */
  packet(p: Partial<mqttPacket.Packet> & { cmd: string }): boolean {
    return this.send(mqttPacket.generate(p as mqttPacket.Packet));
  }

  connack(returnCode = 0, sessionPresent = false): boolean {
    return this.packet({ cmd: "connack", returnCode, sessionPresent });
  }

  /** Writes `bytes` one at a time, `everyMs` apart, until done or the client hangs up. */
  async trickle(bytes: Uint8Array, everyMs: number): Promise<number> {
    let i = 0;
    while (i < bytes.length && !this.ended && !this.socket.destroyed) {
      this.send(bytes.subarray(i, i + 1));
      i++;
      await new Promise((r) => setTimeout(r, everyMs));
    }
    return i;
  }

  /** Stops reading what the client sends (its writes then fill the socket buffers and TCP's window). */
  stopReading(): void {
    this.socket.pause();
    this.socket.removeAllListeners("data");
  }

  /** Bytes the client sent that this side has not read (what TCP holds for us, as far as Node knows). */
  get unread(): number {
    return this.socket.readableLength;
  }

  close(): void {
    this.socket.end();
  }

  /** Closes with a TCP reset. */
  reset(): void {
    this.socket.resetAndDestroy();
  }
}

export async function startHostileBroker(options: { scripts: Script[]; sanePort?: number }): Promise<HostileBroker> {
  const connections: HostileConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    const c = new HostileConnection(socket, connections.length);
    connections.push(c);
    const script = options.scripts[c.index];
    if (script) {
      c.listen();
      Promise.resolve()
        .then(() => script(c))
        .catch(() => socket.destroy());
      return;
    }
    if (options.sanePort === undefined) return void socket.destroy();
    const up = net.connect({ host: "127.0.0.1", port: options.sanePort });
    sockets.add(up);
    up.on("close", () => {
      sockets.delete(up);
      socket.destroy();
    });
    up.on("error", () => socket.destroy());
    socket.on("close", () => up.destroy());
    socket.pipe(up);
    up.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const broker: HostileBroker = {
    port,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  await onCurrentTestEnd(() => broker.close());
  return broker;
}
