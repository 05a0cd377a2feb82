// UTF-8 and topic rules against independent references: Node's TextDecoder/Buffer and a split-based reading of
// MQTT 3.1.1 section 4.7.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkTopicFilter, checkTopicName, decodeUtf8, topicMatches, utf8Bytes } from "../../src/mqtt/codec.ts";
import { utf8Length } from "../../src/mqtt/utf8.ts";
import { errorCode } from "../helpers/bytes.ts";

const fatal = new TextDecoder("utf-8", { fatal: true });

/** Node's verdict: the string, or null where MQTT refuses the bytes (ill-formed UTF-8 or U+0000). */
function reference(b: Uint8Array): string | null {
  try {
    const s = fatal.decode(b);
    return s.includes("\u0000") ? null : s;
  } catch {
    return null;
  }
}

function ours(b: Uint8Array): string | null {
  const code = errorCode(() => decodeUtf8(b, 0, b.length));
  if (code === "INVALID_STRING") return null;
  if (code !== null) throw new Error(code);
  return decodeUtf8(b, 0, b.length);
}

// Bytes that are often nearly UTF-8: fragments of valid sequences, boundary lead and continuation bytes.
const utf8ish = fc
  .array(
    fc.oneof(
      fc.integer({ min: 1, max: 0x7f }).map((c) => [c]),
      fc.constantFrom(
        [0],
        [0x80],
        [0xbf],
        [0xc0, 0x80],
        [0xc1, 0xbf],
        [0xc2, 0x80],
        [0xdf, 0xbf],
        [0xe0, 0xa0, 0x80],
        [0xe0, 0x9f, 0xbf],
        [0xed, 0x9f, 0xbf],
        [0xed, 0xa0, 0x80],
        [0xee, 0x80, 0x80],
        [0xef, 0xbf, 0xbf],
        [0xf0, 0x90, 0x80, 0x80],
        [0xf0, 0x8f, 0xbf, 0xbf],
        [0xf4, 0x8f, 0xbf, 0xbf],
        [0xf4, 0x90, 0x80, 0x80],
        [0xf5],
        [0xff],
        [0xe2, 0x82],
        [0xf0, 0x9f, 0x98],
      ),
      fc.integer({ min: 0, max: 255 }).map((c) => [c]),
    ),
    { maxLength: 40 },
  )
  .map((parts) => Uint8Array.from(parts.flat()));

describe("UTF-8", () => {
  it("decodeUtf8 accepts exactly well-formed UTF-8 without U+0000, and decodes it like TextDecoder", () => {
    fc.assert(
      fc.property(fc.oneof(utf8ish, fc.uint8Array({ maxLength: 40 })), (b) => {
        expect(ours(b)).toBe(reference(b));
      }),
      { numRuns: 5000 },
    );
  });

  it("decodes long strings (past the fromCharCode chunk size), ASCII and not", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", minLength: 100, maxLength: 700 }), fc.boolean(), (s, ascii) => {
        const t = (ascii ? s.replace(/[^\x01-\x7f]/gu, "a") : s).replace(/\p{Cs}|\u0000/gu, "b");
        const b = Buffer.from(t, "utf8");
        expect(decodeUtf8(b, 0, b.length)).toBe(t);
      }),
      { numRuns: 300 },
    );
  });

  it("decodes a range of a larger buffer without looking outside it", () => {
    const b = Uint8Array.from([0xff, 0x61, 0xc3, 0xa9, 0xff]);
    expect(decodeUtf8(b, 1, 4)).toBe("aé");
    expect(errorCode(() => decodeUtf8(b, 1, 3))).toBe("INVALID_STRING"); // cut inside é
  });

  it("utf8Length and utf8Bytes agree with Buffer for well-formed strings, and refuse lone surrogates", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", maxLength: 60 }),
        fc.integer({ min: 0, max: 59 }),
        fc.constantFrom("\ud800", "\udfff", "\udbff"),
        (s, at, lone) => {
          const t = s.replace(/\u0000/g, "");
          const b = Buffer.from(t, "utf8");
          expect(utf8Length(t)).toBe(b.length);
          expect(Buffer.from(utf8Bytes(t)).equals(b)).toBe(true);
          const bad = t.slice(0, at) + lone + (lone === "\udfff" ? "" : "x") + t.slice(at);
          if (/\p{Cs}/u.test(bad)) expect(errorCode(() => utf8Length(bad))).toBe("INVALID_STRING");
        },
      ),
      { numRuns: 1000 },
    );
  });
});

/** MQTT 3.1.1 section 4.7, read directly: levels split on '/'. */
function refMatches(f: string, t: string): boolean {
  if (t.startsWith("$") && (f.startsWith("+") || f.startsWith("#"))) return false;
  const fl = f.split("/"),
    tl = t.split("/");
  for (let i = 0; i < fl.length; i++) {
    if (fl[i] === "#") return true; // matches the parent level too
    if (i >= tl.length) return false;
    if (fl[i] !== "+" && fl[i] !== tl[i]) return false;
  }
  return fl.length === tl.length;
}

function refValidFilter(f: string): boolean {
  if (f === "") return false;
  const l = f.split("/");
  return l.every((x, i) => (x === "#" ? i === l.length - 1 : x === "+" || !/[+#]/.test(x)));
}

const level = fc.constantFrom("a", "b", "", "$s", "ab");
const topic = fc
  .array(level, { minLength: 1, maxLength: 4 })
  .map((l) => l.join("/"))
  .filter((t) => t !== "");
const filter = fc
  .tuple(fc.array(fc.oneof(level, fc.constant("+")), { minLength: 1, maxLength: 4 }), fc.boolean())
  .map(([l, hash]) => (hash ? [...l, "#"] : l).join("/"))
  .filter((f) => f !== "");
const wild = fc.string({ unit: fc.constantFrom("a", "/", "+", "#", "$"), maxLength: 8 });

describe("topics", () => {
  it("topicMatches agrees with a split-based reading of the spec", () => {
    fc.assert(
      fc.property(fc.oneof(filter, fc.constant("#")), topic, (f, t) => {
        expect(topicMatches(f, t)).toBe(refMatches(f, t));
      }),
      { numRuns: 5000 },
    );
  });

  it("topicMatches: the spec's examples", () => {
    const yes: [string, string][] = [
      ["sport/tennis/player1/#", "sport/tennis/player1"],
      ["sport/tennis/player1/#", "sport/tennis/player1/ranking"],
      ["sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"],
      ["sport/#", "sport"],
      ["#", "a/b"],
      ["sport/tennis/+", "sport/tennis/player1"],
      ["sport/+", "sport/"],
      ["+/+", "/finance"],
      ["/+", "/finance"],
      ["$SYS/#", "$SYS/monitor/Clients"],
      ["$SYS/monitor/+", "$SYS/monitor/Clients"],
    ];
    const no: [string, string][] = [
      ["sport/tennis/+", "sport/tennis/player1/ranking"],
      ["sport/+", "sport"],
      ["+", "/finance"],
      ["#", "$SYS/x"],
      ["+/monitor/Clients", "$SYS/monitor/Clients"],
      ["a/b", "a/b/c"],
      ["a/b/c", "a/b"],
    ];
    for (const [f, t] of yes) expect(topicMatches(f, t), `${f} ~ ${t}`).toBe(true);
    for (const [f, t] of no) expect(topicMatches(f, t), `${f} !~ ${t}`).toBe(false);
  });

  it("checkTopicFilter accepts exactly the filters the spec allows", () => {
    fc.assert(
      fc.property(wild, (f) => {
        expect(errorCode(() => checkTopicFilter(f)) === null).toBe(refValidFilter(f));
      }),
      { numRuns: 5000 },
    );
  });

  it("checkTopicName accepts exactly non-empty names without wildcards", () => {
    fc.assert(
      fc.property(wild, (t) => {
        expect(errorCode(() => checkTopicName(t)) === null).toBe(t !== "" && !/[+#]/.test(t));
      }),
      { numRuns: 2000 },
    );
  });
});
