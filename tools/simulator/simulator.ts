// `npm start`: the firmware's real entry point (src/device/main.ts `start`) on the Node host, against an emulated
// UIoT Core on loopback (default) or a real broker (--broker / --device), with a live view of the device and keys
// that act as the platform's console. See docs/simulator.md.
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { checkBrokerUrl } from "../../src/device/config";
import { isLoopback, parseEndpoint } from "../../src/net/endpoint";
import { CONFIG_KEYS } from "../../src/device/config-keys";
import type { Endpoint, Host, KeyValueStore, TlsOptions } from "../../src/host";
import { TARGET_RANGE, thermostat } from "../../src/device/thermostat";
import { startCloud, type Cloud } from "../cloud";
import { nodeDevice, type DeviceView } from "./device-view";
import { createNodeHost, type NodeHost } from "../../hosts/node/host";
import { planProvisioning, provisionSimulator, SIMULATOR_DIR } from "../provision/provision";
import { ANSWER_WAIT_MS, consoleCommands, consoleKeys, listenToInput, scriptLines } from "./console";
import { Run, type Place, type SimulatorIo } from "./run";

export type { SimulatorIo } from "./run";
import { startXsDevice, xsEngineMissing } from "./xs-device";

export const USAGE = `Usage: npm start -- [options]

Runs the device firmware (src/device/main.ts with the thermostat application) on this computer.

Without --broker: an emulated UIoT Core starts on a free loopback port, a demo device is provisioned into
${path.join(SIMULATOR_DIR, "demo")}/ (a throwaway store; your own provisioned device is not touched) and the firmware
connects to it. Keys (or typed commands) act as the platform's console.

Options:
  --broker URL       run against a real broker (mqtt://, mqtts://, ws://, wss://) with the credentials
                     provisioned by \`npm run provision\` (TLS verification on, as on a board)
  --device DIR|NAME  the device's store: a directory holding config.json, or a name for ${SIMULATOR_DIR}/NAME
                     (default with --broker: ${SIMULATOR_DIR}, where \`npm run provision\` writes)
  --dir DIR          where the demo device is kept (default ${path.join(SIMULATOR_DIR, "demo")}; wiped on each start):
                     a new or empty folder, or one holding the demo device; a folder holding any other
                     device (such as ${SIMULATOR_DIR}, where \`npm run provision\` writes) is refused, untouched
  --allow-plaintext  with --broker: allow plain mqtt:// or ws:// to a host that is not this machine (the
                     DeviceSecret then crosses the network in clear; a warning at every connect)
  --interval MS      milliseconds between property posts (default 5000)
  --engine node|xs   the JavaScript engine the firmware runs on: node (default: V8, in this process) or xs
                     (Moddable's XS, as on a board, in a child process; sockets, timers and storage are served
                     by this process; build it once with \`npm run build:xs\`)
  --plain            one line per event, no screen redraw (the default when stdout is not a terminal)
  -h, --help         this text

Keys (on a terminal; with --broker only l, : and q, as there is no console):
  + / -   desired target temperature up / down 1 °C (device shadow)
  s       set the target_temperature property (thing model), a random value in ${TARGET_RANGE[0]}..${TARGET_RANGE[1]}
  c       send the set_temp_correction command, a random correction in -2..2 °C
  u       publish the next firmware version and push it to the device (OTA: download, restart, new version)
  l       Wi-Fi link down / up
  r       restart the broker (emulated cloud)
  :       type a command (below)
  q, Ctrl-C  quit

Commands (typed after ':' on a terminal, or one per line on stdin otherwise; with --broker only link, status, quit):
  desired N     set the shadow's desired target_temperature to N (waits for the device's shadow report)
  set N         set the target_temperature property to N (waits for the device's reply)
  command N     send set_temp_correction { correction: N } (waits for the device's reply)
  update [V]    publish firmware V (default: the next patch version) and send update_firmware (waits for the
                device's report_success or report_fail)
  link down|up  drop the Wi-Fi link / bring it back
  restart       restart the broker
  status        the state in one line (under Recent on a terminal)
  quit          stop (in a script: once the lines before it have finished)

A script's lines run one at a time, each to its end (the device's answer, ${ANSWER_WAIT_MS / 1000} s without one, or an error),
from the device's first connection on. SIGINT, SIGTERM, SIGHUP and the end of the parent process stop it.
`;

export const DEMO_PRODUCT_SN = "SIMDEMO000000001";
export const DEMO_DEVICE_SN = "thermostat-01";

export interface SimulatorOptions {
  broker?: string;
  /** With broker: plain mqtt:// or ws:// to a host that is not loopback (as CONFIG_KEYS.allowPlaintext = "1"). */
  allowPlaintext?: boolean;
  device?: string;
  dir?: string;
  interval?: number;
  plain?: boolean;
  /** The firmware's engine: V8 in this process (default) or XS in a child process (tools/simulator/xs-device.ts). */
  engine?: "node" | "xs";
}

export interface Simulator {
  readonly cloud: Cloud | undefined;
  readonly host: NodeHost;
  /** The device as the view shows it, once it runs (undefined when it could not start). */
  readonly device: Promise<DeviceView | undefined>;
  /** A console command, as typed. Resolves with what it printed. */
  command(line: string): Promise<void>;
  /** Stops the device, the cloud and the display. Idempotent. */
  stop(): Promise<void>;
  /** Resolves when stopped. */
  readonly stopped: Promise<void>;
  /** The firmware did not start (its reason was logged), or its XS engine failed. */
  readonly failed: boolean;
}

/** Parses `npm start` arguments; throws Error with a message for the user. */
export function parseSimulatorArgs(args: string[]): SimulatorOptions & { help: boolean } {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      broker: { type: "string" },
      device: { type: "string" },
      dir: { type: "string" },
      interval: { type: "string" },
      plain: { type: "boolean" },
      "allow-plaintext": { type: "boolean" },
      engine: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (positionals.length) throw new Error(`unexpected argument "${positionals[0]}" (see --help)`);
  const o: SimulatorOptions & { help: boolean } = { help: values.help === true };
  if (values.broker !== undefined) o.broker = values.broker;
  if (values.device !== undefined) o.device = values.device;
  if (values.dir !== undefined) o.dir = values.dir;
  if (values.plain) o.plain = true;
  if (values["allow-plaintext"]) o.allowPlaintext = true;
  if (values.engine !== undefined) {
    if (values.engine !== "node" && values.engine !== "xs")
      throw new Error(`--engine is node or xs, not "${values.engine.slice(0, 20)}"`);
    o.engine = values.engine;
  }
  if (values.interval !== undefined) {
    const n = Number(values.interval);
    if (!Number.isInteger(n) || n < 200 || n > 3600000)
      throw new Error("--interval takes milliseconds, 200 to 3600000");
    o.interval = n;
  }
  if (o.device !== undefined && o.broker === undefined)
    throw new Error(
      "--device needs --broker: without it the simulator runs its own demo device against the emulated cloud",
    );
  if (o.dir !== undefined && o.broker !== undefined)
    throw new Error("--dir is for the demo device; with --broker use --device");
  if (o.allowPlaintext && o.broker === undefined)
    throw new Error("--allow-plaintext goes with --broker (the emulated cloud is on this machine and needs no opt-in)");
  return o;
}

/** The store directory --device names: a path (has a slash, or exists) or a name under .simulator/. */
export function deviceDir(device: string | undefined): string {
  if (device === undefined) return SIMULATOR_DIR;
  if (device.includes("/") || device.includes(path.sep) || fs.existsSync(device)) return device;
  return path.join(SIMULATOR_DIR, device);
}

/**
 * Why `dir` may not take the demo device, or undefined when it may: it does not exist, is empty, or holds the demo
 * device (its identity, on a loopback broker) and what runs of it leave. Anything else is someone's data: a
 * provisioned device's config.json holds a DeviceSecret that the platform does not hand out twice, and its outbox
 * messages not yet delivered; the demo would overwrite the one and delete the other. Nothing is changed here.
 */
export function demoDirProblem(dir: string): string | undefined {
  let entries: string[];
  try {
    if (!fs.statSync(dir).isDirectory())
      return `${dir} is not a folder: give --dir a folder for the demo device (default ${path.join(SIMULATOR_DIR, "demo")})`;
    entries = fs.readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    return `cannot look into ${dir} (${(e as NodeJS.ErrnoException).code ?? "unreadable"})`;
  }
  const leave = `it is left as it is. For the demo, leave out --dir (it uses ${path.join(SIMULATOR_DIR, "demo")}) or give a new or empty folder`;
  if (entries.includes("config.json")) {
    let data: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
      if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed))
        data = parsed as Record<string, unknown>;
    } catch {
      // neither readable nor JSON (the text is not quoted: it may hold secrets)
    }
    if (data === undefined)
      return `${path.join(dir, "config.json")} is not a device store the simulator can read, so it may be someone's device: ${leave}`;
    const str = (k: string): string | undefined => (typeof data[k] === "string" ? (data[k] as string) : undefined);
    const psn = str(CONFIG_KEYS.productSN),
      dsn = str(CONFIG_KEYS.deviceSN),
      url = str(CONFIG_KEYS.brokerUrl);
    let loopback = false;
    try {
      loopback = url !== undefined && isLoopback(parseEndpoint(url).host);
    } catch {
      // not a URL: not the demo's
    }
    if (psn === DEMO_PRODUCT_SN && dsn === DEMO_DEVICE_SN && loopback) return undefined;
    const secret = str(CONFIG_KEYS.deviceSecret)
      ? "its DeviceSecret"
      : str(CONFIG_KEYS.productSecret)
        ? "its ProductSecret"
        : "its settings";
    return (
      `${dir} holds the device ${psn ?? "?"}.${dsn ?? "?"} (config.json with ${secret}), not the simulator's demo device: ` +
      `the demo would overwrite its secret (UIoT Core hands a DeviceSecret out once) and delete its outbox, so ${leave}. ` +
      `To run that device: npm start -- --broker ${url ?? "<its broker URL>"} --device ${dir}`
    );
  }
  const other = entries.filter((e) => e !== "outbox");
  if (other.length > 0)
    return `${dir} is not empty and holds no simulator demo device (${other.length} other entr${other.length === 1 ? "y" : "ies"}, e.g. ${other[0]}): the demo writes config.json there and deletes outbox/ at every start, so ${leave}`;
  if (!entries.includes("outbox")) return undefined; // empty
  let queued = 0;
  try {
    queued = fs.readdirSync(path.join(dir, "outbox")).length;
  } catch {
    // not a folder we can read: counted as holding something
    queued = 1;
  }
  if (queued > 0)
    return `${path.join(dir, "outbox")} holds messages but ${dir} has no config.json: they may be another device's, so ${leave}`;
  return undefined;
}

/** The device's store with the broker URL from --broker in place of the stored one (nothing is written). */
function withBroker(store: KeyValueStore, url: string, allowPlaintext: boolean): KeyValueStore {
  return {
    get: (key) =>
      key === CONFIG_KEYS.brokerUrl ? url : key === CONFIG_KEYS.allowPlaintext && allowPlaintext ? "1" : store.get(key),
    set: (key, value) => store.set(key, value),
    delete: (key) => store.delete(key),
  };
}

const SECRET_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
function demoSecret(): string {
  return Array.from(randomBytes(16), (b) => SECRET_CHARS[b % SECRET_CHARS.length]).join("");
}

/** Runs the simulator; see SimulatorOptions. */
export async function runSimulator(options: SimulatorOptions, io: SimulatorIo): Promise<Simulator> {
  const run = new Run(io, options.plain, chosenEngine(options));
  run.place = options.broker === undefined ? await placeDemo(options) : placeProvisioned(options, options.broker);
  const thermostatOptions = { postInterval: options.interval ?? 5000, timeConstant: 60000 };
  const restart = (): void => restartFirmware(run, () => hostFor(run, options, restart), thermostatOptions);
  const firmwareHost = hostFor(run, options, restart);
  if (run.cloud) reportCloudEvents(run, run.cloud);
  run.view = await startFirmware(run, firmwareHost, thermostatOptions);
  const view = run.view;
  const device = view.started.then((ok) => (ok ? view : undefined));
  void view.started.then((ok) => (ok ? run.schedule() : notStarted(run)));
  run.showScreen();
  const command = consoleCommands(run, USAGE);
  listenToInput(run, consoleKeys(run, command), scriptLines(run, command));
  return {
    cloud: run.cloud,
    host: run.host,
    device,
    command,
    stop: () => run.stop(),
    stopped: run.stopped,
    get failed() {
      return run.failed || run.engineFailure !== undefined;
    },
  };
}

/** The engine --engine chose; throws when it is XS and XS is not built. */
function chosenEngine(options: SimulatorOptions): "node" | "xs" {
  const engine = options.engine ?? "node";
  if (engine === "xs") {
    const missing = xsEngineMissing();
    if (missing) throw new Error(missing);
  }
  return engine;
}

/** The demo device, provisioned afresh into its folder, and the emulated cloud that knows it. */
async function placeDemo(options: SimulatorOptions): Promise<Place> {
  const dir = options.dir ?? path.join(SIMULATOR_DIR, "demo");
  const problem = demoDirProblem(dir);
  if (problem !== undefined) throw new Error(problem);
  const psn = DEMO_PRODUCT_SN,
    dsn = DEMO_DEVICE_SN;
  const productSecret = demoSecret();
  const cloud = await startCloud({
    products: [{ productSN: psn, productSecret, dynamicRegistration: true }],
    devices: [{ productSN: psn, deviceSN: dsn }],
  });
  // A fresh demo device on every start: it registers dynamically (ProductSecret only) and keeps the DeviceSecret
  // it is given in its store, as a board would. Old queued messages belong to the previous cloud: dropped.
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.rmSync(path.join(dir, "outbox"), { recursive: true, force: true });
  fs.rmSync(path.join(dir, "firmware"), { recursive: true, force: true }); // it boots as demoFirmwareVersion()
  provisionSimulator(
    planProvisioning({ productSN: psn, deviceSN: dsn, productSecret, url: cloud.url }),
    path.join(dir, "config.json"),
    { replace: true },
  );
  return { dir, cloud, psn, dsn, brokerUrl: cloud.url };
}

/** A device that `npm run provision` wrote (--device), for the real broker --broker names; its identity is read later from its store. */
function placeProvisioned(options: SimulatorOptions, broker: string): Place {
  const dir = deviceDir(options.device);
  const brokerUrl = checkBrokerUrl(broker).url; // throws ConfigError with the rule
  if (!fs.existsSync(path.join(dir, "config.json")))
    throw new Error(
      `no provisioned device in ${dir} (no config.json): run \`npm run provision -- --product-sn ... --device-sn ... --url ${brokerUrl}${dir === SIMULATOR_DIR ? "" : ` --store ${path.join(dir, "config.json")}`}\` first`,
    );
  return { dir, cloud: undefined, psn: DEMO_PRODUCT_SN, dsn: DEMO_DEVICE_SN, brokerUrl };
}

/** The firmware version the demo device starts as: the one manifest.json gives a board's build. */
export function demoFirmwareVersion(): string {
  try {
    const manifest = JSON.parse(
      fs.readFileSync(path.join(import.meta.dirname, "..", "..", "manifest.json"), "utf8"),
    ) as { config?: { firmware?: unknown } };
    if (typeof manifest.config?.firmware === "string" && manifest.config.firmware !== "")
      return manifest.config.firmware;
  } catch {
    // not readable: the default below
  }
  return "0.1.0";
}

/**
 * The Node host on the device's folder (run.host, its log under Recent; the link kept across a restart) and the host
 * the firmware gets: with --broker, its store names that broker; with the emulated cloud, its firmware file server's
 * certificate is trusted as a board trusts the platform's file servers. Its firmware slot's restart is `restart`.
 */
function hostFor(run: Run, options: SimulatorOptions, restart: () => void): Host {
  const host = (run.host = createNodeHost({
    dir: run.place.dir,
    link: run.host?.link,
    log: (level, message) => (level === "debug" ? undefined : run.recent(level, message)),
    firmware: { version: options.broker === undefined ? demoFirmwareVersion() : undefined, restart },
  }));
  if (options.broker === undefined)
    return { ...host, connector: (endpoint, tls) => host.connector(endpoint, tls ?? fileServerTls(run, endpoint)) };
  run.place.psn = host.config.get(CONFIG_KEYS.productSN) ?? "?";
  run.place.dsn = host.config.get(CONFIG_KEYS.deviceSN) ?? "?";
  return { ...host, config: withBroker(host.config, run.place.brokerUrl, options.allowPlaintext === true) };
}

/** TLS for a download from the emulated cloud's file server (its self-signed certificate), else undefined. */
function fileServerTls(run: Run, endpoint: Endpoint): TlsOptions | undefined {
  const server = run.fileServer;
  if (!server || endpoint.scheme !== "mqtts" || endpoint.port !== server.port || !isLoopback(endpoint.host))
    return undefined;
  return { ca: [server.cert] };
}

/**
 * The firmware restarts into its new image (the host's firmware.restart, once an update is written): the device
 * stops and starts again on a new host over the same folder, which boots as the new version. The link and the
 * screen stay; the thermostat starts afresh, as on a board.
 */
function restartFirmware(
  run: Run,
  newHost: () => Host,
  thermostatOptions: { postInterval: number; timeConstant: number },
): void {
  if (run.stopping || run.restarting) return;
  if (run.firmwareUpdate) run.firmwareUpdate = { ...run.firmwareUpdate, state: "restarting" };
  run.recent("console", "the device restarts into its new firmware");
  run.restarting = (async () => {
    await run.view.stop();
    if (run.stopping) return;
    const view = await startFirmware(run, newHost(), thermostatOptions);
    run.view = view;
    void view.started.then((ok) => (ok ? run.schedule() : notStarted(run)));
  })()
    .catch((e: unknown) => {
      run.recent("error", `the device could not start again: ${e instanceof Error ? e.message : String(e)}`);
      run.failed = true;
      void run.stop();
    })
    .finally(() => (run.restarting = undefined));
}

/** What the emulated cloud refuses, denies, registers and sees go offline, under Recent. */
function reportCloudEvents(run: Run, c: Cloud): void {
  c.on("refused", (e) =>
    run.recent("console", `the cloud refused ${e.clientId}: ${e.reason} (CONNACK ${e.returnCode})`),
  );
  c.on("denied", (e) =>
    run.recent(
      "console",
      `the cloud denied ${e.direction === "publish" ? "a publish to" : "a subscription to"} ${e.topic}: ${e.reason}`,
    ),
  );
  c.on("registered", (e) =>
    run.recent("console", `the cloud registered ${e.productSN}.${e.deviceSN} (dynamic registration)`),
  );
  c.on(
    "offline",
    (e) => e.authmode === 1 && run.recent("console", `the cloud sees ${e.deviceSN} offline: ${e.reason}`),
  );
}

/** The firmware, on V8 here or on XS in a child process; the view reads the same things of either. */
async function startFirmware(
  run: Run,
  host: Host,
  thermostatOptions: { postInterval: number; timeConstant: number },
): Promise<DeviceView> {
  if (run.engine === "node") return nodeDevice(host, thermostat(thermostatOptions), run.trace);
  try {
    const xs = await startXsDevice({
      host,
      thermostat: thermostatOptions,
      trace: run.trace,
      onFailure: (e) => {
        run.engineFailure = e.message;
        run.recent("error", e.message);
        run.setReady();
        void run.stop();
      },
    });
    run.recent("info", `the firmware runs on XS (xsnap-worker, pid ${xs.pid})`);
    return xs;
  } catch (e) {
    await run.cloud?.close();
    throw e;
  }
}

/** The firmware did not start (its reason was logged): on a terminal, say so; a script or a pipe stops. */
function notStarted(run: Run): void {
  run.failed = true;
  if (run.engineFailure !== undefined) return; // said, and stopping
  run.setReady();
  if (run.tty) run.recent("error", "the firmware did not start (see above); press q to quit");
  else void run.stop(); // a script or a pipe: nothing more will happen, so exit (code 1)
}

/** The command line: `npm start -- ...`. Resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  let options: SimulatorOptions & { help: boolean };
  try {
    options = parseSimulatorArgs(args);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const tty = process.stdout.isTTY === true;
  // A signal during the start stops it once started.
  let sim: Simulator | undefined;
  let quitting = false;
  const stopFromOutside = onOutsideStop(() => {
    quitting = true;
    void sim?.stop();
  });
  try {
    sim = await runSimulator(options, {
      stdout: process.stdout,
      stdin: process.stdin,
      tty: tty && process.stdin.isTTY === true,
      columns: () => process.stdout.columns ?? 100,
      rows: () => process.stdout.rows ?? 24,
    });
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return 1;
  }
  if (tty) restoreTerminalAtExit();
  if (quitting) void sim.stop();
  // stdin closing (a pipe that ended) does not stop the simulator: it runs until quit, a signal or its parent ends.
  await sim.stopped;
  stopFromOutside.off();
  return sim.failed ? 1 : 0;
}

/**
 * Calls `quit` on a signal, when the parent process goes away (npm or the shell that ran it was killed: this process
 * was handed to another parent) and when stdout's reader is gone; off() stops listening for the signals and the parent.
 */
function onOutsideStop(quit: () => void): { off(): void } {
  process.on("SIGINT", quit);
  process.on("SIGTERM", quit);
  process.on("SIGHUP", quit);
  const parent = process.ppid;
  const orphaned = setInterval(() => process.ppid !== parent && quit(), 250);
  orphaned.unref();
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE") throw e;
    quit();
  });
  return {
    off: () => {
      clearInterval(orphaned);
      process.off("SIGINT", quit);
      process.off("SIGTERM", quit);
      process.off("SIGHUP", quit);
    },
  };
}

/** Whatever happens, the terminal gets its cursor and line mode back. */
function restoreTerminalAtExit(): void {
  process.once("exit", () => {
    if (process.stdin.isTTY) process.stdin.setRawMode(false);
    process.stdout.write("\x1b[?25h");
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  main(process.argv.slice(2)).then((code) => {
    // Everything is closed; exit now rather than wait for a stdin handle the terminal keeps open.
    process.exit(code);
  });
}
