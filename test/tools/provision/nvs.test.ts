// The ESP32 NVS image writer (tools/provision/nvs.ts) against an independent reader written from ESP-IDF's
// format description (./nvs-reader.ts): every value type, pages, spans, CRCs, limits, and byte-for-byte equality
// with images ESP-IDF's own generator made from the same input.
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  buildNvsImage,
  crc32le,
  MODDABLE_ESP32_NVS,
  NVS_ENTRY_COUNT,
  NVS_PAGE_SIZE,
  NvsError,
  type NvsItem,
  type NvsValue,
} from "../../../tools/provision/nvs";
import { NvsReadError, readNvsImage, type ReadValue } from "./nvs-reader";
import { thrown } from "../../helpers/thrown";

const nvsError = (f: () => unknown): NvsError => thrown(f, NvsError);

/** Deterministic bytes (a 32-bit LCG, top byte), as used to make the reference images below. */
function lcgBytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    b[i] = s >>> 24;
  }
  return b;
}

function expectValue(got: ReadValue | undefined, want: NvsValue): void {
  expect(got, "value missing").toBeDefined();
  if (want.type === "blob") {
    expect(got!.type).toBe("blob");
    expect(Buffer.from(got!.value as Uint8Array).equals(Buffer.from(want.value))).toBe(true);
  } else {
    expect(got!.type).toBe(want.type);
    expect(got!.value).toBe(want.value);
  }
}

function roundTrip(items: NvsItem[], options = {}) {
  const built = buildNvsImage(items, options);
  const read = readNvsImage(built.image);
  for (const it of items) expectValue(read.values.get(it.namespace)?.get(it.key), it.value);
  const count = [...read.values.values()].reduce((n, m) => n + m.size, 0);
  expect(count).toBe(items.length);
  return { built, read };
}

describe("CRC32 as ESP-IDF computes it", () => {
  it("is esp_rom_crc32_le(0xFFFFFFFF, ...) = zlib crc32(data, 0xFFFFFFFF), not the usual CRC-32", () => {
    const data = new TextEncoder().encode("123456789");
    expect(crc32le(0xffffffff, data)).toBe(0xd202d277); // python3: zlib.crc32(b"123456789", 0xFFFFFFFF)
    expect(crc32le(0, data)).toBe(0xcbf43926); // the standard CRC-32 check value, for contrast
    expect(crc32le(crc32le(0xffffffff, data, 0, 4), data, 4)).toBe(0xd202d277); // calls chain
  });
});

describe("page layout", () => {
  it("an empty image is all erased, Moddable's default size", () => {
    const { image, pagesUsed } = buildNvsImage([]);
    expect(image.length).toBe(0x6000);
    expect(MODDABLE_ESP32_NVS).toEqual({ offset: 0x9000, size: 0x6000 });
    expect(pagesUsed).toBe(0);
    expect(image.every((b) => b === 0xff)).toBe(true);
    expect(readNvsImage(image).pages.every((p) => p.state === "EMPTY")).toBe(true);
  });

  it("one page: header (ACTIVE, seq 0, version 0xFE, 0xFF padding, CRC of bytes 4..27), bitmap, namespace entry first", () => {
    const { image } = buildNvsImage([{ namespace: "cfga0", key: "k", value: { type: "u8", value: 7 } }]);
    const h = Buffer.from(image.subarray(0, 32));
    expect(h.readUInt32LE(0)).toBe(0xfffffffe);
    expect(h.readUInt32LE(4)).toBe(0);
    expect(h[8]).toBe(0xfe);
    expect(h.subarray(9, 28).every((b) => b === 0xff)).toBe(true);
    expect(h.readUInt32LE(28)).toBe(crc32le(0xffffffff, image, 4, 28));
    expect(image[32]).toBe(0b11111010); // entries 0 and 1 written (10 10), 2 and 3 empty (11 11)
    expect(image.subarray(33, 64).every((b) => b === 0xff)).toBe(true);
    const read = readNvsImage(image);
    expect(read.items.map((i) => [i.ns, i.type, i.key])).toEqual([
      [0, 0x01, "cfga0"],
      [1, 0x01, "k"],
    ]);
    expect(read.namespaces.get("cfga0")).toBe(1);
    expect(image.subarray(NVS_PAGE_SIZE).every((b) => b === 0xff)).toBe(true);
  });

  it("full pages are FULL, the last used one ACTIVE, sequence numbers in order, the rest erased", () => {
    const items: NvsItem[] = [];
    for (let i = 0; i < 200; i++) items.push({ namespace: "ns", key: `k${i}`, value: { type: "i32", value: -i | 0 } });
    const { built, read } = roundTrip(items);
    expect(built.pagesUsed).toBe(2); // 201 entries: 126 + 75
    expect(read.pages.map((p) => [p.state, p.seq])).toEqual([
      ["FULL", 0],
      ["ACTIVE", 1],
      ["EMPTY", undefined],
      ["EMPTY", undefined],
      ["EMPTY", undefined],
      ["EMPTY", undefined],
    ]);
    expect(read.pages[0].written).toBe(NVS_ENTRY_COUNT);
  });
});

describe("every value type round-trips through the independent reader", () => {
  it("integers at their limits", () => {
    const items: NvsItem[] = [
      { namespace: "n", key: "u8lo", value: { type: "u8", value: 0 } },
      { namespace: "n", key: "u8hi", value: { type: "u8", value: 255 } },
      { namespace: "n", key: "i8lo", value: { type: "i8", value: -128 } },
      { namespace: "n", key: "i8hi", value: { type: "i8", value: 127 } },
      { namespace: "n", key: "u16hi", value: { type: "u16", value: 65535 } },
      { namespace: "n", key: "i16lo", value: { type: "i16", value: -32768 } },
      { namespace: "n", key: "u32hi", value: { type: "u32", value: 0xffffffff } },
      { namespace: "n", key: "i32lo", value: { type: "i32", value: -0x80000000 } },
      { namespace: "n", key: "i32hi", value: { type: "i32", value: 0x7fffffff } },
    ];
    roundTrip(items);
  });

  it("strings: empty, UTF-8, and the largest (3999 bytes and the NUL)", () => {
    const { read } = roundTrip([
      { namespace: "s", key: "empty", value: { type: "string", value: "" } },
      { namespace: "s", key: "utf8", value: { type: "string", value: "wörld 世界 🌍" } },
      { namespace: "s", key: "max", value: { type: "string", value: "x".repeat(3999) } },
    ]);
    const max = read.items.find((i) => i.key === "max")!;
    expect(max.span).toBe(1 + 125); // 4000 bytes = 125 entries: a whole page
    expect(max.entry).toBe(0);
  });

  it("blobs: empty, small, one whole page, and spanning pages in chunks with an index", () => {
    const big = lcgBytes(9000, 9);
    const { read } = roundTrip(
      [
        { namespace: "b", key: "empty", value: { type: "blob", value: new Uint8Array(0) } },
        { namespace: "b", key: "small", value: { type: "blob", value: lcgBytes(33, 1) } },
        { namespace: "b", key: "page", value: { type: "blob", value: lcgBytes(4000, 2) } },
        { namespace: "b", key: "big", value: { type: "blob", value: big } },
      ],
      { maxBlobBytes: 10000, size: 0x8000 },
    );
    const chunks = read.items.filter((i) => i.key === "big" && i.type === 0x42);
    expect(chunks.map((c) => c.chunk)).toEqual(chunks.map((_, i) => i));
    expect(new Set(chunks.map((c) => c.page)).size).toBeGreaterThan(1);
    expect((read.values.get("b")!.get("big") as { chunks: number }).chunks).toBe(chunks.length);
  });

  it("several namespaces, interleaved, each declared once before its first key", () => {
    const { read } = roundTrip([
      { namespace: "a", key: "x", value: { type: "u8", value: 1 } },
      { namespace: "b", key: "x", value: { type: "u8", value: 2 } },
      { namespace: "a", key: "y", value: { type: "string", value: "a/y" } },
    ]);
    expect([...read.namespaces]).toEqual([
      ["a", 1],
      ["b", 2],
    ]);
    expect(read.items.filter((i) => i.ns === 0)).toHaveLength(2);
  });

  it("random sets of items (property)", () => {
    const value: fc.Arbitrary<NvsValue> = fc.oneof(
      fc.integer({ min: 0, max: 255 }).map((v) => ({ type: "u8" as const, value: v })),
      fc.integer({ min: -128, max: 127 }).map((v) => ({ type: "i8" as const, value: v })),
      fc.integer({ min: 0, max: 65535 }).map((v) => ({ type: "u16" as const, value: v })),
      fc.integer({ min: -32768, max: 32767 }).map((v) => ({ type: "i16" as const, value: v })),
      fc.integer({ min: 0, max: 0xffffffff }).map((v) => ({ type: "u32" as const, value: v })),
      fc.integer({ min: -0x80000000, max: 0x7fffffff }).map((v) => ({ type: "i32" as const, value: v })),
      fc
        .string({ unit: "grapheme", maxLength: 300 })
        .map((v) => ({ type: "string" as const, value: v.replace(/\u0000/g, "") })),
      fc.uint8Array({ maxLength: 5000 }).map((v) => ({ type: "blob" as const, value: v })),
    );
    const name = fc.stringMatching(/^[a-z0-9_]{1,15}$/);
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.record({ namespace: fc.constantFrom("cfga0", "cfga1", "x"), key: name, value }), {
          maxLength: 30,
          selector: (i) => `${i.namespace}/${i.key}`,
        }),
        (items) => {
          roundTrip(items, { size: 64 * NVS_PAGE_SIZE, maxBlobBytes: 5000 });
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("byte-for-byte what ESP-IDF's generator writes", () => {
  // Reference images: esp-idf-nvs-partition-gen (ESP-IDF's nvs_partition_gen.py, commit 67113ed), `generate
  // input.csv out.bin 0x6000`, CSV rows for the same namespaces, keys and values in the same order (blobs and strings
  // as `file` rows); their SHA-256 is what must come out.
  it("a page of every type", () => {
    const items: NvsItem[] = [
      { namespace: "cfga0", key: "uiot_psn", value: { type: "blob", value: lcgBytes(22, 1) } },
      { namespace: "cfga0", key: "uiot_dsn", value: { type: "blob", value: lcgBytes(19, 2) } },
      { namespace: "cfga0", key: "uiot_dsecret", value: { type: "blob", value: lcgBytes(22, 3) } },
      { namespace: "cfga0", key: "n8", value: { type: "u8", value: 200 } },
      { namespace: "cfga0", key: "i8", value: { type: "i8", value: -5 } },
      { namespace: "cfga0", key: "u16", value: { type: "u16", value: 40000 } },
      { namespace: "cfga0", key: "i16", value: { type: "i16", value: -30000 } },
      { namespace: "cfga0", key: "u32", value: { type: "u32", value: 4000000000 } },
      { namespace: "cfga0", key: "i32", value: { type: "i32", value: -2000000000 } },
      { namespace: "other", key: "str", value: { type: "string", value: "hello, wörld" } },
      { namespace: "other", key: "empty", value: { type: "string", value: "" } },
      { namespace: "other", key: "b0", value: { type: "blob", value: new Uint8Array(0) } },
    ];
    const { image } = roundTrip(items).built;
    expect(createHash("sha256").update(image).digest("hex")).toBe(
      "3e390043e7b87f38488bd4b7ed4788fa4afd714c69e81f916350dde7327d5c84",
    );
  });

  it("blobs split across pages, a string moved to a new page", () => {
    const items: NvsItem[] = [
      { namespace: "cfga0", key: "big1", value: { type: "blob", value: lcgBytes(3000, 4) } },
      { namespace: "cfga0", key: "big2", value: { type: "blob", value: lcgBytes(3900, 5) } },
      { namespace: "cfga1", key: "s", value: { type: "string", value: "x".repeat(1000) } },
      { namespace: "cfga1", key: "big3", value: { type: "blob", value: lcgBytes(4000, 6) } },
      { namespace: "cfga1", key: "later", value: { type: "blob", value: lcgBytes(100, 7) } },
    ];
    const { built, read } = roundTrip(items);
    expect(built.pagesUsed).toBe(4);
    expect(read.pages.map((p) => p.state)).toEqual(["FULL", "FULL", "FULL", "ACTIVE", "EMPTY", "EMPTY"]);
    expect(createHash("sha256").update(built.image).digest("hex")).toBe(
      "b3cf48ba0ba987eb90fa1764afdaa24eb4c6e9e2c9eea0c7d70f9ba42c4ea904",
    );
  });
});

describe("limits, refused clearly", () => {
  const SECRETISH = "Zq7-unique-value-Zq7";

  it("keys and namespaces: 1..15 printable ASCII characters", () => {
    roundTrip([{ namespace: "n".repeat(15), key: "k".repeat(15), value: { type: "u8", value: 1 } }]);
    const long = nvsError(() =>
      buildNvsImage([{ namespace: "n", key: "k".repeat(16), value: { type: "u8", value: 1 } }]),
    );
    expect(long.code).toBe("INVALID_NAME");
    expect(long.message).toMatch(/"k{16}" has 16 characters; NVS allows at most 15/);
    expect(
      nvsError(() => buildNvsImage([{ namespace: "n".repeat(16), key: "k", value: { type: "u8", value: 1 } }])).message,
    ).toMatch(/namespace .* at most 15/);
    for (const bad of ["", "a b", "ключ", "a\u0000b"])
      expect(nvsError(() => buildNvsImage([{ namespace: "n", key: bad, value: { type: "u8", value: 1 } }])).code).toBe(
        "INVALID_NAME",
      );
  });

  it("a string over 4000 bytes with its NUL, a blob over Moddable's 4000: refused, the value never quoted", () => {
    const s = nvsError(() =>
      buildNvsImage([
        { namespace: "n", key: "s", value: { type: "string", value: SECRETISH + "x".repeat(4000 - SECRETISH.length) } },
      ]),
    );
    expect(s.code).toBe("VALUE_TOO_LARGE");
    expect(s.message).toMatch(/"n\/s" is 4001 bytes with its NUL, over NVS's limit of 4000/);
    expect(s.message).not.toContain(SECRETISH);
    const blob = new Uint8Array(4001).fill(0x41);
    const b = nvsError(() => buildNvsImage([{ namespace: "n", key: "b", value: { type: "blob", value: blob } }]));
    expect(b.code).toBe("VALUE_TOO_LARGE");
    expect(b.message).toMatch(/4001 bytes, over the limit of 4000 \(Moddable's preference values on ESP32/);
    roundTrip([{ namespace: "n", key: "b", value: { type: "blob", value: blob.subarray(0, 4000) } }]);
  });

  it("integers out of range, wrong types, duplicate keys", () => {
    expect(
      nvsError(() => buildNvsImage([{ namespace: "n", key: "k", value: { type: "u8", value: 256 } }])).message,
    ).toMatch(/not a u8 \(an integer from 0 to 255\)/);
    expect(nvsError(() => buildNvsImage([{ namespace: "n", key: "k", value: { type: "i32", value: 1.5 } }])).code).toBe(
      "INVALID_VALUE",
    );
    expect(
      nvsError(() => buildNvsImage([{ namespace: "n", key: "k", value: { type: "string", value: "a\u0000" } }]))
        .message,
    ).toMatch(/NUL/);
    const dup = nvsError(() =>
      buildNvsImage([
        { namespace: "n", key: "k", value: { type: "u8", value: 1 } },
        { namespace: "n", key: "k", value: { type: "u8", value: 2 } },
      ]),
    );
    expect(dup.code).toBe("DUPLICATE_KEY");
  });

  it("at most 254 namespaces", () => {
    const items = (n: number): NvsItem[] =>
      Array.from({ length: n }, (_, i) => ({ namespace: `ns${i}`, key: "k", value: { type: "u8", value: 1 } }));
    roundTrip(items(254), { size: 0x10000 });
    expect(nvsError(() => buildNvsImage(items(255), { size: 0x10000 })).code).toBe("TOO_MANY_NAMESPACES");
  });

  it("never fills the last free page(s): PARTITION_FULL names the key and the rule", () => {
    const items = Array.from(
      { length: 6 },
      (_, i): NvsItem => ({ namespace: "n", key: `b${i}`, value: { type: "blob", value: new Uint8Array(3900) } }),
    );
    const e = nvsError(() => buildNvsImage(items)); // 6 pages, 5 usable: the 6th blob has no page
    expect(e.code).toBe("PARTITION_FULL");
    expect(e.message).toMatch(/full at key "n\/b5": 5 page\(s\)/);
    const two = nvsError(() => buildNvsImage(items.slice(0, 5), { freePages: 2 }));
    expect(two.code).toBe("PARTITION_FULL");
    const { read } = roundTrip(items.slice(0, 5));
    expect(read.pages[5].state).toBe("EMPTY");
  });

  it("partition sizes: whole pages, and room for data and a free page", () => {
    expect(nvsError(() => buildNvsImage([], { size: 5000 })).code).toBe("INVALID_SIZE");
    expect(nvsError(() => buildNvsImage([], { size: NVS_PAGE_SIZE })).code).toBe("INVALID_SIZE");
    expect(nvsError(() => buildNvsImage([], { freePages: 0 })).code).toBe("INVALID_SIZE");
    expect(buildNvsImage([], { size: 0x3000 }).image.length).toBe(0x3000);
  });
});

describe("the reader is strict (so the round trips mean something)", () => {
  const good = () =>
    buildNvsImage([
      { namespace: "n", key: "s", value: { type: "string", value: "hello" } },
      { namespace: "n", key: "b", value: { type: "blob", value: lcgBytes(50, 3) } },
    ]).image;

  it("accepts the writer's image", () => {
    expect(() => readNvsImage(good())).not.toThrow();
  });

  for (const [what, at, pattern] of [
    ["a page header byte", 4, /header CRC32/],
    ["an entry's key", 64 + 32 + 9, /entry header CRC32/],
    ["string data", 64 + 64 + 1, /data CRC32 mismatch/],
    ["the version byte", 8, /header CRC32|version/],
    ["an erased page", 3 * NVS_PAGE_SIZE + 100, /not 0xFF/],
  ] as [string, number, RegExp][]) {
    it(`catches a change in ${what}`, () => {
      const image = good();
      image[at] ^= 0x01;
      expect(() => readNvsImage(image)).toThrow(NvsReadError);
      expect(() => readNvsImage(image)).toThrow(pattern);
    });
  }

  it("catches an orphan blob chunk, a missing free page and a bitmap that disagrees", () => {
    const image = good();
    // Erase the blob index's bitmap state (last entry written): its chunk becomes an orphan.
    const read = readNvsImage(image);
    const idx = read.items.find((i) => i.type === 0x48)!;
    image[32 + (idx.entry >> 2)] &= ~(3 << ((idx.entry & 3) * 2)); // 00: erased
    expect(() => readNvsImage(image)).toThrow(/no blob index/);
    const full = buildNvsImage([{ namespace: "n", key: "k", value: { type: "u8", value: 1 } }], { size: 0x2000 }).image;
    const noFree = new Uint8Array(0x2000);
    noFree.set(full);
    noFree.set(full.subarray(0, NVS_PAGE_SIZE), NVS_PAGE_SIZE); // two pages, none erased
    expect(() => readNvsImage(noFree)).toThrow(/same sequence number|no erased page/);
  });
});
