// The layout is the architecture, and stays so: every import between folders goes down the stack below, never up
// or sideways into a circle, and no two files import each other, directly or round a loop.
//
//   src/  (the host contract, types only)  <  src/net  <  src/mqtt  <  src/uiot  <  src/device     device code
//   hosts/<target>                           what each target supplies (esp32 and the others build on hosts/moddable)
//   tools/<tool>                             the desktop tools (simulator, cloud, doctor, provision, xsnap, moddable)
//   test/helpers                             brokers, certificates, rigs: shared by the tests and the benchmarks
//   bench/                                   the benchmarks
//   test/, bin/                              the tests; the installed command
//
// Static imports, `export ... from` and dynamic imports with a literal specifier all count, type-only ones too: a
// type that points up the stack is as much a wrong arrow as a call.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, posix } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const files = execFileSync("git", ["ls-files", "-co", "--exclude-standard", "*.ts", "*.mjs"], {
  cwd: root,
  encoding: "utf8",
})
  .split("\n")
  .filter((f) => f !== "" && !f.endsWith(".d.ts"));
const known = new Set(files);

/** The folder a file belongs to, as the stack above names them. */
function folderOf(file: string): string {
  const parts = file.split("/");
  if (parts[0] === "src") return parts.length === 2 ? "src" : `src/${parts[1]}`;
  if (parts[0] === "hosts" || parts[0] === "tools") return `${parts[0]}/${parts[1]}`;
  if (parts[0] === "test" && parts[1] === "helpers") return "test/helpers";
  return parts[0];
}

/** Lower rank first; an import goes to a lower rank, or to the same rank only where SIDEWAYS allows it. */
function rankOf(folder: string): number {
  const order = ["src", "src/net", "src/mqtt", "src/uiot", "src/device"];
  if (order.includes(folder)) return order.indexOf(folder);
  if (folder.startsWith("hosts/")) return 10;
  if (folder.startsWith("tools/")) return 20;
  return { "test/helpers": 30, bench: 40, test: 50, bin: 50, "vitest.config.ts": 50 }[folder] ?? 100;
}

/** The arrows allowed between folders of one rank (each a fact of the design, and together without a circle). */
const SIDEWAYS = new Set([
  "hosts/esp32 -> hosts/moddable",
  "hosts/esp8266 -> hosts/moddable",
  "hosts/moddable-desktop -> hosts/moddable",
  "tools/simulator -> tools/cloud",
  "tools/simulator -> tools/provision",
  "tools/simulator -> tools/xsnap",
]);

const SPECIFIER =
  /(?:^|[\s;])(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|^\s*import\s+["']([^"']+)["']/gm;

/** file -> the repository files it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const targets: string[] = [];
    for (const m of readFileSync(join(root, file), "utf8").matchAll(SPECIFIER)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (!spec.startsWith(".")) continue;
      const base = posix.normalize(posix.join(posix.dirname(file), spec));
      const target = [base, `${base}.ts`, base.replace(/\.js$/, ".ts"), `${base}/index.ts`, `${base}.mjs`].find((c) =>
        known.has(c),
      );
      if (target !== undefined) targets.push(target);
    }
    graph.set(file, targets);
  }
  return graph;
}

/** The strongly connected components of more than one node (Tarjan's algorithm, iterative: no recursion). */
function circles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>(),
    low = new Map<string, number>(),
    onStack = new Set<string>();
  const stack: string[] = [],
    found: string[][] = [];
  let next = 0;
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work: [string, number][] = [[start, 0]];
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const [node, i] = frame;
      if (i === 0) {
        index.set(node, next);
        low.set(node, next++);
        stack.push(node);
        onStack.add(node);
      }
      const edges = graph.get(node) ?? [];
      if (i < edges.length) {
        frame[1]++;
        const to = edges[i];
        if (!index.has(to)) work.push([to, 0]);
        else if (onStack.has(to)) low.set(node, Math.min(low.get(node)!, index.get(to)!));
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1][0];
        low.set(parent, Math.min(low.get(parent)!, low.get(node)!));
      }
      if (low.get(node) === index.get(node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== node);
        if (component.length > 1) found.push(component.sort());
      }
    }
  }
  return found;
}

describe("the layout", () => {
  const graph = importGraph();

  it("every file belongs to a folder of the stack", () => {
    expect(files.filter((f) => rankOf(folderOf(f)) === 100)).toEqual([]);
  });

  it("imports between folders go down the stack (or along an allowed arrow), never up", () => {
    const wrong: string[] = [];
    for (const [file, targets] of graph) {
      const from = folderOf(file);
      for (const target of targets) {
        const to = folderOf(target);
        if (from === to || rankOf(to) < rankOf(from) || SIDEWAYS.has(`${from} -> ${to}`)) continue;
        wrong.push(`${file} -> ${target} (${from} -> ${to})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("the allowed arrows between folders of one rank make no circle", () => {
    const folders = new Map<string, string[]>();
    for (const arrow of SIDEWAYS) {
      const [from, to] = arrow.split(" -> ");
      folders.set(from, [...(folders.get(from) ?? []), to]);
    }
    expect(circles(folders)).toEqual([]);
  });

  it("no two files import each other, directly or round a loop", () => {
    expect(circles(graph)).toEqual([]);
  });

  it("finds a circle and an upward arrow when there is one (the checks can fail)", () => {
    expect(
      circles(
        new Map([
          ["a", ["b"]],
          ["b", ["c"]],
          ["c", ["a"]],
          ["d", ["a"]],
        ]),
      ),
    ).toEqual([["a", "b", "c"]]);
    expect(rankOf(folderOf("src/uiot/x.ts")) < rankOf(folderOf("src/device/y.ts"))).toBe(true);
    expect(rankOf(folderOf("hosts/node/x.ts")) < rankOf(folderOf("tools/cloud/y.ts"))).toBe(true);
  });
});
