// The Moddable manifests resolve: every module they map exists, and every import of every module mcconfig
// compiles resolves the way XS resolves it. XS names a module by its place in the manifest's module map
// ("src/mqtt/client") and resolves a relative specifier against that name like a path (tools/xsnap/platforms/mc/xsHosts.c,
// fxFindModule; ".js" is stripped, nothing else), so the map mirrors the repository's folders and extensionless
// relative imports work; a ".ts" extension would not. The same rule is what the build's XS linker applies.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, posix } from "node:path";
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

/** Module name -> file, for the "name/*": "./dir/*" entries of a manifest at `dir`. */
function modules(m: Manifest, dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, value] of Object.entries(m.modules ?? {})) {
    if (name === "~") continue;
    for (const source of Array.isArray(value) ? value : [value]) {
      if (!source.startsWith("./")) continue;
      expect(name.endsWith("*") && source.endsWith("*"), `${name}: ${source}`).toBe(true);
      const folder = posix.join(dir, source.slice(0, -1));
      expect(existsSync(join(root, folder)), `${folder} exists`).toBe(true);
      for (const f of readdirSync(join(root, folder))) {
        if (!f.endsWith(".ts") || f.endsWith(".d.ts")) continue;
        out.set(name.slice(0, -1) + f.slice(0, -3), posix.join(folder, f));
      }
    }
  }
  return out;
}

/**
 * The modules `text` loads at run time. `import type` and `export type` are left out: TypeScript erases them, so
 * XS never resolves them (src/host.ts, the host contract, is such a module: types only, not in the manifest).
 */
function specifiers(text: string): string[] {
  return [...text.matchAll(/^[ \t]*(?:import|export)\s(?!type\s)[^"';]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|import\s+["']([^"']+)["']/gm)]
    .map((m) => m[1] ?? m[2] ?? m[3]);
}

const SDK = ["timer", "time", "preference", "net", "sntp", "mc/config", "embedded:io/socket/tcp", "embedded:io/socket/tcp/tls"];
const PLATFORMS: [string, string[]][] = [
  ["esp32", [...SDK, "embedded:network/interface/wifi", "ota", "system"]],
  ["esp", [...SDK, "embedded:network/interface/wifi"]],
  ["lin", SDK],
  ["mac", SDK],
  ["win", SDK],
];

describe("manifest.json", () => {
  const top = read("manifest.json");
  const common = modules(top, ".");

  it("maps the portable code and the shared host glue under their paths", () => {
    for (const dir of ["src/mqtt", "src/net", "src/device", "src/uiot", "hosts/moddable"])
      expect(top.modules?.[`${dir}/*`], dir).toBe(`./${dir}/*`);
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

  for (const [platform, sdk] of PLATFORMS) {
    it(`${platform}: main, preloads and every import resolve`, () => {
      const include = top.platforms?.[platform]?.include as string;
      expect(existsSync(join(root, include)), include).toBe(true);
      const sub = read(include);
      const all = new Map([...common, ...modules(sub, dirname(include))]);
      const main = sub.creation?.main;
      expect(main && all.has(main), `creation.main ${main}`).toBe(true);
      for (const p of top.preload ?? []) expect(all.has(p), `preload ${p}`).toBe(true);
      for (const [name, file] of all) {
        for (const spec of specifiers(readFileSync(join(root, file), "utf8"))) {
          if (spec.startsWith(".")) {
            expect(spec.endsWith(".ts"), `${file} imports "${spec}" with .ts, which XS does not strip`).toBe(false);
            const target = posix.join(posix.dirname(name), spec).replace(/\.js$/, "");
            expect(all.has(target), `${file}: "${spec}" resolves to module "${target}", which ${platform} does not map`).toBe(true);
          } else expect(sdk, `${file} imports "${spec}", not part of the ${platform} build`).toContain(spec);
        }
      }
    });
  }
});
