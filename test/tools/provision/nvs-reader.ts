// An ESP32 NVS partition reader for the tests, written from ESP-IDF's description of the format (nvs_flash
// README "Internals", nvs_page.cpp load/mLoadEntryTable, nvs_types.cpp Item::checkHeaderConsistency,
// nvs_storage.cpp init), separately from the writer in tools/provision/nvs.ts: it shares no code with it and
// computes CRC32 with node:zlib (`crc32(data, 0xFFFFFFFF)`, exactly what ESP-IDF's nvs_partition_gen.py does).
// It is strict: anything ESP-IDF would skip, erase or refuse on load is an error here, with the page and entry.
import { crc32 } from "node:zlib";

export type PageState = "EMPTY" | "ACTIVE" | "FULL" | "FREEING";

export interface PageInfo {
  index: number;
  state: PageState;
  seq?: number;
  version?: number;
  /** Entries whose bitmap state is "written". */
  written: number;
}

export type ReadValue =
  | { type: "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "u64" | "i64"; value: number | bigint }
  | { type: "string"; value: string; bytes: Uint8Array }
  | { type: "blob"; value: Uint8Array; chunks: number; legacy?: boolean };

export interface NvsContents {
  pages: PageInfo[];
  /** name -> index */
  namespaces: Map<string, number>;
  /** namespace name -> key -> value */
  values: Map<string, Map<string, ReadValue>>;
  /** Every item header seen, in flash order: what tests inspect for layout. */
  items: { page: number; entry: number; ns: number; type: number; span: number; chunk: number; key: string }[];
}

export class NvsReadError extends Error {}

const PAGE = 4096;
const ENTRIES = 126;
const E = 32;

const TYPES: Record<number, string> = {
  0x01: "u8",
  0x11: "i8",
  0x02: "u16",
  0x12: "i16",
  0x04: "u32",
  0x14: "i32",
  0x08: "u64",
  0x18: "i64",
  0x21: "SZ",
  0x41: "BLOB",
  0x42: "BLOB_DATA",
  0x48: "BLOB_IDX",
};

function le32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

function le16(b: Uint8Array, at: number): number {
  return b[at] | (b[at + 1] << 8);
}

/** CRC32 over the concatenation of `parts`, NVS style. */
function nvsCrc(...parts: Uint8Array[]): number {
  let total = 0;
  for (const p of parts) total += p.length;
  const all = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return crc32(all, 0xffffffff) >>> 0;
}

function fail(message: string): never {
  throw new NvsReadError(message);
}

/** 2-bit state of entry `i` in the bitmap: 3 empty, 2 written, 0 erased, 1 illegal. */
function entryState(page: Uint8Array, i: number): number {
  const word = le32(page, 32 + Math.floor(i / 16) * 4);
  return (word >>> ((i % 16) * 2)) & 3;
}

function keyOf(entry: Uint8Array, where: string): string {
  const raw = entry.subarray(8, 24);
  const nul = raw.indexOf(0);
  if (nul < 1 || nul > 15) fail(`${where}: the key is not 1..15 characters and a NUL`);
  for (let i = nul; i < 16; i++) if (raw[i] !== 0) fail(`${where}: the key field is not NUL-padded after the key`);
  let s = "";
  for (let i = 0; i < nul; i++) {
    if (raw[i] < 0x20 || raw[i] > 0x7e) fail(`${where}: the key has a non-ASCII byte`);
    s += String.fromCharCode(raw[i]);
  }
  return s;
}

interface RawItem {
  page: number;
  entry: number;
  ns: number;
  type: number;
  span: number;
  chunk: number;
  key: string;
  data: Uint8Array; // bytes 24..31
  payload?: Uint8Array; // strings and blob data
}

function parsePage(page: Uint8Array, index: number, out: RawItem[]): PageInfo {
  const state = le32(page, 0);
  if (state === 0xffffffff) {
    for (let i = 0; i < PAGE; i++)
      if (page[i] !== 0xff) fail(`page ${index}: uninitialized (state 0xFFFFFFFF) but byte ${i} is not 0xFF`);
    return { index, state: "EMPTY", written: 0 };
  }
  const names: Record<number, PageState> = { 0xfffffffe: "ACTIVE", 0xfffffffc: "FULL", 0xfffffff8: "FREEING" };
  const name = names[state];
  if (!name) fail(`page ${index}: unknown state 0x${state.toString(16)}`);
  const seq = le32(page, 4);
  const version = page[8];
  for (let i = 9; i < 28; i++) if (page[i] !== 0xff) fail(`page ${index}: header byte ${i} (unused) is not 0xFF`);
  const headerCrc = nvsCrc(page.subarray(4, 28));
  if (le32(page, 28) !== headerCrc)
    fail(`page ${index}: header CRC32 0x${le32(page, 28).toString(16)} != 0x${headerCrc.toString(16)}`);
  if (version !== 0xfe) fail(`page ${index}: format version 0x${version.toString(16)}, expected 0xFE (version 2)`);
  // bits 252..255 of the bitmap are unused
  if ((page[32 + 31] & 0xf0) !== 0xf0)
    fail(`page ${index}: the unused bits at the end of the entry state bitmap are not 1`);

  let written = 0;
  let sawEmpty = false;
  for (let i = 0; i < ENTRIES; ) {
    const st = entryState(page, i);
    const raw = page.subarray(64 + i * E, 64 + (i + 1) * E);
    const where = `page ${index} entry ${i}`;
    if (st === 3) {
      if (raw.some((b) => b !== 0xff)) fail(`${where}: marked empty but not erased`);
      sawEmpty = true;
      i++;
      continue;
    }
    if (sawEmpty) fail(`${where}: written after an empty entry (entries are written in order)`);
    if (st === 1) fail(`${where}: illegal entry state 0b01`);
    if (st === 0) {
      i++; // erased
      continue;
    }
    written++;
    const crc = nvsCrc(raw.subarray(0, 4), raw.subarray(8, 32));
    if (le32(raw, 4) !== crc)
      fail(`${where}: entry header CRC32 0x${le32(raw, 4).toString(16)} != 0x${crc.toString(16)}`);
    const item: RawItem = {
      page: index,
      entry: i,
      ns: raw[0],
      type: raw[1],
      span: raw[2],
      chunk: raw[3],
      key: keyOf(raw, where),
      data: raw.slice(24, 32),
    };
    const typeName = TYPES[item.type];
    if (!typeName) fail(`${where}: unknown type 0x${item.type.toString(16)}`);
    const left = ENTRIES - i;
    if (typeName === "SZ" || typeName === "BLOB" || typeName === "BLOB_DATA") {
      if (typeName === "BLOB_DATA" && item.chunk === 0xff) fail(`${where}: blob data with chunk index 0xFF`);
      if (typeName !== "BLOB_DATA" && item.chunk !== 0xff)
        fail(`${where}: ${typeName} with chunk index ${item.chunk} (must be 0xFF)`);
      const size = le16(raw, 24);
      if (le16(raw, 26) !== 0xffff) fail(`${where}: reserved bytes 26..27 are not 0xFFFF`);
      if (size > (left - 1) * E) fail(`${where}: size ${size} runs past the end of the page`);
      if (item.span !== Math.ceil(size / E) + 1) fail(`${where}: span ${item.span} does not match size ${size}`);
      if (item.span > left) fail(`${where}: span ${item.span} runs past the end of the page`);
      for (let j = i + 1; j < i + item.span; j++)
        if (entryState(page, j) !== 2)
          fail(`page ${index} entry ${j}: data of the item at entry ${i} not marked written`);
      written += item.span - 1;
      const payload = page.slice(64 + (i + 1) * E, 64 + (i + 1) * E + size);
      const pad = page.subarray(64 + (i + 1) * E + size, 64 + (i + item.span) * E);
      if (pad.some((b) => b !== 0xff)) fail(`${where}: the padding after the data is not 0xFF`);
      if (le32(raw, 28) !== nvsCrc(payload)) fail(`${where}: data CRC32 mismatch`);
      item.payload = payload;
    } else {
      if (item.span !== 1) fail(`${where}: span ${item.span} for a ${typeName} (must be 1)`);
      if (item.chunk !== 0xff) fail(`${where}: chunk index ${item.chunk} for a ${typeName} (must be 0xFF)`);
      if (typeName === "BLOB_IDX") {
        const max = 127 * 125 * 32;
        if (le32(raw, 24) > max) fail(`${where}: blob index size over ${max}`);
        if (le16(raw, 30) !== 0xffff) fail(`${where}: blob index reserved bytes are not 0xFFFF`);
      } else {
        const width = item.type & 0x0f;
        for (let j = 24 + width; j < 32; j++)
          if (raw[j] !== 0xff) fail(`${where}: a ${typeName} is not padded with 0xFF`);
      }
    }
    out.push(item);
    i += item.span;
  }
  return { index, state: name, seq, version, written };
}

function intValue(type: number, d: Uint8Array): number | bigint {
  const v = new DataView(d.buffer, d.byteOffset, 8);
  switch (type) {
    case 0x01:
      return v.getUint8(0);
    case 0x11:
      return v.getInt8(0);
    case 0x02:
      return v.getUint16(0, true);
    case 0x12:
      return v.getInt16(0, true);
    case 0x04:
      return v.getUint32(0, true);
    case 0x14:
      return v.getInt32(0, true);
    case 0x08:
      return v.getBigUint64(0, true);
    default:
      return v.getBigInt64(0, true);
  }
}

/** Parses and checks a whole NVS partition image. */
export function readNvsImage(image: Uint8Array): NvsContents {
  if (image.length === 0 || image.length % PAGE !== 0)
    fail(`the image is ${image.length} bytes, not a whole number of 4096-byte pages`);
  const raw: RawItem[] = [];
  const pages: PageInfo[] = [];
  for (let p = 0; p < image.length / PAGE; p++) pages.push(parsePage(image.subarray(p * PAGE, (p + 1) * PAGE), p, raw));

  const live = pages.filter((p) => p.state !== "EMPTY");
  const seqs = live.map((p) => p.seq as number);
  if (new Set(seqs).size !== seqs.length) fail("two pages have the same sequence number");
  if (live.filter((p) => p.state === "ACTIVE").length > 1) fail("more than one page is ACTIVE");
  if (live.length > 0) {
    const last = live.reduce((a, b) => ((a.seq as number) > (b.seq as number) ? a : b));
    if (last.state !== "ACTIVE")
      fail(`the page with the highest sequence number (page ${last.index}) is ${last.state}, not ACTIVE`);
  }
  if (pages.filter((p) => p.state === "EMPTY").length === 0)
    fail("no erased page is left: ESP-IDF's nvs_flash_init would fail with ESP_ERR_NVS_NO_FREE_PAGES");

  // Items in the order NVS sees them: pages by sequence number, entries in order.
  const order = new Map(live.map((p) => [p.index, p.seq as number]));
  raw.sort((a, b) => order.get(a.page)! - order.get(b.page)! || a.entry - b.entry);

  const namespaces = new Map<string, number>();
  const byIndex = new Map<number, string>();
  for (const it of raw) {
    if (it.ns !== 0) continue;
    if (it.type !== 0x01)
      fail(`page ${it.page} entry ${it.entry}: an item in namespace 0 that is not a U8 namespace entry`);
    const index = it.data[0];
    if (index === 0 || index === 255) fail(`namespace "${it.key}" has the reserved index ${index}`);
    if (namespaces.has(it.key)) fail(`namespace "${it.key}" is defined twice`);
    if (byIndex.has(index)) fail(`namespaces "${byIndex.get(index)}" and "${it.key}" share index ${index}`);
    namespaces.set(it.key, index);
    byIndex.set(index, it.key);
  }

  const values = new Map<string, Map<string, ReadValue>>();
  const blobData = new Map<string, RawItem>(); // ns/key/chunk
  const usedChunks = new Set<string>();
  const put = (it: RawItem, value: ReadValue) => {
    const ns = byIndex.get(it.ns);
    if (ns === undefined)
      fail(
        `page ${it.page} entry ${it.entry}: key "${it.key}" is in namespace index ${it.ns}, which has no namespace entry`,
      );
    let m = values.get(ns);
    if (!m) values.set(ns, (m = new Map()));
    if (m.has(it.key)) fail(`key "${ns}/${it.key}" is stored twice`);
    m.set(it.key, value);
  };
  for (const it of raw) {
    if (it.type === 0x42) {
      const id = `${it.ns}/${it.key}/${it.chunk}`;
      if (blobData.has(id)) fail(`blob chunk ${id} is stored twice`);
      blobData.set(id, it);
    }
  }
  for (const it of raw) {
    if (it.ns === 0) continue;
    const name = TYPES[it.type];
    if (name === "SZ") {
      const bytes = it.payload as Uint8Array;
      if (bytes.length === 0 || bytes[bytes.length - 1] !== 0) fail(`string "${it.key}" does not end with a NUL`);
      if (bytes.subarray(0, -1).includes(0)) fail(`string "${it.key}" has a NUL inside`);
      const value = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, -1));
      put(it, { type: "string", value, bytes: bytes.slice(0, -1) });
    } else if (name === "BLOB") {
      put(it, { type: "blob", value: it.payload as Uint8Array, chunks: 1, legacy: true });
    } else if (name === "BLOB_IDX") {
      const size = le32(it.data, 0),
        count = it.data[4],
        start = it.data[5];
      if (start !== 0 && start !== 0x80) fail(`blob "${it.key}": chunk start ${start} is neither 0 nor 0x80`);
      if (count === 0) fail(`blob "${it.key}": no chunks`);
      const out = new Uint8Array(size);
      let at = 0;
      for (let c = start; c < start + count; c++) {
        const id = `${it.ns}/${it.key}/${c}`;
        const chunk = blobData.get(id);
        if (!chunk) fail(`blob "${it.key}": chunk ${c} is missing`);
        const p = chunk.payload as Uint8Array;
        if (at + p.length > size) fail(`blob "${it.key}": its chunks hold more than the index's ${size} bytes`);
        out.set(p, at);
        at += p.length;
        usedChunks.add(id);
      }
      if (at !== size) fail(`blob "${it.key}": its chunks hold ${at} bytes, the index says ${size}`);
      put(it, { type: "blob", value: out, chunks: count });
    } else if (name !== "BLOB_DATA") {
      put(it, { type: name as "u8", value: intValue(it.type, it.data) });
    }
  }
  for (const id of blobData.keys())
    if (!usedChunks.has(id)) fail(`blob chunk ${id} has no blob index (NVS erases such orphans on start)`);

  return {
    pages,
    namespaces,
    values,
    items: raw.map(({ page, entry, ns, type, span, chunk, key }) => ({ page, entry, ns, type, span, chunk, key })),
  };
}
