// A TCP proxy on loopback between a client and a real broker that injects network faults.
//
//   const proxy = await startFaultProxy({ target: { port: broker.port }, seed: 42 });
//   connect the client under test to proxy.url (mqtt://127.0.0.1:P) instead of broker.url
//   proxy.setFaults({ split: { maxBytes: 3 } });                      // every write arrives in 1..3-byte pieces
//   proxy.setFaults({ drop: { minBytes: 0, maxBytes: 200 } });        // each new connection dies after 0..200 bytes
//   proxy.setFaults({ halfOpen: true });                              // the link goes dead, sockets stay open
//   proxy.dropAll();                                                  // cut every connection now
//   proxy.stats().bytesUp                                             // counters
//   await proxy.close();
//
// Directions: "up" is client -> broker, "down" is broker -> client.
//
// The one promise: while a connection lives, every byte that enters one side leaves the other side once, in order.
// Faults only change *when* and *in which pieces* bytes are written, or end the connection (a drop, dropAll) or
// freeze it (halfOpen). Each direction is a queue drained by one serial loop (`Pipe.run`) that is the only writer
// of its destination socket, which is what keeps the order.
//
// Determinism: randomness comes from a seeded PRNG, one stream per connection and direction, derived from the seed
// and the connection's number (1, 2, …). A drop's byte offset is therefore exactly reproducible for a given seed
// and connection number. Split points are drawn as absolute offsets too, but the kernel can still cut a stream
// where it likes (extra boundaries), and stall decisions are made per write, so those depend on how bytes arrive.
// `seed` defaults to a random one: print `proxy.seed` when a test fails.

import net from "node:net";
import { onCurrentTestEnd } from "./cleanup.ts";

export type Direction = "up" | "down";

export interface Faults {
  /**
   * Drop new connections: with `probability` (default 1) a connection is given a cut point of
   * minBytes..maxBytes (inclusive) bytes in `direction` ("up", "down", or "both": one picked at random; default
   * "both"). Exactly that many bytes are forwarded that way, then the connection is closed on both sides:
   * mode "close" (default) ends both sockets with FIN after flushing; "reset" destroys both with RST (bytes still
   * in flight may then be discarded by the receiving kernel). Offset 0 cuts when the first byte arrives.
   * Decided when a connection is accepted, from the faults set at that moment.
   */
  drop?: {
    probability?: number;
    minBytes?: number;
    maxBytes: number;
    direction?: Direction | "both";
    mode?: "close" | "reset";
  };
  /** Cut the stream into pieces of 1..maxBytes bytes, each written on its own (with a turn of the event loop between). */
  split?: { maxBytes: number };
  /** After data arrives, wait windowMs for more and write everything gathered (up to maxBytes) as one write. */
  coalesce?: { windowMs: number; maxBytes?: number };
  /** Before each write, with `probability`, hold the stream for minMs..maxMs (what arrives meanwhile is queued). */
  stall?: { probability: number; minMs?: number; maxMs: number };
  /**
   * A dead link that TCP does not notice: every live connection stops forwarding both ways and stops reading, its
   * sockets stay open; connections accepted while this is on are frozen the same way and never reach the broker.
   * Frozen connections stay frozen after halfOpen is turned off (until dropAll() or close()): they are dead.
   */
  halfOpen?: boolean;
  /** Which directions split, coalesce and stall apply to (default "both"). Drops have their own direction. */
  directions?: Direction | "both";
}

export interface FaultProxyOptions {
  /** The broker: host defaults to 127.0.0.1. */
  target: { host?: string; port: number };
  /** PRNG seed (a 32-bit integer); default: random, see `proxy.seed`. */
  seed?: number;
  /** Initial faults (default none: a faithful pass-through). */
  faults?: Faults;
  /** Port to listen on (default: any free one). */
  port?: number;
  /** Started inside a test: close it when the test ends (default true). Outside a test: close it in afterAll. */
  stopAfterTest?: boolean;
}

export interface FaultProxyStats {
  /** Connections accepted, in total. */
  connections: number;
  /** Connections still open (frozen ones included). */
  active: number;
  /** Connections cut by the drop fault. */
  drops: number;
  /** Connections cut by dropAll(). */
  droppedByCall: number;
  /** Connections frozen by halfOpen. */
  frozen: number;
  /** Bytes forwarded client -> broker and broker -> client. */
  bytesUp: number;
  bytesDown: number;
  /** Writes made each way: more than the chunks received means splitting, fewer means coalescing. */
  writesUp: number;
  writesDown: number;
  /** Stalls made. */
  stalls: number;
}

export interface DropRecord {
  /** The connection's number (1 = first accepted). */
  connection: number;
  direction: Direction;
  /** Bytes forwarded that way before the cut: exactly the planned offset. */
  offset: number;
}

export interface FaultProxy {
  readonly port: number;
  readonly host: "127.0.0.1";
  /** mqtt://127.0.0.1:PORT (the proxy is plain TCP: use mqtts:// with the same port for a TLS broker). */
  readonly url: string;
  readonly seed: number;
  /** The faults in force (a copy). */
  readonly faults: Faults;
  /** Replaces the faults ({} turns everything off). Live connections pick up split/coalesce/stall/halfOpen at once. */
  setFaults(faults: Faults): void;
  /** Points new connections at another broker port. */
  setTarget(target: { host?: string; port: number }): void;
  /** Cuts every current connection now (frozen ones included); mode as in Faults.drop (default "close"). */
  dropAll(mode?: "close" | "reset"): number;
  stats(): FaultProxyStats;
  /** Every cut made by the drop fault, in order. */
  readonly dropLog: readonly DropRecord[];
  /** Stops listening and destroys every connection. Idempotent. */
  close(): Promise<void>;
}

// ---- seeded PRNG -------------------------------------------------------------------------------------------------

/** Mixes integers into one 32-bit seed (murmur3's finalizer over a running hash). */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p | 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [min, max], both inclusive. */
  int(min: number, max: number): number;
}

/** mulberry32: tiny, fast, good enough to pick fault offsets; the same seed gives the same sequence. */
export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (min, max) => min + Math.floor(next() * (max - min + 1)) };
}

// ---- the proxy ---------------------------------------------------------------------------------------------------

/** Throws on settings that would make the proxy misbehave quietly (a typo should fail the test that made it). */
export function checkFaults(f: Faults): void {
  const bad = (what: string) => {
    throw new Error(`fault proxy: ${what}`);
  };
  const probability = (p: number | undefined, name: string) => {
    if (p !== undefined && !(p >= 0 && p <= 1)) bad(`${name} must be in [0, 1], got ${p}`);
  };
  if (f.drop) {
    const min = f.drop.minBytes ?? 0;
    if (!(Number.isInteger(min) && min >= 0 && Number.isInteger(f.drop.maxBytes) && f.drop.maxBytes >= min)) {
      bad(`drop needs integers 0 <= minBytes <= maxBytes, got ${min}..${f.drop.maxBytes}`);
    }
    probability(f.drop.probability, "drop.probability");
  }
  if (f.split && !(Number.isInteger(f.split.maxBytes) && f.split.maxBytes >= 1))
    bad(`split.maxBytes must be an integer >= 1`);
  if (f.coalesce && !(f.coalesce.windowMs >= 0)) bad(`coalesce.windowMs must be >= 0`);
  if (f.coalesce?.maxBytes !== undefined && !(f.coalesce.maxBytes >= 1)) bad(`coalesce.maxBytes must be >= 1`);
  if (f.stall) {
    probability(f.stall.probability, "stall.probability");
    if (!((f.stall.minMs ?? 0) >= 0 && f.stall.maxMs >= (f.stall.minMs ?? 0))) bad(`stall needs 0 <= minMs <= maxMs`);
  }
}

const HIGH_WATER = 256 * 1024; // queued bytes in one direction before we stop reading its source
const LINGER_MS = 2000; // after a cut with FIN: how long a socket may stay before it is destroyed

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function applies(faults: Faults, dir: Direction): boolean {
  const d = faults.directions ?? "both";
  return d === "both" || d === dir;
}

/** Ends a socket's life the way `mode` says; safe on sockets in any state. */
function terminate(socket: net.Socket, mode: "close" | "reset"): void {
  if (socket.destroyed) return;
  if (mode === "reset" && !socket.connecting) {
    socket.resetAndDestroy();
    return;
  }
  if (mode === "reset") {
    socket.destroy(); // still connecting: there is no connection to reset yet
    return;
  }
  // FIN after what was already written (on a socket still connecting: once connected, after its queued writes);
  // keep reading (and discarding) so the kernel closes cleanly, not with RST.
  socket.end();
  socket.resume();
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

class ProxyServer {
  faults: Faults;
  target: { host: string; port: number };
  readonly links = new Set<Link>();
  /** Client sockets accepted while halfOpen was on: held open, never connected anywhere. */
  readonly frozenSockets = new Set<net.Socket>();
  /** Every socket still open, both sides, whatever its state: what close() destroys. */
  readonly sockets = new Set<net.Socket>();
  readonly counters: FaultProxyStats = {
    connections: 0,
    active: 0,
    drops: 0,
    droppedByCall: 0,
    frozen: 0,
    bytesUp: 0,
    bytesDown: 0,
    writesUp: 0,
    writesDown: 0,
    stalls: 0,
  };
  readonly dropLog: DropRecord[] = [];

  constructor(
    readonly seed: number,
    faults: Faults,
    target: { host?: string; port: number },
  ) {
    checkFaults(faults);
    this.faults = { ...faults };
    this.target = { host: target.host ?? "127.0.0.1", port: target.port };
  }

  /** Registers a socket for close(). */
  own(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
  }

  accept(client: net.Socket): void {
    const index = ++this.counters.connections;
    this.own(client);
    client.setNoDelay(true);
    client.on("error", () => {
      // reported through 'close'
    });
    if (this.faults.halfOpen) {
      client.pause();
      this.counters.frozen++;
      this.counters.active++;
      this.frozenSockets.add(client);
      client.once("close", () => {
        this.frozenSockets.delete(client);
        this.counters.active--;
      });
      return;
    }
    const link = new Link(this, index, client);
    this.links.add(link);
    this.counters.active++;
  }

  setFaults(faults: Faults): void {
    checkFaults(faults);
    this.faults = { ...faults };
    if (faults.halfOpen) for (const link of this.links) link.freeze();
    for (const link of this.links) link.kick(); // new split/coalesce/stall settings apply from the next write
  }

  dropAll(mode: "close" | "reset"): number {
    let n = 0;
    for (const link of [...this.links]) if (link.cut(mode)) n++;
    for (const socket of [...this.frozenSockets]) {
      this.frozenSockets.delete(socket); // counted once, even if it lingers a moment
      terminate(socket, mode);
      n++;
    }
    this.counters.droppedByCall += n;
    return n;
  }

  closeAll(): void {
    for (const link of this.links) link.state = "closed";
    for (const socket of [...this.sockets]) socket.destroy();
  }
}

/** One client connection and its connection to the broker. */
class Link {
  /** open: forwarding; frozen: halfOpen, nothing moves; closed: cut or finished, nothing moves again. */
  state: "open" | "frozen" | "closed" = "open";
  /** How a drop fault ends this connection. */
  dropMode: "close" | "reset" = "close";
  readonly upstream: net.Socket;
  readonly up: Pipe;
  readonly down: Pipe;
  private socketsClosed = 0;

  constructor(
    readonly proxy: ProxyServer,
    readonly index: number,
    readonly client: net.Socket,
  ) {
    const { host, port } = proxy.target;
    this.upstream = net.connect({ host, port, allowHalfOpen: true });
    proxy.own(this.upstream);
    this.upstream.setNoDelay(true);
    this.up = new Pipe(this, "up", client, this.upstream);
    this.down = new Pipe(this, "down", this.upstream, client);

    // The drop plan, drawn from this connection's own stream so it depends only on (seed, connection number).
    const drop = proxy.faults.drop;
    const rng = createRng(mixSeed(proxy.seed, index));
    if (drop && rng.next() < (drop.probability ?? 1)) {
      const dir =
        drop.direction === "up" || drop.direction === "down" ? drop.direction : rng.next() < 0.5 ? "up" : "down";
      const offset = rng.int(drop.minBytes ?? 0, drop.maxBytes);
      (dir === "up" ? this.up : this.down).dropAt = offset;
      this.dropMode = drop.mode ?? "close";
    }

    for (const socket of [client, this.upstream]) {
      socket.on("error", () => {
        // an error is always followed by 'close'; handled there
      });
      socket.once("close", (hadError) => this.onSocketClose(socket, hadError));
    }
  }

  private onSocketClose(socket: net.Socket, hadError: boolean): void {
    if (++this.socketsClosed === 2) {
      this.proxy.links.delete(this);
      this.proxy.counters.active--;
      this.state = "closed";
      return;
    }
    // closed: our own cut or destroy already handles both sockets; frozen: a dead link carries no news.
    if (this.state !== "open") return;
    const other = socket === this.client ? this.upstream : this.client;
    const from = socket === this.client ? this.up : this.down;
    if (hadError) {
      // A reset or a failed connect to the broker: what this side sent before still goes on, then the other side
      // is closed too (destroy: it may get a FIN or a RST, like a peer whose connection broke).
      from.finish(() => other.destroy());
    } else {
      // A clean close: with allowHalfOpen that means both directions had their FIN already; `other` follows.
      from.finish(() => other.end());
    }
  }

  kick(): void {
    this.up.kick();
    this.down.kick();
  }

  freeze(): void {
    if (this.state !== "open") return;
    this.state = "frozen";
    this.client.pause();
    this.upstream.pause();
    this.proxy.counters.frozen++;
  }

  /** Cuts the connection (a drop or dropAll); false if it was already closed. */
  cut(mode: "close" | "reset"): boolean {
    if (this.state === "closed") return false;
    this.state = "closed";
    terminate(this.client, mode);
    terminate(this.upstream, mode);
    return true;
  }
}

/** One direction of a link: a queue of received chunks and the single loop that writes them on. */
class Pipe {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private running = false;
  private ended = false; // the source sent FIN
  private endSent = false;
  private forwarded = 0;
  private gathered = false; // coalesce: this burst has had its wait
  private onFlushed: (() => void) | undefined;
  private nextCut = 0; // absolute offset of the next split point
  private readonly rng: Rng;
  /** Cut the connection once this many bytes went this way (the drop fault). */
  dropAt: number | undefined;

  constructor(
    private readonly link: Link,
    readonly dir: Direction,
    private readonly src: net.Socket,
    private readonly dst: net.Socket,
  ) {
    this.rng = createRng(mixSeed(link.proxy.seed, link.index, dir === "up" ? 1 : 2));
    src.on("data", (chunk: Buffer) => this.push(chunk));
    src.on("end", () => {
      this.ended = true;
      this.kick();
    });
  }

  /** The source is gone: forward what it sent, then call `then` instead of passing a FIN on. */
  finish(then: () => void): void {
    if (this.endSent) {
      then();
      return;
    }
    this.ended = true;
    this.onFlushed = then;
    this.kick();
  }

  private push(chunk: Buffer): void {
    if (this.link.state !== "open") return; // cut: discard what still comes in
    this.queue.push(chunk);
    this.queued += chunk.length;
    if (this.queued > HIGH_WATER) this.src.pause(); // backpressure; resumed in run()
    this.kick();
  }

  kick(): void {
    if (this.running) return;
    this.running = true;
    void this.run().finally(() => {
      this.running = false;
    });
  }

  /** Removes and returns up to n bytes from the queue's front: from the first chunk only, unless `across`. */
  private take(n: number, across: boolean): Buffer {
    const first = this.queue[0];
    if (!across || n <= first.length) {
      const k = Math.min(n, first.length);
      const piece = first.subarray(0, k);
      if (k === first.length) this.queue.shift();
      else this.queue[0] = first.subarray(k);
      this.queued -= k;
      return piece;
    }
    const parts: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const part = this.take(left, false);
      parts.push(part);
      left -= part.length;
    }
    return Buffer.concat(parts);
  }

  /** Writes and waits for 'drain' when the socket's buffer is full (or until it closes). */
  private write(piece: Buffer): Promise<void> {
    const { dst } = this;
    if (dst.destroyed || dst.writableEnded) return Promise.resolve();
    const counters = this.link.proxy.counters;
    if (this.dir === "up") (counters.bytesUp += piece.length), counters.writesUp++;
    else (counters.bytesDown += piece.length), counters.writesDown++;
    if (dst.write(piece)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        dst.off("drain", done);
        dst.off("close", done);
        resolve();
      };
      dst.on("drain", done);
      dst.on("close", done);
    });
  }

  private async run(): Promise<void> {
    const { link } = this;
    const proxy = link.proxy;
    while (link.state === "open" && this.queued > 0) {
      const faults = proxy.faults;
      const on = applies(faults, this.dir);

      if (on && faults.stall && this.rng.next() < faults.stall.probability) {
        proxy.counters.stalls++;
        await sleep(this.rng.int(faults.stall.minMs ?? 0, faults.stall.maxMs));
      }
      if (on && faults.coalesce && !this.gathered) {
        await sleep(faults.coalesce.windowMs); // let more arrive; then write what is there as one
        this.gathered = true;
      }
      if (link.state !== "open") return;

      // How much to write now: what is queued, bounded by the drop point and the next split point.
      let n = this.queued;
      if (on && faults.coalesce?.maxBytes) n = Math.min(n, faults.coalesce.maxBytes);
      if (this.dropAt !== undefined) n = Math.min(n, this.dropAt - this.forwarded);
      if (on && faults.split) {
        if (this.nextCut <= this.forwarded)
          this.nextCut = this.forwarded + this.rng.int(1, Math.max(1, faults.split.maxBytes));
        n = Math.min(n, this.nextCut - this.forwarded);
      }
      if (n > 0) {
        const piece = this.take(n, on && faults.coalesce !== undefined);
        this.forwarded += piece.length;
        await this.write(piece);
      }
      if (this.dropAt !== undefined && this.forwarded >= this.dropAt && link.state === "open") {
        proxy.counters.drops++;
        proxy.dropLog.push({ connection: link.index, direction: this.dir, offset: this.forwarded });
        link.cut(link.dropMode);
        return;
      }
      if (this.queued < HIGH_WATER / 2 && this.src.isPaused() && link.state === "open") this.src.resume();
      if (on && faults.split) await nextTurn(); // let this piece leave on its own
    }
    this.gathered = false;
    if (link.state === "open" && this.ended && this.queued === 0 && !this.endSent) {
      this.endSent = true;
      if (this.onFlushed) this.onFlushed();
      else this.dst.end(); // pass the FIN on, after everything before it
    }
  }
}

/** Starts a fault proxy in front of `options.target`; see Faults. */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const seed = (options.seed ?? Math.floor(Math.random() * 2 ** 32)) >>> 0;
  const proxy = new ProxyServer(seed, options.faults ?? {}, options.target);
  const server = net.createServer({ allowHalfOpen: true }, (socket) => proxy.accept(socket));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;

  let closing: Promise<void> | undefined;
  const handle: FaultProxy = {
    port,
    host: "127.0.0.1",
    url: `mqtt://127.0.0.1:${port}`,
    seed,
    get faults() {
      return { ...proxy.faults };
    },
    setFaults: (faults) => proxy.setFaults(faults),
    setTarget: (target) => {
      proxy.target = { host: target.host ?? "127.0.0.1", port: target.port };
    },
    dropAll: (mode = "close") => proxy.dropAll(mode),
    stats: () => ({ ...proxy.counters }),
    dropLog: proxy.dropLog,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        proxy.closeAll();
      })),
  };
  if (options.stopAfterTest ?? true) await onCurrentTestEnd(handle.close);
  return handle;
}
