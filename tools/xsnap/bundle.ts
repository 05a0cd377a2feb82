// Bundles TypeScript for XS (esbuild, one classic script) and the prelude that makes xsnap's XS look like the
// device's: no TextEncoder/TextDecoder on the global object, and the primordials frozen (a Moddable build freezes
// them at preload: assigning Error.prototype.name, say, throws there).
import { build, type Plugin } from "esbuild";
import { readFile } from "node:fs/promises";
import { join, sep } from "node:path";

const ROOT = join(import.meta.dirname, "..", "..");

export const PRELUDE = `
(() => {
  const g = globalThis;
  Object.defineProperty(g, "__xsText", { value: Object.freeze({ TextEncoder: g.TextEncoder, TextDecoder: g.TextDecoder }) });
  delete g.TextEncoder;
  delete g.TextDecoder;
  // setTimeout/clearTimeout only for npm packages of the tests that capture them at load (fast-check); the bundle
  // renames the identifiers, and no timer ever fires later than the next turn here.
  const timers = new Map();
  let next = 1;
  Object.defineProperty(g, "__xsSetTimeout", { value: (f, _ms, ...args) => { const id = next++; timers.set(id, f); setImmediate(() => { if (timers.delete(id)) f(...args); }); return id; } });
  Object.defineProperty(g, "__xsClearTimeout", { value: (id) => { timers.delete(id); } });
  const keep = new Set(["globalThis", "handleCommand", "__xsText", "__xsSetTimeout", "__xsClearTimeout"]);
  for (const name of Object.getOwnPropertyNames(g)) {
    if (keep.has(name)) continue;
    const v = g[name];
    if ((typeof v === "function" || (typeof v === "object" && v !== null)) && v !== g) harden(v);
  }
})();
`;

export interface BundleOptions {
  /** Module path (bare) -> file, e.g. vitest -> test/xsnap/shim/vitest.ts. */
  alias?: Record<string, string>;
  /** Prepend `import { <names> } from <file>` to the files under these folders that use any of those names. */
  globalsShim?: { file: string; names: string[]; under: string[] };
}

/** One IIFE script of `entry` and what it imports. */
export async function bundleForXs(entry: string, options: BundleOptions = {}): Promise<string> {
  const alias = options.alias ?? {};
  const plugin: Plugin = {
    name: "uiot-xs",
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => (alias[args.path] ? { path: join(ROOT, alias[args.path]) } : undefined));
      const shim = options.globalsShim;
      if (shim) {
        b.onLoad({ filter: /\.ts$/ }, async (args) => {
          const text = await readFile(args.path, "utf8");
          const inside = shim.under.some((d) => args.path.startsWith(join(ROOT, d) + sep));
          if (!inside || args.path === join(ROOT, shim.file)) return undefined;
          const used = shim.names.filter((n) => new RegExp(`\\b${n}\\b`).test(text));
          if (used.length === 0) return undefined;
          const from = JSON.stringify(join(ROOT, shim.file));
          return { contents: `import { ${used.join(", ")} } from ${from};\n${text}`, loader: "ts" };
        });
      }
    },
  };
  const out = await build({
    entryPoints: [join(ROOT, entry)],
    bundle: true,
    write: false,
    format: "iife",
    platform: "neutral",
    mainFields: ["module", "main"],
    target: "es2022",
    charset: "utf8",
    legalComments: "none",
    define: { setTimeout: "__xsSetTimeout", clearTimeout: "__xsClearTimeout" },
    logLevel: "silent",
    plugins: [plugin],
  });
  return out.outputFiles[0].text;
}
