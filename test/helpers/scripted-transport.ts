// A scripted transport for deterministic client tests: the test plays the broker. What the client writes is
// decoded with the codec in broker mode; what the test "sends" is encoded and handed to the client.
import { Decoder, encode, type Packet } from "../../src/mqtt/codec";
import type { Connector, Transport, TransportHandlers } from "../../src/host";

export class ScriptedConnection implements Transport {
  readonly sent: Packet[] = [];
  readonly raw: Uint8Array[] = [];
  closed = false;
  /** While true, write() answers "would block". */
  blocked = false;
  private inbox: Uint8Array[] = [];
  private decoder = new Decoder((p) => this.sent.push(p), { level: 4 });

  constructor(readonly h: TransportHandlers) {}

  read(): Uint8Array | undefined {
    return this.inbox.shift();
  }

  write(data: Uint8Array): boolean {
    if (this.closed) throw new Error("write after close");
    if (this.blocked) return false;
    this.raw.push(data.slice());
    this.decoder.push(data.slice());
    return true;
  }

  close(): void {
    this.closed = true;
  }

  // ---- the test's side ----
  open(): void {
    this.h.onConnect();
  }

  /** Sends raw bytes to the client. */
  bytes(b: Uint8Array): void {
    this.inbox.push(b);
    this.h.onReadable(b.length);
  }

  /** Sends packets to the client (level 4 unless given). */
  send(...packets: Packet[]): void {
    for (const p of packets) this.bytes(encode(p));
  }

  connack(sessionPresent = false, returnCode = 0): void {
    this.send({ type: 2, sessionPresent, returnCode });
  }

  unblock(): void {
    this.blocked = false;
    this.h.onWritable(65536);
  }

  fail(message = "connection reset"): void {
    this.h.onError(new Error(message));
  }

  /** Packets of one type the client sent. */
  of<T extends Packet["type"]>(type: T): Extract<Packet, { type: T }>[] {
    return this.sent.filter((p) => p.type === type) as Extract<Packet, { type: T }>[];
  }
}

/** A connector whose every connection the test can reach; `refuse` makes dials fail at once. */
export class ScriptedNetwork {
  readonly connections: ScriptedConnection[] = [];
  refuse = false;

  readonly connect: Connector = (h) => {
    const c = new ScriptedConnection(h);
    this.connections.push(c);
    return c;
  };

  get last(): ScriptedConnection {
    const c = this.connections[this.connections.length - 1];
    if (!c) throw new Error("no connection was dialled");
    return c;
  }
}
