/**
 * `npm run bench [-- options] [name filters]`: every benchmark compares OUR implementation with a PEER in the same
 * process and the same run, in interleaved rounds, and reports the median of the rounds and their spread.
 *
 *   (default)   a table for a person on stdout, progress on stderr
 *   --json      exactly one JSON object on stdout, nothing else (progress still goes to stderr):
 *                 { "node": "v20…", "cpus": 2, "quick": false, "spread": "…", "ratio": "…",
 *                   "rows": [ { "name", "what", "ours", "peer", "ratio", "unit", "better"?, "spread", ...extra } ] }
 *               (`npm run` itself prints a "> ..." banner on stdout: use `npm run -s bench -- --json`)
 *   --quick     very short timings and few rounds, to check the harness works; not figures to quote
 *   --all       the slow benchmarks too (the real firmware image: it builds firmware, minutes per chip)
 *   words       run only the benchmarks whose name contains one of them (case-insensitive); a word that names a
 *               slow benchmark runs it
 *
 * ours and peer are medians of the rounds (or the one figure of an untimed row); spread is the IQR of each side's
 * rounds and of the per-round ratios, or null for a row with one figure (bench/report.ts). Ratio: > 1 always means
 * ours is better. For "higher is better" figures (ops/s, MiB/s) ratio = ours / peer; for "lower is better" ones
 * (`better: "lower"`: latency, bytes, heap per client) ratio = peer / ours, and the row carries "better": "lower".
 * `unit` says what ours and peer are in; a row without a peer has neither peer nor ratio. Extra fields a benchmark
 * returns (e.g. "packets") are copied into its row.
 *
 * The V8 benchmarks (codec, client) run each in a fresh Node process (`isolate`: this script with `--child <name>`),
 * so no row's figures depend on which rows ran before it; both sides of a row still share that process. The codec
 * rows run in three such processes each, their rounds pooled (`processes`, bench/harness.ts). Each
 * module's headline rows (each side with its defaults) come first, its "tuned: ..." rows after them.
 *
 * Adding benchmarks: write bench/<topic>.ts exporting `benchmarks: Benchmark[]` (see bench/harness.ts: `name` and
 * `run(ctx)` returning `{ what, ours, peer, unit?, better? }`, or `names` and a `run` returning one such line per
 * name), time with `compare()` for throughput, and add the module to MODULES below. A benchmark that cannot run on
 * this machine (no broker binary, say) throws `Skip`: it is reported on stderr and left out of the JSON.
 * A benchmark that throws anything else is reported on stderr and makes the exit code 1.
 */
import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { Skip, sinkValue } from "./harness";
import type { Benchmark, Context, Line } from "./harness";
import { report, round, table, toRow, type Row } from "./report";
import * as codec from "./codec";
import * as size from "./size";
import * as xsSize from "./xsnap/size";
import * as client from "./client";
import * as xs from "./xsnap/client";
import * as xsPeer from "./xsnap/peers";
import * as moddableImage from "./moddable-image";

const MODULES: { benchmarks: Benchmark[] }[] = [codec, size, xsSize, client, xs, xsPeer, moddableImage];

function usage(): never {
  process.stderr.write("usage: npm run bench -- [--json] [--quick] [--all] [name filter ...]\n");
  process.exit(2);
}

function brief(r: Row): string {
  const side = (x: number | undefined, s: [number, number] | undefined): string =>
    x === undefined ? "-" : s ? `${round(x)} (IQR ${round(s[0])}–${round(s[1])})` : `${round(x)}`;
  return (
    `ours ${side(r.ours, r.spread?.ours)}, peer ${side(r.peer, r.spread?.peer)} ${r.unit}, ratio ${r.ratio ?? "-"}` +
    (r.spread?.ratio ? ` (IQR ${r.spread.ratio[0]}–${r.spread.ratio[1]})` : "")
  );
}

function namesOf(b: Benchmark): string[] {
  return "names" in b ? b.names : [b.name];
}

async function runHere(b: Benchmark, ctx: Context): Promise<Record<string, Line>> {
  return "names" in b ? await b.run(ctx) : { [b.name]: await b.run(ctx) };
}

const CHILD = "--child";
const PROCESSES = "--processes";

/**
 * An `isolate` benchmark runs in a fresh Node process (this script with `--child <its first name>`, under the same
 * loader), so what earlier benchmarks taught V8's JIT about either side's code cannot speed up or slow down this
 * one: its figures do not depend on which benchmarks ran before it. Its progress goes to stderr as usual. One with
 * `processes` runs in that many such processes, one after another, and its rows pool their rounds.
 */
async function runIsolated(b: Benchmark, quick: boolean): Promise<Record<string, Line>> {
  const k = quick ? 1 : (b.processes ?? 1);
  const runs: Record<string, Line>[] = [];
  for (let i = 0; i < k; i++) runs.push(await runChild(b, quick, k));
  return k === 1 ? runs[0] : pool(runs);
}

/**
 * The lines of several processes as one: each timed figure's rounds one after another (round i of ours still
 * beside round i of the peer), the rest as the first process gave it.
 */
function pool(runs: Record<string, Line>[]): Record<string, Line> {
  const out: Record<string, Line> = {};
  for (const name of Object.keys(runs[0])) {
    const line: Line = { ...runs[0][name] };
    for (const key of ["ours", "peer", "wallOurs", "wallPeer"])
      if (Array.isArray(line[key])) line[key] = runs.flatMap((r) => r[name]?.[key] as number[]);
    out[name] = line;
  }
  return out;
}

/** One fresh process running the benchmark (told how many processes share its rounds). */
function runChild(b: Benchmark, quick: boolean, processes: number): Promise<Record<string, Line>> {
  const args = [
    ...process.execArgv,
    process.argv[1],
    CHILD,
    namesOf(b)[0],
    ...(quick ? ["--quick"] : []),
    PROCESSES,
    String(processes),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      let reply: { lines?: Record<string, Line>; skip?: string; error?: string };
      try {
        reply = JSON.parse(out) as typeof reply;
      } catch {
        return reject(new Error(`the benchmark's process exited with ${code} and no figures`));
      }
      if (reply.skip !== undefined) reject(new Skip(reply.skip));
      else if (reply.error !== undefined || !reply.lines) reject(new Error(reply.error ?? "no figures"));
      else resolve(reply.lines);
    });
  });
}

/** `--child <name>`: runs the one benchmark with that first name here and prints its lines as JSON. */
async function child(name: string, quick: boolean, processes: number): Promise<void> {
  const b = MODULES.flatMap((m) => m.benchmarks).find((x) => namesOf(x)[0] === name);
  const ctx: Context = { quick, processes, log: (m) => process.stderr.write(m + "\n") };
  let reply: object;
  try {
    if (!b) throw new Error(`no benchmark named "${name}"`);
    reply = { lines: await runHere(b, ctx) };
  } catch (e) {
    reply =
      e instanceof Skip ? { skip: e.message } : { error: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  }
  ctx.log(`  (sink ${sinkValue()})`);
  process.stdout.write(JSON.stringify(reply) + "\n");
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let json = false,
    quick = false,
    all = false;
  const filters: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--json") json = true;
    else if (a === "--quick") quick = true;
    else if (a === "--all") all = true;
    else if (a === CHILD && i + 1 < args.length) {
      const k = args.indexOf(PROCESSES);
      return child(args[i + 1], args.includes("--quick"), k > 0 ? Number(args[k + 1]) : 1);
    } else if (a.startsWith("-")) usage();
    else filters.push(a.toLowerCase());
  }
  const ctx: Context = { quick, log: (m) => process.stderr.write(m + "\n") };
  const picked = (name: string): boolean => filters.some((f) => name.toLowerCase().includes(f));
  const wanted = (name: string): boolean => filters.length === 0 || picked(name);

  const rows: Row[] = [];
  let failed = false;
  const started = Date.now();
  for (const mod of MODULES) {
    const modRows: Row[] = [];
    for (const b of mod.benchmarks) {
      const names = namesOf(b);
      if (!names.some(wanted)) continue;
      if (b.slow && !all && !names.some(picked)) {
        ctx.log(`${names[0]}${names.length > 1 ? ", ..." : ""}: left out (slow: run with --all, or name it)`);
        continue;
      }
      ctx.log(`${names.join(", ")} ...`);
      const t0 = Date.now();
      try {
        const lines = b.isolate ? await runIsolated(b, quick) : await runHere(b, ctx);
        for (const name of names) {
          if (!wanted(name)) continue;
          const line = lines[name];
          if (!line) throw new Error(`benchmark "${name}" returned no figure`);
          const r = toRow(name, line);
          modRows.push(r);
          ctx.log(`  ${name}: ${brief(r)}`);
        }
        ctx.log(`  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      } catch (e) {
        if (e instanceof Skip) ctx.log(`  skipped: ${e.message}`);
        else {
          failed = true;
          ctx.log(`  FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        }
      }
    }
    // each module's headline rows first, then its tuned variants ("tuned: ..."), kept apart
    rows.push(
      ...modRows.filter((r) => !r.name.startsWith("tuned:")),
      ...modRows.filter((r) => r.name.startsWith("tuned:")),
    );
  }
  ctx.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s (sink ${sinkValue()})`);
  const env = { node: process.version, cpus: availableParallelism(), quick };
  process.stdout.write(
    json
      ? JSON.stringify(report(rows, env)) + "\n"
      : `\nnode ${env.node}, ${env.cpus} cpus${quick ? ", --quick: not figures to quote" : ""}\n\n` + table(rows),
  );
  if (failed) process.exitCode = 1;
}

await main();
