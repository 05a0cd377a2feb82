// The Node host's file-backed outbox: QoS 1 messages survive a reboot of the device (a new process, here a new
// client on the same directory) and reach a real broker afterwards.
import { mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Client } from "../../../src/mqtt/client";
import { nodeClock } from "../../../hosts/node/clock";
import { FileOutboxStore } from "../../../hosts/node/file-store";
import { tcpConnector } from "../../../hosts/node/tcp";
import { startMosquitto } from "../../helpers/mosquitto";
import { waitFor } from "../../helpers/wait";

const clients: Client[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

function client(port: number, store?: FileOutboxStore, onMessage?: (t: string, p: Uint8Array) => void): Client {
  const c = new Client({
    clientId: `fs-${clients.length}-${Math.random().toString(36).slice(2, 8)}`,
    connect: tcpConnector({ host: "127.0.0.1", port }),
    clock: nodeClock,
    backoff: { min: 20, max: 200 },
    outbox: { store, maxMessages: 50, maxBytes: 8192 },
    onMessage,
  });
  clients.push(c);
  return c;
}

describe("file-backed outbox", () => {
  it("creates a private directory and private files", () => {
    const dir = join(mkdtempSync(join(tmpdir(), "outbox-")), "store");
    const store = new FileOutboxStore(dir);
    store.save(1, new Uint8Array([0x32, 5, 0, 1, 0x74, 0, 1]));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "1.mqtt")).mode & 0o777).toBe(0o600);
    expect(store.load()).toEqual([{ key: 1, packet: new Uint8Array([0x32, 5, 0, 1, 0x74, 0, 1]) }]);
    store.remove(1);
    store.remove(1); // absent: not an error
    expect(store.load()).toEqual([]);
  });

  it("ignores a write cut short by a crash and reports an unreadable entry instead of sending it", () => {
    const dir = mkdtempSync(join(tmpdir(), "outbox-"));
    writeFileSync(join(dir, "7.mqtt.tmp"), "partial");
    writeFileSync(join(dir, "8.mqtt"), "not a packet");
    const store = new FileOutboxStore(dir);
    const errors: string[] = [];
    const c = new Client({
      clientId: "x",
      connect: () => ({ read: () => undefined, write: () => true, close() {} }),
      clock: nodeClock,
      outbox: { store },
      onError: (e) => errors.push(e.code),
    });
    clients.push(c);
    expect(errors).toEqual(["STORE_FAILED"]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("delivers QoS 1 messages published before a reboot once the device is back", async () => {
    const broker = await startMosquitto();
    const received: string[] = [];
    const backend = client(broker.port, undefined, (_t, p) => void received.push(new TextDecoder().decode(p)));
    backend.start();
    await new Promise<void>((r) => backend.subscribe("reboot/#", 1, () => r()));

    const dir = mkdtempSync(join(tmpdir(), "outbox-"));
    // Before the reboot: offline (never started), three QoS 1 messages and one QoS 0 wait in the outbox.
    const before = client(broker.port, new FileOutboxStore(dir));
    for (const m of ["a", "b", "c"]) before.publish("reboot/m", m, { qos: 1 });
    before.publish("reboot/m", "volatile", { qos: 0 });
    before.close(); // the power goes
    expect(readdirSync(dir)).toHaveLength(3);

    const after = client(broker.port, new FileOutboxStore(dir));
    after.start();
    await waitFor(() => received.length === 3 && readdirSync(dir).length === 0);
    expect(received).toEqual(["a", "b", "c"]);
  });
});
