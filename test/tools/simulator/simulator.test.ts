// The firmware entry (src/device/main.ts) on the Node host against the emulated cloud, and `npm start`'s code path
// (tools/simulator/simulator.ts) run headless as a child process: connect, posts, a desired value, a command, SIGINT.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { until } from "../../helpers/wait";
import { CONFIG_KEYS } from "../../../src/device/config-keys";
import { start, type Device } from "../../../src/device/main";
import { thermostat } from "../../../src/device/thermostat";
import { nodeDevice } from "../../../tools/simulator/device-view";
import { hasXsnap } from "../../../tools/xsnap/worker";
import type { NodeHost } from "../../../hosts/node/host";
import { cloudWith as cloudWith_, DEVICE_SECRET, DSN, hostOn, PRODUCT_SECRET, provision, PSN, tlsCloudWith, tmpDir as tmpDir_, type Cleanups } from "../../helpers/device-rig";

const root = path.join(import.meta.dirname, "..", "..", "..");
const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const tmpDir = () => tmpDir_(cleanups, "uiot-sim-");
const cloudWith = (device: { deviceSecret?: string }) => cloudWith_(cleanups, device);

async function boot(host: NodeHost): Promise<Device> {
  const device = await start(host, thermostat({ postInterval: 200 }));
  expect(device).toBeDefined();
  cleanups.push(() => device!.stop());
  return device!;
}

describe("the firmware entry (src/device/main.ts)", () => {
  it("logs one error naming what to run when the device is not provisioned, and stops", async () => {
    const { host, logs } = hostOn(tmpDir());
    expect(await start(host)).toBeUndefined();
    expect(logs).toHaveLength(1);
    expect(logs[0][0]).toBe("error");
    expect(logs[0][1]).toMatch(/not provisioned.*npm run provision/);
  });

  it("registers dynamically once, stores the DeviceSecret, then connects with it", async () => {
    const cloud = await cloudWith({});
    const dir = tmpDir();
    const { host } = hostOn(dir);
    provision(host, cloud.url, { product: PRODUCT_SECRET });
    let registrations = 0;
    cloud.on("registered", () => registrations++);
    const device = await boot(host);
    const stored = host.config.get(CONFIG_KEYS.deviceSecret);
    expect(stored).toBe(cloud.device(PSN, DSN)!.deviceSecret);
    await until(() => cloud.device(PSN, DSN)?.online, "the device online");
    await until(() => Object.keys(cloud.properties(PSN, DSN)).includes("temperature"), "a property post");
    device.stop();

    // A restart uses the stored secret: no second registration, and the secret is not touched.
    const again = hostOn(dir);
    await boot(again.host);
    await until(() => cloud.device(PSN, DSN)?.online, "the device online again");
    expect(registrations).toBe(1);
    expect(again.host.config.get(CONFIG_KEYS.deviceSecret)).toBe(stored);
  });

  it("does not dial while the link is down, and connects at once when it comes up", async () => {
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const { host } = hostOn(tmpDir());
    provision(host, cloud.url, { device: DEVICE_SECRET });
    host.link.down();
    const device = await boot(host);
    await new Promise((r) => setTimeout(r, 300));
    expect(device.client.state).toBe("waiting");
    expect(device.connects).toBe(0);
    host.link.up();
    await until(() => device.connects === 1, "the first connection", 2000);

    // Down while connected: dropped, no retries while down; up: back within a moment, not after the backoff.
    host.link.down();
    await until(() => device.client.state === "waiting", "the drop");
    await new Promise((r) => setTimeout(r, 1500));
    expect(device.client.state).toBe("waiting");
    const t = Date.now();
    host.link.up();
    await until(() => device.connects === 2, "the reconnect", 2000);
    expect(Date.now() - t).toBeLessThan(1000);
  });

  it("the thermostat answers the console: set, command and shadow desired, with range checks", async () => {
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const { host } = hostOn(tmpDir());
    provision(host, cloud.url, { device: DEVICE_SECRET });
    await boot(host);
    await until(() => cloud.shadow(PSN, DSN).State.Reported.target_temperature === 21, "the first shadow report");

    expect((await cloud.setProperties(PSN, DSN, { target_temperature: 25 }))?.RetCode).toBe(0);
    expect((await cloud.setProperties(PSN, DSN, { target_temperature: 99 }))?.RetCode).toBe(1);
    expect((await cloud.setProperties(PSN, DSN, { humidity: 10 }))?.RetCode).toBe(2);
    await until(() => cloud.properties(PSN, DSN).target_temperature?.Value === 25, "the new target posted");

    const ok = await cloud.sendCommand(PSN, DSN, "set_temp_correction", { correction: -1.5 });
    expect(ok.RetCode).toBe(0);
    expect((ok.Output as { correction: number }).correction).toBe(-1.5);
    expect((await cloud.sendCommand(PSN, DSN, "set_temp_correction", { correction: 8 })).RetCode).toBe(1);

    cloud.setShadowDesired(PSN, DSN, { target_temperature: 18 });
    await until(() => cloud.shadow(PSN, DSN).State.Reported.target_temperature === 18 && Object.keys(cloud.shadow(PSN, DSN).State.Desired).length === 0, "the desired target applied");
    cloud.setShadowDesired(PSN, DSN, { target_temperature: 50 });
    await until(() => Object.keys(cloud.shadow(PSN, DSN).State.Desired).length === 0, "the bad desired value answered");
    expect(cloud.shadow(PSN, DSN).State.Reported.target_temperature).toBe(18);
  });

  it("skips a packet larger than the host's maxPacketSize with a clear warning, and goes on answering", async () => {
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const { host, logs } = hostOn(tmpDir());
    provision(host, cloud.url, { device: DEVICE_SECRET });
    await boot({ ...host, maxPacketSize: 1024 });
    await until(() => cloud.shadow(PSN, DSN).State.Reported.target_temperature === 21, "the first shadow report");
    const big = cloud.setProperties(PSN, DSN, { target_temperature: 25, note: "x".repeat(1500) });
    await until(() => logs.find(([level, m]) => level === "warn" && /PUBLISH exceeds the 1024-byte maximum packet size/.test(m)), "the warning");
    expect((await cloud.setProperties(PSN, DSN, { target_temperature: 23 }))?.RetCode).toBe(0);
    await until(() => cloud.properties(PSN, DSN).target_temperature?.Value === 23, "the next set applied");
    void big.catch(() => undefined);
  });

  it("verifies TLS by default: an unknown CA is refused, the provisioned CA connects", async () => {
    const { url, ca } = await tlsCloudWith(cleanups);

    const untrusted = hostOn(tmpDir());
    provision(untrusted.host, url, { device: DEVICE_SECRET });
    const refused = await boot(untrusted.host);
    await until(() => untrusted.logs.some(([, m]) => /not signed by a trusted CA/.test(m)), "the TLS refusal");
    expect(refused.connects).toBe(0);
    refused.stop();

    const trusted = hostOn(tmpDir());
    provision(trusted.host, url, { device: DEVICE_SECRET }, ca);
    const device = await boot(trusted.host);
    await until(() => device.connects === 1, "a verified TLS connection");
  });

  it("raises high_temp when the temperature passes the threshold", async () => {
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const { host } = hostOn(tmpDir());
    provision(host, cloud.url, { device: DEVICE_SECRET });
    const device = await start(host, thermostat({ postInterval: 100, temperature: 29.5, target: 29.5, highTemp: 28 }));
    cleanups.push(() => device?.stop());
    const event = await until(() => cloud.thingEvents(PSN, DSN).find((e) => e.Identifier === "high_temp"), "the high_temp event");
    expect(JSON.stringify(event)).toMatch(/threshold/);
  });
});

describe("the simulator's view of the device (tools/simulator/device-view.ts)", () => {
  it("counts a connection that was up and then lost as a drop, and the redials that fail meanwhile apart", async () => {
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const { host } = hostOn(tmpDir());
    provision(host, cloud.url, { device: DEVICE_SECRET });
    const view = nodeDevice(host, thermostat({ postInterval: 200 }), () => undefined);
    cleanups.push(() => view.stop());
    expect(await view.started).toBe(true);
    await until(() => view.connects === 1, "the first connection");
    expect([view.drops, view.failedDials]).toEqual([0, 0]);

    await cloud.stop();
    await until(() => view.failedDials >= 2, "two redials refused while the broker is down", 20000);
    expect(view.drops).toBe(1);
    expect(view.problem).not.toBe("");
    await cloud.start();
    await until(() => view.connects === 2, "the reconnect", 20000);
    expect(view.drops).toBe(1);
    expect(view.problem).toBe("");
  }, 40000);
});

/** Runs `command` in the project's folder with piped stdio, killed (SIGKILL) at the test's end if still running. */
function spawnSimulator([command, ...args]: string[]) {
  const child = spawn(command, args, { cwd: root, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, FORCE_COLOR: "0" } });
  cleanups.push(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"));
  let out = "";
  child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once("exit", (code, signal) => r([code, signal])));
  return {
    child,
    out: () => out,
    exit: (ms: number) => Promise.race([exited, new Promise<never>((_, j) => setTimeout(() => j(new Error(`no exit within ${ms} ms:\n${out}`)), ms))]),
  };
}

/** The pids of the processes running tools/simulator/simulator.ts on `dir` (ps, as a user would look). */
function simulatorsIn(dir: string): number[] {
  const ps = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return ps.split("\n").filter((l) => l.includes("simulator.ts") && l.includes(dir) && !/\bsh -c\b/.test(l)).map((l) => Number(l.trim().split(/\s+/)[0]));
}

describe("npm start (tools/simulator/simulator.ts), headless", () => {
  it("connects, posts, takes a desired value, answers a command, and exits cleanly on SIGINT", async () => {
    const dir = path.join(tmpDir(), "demo");
    const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "tools/simulator/simulator.ts", "--dir", dir, "--interval", "300"], {
      cwd: root, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, FORCE_COLOR: "0" },
    });
    cleanups.push(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"));
    let out = "";
    child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once("exit", (code, signal) => r([code, signal])));
    const see = (re: RegExp, what: string) => until(() => re.test(out), `${what}; output so far:\n${out}`, 15000);
    // A script's commands, written before the device is up: they wait for its first connection.
    child.stdin!.write("desired 24\ncommand 1.5\n");

    await see(/connected to mqtt:\/\/127\.0\.0\.1:\d+ as SIMDEMO000000001\.thermostat-01/, "the connection");
    await see(/out tmodel\/property\/post \{[^\n]*"temperature"/, "a property post");
    await see(/in  tmodel\/property\/post_reply \{[^\n]*"RetCode":0/, "the platform's post reply");
    expect(out).not.toMatch(/\x1b\[/); // not a terminal: plain lines

    await see(/target temperature 24 °C \(desired in the shadow\)/, "the desired value applied");
    await see(/out shadow\/upstream \{[^\n]*"target_temperature":24[^\n]*"Desired":null/, "the shadow report clearing desired");

    await see(/command set_temp_correction: RetCode 0 Output \{"correction":1.5/, "the command answered");

    child.kill("SIGINT");
    const [code, signal] = await Promise.race([exited, new Promise<never>((_, j) => setTimeout(() => j(new Error(`no exit after SIGINT:\n${out}`)), 8000))]);
    expect(signal).toBeNull();
    expect(code).toBe(0);
    expect(out).toMatch(/stopped: the device disconnected and the emulated cloud closed/);
    expect(() => process.kill(child.pid!, 0)).toThrow(); // gone, nothing left behind
    // The demo store holds the DeviceSecret the device registered for itself.
    expect(JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"))[CONFIG_KEYS.deviceSecret]).toMatch(/^\S{16}$/);
  }, 40000);

  it("runs a piped script in order, each command to its end, and quit after the last (stdin ended)", async () => {
    const dir = path.join(tmpDir(), "demo");
    const sim = spawnSimulator(["node", "--import", "tsx", "tools/simulator/simulator.ts", "--dir", dir]);
    sim.child.stdin!.end("desired 24\nset 25\ncommand 1.5\nstatus\nquit\n");
    const [code, signal] = await sim.exit(30000);
    expect(signal).toBeNull();
    expect(code, sim.out()).toBe(0);
    const lines = sim.out().split("\n");
    const at = (re: RegExp) => {
      const i = lines.findIndex((l) => re.test(l));
      expect(i, `${re} in:\n${sim.out()}`).toBeGreaterThanOrEqual(0);
      return i;
    };
    const order = [
      at(/connected to mqtt:\/\/127\.0\.0\.1:\d+ as SIMDEMO000000001\.thermostat-01/),
      at(/shadow desired target_temperature = 24: the device reported \{"target_temperature":24/),
      at(/property set target_temperature = 25: RetCode 0/),
      at(/command set_temp_correction: RetCode 0 Output \{"correction":1.5/),
      at(/^status: link up, connected, connections 1, drops 0, failed dials 0, .* target 25 correction 1.5/),
      at(/stopped: the device disconnected and the emulated cloud closed/),
    ];
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(sim.out()).not.toMatch(/\[(warn|error)\]/); // nothing cut short by the quit
  }, 40000);

  for (const engine of ["node", "xs"] as const) {
    it.skipIf(engine === "xs" && !hasXsnap())(`update (what key u runs) on ${engine === "xs" ? "XS" : "V8"}: publishes the next firmware, the device downloads it, restarts as it and reports success`, async () => {
      const dir = path.join(tmpDir(), "demo");
      const sim = spawnSimulator(["node", "--import", "tsx", "tools/simulator/simulator.ts", "--dir", dir, "--engine", engine]);
      sim.child.stdin!.end("update\nstatus\nupdate 0.3.0\nstatus\nquit\n");
      const [code, signal] = await sim.exit(90000);
      expect(signal).toBeNull();
      expect(code, sim.out()).toBe(0);
      const lines = sim.out().split("\n");
      let from = 0;
      /** The next line matching `re`, after the last one found. */
      const next = (re: RegExp) => {
        const i = lines.findIndex((l, j) => j >= from && re.test(l));
        expect(i, `${re} after line ${from} in:\n${sim.out()}`).toBeGreaterThanOrEqual(0);
        from = i + 1;
      };
      next(/out ota\/upstream \{"Method":"report_version","Payload":\{"Module":"default","Version":"0\.1\.0"\}\}/);
      next(/\[console\] firmware 0\.1\.1 published \(327680 bytes, MD5 [0-9a-f]{32}\); update_firmware sent to the device \(running 0\.1\.0\)/);
      next(/in {2}ota\/downstream \{"Method":"update_firmware".*"Version":"0\.1\.1".*&Signature=…"/);
      next(/out ota\/upstream \{"Method":"report_progress","Payload":\{"State":"downloading","Percent":100/);
      next(/OTA: 0\.1\.1 downloaded \(327680 bytes/);
      next(/\[console\] the device restarts into its new firmware/);
      next(/connected to mqtt:\/\/127\.0\.0\.1:\d+ as SIMDEMO000000001\.thermostat-01/);
      next(/out ota\/upstream \{"Method":"report_success","Payload":\{"Module":"default","Version":"0\.1\.1"\}\}/);
      next(/\[console\] firmware update to 0\.1\.1: done, the device runs 0\.1\.1/);
      next(/^status: link up, connected, .*, firmware 0\.1\.1$/);
      next(/\[console\] firmware 0\.3\.0 published .* \(running 0\.1\.1\)/);
      next(/\[console\] firmware update to 0\.3\.0: done, the device runs 0\.3\.0/);
      next(/^status: link up, connected, .*, firmware 0\.3\.0$/);
      next(/stopped: the device disconnected and the emulated cloud closed/);
      expect(sim.out()).not.toMatch(/Signature=[0-9a-f]/); // the URL's signature is never printed
      expect(sim.out()).not.toMatch(/\[error\]/);
      expect(JSON.parse(fs.readFileSync(path.join(dir, "firmware", "boot.json"), "utf8"))).toMatchObject({ version: "0.3.0", size: 327680 });
      expect(fs.readFileSync(path.join(dir, "firmware", "image.bin")).subarray(0, 36).toString()).toBe("UIoT thermostat demo firmware 0.3.0\n");
    }, 120000);
  }

  it("update against a real broker is refused: there is no console", async () => {
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const dir = tmpDir();
    provision(hostOn(dir).host, cloud.url, { device: DEVICE_SECRET });
    const sim = spawnSimulator(["node", "--import", "tsx", "tools/simulator/simulator.ts", "--broker", cloud.url, "--device", dir]);
    sim.child.stdin!.end("update\nquit\n");
    const [code] = await sim.exit(30000);
    expect(code, sim.out()).toBe(0);
    expect(sim.out()).toMatch(/\[error\] there is no console against a real broker/);
    expect(sim.out()).not.toMatch(/update_firmware/);
  }, 40000);

  it("with a script of commands the real broker has no console for: each refused at once, in order, then quit", async () => {
    // The device's own store, against the emulated cloud as "a real broker" (no console).
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const dir = tmpDir();
    provision(hostOn(dir).host, cloud.url, { device: DEVICE_SECRET });
    const sim = spawnSimulator(["node", "--import", "tsx", "tools/simulator/simulator.ts", "--broker", cloud.url, "--device", dir]);
    sim.child.stdin!.end("desired 24\nstatus\nquit\n");
    const [code] = await sim.exit(30000);
    expect(code, sim.out()).toBe(0);
    expect(sim.out()).toMatch(/\[error\] there is no console against a real broker: use the platform's console \(here only link down\|up, status, quit work\)\n(.*\n)*status: link up, connected, connections 1/);
  }, 40000);

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`npm start stops cleanly on ${signal} sent to the npm process, and leaves no simulator behind`, async () => {
      const dir = path.join(tmpDir(), "demo");
      const sim = spawnSimulator(["npm", "start", "--", "--dir", dir, "--interval", "300"]);
      await until(() => /connected to mqtt:/.test(sim.out()), `the connection; output so far:\n${sim.out()}`, 20000);
      expect(simulatorsIn(dir)).toHaveLength(1);
      sim.child.kill(signal);
      await sim.exit(15000);
      await until(() => simulatorsIn(dir).length === 0, `no simulator process left; output:\n${sim.out()}`, 15000);
      // It stopped in order (the device's DISCONNECT, the cloud closed), not killed.
      await until(() => /stopped: the device disconnected and the emulated cloud closed/.test(sim.out()), `the clean stop; output:\n${sim.out()}`, 5000);
    }, 60000);
  }

  it("--help prints the usage and exits 0", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "tools/simulator/simulator.ts", "--help"], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    const code = await new Promise((r) => child.once("exit", r));
    expect(code).toBe(0);
    expect(out).toMatch(/--broker URL/);
    expect(out).toMatch(/--device DIR\|NAME/);
  }, 20000);
});
