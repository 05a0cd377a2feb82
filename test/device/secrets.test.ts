// The firmware entry (src/device/main.ts) on the Node host against the emulated cloud, for what it does with the
// device's secrets: plain text to a host that is not loopback only with the opt-in, and a warning at every connect
// when it is given; the ProductSecret deleted from the store once the DeviceSecret is stored (unless kept). And
// `npm start -- --dir DIR`, which (re)provisions the demo device only into a folder that is the demo's.
import { spawn } from "node:child_process";
import type * as dns from "node:dns";
import * as fs from "node:fs";
import type * as net from "node:net";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { until } from "../helpers/wait";
import { createNodeHost } from "../../hosts/node/host";
import { DEMO_DEVICE_SN, DEMO_PRODUCT_SN, demoDirProblem, parseSimulatorArgs } from "../../tools/simulator/simulator";
import { CONFIG_KEYS } from "../../src/device/config-keys";
import type { LogLevel } from "../../src/host";
import { start, type Device } from "../../src/device/main";
import { thermostat } from "../../src/device/thermostat";
import { trackChild } from "../helpers/cleanup";
import {
  cloudWith,
  DEVICE_SECRET,
  DSN,
  hostOn,
  PRODUCT_SECRET,
  provision,
  PSN,
  tmpDir,
  type Cleanups,
} from "../helpers/device-rig";

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function boot(host: Parameters<typeof start>[0]): Promise<Device> {
  const device = await start(host, thermostat({ postInterval: 200 }));
  expect(device).toBeDefined();
  cleanups.push(() => device!.stop());
  return device!;
}

/**
 * A Node host whose resolver sends "broker.test" to 127.0.0.1: a broker on a host that is not loopback by name
 * (the rule looks at the URL), reachable on this machine.
 */
function remoteHost(dir: string) {
  const logs: [LogLevel, string][] = [];
  const lookup = ((
    hostname: string,
    options: unknown,
    callback: (e: Error | null, address: string | dns.LookupAddress[], family?: number) => void,
  ) => {
    const cb = typeof options === "function" ? (options as typeof callback) : callback;
    if (hostname !== "broker.test") return cb(new Error(`unexpected lookup of ${hostname}`), "");
    if (typeof options === "object" && options !== null && (options as { all?: boolean }).all)
      return cb(null, [{ address: "127.0.0.1", family: 4 }]);
    cb(null, "127.0.0.1", 4);
  }) as net.LookupFunction;
  const host = createNodeHost({ dir, log: (level, message) => void logs.push([level, message]), connect: { lookup } });
  return { host, logs };
}

describe("plain text to a host that is not loopback", () => {
  it("is refused at boot without the opt-in: one error naming the fix, nothing dialled", async () => {
    const cloud = await cloudWith(cleanups, { deviceSecret: DEVICE_SECRET });
    let connections = 0;
    cloud.on("online", () => connections++);
    const { host, logs } = remoteHost(tmpDir(cleanups));
    provision(host, `mqtt://broker.test:${cloud.port}`, { device: DEVICE_SECRET });
    expect(await start(host)).toBeUndefined();
    expect(logs).toHaveLength(1);
    expect(logs[0][0]).toBe("error");
    expect(logs[0][1]).toMatch(
      /mqtt:\/\/broker\.test:\d+ is plain mqtt:\/\/ to a host that is not this machine: the DeviceSecret .* would cross the network in clear: use mqtts:\/\/ or wss:\/\/.*config key uiot_plaintext = 1: `npm run provision -- \.\.\. --allow-plaintext`/,
    );
    expect(host.link.openSockets).toBe(0);
    expect(connections).toBe(0);
  });

  it("with uiot_plaintext = 1 connects, and warns at every connect which secret crosses in clear", async () => {
    const cloud = await cloudWith(cleanups, {});
    const { host, logs } = remoteHost(tmpDir(cleanups));
    provision(host, `mqtt://broker.test:${cloud.port}`, { product: PRODUCT_SECRET });
    host.config.set(CONFIG_KEYS.allowPlaintext, "1");
    const warnings = () => logs.filter(([level, m]) => level === "warn" && /^PLAIN TEXT/.test(m)).map(([, m]) => m);
    const device = await boot(host);
    await until(() => device.connects === 1, "the first connection");
    // The registration's connection (the ProductSecret), then the device's (the DeviceSecret).
    expect(warnings()).toEqual([
      expect.stringMatching(
        /^PLAIN TEXT: connecting to mqtt:\/\/broker\.test:\d+ without TLS: the ProductSecret \(the secret of every device of the product\) crosses the network in clear, readable by anyone on the way \(allowed by uiot_plaintext = 1; use mqtts:\/\/ or wss:\/\/ to protect it\)$/,
      ),
      expect.stringMatching(
        /^PLAIN TEXT: connecting to mqtt:\/\/broker\.test:\d+ without TLS: the DeviceSecret crosses the network in clear/,
      ),
    ]);
    host.link.down();
    await until(() => device.client.state === "waiting", "the drop");
    host.link.up();
    await until(() => device.connects === 2, "the reconnect");
    expect(warnings()).toHaveLength(3);
    expect(warnings()[2]).toMatch(/the DeviceSecret crosses the network in clear/);
    for (const [, m] of logs)
      for (const s of [PRODUCT_SECRET, host.config.get(CONFIG_KEYS.deviceSecret)!]) expect(m).not.toContain(s);
  });

  it("npm start: --allow-plaintext goes with --broker only", () => {
    expect(parseSimulatorArgs(["--broker", "mqtt://broker.test", "--allow-plaintext"])).toMatchObject({
      broker: "mqtt://broker.test",
      allowPlaintext: true,
    });
    expect(() => parseSimulatorArgs(["--allow-plaintext"])).toThrow(/--allow-plaintext goes with --broker/);
  });

  it("to loopback needs no opt-in and logs no warning (the emulated cloud)", async () => {
    const cloud = await cloudWith(cleanups, { deviceSecret: DEVICE_SECRET });
    const { host, logs } = hostOn(tmpDir(cleanups));
    provision(host, cloud.url.replace("127.0.0.1", "localhost"), { device: DEVICE_SECRET });
    const device = await boot(host);
    await until(() => device.connects === 1, "the connection");
    expect(logs.filter(([, m]) => /PLAIN TEXT/.test(m))).toEqual([]);
  });
});

describe("the ProductSecret after dynamic registration (the Node host's file store)", () => {
  it("is deleted once the DeviceSecret is stored; the device then runs on the DeviceSecret", async () => {
    const cloud = await cloudWith(cleanups, {});
    const dir = tmpDir(cleanups);
    const { host, logs } = hostOn(dir);
    provision(host, cloud.url, { product: PRODUCT_SECRET });
    const device = await boot(host);
    await until(() => device.connects === 1, "the first connection");
    const secret = cloud.device(PSN, DSN)!.deviceSecret!;
    // Read from the file again, not from the store object in memory.
    const file = hostOn(dir).host.config;
    expect(file.get(CONFIG_KEYS.deviceSecret)).toBe(secret);
    expect(file.get(CONFIG_KEYS.productSecret)).toBeUndefined();
    expect(logs.some(([, m]) => /the ProductSecret was deleted from the config store \(uiot_psecret\)/.test(m))).toBe(
      true,
    );
  });

  it("stays with uiot_keep_psec = 1", async () => {
    const cloud = await cloudWith(cleanups, {});
    const dir = tmpDir(cleanups);
    const { host } = hostOn(dir);
    provision(host, cloud.url, { product: PRODUCT_SECRET });
    host.config.set(CONFIG_KEYS.keepProductSecret, "1");
    const device = await boot(host);
    await until(() => device.connects === 1, "the first connection");
    const file = hostOn(dir).host.config;
    expect(file.get(CONFIG_KEYS.deviceSecret)).toBe(cloud.device(PSN, DSN)!.deviceSecret);
    expect(file.get(CONFIG_KEYS.productSecret)).toBe(PRODUCT_SECRET);
  });

  it("left beside a DeviceSecret (a device registered before), is deleted at boot", async () => {
    const cloud = await cloudWith(cleanups, { deviceSecret: DEVICE_SECRET });
    const dir = tmpDir(cleanups);
    const { host, logs } = hostOn(dir);
    provision(host, cloud.url, { device: DEVICE_SECRET, product: PRODUCT_SECRET });
    const device = await boot(host);
    await until(() => device.connects === 1, "the connection");
    const file = hostOn(dir).host.config;
    expect([file.get(CONFIG_KEYS.deviceSecret), file.get(CONFIG_KEYS.productSecret)]).toEqual([
      DEVICE_SECRET,
      undefined,
    ]);
    expect(
      logs.some(([, m]) =>
        /the ProductSecret \(uiot_psecret\) was deleted from the config store: this device has its DeviceSecret/.test(
          m,
        ),
      ),
    ).toBe(true);
  });
});

describe("npm start -- --dir DIR: only the simulator's own demo folder takes the demo device", () => {
  const REPO = path.join(import.meta.dirname, "..", "..");
  const TSX = pathToFileURL(path.join(REPO, "node_modules", "tsx", "dist", "loader.mjs")).href;

  /** Runs a command of this project in `cwd` (its relative paths, .simulator/ among them, are `cwd`'s). */
  function run(
    script: string,
    args: string[],
    cwd: string,
    input = "",
    interruptAt?: RegExp,
  ): Promise<{ code: number | null; out: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ["--import", TSX, path.join(REPO, script), ...args], {
        cwd,
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...process.env, FORCE_COLOR: "0" },
      });
      trackChild(child);
      let out = "";
      let interrupted = false;
      const take = (b: Buffer): void => {
        out += b.toString();
        if (interruptAt && !interrupted && interruptAt.test(out)) {
          interrupted = true;
          child.kill("SIGINT");
        }
      };
      child.stdout.on("data", take);
      child.stderr.on("data", take);
      const timer = setTimeout(() => child.kill("SIGKILL"), 30000);
      child.on("error", reject);
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, out });
      });
      child.stdin.end(input);
    });
  }

  /** Every file under `dir` with its bytes and mode. */
  function snapshot(dir: string): Record<string, string> {
    const files: Record<string, string> = {};
    for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
      const p = path.join(e.parentPath, e.name);
      files[path.relative(dir, p)] = e.isFile()
        ? `${(fs.statSync(p).mode & 0o777).toString(8)} ${fs.readFileSync(p, "base64")}`
        : "dir";
    }
    return files;
  }

  it("refuses a folder `npm run provision` wrote (DeviceSecret, outbox), says how to run it, and changes nothing", async () => {
    const cwd = tmpDir(cleanups, "uiot-start-dir-");
    const secret = "Zq8Xv2Lw9Kp4Tn7R";
    const p = await run(
      "tools/provision/main.ts",
      [
        "--product-sn",
        "abcdefgh12345678",
        "--device-sn",
        "thermostat-01",
        "--url",
        "mqtts://mqtt-cn-sh2.iot.ucloud.cn:8883",
        "--secret-stdin",
      ],
      cwd,
      `${secret}\n`,
    );
    expect(p.code, p.out).toBe(0);
    // A QoS 1 message the device has not delivered yet.
    fs.mkdirSync(path.join(cwd, ".simulator", "outbox"), { mode: 0o700 });
    fs.writeFileSync(path.join(cwd, ".simulator", "outbox", "1.mqtt"), new Uint8Array([0x32, 2, 0, 1]), {
      mode: 0o600,
    });
    const before = snapshot(path.join(cwd, ".simulator"));
    expect(
      JSON.parse(fs.readFileSync(path.join(cwd, ".simulator", "config.json"), "utf8"))[CONFIG_KEYS.deviceSecret],
    ).toBe(secret);

    for (const dir of [".simulator", "./.simulator/", path.join(cwd, ".simulator")]) {
      const r = await run("tools/simulator/simulator.ts", ["--dir", dir], cwd);
      expect(r.code, r.out).toBe(1);
      expect(r.out).toMatch(
        /^error: \S+ holds the device abcdefgh12345678\.thermostat-01 \(config\.json with its DeviceSecret\), not the simulator's demo device: the demo would overwrite its secret \(UIoT Core hands a DeviceSecret out once\) and delete its outbox, so it is left as it is\. For the demo, leave out --dir \(it uses \.simulator\/demo\) or give a new or empty folder\. To run that device: npm start -- --broker mqtts:\/\/mqtt-cn-sh2\.iot\.ucloud\.cn:8883 --device \S+\n$/,
      );
      expect(r.out).not.toContain(secret);
      expect(snapshot(path.join(cwd, ".simulator"))).toEqual(before);
    }
  }, 60000);

  it("refuses a device registered dynamically, a folder with other files, a damaged store, an outbox without a store", () => {
    const dir = tmpDir(cleanups, "uiot-start-dir-");
    const store = path.join(dir, "config.json");
    fs.writeFileSync(
      store,
      JSON.stringify({
        [CONFIG_KEYS.productSN]: "abcdefgh12345678",
        [CONFIG_KEYS.deviceSN]: "dev-7",
        [CONFIG_KEYS.productSecret]: PRODUCT_SECRET,
        [CONFIG_KEYS.deviceSecret]: DEVICE_SECRET,
        [CONFIG_KEYS.brokerUrl]: "mqtt://127.0.0.1:1883",
      }),
    );
    expect(demoDirProblem(dir)).toMatch(
      /holds the device abcdefgh12345678\.dev-7 \(config\.json with its DeviceSecret\), not the simulator's demo device.*--broker mqtt:\/\/127\.0\.0\.1:1883 --device /,
    );
    // The demo's identity on a broker that is not on this machine is not the demo either.
    fs.writeFileSync(
      store,
      JSON.stringify({
        [CONFIG_KEYS.productSN]: DEMO_PRODUCT_SN,
        [CONFIG_KEYS.deviceSN]: DEMO_DEVICE_SN,
        [CONFIG_KEYS.deviceSecret]: DEVICE_SECRET,
        [CONFIG_KEYS.brokerUrl]: "mqtts://broker.example.com:8883",
      }),
    );
    expect(demoDirProblem(dir)).toMatch(/not the simulator's demo device/);
    fs.writeFileSync(store, `{"${CONFIG_KEYS.deviceSecret}": ${DEVICE_SECRET}}`);
    expect(demoDirProblem(dir)).toMatch(
      /config\.json is not a device store the simulator can read, so it may be someone's device: it is left as it is/,
    );
    expect(demoDirProblem(dir)).not.toContain(DEVICE_SECRET);
    fs.rmSync(store);
    fs.writeFileSync(path.join(dir, "notes.txt"), "mine");
    expect(demoDirProblem(dir)).toMatch(
      /is not empty and holds no simulator demo device \(1 other entry, e\.g\. notes\.txt\)/,
    );
    fs.rmSync(path.join(dir, "notes.txt"));
    fs.mkdirSync(path.join(dir, "outbox"));
    expect(demoDirProblem(dir)).toBeUndefined(); // an empty outbox: nothing to lose
    fs.writeFileSync(path.join(dir, "outbox", "3.mqtt"), "x");
    expect(demoDirProblem(dir)).toMatch(
      /outbox holds messages but \S+ has no config\.json: they may be another device's/,
    );
    fs.writeFileSync(path.join(dir, "file"), "x");
    expect(demoDirProblem(path.join(dir, "file"))).toMatch(/is not a folder/);
  });

  it("takes a new folder, and the same folder again once the demo has run in it (a fresh demo each start)", async () => {
    const dir = path.join(tmpDir(cleanups, "uiot-start-dir-"), "demo");
    expect(demoDirProblem(dir)).toBeUndefined();
    for (let i = 0; i < 2; i++) {
      const r = await run(
        "tools/simulator/simulator.ts",
        ["--dir", dir, "--interval", "300"],
        REPO,
        "",
        /connected to mqtt:/,
      );
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(/connected to mqtt:\/\/127\.0\.0\.1:\d+ as SIMDEMO000000001\.thermostat-01/);
      expect(demoDirProblem(dir)).toBeUndefined();
    }
  }, 60000);
});
