// The simulator's network link: up or down on command (what Wi-Fi coming and going is on a board).
//
//   const link = new ScriptedLink();
//   link.down();   // live connections drop, new dials fail fast with NETWORK_DOWN
//   link.up();     // dials work again; the client's own backoff brings it back
//   host.network   // the NetworkLink view portable code sees (up, onChange)
import type * as net from "node:net";
import type { NetworkLink } from "../../src/host";
import { type NetError, netError } from "../../src/net/errors";

export class ScriptedLink {
  /** What portable code sees: `up` and `onChange`. */
  readonly network: NetworkLink;
  private state: boolean;
  private readonly sockets = new Set<net.Socket>();
  private listener: ((up: boolean) => void) | undefined;

  constructor(up = true) {
    this.state = up;
    const self = this;
    this.network = {
      get up() {
        return self.state;
      },
      get onChange() {
        return self.listener;
      },
      set onChange(f) {
        self.listener = f;
      },
    };
  }

  get isUp(): boolean {
    return this.state;
  }

  /** Sockets open through this link now. */
  get openSockets(): number {
    return this.sockets.size;
  }

  /** Takes the link down: every live connection is dropped with NETWORK_DOWN; new dials fail fast until up(). */
  down(): void {
    if (!this.state) return;
    this.state = false;
    for (const s of [...this.sockets]) s.destroy(netError("NETWORK_DOWN", "the network went down"));
    this.sockets.clear();
    this.listener?.(false);
  }

  /** Brings the link back. */
  up(): void {
    if (this.state) return;
    this.state = true;
    this.listener?.(true);
  }

  /** For the connector: the error to fail a dial with while down. */
  check(): NetError | undefined {
    return this.state ? undefined : netError("NETWORK_DOWN", "the network is down (no link)");
  }

  /** For the connector: a socket to drop when the link goes down. */
  track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
  }
}
