// The firmware entry (src/device/main.ts with the thermostat) on Moddable's XS engine, its I/O served by the Node
// host through the bridge (tools/simulator/xs-device.ts), against the emulated UIoT Core over real sockets: the same
// flows test/tools/simulator/simulator.test.ts checks on V8, and `npm start -- --engine xs` run headless as a child process.
// Every test ends with no engine process left. Skipped when XS is not built, a failure when XS_REQUIRED is set.
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { NodeHost } from "../../hosts/node/host";
import { startXsDevice, type XsDevice } from "../../tools/simulator/xs-device";
import { CONFIG_KEYS } from "../../src/device/config-keys";
import type { OutboxStore } from "../../src/host";
import { hasXsnap, xsnapBinary } from "../../tools/xsnap/worker";
import { cloudWith as cloudWith_, DEVICE_SECRET, DSN, hostOn, PRODUCT_SECRET, provision, PSN, tlsCloudWith, tmpDir as tmpDir_, type Cleanups } from "../helpers/device-rig";
import { sleep, waitFor } from "../helpers/wait";

const root = path.join(import.meta.dirname, "..", "..");

const available = hasXsnap();
it.runIf(!available && !!process.env.XS_REQUIRED)("XS is built (XS_REQUIRED is set)", () => {
  throw new Error(`${xsnapBinary()} is missing: npm run build:xs`);
});

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const tmpDir = () => tmpDir_(cleanups, "uiot-xs-");
const cloudWith = (device: { deviceSecret?: string }) => cloudWith_(cleanups, device);

function gone(pid: number | undefined): boolean {
  try {
    process.kill(pid!, 0);
    return false;
  } catch {
    return true;
  }
}

/** The thermostat on XS, stopped (and its engine gone) when the test ends. */
async function boot(host: NodeHost, thermostat: Parameters<typeof startXsDevice>[0]["thermostat"] = { postInterval: 200 }): Promise<XsDevice> {
  const failures: Error[] = [];
  const device = await startXsDevice({ host, thermostat, onFailure: (e) => void failures.push(e) });
  cleanups.push(async () => {
    await device.stop();
    expect(gone(device.pid), "the engine's process is gone").toBe(true);
    expect(failures).toEqual([]);
  });
  return device;
}

describe.skipIf(!available)("the firmware entry on XS against the emulated UIoT Core", () => {
  it("logs one error naming what to run when the device is not provisioned, and does not start", async () => {
    const { host, logs } = hostOn(tmpDir());
    const device = await boot(host);
    expect(await device.started).toBe(false);
    expect(logs).toHaveLength(1);
    expect(logs[0][0]).toBe("error");
    expect(logs[0][1]).toMatch(/not provisioned.*npm run provision/);
    expect(device.state).toBe("stopped");
  });

  it("registers dynamically once, stores the DeviceSecret, then connects with it; a restart uses the stored secret", async () => {
    const cloud = await cloudWith({});
    const dir = tmpDir();
    const { host } = hostOn(dir);
    provision(host, cloud.url, { product: PRODUCT_SECRET });
    let registrations = 0;
    cloud.on("registered", () => registrations++);
    const device = await boot(host);
    expect(await device.started).toBe(true);
    const stored = host.config.get(CONFIG_KEYS.deviceSecret);
    expect(stored).toBe(cloud.device(PSN, DSN)!.deviceSecret);
    expect(host.config.get(CONFIG_KEYS.productSecret)).toBeUndefined(); // deleted once the DeviceSecret was stored
    await waitFor(() => cloud.device(PSN, DSN)?.online, { message: "the device online" });
    await waitFor(() => Object.keys(cloud.properties(PSN, DSN)).includes("temperature"), { message: "a property post" });
    await device.stop();
    expect(gone(device.pid)).toBe(true);

    const again = hostOn(dir);
    const second = await boot(again.host);
    expect(await second.started).toBe(true);
    await waitFor(() => second.connects === 1, { message: "connected again" });
    expect(registrations).toBe(1);
    expect(again.host.config.get(CONFIG_KEYS.deviceSecret)).toBe(stored);
  });

  it("the thermostat answers the console: set, command and shadow desired, with range checks; posts are confirmed", async () => {
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const { host } = hostOn(tmpDir());
    provision(host, cloud.url, { device: DEVICE_SECRET });
    const device = await boot(host);
    await waitFor(() => cloud.shadow(PSN, DSN).State.Reported.target_temperature === 21, { message: "the first shadow report" });

    expect((await cloud.setProperties(PSN, DSN, { target_temperature: 25 }))?.RetCode).toBe(0);
    expect((await cloud.setProperties(PSN, DSN, { target_temperature: 99 }))?.RetCode).toBe(1);
    expect((await cloud.setProperties(PSN, DSN, { humidity: 10 }))?.RetCode).toBe(2);
    await waitFor(() => cloud.properties(PSN, DSN).target_temperature?.Value === 25, { message: "the new target posted" });

    const ok = await cloud.sendCommand(PSN, DSN, "set_temp_correction", { correction: -1.5 });
    expect(ok.RetCode).toBe(0);
    expect((ok.Output as { correction: number }).correction).toBe(-1.5);
    expect((await cloud.sendCommand(PSN, DSN, "set_temp_correction", { correction: 8 })).RetCode).toBe(1);

    cloud.setShadowDesired(PSN, DSN, { target_temperature: 18 });
    await waitFor(() => cloud.shadow(PSN, DSN).State.Reported.target_temperature === 18 && Object.keys(cloud.shadow(PSN, DSN).State.Desired).length === 0, { message: "the desired target applied" });
    cloud.setShadowDesired(PSN, DSN, { target_temperature: 50 });
    await waitFor(() => Object.keys(cloud.shadow(PSN, DSN).State.Desired).length === 0, { message: "the bad desired value answered" });
    expect(cloud.shadow(PSN, DSN).State.Reported.target_temperature).toBe(18);

    // What the view shows is XS's own state
    await waitFor(() => device.thermostat.posts >= 2, { message: "confirmed posts" });
    expect(device.thermostat).toMatchObject({ target: 18, correction: -1.5 });
    expect(device.state).toBe("connected");
  });

  it("survives a broker restart: the connection is lost, comes back, and the posts go on", async () => {
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const { host, saw } = hostOn(tmpDir());
    provision(host, cloud.url, { device: DEVICE_SECRET });
    const device = await boot(host);
    await waitFor(() => device.connects === 1, { message: "connected" });
    await cloud.stop();
    // One connection lost; the redials refused while the broker is down are counted apart, not as drops.
    await waitFor(() => device.failedDials >= 1 && device.state !== "connected", { message: "the drop and a refused redial", timeoutMs: 15000 });
    expect(device.drops).toBe(1);
    expect(device.problem).not.toBe("");
    await sleep(300);
    await cloud.start();
    await waitFor(() => device.connects === 2, { message: "the reconnect", timeoutMs: 15000 });
    expect(device.problem).toBe("");
    expect(device.drops).toBe(1);
    const posts = device.thermostat.posts;
    await waitFor(() => device.thermostat.posts > posts + 1, { message: "posts after the restart" });
    expect(saw(/connected to mqtt:\/\/127\.0\.0\.1:\d+ as TESTPRODUCT00001\.thermostat-42 \(reconnect 1\)/)).toBe(true);
  });

  it("does not dial while the link is down, and connects at once when it comes up", async () => {
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const { host } = hostOn(tmpDir());
    provision(host, cloud.url, { device: DEVICE_SECRET });
    host.link.down();
    const device = await boot(host);
    await sleep(300);
    await device.sync!();
    expect(device.state).toBe("waiting");
    expect(device.connects).toBe(0);
    host.link.up();
    await waitFor(() => device.connects === 1, { message: "the first connection", timeoutMs: 2000 });

    host.link.down();
    await waitFor(() => device.state === "waiting", { message: "the drop" });
    await sleep(1500);
    await device.sync!();
    expect(device.state).toBe("waiting");
    const t = Date.now();
    host.link.up();
    await waitFor(() => device.connects === 2, { message: "the reconnect", timeoutMs: 2000 });
    expect(Date.now() - t).toBeLessThan(1000);
  });

  it("verifies TLS by default: an unknown CA is refused, the provisioned CA connects", async () => {
    const { url, ca } = await tlsCloudWith(cleanups);

    const untrusted = hostOn(tmpDir());
    provision(untrusted.host, url, { device: DEVICE_SECRET });
    const refused = await boot(untrusted.host);
    await waitFor(() => untrusted.saw(/not signed by a trusted CA/), { message: "the TLS refusal" });
    expect(refused.connects).toBe(0);
    await refused.stop();

    const trusted = hostOn(tmpDir());
    provision(trusted.host, url, { device: DEVICE_SECRET }, ca);
    const device = await boot(trusted.host);
    await waitFor(() => device.connects === 1, { message: "a verified TLS connection" });
  });

  it("keeps its QoS 1 messages in the host's outbox store until acknowledged", async () => {
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const { host } = hostOn(tmpDir());
    provision(host, cloud.url, { device: DEVICE_SECRET });
    const store = host.outbox!;
    const calls = { load: 0, save: 0, remove: 0 };
    const counted: OutboxStore = {
      load: () => (calls.load++, store.load()),
      save: (key, packet) => (calls.save++, store.save(key, packet)),
      remove: (key) => (calls.remove++, store.remove(key)),
    };
    const device = await boot({ ...host, outbox: counted } as NodeHost);
    await waitFor(() => device.thermostat.posts >= 3, { message: "three confirmed posts" });
    await device.sync!();
    expect(calls.load).toBe(1);
    expect(calls.save).toBeGreaterThanOrEqual(3);
    expect(calls.remove).toBeGreaterThanOrEqual(3);
    expect(calls.save - calls.remove).toBe(device.outbox);
  });

  it("raises high_temp when the temperature passes the threshold", async () => {
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const { host } = hostOn(tmpDir());
    provision(host, cloud.url, { device: DEVICE_SECRET });
    const device = await boot(host, { postInterval: 100, temperature: 29.5, target: 29.5, highTemp: 28 });
    const event = await waitFor(() => cloud.thingEvents(PSN, DSN).find((e) => e.Identifier === "high_temp"), { message: "the high_temp event" });
    expect(JSON.stringify(event)).toMatch(/threshold/);
    await waitFor(() => device.thermostat.events === 1, { message: "the event confirmed" });
    expect(device.thermostat.hot).toBe(true);
  });
});

describe.skipIf(!available)("npm start -- --engine xs, headless", () => {
  it("connects, posts, takes a desired value, answers a command, follows the link, and exits cleanly on SIGINT with no engine left", async () => {
    const dir = path.join(tmpDir(), "demo");
    const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "tools/simulator/simulator.ts", "--engine", "xs", "--dir", dir, "--interval", "300"], {
      cwd: root, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, FORCE_COLOR: "0" },
    });
    cleanups.push(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"));
    let out = "";
    child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once("exit", (code, signal) => r([code, signal])));
    const see = (re: RegExp, what: string) => waitFor(() => re.test(out), { message: `${what}; output so far:\n${out}`, timeoutMs: 20000 });
    child.stdin!.write("desired 24\ncommand 1.5\n");

    const pid = Number((await see(/the firmware runs on XS \(xsnap-worker, pid \d+\)/, "the engine"), /xsnap-worker, pid (\d+)/.exec(out)![1]));
    expect(gone(pid)).toBe(false);
    await see(/connected to mqtt:\/\/127\.0\.0\.1:\d+ as SIMDEMO000000001\.thermostat-01/, "the connection");
    await see(/out tmodel\/property\/post \{[^\n]*"temperature"/, "a property post");
    await see(/in  tmodel\/property\/post_reply \{[^\n]*"RetCode":0/, "the platform's post reply");
    expect(out).not.toMatch(/\x1b\[/);
    await see(/target temperature 24 °C \(desired in the shadow\)/, "the desired value applied");
    await see(/out shadow\/upstream \{[^\n]*"target_temperature":24[^\n]*"Desired":null/, "the shadow report clearing desired");
    await see(/command set_temp_correction: RetCode 0 Output \{"correction":1.5/, "the command answered");

    // The link reaches the device in XS; `status` shows XS's state after it.
    child.stdin!.write("link down\n");
    await see(/network link down: the device reconnects when it is back/, "the link down in XS");
    await see(/the network went down: [^\n]*; waiting for the link/, "the connection dropped");
    child.stdin!.write("status\n");
    await see(/status: link down, waiting, connections 1, /, "the status while down");
    child.stdin!.write("link up\n");
    await see(/connected to [^\n]* \(reconnect 1\)/, "the reconnect");

    child.kill("SIGINT");
    const [code, signal] = await Promise.race([exited, new Promise<never>((_, j) => setTimeout(() => j(new Error(`no exit after SIGINT:\n${out}`)), 10000))]);
    expect(signal).toBeNull();
    expect(code).toBe(0);
    expect(out).toMatch(/stopped: the device disconnected and the emulated cloud closed/);
    expect(gone(child.pid)).toBe(true);
    expect(gone(pid)).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"))[CONFIG_KEYS.deviceSecret]).toMatch(/^\S{16}$/);
  }, 60000);
});

describe("npm start --engine", () => {
  it("takes node or xs only", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "tools/simulator/simulator.ts", "--engine", "quickjs"], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
    const code = await new Promise((r) => child.once("exit", r));
    expect(code).toBe(2);
    expect(err).toBe('error: --engine is node or xs, not "quickjs"\n');
  }, 20000);
});
