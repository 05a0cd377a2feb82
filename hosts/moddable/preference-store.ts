/**
 * The config store (secrets) and the persistent outbox on Moddable's `preference` module, within each chip's
 * limits. Both keep a value as one or more entries ("chunks") of at most `maxEntryBytes` bytes, the first one
 * starting with a 6-byte header: magic, generation, length (16 bits) and a CRC-16 of everything after it.
 *
 * `Preference.set` erases an entry before it writes the new one (modPreference.c, both chips), so overwriting a
 * value in place could lose it to a power cut. The config store therefore keeps two slots per key ("a" and "b"):
 * a new value is written whole into the slot not in use, read back, and only then is the old slot deleted; the
 * slot with the newer generation and a good CRC wins on reading. A cut at any point leaves the old value or the
 * new one, and a failed write (full) leaves the old one. The outbox writes each message once (header chunk last)
 * and removes it header first, so a cut leaves a whole message or none; load() sweeps what a cut left behind, and
 * hands back a damaged message (a header entry whose record does not check out) empty, for the client to report.
 *
 * Entries live in preference domains named `<domain><slot><chunk>` (config) and `<domain><chunk>` (outbox), the
 * key being the config key or the message's number in base 36, so every name stays within 15 characters (ESP32
 * NVS). No Moddable import here: the host hands in the `Preference` class (tests hand in a fake).
 */
import type { KeyValueStore, OutboxStore } from "../../src/host";
import { CONFIG_KEY_MAX_LENGTH, PREFERENCE_DOMAIN, isConfigKey } from "../../src/device/config-keys";
import { decodeUtf8, utf8Length, writeUtf8 } from "../../src/mqtt/utf8";

/** What `preference` offers (the SDK's Preference class has these static methods). */
export interface Preferences {
  get(domain: string, key: string): unknown;
  set(domain: string, key: string, value: ArrayBuffer): void;
  delete(domain: string, key: string): void;
  keys(domain: string): string[];
}

/** What one preference entry can hold on a chip (see chips.ts). */
export interface PreferenceLimits {
  /** Longest domain or key name. */
  maxName: number;
  /** Largest value of one entry, in bytes. */
  maxEntryBytes: number;
}

export type StoreErrorCode = "INVALID_KEY" | "INVALID_VALUE" | "VALUE_TOO_LARGE" | "FULL" | "WRITE_FAILED" | "CORRUPT";

/** Why a store refused or failed. Messages never contain a value. */
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  override cause?: unknown;
  /**
   * A class field, so it is defined on the instance: an assignment (`this.name = ...`) throws "set name: not
   * writable" on XS, whose linker freezes Error.prototype after preload.
   */
  override name = "StoreError";
  constructor(code: StoreErrorCode, message: string, cause?: unknown) {
    super(message);
    this.code = code;
    if (cause !== undefined) this.cause = cause;
  }
}

const HEADER = 6;
const KV_MAGIC = 0xc5;
const OUTBOX_MAGIC = 0xc6;
const DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz";

/** CRC-16/CCITT-FALSE. */
function crc16(bytes: Uint8Array, from: number, to: number, crc = 0xffff): number {
  for (let i = from; i < to; i++) {
    crc ^= bytes[i] << 8;
    for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

function chunkCount(length: number, size: number): number {
  return length + HEADER <= size ? 1 : 1 + Math.ceil((length + HEADER - size) / size);
}

/** The entries of one record: header and the first bytes, then the rest in entries of `size` bytes. */
function encodeRecord(magic: number, gen: number, data: Uint8Array, size: number): ArrayBuffer[] {
  const whole = new Uint8Array(HEADER + data.length);
  whole[0] = magic;
  whole[1] = gen & 0xff;
  whole[2] = data.length >> 8;
  whole[3] = data.length & 0xff;
  whole.set(data, HEADER);
  const crc = crc16(whole, HEADER, whole.length, crc16(whole, 1, 4));
  whole[4] = crc >> 8;
  whole[5] = crc & 0xff;
  const out: ArrayBuffer[] = [];
  for (let at = 0; at < whole.length; at += size) out.push(whole.buffer.slice(at, Math.min(at + size, whole.length)));
  return out;
}

function bytesOf(value: unknown): Uint8Array | undefined {
  return value instanceof ArrayBuffer ? new Uint8Array(value) : undefined;
}

type ReadResult = { gen: number; data: Uint8Array; chunks: number } | "absent" | "corrupt";

/** Reads a record whose entry i lives in domain `domain(i)` under `key`. */
function readRecord(
  prefs: Preferences,
  domain: (i: number) => string,
  key: string,
  magic: number,
  size: number,
  maxChunks: number,
): ReadResult {
  const first = bytesOf(prefs.get(domain(0), key));
  if (!first) return "absent";
  if (first.length < HEADER || first[0] !== magic) return "corrupt";
  const length = (first[2] << 8) | first[3];
  const chunks = chunkCount(length, size);
  if (chunks > maxChunks) return "corrupt";
  const whole = new Uint8Array(HEADER + length);
  let at = 0;
  for (let i = 0; i < chunks; i++) {
    const part = i === 0 ? first : bytesOf(prefs.get(domain(i), key));
    const expect = Math.min(size, whole.length - at);
    if (!part || part.length !== expect) return "corrupt";
    whole.set(part, at);
    at += expect;
  }
  const crc = crc16(whole, HEADER, whole.length, crc16(whole, 1, 4));
  if (crc !== ((whole[4] << 8) | whole[5])) return "corrupt";
  return { gen: whole[1], data: whole.subarray(HEADER), chunks };
}

function remove(prefs: Preferences, domain: (i: number) => string, key: string, chunks: number): void {
  for (let i = 0; i < chunks; i++) prefs.delete(domain(i), key); // the header entry first: the record is gone at once
}

function checkDomain(domain: string, suffix: number, limits: PreferenceLimits, what: string): void {
  const max = Math.min(CONFIG_KEY_MAX_LENGTH, limits.maxName);
  if (typeof domain !== "string" || !/^[a-z0-9_]+$/.test(domain) || domain.length + suffix > max)
    throw new StoreError(
      "INVALID_KEY",
      `the ${what} domain ${JSON.stringify(domain)} must be lowercase letters, digits or _ and at most ${max - suffix} characters`,
    );
}

export interface PreferenceStoreOptions {
  /** Preference domain prefix (default PREFERENCE_DOMAIN); entries use `<domain>a0`, `<domain>b0`, `<domain>a1`, ... */
  domain?: string;
  limits: PreferenceLimits;
  /** Largest value in UTF-8 bytes. */
  maxValueBytes: number;
}

/**
 * A KeyValueStore for configuration and secrets. Keys: isConfigKey's rule (src/device/config-keys.ts, the same
 * for every host). Values: strings of at most `maxValueBytes` UTF-8 bytes.
 */
export class PreferenceStore implements KeyValueStore {
  private readonly prefs: Preferences;
  private readonly domain: string;
  private readonly size: number;
  private readonly maxValue: number;
  private readonly maxChunks: number;

  constructor(prefs: Preferences, options: PreferenceStoreOptions) {
    this.prefs = prefs;
    this.domain = options.domain ?? PREFERENCE_DOMAIN;
    checkDomain(this.domain, 2, options.limits, "config store");
    this.size = options.limits.maxEntryBytes;
    this.maxValue = options.maxValueBytes;
    this.maxChunks = chunkCount(this.maxValue, this.size);
    if (this.size <= HEADER || this.maxChunks > DIGITS.length)
      throw new StoreError("INVALID_VALUE", "the config store's limits leave no room for a value");
  }

  get(key: string): string | undefined {
    this.checkKey(key);
    const current = this.current(key);
    if (current === undefined) return undefined;
    try {
      return decodeUtf8(current.data, 0, current.data.length);
    } catch (e) {
      throw new StoreError("CORRUPT", `the stored value of "${key}" is not text`, e);
    }
  }

  set(key: string, value: string): void {
    this.checkKey(key);
    if (typeof value !== "string") throw new StoreError("INVALID_VALUE", `the value for "${key}" must be a string`);
    let length: number;
    try {
      length = utf8Length(value, true);
    } catch (e) {
      throw new StoreError("INVALID_VALUE", `the value for "${key}" is not valid text (a lone UTF-16 surrogate)`, e);
    }
    if (length > this.maxValue)
      throw new StoreError(
        "VALUE_TOO_LARGE",
        `the value for "${key}" is ${length} bytes, over this device's limit of ${this.maxValue}`,
      );
    const data = new Uint8Array(length);
    writeUtf8(value, data, 0);

    const a = this.read(key, "a"),
      b = this.read(key, "b");
    let cur: "a" | "b" | undefined;
    try {
      cur = this.pick(key, a, b);
    } catch {
      cur = undefined; // only damage is stored: the new value replaces it
    }
    const slot = cur === "a" ? "b" : "a";
    const stale = slot === "a" ? a : b;
    const old = cur === "a" ? a : cur === "b" ? b : undefined;
    const gen = typeof old === "object" ? old.gen + 1 : 0;
    const prefs = this.prefs;
    const dom = this.dom(slot);
    try {
      remove(prefs, dom, key, typeof stale === "object" ? stale.chunks : this.maxChunks);
      const chunks = encodeRecord(KV_MAGIC, gen, data, this.size);
      for (let i = chunks.length - 1; i >= 0; i--) prefs.set(dom(i), key, chunks[i]); // the header entry last
    } catch (e) {
      this.cleanup(dom, key);
      throw new StoreError(
        "WRITE_FAILED",
        `could not store "${key}" (${message(e)}): the preference storage may be full; the previous value is kept`,
        e,
      );
    }
    const back = readRecord(prefs, dom, key, KV_MAGIC, this.size, this.maxChunks);
    if (typeof back !== "object" || back.gen !== (gen & 0xff) || !same(back.data, data)) {
      this.cleanup(dom, key);
      throw new StoreError("WRITE_FAILED", `"${key}" did not read back as written: the previous value is kept`);
    }
    if (typeof old === "object") {
      try {
        remove(prefs, this.dom(cur as string), key, old.chunks);
      } catch {
        // Both slots hold a whole value now; the newer generation wins until the next set cleans up.
      }
    }
  }

  delete(key: string): void {
    this.checkKey(key);
    const prefs = this.prefs;
    try {
      for (const slot of ["a", "b"]) prefs.delete(this.dom(slot)(0), key); // both headers first
      for (const slot of ["a", "b"]) for (let i = 1; i < this.maxChunks; i++) prefs.delete(this.dom(slot)(i), key);
    } catch (e) {
      throw new StoreError("WRITE_FAILED", `could not delete "${key}" (${message(e)})`, e);
    }
  }

  private dom(slot: string): (i: number) => string {
    const base = this.domain + slot;
    return (i) => base + DIGITS[i];
  }

  private read(key: string, slot: string): ReadResult {
    try {
      return readRecord(this.prefs, this.dom(slot), key, KV_MAGIC, this.size, this.maxChunks);
    } catch (e) {
      throw new StoreError("CORRUPT", `could not read "${key}" from the preference storage (${message(e)})`, e);
    }
  }

  /** The slot holding the current value, or undefined when there is none; throws CORRUPT when only damage is left. */
  private pick(key: string, a: ReadResult, b: ReadResult): "a" | "b" | undefined {
    if (typeof a === "object" && typeof b === "object") {
      const d = (a.gen - b.gen) & 0xff;
      return d > 0 && d < 128 ? "a" : "b";
    }
    if (typeof a === "object") return "a";
    if (typeof b === "object") return "b";
    if (a === "corrupt" || b === "corrupt")
      throw new StoreError(
        "CORRUPT",
        `the stored value of "${key}" is damaged (its checksum does not match): it cannot be read; set it again`,
      );
    return undefined;
  }

  private current(key: string): { gen: number; data: Uint8Array } | undefined {
    const a = this.read(key, "a"),
      b = this.read(key, "b");
    const slot = this.pick(key, a, b);
    return slot === "a"
      ? (a as { gen: number; data: Uint8Array })
      : slot === "b"
        ? (b as { gen: number; data: Uint8Array })
        : undefined;
  }

  private cleanup(dom: (i: number) => string, key: string): void {
    try {
      remove(this.prefs, dom, key, this.maxChunks);
    } catch {
      // best effort: a half-written slot without its header entry is never read
    }
  }

  private checkKey(key: string): void {
    if (!isConfigKey(key))
      throw new StoreError(
        "INVALID_KEY",
        `a config key must be 1 to ${CONFIG_KEY_MAX_LENGTH} printable ASCII characters without spaces (ESP32 NVS names), not ${JSON.stringify(String(key)).slice(0, 40)}`,
      );
  }
}

function same(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export interface PreferenceOutboxOptions {
  /** Preference domain prefix (default "obx"); entries use `<domain>0`, `<domain>1`, ... */
  domain?: string;
  limits: PreferenceLimits;
  /** Most messages kept. */
  maxMessages: number;
  /** Most bytes of encoded packets kept, all messages together (also the largest one message). */
  maxBytes: number;
}

/** An OutboxStore on `preference`: QoS 1 messages survive a reboot, within `maxMessages` and `maxBytes`. */
export class PreferenceOutboxStore implements OutboxStore {
  private readonly prefs: Preferences;
  private readonly domain: string;
  private readonly size: number;
  private readonly maxMessages: number;
  private readonly maxBytes: number;
  private readonly maxChunks: number;
  /** Bytes of each stored message, by key; undefined until the first load. */
  private held: Map<number, number> | undefined;
  private bytes = 0;

  constructor(prefs: Preferences, options: PreferenceOutboxOptions) {
    this.prefs = prefs;
    this.domain = options.domain ?? "obx";
    checkDomain(this.domain, 1, options.limits, "outbox");
    this.size = options.limits.maxEntryBytes;
    this.maxMessages = options.maxMessages;
    this.maxBytes = options.maxBytes;
    this.maxChunks = Math.min(DIGITS.length, chunkCount(this.maxBytes, this.size));
  }

  /** Limits and use, for logs. */
  get usage(): { messages: number; bytes: number; maxMessages: number; maxBytes: number } {
    const held = this.ensure();
    return { messages: held.size, bytes: this.bytes, maxMessages: this.maxMessages, maxBytes: this.maxBytes };
  }

  load(): { key: number; packet: Uint8Array }[] {
    const out: { key: number; packet: Uint8Array }[] = [];
    const held = new Map<number, number>();
    let bytes = 0;
    const dom = this.dom;
    const heads = this.keys(dom(0));
    const whole = new Set<string>();
    for (const name of heads) {
      const key = parseInt(name, 36);
      const named = Number.isSafeInteger(key) && key >= 0 && key.toString(36) === name;
      const r = named ? readRecord(this.prefs, dom, name, OUTBOX_MAGIC, this.size, this.maxChunks) : "corrupt";
      if (typeof r === "object") {
        out.push({ key, packet: r.data.slice() });
        held.set(key, r.data.length);
        bytes += r.data.length;
        whole.add(name);
        continue;
      }
      // Damage (a save writes the header entry last and a remove deletes it first, so a power cut never leaves a
      // header without its whole message): never half a packet, nor a packet with a flipped bit. Its entries go, and
      // it comes back empty so the client reports it (STORE_FAILED, "discarded an unreadable entry"), as it does
      // for the Node host's file outbox; with key -1 when not even its name is a key this store writes.
      this.forget(name);
      out.push({ key: named ? key : -1, packet: new Uint8Array(0) });
    }
    // Entries after the first of messages whose header entry is gone (a cut during save or remove).
    for (let i = 1; i < this.maxChunks; i++)
      for (const name of this.keys(dom(i))) if (!whole.has(name)) this.forget(name, i);
    this.held = held;
    this.bytes = bytes;
    return out;
  }

  save(key: number, packet: Uint8Array): void {
    const held = this.ensure();
    if (!Number.isSafeInteger(key) || key < 0)
      throw new StoreError("INVALID_KEY", `an outbox key must be a non-negative integer, not ${String(key)}`);
    const name = key.toString(36);
    const prior = held.get(key) ?? 0;
    if (packet.length > this.maxBytes)
      throw new StoreError(
        "VALUE_TOO_LARGE",
        `a ${packet.length}-byte message is over the persistent outbox's limit of ${this.maxBytes} bytes on this device`,
      );
    if (prior === 0 && held.size >= this.maxMessages)
      throw new StoreError("FULL", `the persistent outbox holds ${held.size} messages, its limit on this device`);
    if (this.bytes - prior + packet.length > this.maxBytes)
      throw new StoreError(
        "FULL",
        `the persistent outbox holds ${this.bytes} of ${this.maxBytes} bytes: no room for ${packet.length} more`,
      );
    const dom = this.dom;
    try {
      if (held.has(key)) this.forget(name);
      const chunks = encodeRecord(OUTBOX_MAGIC, 0, packet, this.size);
      for (let i = chunks.length - 1; i >= 0; i--) this.prefs.set(dom(i), name, chunks[i]); // the header entry last
    } catch (e) {
      held.delete(key);
      this.bytes -= prior;
      try {
        this.forget(name);
      } catch {
        // best effort: load() sweeps entries without a header
      }
      throw new StoreError(
        "WRITE_FAILED",
        `could not store an outbox message (${message(e)}): the preference storage may be full`,
        e,
      );
    }
    held.set(key, packet.length);
    this.bytes += packet.length - prior;
  }

  remove(key: number): void {
    const held = this.ensure();
    const length = held.get(key);
    if (length === undefined) return;
    const name = key.toString(36);
    try {
      remove(this.prefs, this.dom, name, chunkCount(length, this.size));
    } catch (e) {
      throw new StoreError("WRITE_FAILED", `could not remove an outbox message (${message(e)})`, e);
    }
    held.delete(key);
    this.bytes -= length;
  }

  private readonly dom = (i: number): string => this.domain + DIGITS[i];

  private ensure(): Map<number, number> {
    if (!this.held) this.load();
    return this.held as Map<number, number>;
  }

  private keys(domain: string): string[] {
    try {
      return this.prefs.keys(domain);
    } catch (e) {
      throw new StoreError("CORRUPT", `could not list the persistent outbox (${message(e)})`, e);
    }
  }

  private forget(name: string, from = 0): void {
    for (let i = from; i < this.maxChunks; i++) this.prefs.delete(this.dom(i), name);
  }
}
