// The XS side of the XS suite: the portable test files (run as they are, "vitest" being test/xsnap/shim/vitest.ts)
// and the codec vectors the Node side sends. globalThis.handleCommand takes JSON commands:
//   {"op":"vectors","vectors":[...]}   keep codec vectors (test/xsnap/vectors.ts) for the next run
//   {"op":"run","filter":"..."}        run the tests (names containing filter) and the vectors; reply: outcomes
import { Decoder, encode, MqttError, type Packet, type ProtocolLevel } from "../../../src/mqtt/codec";
import { decodeUtf8, utf8Bytes } from "../../../src/mqtt/utf8";
import { run, type Outcome } from "../shim/vitest";
import { canon, fromHex, toHex, untag, type Vector } from "./canon";
import { TEST_FILES } from "./files";
import fc from "fast-check";

// Property tests run 10 cases each here (V8 runs them with fast-check's 100): XS is an interpreter, and the
// WebSocket chunking property alone takes minutes at 100.
fc.configureGlobal({ numRuns: 10 });

void TEST_FILES;

let vectors: Vector[] = [];

function codeOf(e: unknown): string {
  if (e instanceof MqttError) return e.code;
  return `${(e as Error)?.name ?? "?"}: ${(e as Error)?.message ?? String(e)}`;
}

function decodeAll(bytes: Uint8Array, level: ProtocolLevel, chunk: number): { packets: string[] } | { error: string } {
  const packets: string[] = [];
  try {
    const d = new Decoder((p) => packets.push(canon(p)), { level, maxPacketSize: 268435460 });
    if (chunk >= bytes.length) d.push(bytes);
    else for (let i = 0; i < bytes.length; i += chunk) d.push(bytes.slice(i, i + chunk));
    d.finish();
    return { packets };
  } catch (e) {
    return { error: codeOf(e) };
  }
}

function checkVector(v: Vector): string | undefined {
  if (v.packet !== undefined && v.encoded) {
    let got: { hex: string } | { error: string };
    try {
      got = { hex: toHex(encode(untag(v.packet) as Packet, v.level)) };
    } catch (e) {
      got = { error: codeOf(e) };
    }
    if (JSON.stringify(got) !== JSON.stringify(v.encoded))
      return `encode: V8 ${JSON.stringify(v.encoded)}, XS ${JSON.stringify(got)}`;
  }
  if (v.bytes !== undefined && v.decoded) {
    const bytes = fromHex(v.bytes);
    const want = JSON.stringify(v.decoded);
    const whole = JSON.stringify(decodeAll(bytes, v.level, Infinity));
    if (whole !== want) return `decode: V8 ${want}, XS ${whole}`;
    // a packet split anywhere decodes the same: one byte at a time, and in 7-byte chunks
    for (const chunk of [1, 7]) {
      if (bytes.length > 4096 && chunk === 1) continue;
      const got = JSON.stringify(decodeAll(bytes, v.level, chunk));
      if (got !== want) return `decode in ${chunk}-byte chunks: V8 (whole) ${want}, XS ${got}`;
    }
  }
  return undefined;
}

function reply(value: unknown): ArrayBuffer {
  const b = utf8Bytes(JSON.stringify(value));
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

(globalThis as unknown as { handleCommand: (m: ArrayBuffer) => unknown }).handleCommand = (message: ArrayBuffer) => {
  const bytes = new Uint8Array(message);
  const cmd = JSON.parse(decodeUtf8(bytes, 0, bytes.length)) as {
    op: string;
    vectors?: Vector[];
    filter?: string;
    trace?: boolean;
    skip?: string[];
  };
  // with trace, each test's name is printed (stdout) before it runs: what was running when XS aborts
  const trace = cmd.trace
    ? (name: string) =>
        void (globalThis as unknown as { issueCommand(b: ArrayBuffer): ArrayBuffer }).issueCommand(
          reply(`running ${name}`),
        )
    : undefined;
  if (cmd.op === "vectors") {
    vectors = cmd.vectors ?? [];
    return reply({ vectors: vectors.length });
  }
  if (cmd.op === "run") {
    const box: { result?: ArrayBuffer } = {};
    const filter = cmd.filter ?? "";
    run(filter, trace, cmd.skip ?? []).then(
      (outcomes: Outcome[]) => {
        for (const v of vectors) {
          if (filter && !`codec vector: ${v.name}`.includes(filter)) continue;
          trace?.(`codec vector: ${v.name}`);
          let error: string | undefined;
          try {
            error = checkVector(v);
          } catch (e) {
            error = `threw ${codeOf(e)}`;
          }
          outcomes.push(
            error === undefined
              ? { name: `codec vector: ${v.name}`, ok: true }
              : { name: `codec vector: ${v.name}`, ok: false, error },
          );
        }
        box.result = reply(outcomes);
      },
      (e: unknown) => {
        box.result = reply([{ name: "the XS test runner", ok: false, error: codeOf(e) }]);
      },
    );
    return box;
  }
  throw new Error(`unknown command ${cmd.op}`);
};
