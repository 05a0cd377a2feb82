// The decoder's invariants on arbitrary input, shared by the property tests and the fuzz script:
// - it throws nothing but MqttError, and after an error it keeps throwing that error;
// - it never holds more than maxPacketSize bytes (Decoder.pending, and the body buffer it allocates);
// - every packet it decodes re-encodes, and the re-encoding decodes to an equal packet.
import { CONNACK, CONNECT, Decoder, encode, MqttError, type Packet, type ProtocolLevel } from "../../src/mqtt/codec.ts";
import { hex, same } from "./canon.ts";
import {
  groupedUserProperties,
  mqttPacket,
  mqttPacketLosesUserProperty,
  toModel,
  Unsupported,
  type Loose,
} from "./mqtt-packet-fixtures.ts";

export interface DecodeOptions {
  level: ProtocolLevel;
  maxPacketSize: number;
  skipOversize: boolean;
}

export interface DecodeRun {
  packets: { packet: Packet; level: ProtocolLevel }[];
  error?: MqttError;
  skipped: number;
  /** finish() reported a stream that ended mid-packet. */
  truncated?: boolean;
  /** Set when an invariant broke: what broke. */
  failure?: string;
}

export interface Mutation {
  op: number;
  pos: number;
  val: number;
  len: number;
}

const INTERESTING = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, 0x30, 0x32, 0x82, 0x10, 0x20, 0xc0];

/** Applies byte-level edits: bit flips, byte sets, inserts, deletes, truncation, duplication, header/length edits. */
export function mutate(input: Uint8Array, ms: Mutation[]): Uint8Array {
  let b = Array.from(input);
  for (const { op, pos, val, len } of ms) {
    const n = b.length;
    const at = n ? pos % n : 0;
    switch (op) {
      case 0:
        if (n) b[at] ^= 1 << (val & 7);
        break;
      case 1:
        if (n) b[at] = val;
        break;
      case 2:
        if (n) b[at] = INTERESTING[val % INTERESTING.length];
        break;
      case 3:
        b.splice(at, 0, ...Array.from({ length: len }, (_, i) => (val + i * 31) & 0xff));
        break;
      case 4:
        b.splice(at, len);
        break;
      case 5:
        b = b.slice(0, at);
        break;
      case 6:
        b.splice((at + val) % (n + 1), 0, ...b.slice(at, at + len));
        break;
      case 7:
        if (n) b[0] = val;
        break;
      default:
        if (n > 1) b[1] = val; // the first remaining length byte
    }
  }
  return Uint8Array.from(b);
}

/** Splits `b` at the cut points (taken modulo its length). */
export function chunk(b: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => (b.length ? c % (b.length + 1) : 0)))].sort((x, y) => x - y);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of at) {
    if (c > prev) out.push(b.subarray(prev, c));
    prev = Math.max(prev, c);
  }
  out.push(b.subarray(prev));
  return out;
}

/**
 * What the encoder refuses on purpose although the decoder accepts it: a CONNECT with an empty client ID that
 * 3.1 or 3.1.1 (without clean session) forbids the client to send [MQTT-3.1.3-7], and that a broker must answer
 * with CONNACK 2 rather than treat as malformed.
 */
function refusedByEncoderOnPurpose(p: Packet): boolean {
  return p.type === CONNECT && p.clientId === "" && (p.level === 3 || (p.level === 4 && !p.clean));
}

/** The level to re-encode a decoded packet at: a CONNACK in 3.1.1 form read on a 5.0 connection is a 3.1.1 one. */
function encodeLevel(p: Packet, level: ProtocolLevel): ProtocolLevel {
  return p.type === CONNACK && level === 5 && p.returnCode >= 1 && p.returnCode <= 5 ? 4 : level;
}

/** Checks that `p`, decoded at `level`, re-encodes and decodes back to an equal packet. Returns what broke. */
export function checkReencode(p: Packet, level: ProtocolLevel): string | undefined {
  let bytes: Uint8Array;
  try {
    bytes = encode(p, encodeLevel(p, level));
  } catch (e) {
    if (e instanceof MqttError && e.code === "INVALID_PACKET" && refusedByEncoderOnPurpose(p)) return undefined;
    return `re-encoding a decoded packet threw ${String(e)}: ${JSON.stringify(p, replacer)}`;
  }
  const again: Packet[] = [];
  try {
    const d = new Decoder((q) => again.push(q), { level: encodeLevel(p, level), maxPacketSize: 268435460 });
    d.push(bytes);
    d.finish();
  } catch (e) {
    return `decoding a re-encoded packet threw ${String(e)}: ${hex(bytes)}`;
  }
  if (again.length !== 1 || !same(again[0], p))
    return `re-encoded packet decodes differently: ${JSON.stringify(p, replacer)} -> ${JSON.stringify(again, replacer)}`;
  return undefined;
}

export function replacer(_k: string, v: unknown): unknown {
  return v instanceof Uint8Array ? `bytes:${hex(v)}` : v;
}

/** Feeds `chunks` to a decoder and checks every invariant on the way. */
export function runDecoder(chunks: Uint8Array[], o: DecodeOptions): DecodeRun {
  const run: DecodeRun = { packets: [], skipped: 0 };
  const d = new Decoder((p) => run.packets.push({ packet: p, level: d.level }), {
    level: o.level,
    maxPacketSize: o.maxPacketSize,
    skipOversize: o.skipOversize,
    onSkip: () => run.skipped++,
  });
  const broke = (why: string) => ((run.failure = why), run);
  for (let i = 0; i < chunks.length && !run.error; i++) {
    try {
      d.push(chunks[i]);
    } catch (e) {
      if (!(e instanceof MqttError)) return broke(`decoder threw a non-MqttError: ${String(e)}`);
      run.error = e;
      try {
        d.push(chunks[i + 1] ?? new Uint8Array([0xc0, 0]));
        return broke("decoder accepted more bytes after an error");
      } catch (again) {
        if (again !== e) return broke(`after an error, push threw a different error: ${String(again)}`);
      }
    }
    if (!(d.pending >= 0 && d.pending <= o.maxPacketSize))
      return broke(`pending ${d.pending} over maxPacketSize ${o.maxPacketSize}`);
    // White box: the body buffer the decoder allocated, which is what memory it really holds (header >= 2 bytes).
    const body = (d as unknown as { body: Uint8Array | null }).body;
    if (body && body.length + 2 > o.maxPacketSize)
      return broke(`a ${body.length}-byte body buffer with maxPacketSize ${o.maxPacketSize}`);
  }
  if (!run.error) {
    try {
      d.finish();
    } catch (e) {
      if (!(e instanceof MqttError) || e.code !== "TRUNCATED") return broke(`finish() threw ${String(e)}`);
      run.truncated = true;
    }
  }
  for (const { packet, level } of run.packets) {
    const why = checkReencode(packet, level);
    if (why) return broke(why);
  }
  return run;
}

/**
 * Differential check against mqtt-packet's parser: every packet we decoded from `input` must be read the same by
 * mqtt-packet (it is more lenient, so what it refuses or reads differently is a finding). Compares up to the first
 * oversize skip (mqtt-packet has no maximum) or a CONNECT that changes the level (mqtt-packet keeps its own).
 */
export function oracleMismatch(input: Uint8Array, run: DecodeRun, level: ProtocolLevel): string | undefined {
  if (run.skipped || run.packets.length === 0) return undefined;
  const theirs: Loose[] = [];
  let stopped = false;
  const parser = mqttPacket.parser({ protocolVersion: level });
  parser.on("packet", (p) => {
    if (!stopped) theirs.push(p);
  });
  parser.on("error", () => (stopped = true));
  try {
    parser.parse(Buffer.from(input.buffer, input.byteOffset, input.byteLength));
  } catch {
    stopped = true; // it throws on some malformed input instead of emitting an error
  }
  for (let k = 0; k < run.packets.length; k++) {
    const ours = run.packets[k].packet;
    if (mqttPacketLosesUserProperty(ours)) return undefined;
    // A 5.0 CONNACK may come without a property length (3.1.1 form); mqtt-packet then reads the bytes after the
    // packet as its properties (20 02 01 00 | 03 21 00 01 gives receiveMaximum 1), so it cannot be compared.
    if (ours.type === CONNACK && run.packets[k].level === 5 && !ours.properties) return undefined;
    const t = theirs[k];
    if (t === undefined)
      return `mqtt-packet did not read packet #${k} that we decoded: ${JSON.stringify(ours, replacer)}`;
    let adapted: Packet;
    try {
      adapted = toModel(t, { level }).packet;
    } catch (e) {
      if (e instanceof Unsupported)
        return `mqtt-packet read packet #${k} as ${t.cmd} (${e.message}); we read ${JSON.stringify(ours, replacer)}`;
      throw e;
    }
    if (!same(groupedUserProperties(adapted), groupedUserProperties(ours)))
      return `mqtt-packet reads packet #${k} differently: ours ${JSON.stringify(ours, replacer)}, theirs ${JSON.stringify(adapted, replacer)}`;
    if (ours.type === CONNECT && ours.level !== level) break;
  }
  return undefined;
}
