/**
 * `npm run bench [-- options] [name filters]`: every benchmark compares OUR implementation with a PEER in the same
 * process and the same run.
 *
 *   (default)   a table for a person on stdout, progress on stderr
 *   --json      exactly one JSON object on stdout, nothing else (progress still goes to stderr):
 *                 { "<benchmark name>": { "ours": n, "peer": n, "ratio": n, "unit": "packets/s", ... }, ... }
 *               (`npm run` itself prints a "> ..." banner on stdout: use `npm run -s bench -- --json`)
 *   --quick     very short timings, to check the harness works; not figures to quote
 *   words       run only the benchmarks whose name contains one of them (case-insensitive)
 *
 * Ratio: > 1 always means ours is better. For "higher is better" figures (ops/s, MiB/s) ratio = ours / peer; for
 * "lower is better" ones (`better: "lower"`: latency, bytes, heap per client) ratio = peer / ours, and the line
 * carries "better": "lower". `unit` says what ours and peer are in; a line without a peer has neither peer nor
 * ratio. Extra fields a benchmark returns (e.g. "packets") are copied into its JSON object.
 *
 * Adding benchmarks: write bench/<topic>.ts exporting `benchmarks: Benchmark[]` (see bench/harness.ts: `name` and
 * `run(ctx)` returning `{ ours, peer, unit?, better? }`, or `names` and a `run` returning one such line per name),
 * time with `compare()` for throughput, and add the module to MODULES below. A benchmark that cannot run on this
 * machine (no broker binary, say) throws `Skip`: it is reported on stderr and left out of the JSON.
 * A benchmark that throws anything else is reported on stderr and makes the exit code 1.
 */
import { Skip, sinkValue } from "./harness";
import type { Benchmark, Context, Line } from "./harness";
import * as codec from "./codec";
import * as size from "./size";
import * as xsSize from "./xs-size";
import * as client from "./client";
import * as xs from "./xs";
import * as xsPeer from "./xs-peer";
import * as moddableImage from "./moddable-image";

const MODULES: { benchmarks: Benchmark[] }[] = [codec, size, xsSize, client, xs, xsPeer, moddableImage];

interface Result extends Line {
  ratio?: number;
}

function usage(): never {
  process.stderr.write("usage: npm run bench -- [--json] [--quick] [name filter ...]\n");
  process.exit(2);
}

function round(x: number): number {
  return Math.abs(x) >= 1000 ? Math.round(x) : Number(x.toPrecision(4));
}

function result(line: Line): Result {
  const { ours, peer, unit, better, ...extra } = line;
  const r: Result = { ours: round(ours) };
  if (peer !== undefined) {
    r.peer = round(peer);
    r.ratio = Number(((better === "lower" ? peer / ours : ours / peer)).toFixed(3));
  }
  r.unit = unit ?? "ops/s";
  if (better === "lower") r.better = "lower";
  return Object.assign(r, extra);
}

function fmt(x: number | undefined): string {
  if (x === undefined) return "-";
  return x >= 100 ? Math.round(x).toLocaleString("en-US") : x.toPrecision(4);
}

function table(results: Record<string, Result>): string {
  const head = ["benchmark", "ours", "peer", "unit", "ratio"];
  const rows = Object.entries(results).map(([name, r]) => [
    name, fmt(r.ours), fmt(r.peer), r.unit ?? "", r.ratio === undefined ? "-" : `${r.ratio.toFixed(2)}x`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 || i === 3 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  ");
  return [line(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n") +
    "\n\nratio > 1: ours is better (ours/peer for rates, peer/ours for lower-is-better figures)\n";
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let json = false, quick = false;
  const filters: string[] = [];
  for (const a of args) {
    if (a === "--json") json = true;
    else if (a === "--quick") quick = true;
    else if (a.startsWith("-")) usage();
    else filters.push(a.toLowerCase());
  }
  const ctx: Context = { quick, log: (m) => process.stderr.write(m + "\n") };
  const wanted = (name: string): boolean => filters.length === 0 || filters.some((f) => name.toLowerCase().includes(f));

  const results: Record<string, Result> = {};
  let failed = false;
  const started = Date.now();
  for (const mod of MODULES) {
    for (const b of mod.benchmarks) {
      const names = "names" in b ? b.names : [b.name];
      if (!names.some(wanted)) continue;
      ctx.log(`${names.join(", ")} ...`);
      try {
        const lines: Record<string, Line> = "names" in b ? await b.run(ctx) : { [b.name]: await b.run(ctx) };
        for (const name of names) {
          if (!wanted(name)) continue;
          const line = lines[name];
          if (!line) throw new Error(`benchmark "${name}" returned no figure`);
          results[name] = result(line);
          const r = results[name];
          ctx.log(`  ${name}: ours ${fmt(r.ours)}, peer ${fmt(r.peer)} ${r.unit}, ratio ${r.ratio ?? "-"}`);
        }
      } catch (e) {
        if (e instanceof Skip) ctx.log(`  skipped: ${e.message}`);
        else {
          failed = true;
          ctx.log(`  FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        }
      }
    }
  }
  ctx.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s (sink ${sinkValue()})`);
  process.stdout.write(json ? JSON.stringify(results) + "\n" : "\n" + table(results));
  if (failed) process.exitCode = 1;
}

await main();
