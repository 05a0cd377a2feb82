/**
 * One round of bench/client.ts's memory rows, in a process of its own (bundled by esbuild and run by plain Node
 * with --expose-gc): `node idle-clients.mjs <ours|peer> <port> <k> <url of mqtt's entry>`.
 *
 * Connects 20 clients of the kind, subscribes and closes them (so every code path is compiled and every lazy module
 * loaded), then, after a full GC, connects `k` more, one after another, each subscribed to a topic of its own and
 * left idle (keepalive 60 s); after a full GC, prints what the process holds more than before, per client, as JSON:
 * { heap, rss, arrayBuffers, external } (bytes). Then exits; the broker drops the connections.
 *
 * Every client gets the same shared handlers, so what a client retains is its own and not closures of the bench.
 */
import type { MqttClient } from "mqtt";
import { Client, nodeAlloc, nodeClock, tcpConnector } from "./client-entry";

const HOST = "127.0.0.1";
const WARM = 20;

const gc = (globalThis as { gc?: () => void }).gc;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function fail(message: string): never {
  process.stderr.write(message + "\n");
  process.exit(1);
}

function trouble(): void {
  fail("an idle client reported an error or lost its connection");
}

function noop(): void {}

type Connect = (clientId: string, filter: string) => Promise<{ close(): void }>;

function ours(port: number): Connect {
  const connect = tcpConnector({ host: HOST, port });
  return (clientId, filter) =>
    new Promise((resolve, reject) => {
      const c = new Client({ clientId, connect, clock: nodeClock, alloc: nodeAlloc, onError: trouble });
      c.onDisconnect = (e) => reject(e);
      c.onConnect = () => {
        c.onConnect = noop;
        c.onDisconnect = trouble;
        c.subscribe(filter, 1, (e) => (e ? reject(e) : resolve(c)));
      };
      c.start();
    });
}

async function peer(port: number, url: string): Promise<Connect> {
  const mqtt = (await import(url)) as typeof import("mqtt");
  return (clientId, filter) =>
    new Promise((resolve, reject) => {
      const c: MqttClient = mqtt.connect({
        host: HOST,
        port,
        protocol: "mqtt",
        protocolVersion: 4,
        clientId,
        reconnectPeriod: 0,
      });
      c.once("error", reject);
      c.once("connect", () => {
        c.off("error", reject);
        c.on("error", trouble).on("close", trouble);
        c.subscribe(filter, { qos: 1 }, (e) =>
          e ? reject(e) : resolve({ close: () => void c.off("close", trouble).end(true) }),
        );
      });
    });
}

function settled(): NodeJS.MemoryUsage {
  gc!();
  gc!();
  return process.memoryUsage();
}

async function main(): Promise<void> {
  const [kind, portArg, kArg, url] = process.argv.slice(2);
  const port = Number(portArg),
    k = Number(kArg);
  if (!gc) fail("run with --expose-gc");
  if ((kind !== "ours" && kind !== "peer") || !(port > 0) || !(k > 0))
    fail("usage: idle-clients <ours|peer> <port> <clients> <mqtt url>");
  const connect = kind === "ours" ? ours(port) : await peer(port, url);
  const warm = [];
  for (let i = 0; i < WARM; i++)
    warm.push(await connect(`bench-idle-${kind}-warm-${i}`, `/abcdefghijklmnop/warm-${i}/set`));
  for (const c of warm) c.close();
  warm.length = 0;
  await sleep(200);
  const before = settled();
  const held = [];
  for (let i = 0; i < k; i++)
    held.push(await connect(`bench-idle-${kind}-${i}`, `/abcdefghijklmnop/idle-${String(i).padStart(4, "0")}/set`));
  await sleep(200);
  const after = settled();
  const per = (f: keyof NodeJS.MemoryUsage) => (after[f] - before[f]) / k;
  process.stdout.write(
    JSON.stringify({
      heap: per("heapUsed"),
      rss: per("rss"),
      arrayBuffers: per("arrayBuffers"),
      external: per("external"),
      clients: held.length,
    }) + "\n",
  );
  process.exit(0);
}

await main();
