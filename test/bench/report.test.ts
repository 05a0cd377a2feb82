// The bench's arithmetic on fixed numbers (medians, spreads, ratios: bench/report.ts), and one short real run of
// `npm run bench -- --json --quick` checked for well-formed rows. No timing is asserted: only the shape and the
// arithmetic the rows must satisfy whatever the machine.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { iqr, median, percentile, quantile, toRow, type Report, type Row } from "../../bench/report";

const ROOT = join(import.meta.dirname, "..", "..");

describe("bench statistics", () => {
  it("takes quantiles by linear interpolation between the closest ranks", () => {
    expect(median([1, 2, 3, 4])).toBe(2.5);
    expect(iqr([1, 2, 3, 4])).toEqual([1.75, 3.25]);
    expect(median([5, 1, 3])).toBe(3);
    expect(iqr([5, 1, 3])).toEqual([2, 4]);
    expect(quantile([7], 0.25)).toBe(7);
    expect(quantile([10, 0], 0)).toBe(0);
    expect(quantile([10, 0], 1)).toBe(10);
    expect(() => quantile([], 0.5)).toThrow(RangeError);
    expect(() => quantile([1], 1.5)).toThrow(RangeError);
  });

  it("takes latency percentiles by nearest rank", () => {
    const xs = Array.from({ length: 1000 }, (_, i) => 1000 - i); // 1000 .. 1, unsorted on purpose
    expect(percentile(xs, 50)).toBe(500);
    expect(percentile(xs, 99)).toBe(990);
    expect(percentile([3], 99)).toBe(3);
  });
});

describe("bench rows", () => {
  it("reports medians, IQRs and the median of the paired per-round ratios for rates", () => {
    const r = toRow("rate", {
      what: "one line",
      ours: [10, 20, 30],
      peer: [5, 10, 30],
      unit: "packets/s",
      extraField: 7,
    });
    expect(r).toEqual({
      name: "rate",
      what: "one line",
      ours: 20,
      peer: 10,
      ratio: 2,
      unit: "packets/s",
      extraField: 7,
      spread: { measure: "IQR", rounds: 3, ours: [15, 25], peer: [7.5, 20], ratio: [1.5, 2] },
    });
  });

  it("reports the wall-clock ratio of the same rounds from their wall-clock rates, not the rates themselves", () => {
    const r = toRow("cpu", {
      what: "one line",
      ours: [10, 20, 30],
      peer: [5, 10, 30],
      unit: "packets/CPU-s",
      wallOurs: [8, 9, 30],
      wallPeer: [4, 9, 10],
    });
    expect(r.wallRatio).toBe(2); // per round: 2, 1, 3
    expect(r.wallRatioIQR).toEqual([1.5, 2.5]);
    expect(r).not.toHaveProperty("wallOurs");
    expect(r).not.toHaveProperty("wallPeer");
  });

  it("orients the ratio so that > 1 means ours is better when lower is better", () => {
    const r = toRow("latency", { what: "one line", ours: [1, 2], peer: [2, 2], unit: "ms", better: "lower" });
    expect(r.ratio).toBe(1.5); // per round: 2/1 and 2/2
    expect(r.better).toBe("lower");
    expect(r.spread).toEqual({ measure: "IQR", rounds: 2, ours: [1.25, 1.75], peer: [2, 2], ratio: [1.25, 1.75] });
  });

  it("gives one figure no spread", () => {
    expect(toRow("size", { what: "bytes", ours: 400, peer: 1000, unit: "bytes", better: "lower" })).toEqual({
      name: "size",
      what: "bytes",
      ours: 400,
      peer: 1000,
      ratio: 2.5,
      unit: "bytes",
      better: "lower",
      spread: null,
    });
    expect(toRow("xs", { what: "slots", ours: 7, unit: "slots", better: "lower" })).toEqual({
      name: "xs",
      what: "slots",
      ours: 7,
      unit: "slots",
      better: "lower",
      spread: null,
    });
  });

  it("refuses figures it cannot make a row of", () => {
    expect(() => toRow("x", { what: "w", ours: [1, 2, 3], peer: [1, 2] })).toThrow(
      /3 rounds of ours but 2 of the peer/,
    );
    expect(() => toRow("x", { what: "w", ours: [1, Number.NaN], peer: [1, 2] })).toThrow(/not a finite number/);
    expect(() => toRow("x", { what: "w", ours: [] })).toThrow(/no rounds/);
    expect(() => toRow("x", { what: "", ours: 1 })).toThrow(/one-line description/);
    expect(() => toRow("x", { what: "two\nlines", ours: 1 })).toThrow(/one-line description/);
  });
});

describe("npm run bench -- --json --quick", () => {
  it("prints one JSON report of well-formed rows", async () => {
    const { stdout } = await promisify(execFile)(
      join(ROOT, "node_modules", ".bin", "tsx"),
      [
        "bench/run.ts",
        "--json",
        "--quick",
        "encode PUBLISH QoS 1, 64 B",
        "chunks, 4 KB",
        "codec size",
        "QoS 1 publish→receive latency",
      ],
      { cwd: ROOT, maxBuffer: 1 << 24 },
    );
    const report = JSON.parse(stdout) as Report;
    expect(report.quick).toBe(true);
    expect(report.node).toBe(process.version);
    const names = report.rows.map((r) => r.name);
    expect(names).toEqual(
      expect.arrayContaining([
        "encode PUBLISH QoS 1, 64 B payload",
        "decode in 1,460-byte chunks, 4 KB packets",
        "codec size (minified bytes)",
        "codec size (gzip bytes)",
      ]),
    );
    const pair = (p: unknown): [number, number] => {
      expect(Array.isArray(p) && p.length === 2 && p.every(Number.isFinite) && p[0] <= p[1]).toBe(true);
      return p as [number, number];
    };
    for (const r of report.rows as Row[]) {
      expect(typeof r.what === "string" && r.what.length > 0 && !r.what.includes("\n")).toBe(true);
      expect(Number.isFinite(r.ours) && typeof r.unit === "string").toBe(true);
      expect(typeof r.peer === "number" && Number.isFinite(r.peer) && typeof r.ratio === "number" && r.ratio > 0).toBe(
        true,
      );
      if (r.name.startsWith("codec size")) expect(r.spread).toBeNull();
      else {
        const s = r.spread!;
        expect(s.measure).toBe("IQR");
        expect(s.rounds).toBeGreaterThanOrEqual(3);
        const [lo, hi] = pair(s.ratio);
        expect(lo <= r.ratio! && r.ratio! <= hi).toBe(true);
        const [olo, ohi] = pair(s.ours),
          [plo, phi] = pair(s.peer);
        expect(olo <= r.ours && r.ours <= ohi && plo <= r.peer! && r.peer! <= phi).toBe(true);
      }
    }
  }, 180_000);
});
