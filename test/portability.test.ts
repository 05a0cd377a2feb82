// src/ runs on XS on a microcontroller: no Node APIs, no npm packages, no timer globals.
import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dirname, "..", "src");

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
  [/\bsetTimeout\b|\bsetInterval\b|\bclearTimeout\b|\bclearInterval\b|\bsetImmediate\b/, "timer globals (use the host clock)"],
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
      const specs = [...text.matchAll(/(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|import\s+["']([^"']+)["']/g)]
        .map((m) => m[1] ?? m[2] ?? m[3]);
      const bad = specs.filter((s) => !s.startsWith(".") && !s.startsWith("embedded:"));
      expect(bad, `${name} imports ${bad.join(", ")}`).toEqual([]);
    });
    it(`${name} uses no Node or timer globals`, () => {
      const c = code(readFileSync(f, "utf8"));
      const hits = FORBIDDEN.filter(([re]) => re.test(c)).map(([, what]) => what);
      expect(hits, `${name} uses ${hits.join(", ")}`).toEqual([]);
    });
  }
});
