// Runs the XS suite (test/xsnap/suite/entry.ts) in Moddable's XS engine: bundles it, starts an xsnap worker, sends
// the codec vectors and runs everything. Shared by test/xsnap/xs.test.ts and `npx tsx test/xsnap/run.ts [filter]`.
import { bundleForXs, PRELUDE } from "../../tools/xsnap/bundle.ts";
import { startXs, type Meters } from "../../tools/xsnap/worker.ts";
import { codecVectors } from "./vectors.ts";

export interface Outcome {
  name: string;
  ok: boolean;
  error?: string;
  ms?: number;
}

export const SUITE_BUNDLE = {
  alias: { vitest: "test/xsnap/shim/vitest.ts", "node:crypto": "test/xsnap/shim/node-crypto.ts" },
  globalsShim: { file: "test/xsnap/shim/globals.ts", names: ["TextEncoder", "TextDecoder", "Buffer"], under: ["test"] },
};

/**
 * Tests left out of the XS run of `npm test`, with the reason (XS_FULL=1 runs them too). Only for run time: a
 * failure is never a reason to leave a test out.
 */
export const SLOW: Record<string, string> = {
  "random chunking of the server's bytes > changes nothing: the same MQTT bytes, the same pongs, the same close":
    "over 100 s on XS even at 10 runs (frames of up to 70 KB, fed in chunks of up to 400 bytes)",
};

export async function runXsSuite(
  filter = "",
  skip: string[] = process.env.XS_FULL ? [] : Object.keys(SLOW),
): Promise<{ outcomes: Outcome[]; meters: Meters; output: string }> {
  const code = await bundleForXs("test/xsnap/suite/entry.ts", SUITE_BUNDLE);
  const vectors = codecVectors();
  let last = "";
  const w = startXs({ onQuery: (m) => ((last = Buffer.from(m).toString()), new Uint8Array(0)) });
  try {
    await w.evaluate(PRELUDE);
    await w.evaluate(code);
    await w.command(JSON.stringify({ op: "vectors", vectors }));
    const r = await w.command(JSON.stringify({ op: "run", filter, trace: true, skip }));
    return { outcomes: JSON.parse(Buffer.from(r.reply).toString()) as Outcome[], meters: r.meters, output: w.output() };
  } catch (e) {
    throw new Error(`${(e as Error).message}${last ? `\nwhile ${JSON.parse(last)}` : ""}`);
  } finally {
    await w.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const started = Date.now();
  const { outcomes, meters } = await runXsSuite(process.argv[2] ?? "");
  const bad = outcomes.filter((o) => !o.ok);
  for (const o of outcomes.filter((x) => (x.ms ?? 0) > 500).sort((a, b) => (b.ms ?? 0) - (a.ms ?? 0)))
    console.log(`${o.ms} ms  ${o.name}`);
  for (const b of bad) console.log(`FAIL ${b.name}\n  ${b.error}`);
  console.log(
    `${outcomes.length} checks in XS, ${bad.length} failed, ${Date.now() - started} ms, ${meters.compute} compute units`,
  );
  process.exitCode = bad.length ? 1 : 0;
}
