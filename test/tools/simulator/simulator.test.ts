// `npm start`'s code path (tools/simulator/simulator.ts) run headless as a child process: connect, posts, a desired
// value, a command, the link, SIGINT, on V8 and on XS (`--engine xs`, skipped when XS is not built); a piped script,
// the console against a real broker, signals to `npm start` itself, --help and --engine on V8. The firmware entry
// in-process on each engine is tested in test/e2e/firmware-entry.test.ts.
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { until } from "../../helpers/wait";
import { CONFIG_KEYS } from "../../../src/device/config-keys";
import { hasXsnap } from "../../../tools/xsnap/worker";
import {
  cloudWith as cloudWith_,
  DEVICE_SECRET,
  hostOn,
  provision,
  tmpDir as tmpDir_,
  type Cleanups,
} from "../../helpers/device-rig";

const root = path.join(import.meta.dirname, "..", "..", "..");
const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const tmpDir = () => tmpDir_(cleanups, "uiot-sim-");
const cloudWith = (device: { deviceSecret?: string }) => cloudWith_(cleanups, device);

/** Runs `command` in the project's folder with piped stdio, killed (SIGKILL) at the test's end if still running. */
function spawnSimulator([command, ...args]: string[]) {
  const child = spawn(command, args, {
    cwd: root,
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, FORCE_COLOR: "0" },
  });
  cleanups.push(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"));
  let out = "";
  child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) =>
    child.once("exit", (code, signal) => r([code, signal])),
  );
  return {
    child,
    out: () => out,
    exit: (ms: number) =>
      Promise.race([
        exited,
        new Promise<never>((_, j) => setTimeout(() => j(new Error(`no exit within ${ms} ms:\n${out}`)), ms)),
      ]),
  };
}

function gone(pid: number | undefined): boolean {
  try {
    process.kill(pid!, 0);
    return false;
  } catch {
    return true;
  }
}

/** The pids of the processes running tools/simulator/simulator.ts on `dir` (ps, as a user would look). */
function simulatorsIn(dir: string): number[] {
  const ps = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return ps
    .split("\n")
    .filter((l) => l.includes("simulator.ts") && l.includes(dir) && !/\bsh -c\b/.test(l))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

const engines = [
  ["V8", { args: [], available: true }],
  ["XS", { args: ["--engine", "xs"], available: hasXsnap() }],
] as const;

describe.each(engines)("npm start on %s (tools/simulator/simulator.ts), headless", (name, { args, available }) => {
  it.skipIf(!available)(
    "connects, posts, takes a desired value, answers a command, follows the link, and exits cleanly on SIGINT with nothing left running",
    async () => {
      const dir = path.join(tmpDir(), "demo");
      const sim = spawnSimulator([
        process.execPath,
        "--import",
        "tsx",
        "tools/simulator/simulator.ts",
        ...args,
        "--dir",
        dir,
        "--interval",
        "300",
      ]);
      const see = (re: RegExp, what: string) =>
        until(() => re.test(sim.out()), `${what}; output so far:\n${sim.out()}`, 20000);
      // A script's commands, written before the device is up: they wait for its first connection.
      sim.child.stdin!.write("desired 24\ncommand 1.5\n");

      let engine: number | undefined;
      if (name === "XS") {
        await see(/the firmware runs on XS \(xsnap-worker, pid \d+\)/, "the engine");
        engine = Number(/xsnap-worker, pid (\d+)/.exec(sim.out())![1]);
        expect(gone(engine)).toBe(false);
      }
      await see(/connected to mqtt:\/\/127\.0\.0\.1:\d+ as SIMDEMO000000001\.thermostat-01/, "the connection");
      await see(/out tmodel\/property\/post \{[^\n]*"temperature"/, "a property post");
      await see(/in {2}tmodel\/property\/post_reply \{[^\n]*"RetCode":0/, "the platform's post reply");
      expect(sim.out()).not.toMatch(/\x1b\[/); // not a terminal: plain lines

      await see(/target temperature 24 °C \(desired in the shadow\)/, "the desired value applied");
      await see(
        /out shadow\/upstream \{[^\n]*"target_temperature":24[^\n]*"Desired":null/,
        "the shadow report clearing desired",
      );

      await see(/command set_temp_correction: RetCode 0 Output \{"correction":1.5/, "the command answered");

      // The link reaches the device; `status` shows the device's state after it.
      sim.child.stdin!.write("link down\n");
      await see(/network link down: the device reconnects when it is back/, "the link down");
      await see(/the network went down: [^\n]*; waiting for the link/, "the connection dropped");
      sim.child.stdin!.write("status\n");
      await see(/status: link down, waiting, connections 1, /, "the status while down");
      sim.child.stdin!.write("link up\n");
      await see(/connected to [^\n]* \(reconnect 1\)/, "the reconnect");

      sim.child.kill("SIGINT");
      const [code, signal] = await sim.exit(10000);
      expect(signal).toBeNull();
      expect(code).toBe(0);
      expect(sim.out()).toMatch(/stopped: the device disconnected and the emulated cloud closed/);
      expect(gone(sim.child.pid)).toBe(true); // gone, nothing left behind
      if (engine !== undefined) expect(gone(engine)).toBe(true);
      // The demo store holds the DeviceSecret the device registered for itself.
      expect(JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"))[CONFIG_KEYS.deviceSecret]).toMatch(
        /^\S{16}$/,
      );
    },
    60000,
  );
});

describe("npm start (tools/simulator/simulator.ts), headless", () => {
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
    it.skipIf(engine === "xs" && !hasXsnap())(
      `update (what key u runs) on ${engine === "xs" ? "XS" : "V8"}: publishes the next firmware, the device downloads it, restarts as it and reports success`,
      async () => {
        const dir = path.join(tmpDir(), "demo");
        const sim = spawnSimulator([
          "node",
          "--import",
          "tsx",
          "tools/simulator/simulator.ts",
          "--dir",
          dir,
          "--engine",
          engine,
        ]);
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
        next(
          /\[console\] firmware 0\.1\.1 published \(327680 bytes, MD5 [0-9a-f]{32}\); update_firmware sent to the device \(running 0\.1\.0\)/,
        );
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
        expect(JSON.parse(fs.readFileSync(path.join(dir, "firmware", "boot.json"), "utf8"))).toMatchObject({
          version: "0.3.0",
          size: 327680,
        });
        expect(
          fs
            .readFileSync(path.join(dir, "firmware", "image.bin"))
            .subarray(0, 36)
            .toString(),
        ).toBe("UIoT thermostat demo firmware 0.3.0\n");
      },
      120000,
    );
  }

  it("with a script of commands the real broker has no console for: each refused at once, in order, then quit", async () => {
    // The device's own store, against the emulated cloud as "a real broker" (no console).
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const dir = tmpDir();
    provision(hostOn(dir).host, cloud.url, { device: DEVICE_SECRET });
    const sim = spawnSimulator([
      "node",
      "--import",
      "tsx",
      "tools/simulator/simulator.ts",
      "--broker",
      cloud.url,
      "--device",
      dir,
    ]);
    sim.child.stdin!.end("desired 24\nupdate\nstatus\nquit\n");
    const [code] = await sim.exit(30000);
    expect(code, sim.out()).toBe(0);
    // `desired` and `update` each refused; no update reaches the device
    expect(sim.out().match(/\[error\] there is no console against a real broker/g)).toHaveLength(2);
    expect(sim.out()).not.toMatch(/update_firmware/);
    expect(sim.out()).toMatch(
      /\[error\] there is no console against a real broker: use the platform's console \(here only link down\|up, status, quit work\)\n(.*\n)*status: link up, connected, connections 1/,
    );
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
      await until(
        () => /stopped: the device disconnected and the emulated cloud closed/.test(sim.out()),
        `the clean stop; output:\n${sim.out()}`,
        5000,
      );
    }, 60000);
  }

  it("--help prints the usage and exits 0", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "tools/simulator/simulator.ts", "--help"], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    const code = await new Promise((r) => child.once("exit", r));
    expect(code).toBe(0);
    expect(out).toMatch(/--broker URL/);
    expect(out).toMatch(/--device DIR\|NAME/);
  }, 20000);

  it("--engine takes node or xs only", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "tools/simulator/simulator.ts", "--engine", "quickjs"], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
    const code = await new Promise((r) => child.once("exit", r));
    expect(code).toBe(2);
    expect(err).toBe('error: --engine is node or xs, not "quickjs"\n');
  }, 20000);
});
