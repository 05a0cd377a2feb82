// Codec fuzzer: random and mutated inputs through the push decoder, with random chunking and bounded maximum sizes.
//
//   npx tsx test/fuzz/codec-fuzz.ts [count = 1000000] [seed]      (npm run fuzz -- [count] [seed])
//
// Invariants checked on every input (see test/helpers/decode-check.ts): only MqttError is thrown, and after an error
// push keeps throwing it; pending and the body buffer stay within maxPacketSize; every decoded packet re-encodes and
// decodes back to an equal packet. Unmutated streams must also decode to exactly the packets they were made of.
// Prints the count, throughput and error-code histogram; prints each failure with its hex input and exits 1.
// Not part of `npm test` (its name has no .test.ts): run it by hand or in a nightly job.
import { concat as concatBytes } from "../helpers/bytes";
import fc from "fast-check";
import { DEFAULT_MAX_PACKET_SIZE, encode, type Packet, type ProtocolLevel } from "../../src/mqtt/codec.ts";
import * as arb from "../helpers/arbitraries.ts";
import { hex, same } from "../helpers/canon.ts";
import {
  chunk,
  mutate,
  oracleMismatch,
  runDecoder,
  type DecodeOptions,
  type Mutation,
} from "../helpers/decode-check.ts";

const count = Number(process.argv[2] ?? 1_000_000);
const seed = (process.argv[3] !== undefined ? Number(process.argv[3]) : Date.now()) >>> 0;
if (!(count > 0) || !Number.isInteger(count)) {
  console.error("usage: codec-fuzz.ts [count] [seed]");
  process.exit(2);
}

// mulberry32: small, fast, and reproducible from the printed seed
let state = seed;
function rnd(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(a: readonly T[]): T => a[int(a.length)];

// Structurally diverse valid packets, sampled once with fast-check; the PRNG combines and mutates them.
const LEVELS: ProtocolLevel[] = [3, 4, 5];
const POOL = 3000;
const pools = new Map<ProtocolLevel, { packet: Packet; bytes: Uint8Array }[]>();
for (const level of LEVELS) {
  pools.set(
    level,
    fc
      .sample(arb.packet(level), { numRuns: POOL, seed: seed + level })
      .map((packet) => ({ packet, bytes: encode(packet, level) })),
  );
}

const HEADERS = [
  0x10, 0x20, 0x30, 0x31, 0x32, 0x33, 0x38, 0x3b, 0x40, 0x50, 0x62, 0x82, 0x90, 0xa2, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0,
  0x00,
];

const concat = (parts: Uint8Array[]): Uint8Array => concatBytes(...parts);

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = int(256);
  return b;
}

function cutsFor(n: number): number[] {
  const r = rnd();
  if (r < 0.3) return []; // whole
  if (r < 0.45) return Array.from({ length: n }, (_, i) => i); // one byte at a time
  return Array.from({ length: 1 + int(6) }, () => int(n + 1));
}

function maxSize(stream: number): number {
  const r = rnd();
  if (r < 0.5) return 2 + int(400);
  if (r < 0.75) return Math.max(2, stream - 3 + int(7));
  return DEFAULT_MAX_PACKET_SIZE;
}

type Mode = "valid" | "mutated" | "random" | "random-body";
interface Case {
  mode: Mode;
  input: Uint8Array;
  options: DecodeOptions;
  expect?: Packet[];
}

function makeCase(): Case {
  const r = rnd();
  const level = pick(LEVELS);
  const pool = pools.get(level) as { packet: Packet; bytes: Uint8Array }[];
  if (r < 0.1) {
    const items = Array.from({ length: 1 + int(4) }, () => pick(pool));
    const input = concat(items.map((x) => x.bytes));
    const largest = Math.max(...items.map((x) => x.bytes.length));
    return {
      mode: "valid",
      input,
      expect: items.map((x) => x.packet),
      options: { level, maxPacketSize: largest + int(64), skipOversize: rnd() < 0.5 },
    };
  }
  if (r < 0.65) {
    const input0 = concat(Array.from({ length: 1 + int(3) }, () => pick(pool).bytes));
    const ms: Mutation[] = Array.from({ length: 1 + int(4) }, () => ({
      op: int(9),
      pos: int(1 << 20),
      val: int(256),
      len: 1 + int(8),
    }));
    const input = mutate(input0, ms);
    return {
      mode: "mutated",
      input,
      options: { level, maxPacketSize: maxSize(input.length), skipOversize: rnd() < 0.5 },
    };
  }
  if (r < 0.85) {
    const input = randomBytes(int(65));
    if (input.length && rnd() < 0.5) input[0] = pick(HEADERS);
    return {
      mode: "random",
      input,
      options: { level, maxPacketSize: maxSize(input.length), skipOversize: rnd() < 0.5 },
    };
  }
  const body = randomBytes(int(100));
  const input = Uint8Array.from([pick(HEADERS), body.length, ...body]);
  return {
    mode: "random-body",
    input,
    options: { level, maxPacketSize: maxSize(input.length), skipOversize: rnd() < 0.5 },
  };
}

const failures: string[] = [];
const codes = new Map<string, number>();
const modes = new Map<Mode, number>();
let packets = 0,
  skipped = 0,
  bytes = 0;
const t0 = performance.now();
let lastReport = t0;

for (let i = 0; i < count && failures.length < 10; i++) {
  const c = makeCase();
  const cuts = cutsFor(c.input.length);
  const chunks = chunk(c.input, cuts);
  let failure: string | undefined;
  let run: ReturnType<typeof runDecoder> | undefined;
  try {
    run = runDecoder(chunks, c.options);
    failure = run.failure;
    if (!failure) failure = oracleMismatch(c.input, run, c.options.level);
    if (!failure && c.expect) {
      const got = run.packets.map((x) => x.packet);
      if (run.error) failure = `a valid stream failed: ${run.error.code} ${run.error.message}`;
      else if (run.skipped === 0 && !same(got, c.expect)) failure = "a valid stream decoded to different packets";
      else if (run.skipped > 0 && got.length + run.skipped !== c.expect.length) failure = "a valid stream lost packets";
    }
  } catch (e) {
    failure = `the harness caught ${String(e)}`;
  }
  if (failure) {
    failures.push(
      [
        `FAILURE #${failures.length + 1} at input ${i} (seed ${seed}), ${c.mode}: ${failure}`,
        `  options ${JSON.stringify(c.options)}, chunks ${chunks.map((x) => x.length).join(",")}`,
        `  input ${hex(c.input)}`,
      ].join("\n"),
    );
    console.error(failures[failures.length - 1]);
    continue;
  }
  if (!run) continue;
  modes.set(c.mode, (modes.get(c.mode) ?? 0) + 1);
  packets += run.packets.length;
  skipped += run.skipped;
  bytes += c.input.length;
  const code = run.error ? run.error.code : run.truncated ? "TRUNCATED at finish()" : "ok";
  codes.set(code, (codes.get(code) ?? 0) + 1);
  const now = performance.now();
  if (now - lastReport > 5000) {
    lastReport = now;
    console.log(`  ${i + 1} inputs, ${((i + 1) / ((now - t0) / 1000)).toFixed(0)}/s`);
  }
}

const seconds = (performance.now() - t0) / 1000;
const done = [...modes.values()].reduce((a, b) => a + b, 0) + failures.length;
console.log(
  `codec fuzz: ${done} inputs in ${seconds.toFixed(1)} s (${(done / seconds).toFixed(0)} inputs/s, ` +
    `${(bytes / seconds / 1e6).toFixed(2)} MB/s), seed ${seed}`,
);
console.log(`  by kind: ${[...modes].map(([m, n]) => `${m} ${n}`).join(", ")}`);
console.log(`  ${packets} packets decoded (each re-encoded and decoded again), ${skipped} oversize packets skipped`);
console.log(
  `  outcomes: ${[...codes]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(", ")}`,
);
if (failures.length) {
  console.error(`${failures.length} failure(s): see above`);
  process.exit(1);
}
console.log("  no invariant broken");
