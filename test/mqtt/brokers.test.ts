// The client against real brokers on loopback: Mosquitto (Debian's package) and aedes (in-process).
import { afterEach, describe, expect, it } from "vitest";
import { Client, type ClientOptions } from "../../src/mqtt/client";
import type { MqttError } from "../../src/mqtt/codec";
import { nodeClock } from "../../hosts/node/clock";
import { tcpConnector } from "../../hosts/node/tcp";
import { startMosquitto } from "../helpers/mosquitto";
import { startAedes } from "../helpers/aedes";
import { waitFor } from "../helpers/wait";

const clients: Client[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

interface Probe {
  client: Client;
  received: { topic: string; payload: string; qos: number; dup: boolean }[];
  downs: MqttError[];
  errors: MqttError[];
  connects: number;
}

function probe(port: number, options: Partial<ClientOptions> = {}): Probe {
  const p: Probe = { client: undefined as unknown as Client, received: [], downs: [], errors: [], connects: 0 };
  p.client = new Client({
    clientId: `c-${Math.random().toString(36).slice(2, 10)}`,
    connect: tcpConnector({ host: "127.0.0.1", port }),
    clock: nodeClock,
    keepalive: 30,
    backoff: { min: 50, max: 400 },
    onConnect: () => p.connects++,
    onDisconnect: (e) => p.downs.push(e),
    onError: (e) => p.errors.push(e),
    onMessage: (topic, payload, m) =>
      void p.received.push({ topic, payload: new TextDecoder().decode(payload), qos: m.qos, dup: m.dup }),
    ...options,
  });
  clients.push(p.client);
  return p;
}

function subscribed(c: Client, filter: string, qos: 0 | 1 = 1): Promise<number[]> {
  return new Promise((resolve, reject) => c.subscribe(filter, qos, (e, g) => (e ? reject(e) : resolve(g))));
}

function published(c: Client, topic: string, payload: string, qos: 0 | 1): Promise<void> {
  return new Promise((resolve, reject) => c.publish(topic, payload, { qos }, (e) => (e ? reject(e) : resolve())));
}

const brokers = [
  ["mosquitto", async () => (await startMosquitto()).port],
  ["aedes", async () => (await startAedes()).port],
] as const;

for (const [name, start] of brokers) {
  describe(`round trips through ${name}`, () => {
    for (const level of [3, 4] as const) {
      it(`publishes and receives at QoS 0 and 1 over MQTT ${level === 3 ? "3.1" : "3.1.1"}`, async () => {
        const port = await start();
        const p = probe(port, { level });
        p.client.start();
        expect(await subscribed(p.client, "rt/#", 1)).toEqual([1]);
        await published(p.client, "rt/a", "zero", 0);
        await published(p.client, "rt/b", "one", 1);
        await published(p.client, "rt/c", "ünïcødé ✓", 1);
        await waitFor(() => p.received.length === 3);
        expect(p.received.map((m) => [m.topic, m.payload])).toEqual([
          ["rt/a", "zero"],
          ["rt/b", "one"],
          ["rt/c", "ünïcødé ✓"],
        ]);
        expect(p.downs).toEqual([]);
      });
    }

    it("stops receiving after unsubscribe", async () => {
      const port = await start();
      const p = probe(port);
      p.client.start();
      await subscribed(p.client, "u/+");
      await published(p.client, "u/1", "before", 1);
      await waitFor(() => p.received.length === 1);
      await new Promise<void>((r, j) => p.client.unsubscribe("u/+", (e) => (e ? j(e) : r())));
      await published(p.client, "u/1", "after", 1);
      await subscribed(p.client, "marker");
      await published(p.client, "marker", "m", 1);
      await waitFor(() => p.received.length === 2);
      expect(p.received.map((m) => m.payload)).toEqual(["before", "m"]);
    });

    it("moves many QoS 1 messages through a small window in order", async () => {
      const port = await start();
      const p = probe(port, { window: 4, outbox: { maxMessages: 600, maxBytes: 1 << 20 } });
      p.client.start();
      await subscribed(p.client, "bulk");
      const acks: Promise<void>[] = [];
      for (let i = 0; i < 500; i++) acks.push(published(p.client, "bulk", String(i), 1));
      await Promise.all(acks);
      await waitFor(() => p.received.length === 500);
      expect(p.received.map((m) => Number(m.payload))).toEqual(Array.from({ length: 500 }, (_, i) => i));
    });
  });
}

describe("authentication (Mosquitto password file)", () => {
  it("connects with the right password and is refused with a clear error otherwise", async () => {
    const broker = await startMosquitto({ users: { dev: "right-secret" } });
    const good = probe(broker.port, { username: "dev", password: "right-secret" });
    good.client.start();
    await waitFor(() => good.connects === 1);
    const bad = probe(broker.port, { username: "dev", password: "wrong-secret" });
    bad.client.start();
    await waitFor(() => bad.downs.length > 0);
    const e = bad.downs[0];
    expect(e.code).toBe("CONNECT_REFUSED");
    expect([4, 5]).toContain(e.returnCode);
    expect(e.message).toMatch(/bad user name or password|not authorized/);
    expect(e.message).not.toContain("wrong-secret");
    expect(bad.client.state).not.toBe("connected");
  });

  it("reports a refused subscription as SUBACK 0x80 (aedes authorizeSubscribe)", async () => {
    // Mosquitto 2 grants a filter its ACL denies over 3.1.1 (and then delivers nothing); aedes refuses with 0x80.
    const broker = await startAedes({
      authorizeSubscribe: (_client, sub, done) => done(null, sub.topic.startsWith("theirs/") ? null : sub),
    });
    const p = probe(broker.port);
    p.client.start();
    const result = await new Promise<[string | undefined, number[]]>((r) =>
      p.client.subscribe(["mine/x", "theirs/x"], 1, (e, g) => r([e?.code, g])),
    );
    expect(result).toEqual(["SUBSCRIBE_REFUSED", [1, 0x80]]);
    expect([...p.client.session.subscriptions.keys()]).toEqual(["mine/x"]);
  });
});

describe("faults with a real broker", () => {
  it("survives a broker restart mid-stream without losing a QoS 1 message", async () => {
    const broker = await startMosquitto({ persistence: true });
    const sub = probe(broker.port, { clientId: "restart-sub", clean: false });
    sub.client.start();
    await subscribed(sub.client, "stream");
    const pub = probe(broker.port, {
      clientId: "restart-pub",
      clean: false,
      outbox: { maxMessages: 400, maxBytes: 1 << 20 },
    });
    pub.client.start();
    await waitFor(() => pub.connects === 1);
    const acks: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      acks.push(published(pub.client, "stream", String(i), 1));
      if (i === 100) void broker.restart({ downMs: 300 });
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(acks);
    await waitFor(() => new Set(sub.received.map((m) => m.payload)).size === 300, { timeoutMs: 20000 });
    expect(pub.downs.length).toBeGreaterThan(0);
    // Every duplicate is a redelivery the protocol allows (at-least-once), never a loss.
    const seen = new Set<string>();
    for (const m of sub.received) seen.add(m.payload);
    expect([...seen].map(Number).sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });

  it("makes a client-id takeover visible: both clients back off and the kick is named", async () => {
    const broker = await startMosquitto();
    const a = probe(broker.port, { clientId: "same-id", backoff: { min: 20, max: 100, resetAfter: 60000 } });
    const b = probe(broker.port, { clientId: "same-id", backoff: { min: 20, max: 100, resetAfter: 60000 } });
    a.client.start();
    await waitFor(() => a.connects === 1);
    b.client.start();
    await waitFor(() => a.errors.some((e) => e.code === "KICKED") || b.errors.some((e) => e.code === "KICKED"), {
      timeoutMs: 15000,
    });
    const kicked = [...a.errors, ...b.errors].find((e) => e.code === "KICKED")!;
    expect(kicked.message).toMatch(
      /kicked \d+ times within a minute of connecting: is another client using the same client id\?/,
    );
    b.client.close();
    await waitFor(() => a.client.state === "connected");
  });
});
