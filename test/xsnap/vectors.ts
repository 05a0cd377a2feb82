// Codec vectors for the XS run, made on the Node side: the fixtures of mqtt-packet's test suite (every kind: their
// packets to encode and their bytes to decode, errors included), fast-check packets of every level (fixed seed)
// and corrupted encodings of them. The expectation of each is what our codec does on V8; test/mqtt/ checks that
// against mqtt-packet, and the XS run must do exactly the same (bytes, fields, error codes).
import fc from "fast-check";
import { Decoder, encode, MqttError, type Packet, type ProtocolLevel } from "../../src/mqtt/codec.ts";
import * as arb from "../helpers/arbitraries.ts";
import { fixtureLevel, loadFixtures, toModel, Unsupported } from "../helpers/mqtt-packet-fixtures.ts";
import { canon, tag, toHex, type Vector } from "./suite/canon.ts";

const LARGEST = 70000;

function encoded(p: Packet, level: ProtocolLevel): Vector["encoded"] {
  try {
    return { hex: toHex(encode(p, level)) };
  } catch (e) {
    if (e instanceof MqttError) return { error: e.code };
    return { error: `${(e as Error).name}` };
  }
}

function decoded(bytes: Uint8Array, level: ProtocolLevel): Vector["decoded"] {
  const packets: string[] = [];
  try {
    const d = new Decoder((p) => packets.push(canon(p)), { level, maxPacketSize: 268435460 });
    d.push(bytes);
    d.finish();
    return { packets };
  } catch (e) {
    if (e instanceof MqttError) return { error: e.code };
    return { error: `${(e as Error).name}` };
  }
}

function modelOf(
  obj: unknown,
  level: ProtocolLevel,
  downgrade: boolean,
): { packet: Packet; level: ProtocolLevel } | undefined {
  try {
    return toModel(obj, { level, downgrade });
  } catch (e) {
    if (e instanceof Unsupported) return undefined;
    throw e;
  }
}

export function fixtureVectors(): Vector[] {
  const out: Vector[] = [];
  loadFixtures().forEach((f, i) => {
    const level = fixtureLevel(f.opts);
    const v: Vector = { name: `fixture #${i} ${f.kind}: ${f.name}`, level };
    // the few huge ones (up to 256 MB) stay on V8
    if ((f.buffer?.length ?? 0) >= LARGEST || (f.object?.payload?.length ?? 0) >= LARGEST) return;
    if (f.object !== undefined) {
      const m = modelOf(f.object, level, f.kind === "generateError");
      if (m) {
        v.packet = tag(m.packet);
        v.level = m.level as Vector["level"];
        v.encoded = encoded(m.packet, m.level);
      }
    }
    if (f.buffer) {
      const b = new Uint8Array(f.buffer.buffer, f.buffer.byteOffset, f.buffer.byteLength);
      v.bytes = toHex(b);
      v.decoded = decoded(b, level);
    }
    if (v.packet !== undefined || v.bytes !== undefined) out.push(v);
  });
  return out;
}

export function randomVectors(perLevel = 150, seed = 0x5eed): Vector[] {
  const out: Vector[] = [];
  for (const level of [3, 4, 5] as const) {
    const packets = fc.sample(arb.packet(level), { numRuns: perLevel, seed: seed + level });
    const edits = fc.sample(
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
      { numRuns: perLevel, seed: seed + 10 + level },
    );
    packets.forEach((p, i) => {
      const enc = encoded(p, level);
      const v: Vector = { name: `random level ${level} #${i} type ${p.type}`, level, packet: tag(p), encoded: enc };
      if (enc && "hex" in enc) {
        const bytes = Uint8Array.from(Buffer.from(enc.hex, "hex"));
        v.bytes = enc.hex;
        v.decoded = decoded(bytes, level);
        // the same bytes with a few of them changed: whatever V8 decodes or refuses, XS must too
        const bad = bytes.slice();
        for (const [pos, val] of edits[i]) if (bad.length) bad[pos % bad.length] = val;
        out.push(v, { name: `${v.name} corrupted`, level, bytes: toHex(bad), decoded: decoded(bad, level) });
      } else out.push(v);
    });
  }
  return out;
}

export function codecVectors(): Vector[] {
  return [...fixtureVectors(), ...randomVectors()];
}
