/**
 * The benchmark registry's types and the timing loop shared by every benchmark.
 *
 * A benchmark module exports `benchmarks: Benchmark[]`; bench/run.ts lists the modules. A Benchmark has one
 * `name` and a `run` that returns one Line, or `names` and a `run` that returns a Line per name (for setups that
 * yield several figures at once, e.g. latency p50 and p99 from one broker session).
 *
 * A Line is `{ ours, peer, unit?, better?, ...extra }`. `unit` defaults to "ops/s". `better` defaults to "higher";
 * for "lower is better" metrics (latency, bytes, heap) set `better: "lower"`. run.ts adds `ratio`, always oriented
 * so that ratio > 1 means ours is better: ours/peer when higher is better, peer/ours when lower is better.
 * Extra fields (numbers or strings) are passed through to the JSON output unchanged.
 */
import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** A full GC before each round, so neither side pays for the other's garbage (the usual --expose-gc trick). */
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

export type Better = "higher" | "lower";

export interface Line {
  ours: number;
  /** Absent when there is no peer for this figure (then there is no ratio either). */
  peer?: number;
  unit?: string;
  better?: Better;
  [extra: string]: unknown;
}

export interface Context {
  /** Short timings (`--quick`): a smoke test of the harness, not figures to quote. */
  quick: boolean;
  /** Progress for a person: goes to stderr, never to stdout. */
  log(message: string): void;
}

export type Benchmark =
  | { name: string; run(ctx: Context): Line | Promise<Line> }
  | { names: string[]; run(ctx: Context): Record<string, Line> | Promise<Record<string, Line>> };

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
  /** Length of one round, ms. */
  roundMs: number;
}

export function timing(ctx: Context): TimingOptions {
  return ctx.quick ? { warmupMs: 30, rounds: 2, roundMs: 40 } : { warmupMs: 300, rounds: 5, roundMs: 300 };
}

/** Runs `fn` for about `ms`; returns the batch size that makes one batch last about 5 ms. */
function warmUp(fn: Loop, ms: number): number {
  gc();
  const start = performance.now();
  let n = 1, rate = 0;
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

/** Operations per second of `fn` over one round of about `ms`. */
function round(fn: Loop, n: number, ms: number): number {
  let ops = 0, elapsed = 0;
  gc();
  const t0 = performance.now();
  do {
    sink = (sink + fn(n)) | 0;
    ops += n;
    elapsed = performance.now() - t0;
  } while (elapsed < ms);
  return (ops * 1000) / elapsed;
}

/**
 * Measures both sides in the same process: warm-up of each, then alternating rounds; the result for each side is
 * its best round (the least disturbed by GC pauses of the other side, other processes and timer noise).
 */
export function compare(ours: Loop, peer: Loop, opts: TimingOptions): { ours: number; peer: number } {
  const no = warmUp(ours, opts.warmupMs), np = warmUp(peer, opts.warmupMs);
  let bestOurs = 0, bestPeer = 0;
  for (let r = 0; r < opts.rounds; r++) {
    if (r % 2 === 0) {
      bestOurs = Math.max(bestOurs, round(ours, no, opts.roundMs));
      bestPeer = Math.max(bestPeer, round(peer, np, opts.roundMs));
    } else {
      bestPeer = Math.max(bestPeer, round(peer, np, opts.roundMs));
      bestOurs = Math.max(bestOurs, round(ours, no, opts.roundMs));
    }
  }
  return { ours: bestOurs, peer: bestPeer };
}

/** Throws unless `cond`: a benchmark whose two sides do not do the same work must not report a figure. */
export function check(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(`benchmark sanity check failed: ${what}`);
}
