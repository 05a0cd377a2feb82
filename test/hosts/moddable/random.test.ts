// The seeded generator the Moddable desktop host uses in place of XS's unseeded Math.random.
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../../hosts/moddable/random";

describe("seededRandom", () => {
  it("draws uniformly in [0, 1), differently for different seeds and the same for the same seed", () => {
    const r = seededRandom(1_795_434_320_123);
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 100_000; i++) {
      const x = r();
      expect(x >= 0 && x < 1).toBe(true);
      buckets[Math.floor(x * 10)]++;
    }
    for (const n of buckets) expect(Math.abs(n - 10_000)).toBeLessThan(500);
    const first = (seed: number) => Array.from({ length: 4 }, seededRandom(seed));
    expect(first(1)).toEqual(first(1));
    expect(first(1)).not.toEqual(first(2));
    // seeds a millisecond apart (two devices started together) share no draw
    const a = new Set(first(1_795_434_320_123)),
      b = first(1_795_434_320_124);
    expect(b.some((x) => a.has(x))).toBe(false);
  });
});
