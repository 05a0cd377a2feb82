// The Mosquitto helper: a real broker per test on free loopback ports, with auth, ACL, persistence, websockets,
// restart on the same port, and no process left behind.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { aclText, mosquittoVersion, passwordLine, startMosquitto } from "../helpers/mosquitto.ts";
import { canConnect } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { connect, end, nextMessage } from "./mqttjs.ts";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("mosquitto helper", () => {
  it("finds mosquitto 2.x", () => {
    expect(mosquittoVersion()).toMatch(/^2\.\d+\.\d+/);
  });

  it("starts on a free loopback port, restarts on the same port, and stops without leaving a process", async () => {
    const broker = await startMosquitto();
    expect(broker.port).not.toBe(1883);
    expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
    const firstPid = broker.pid!;
    expect(alive(firstPid)).toBe(true);

    const a = await connect(broker.url);
    expect(a.connack.returnCode).toBe(0);
    await end(a.client);

    await broker.restart();
    expect(broker.pid).not.toBe(firstPid);
    expect(alive(firstPid)).toBe(false);
    const b = await connect(broker.url);
    await end(b.client);

    const secondPid = broker.pid!;
    await broker.kill();
    expect(broker.running).toBe(false);
    expect(alive(secondPid)).toBe(false);
    expect(await canConnect(broker.port)).toBe(false);

    await broker.start();
    const c = await connect(broker.url);
    await end(c.client);
    await broker.stop();
    await broker.stop(); // idempotent
    expect(await canConnect(broker.port)).toBe(false);
  });

  it("lets a client reconnect to the same port when the broker restarts mid-stream", async () => {
    const broker = await startMosquitto();
    const { client } = await connect(broker.url, { reconnectPeriod: 100, clientId: "restart-probe" });
    let connects = 0;
    client.on("connect", () => connects++);
    let closes = 0;
    client.on("close", () => closes++);

    await broker.restart({ kill: true, downMs: 200 });
    await waitFor(() => closes >= 1 && connects >= 1, { message: "client saw the broker go and come back" });
    await client.subscribeAsync("after/restart", { qos: 1 });
    const got = nextMessage(client, "after/restart");
    await client.publishAsync("after/restart", "hello again", { qos: 1 });
    expect((await got).toString()).toBe("hello again");
    await end(client);
    await broker.stop();
  });

  it("runs several brokers at once on distinct ports", async () => {
    const brokers = await Promise.all([startMosquitto(), startMosquitto(), startMosquitto()]);
    expect(new Set(brokers.map((b) => b.port)).size).toBe(3);
    await Promise.all(brokers.map((b) => b.stop()));
  });

  it("authenticates with a password file: right password in, wrong password and anonymous out", async () => {
    const broker = await startMosquitto({ users: { alice: "alice-pw", bob: "bob-pw" } });
    const ok = await connect(broker.url, { username: "alice", password: "alice-pw" });
    expect(ok.connack.returnCode).toBe(0);
    await end(ok.client);
    // Mosquitto 2.0 answers a bad password with 5 (not authorized) under 3.1.1, not 4.
    await expect(connect(broker.url, { username: "alice", password: "wrong" })).rejects.toMatchObject({ code: 5 });
    await expect(connect(broker.url, { username: "mallory", password: "x" })).rejects.toMatchObject({ code: 5 });
    await expect(connect(broker.url)).rejects.toMatchObject({ code: 5 });
    await broker.stop();
  });

  it("writes mosquitto's own password hash ($7$, PBKDF2-SHA512) and ACL file syntax", () => {
    expect(passwordLine("dev1", "s3cret")).toMatch(/^dev1:\$7\$101\$[A-Za-z0-9+/=]{16}\$[A-Za-z0-9+/=]{88}$/);
    expect(() => passwordLine("a:b", "x")).toThrow(/may not contain/);
    expect(
      aclText({
        anonymous: [{ access: "read", topic: "public/#" }],
        patterns: [{ access: "readwrite", topic: "devices/%u/#" }],
        users: { admin: [{ access: "readwrite", topic: "#" }] },
      }),
    ).toBe("topic read public/#\npattern readwrite devices/%u/#\n\nuser admin\ntopic readwrite #\n");
  });

  it("enforces an ACL whose pattern gives each user only its own topics", async () => {
    const broker = await startMosquitto({
      users: { alice: "a", bob: "b" },
      acl: { patterns: [{ access: "readwrite", topic: "devices/%u/#" }] },
    });
    const alice = (await connect(broker.url, { username: "alice", password: "a" })).client;
    const bob = (await connect(broker.url, { username: "bob", password: "b" })).client;
    const seen: string[] = [];
    alice.on("message", (topic) => seen.push(topic));
    await alice.subscribeAsync("devices/+/status", { qos: 1 });

    // Bob writes his own topic (alice may not read it) and alice's (bob may not write it); PUBACK comes either way.
    await bob.publishAsync("devices/bob/status", "bob's", { qos: 1 });
    await bob.publishAsync("devices/alice/status", "forged", { qos: 1 });
    // Mosquitto routes a PUBLISH before it acks it, so whatever alice could get from bob is on its way by now;
    // her own message comes after it on the same connection.
    const own = nextMessage(alice, "devices/alice/status");
    await alice.publishAsync("devices/alice/status", "alice's", { qos: 1 });
    expect((await own).toString()).toBe("alice's");
    expect(seen).toEqual(["devices/alice/status"]);

    await Promise.all([end(alice), end(bob)]);
    await broker.stop();
  });

  it("keeps a persistent session and its queued messages across a restart when persistence is on", async () => {
    const broker = await startMosquitto({ persistence: true });
    const first = await connect(broker.url, { clientId: "persist-1", clean: false });
    expect(first.connack.sessionPresent).toBe(false);
    await first.client.subscribeAsync("persist/topic", { qos: 1 });
    await end(first.client);

    const publisher = await connect(broker.url);
    await publisher.client.publishAsync("persist/topic", "queued while offline", { qos: 1 });
    await end(publisher.client);

    await broker.restart(); // SIGTERM: mosquitto saves its db
    const again = await connect(broker.url, { clientId: "persist-1", clean: false });
    expect(again.connack.sessionPresent).toBe(true);
    const queued = await waitFor(() => again.messages.find((m) => m.topic === "persist/topic"));
    expect(queued.payload.toString()).toBe("queued while offline");
    await end(again.client);
    await broker.stop();
  });

  it("forgets sessions across a restart when persistence is off", async () => {
    const broker = await startMosquitto();
    const first = await connect(broker.url, { clientId: "volatile-1", clean: false });
    await first.client.subscribeAsync("v/topic", { qos: 1 });
    await end(first.client);
    await broker.restart();
    const again = await connect(broker.url, { clientId: "volatile-1", clean: false });
    expect(again.connack.sessionPresent).toBe(false);
    await end(again.client);
    await broker.stop();
  });

  it("applies max_keepalive (an MQTT 5 client asking for more is told the server's value)", async () => {
    const broker = await startMosquitto({ maxKeepalive: 10 });
    const { client, connack } = await connect(broker.url, { protocolVersion: 5, keepalive: 60 });
    expect(connack.properties?.serverKeepAlive).toBe(10);
    await end(client);
    await broker.stop();
  });

  it("serves MQTT over websockets (ws://) next to plain MQTT", async () => {
    const broker = await startMosquitto({ listeners: [{ protocol: "mqtt" }, { protocol: "ws" }] });
    expect(broker.urls.ws).toBe(`ws://127.0.0.1:${broker.ports.ws}/mqtt`);
    const ws = (await connect(broker.urls.ws!)).client;
    const tcp = (await connect(broker.urls.mqtt!)).client;
    await ws.subscribeAsync("over/ws", { qos: 1 });
    const got = nextMessage(ws, "over/ws");
    await tcp.publishAsync("over/ws", "from tcp to ws", { qos: 1 });
    expect((await got).toString()).toBe("from tcp to ws");
    await Promise.all([end(ws), end(tcp)]);
    await broker.stop();
  });

  it("starts with websockets listeners only (mosquitto 2.0 needs a hidden plain one)", async () => {
    const broker = await startMosquitto({ listeners: [{ protocol: "ws" }] });
    expect(broker.listeners).toHaveLength(1);
    const { client } = await connect(broker.url);
    await end(client);
    await broker.stop();
  });

  it("reports a broker that cannot start with mosquitto's own words", async () => {
    await expect(startMosquitto({ extraConfig: ["no_such_option 1"], startTimeoutMs: 10000 })).rejects.toThrow(
      /exited with code \d+ during startup[\s\S]*no_such_option/,
    );
  });

  it("offers the broker log and waits for a line in it", async () => {
    const broker = await startMosquitto();
    const mark = broker.logMark();
    const { client } = await connect(broker.url, { clientId: "log-probe" });
    const line = await broker.waitForLog(/New client connected .* as log-probe/, { since: mark });
    expect(line).toContain("log-probe");
    await end(client);
    await broker.stop();
  });

  let leftover: { pid: number; dir: string } | undefined;
  it("closes a broker started inside a test when that test ends (1/2: start it, leave it running)", async () => {
    const broker = await startMosquitto();
    leftover = { pid: broker.pid!, dir: broker.dir };
    expect(existsSync(broker.dir)).toBe(true);
  });
  it("closes a broker started inside a test when that test ends (2/2: it is gone, its temp dir too)", () => {
    expect(leftover).toBeDefined();
    expect(alive(leftover!.pid)).toBe(false);
    expect(existsSync(leftover!.dir)).toBe(false);
  });

  it("close() is final: process and temp dir gone, no start() after it", async () => {
    const broker = await startMosquitto();
    await broker.close();
    expect(existsSync(broker.dir)).toBe(false);
    await expect(broker.start()).rejects.toThrow(/after close/);
  });

  it("leaves no mosquitto behind when the test process is SIGKILLed", async () => {
    // A child node process starts a broker and prints its pid; we SIGKILL the child; the kernel (setpriv
    // --pdeathsig) must then kill mosquitto.
    const script = `
      import { startMosquitto } from ${JSON.stringify(join(import.meta.dirname, "..", "helpers", "mosquitto.ts"))};
      const broker = await startMosquitto({ stopAfterTest: false });
      console.log("PID " + broker.pid);
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, VITEST: "" },
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const pid = Number(
      (await waitFor(() => /PID (\d+)/.exec(out), { timeoutMs: 30000, message: `broker pid; output: ${out}` }))[1],
    );
    expect(alive(pid)).toBe(true);
    child.kill("SIGKILL");
    await waitFor(() => !alive(pid), { message: `mosquitto ${pid} dies with its parent` });
  });
});
