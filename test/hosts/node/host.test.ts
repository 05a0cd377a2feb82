// The Node host (hosts/node/host.ts): the Host object, its file-backed config store and its scripted network link,
// with the real client against a real Mosquitto.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { atomicFs } from "../../../hosts/node/atomic-file";
import { ConfigStoreError, FileConfigStore } from "../../../hosts/node/config-store";
import { nodeConnector } from "../../../hosts/node/connect";
import { createNodeHost } from "../../../hosts/node/host";
import { ScriptedLink } from "../../../hosts/node/link";
import { Client } from "../../../src/mqtt/client";
import type { MqttError } from "../../../src/mqtt/codec";
import { parseEndpoint } from "../../../src/net/endpoint";
import type { NetError } from "../../../src/net/errors";
import { startMosquitto } from "../../helpers/mosquitto";
import { openConnections } from "../../helpers/sockets";
import { waitFor } from "../../helpers/wait";
import type { Host } from "../../../src/host";

const dirs: string[] = [];
const clients: Client[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "uiot-node-host-"));
  dirs.push(d);
  return d;
}

const mode = (path: string) => statSync(path).mode & 0o777;

function thrown(f: () => void): ConfigStoreError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigStoreError);
    return e as ConfigStoreError;
  }
  throw new Error("did not throw");
}

describe("createNodeHost", () => {
  it("builds the Host contract: clock, random, connector, private config and outbox, link, log", () => {
    const dir = join(tempDir(), "device");
    const logs: string[] = [];
    const host: Host = createNodeHost({ dir, log: (level, m) => logs.push(`${level} ${m}`) });
    expect(host.name).toBe("node");
    expect(typeof host.clock.now()).toBe("number");
    expect(host.random()).toBeGreaterThanOrEqual(0);
    expect(host.network.up).toBe(true);
    host.config.set("psn", "abcdefghijklmnop");
    expect(mode(dir)).toBe(0o700);
    expect(mode(join(dir, "config.json"))).toBe(0o600);
    expect(mode(join(dir, "outbox"))).toBe(0o700);
    expect(host.outbox).toBeDefined();
    expect(typeof host.connector(parseEndpoint("mqtt://127.0.0.1:1"))).toBe("function");
    host.log("info", "hello");
    expect(logs).toEqual(["info hello"]);
    expect(createNodeHost({ dir, persistOutbox: false }).outbox).toBeUndefined();
  });
});

describe("the file-backed config store", () => {
  it("keeps values across restarts in a 0600 file written atomically", () => {
    const file = join(tempDir(), "config.json");
    const a = new FileConfigStore(file);
    expect(a.get("dsn")).toBeUndefined();
    a.set("dsn", "thermostat-01");
    a.set("secret", "s3cr3t-ünïcødé");
    a.delete("dsn");
    a.delete("never-set");
    expect(mode(file)).toBe(0o600);
    expect(readdirSync(join(file, ".."))).toEqual(["config.json"]); // no temporary file left
    const b = new FileConfigStore(file);
    expect(b.get("dsn")).toBeUndefined();
    expect(b.get("secret")).toBe("s3cr3t-ünïcødé");
    expect(b.get("toString")).toBeUndefined();
  });

  it("tightens an existing store to 0600 (one with the marker, or an older one of device settings without it)", () => {
    for (const text of ['{"$store":"uiot-config/1","a":"b"}', '{"uiot_psn":"b"}']) {
      const file = join(tempDir(), "config.json");
      writeFileSync(file, text);
      chmodSync(file, 0o644);
      const store = new FileConfigStore(file);
      expect(store.get("a") ?? store.get("uiot_psn")).toBe("b");
      expect(mode(file)).toBe(0o600);
    }
  });

  it("refuses what a board's preference store would, without repeating the value", () => {
    const store = new FileConfigStore(join(tempDir(), "config.json"));
    expect(thrown(() => store.set("a-very-long-key-name", "x")).code).toBe("INVALID_KEY");
    expect(thrown(() => store.set("", "x")).message).toMatch(/non-empty/);
    expect(thrown(() => store.set("two words", "x")).code).toBe("INVALID_KEY");
    const big = thrown(() => store.set("secret", "S".repeat(4001)));
    expect(big.code).toBe("VALUE_TOO_LARGE");
    expect(big.message).toMatch(/4001 bytes, over the limit of 4000/);
    expect(big.message).not.toContain("SSSS");
    expect(thrown(() => store.set("n", 5 as unknown as string)).code).toBe("INVALID_VALUE");
    const relaxed = new FileConfigStore(join(tempDir(), "config.json"), { maxKeyLength: 0, maxValueBytes: 0 });
    relaxed.set("a-very-long-key-name", "S".repeat(5000));
    expect(relaxed.get("a-very-long-key-name")).toHaveLength(5000);
  });

  it("a failed write leaves the old value, on disk and in memory", () => {
    const file = join(tempDir(), "config.json");
    const store = new FileConfigStore(file);
    store.set("secret", "old");
    // The disk is full: the temporary file cannot be written.
    const full = vi.spyOn(atomicFs, "writeSync").mockImplementation(() => {
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    });
    const e = thrown(() => store.set("secret", "new-secret-value"));
    full.mockRestore();
    expect(e.code).toBe("WRITE_FAILED");
    expect(e.message).toMatch(/ENOSPC/);
    expect(e.message).not.toContain("new-secret-value");
    expect(store.get("secret")).toBe("old");
    expect(readdirSync(join(file, ".."))).toEqual(["config.json"]); // the temporary file is gone
    expect(new FileConfigStore(file).get("secret")).toBe("old");
  });

  it("refuses a corrupt file rather than starting empty (it may hold the only copy of a secret)", () => {
    const file = join(tempDir(), "config.json");
    writeFileSync(file, '{"secret": "abc"');
    const e = thrown(() => new FileConfigStore(file));
    expect(e.code).toBe("CORRUPT");
    expect(e.message).toMatch(/not valid JSON: repair it or move it away/);
    expect(e.message).not.toContain("abc");
    writeFileSync(file, '{"n": 1}');
    expect(thrown(() => new FileConfigStore(file)).code).toBe("CORRUPT");
    expect(existsSync(file)).toBe(true);
  });
});

describe("the scripted link", () => {
  it("down: live connections drop with NETWORK_DOWN and new dials fail fast; up: dials work again", async () => {
    const broker = await startMosquitto();
    const host = createNodeHost({ dir: tempDir(), log: () => {} });
    const changes: boolean[] = [];
    host.network.onChange = (up) => changes.push(up);
    const downs: MqttError[] = [];
    let connects = 0;
    const client = new Client({
      clientId: "link-a",
      connect: host.connector(parseEndpoint(broker.url)),
      clock: host.clock,
      random: () => 0.5,
      backoff: { min: 100, max: 800 },
      onConnect: () => connects++,
      onDisconnect: (e) => downs.push(e),
    });
    clients.push(client);
    client.start();
    await waitFor(() => connects === 1);
    expect(host.link.openSockets).toBe(1);

    host.link.down();
    expect(host.network.up).toBe(false);
    await waitFor(() => downs.length >= 1);
    expect((downs[0].cause as NetError).code).toBe("NETWORK_DOWN");
    expect(downs[0].message).toMatch(/the network went down: the client tries again when the network is back/);
    await waitFor(() => openConnections(broker.port) === 0);

    // A dial while down fails at once (in the next turn of the event loop, before an immediate queued after it),
    // without touching the network.
    let failed: Error | undefined;
    host.connector(parseEndpoint(broker.url))({
      onConnect: () => {},
      onReadable: () => {},
      onWritable: () => {},
      onError: (e) => void (failed = e),
    });
    await new Promise((r) => setImmediate(r));
    if (!failed) throw new Error("a dial while the network is down did not fail in the next turn");
    expect((failed as NetError).code).toBe("NETWORK_DOWN");
    expect(failed.message).toMatch(/the network is down/);
    expect(host.link.openSockets).toBe(0);

    host.link.up();
    await waitFor(() => connects === 2, { timeoutMs: 5000 });
    expect(changes).toEqual([false, true]);
  });

  it("the client reconnects after the link comes back, with backoff, and QoS 1 published while down arrives", async () => {
    const broker = await startMosquitto();
    // The subscriber is not behind the scripted link.
    const received: string[] = [];
    let subReady = false;
    const sub = new Client({
      clientId: "link-sub",
      connect: nodeConnector(parseEndpoint(broker.url)),
      clock: createNodeHost({ dir: tempDir() }).clock,
      onMessage: (_t, payload) => void received.push(Buffer.from(payload).toString()),
    });
    clients.push(sub);
    sub.start();
    sub.subscribe("link/#", 1, () => (subReady = true));
    await waitFor(() => subReady);

    const host = createNodeHost({ dir: tempDir(), log: () => {} });
    const downs: { code: string; retryIn: number; at: number }[] = [];
    let connects = 0;
    const device = new Client({
      clientId: "link-device",
      connect: host.connector(parseEndpoint(broker.url)),
      clock: host.clock,
      random: () => 0.5,
      backoff: { min: 100, max: 800 },
      outbox: { store: host.outbox },
      onConnect: () => connects++,
      onDisconnect: (e, retryIn) =>
        void downs.push({ code: (e.cause as NetError)?.code ?? e.code, retryIn, at: performance.now() }),
    });
    clients.push(device);
    device.start();
    await waitFor(() => connects === 1);

    host.link.down();
    const acked: string[] = [];
    for (let i = 0; i < 5; i++)
      device.publish(
        "link/m",
        `offline-${i}`,
        { qos: 1 },
        (e) => void (e ? acked.push(`error ${e.code}`) : acked.push(`offline-${i}`)),
      );
    expect(device.outbox.messages).toBe(5);
    await new Promise((r) => setTimeout(r, 1600));
    expect(received).toEqual([]);
    // Backoff, not a storm: 50, 100, 200, 400, 400, ... ms (ceilings 100..800 with random 0.5).
    const whileDown = downs.length;
    expect(whileDown).toBeGreaterThanOrEqual(3);
    expect(whileDown).toBeLessThanOrEqual(8);
    expect(downs.every((d) => d.code === "NETWORK_DOWN")).toBe(true);
    expect(downs.map((d) => d.retryIn).slice(0, 5)).toEqual([50, 100, 200, 400, 400]);

    host.link.up();
    await waitFor(() => connects === 2, { timeoutMs: 5000 });
    await waitFor(() => received.length === 5, { timeoutMs: 5000 });
    expect(received).toEqual(["offline-0", "offline-1", "offline-2", "offline-3", "offline-4"]);
    await waitFor(() => acked.length === 5);
    expect(acked).toEqual(received);
    expect(device.outbox.messages).toBe(0);
  });
});

describe("ScriptedLink on its own", () => {
  it("starts up or down as asked and reports changes once each", () => {
    const link = new ScriptedLink(false);
    const seen: boolean[] = [];
    link.network.onChange = (up) => seen.push(up);
    expect(link.network.up).toBe(false);
    expect(link.check()?.code).toBe("NETWORK_DOWN");
    link.up();
    link.up();
    link.down();
    expect(seen).toEqual([true, false]);
    expect(link.network.onChange).toBeTypeOf("function");
  });
});
