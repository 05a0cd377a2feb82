// The Moddable manifests resolve: every module they map exists, and every import of every module mcconfig
// compiles resolves the way XS resolves it. XS names a module by its place in the manifest's module map
// ("src/mqtt/client") and resolves a relative specifier against that name like a path (tools/xsnap/platforms/mc/xsHosts.c,
// fxFindModule; ".js" is stripped, nothing else), so the map mirrors the repository's folders and extensionless
// relative imports work; a ".ts" extension would not. The same rule is what the build's XS linker applies.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..", "..");

interface Manifest {
  include?: string | string[];
  modules?: Record<string, string | string[]>;
  preload?: string[];
  creation?: { main?: string };
  platforms?: Record<string, { include?: string | string[]; error?: string }>;
}

function read(path: string): Manifest {
  return JSON.parse(readFileSync(join(root, path), "utf8")) as Manifest;
}

/** Module name -> file, for the "name": "./path" entries of a manifest at `dir` (each module listed by name: no
 * wildcards, so nothing reaches flash that the firmware does not import). */
function modules(m: Manifest, dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, value] of Object.entries(m.modules ?? {})) {
    if (name === "~") continue;
    for (const source of Array.isArray(value) ? value : [value]) {
      if (!source.startsWith(".")) continue;
      expect(name.includes("*") || source.includes("*"), `${name}: ${source} is a wildcard`).toBe(false);
      const file = posix.join(dir, `${source}.ts`);
      expect(existsSync(join(root, file)), `${file} exists`).toBe(true);
      expect(file, `module ${name} is named by its path`).toBe(`${name}.ts`);
      out.set(name, file);
    }
  }
  return out;
}

const emittedCache = new Map<string, string>();
/** A module as TypeScript emits it for the build (mcconfig compiles each module with tsc): type-only imports gone. */
function emitted(file: string): string {
  let js = emittedCache.get(file);
  if (js === undefined) {
    js = ts.transpileModule(readFileSync(join(root, file), "utf8"), {
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.Preserve },
    }).outputText;
    emittedCache.set(file, js);
  }
  return js;
}

/** The modules a build runs, from its entry and preloads through the imports TypeScript emits (a type-only import
 * compiles to nothing, so a module of types alone is not part of the image). */
function runtimeClosure(entries: string[]): Set<string> {
  const seen = new Set<string>();
  const stack = [...entries];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    for (const spec of specifiers(emitted(`${name}.ts`)))
      if (spec.startsWith(".")) stack.push(posix.join(posix.dirname(name), spec).replace(/\.js$/, ""));
  }
  return seen;
}

function specifiers(text: string): string[] {
  return [
    ...text.matchAll(
      /^[ \t]*(?:import|export)\s(?!type\s)[^"';]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|import\s+["']([^"']+)["']/gm,
    ),
  ].map((m) => m[1] ?? m[2] ?? m[3]);
}

const SDK = [
  "timer",
  "time",
  "preference",
  "net",
  "sntp",
  "mc/config",
  "embedded:io/socket/tcp",
  "embedded:io/socket/tcp/tls",
];
const PLATFORMS: [string, string[]][] = [
  ["esp32", [...SDK, "embedded:network/interface/wifi", "ota", "system"]],
  ["esp", [...SDK, "embedded:network/interface/wifi"]],
  // the desktop simulator writes an update's image to a file (hosts/moddable/firmware.ts, desktopFirmware)
  ["lin", [...SDK, "file"]],
  ["mac", [...SDK, "file"]],
  ["win", [...SDK, "file"]],
];

describe("manifest.json", () => {
  const top = read("manifest.json");
  const common = modules(top, ".");

  it("lists every module by name, and knows no platform but the three", () => {
    expect(
      Object.keys(top.modules ?? {}).every((name) => !name.includes("*")),
      "no wildcard",
    ).toBe(true);
    expect(top.platforms?.["..."]?.error).toMatch(/-p esp32.*-p esp/);
  });

  // The SDK's `preference` is a JavaScript class (modules/files/preference/preference.js) over a native part, and
  // every target's main.ts imports it. The ESP32 device manifest includes modules/files/preference/manifest.json;
  // the ESP8266 one maps only the native part, and the desktop none: their fragments include it. Without it the
  // ESP8266 image still links (main is not preloaded) and fails at start-up ("preference" not found).
  it("esp and the desktop platforms include the SDK's preference manifest (the esp32 device manifest does)", () => {
    for (const platform of ["esp", "lin", "mac", "win"]) {
      const sub = read(top.platforms?.[platform]?.include as string);
      expect([sub.include ?? []].flat(), platform).toContain("$(MODDABLE)/modules/files/preference/manifest.json");
    }
  });

  it("the desktop platforms include the SDK's file manifest (the image slot of an update)", () => {
    for (const platform of ["lin", "mac", "win"]) {
      const sub = read(top.platforms?.[platform]?.include as string);
      expect([sub.include ?? []].flat(), platform).toContain("$(MODDABLE)/modules/files/file/manifest.json");
    }
  });

  for (const [platform, sdk] of PLATFORMS) {
    it(`${platform}: the image holds exactly the modules its entry and preloads import`, () => {
      const include = top.platforms?.[platform]?.include as string;
      const sub = read(include);
      const mapped = new Set([...common.keys(), ...modules(sub, dirname(include)).keys()]);
      const used = runtimeClosure([sub.creation!.main!, ...(top.preload ?? [])]);
      expect(
        [...mapped].filter((m) => !used.has(m)),
        "compiled into the image but imported by nothing",
      ).toEqual([]);
      expect(
        [...used].filter((m) => !mapped.has(m)),
        "imported but not in the manifest",
      ).toEqual([]);
    }, 120_000); // TypeScript's compiler loads and emits every module once: seconds on a loaded machine

    it(`${platform}: main, preloads and every import resolve`, () => {
      const include = top.platforms?.[platform]?.include as string;
      expect(existsSync(join(root, include)), include).toBe(true);
      const sub = read(include);
      const all = new Map([...common, ...modules(sub, dirname(include))]);
      const main = sub.creation?.main;
      expect(main && all.has(main), `creation.main ${main}`).toBe(true);
      for (const p of top.preload ?? []) expect(all.has(p), `preload ${p}`).toBe(true);
      for (const [name, file] of all) {
        const source = readFileSync(join(root, file), "utf8");
        for (const spec of specifiers(source))
          if (spec.startsWith("."))
            expect(spec.endsWith(".ts"), `${file} imports "${spec}" with .ts, which XS does not strip`).toBe(false);
        for (const spec of specifiers(emitted(file))) {
          if (spec.startsWith(".")) {
            const target = posix.join(posix.dirname(name), spec).replace(/\.js$/, "");
            expect(
              all.has(target),
              `${file}: "${spec}" resolves to module "${target}", which ${platform} does not map`,
            ).toBe(true);
          } else expect(sdk, `${file} imports "${spec}", not part of the ${platform} build`).toContain(spec);
        }
      }
    });
  }
});
