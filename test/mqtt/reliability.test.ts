// Reliability under faults: 1,000 QoS 1 messages each way between a device (our client behind a fault-injecting
// proxy) and a backend (our client straight on the broker), through at least 100 forced disconnects at random
// byte offsets, with split, coalesced and stalled writes. Nothing may be lost; every duplicate must be one the
// protocol explains; the device's memory stays within its outbox bounds.
import { afterEach, describe, expect, it } from "vitest";
import { Client } from "../../src/mqtt/client";
import { Decoder, PUBLISH, type Packet } from "../../src/mqtt/codec";
import type { Connector } from "../../src/host";
import { nodeClock } from "../../hosts/node/clock";
import { tcpConnector } from "../../hosts/node/tcp";
import { startMosquitto } from "../helpers/mosquitto";
import { startFaultProxy } from "../helpers/fault-proxy";
import { waitFor } from "../helpers/wait";

const N = 1000;
const clients: Client[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

/** Wraps a connector to record every PUBLISH the device writes (payload and DUP flag). */
function recording(inner: Connector, log: { payload: string; dup: boolean }[]): Connector {
  return (h) => {
    const t = inner(h);
    const d = new Decoder((p: Packet) => {
      if (p.type === PUBLISH) log.push({ payload: new TextDecoder().decode(p.payload as Uint8Array), dup: p.dup });
    });
    return {
      read: () => t.read(),
      close: () => t.close(),
      write(data) {
        const ok = t.write(data);
        if (ok) d.push(data.slice());
        return ok;
      },
    };
  };
}

describe("reliability under faults", () => {
  it(`moves ${N} QoS 1 messages each way through 100+ forced disconnects with nothing lost`, async () => {
    const broker = await startMosquitto({ extraConfig: ["max_queued_messages 5000", "max_inflight_messages 20"] });
    const proxy = await startFaultProxy({
      target: { port: broker.port },
      seed: 20261123,
      faults: {
        drop: { minBytes: 0, maxBytes: 300, direction: "both" },
        split: { maxBytes: 7 },
        stall: { probability: 0.02, maxMs: 30 },
      },
    });

    const sentByDevice: { payload: string; dup: boolean }[] = [];
    const atDevice: { payload: string; dup: boolean }[] = [];
    const atBackend: string[] = [];
    const downs: string[] = [];
    let maxHeld = 0;
    const OUTBOX = 40;

    const device = new Client({
      clientId: "device-under-test",
      clean: false,
      keepalive: 5,
      connectTimeout: 2000,
      backoff: { min: 5, max: 40, resetAfter: 60000 },
      kickThreshold: 1e9, // the proxy, not another device, is what keeps cutting us off
      outbox: { maxMessages: OUTBOX, maxBytes: 4096 },
      connect: recording(tcpConnector({ host: "127.0.0.1", port: proxy.port }), sentByDevice),
      clock: nodeClock,
      onDisconnect: (e) => void downs.push(e.code),
      onMessage: (_t, payload, m) => void atDevice.push({ payload: new TextDecoder().decode(payload), dup: m.dup }),
    });
    const backend = new Client({
      clientId: "backend",
      clean: false,
      connect: tcpConnector({ host: "127.0.0.1", port: broker.port }),
      clock: nodeClock,
      outbox: { maxMessages: 2000, maxBytes: 1 << 20 },
      window: 20,
      onMessage: (_t, payload) => void atBackend.push(new TextDecoder().decode(payload)),
    });
    clients.push(device, backend);

    backend.start();
    await new Promise<void>((r, j) => backend.subscribe("up/#", 1, (e) => (e ? j(e) : r())));
    device.start();
    await new Promise<void>((r, j) => device.subscribe("down/#", 1, (e) => (e ? j(e) : r())));

    // Downstream: the backend sends N messages to the device.
    for (let i = 0; i < N; i++) backend.publish("down/cmd", `d${i}`, { qos: 1 });

    // Upstream: the device publishes N messages, never more than its outbox holds (publish throws when full).
    let next = 0,
      acked = 0;
    const pump = () => {
      while (next < N && device.outbox.messages < OUTBOX) {
        const i = next++;
        device.publish("up/telemetry", `u${i}`, { qos: 1 }, (e) => {
          expect(e).toBeUndefined();
          acked++;
          pump();
        });
      }
      maxHeld = Math.max(maxHeld, device.outbox.messages);
    };
    pump();

    const distinct = (xs: string[]) => new Set(xs).size;
    await waitFor(() => acked === N && distinct(atBackend) === N && distinct(atDevice.map((m) => m.payload)) === N, {
      timeoutMs: 120000,
      intervalMs: 100,
      message: "all messages through",
    });

    const stats = proxy.stats();
    const upDups = atBackend.length - N,
      downDups = atDevice.length - N;
    console.log(
      `reliability: ${stats.connections} connections, ${stats.drops} forced drops, ${downs.length} disconnects seen by the device; ` +
        `up: ${N} published, ${sentByDevice.length} PUBLISH writes (${sentByDevice.filter((s) => s.dup).length} with DUP), ${atBackend.length} received (${upDups} duplicates); ` +
        `down: ${atDevice.length} delivered (${downDups} duplicates, all DUP); outbox peak ${maxHeld}/${OUTBOX}`,
    );

    expect(stats.drops).toBeGreaterThanOrEqual(100);
    // Nothing lost either way.
    expect(distinct(atBackend)).toBe(N);
    expect(distinct(atDevice.map((m) => m.payload))).toBe(N);
    // Upstream: every extra copy at the backend is a message the device really sent again, flagged DUP.
    const writes = new Map<string, number>();
    for (const s of sentByDevice) writes.set(s.payload, (writes.get(s.payload) ?? 0) + 1);
    const got = new Map<string, number>();
    for (const p of atBackend) got.set(p, (got.get(p) ?? 0) + 1);
    for (const [p, n] of got) expect(n, `${p} received ${n} times`).toBeLessThanOrEqual(writes.get(p) ?? 0);
    const firstWrite = new Set<string>();
    for (const s of sentByDevice) {
      // The session is kept (clean=false), so every resend carries DUP=1 and only resends do.
      expect(s.dup, `${s.payload} DUP flag`).toBe(firstWrite.has(s.payload));
      firstWrite.add(s.payload);
    }
    // Downstream: a message delivered twice to the application is a broker redelivery (DUP=1) of one whose PUBACK
    // was cut off again and again until its id left the dedupe window (the broker's in-flight window is 20 here).
    const seen = new Set<string>();
    for (const m of atDevice) {
      if (seen.has(m.payload)) expect(m.dup, `duplicate ${m.payload} without DUP`).toBe(true);
      seen.add(m.payload);
    }
    // Memory stayed within the outbox bounds.
    expect(maxHeld).toBeLessThanOrEqual(OUTBOX);
    expect(device.outbox.messages).toBe(0);
  }, 180000);
});
