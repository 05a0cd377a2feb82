/**
 * From the figures a benchmark returns to the rows `npm run bench` prints: medians, spreads, ratios, the table and
 * the JSON. No timing and no Node API here, so test/bench/report.test.ts checks it on fixed numbers.
 *
 * A figure is one number (a size, a deterministic XS meter: nothing to spread) or one number per round. With rounds,
 * the row gives each side's median and, as the spread, the interquartile range (IQR: the 25th to the 75th
 * percentile, linear interpolation between the two nearest rounds) of each side and of the per-round ratios. Rounds
 * are paired: round i of ours ran next to round i of the peer (bench/harness.ts alternates which goes first), so
 * the ratio of a pair is little moved by what else the machine did at that moment; the row's ratio is the median of
 * those per-round ratios (so it lies inside its own IQR, which the ratio of the two medians need not).
 */

export type Better = "higher" | "lower";

/** A side's figure: one number, or one per round (rounds of both sides are paired by index). */
export type Figure = number | number[];

/** What a benchmark reports for one row (see bench/harness.ts). */
export interface Line {
  /** One line: the work both sides do for this row. */
  what: string;
  ours: Figure;
  /** Absent when there is no peer for this figure (then there is no ratio either). */
  peer?: Figure;
  /** What `ours` and `peer` are in; default "ops/s". */
  unit?: string;
  /** Default "higher"; "lower" for latency, bytes, heap. */
  better?: Better;
  [extra: string]: unknown;
}

export interface Spread {
  measure: "IQR";
  /** Rounds per side. */
  rounds: number;
  /** [25th, 75th] percentile of each side's rounds, and of the per-round ratios (oriented as `ratio`). */
  ours: [number, number];
  peer?: [number, number];
  ratio?: [number, number];
}

export interface Row {
  name: string;
  what: string;
  /** The median of the rounds, or the one figure. */
  ours: number;
  peer?: number;
  /**
   * > 1: ours is better. ours/peer where higher is better, peer/ours where lower is better: the median of the
   * per-round ratios when there are rounds, else the ratio of the two figures.
   */
  ratio?: number;
  unit: string;
  better?: "lower";
  /** null: one figure per side, nothing to spread (sizes, XS meters, which count rather than time). */
  spread: Spread | null;
  [extra: string]: unknown;
}

/** The p-quantile (0 ≤ p ≤ 1) of `xs`, linear interpolation between closest ranks (numpy's default). */
export function quantile(xs: readonly number[], p: number): number {
  if (xs.length === 0) throw new RangeError("quantile of no numbers");
  if (!(p >= 0 && p <= 1)) throw new RangeError(`quantile ${p} is not between 0 and 1`);
  const s = xs.slice().sort((a, b) => a - b);
  const at = (s.length - 1) * p,
    lo = Math.floor(at),
    hi = Math.ceil(at);
  return s[lo] + (s[hi] - s[lo]) * (at - lo);
}

export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/** [25th, 75th] percentile. */
export function iqr(xs: readonly number[]): [number, number] {
  return [quantile(xs, 0.25), quantile(xs, 0.75)];
}

/** The p-th percentile of latency samples as a latency benchmark reports it: nearest rank (p99 of 1000 = 990th). */
export function percentile(xs: readonly number[], p: number): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Rounds a figure for print and JSON: whole numbers from 1000 up, else 4 significant digits. */
export function round(x: number): number {
  return Math.abs(x) >= 1000 ? Math.round(x) : Number(x.toPrecision(4));
}

const round3 = (x: number): number => Number(x.toFixed(3));

function oriented(ours: number, peer: number, better: Better | undefined): number {
  return better === "lower" ? peer / ours : ours / peer;
}

function rounds(f: Figure, side: string, name: string): number[] {
  const xs = typeof f === "number" ? [f] : f;
  if (xs.length === 0) throw new Error(`benchmark "${name}": no rounds for ${side}`);
  for (const x of xs)
    if (!Number.isFinite(x))
      throw new Error(`benchmark "${name}": ${side} has a figure that is not a finite number (${x})`);
  return xs;
}

/** The row of a benchmark's line. Throws when the figures cannot make one (no rounds, NaN, unpaired rounds). */
export function toRow(name: string, line: Line): Row {
  const { what, ours, peer, unit, better, wallOurs, wallPeer, ...extra } = line;
  if (!what || /\n/.test(what)) throw new Error(`benchmark "${name}" needs a one-line description`);
  const o = rounds(ours, "ours", name);
  const p = peer === undefined ? undefined : rounds(peer, "peer", name);
  const timed = typeof ours !== "number" || (peer !== undefined && typeof peer !== "number");
  if (timed && p && o.length !== p.length)
    throw new Error(`benchmark "${name}": ${o.length} rounds of ours but ${p.length} of the peer`);
  const ratios = p ? o.map((x, i) => oriented(x, p[i], better)) : [];
  let spread: Spread | null = null;
  if (timed) {
    spread = { measure: "IQR", rounds: o.length, ours: iqr(o).map(round) as [number, number] };
    if (p) {
      spread.peer = iqr(p).map(round) as [number, number];
      spread.ratio = iqr(ratios).map(round3) as [number, number];
    }
  }
  return {
    name,
    what,
    ours: round(median(o)),
    ...(p ? { peer: round(median(p)), ratio: round3(median(ratios)) } : {}),
    unit: unit ?? "ops/s",
    ...(better === "lower" ? { better: "lower" as const } : {}),
    spread,
    ...extra,
    ...wallRatios(wallOurs, wallPeer),
  };
}

/** From the wall-clock rates of a row's rounds (CPU-time rows keep them beside): the ratio and its IQR. */
function wallRatios(ours: unknown, peer: unknown): { wallRatio?: number; wallRatioIQR?: [number, number] } {
  if (!Array.isArray(ours) || !Array.isArray(peer) || !ours.length || ours.length !== peer.length) return {};
  const r = (ours as number[]).map((x, i) => x / (peer as number[])[i]);
  return { wallRatio: round3(median(r)), wallRatioIQR: iqr(r).map(round3) as [number, number] };
}

function fmt(x: number | undefined): string {
  if (x === undefined) return "-";
  if (Number.isInteger(x)) return x.toLocaleString("en-US");
  return Math.abs(x) >= 100 ? Math.round(x).toLocaleString("en-US") : x.toPrecision(3);
}

function fmtRange(r: [number, number] | undefined): string {
  return r ? `${fmt(r[0])}–${fmt(r[1])}` : "";
}

function fmtRatio(x: number | undefined): string {
  return x === undefined ? "-" : `${x.toFixed(2)}x`;
}

/** The table for a person: medians, the IQRs, the ratio, then what each row measures. */
export function table(rows: Row[]): string {
  const head = ["benchmark", "ours", "IQR", "peer", "IQR", "unit", "ratio", "IQR"];
  const cells = rows.map((r) => [
    r.name,
    fmt(r.ours),
    fmtRange(r.spread?.ours),
    fmt(r.peer),
    fmtRange(r.spread?.peer),
    r.unit,
    fmtRatio(r.ratio),
    r.spread?.ratio ? `${r.spread.ratio[0].toFixed(2)}–${r.spread.ratio[1].toFixed(2)}` : "",
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const left = new Set([0, 2, 4, 5, 7]);
  const line = (c: string[]): string =>
    c
      .map((x, i) => (left.has(i) ? x.padEnd(w[i]) : x.padStart(w[i])))
      .join("  ")
      .trimEnd();
  return [
    line(head),
    w.map((n) => "-".repeat(n)).join("  "),
    ...cells.map(line),
    "",
    "ours, peer: the median of the rounds (or the one figure); ratio: the median of the per-round ratios (each",
    "round of ours against the peer's round beside it); IQR: 25th–75th percentile of the rounds, and of the",
    "per-round ratios; blank IQR: one figure, nothing to spread. ratio > 1: ours is better (ours/peer for rates,",
    "peer/ours where lower is better).",
    "",
    "What each row does (the same work on both sides):",
    ...rows.map((r) => `  ${r.name}: ${r.what}`),
    "",
  ].join("\n");
}

export interface Report {
  node: string;
  cpus: number;
  quick: boolean;
  spread: string;
  ratio: string;
  rows: Row[];
}

export function report(rows: Row[], env: { node: string; cpus: number; quick: boolean }): Report {
  return {
    ...env,
    spread:
      "IQR: [25th, 75th] percentile of the rounds (linear interpolation), per side and of the per-round ratios; null: one figure, nothing to spread",
    ratio:
      '> 1 means ours is better: ours/peer where higher is better, peer/ours where lower is better ("better": "lower"); with rounds, the median of the per-round ratios',
    rows,
  };
}
