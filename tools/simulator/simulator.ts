// `npm start`: the firmware's real entry point (src/device/main.ts `start`) on the Node host, against an emulated
// UIoT Core on loopback (default) or a real broker (--broker / --device), with a live view of the device and keys
// that act as the platform's console. See README, "The simulator".
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { checkBrokerUrl } from "../../src/device/config";
import { isLoopback, parseEndpoint } from "../../src/net/endpoint";
import { CONFIG_KEYS } from "../../src/device/config-keys";
import type { KeyValueStore } from "../../src/host";
import { CORRECTION_RANGE, TARGET_RANGE, thermostat } from "../../src/device/thermostat";
import { startCloud, type Cloud } from "../cloud";
import { nodeDevice, type DeviceView } from "./device-view";
import { createNodeHost, type NodeHost } from "../../hosts/node/host";
import { planProvisioning, provisionSimulator, SIMULATOR_DIR } from "../provision/provision";
import { clock, CONSOLE_COMMANDS, DEVICE_COMMANDS, renderScreen, screenFrame, type LogLine, type Traced } from "./screen";
import { startXsDevice, xsEngineMissing } from "./xs-device";

/** How long a console command waits for the device's answer (the platform's own limit for a command reply). */
const ANSWER_WAIT_MS = 5000;
/** How long a script's commands wait for the device's first connection before each is refused. */
const READY_WAIT_MS = 60000;

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
  l       Wi-Fi link down / up
  r       restart the broker (emulated cloud)
  :       type a command (below)
  q, Ctrl-C  quit

Commands (typed after ':' on a terminal, or one per line on stdin otherwise; with --broker only link, status, quit):
  desired N     set the shadow's desired target_temperature to N (waits for the device's shadow report)
  set N         set the target_temperature property to N (waits for the device's reply)
  command N     send set_temp_correction { correction: N } (waits for the device's reply)
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

export interface SimulatorIo {
  stdout: NodeJS.WriteStream | NodeJS.WritableStream;
  stdin?: NodeJS.ReadStream | NodeJS.ReadableStream;
  /** Redraw the screen (a terminal) rather than print lines. */
  tty: boolean;
  /** The terminal's size for the screen (default 100 columns, 24 rows). */
  columns?: () => number;
  rows?: () => number;
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
    if (values.engine !== "node" && values.engine !== "xs") throw new Error(`--engine is node or xs, not "${values.engine.slice(0, 20)}"`);
    o.engine = values.engine;
  }
  if (values.interval !== undefined) {
    const n = Number(values.interval);
    if (!Number.isInteger(n) || n < 200 || n > 3600000) throw new Error("--interval takes milliseconds, 200 to 3600000");
    o.interval = n;
  }
  if (o.device !== undefined && o.broker === undefined) throw new Error("--device needs --broker: without it the simulator runs its own demo device against the emulated cloud");
  if (o.dir !== undefined && o.broker !== undefined) throw new Error("--dir is for the demo device; with --broker use --device");
  if (o.allowPlaintext && o.broker === undefined) throw new Error("--allow-plaintext goes with --broker (the emulated cloud is on this machine and needs no opt-in)");
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
    if (!fs.statSync(dir).isDirectory()) return `${dir} is not a folder: give --dir a folder for the demo device (default ${path.join(SIMULATOR_DIR, "demo")})`;
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
      if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) data = parsed as Record<string, unknown>;
    } catch {
      // neither readable nor JSON (the text is not quoted: it may hold secrets)
    }
    if (data === undefined) return `${path.join(dir, "config.json")} is not a device store the simulator can read, so it may be someone's device: ${leave}`;
    const str = (k: string): string | undefined => (typeof data[k] === "string" ? (data[k] as string) : undefined);
    const psn = str(CONFIG_KEYS.productSN), dsn = str(CONFIG_KEYS.deviceSN), url = str(CONFIG_KEYS.brokerUrl);
    let loopback = false;
    try {
      loopback = url !== undefined && isLoopback(parseEndpoint(url).host);
    } catch {
      // not a URL: not the demo's
    }
    if (psn === DEMO_PRODUCT_SN && dsn === DEMO_DEVICE_SN && loopback) return undefined;
    const secret = str(CONFIG_KEYS.deviceSecret) ? "its DeviceSecret" : str(CONFIG_KEYS.productSecret) ? "its ProductSecret" : "its settings";
    return `${dir} holds the device ${psn ?? "?"}.${dsn ?? "?"} (config.json with ${secret}), not the simulator's demo device: ` +
      `the demo would overwrite its secret (UIoT Core hands a DeviceSecret out once) and delete its outbox, so ${leave}. ` +
      `To run that device: npm start -- --broker ${url ?? "<its broker URL>"} --device ${dir}`;
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
  if (queued > 0) return `${path.join(dir, "outbox")} holds messages but ${dir} has no config.json: they may be another device's, so ${leave}`;
  return undefined;
}

/** The device's store with the broker URL from --broker in place of the stored one (nothing is written). */
function withBroker(store: KeyValueStore, url: string, allowPlaintext: boolean): KeyValueStore {
  return {
    get: (key) => (key === CONFIG_KEYS.brokerUrl ? url : key === CONFIG_KEYS.allowPlaintext && allowPlaintext ? "1" : store.get(key)),
    set: (key, value) => store.set(key, value),
    delete: (key) => store.delete(key),
  };
}

const SECRET_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
function demoSecret(): string {
  return Array.from(randomBytes(16), (b) => SECRET_CHARS[b % SECRET_CHARS.length]).join("");
}

// ---- the view ----

const ESC = "\x1b[";

function utf8(payload: Uint8Array | string): string {
  return typeof payload === "string" ? payload : new TextDecoder().decode(payload);
}

function json(value: unknown): string {
  return JSON.stringify(value) ?? "";
}

/** Runs the simulator; see SimulatorOptions. */
export async function runSimulator(options: SimulatorOptions, io: SimulatorIo): Promise<Simulator> {
  const out = io.stdout;
  const tty = io.tty && !options.plain;
  const logs: LogLine[] = [];
  // The screen's state (declared first: the device logs from the moment it starts).
  let drawTimer: NodeJS.Timeout | undefined;
  let refresh: NodeJS.Timeout | undefined;
  let typing: string | undefined;
  let stopping = false;
  let failed = false;
  /** Why the XS engine failed, if it did. */
  let engineFailure: string | undefined;
  let setReady!: () => void;
  /** Resolves at the first message from the broker (or when the firmware cannot start). */
  const ready = new Promise<void>((r) => (setReady = r));
  let closed = false;
  const recent = (level: LogLine["level"], text: string): void => {
    if (closed) return;
    const line = { at: Date.now(), level, text };
    logs.push(line);
    if (logs.length > 200) logs.shift();
    if (!tty) out.write(`${clock(line.at)} ${level === "info" ? "" : `[${level}] `}${text}\n`);
    else schedule();
  };

  // ---- the device's store and the cloud ----
  const engine = options.engine ?? "node";
  if (engine === "xs") {
    const missing = xsEngineMissing();
    if (missing) throw new Error(missing);
  }
  let cloud: Cloud | undefined;
  let dir: string;
  let psn = DEMO_PRODUCT_SN, dsn = DEMO_DEVICE_SN;
  let brokerUrl: string;
  if (options.broker === undefined) {
    dir = options.dir ?? path.join(SIMULATOR_DIR, "demo");
    const problem = demoDirProblem(dir);
    if (problem !== undefined) throw new Error(problem);
    const productSecret = demoSecret();
    cloud = await startCloud({
      products: [{ productSN: psn, productSecret, dynamicRegistration: true }],
      devices: [{ productSN: psn, deviceSN: dsn }],
    });
    brokerUrl = cloud.url;
    // A fresh demo device on every start: it registers dynamically (ProductSecret only) and keeps the DeviceSecret
    // it is given in its store, as a board would. Old queued messages belong to the previous cloud: dropped.
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.rmSync(path.join(dir, "outbox"), { recursive: true, force: true });
    provisionSimulator(planProvisioning({ productSN: psn, deviceSN: dsn, productSecret, url: cloud.url }), path.join(dir, "config.json"), { replace: true });
  } else {
    dir = deviceDir(options.device);
    brokerUrl = checkBrokerUrl(options.broker).url; // throws ConfigError with the rule
    if (!fs.existsSync(path.join(dir, "config.json")))
      throw new Error(`no provisioned device in ${dir} (no config.json): run \`npm run provision -- --product-sn ... --device-sn ... --url ${brokerUrl}${dir === SIMULATOR_DIR ? "" : ` --store ${path.join(dir, "config.json")}`}\` first`);
  }

  const host: NodeHost = createNodeHost({ dir, log: (level, message) => (level === "debug" ? undefined : recent(level, message)) });
  const firmwareHost = options.broker === undefined ? host : { ...host, config: withBroker(host.config, brokerUrl, options.allowPlaintext === true) };
  if (options.broker !== undefined) {
    psn = host.config.get(CONFIG_KEYS.productSN) ?? "?";
    dsn = host.config.get(CONFIG_KEYS.deviceSN) ?? "?";
  }

  // ---- what the device does, as seen from the device ----
  const thermostatOptions = { postInterval: options.interval ?? 5000, timeConstant: 60000 };
  let lastIn: Traced | undefined, lastOut: Traced | undefined;
  const deviceShadow = { reported: {} as Record<string, unknown>, desired: {} as Record<string, unknown>, version: undefined as number | undefined };
  const systemPrefix = `/$system/${psn}/${dsn}/`;
  const short = (topic: string) => (topic.startsWith(systemPrefix) ? topic.slice(systemPrefix.length) : topic);

  const traceShadow = (direction: "in" | "out", topic: string, text: string): void => {
    try {
      const m = JSON.parse(text) as { Method?: string; State?: { Reported?: Record<string, unknown> }; Payload?: { State?: { Desired?: Record<string, unknown> } }; Version?: number };
      if (direction === "out" && topic.endsWith("shadow/upstream") && m.State?.Reported) Object.assign(deviceShadow.reported, m.State.Reported);
      if (direction === "out" && topic.endsWith("shadow/upstream") && m.State && "Desired" in m.State) deviceShadow.desired = {};
      if (direction === "in" && topic.endsWith("shadow/downstream")) {
        if (typeof m.Version === "number") deviceShadow.version = m.Version;
        if (m.Method === "control" && m.Payload?.State?.Desired) deviceShadow.desired = m.Payload.State.Desired;
      }
    } catch {
      // not JSON: nothing to learn
    }
  };

  const trace = (direction: "in" | "out", topic: string, payload: Uint8Array | string): void => {
    const t: Traced = { at: Date.now(), topic: short(topic), text: utf8(payload) };
    // The first answer from the broker comes after the device's subscriptions are in place: console commands
    // of a script wait for it (a command published before the SUBSCRIBE is handled would reach nobody).
    if (direction === "in") setReady();
    if (direction === "in") lastIn = t;
    else lastOut = t;
    traceShadow(direction, topic, t.text);
    if (!tty) out.write(`${clock(t.at)} ${direction === "in" ? "in " : "out"} ${t.topic} ${t.text}\n`);
    else schedule();
  };

  if (cloud) {
    const c = cloud;
    c.on("refused", (e) => recent("console", `the cloud refused ${e.clientId}: ${e.reason} (CONNACK ${e.returnCode})`));
    c.on("denied", (e) => recent("console", `the cloud denied ${e.direction === "publish" ? "a publish to" : "a subscription to"} ${e.topic}: ${e.reason}`));
    c.on("registered", (e) => recent("console", `the cloud registered ${e.productSN}.${e.deviceSN} (dynamic registration)`));
    c.on("offline", (e) => e.authmode === 1 && recent("console", `the cloud sees ${e.deviceSN} offline: ${e.reason}`));
  }

  // The firmware, on V8 here or on XS in a child process; the view reads the same things of either.
  let view: DeviceView;
  if (engine === "node") view = nodeDevice(firmwareHost, thermostat(thermostatOptions), trace);
  else {
    try {
      const xs = await startXsDevice({
        host: firmwareHost, thermostat: thermostatOptions, trace,
        onFailure: (e) => {
          engineFailure = e.message;
          recent("error", e.message);
          setReady();
          void stop();
        },
      });
      recent("info", `the firmware runs on XS (xsnap-worker, pid ${xs.pid})`);
      view = xs;
    } catch (e) {
      await cloud?.close();
      throw e;
    }
  }
  const device = view.started.then((ok) => (ok ? view : undefined));

  // ---- the screen ----
  function schedule(): void {
    if (!tty || drawTimer || stopping) return;
    drawTimer = setTimeout(draw, 100);
  }
  function draw(): void {
    drawTimer = undefined;
    if (stopping) return;
    let shadow = deviceShadow as { reported: unknown; desired: unknown; version: number | undefined };
    if (cloud) {
      try {
        const doc = cloud.shadow(psn, dsn);
        shadow = { reported: doc.State.Reported, desired: doc.State.Desired, version: doc.Version };
      } catch {
        // the device is not known yet
      }
    }
    const lines = renderScreen({
      device: `${psn}.${dsn}`, brokerUrl, engine,
      brokerRunning: cloud ? cloud.running : undefined,
      linkUp: host.link.isUp, connection: view.state,
      connects: view.connects, drops: view.drops, failedDials: view.failedDials, problem: view.problem,
      outbox: view.outbox, thermostat: view.thermostat, shadow, lastIn, lastOut, logs, typing,
    }, { columns: io.columns?.() ?? 100, rows: io.rows?.() ?? 24 });
    out.write(screenFrame(lines));
  }

  void view.started.then((ok) => {
    if (ok) return schedule();
    failed = true;
    if (engineFailure !== undefined) return; // said, and stopping
    setReady();
    if (tty) recent("error", "the firmware did not start (see above); press q to quit");
    else void stop(); // a script or a pipe: nothing more will happen, so exit (code 1)
  });
  if (tty) {
    out.write(`${ESC}?25l`);
    refresh = setInterval(schedule, 1000);
    out.on("resize", schedule); // a terminal's stdout says when its size changed
  }

  // ---- the console ----
  /** The commands that work here: the console's need the emulated cloud. */
  const commands = cloud ? CONSOLE_COMMANDS : DEVICE_COMMANDS;
  const needCloud = (): Cloud => {
    if (!cloud) throw new Error(`there is no console against a real broker: use the platform's console (here only ${DEVICE_COMMANDS} work)`);
    return cloud;
  };
  const number = (arg: string | undefined, what: string): number => {
    const n = Number(arg);
    if (arg === undefined || arg === "" || !Number.isFinite(n)) throw new Error(`${what} needs a number`);
    return n;
  };
  /** The device's next shadow report (its answer to a desired value), or undefined after ANSWER_WAIT_MS. */
  const shadowReport = (c: Cloud): { promise: Promise<Record<string, unknown> | undefined>; cancel: () => void } => {
    const topic = `${systemPrefix}shadow/upstream`;
    let done!: (v: Record<string, unknown> | undefined) => void;
    const promise = new Promise<Record<string, unknown> | undefined>((r) => (done = r));
    const onMessage = (m: { direction: string; topic: string; payload: string }): void => {
      if (m.direction !== "in" || m.topic !== topic) return;
      try {
        const reported = (JSON.parse(m.payload) as { State?: { Reported?: Record<string, unknown> } }).State?.Reported;
        if (reported) finish(reported);
      } catch {
        // not JSON: not the report
      }
    };
    const finish = (v: Record<string, unknown> | undefined): void => {
      clearTimeout(timer);
      c.off("message", onMessage);
      done(v);
    };
    const timer = setTimeout(() => finish(undefined), ANSWER_WAIT_MS);
    c.on("message", onMessage);
    return { promise, cancel: () => finish(undefined) };
  };
  let restarting = false;
  const restartBroker = async (): Promise<void> => {
    const c = needCloud();
    if (restarting) return;
    restarting = true;
    recent("console", "restarting the broker: stopping it for 3 s");
    await c.stop();
    await new Promise((r) => setTimeout(r, 3000));
    if (!stopping) {
      await c.start();
      recent("console", "the broker is back");
    }
    restarting = false;
  };

  const command = async (line: string): Promise<void> => {
    const [verb, arg] = line.trim().split(/\s+/);
    try {
      switch ((verb ?? "").toLowerCase()) {
        case "":
          return;
        case "desired": {
          const v = number(arg, "desired");
          const c = needCloud();
          const report = shadowReport(c);
          try {
            c.setShadowDesired(psn, dsn, { target_temperature: v });
          } catch (e) {
            report.cancel();
            throw e;
          }
          recent("console", `shadow desired target_temperature = ${v} …`);
          const reported = await report.promise;
          recent("console", reported
            ? `shadow desired target_temperature = ${v}: the device reported ${json(reported)}`
            : `shadow desired target_temperature = ${v}: no report from the device within ${ANSWER_WAIT_MS / 1000} s`);
          return;
        }
        case "set": {
          const v = number(arg, "set");
          recent("console", `property set target_temperature = ${v} …`);
          const reply = await needCloud().setProperties(psn, dsn, { target_temperature: v });
          recent("console", reply ? `property set target_temperature = ${v}: RetCode ${reply.RetCode}` : `property set target_temperature = ${v}: no answer within 5 s`);
          return;
        }
        case "command": {
          const v = number(arg, "command");
          recent("console", `command set_temp_correction { correction: ${v} } …`);
          const reply = await needCloud().sendCommand(psn, dsn, "set_temp_correction", { correction: v });
          recent("console", `command set_temp_correction: RetCode ${reply.RetCode}${reply.Output ? ` Output ${json(reply.Output)}` : ""}${reply.Message ? ` (${reply.Message})` : ""}`);
          return;
        }
        case "link": {
          const up = arg === "up" ? true : arg === "down" ? false : !host.link.isUp;
          recent("console", up ? "Wi-Fi link up" : "Wi-Fi link down");
          if (up) host.link.up();
          else host.link.down();
          return;
        }
        case "restart":
          return await restartBroker();
        case "status":
          if (view.sync) await view.sync(); // XS: the status after every event so far (a link change just made)
          if (!tty) out.write(`${statusLine()}\n`);
          else recent("console", statusLine());
          return;
        case "help":
          if (!tty) out.write(USAGE);
          else recent("console", commands);
          return;
        case "quit":
        case "exit":
          return await stop();
        default:
          throw new Error(`unknown command "${verb.slice(0, 40)}": ${commands}`);
      }
    } catch (e) {
      recent("error", e instanceof Error ? e.message : String(e));
    }
  };

  const statusLine = (): string => {
    const st = view.thermostat;
    return `status: link ${host.link.isUp ? "up" : "down"}, ${view.state}, connections ${view.connects}, drops ${view.drops}, failed dials ${view.failedDials}, ` +
      `${st.temperature} °C ${st.humidity} %RH target ${st.target} correction ${st.correction}, posts ${st.posts}, events ${st.events}`;
  };

  const random = (lo: number, hi: number, step: number): number => Math.round((lo + Math.random() * (hi - lo)) / step) * step;
  const key = (k: string): void => {
    if (typing !== undefined) {
      if (k === "\r" || k === "\n") {
        const line = typing;
        typing = undefined;
        void command(line);
      } else if (k === "\x1b") typing = undefined;
      else if (k === "\x7f" || k === "\b") typing = typing.slice(0, -1);
      else if (k === "\x03") void stop();
      else if (k >= " ") typing += k;
      schedule();
      return;
    }
    switch (k) {
      case "q":
      case "\x03":
        void stop();
        return;
      case "+":
      case "=":
      case "-": {
        const doc = cloud?.shadow(psn, dsn);
        const base = typeof doc?.State.Desired.target_temperature === "number" ? doc.State.Desired.target_temperature : view.thermostat.target;
        void command(`desired ${base + (k === "-" ? -1 : 1)}`);
        return;
      }
      case "s":
        void command(`set ${random(TARGET_RANGE[0] + 8, TARGET_RANGE[1] - 4, 1)}`);
        return;
      case "c":
        void command(`command ${random(CORRECTION_RANGE[0] + 3, CORRECTION_RANGE[1] - 3, 0.1).toFixed(1)}`);
        return;
      case "l":
        void command("link");
        return;
      case "r":
        void command("restart");
        return;
      case ":":
        typing = "";
        schedule();
        return;
    }
  };

  // ---- a script: one command a line on stdin (not a terminal) ----
  // Each line runs to its end (the device's answer, a report, a timeout or an error) before the next starts. The
  // commands wait for the device's first connection with its subscriptions in place (a command published before
  // would reach nobody), at most READY_WAIT_MS; quit waits for every line before it.
  let isReady = false;
  void ready.then(() => (isReady = true));
  let readyDeadline: Promise<void> | undefined;
  let readyTimer: NodeJS.Timeout | undefined;
  const deviceReady = async (): Promise<boolean> => {
    if (!isReady) {
      readyDeadline ??= new Promise<void>((r) => (readyTimer = setTimeout(r, READY_WAIT_MS)));
      await Promise.race([ready, readyDeadline, stopped]);
    }
    return isReady;
  };
  /** Waits (at most ANSWER_WAIT_MS) until the device's QoS 1 messages (its answers too) are acknowledged. */
  const delivered = async (): Promise<void> => {
    const end = Date.now() + ANSWER_WAIT_MS;
    for (;;) {
      if (view.sync) await view.sync();
      if (stopping || view.outbox === 0 || view.state !== "connected" || Date.now() > end) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const scriptLine = async (line: string): Promise<void> => {
    if (stopping) return;
    const verb = (line.trim().split(/\s+/)[0] ?? "").toLowerCase();
    if (verb === "quit" || verb === "exit") {
      await delivered();
      return stop();
    }
    // What needs the device: the console's commands (with the emulated cloud), the link and the status.
    const needsDevice = ["link", "status"].includes(verb) || (cloud !== undefined && ["desired", "set", "command", "restart"].includes(verb));
    if (needsDevice && !(await deviceReady())) {
      if (!stopping) recent("error", `not run: ${line.trim().slice(0, 60)}: the device has not connected within ${READY_WAIT_MS / 1000} s (see the errors above)`);
      return;
    }
    if (stopping) return;
    await command(line);
  };

  const stdin = io.stdin as (NodeJS.ReadStream & { setRawMode?: (raw: boolean) => void }) | undefined;
  let pending = "";
  let script: Promise<void> = Promise.resolve();
  const onData = (chunk: Buffer | string): void => {
    const text = chunk.toString();
    if (io.tty && stdin?.setRawMode) {
      for (const k of text) key(k);
      return;
    }
    pending += text;
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      script = script.then(() => scriptLine(line));
    }
  };
  if (stdin) {
    if (io.tty && stdin.setRawMode) stdin.setRawMode(true);
    stdin.on("data", onData);
    stdin.resume();
  }

  // ---- stopping ----
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  let stopPromise: Promise<void> | undefined;
  async function stop(): Promise<void> {
    if (stopPromise) return stopPromise;
    stopping = true;
    stopPromise = (async () => {
      if (drawTimer) clearTimeout(drawTimer);
      if (refresh) clearInterval(refresh);
      if (readyTimer) clearTimeout(readyTimer);
      if (stdin) {
        stdin.off("data", onData);
        if (io.tty && stdin.setRawMode) stdin.setRawMode(false);
        stdin.pause();
      }
      if (tty) {
        out.off("resize", schedule);
        out.write(`${ESC}?25h\n`);
      }
      await view.stop();
      if (cloud) {
        await new Promise((r) => setTimeout(r, 100)); // the DISCONNECT reaches the broker first
        await cloud.close();
      }
      closed = true;
      // On a terminal the screen held the engine's error, and it is gone now: say it again.
      const how = engineFailure !== undefined ? `the XS engine failed${tty ? ` (${engineFailure})` : ""}` : failed ? "the firmware did not start" : "the device disconnected";
      out.write(`${clock(Date.now())} stopped: ${how}${cloud ? " and the emulated cloud closed" : ""}\n`);
      resolveStopped();
    })();
    return stopPromise;
  }

  return {
    cloud, host, device, command, stop, stopped,
    get failed() {
      return failed || engineFailure !== undefined;
    },
  };
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
  // Stopping: on a signal, when the parent process goes away (npm or the shell that ran it was killed: this process
  // was handed to another parent) and when stdout's reader is gone. A signal during the start stops it once started.
  let sim: Simulator | undefined;
  let quitting = false;
  const quit = (): void => {
    quitting = true;
    void sim?.stop();
  };
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
  if (tty) {
    // Whatever happens, the terminal gets its cursor and line mode back.
    process.once("exit", () => {
      if (process.stdin.isTTY) process.stdin.setRawMode(false);
      process.stdout.write("\x1b[?25h");
    });
  }
  if (quitting) void sim.stop();
  // stdin closing (a pipe that ended) does not stop the simulator: it runs until quit, a signal or its parent ends.
  await sim.stopped;
  clearInterval(orphaned);
  process.off("SIGINT", quit);
  process.off("SIGTERM", quit);
  process.off("SIGHUP", quit);
  return sim.failed ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  main(process.argv.slice(2)).then((code) => {
    // Everything is closed; exit now rather than wait for a stdin handle the terminal keeps open.
    process.exit(code);
  });
}
