/**
 * The benchmark registry's types and the timing loop shared by every benchmark.
 *
 * A benchmark module exports `benchmarks: Benchmark[]`; bench/run.ts lists the modules. A Benchmark has one
 * `name` and a `run` that returns one Line, or `names` and a `run` that returns a Line per name (for setups that
 * yield several figures at once, e.g. latency p50 and p99 from one broker session).
 *
 * A Line (bench/report.ts) is `{ what, ours, peer?, unit?, better?, ...extra }`: `what` says in one line what
 * both sides do; `ours` and `peer` are one number, or one number per round (paired: round i of each side ran
 * side by side), from which run.ts reports the medians, their spread (IQR) and the ratio. `unit` defaults to
 * "ops/s". `better` defaults to "higher"; for "lower is better" metrics (latency, bytes, heap) set
 * `better: "lower"`. The ratio is always oriented so that > 1 means ours is better. Extra fields (numbers or
 * strings) are passed through to the JSON output unchanged.
 */
import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Line } from "./report";

export type { Better, Figure, Line } from "./report";

/** A full GC before each round, so neither side pays for the other's garbage (the usual --expose-gc trick). */
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

export interface Context {
  /** Short timings (`--quick`): a smoke test of the harness, not figures to quote. */
  quick: boolean;
  /**
   * How many fresh processes share this benchmark's rounds (`processes`, below): each runs its share of them and
   * run.ts pools the rounds of all. 1 when absent.
   */
  processes?: number;
  /** Progress for a person: goes to stderr, never to stdout. */
  log(message: string): void;
}

/**
 * `slow`: takes minutes (builds firmware, say), so a plain `npm run bench` leaves it out; it runs with `--all` or
 * when a filter word picks one of its names.
 * `isolate`: runs in a fresh Node process of its own (see bench/run.ts), so that what V8 learnt from earlier
 * benchmarks about either side's code does not move its figures.
 * `processes` (with `isolate`): runs in that many fresh processes one after another, each timing its share of the
 * rounds, and the rows pool the rounds of all. V8's optimizing compiler settles each process on its own choices
 * (what it inlines, say), and the same loop then runs at one speed or at another, several times apart, for the
 * whole life of that process; the rounds of one process would all share its draw.
 */
interface Options {
  slow?: boolean;
  isolate?: boolean;
  processes?: number;
}

export type Benchmark =
  | (Options & { name: string; run(ctx: Context): Line | Promise<Line> })
  | (Options & { names: string[]; run(ctx: Context): Record<string, Line> | Promise<Record<string, Line>> });

/** Thrown (or rejected) by a benchmark that cannot run here, e.g. without a broker binary: reported, not fatal. */
export class Skip extends Error {}

/**
 * A timed loop body: runs the operation `n` times and returns a number that depends on every result (lengths
 * summed), which the harness folds into a global sink so the work cannot be optimised away.
 */
export type Loop = (n: number) => number;

let sink = 0;
/** The folded results of every loop run so far (printed to stderr at the end, to keep them observable). */
export function sinkValue(): number {
  return sink;
}

export interface TimingOptions {
  /** Warm-up time per side, ms. */
  warmupMs: number;
  /** Measured rounds per side; the sides alternate, and which goes first alternates too. */
  rounds: number;
  /** Length of one round, ms of CPU time. */
  roundMs: number;
}

/** Rounds of a timed row in all (split among its processes, see `processes`). */
const ROUNDS = 12;

export function timing(ctx: Context): TimingOptions {
  if (ctx.quick) return { warmupMs: 50, rounds: 3, roundMs: 20 };
  return { warmupMs: 250, rounds: Math.ceil(ROUNDS / (ctx.processes ?? 1)), roundMs: 100 };
}

/** A full GC (both generations). */
export function fullGc(): void {
  gc();
}

/** Runs `fn` for about `ms`; returns the batch size that makes one batch last about 5 ms. */
function warmUp(fn: Loop, ms: number): number {
  gc();
  const start = performance.now();
  let n = 1,
    rate = 0;
  for (;;) {
    const t0 = performance.now();
    sink = (sink + fn(n)) | 0;
    const t1 = performance.now();
    if (t1 - t0 > 0.5) rate = n / (t1 - t0);
    if (t1 - start >= ms) break;
    if (t1 - t0 < 5) n *= 2;
  }
  return Math.max(1, Math.round(rate * 5) || n);
}

/** CPU time of this process since `from` (user + system, all its threads: GC helpers too), ms. */
function cpuMs(from: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(from);
  return (c.user + c.system) / 1000;
}

/**
 * One round of `fn` in batches of `n`, after a full GC, until the process has spent `ms` of CPU time on it.
 * Returns operations per CPU second and per wall-clock second.
 */
function round(fn: Loop, n: number, ms: number): { cpu: number; wall: number } {
  let ops = 0,
    cpu = 0;
  gc();
  const c0 = process.cpuUsage(),
    t0 = performance.now();
  do {
    sink = (sink + fn(n)) | 0;
    ops += n;
    cpu = cpuMs(c0);
  } while (cpu < ms);
  return { cpu: (ops * 1000) / cpu, wall: (ops * 1000) / (performance.now() - t0) };
}

export interface Rounds {
  /** Operations per CPU second of each round (the figures the rows report). */
  ours: number[];
  peer: number[];
  /** Operations per wall-clock second of the same rounds. */
  wallOurs: number[];
  wallPeer: number[];
}

/**
 * Measures both sides in the same process: a warm-up of each, then `rounds` pairs of rounds, the sides
 * alternating and which goes first alternating too (ours first in even pairs). Returns every round's rate, paired
 * by index, for run.ts to take medians and spreads of.
 *
 * A round lasts a fixed amount of the process's CPU time, and its rate is operations per CPU second: on a machine
 * shared with other work, wall-clock time also counts the moments the process was not running at all, which land
 * on one side or the other by chance (on this 2-core machine under load, wall-clock rounds of the same loop spread
 * two to four times wider). The wall-clock rates of the same rounds are returned too (see `wall`).
 */
export function compare(ours: Loop, peer: Loop, opts: TimingOptions): Rounds {
  const no = warmUp(ours, opts.warmupMs),
    np = warmUp(peer, opts.warmupMs);
  const r: Rounds = { ours: [], peer: [], wallOurs: [], wallPeer: [] };
  const one = (fn: Loop, n: number, cpu: number[], wall: number[]): void => {
    const x = round(fn, n, opts.roundMs);
    cpu.push(x.cpu);
    wall.push(x.wall);
  };
  for (let i = 0; i < opts.rounds; i++) {
    if (i % 2 === 0) {
      one(ours, no, r.ours, r.wallOurs);
      one(peer, np, r.peer, r.wallPeer);
    } else {
      one(peer, np, r.peer, r.wallPeer);
      one(ours, no, r.ours, r.wallOurs);
    }
  }
  return r;
}

/**
 * A row's figures from `compare`: CPU-time rates, and the wall-clock rates of the same rounds (`wallOurs`,
 * `wallPeer`), of which the row reports the ratio (`wallRatio`, `wallRatioIQR`: report.ts).
 */
export function rates(r: Rounds, k = 1): { ours: number[]; peer: number[]; wallOurs: number[]; wallPeer: number[] } {
  return { ours: scale(r.ours, k), peer: scale(r.peer, k), wallOurs: r.wallOurs, wallPeer: r.wallPeer };
}

/** Every round's figure times `k` (rates in packets/s to MiB/s, say). */
export function scale(xs: number[], k: number): number[] {
  return xs.map((x) => x * k);
}

/** Throws unless `cond`: a benchmark whose two sides do not do the same work must not report a figure. */
export function check(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(`benchmark sanity check failed: ${what}`);
}
