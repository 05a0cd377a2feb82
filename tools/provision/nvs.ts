// An ESP32 NVS partition image writer, in ESP-IDF's documented format (components/nvs_flash, "NVS internals"), so a
// device can be provisioned by flashing one file at the NVS partition's offset. What it writes, exactly:
//
// - Pages of 4096 bytes. A used page: a 32-byte header (state u32, sequence number u32, version u8 = 0xFE for
//   format version 2, 19 bytes 0xFF, CRC32 of bytes 4..27), a 32-byte entry state bitmap (2 bits per entry,
//   little-endian: 11 empty, 10 written, 00 erased), then 126 entries of 32 bytes. Pages are filled in order with
//   sequence numbers 0, 1, 2 ...; every used page is FULL (0xFFFFFFFC) but the last one, which is ACTIVE
//   (0xFFFFFFFE) so the device goes on writing into it; every page after it is left erased (0xFF), and at least one
//   is (ESP-IDF's nvs_flash_init fails with ESP_ERR_NVS_NO_FREE_PAGES without one, and Moddable's main.c
//   ESP_ERROR_CHECKs it). That is also the layout of ESP-IDF's own generator (esp-idf-nvs-partition-gen).
// - An entry: namespace index u8, type u8, span u8 (entries the item uses), chunk index u8 (0xFF unless blob data),
//   CRC32 u32 of the entry's bytes 0..3 and 8..31, key (at most 15 ASCII characters, NUL-padded to 16 bytes), and
//   8 bytes of data: a primitive value (little-endian, padded with 0xFF); or, for strings and blob data, size u16,
//   0xFFFF, CRC32 u32 of the data, the data following in the next span-1 entries (the last one padded with 0xFF);
//   or, for a blob index, total size u32, chunk count u8, chunk start u8 (0), 0xFFFF.
// - Namespaces: an entry in namespace 0 of type U8 whose key is the namespace's name and whose value is its index
//   (1..254), written before the namespace's first item.
// - Strings (SZ, 0x21) hold UTF-8 and a NUL, 4000 bytes at most in all, in one page. Blobs are written as ESP-IDF
//   v4+ does: one or more BLOB_DATA (0x42) chunks, chunk indexes 0, 1, ... (each within one page, split where a
//   page ends), then one BLOB_IDX (0x48).
// - CRC32 is ESP-IDF's esp_rom_crc32_le(0xFFFFFFFF, ...): the reflected 0xEDB88320 polynomial with the register
//   inverted on entry and exit, so starting from 0xFFFFFFFF means an initial register of 0 — the same number as
//   zlib's crc32(data, 0xFFFFFFFF), which is what the generator computes (not the usual CRC-32, which starts at 0).
//
// Error messages name keys and namespaces and sizes, never a value: values are device secrets.
import { CONFIG_VALUE_MAX_BYTES } from "../../src/device/config-keys";

/** A page: one flash sector. */
export const NVS_PAGE_SIZE = 4096;
export const NVS_ENTRY_SIZE = 32;
/** Entries per page after the header and the state bitmap. */
export const NVS_ENTRY_COUNT = 126;
/** Longest key or namespace name (the 16-byte field keeps a NUL). */
export const NVS_MAX_KEY_LENGTH = 15;
/** Largest string, its terminating NUL included (Page::CHUNK_MAX_SIZE, 125 entries of 32 bytes). */
export const NVS_MAX_STRING_BYTES = 4000;
/**
 * The NVS partition of the Moddable SDK's default ESP32 partition table (build/devices/esp32/xsProj-esp32/
 * partitions.csv, also the esp32s2, s3, c3, c6 and h2 tables): `nvs, data, nvs, 0x9000, 0x006000`.
 */
export const MODDABLE_ESP32_NVS = { offset: 0x9000, size: 0x6000 } as const;

const HEADER_SIZE = 32;
const BITMAP_OFFSET = 32;
const FIRST_ENTRY_OFFSET = 64;
const STATE_ACTIVE = 0xfffffffe;
const STATE_FULL = 0xfffffffc;
const FORMAT_VERSION_2 = 0xfe;
const CHUNK_ANY = 0xff;

/** ESP-IDF ItemType codes. */
export const NvsType = {
  U8: 0x01,
  I8: 0x11,
  U16: 0x02,
  I16: 0x12,
  U32: 0x04,
  I32: 0x14,
  SZ: 0x21,
  BLOB: 0x41,
  BLOB_DATA: 0x42,
  BLOB_IDX: 0x48,
} as const;

export type NvsIntType = "u8" | "i8" | "u16" | "i16" | "u32" | "i32";

export type NvsValue =
  | { type: NvsIntType; value: number }
  | { type: "string"; value: string }
  | { type: "blob"; value: Uint8Array };

export interface NvsItem {
  namespace: string;
  key: string;
  value: NvsValue;
}

export interface NvsImageOptions {
  /** Partition size in bytes, a multiple of 4096 (default 0x6000, Moddable's ESP32 default). */
  size?: number;
  /** Largest blob accepted (default CONFIG_VALUE_MAX_BYTES, Moddable's `preference` limit on ESP32). */
  maxBlobBytes?: number;
  /** Pages left erased at the end, at least 1 (default 1, what ESP-IDF needs to start). */
  freePages?: number;
}

export interface NvsImage {
  image: Uint8Array;
  /** Pages with a header (the rest are erased). */
  pagesUsed: number;
  /** Entries written, over all pages. */
  entriesUsed: number;
  /** Namespace name -> index. */
  namespaces: Map<string, number>;
}

export type NvsErrorCode =
  | "INVALID_NAME"
  | "INVALID_VALUE"
  | "VALUE_TOO_LARGE"
  | "DUPLICATE_KEY"
  | "TOO_MANY_NAMESPACES"
  | "PARTITION_FULL"
  | "INVALID_SIZE";

export class NvsError extends Error {
  readonly code: NvsErrorCode;
  constructor(code: NvsErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = "NvsError";
  }
}

// ---- CRC32 as ESP-IDF computes it ----

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** esp_rom_crc32_le(crc, bytes[from..to)): inverts on entry and exit, so calls chain. */
export function crc32le(crc: number, bytes: Uint8Array, from = 0, to = bytes.length): number {
  let c = ~crc >>> 0;
  for (let i = from; i < to; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// ---- names and values ----

function checkName(name: unknown, what: string): Uint8Array {
  if (typeof name !== "string" || name.length === 0)
    throw new NvsError("INVALID_NAME", `an NVS ${what} must be a non-empty string`);
  if (name.length > NVS_MAX_KEY_LENGTH)
    throw new NvsError(
      "INVALID_NAME",
      `the NVS ${what} "${name}" has ${name.length} characters; NVS allows at most ${NVS_MAX_KEY_LENGTH}`,
    );
  const out = new Uint8Array(name.length);
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x21 || c > 0x7e)
      throw new NvsError(
        "INVALID_NAME",
        `the NVS ${what} ${JSON.stringify(name)} must be printable ASCII without spaces (character ${i + 1} is not)`,
      );
    out[i] = c;
  }
  return out;
}

const INT_RANGE: Record<NvsIntType, [number, number, number, number]> = {
  // type code, bytes, min, max
  u8: [NvsType.U8, 1, 0, 0xff],
  i8: [NvsType.I8, 1, -0x80, 0x7f],
  u16: [NvsType.U16, 2, 0, 0xffff],
  i16: [NvsType.I16, 2, -0x8000, 0x7fff],
  u32: [NvsType.U32, 4, 0, 0xffffffff],
  i32: [NvsType.I32, 4, -0x80000000, 0x7fffffff],
};

function utf8(text: string, where: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff)
      throw new NvsError("INVALID_VALUE", `the string ${where} is not valid text (a lone UTF-16 surrogate)`);
    if (c === 0)
      throw new NvsError("INVALID_VALUE", `the string ${where} contains a NUL character, which ends an NVS string`);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return Uint8Array.from(out);
}

// ---- pages ----

class PageWriter {
  readonly buf = new Uint8Array(NVS_PAGE_SIZE).fill(0xff);
  next = 0;

  constructor(readonly seq: number) {}

  get free(): number {
    return NVS_ENTRY_COUNT - this.next;
  }

  /** Writes 32 bytes (an item header or data) at the next entry and marks it written. */
  put(entry: Uint8Array): void {
    this.buf.set(entry, FIRST_ENTRY_OFFSET + this.next * NVS_ENTRY_SIZE);
    const bit = this.next * 2; // 0b11 -> 0b10: clear the low bit of the entry's pair
    this.buf[BITMAP_OFFSET + (bit >> 3)] &= ~(1 << (bit & 7));
    this.next++;
  }

  /** The header with `state`; its CRC covers bytes 4..27 (not the state, which changes in place). */
  seal(state: number): void {
    const h = new DataView(this.buf.buffer, 0, HEADER_SIZE);
    h.setUint32(0, state, true);
    h.setUint32(4, this.seq, true);
    this.buf[8] = FORMAT_VERSION_2;
    h.setUint32(28, crc32le(0xffffffff, this.buf, 4, 28), true);
  }
}

/** An item header entry (32 bytes) with its CRC; `data` fills bytes 24..31. */
function itemHeader(
  ns: number,
  type: number,
  span: number,
  chunk: number,
  key: Uint8Array,
  data: Uint8Array,
): Uint8Array {
  const e = new Uint8Array(NVS_ENTRY_SIZE).fill(0xff);
  e[0] = ns;
  e[1] = type;
  e[2] = span;
  e[3] = chunk;
  e.fill(0, 8, 24);
  e.set(key, 8);
  e.set(data, 24);
  const crc = crc32le(crc32le(0xffffffff, e, 0, 4), e, 8, 32);
  new DataView(e.buffer).setUint32(4, crc, true);
  return e;
}

/** The 8 data bytes of a string or blob-data header: size u16, 0xFFFF, CRC32 of the data. */
function varLength(bytes: Uint8Array, from: number, to: number): Uint8Array {
  const d = new Uint8Array(8).fill(0xff);
  const v = new DataView(d.buffer);
  v.setUint16(0, to - from, true);
  v.setUint32(4, crc32le(0xffffffff, bytes, from, to), true);
  return d;
}

function entriesFor(bytes: number): number {
  return Math.ceil(bytes / NVS_ENTRY_SIZE);
}

class ImageWriter {
  readonly pages: PageWriter[] = [];
  readonly namespaces = new Map<string, number>();
  readonly seen = new Set<string>();
  entries = 0;

  constructor(
    readonly maxPages: number,
    readonly maxBlob: number,
  ) {
    this.pages.push(new PageWriter(0));
  }

  private get page(): PageWriter {
    return this.pages[this.pages.length - 1];
  }

  private newPage(what: string): PageWriter {
    if (this.pages.length >= this.maxPages)
      throw new NvsError(
        "PARTITION_FULL",
        `the NVS image is full at ${what}: ${this.maxPages} page(s) of ${NVS_PAGE_SIZE} bytes may be used (the rest must stay erased for NVS to start); store less or use a larger partition`,
      );
    const p = new PageWriter(this.pages.length);
    this.pages.push(p);
    return p;
  }

  /** A page with `n` free entries: the current one, or a new one. */
  private room(n: number, what: string): PageWriter {
    return this.page.free >= n ? this.page : this.newPage(what);
  }

  /** Writes data bytes [from, to) into the page's next entries, the last padded with 0xFF. */
  private putData(page: PageWriter, bytes: Uint8Array, from: number, to: number): void {
    for (let at = from; at < to; at += NVS_ENTRY_SIZE) {
      const e = new Uint8Array(NVS_ENTRY_SIZE).fill(0xff);
      e.set(bytes.subarray(at, Math.min(at + NVS_ENTRY_SIZE, to)));
      page.put(e);
    }
    this.entries += entriesFor(to - from);
  }

  private namespaceIndex(name: string): number {
    let index = this.namespaces.get(name);
    if (index !== undefined) return index;
    const key = checkName(name, "namespace");
    index = this.namespaces.size + 1;
    if (index > 254) throw new NvsError("TOO_MANY_NAMESPACES", "an NVS partition holds at most 254 namespaces");
    const data = new Uint8Array(8).fill(0xff);
    data[0] = index;
    this.room(1, `namespace "${name}"`).put(itemHeader(0, NvsType.U8, 1, CHUNK_ANY, key, data));
    this.entries++;
    this.namespaces.set(name, index);
    return index;
  }

  add(item: NvsItem): void {
    if (!item || typeof item !== "object")
      throw new NvsError("INVALID_VALUE", "an NVS item must be { namespace, key, value }");
    const where = `"${String(item.namespace)}/${String(item.key)}"`;
    const key = checkName(item.key, "key");
    checkName(item.namespace, "namespace");
    const id = `${item.namespace}\u0000${item.key}`;
    if (this.seen.has(id)) throw new NvsError("DUPLICATE_KEY", `the key ${where} is given twice`);
    this.seen.add(id);
    const ns = this.namespaceIndex(item.namespace);
    const v = item.value;
    if (!v || typeof v !== "object")
      throw new NvsError("INVALID_VALUE", `the value of ${where} must be { type, value }`);
    if (v.type === "string") return this.addString(ns, key, v.value, where);
    if (v.type === "blob") return this.addBlob(ns, key, v.value, where);
    const range = INT_RANGE[v.type as NvsIntType];
    if (!range)
      throw new NvsError(
        "INVALID_VALUE",
        `the value of ${where} has an unknown type ${JSON.stringify(String((v as { type: unknown }).type))}`,
      );
    const [code, size, min, max] = range;
    if (!Number.isInteger(v.value) || v.value < min || v.value > max)
      throw new NvsError(
        "INVALID_VALUE",
        `the value of ${where} is not a ${v.type} (an integer from ${min} to ${max})`,
      );
    const data = new Uint8Array(8).fill(0xff);
    const dv = new DataView(data.buffer);
    if (size === 1) data[0] = v.value & 0xff;
    else if (size === 2) dv.setUint16(0, v.value & 0xffff, true);
    else dv.setUint32(0, v.value >>> 0, true);
    this.room(1, `key ${where}`).put(itemHeader(ns, code, 1, CHUNK_ANY, key, data));
    this.entries++;
  }

  private addString(ns: number, key: Uint8Array, text: unknown, where: string): void {
    if (typeof text !== "string") throw new NvsError("INVALID_VALUE", `the value of ${where} must be a string`);
    const body = utf8(text, `value of ${where}`);
    const bytes = new Uint8Array(body.length + 1); // and the NUL
    bytes.set(body);
    if (bytes.length > NVS_MAX_STRING_BYTES)
      throw new NvsError(
        "VALUE_TOO_LARGE",
        `the string ${where} is ${bytes.length} bytes with its NUL, over NVS's limit of ${NVS_MAX_STRING_BYTES}`,
      );
    const span = 1 + entriesFor(bytes.length);
    const page = this.room(span, `key ${where}`);
    page.put(itemHeader(ns, NvsType.SZ, span, CHUNK_ANY, key, varLength(bytes, 0, bytes.length)));
    this.entries++;
    this.putData(page, bytes, 0, bytes.length);
  }

  private addBlob(ns: number, key: Uint8Array, bytes: unknown, where: string): void {
    if (!(bytes instanceof Uint8Array))
      throw new NvsError("INVALID_VALUE", `the value of ${where} must be bytes (Uint8Array)`);
    if (bytes.length > this.maxBlob)
      throw new NvsError(
        "VALUE_TOO_LARGE",
        `the blob ${where} is ${bytes.length} bytes, over the limit of ${this.maxBlob} (Moddable's preference values on ESP32 hold at most ${CONFIG_VALUE_MAX_BYTES})`,
      );
    let chunks = 0;
    let at = 0;
    do {
      // A chunk needs its header entry and at least one data entry (or none for an empty blob).
      let page = this.page;
      if (page.free < (bytes.length === 0 ? 1 : 2)) page = this.newPage(`key ${where}`);
      const room = (page.free - 1) * NVS_ENTRY_SIZE;
      const end = Math.min(bytes.length, at + room);
      const span = 1 + entriesFor(end - at);
      if (chunks >= 127) throw new NvsError("VALUE_TOO_LARGE", `the blob ${where} needs more than 127 chunks`);
      page.put(itemHeader(ns, NvsType.BLOB_DATA, span, chunks, key, varLength(bytes, at, end)));
      this.entries++;
      this.putData(page, bytes, at, end);
      chunks++;
      at = end;
    } while (at < bytes.length);
    const index = new Uint8Array(8).fill(0xff);
    new DataView(index.buffer).setUint32(0, bytes.length, true);
    index[4] = chunks;
    index[5] = 0; // chunk start: version 0
    this.room(1, `key ${where}`).put(itemHeader(ns, NvsType.BLOB_IDX, 1, CHUNK_ANY, key, index));
    this.entries++;
  }
}

/**
 * An NVS partition image holding `items`, in the order given (each namespace's entry before its first item).
 * Throws NvsError: INVALID_NAME (key or namespace empty, over 15 characters, not printable ASCII), INVALID_VALUE,
 * VALUE_TOO_LARGE (a string over 4000 bytes with its NUL, a blob over `maxBlobBytes`), DUPLICATE_KEY,
 * TOO_MANY_NAMESPACES, PARTITION_FULL (it would leave fewer than `freePages` erased pages), INVALID_SIZE.
 */
export function buildNvsImage(items: readonly NvsItem[], options: NvsImageOptions = {}): NvsImage {
  const size = options.size ?? MODDABLE_ESP32_NVS.size;
  const freePages = options.freePages ?? 1;
  if (!Number.isInteger(size) || size <= 0 || size % NVS_PAGE_SIZE !== 0)
    throw new NvsError(
      "INVALID_SIZE",
      `the NVS partition size must be a positive multiple of ${NVS_PAGE_SIZE} bytes, not ${String(size)}`,
    );
  if (!Number.isInteger(freePages) || freePages < 1)
    throw new NvsError(
      "INVALID_SIZE",
      "at least one NVS page must stay erased: ESP-IDF cannot start without a free page",
    );
  const pageCount = size / NVS_PAGE_SIZE;
  if (pageCount - freePages < 1)
    throw new NvsError(
      "INVALID_SIZE",
      `a partition of ${pageCount} page(s) leaves no page for data once ${freePages} stay erased (ESP-IDF wants at least 0x3000 bytes)`,
    );
  const w = new ImageWriter(pageCount - freePages, options.maxBlobBytes ?? CONFIG_VALUE_MAX_BYTES);
  for (const item of items) w.add(item);

  const image = new Uint8Array(size).fill(0xff);
  const used = w.entries === 0 ? 0 : w.pages.length;
  for (let i = 0; i < used; i++) {
    const page = w.pages[i];
    page.seal(i === used - 1 ? STATE_ACTIVE : STATE_FULL);
    image.set(page.buf, i * NVS_PAGE_SIZE);
  }
  return { image, pagesUsed: used, entriesUsed: w.entries, namespaces: new Map(w.namespaces) };
}
