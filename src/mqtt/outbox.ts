/**
 * The outbox: the QoS 0/1 messages a session holds, in publish order, and the packet ids beside them. Messages are
 * records in a ring (see ITEMS) starting at `head`; the first `flying` of the `count` records were sent and await
 * PUBACK (all QoS 1: a QoS 0 message leaves when written), the rest wait. The ring is made on first use, grows by
 * doubling up to `maxMessages` and goes once it empties after a burst. Packet ids are found without a map: the ids
 * from `nextId` on are handed out in turn, and the held ones are looked for only once per run of free ids.
 *
 * Its fields are public because Session's hot paths (publish, flush, the PUBACK) work on them directly: a call is
 * dear on XS, and those paths are this class's append, takeId and the removal of the oldest written out (publish
 * also saves a QoS 1 message in the store itself, under the key nextKey hands out: a frame less on the deepest
 * stack). Everything else (growth, removal from the middle, making room, the store's keys and its reload) is here.
 */
import { Decoder } from "./decode";
import { MqttError } from "./errors";
import { PUBLISH, type Packet, type QoS } from "./packets";
import type { OutboxStore } from "../host";

/** Completion of a publish: no error when the broker acknowledged it (QoS 1) or it was written (QoS 0). */
export type PublishCallback = (error?: MqttError) => void;

export interface OutboxOptions {
  /** Most messages held (queued and in flight together). Default 16. */
  maxMessages?: number;
  /** Most bytes of encoded packets held. Default 8 KB: an ESP8266 has about 32 KB of heap in all. */
  maxBytes?: number;
  /** Keeps QoS 1 messages across reboots. */
  store?: OutboxStore;
}

/** Where the outbox reports what fails without failing a call: a store entry it could not remove or read. */
export interface OutboxReport {
  error(error: MqttError): void;
}

/** An item of the ring: a record's packet, its callback or its flags. */
export type Item = Uint8Array | PublishCallback | number | undefined;

/**
 * Each message is a record of ITEMS consecutive items of `box`: its packet, its callback and its flags (the packet
 * id in the low 16 bits, QOS1 and SENT above).
 */
export const PACKET = 0,
  CALLBACK = 1,
  FLAGS = 2,
  ITEMS = 3;
export const QOS1 = 0x10000,
  SENT = 0x20000;
/** Records the ring starts with; it doubles as needed up to maxMessages, and shrinks back when it empties. */
export const FIRST_RECORDS = 2;
/** The ring of an outbox without records: never written (a message first makes a ring of its own). */
// Frozen: objects of a preloaded module live in flash, and the link checks that none is left writable.
const NO_RECORDS: Item[] = [];
Object.freeze(NO_RECORDS);
const NO_REQUESTS: readonly { id: number }[] = Object.freeze([]);

export class Outbox {
  box: Item[] = NO_RECORDS;
  /** The store key of each record (0: not persisted), with a persistent store only. */
  keys: number[] | null = null;
  /** Capacity of the ring, in records. */
  records = 0;
  head = 0;
  count = 0;
  flying = 0;
  /** Bytes of the packets held. */
  bytes = 0;
  nextId = 1;
  /** Packet ids from nextId on known to be unused. */
  idsFree = 0;
  nextKey = 1;
  readonly maxMessages: number;
  readonly maxBytes: number;
  readonly store: OutboxStore | undefined;

  constructor(options: OutboxOptions) {
    this.maxMessages = options.maxMessages ?? 16;
    this.maxBytes = options.maxBytes ?? 8192;
    this.store = options.store;
  }

  /** Index in `box` of the record of the `i`th message held (0 = the oldest). */
  record(i: number): number {
    const p = this.head + i;
    return (p < this.records ? p : p - this.records) * ITEMS;
  }

  /** The packet of the record at `r` (an index from record()). */
  packet(r: number): Uint8Array {
    return this.box[r + PACKET] as Uint8Array;
  }

  callback(r: number): PublishCallback | undefined {
    return this.box[r + CALLBACK] as PublishCallback | undefined;
  }

  flags(r: number): number {
    return this.box[r + FLAGS] as number;
  }

  /** Adds a message at the tail. */
  append(packet: Uint8Array, cb: PublishCallback | undefined, flags: number, key: number): void {
    if (this.count === this.records) this.grow();
    let p = this.head + this.count;
    if (p >= this.records) p -= this.records;
    p *= ITEMS;
    const box = this.box;
    box[p + PACKET] = packet;
    box[p + CALLBACK] = cb;
    box[p + FLAGS] = flags;
    if (this.keys) this.keys[p / ITEMS] = key;
    this.count++;
    this.bytes += packet.length;
  }

  /**
   * Makes room for one more record: the records move into a ring twice as large, up to maxMessages (or one more
   * than it holds), oldest first.
   */
  grow(): void {
    const records = Math.max(
      this.count + 1,
      Math.min(this.records ? this.records * 2 : FIRST_RECORDS, this.maxMessages),
    );
    const box: Item[] = [],
      old = this.box,
      oldKeys = this.keys,
      keys: number[] | null = this.store ? [] : null;
    for (let i = 0; i < records; i++) {
      if (i < this.count) {
        const r = this.record(i);
        box.push(old[r + PACKET], old[r + CALLBACK], old[r + FLAGS]);
        if (keys) keys.push(oldKeys ? oldKeys[r / ITEMS] : 0);
      } else {
        box.push(undefined, undefined, 0);
        if (keys) keys.push(0);
      }
    }
    this.box = box;
    this.keys = keys;
    this.records = records;
    this.head = 0;
  }

  /** The ring went with its last message: a ring grown for a burst goes, the next message makes a small one. */
  emptied(): void {
    this.head = 0;
    if (this.records > FIRST_RECORDS) {
      this.box = NO_RECORDS;
      this.keys = null;
      this.records = 0;
    }
  }

  /**
   * Takes the `i`th message out, closing the gap from the nearer end, and forgets its bytes and its store entry. The
   * caller fixes `flying` if it was in flight, and calls its callback.
   */
  remove(i: number, report: OutboxReport): void {
    const box = this.box,
      keys = this.keys;
    let p = this.head + i;
    if (p >= this.records) p -= this.records;
    p *= ITEMS;
    const packet = box[p + PACKET] as Uint8Array,
      key = keys ? keys[p / ITEMS] : 0;
    if (i === 0) this.head = this.head + 1 === this.records ? 0 : this.head + 1;
    else if (i < this.count - 1 - i) {
      // shift the older ones up by one record
      for (let k = i; k > 0; k--) {
        const q = this.record(k - 1);
        this.move(q, p);
        p = q;
      }
      this.head = this.head + 1 === this.records ? 0 : this.head + 1;
    } else {
      for (let k = i + 1; k < this.count; k++) {
        const q = this.record(k);
        this.move(q, p);
        p = q;
      }
    }
    box[p + PACKET] = box[p + CALLBACK] = undefined;
    this.count--;
    if (this.count === 0) {
      this.head = 0;
      if (this.records > FIRST_RECORDS) this.emptied();
    }
    this.bytes -= packet.length;
    if (key && this.store) {
      try {
        this.store.remove(key);
      } catch (err) {
        report.error(
          new MqttError(
            "STORE_FAILED",
            `could not remove an acknowledged message from the persistent outbox: ${String(err)}`,
            err,
          ),
        );
      }
    }
  }

  private move(from: number, to: number): void {
    const box = this.box;
    box[to + PACKET] = box[from + PACKET];
    box[to + CALLBACK] = box[from + CALLBACK];
    box[to + FLAGS] = box[from + FLAGS];
    if (this.keys) this.keys[to / ITEMS] = this.keys[from / ITEMS];
  }

  /**
   * Frees room for `n` bytes by dropping the oldest queued QoS 0 messages, or throws OUTBOX_FULL. Answers the
   * callbacks of the messages dropped, in order, for the caller to tell (null when none was dropped).
   */
  makeRoom(n: number, qos: QoS, report: OutboxReport): (PublishCallback | undefined)[] | null {
    let freeCount = this.maxMessages - this.count,
      freeBytes = this.maxBytes - this.bytes;
    if (freeCount >= 1 && freeBytes >= n) return null;
    if (n > this.maxBytes)
      throw new MqttError(
        "OUTBOX_FULL",
        `a ${n}-byte message is larger than the whole outbox (${this.maxBytes} bytes): raise outbox.maxBytes`,
      );
    // Would dropping queued QoS 0 messages make room? Count first, so nothing is dropped in vain.
    let last = -1;
    for (let i = this.flying; i < this.count && !(freeCount >= 1 && freeBytes >= n); i++) {
      const r = this.record(i);
      if (!(this.flags(r) & QOS1)) {
        freeCount++;
        freeBytes += this.packet(r).length;
        last = i;
      }
    }
    if (!(freeCount >= 1 && freeBytes >= n))
      throw new MqttError(
        "OUTBOX_FULL",
        `the outbox is full (${this.count} messages, ${this.bytes} bytes) with unacknowledged QoS 1 messages: ${qos ? "this QoS 1" : "the"} message was not queued`,
      );
    // Drop the oldest queued QoS 0 messages, up to and including index `last`.
    const dropped: (PublishCallback | undefined)[] = [];
    for (let i = this.flying; i <= last; ) {
      const r = this.record(i);
      if (this.flags(r) & QOS1) i++;
      else {
        dropped.push(this.callback(r));
        this.remove(i, report);
        last--;
      }
    }
    return dropped;
  }

  /** Empties the outbox (persisted messages stay in the store); answers the callbacks of what it held, in order. */
  clear(): (PublishCallback | undefined)[] {
    const cbs: (PublishCallback | undefined)[] = [];
    for (let i = 0; i < this.count; i++) cbs.push(this.callback(this.record(i)));
    this.box = NO_RECORDS;
    this.keys = null;
    this.records = this.head = this.count = this.flying = this.bytes = 0;
    return cbs;
  }

  /**
   * A packet id not held by a message nor by one of `requests` (the SUBSCRIBE and UNSUBSCRIBE awaiting their
   * answer): ids are handed out in turn, from nextId.
   */
  takeId(requests: readonly { id: number }[]): number {
    if (this.idsFree === 0) this.findIds(requests);
    this.idsFree--;
    const id = this.nextId;
    this.nextId = id === 65535 ? 1 : id + 1;
    return id;
  }

  /**
   * Finds how many ids from nextId on are unused: the distance to the nearest id held ahead of it. One pass over
   * the ids held, once per run of ids handed out (65535 of them while nothing stays in flight for long).
   */
  findIds(requests: readonly { id: number }[]): void {
    const c = this.nextId;
    let d = this.idDistance(c, requests);
    if (d === 0) {
      // Ids wrapped around to one still held: walk the held ids in order from nextId to the first gap.
      const held: number[] = [];
      for (let i = 0; i < this.count; i++) {
        const flags = this.flags(this.record(i));
        if (flags & QOS1) held.push(flags & 0xffff);
      }
      for (let i = 0; i < requests.length; i++) held.push(requests[i].id);
      if (held.length >= 65535) throw new MqttError("OUTBOX_FULL", "all 65535 packet identifiers are in use");
      held.sort((a, b) => ((a - c + 65535) % 65535) - ((b - c + 65535) % 65535));
      let id = c,
        k = 0;
      while (k < held.length && held[k] === id) {
        id = id === 65535 ? 1 : id + 1;
        k++;
      }
      this.nextId = id;
      d = k < held.length ? (held[k] - id + 65535) % 65535 : 65535 - held.length;
    }
    this.idsFree = d;
  }

  /** How many ids from `c` on (wrapping after 65535) are free before one that is held: 0 when `c` is held. */
  private idDistance(c: number, requests: readonly { id: number }[]): number {
    let d = 65535;
    for (let i = 0; i < this.count; i++) {
      const flags = this.flags(this.record(i));
      if (flags & QOS1) d = Math.min(d, ((flags & 0xffff) - c + 65535) % 65535);
    }
    for (let i = 0; i < requests.length; i++) d = Math.min(d, (requests[i].id - c + 65535) % 65535);
    return d;
  }

  /**
   * Reloads the QoS 1 messages of the persistent store, in key order, as sent (a resend sets DUP); an entry that is
   * not a QoS 1 PUBLISH, or whose id is already held, is reported, removed from the store and skipped.
   */
  restore(report: OutboxReport): void {
    const store = this.store;
    if (!store) return;
    let entries: { key: number; packet: Uint8Array }[];
    try {
      entries = store.load().sort((a, b) => a.key - b.key);
    } catch (err) {
      report.error(new MqttError("STORE_FAILED", `could not read the persistent outbox: ${String(err)}`, err));
      return;
    }
    const got: { p: Packet | undefined } = { p: undefined };
    const d = new Decoder((p) => (got.p = p), { maxPacketSize: 268435460 });
    for (let i = 0; i < entries.length; i++) {
      const { key, packet } = entries[i];
      got.p = undefined;
      try {
        d.reset();
        d.push(packet);
      } catch {
        got.p = undefined;
      }
      const found = got.p as Packet | undefined;
      if (
        !found ||
        found.type !== PUBLISH ||
        found.qos !== 1 ||
        this.idDistance(found.id as number, NO_REQUESTS) === 0
      ) {
        report.error(
          new MqttError("STORE_FAILED", `discarded an unreadable entry (key ${key}) from the persistent outbox`),
        );
        try {
          store.remove(key);
        } catch {
          /* reported above */
        }
        continue;
      }
      this.append(packet.slice(), undefined, (found.id as number) | QOS1 | SENT, key);
      if (key >= this.nextKey) this.nextKey = key + 1;
    }
    this.idsFree = 0; // look again before handing out an id
  }
}
