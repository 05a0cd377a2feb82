// src/ runs on XS on a microcontroller: no Node APIs, no npm packages, no timer globals.
import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";

const root = join(import.meta.dirname, "..", "src");

/** The layers of src/, top to bottom; each imports only its own and those below it, and src/host.ts (types) only. */
const LAYERS = ["device", "uiot", "mqtt", "net"];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Source without comments and string literals, so a word in a comment or a message is no violation. */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:])\/\/.*$/gm, "$1")
    .replace(/`(?:\\.|[^`\\])*`/g, "``")
    .replace(/"(?:\\.|[^"\\\n])*"/g, '""')
    .replace(/'(?:\\.|[^'\\\n])*'/g, "''");
}

const FORBIDDEN: [RegExp, string][] = [
  [/\bBuffer\b/, "Buffer (use Uint8Array/DataView)"],
  [/\bprocess\b/, "process"],
  [/\brequire\s*\(/, "require()"],
  [
    /\bsetTimeout\b|\bsetInterval\b|\bclearTimeout\b|\bclearInterval\b|\bsetImmediate\b/,
    "timer globals (use the host clock)",
  ],
  [/\bTextEncoder\b|\bTextDecoder\b/, "TextEncoder/TextDecoder (not on every XS build)"],
  [/\bglobalThis\b/, "globalThis (hosts are handed in)"],
];

describe("src/ is portable device code", () => {
  const all = files(root);
  it("has source files", () => expect(all.length).toBeGreaterThan(0));
  for (const f of all) {
    const name = relative(root, f);
    it(`${name} imports only relative modules or the device's own`, () => {
      const text = readFileSync(f, "utf8");
      const specs = [
        ...text.matchAll(
          /(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|import\s+["']([^"']+)["']/g,
        ),
      ].map((m) => m[1] ?? m[2] ?? m[3]);
      const bad = specs.filter((s) => !s.startsWith(".") && !s.startsWith("embedded:"));
      expect(bad, `${name} imports ${bad.join(", ")}`).toEqual([]);
    });
    it(`${name} imports only its own layer and the layers below it`, () => {
      const text = readFileSync(f, "utf8");
      const layer = LAYERS.indexOf(name.split(/[\\/]/)[0]);
      const specs = [...text.matchAll(/^[ \t]*(import|export)\s(type\s)?[^"';]*?from\s*["'](\.[^"']+)["']/gm)];
      for (const [, , type, spec] of specs) {
        const target = relative(root, join(dirname(f), spec)).split(/[\\/]/)[0];
        if (target === "host") {
          expect(
            type,
            `${name} imports src/host.ts with \`import type\` (it is types only, no module on the device)`,
          ).toBe("type ");
          continue;
        }
        expect(layer, `${name} imports ${spec}: src/host.ts imports nothing`).toBeGreaterThanOrEqual(0);
        expect(
          LAYERS.indexOf(target),
          `${name} imports ${spec}, a layer above its own (${LAYERS.join(" -> ")})`,
        ).toBeGreaterThanOrEqual(layer);
      }
    });
    it(`${name} uses no Node or timer globals`, () => {
      const c = code(readFileSync(f, "utf8"));
      const hits = FORBIDDEN.filter(([re]) => re.test(c)).map(([, what]) => what);
      expect(hits, `${name} uses ${hits.join(", ")}`).toEqual([]);
    });
  }
});
