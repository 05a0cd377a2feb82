// The portable code on the real XS engine (Moddable's, built by @agoric/xsnap at npm install): the test files of
// test/xsnap/suite/files.ts run unchanged inside XS, and the codec vectors (mqtt-packet's fixtures, random packets and
// corruptions of them) must give in XS exactly what they give on V8. Each check inside XS is one test here.
import { describe, expect, it } from "vitest";
import { hasXsnap, xsnapBinary } from "../../tools/xsnap/worker.ts";
import { runXsSuite, SLOW, type Outcome } from "./run.ts";

// CI (.ci/run) builds the engine first, so this never skips there; elsewhere a missing build is a skip with a
// reason, and a suite that cannot run is a failure.
const available = hasXsnap();
let outcomes: Outcome[] = [];
let failure: Error | undefined;
if (available) {
  try {
    outcomes = (await runXsSuite()).outcomes;
  } catch (e) {
    failure = e as Error;
  }
}

// .ci/run sets XS_REQUIRED: there a missing engine is a failure, never a skip
it.runIf(!available && !!process.env.XS_REQUIRED)("XS is built (XS_REQUIRED is set)", () => {
  throw new Error(`${xsnapBinary()} is missing: npm run build:xs`);
});

describe.skipIf(!available)(`XS (${available ? xsnapBinary() : "not built: run npm run build:xs"})`, () => {
  it("runs the suite: every test file and the codec vectors", () => {
    if (failure) throw failure;
    expect(outcomes.length).toBeGreaterThan(1000);
    expect(outcomes.filter((o) => o.name.startsWith("codec vector: fixture")).length).toBeGreaterThan(150);
    expect(outcomes.filter((o) => o.name.startsWith("codec vector: random")).length).toBeGreaterThan(800);
  });
  it("leaves out only the slow tests listed, each with a reason", () => {
    for (const name of Object.keys(SLOW)) expect(outcomes.some((o) => o.name === name)).toBe(!!process.env.XS_FULL);
  });
  for (const o of outcomes) {
    it(`in XS: ${o.name}`, () => {
      if (!o.ok) throw new Error(o.error);
    });
  }
});
