// A real Mosquitto broker per test (file), on free loopback ports, configured by a file this helper writes.
//
//   const broker = await startMosquitto({ users: { alice: "pw" }, listeners: [{ protocol: "mqtt" }, { protocol: "ws" }] });
//   broker.urls.mqtt   // "mqtt://127.0.0.1:23456"
//   await broker.restart();   // same ports, same config, persistence kept
//   await broker.close();     // stop and delete its temp dir (automatic when started inside a test)
//
// Facts about Debian's mosquitto 2.0 that shape this file:
// - `listener 0` is a unix socket there, not "any port": ports are picked by ./ports.ts and retried on a clash.
// - Started as root it drops to the `mosquitto` user, which cannot read our 0700 temp dir: as root we write
//   `user root` (it then warns "should not be run as root", harmless).
// - The Debian package enables a system service on 1883. Nothing here uses it; every broker has its own ports.
// - Websockets listeners work (libwebsockets is built in); `protocol websockets` ignores the URL path, binds every
//   interface unless `socket_domain ipv4` is set, and cannot be the only kind of listener (see writeConfig).

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { pbkdf2Sync, randomBytes } from "node:crypto";
import { accessSync, constants, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getTestCerts } from "./certs.ts";
import { onCurrentTestEnd, removeOnExit, trackChild } from "./cleanup.ts";
import { canConnect, getFreePorts } from "./ports.ts";
import { sleep } from "./wait.ts";

export type ListenerProtocol = "mqtt" | "mqtts" | "ws" | "wss";

export interface TlsFiles {
  /** CA that client certificates must chain to (and that clients use to verify us). */
  cafile: string;
  certfile: string;
  keyfile: string;
}

export interface ListenerOptions {
  protocol: ListenerProtocol;
  /** mqtts/wss only: certificate files; default: the test CA and its `server` certificate (./certs.ts). */
  tls?: TlsFiles;
  /** mqtts/wss only: mutual TLS, clients must present a certificate signed by `tls.cafile`. */
  requireCertificate?: boolean;
  /** mqtts/wss with requireCertificate: the certificate's CN becomes the username (no password needed). */
  useIdentityAsUsername?: boolean;
  /** Raw mosquitto.conf lines placed under this listener. */
  extra?: string[];
}

export type AclAccess = "read" | "write" | "readwrite" | "deny";
export interface AclRule {
  access: AclAccess;
  topic: string;
}

/**
 * ACL file content. Mosquitto's rules: `anonymous` rules apply to clients without a username, `users[name]` to that
 * user, `patterns` to every client with `%u` = its username and `%c` = its client id. Anything not granted is
 * denied. A raw string is written as the file as is.
 */
export interface AclOptions {
  anonymous?: AclRule[];
  users?: Record<string, AclRule[]>;
  patterns?: AclRule[];
}

export interface MosquittoOptions {
  /** Listeners, in order; default one plain MQTT listener. */
  listeners?: ListenerOptions[];
  /** username -> password; written as a hashed password_file. */
  users?: Record<string, string>;
  /** Default: true without `users`, false with them. */
  allowAnonymous?: boolean;
  acl?: AclOptions | string;
  /** Mosquitto's max_keepalive (seconds). */
  maxKeepalive?: number;
  /** Keep sessions and retained messages across stop()/start() (SIGTERM saves the db; kill() loses what is unsaved). */
  persistence?: boolean;
  /** With persistence: seconds between automatic saves (mosquitto's autosave_interval; default 1800). */
  autosaveInterval?: number;
  /** Raw mosquitto.conf lines (global section, before the listeners). */
  extraConfig?: string[];
  /** Log everything (log_type all): useful when a test fails. Default: errors, warnings, notices, information. */
  verbose?: boolean;
  /** How long to wait for the broker to accept connections (default 20 s). */
  startTimeoutMs?: number;
  /**
   * Started inside a test: close() it when the test ends (default true). Started in beforeAll: call close() (or
   * stop()) in afterAll. Either way the process dies with the test process (see ./cleanup.ts).
   */
  stopAfterTest?: boolean;
}

export interface ListenerInfo {
  protocol: ListenerProtocol;
  port: number;
  /** mqtt://127.0.0.1:P, mqtts://…, ws://127.0.0.1:P/mqtt, wss://…/mqtt */
  url: string;
}

export interface MosquittoBroker {
  /** Port and URL of the first listener. */
  readonly port: number;
  readonly url: string;
  /** Port and URL of the first listener of each protocol. */
  readonly ports: Partial<Record<ListenerProtocol, number>>;
  readonly urls: Partial<Record<ListenerProtocol, string>>;
  readonly listeners: readonly ListenerInfo[];
  /** The temp dir with mosquitto.conf, password and ACL files, persistence db. */
  readonly dir: string;
  readonly configFile: string;
  /** Process id while running. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** The broker's log (stdout+stderr) since it was first started; the last 1 MB at most. */
  logs(): string;
  /** A mark into the log: pass it to waitForLog to look only at what came after. */
  logMark(): number;
  /** Resolves with the first log line matching `pattern` (after `since`, default 0). */
  waitForLog(pattern: RegExp | string, options?: { since?: number; timeoutMs?: number }): Promise<string>;
  /** Starts it again after stop()/kill(): same ports, same config, same persistence db. */
  start(): Promise<void>;
  /** SIGTERM (mosquitto saves its persistence db) and waits for the exit; SIGKILL after 5 s. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL and wait: a crash, nothing saved. */
  kill(): Promise<void>;
  /** stop() (or kill() with {kill: true}), optionally stay down `downMs`, then start(). */
  restart(options?: { kill?: boolean; downMs?: number }): Promise<void>;
  /** stop() and delete the temp dir: the end of this broker (what happens when the test that started it ends). */
  close(): Promise<void>;
}

const MAX_LOG = 1 << 20;

/** Path of the mosquitto binary: $MOSQUITTO_BIN, /usr/sbin/mosquitto (Debian), else `mosquitto` on PATH. */
export function mosquittoBinary(): string {
  if (process.env.MOSQUITTO_BIN) return process.env.MOSQUITTO_BIN;
  for (const candidate of ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"]) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return "mosquitto";
}

let versionCache: string | undefined;
/** "2.0.11", from `mosquitto -h`; throws a clear error when mosquitto is not installed. */
export function mosquittoVersion(): string {
  if (versionCache) return versionCache;
  let text: string;
  try {
    text = execFileSync(mosquittoBinary(), ["-h"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const e = error as { code?: string; stdout?: string; stderr?: string };
    if (e.code === "ENOENT") throw new Error("mosquitto is not installed: apt-get install mosquitto (see .ci/run)");
    text = `${e.stdout ?? ""}${e.stderr ?? ""}`; // `mosquitto -h` exits non-zero
  }
  const match = /mosquitto version (\S+)/.exec(text);
  if (!match) throw new Error(`cannot read the mosquitto version from: ${text.slice(0, 200)}`);
  versionCache = match[1];
  return versionCache;
}

/** A password_file line in mosquitto 2.0's own format ($7$: PBKDF2-SHA512, 101 iterations, 12-byte salt). */
export function passwordLine(username: string, password: string): string {
  if (/[:\n]/.test(username)) throw new Error(`username may not contain ':' or a newline: ${JSON.stringify(username)}`);
  const salt = randomBytes(12);
  const hash = pbkdf2Sync(password, salt, 101, 64, "sha512");
  return `${username}:$7$101$${salt.toString("base64")}$${hash.toString("base64")}`;
}

/** The ACL file text for `acl`. */
export function aclText(acl: AclOptions | string): string {
  if (typeof acl === "string") return acl;
  const rule = (prefix: string) => (r: AclRule) => `${prefix} ${r.access} ${r.topic}`;
  const lines: string[] = [];
  // Rules before any `user` line are the anonymous clients' rules.
  for (const r of acl.anonymous ?? []) lines.push(rule("topic")(r));
  for (const r of acl.patterns ?? []) lines.push(rule("pattern")(r));
  for (const [user, rules] of Object.entries(acl.users ?? {})) {
    lines.push("", `user ${user}`, ...rules.map(rule("topic")));
  }
  return `${lines.join("\n")}\n`;
}

// setpriv (util-linux) makes the kernel SIGKILL mosquitto when the test process dies, however it dies.
const SETPRIV = (() => {
  if (process.platform !== "linux") return undefined;
  for (const p of ["/usr/bin/setpriv", "/bin/setpriv"]) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
})();

function listenerUrl(protocol: ListenerProtocol, port: number): string {
  const path = protocol === "ws" || protocol === "wss" ? "/mqtt" : "";
  return `${protocol}://127.0.0.1:${port}${path}`;
}

async function writeConfig(dir: string, options: MosquittoOptions, ports: number[]): Promise<string> {
  const listeners = options.listeners ?? [{ protocol: "mqtt" }];
  const lines: string[] = [
    "# written by test/helpers/mosquitto.ts",
    "per_listener_settings false",
    `allow_anonymous ${options.allowAnonymous ?? options.users === undefined}`,
    "log_dest stderr",
    ...(options.verbose
      ? ["log_type all"]
      : ["log_type error", "log_type warning", "log_type notice", "log_type information"]),
    "log_timestamp true",
    "connection_messages true",
  ];
  if (process.getuid?.() === 0) lines.push("user root");
  if (options.users) {
    const file = join(dir, "passwords");
    writeFileSync(
      file,
      Object.entries(options.users)
        .map(([u, p]) => passwordLine(u, p))
        .join("\n") + "\n",
      { mode: 0o600 },
    );
    lines.push(`password_file ${file}`);
  }
  if (options.acl !== undefined) {
    const file = join(dir, "acl");
    writeFileSync(file, aclText(options.acl), { mode: 0o600 });
    lines.push(`acl_file ${file}`);
  }
  if (options.maxKeepalive !== undefined) lines.push(`max_keepalive ${options.maxKeepalive}`);
  if (options.persistence) {
    lines.push("persistence true", `persistence_location ${dir}/`, "persistence_file mosquitto.db");
    if (options.autosaveInterval !== undefined) lines.push(`autosave_interval ${options.autosaveInterval}`);
  } else {
    lines.push("persistence false");
  }
  lines.push(...(options.extraConfig ?? []));

  let defaultTls: TlsFiles | undefined;
  for (const [i, l] of listeners.entries()) {
    lines.push("", `listener ${ports[i]} 127.0.0.1`);
    // socket_domain ipv4: without it a websockets listener ignores the address and binds every interface.
    lines.push(`protocol ${l.protocol === "ws" || l.protocol === "wss" ? "websockets" : "mqtt"}`, "socket_domain ipv4");
    if (l.protocol === "mqtts" || l.protocol === "wss") {
      if (!l.tls && !defaultTls) {
        const certs = await getTestCerts();
        defaultTls = { cafile: certs.ca.certFile, certfile: certs.server.certFile, keyfile: certs.server.keyFile };
      }
      const tls = l.tls ?? defaultTls!;
      lines.push(`cafile ${tls.cafile}`, `certfile ${tls.certfile}`, `keyfile ${tls.keyfile}`);
      lines.push(`require_certificate ${l.requireCertificate ?? false}`);
      if (l.useIdentityAsUsername) lines.push("use_identity_as_username true");
    } else if (l.requireCertificate || l.tls || l.useIdentityAsUsername) {
      throw new Error(`listener ${i} (${l.protocol}): TLS options need protocol mqtts or wss`);
    }
    lines.push(...(l.extra ?? []));
  }
  if (ports.length > listeners.length) {
    // mosquitto 2.0 exits with "Unable to start any listening sockets" when all listeners are websockets.
    lines.push(
      "",
      "# not websockets: mosquitto 2.0 needs one such listener to start",
      `listener ${ports[listeners.length]} 127.0.0.1`,
      "socket_domain ipv4",
    );
  }
  const file = join(dir, "mosquitto.conf");
  writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

class PortClash extends Error {}

const DIR_PREFIX = "uiot-mosquitto-";
let pruned = false;

/**
 * Removes temp dirs left by test processes that are gone (vitest may end a worker without its exit handlers).
 * Dir names carry the pid of the process that made them.
 */
function pruneStaleDirs(): void {
  if (pruned) return;
  pruned = true;
  try {
    for (const name of readdirSync(tmpdir())) {
      if (!name.startsWith(DIR_PREFIX)) continue;
      const pid = Number(name.slice(DIR_PREFIX.length).split("-")[0]);
      if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
      try {
        process.kill(pid, 0);
        continue; // its process still runs
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "EPERM") continue; // someone else's live process
      }
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  } catch {
    // best effort
  }
}

/** Starts a mosquitto broker; see MosquittoOptions. Throws with mosquitto's own output if it cannot start. */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<MosquittoBroker> {
  const bin = mosquittoBinary();
  mosquittoVersion(); // a clear error if it is not installed
  const specs = options.listeners ?? [{ protocol: "mqtt" as const }];
  if (specs.length === 0) throw new Error("startMosquitto: at least one listener");
  const timeoutMs = options.startTimeoutMs ?? 20000;
  // One more (unlisted) plain listener when all are websockets; see writeConfig.
  const portCount = specs.length + (specs.every((s) => s.protocol === "ws" || s.protocol === "wss") ? 1 : 0);
  pruneStaleDirs();
  const dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = "";
  let logOffset = 0; // characters dropped from the front of `log`
  const logWaiters = new Set<() => void>();
  let ports: number[] = [];
  let configFile = "";

  const append = (chunk: Buffer) => {
    log += chunk.toString("utf8");
    if (log.length > MAX_LOG) {
      const cut = log.length - MAX_LOG;
      log = log.slice(cut);
      logOffset += cut;
    }
    for (const w of logWaiters) w();
  };

  /** One spawn; resolves when every listener accepts TCP connections. */
  const spawnOnce = async (): Promise<void> => {
    const args = ["-c", configFile];
    const proc = SETPRIV
      ? spawn(SETPRIV, ["--pdeathsig", "KILL", "--", bin, ...args], { stdio: ["ignore", "pipe", "pipe"] })
      : spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    trackChild(proc);
    const startMark = logOffset + log.length;
    proc.stdout!.on("data", append);
    proc.stderr!.on("data", append);
    let exitInfo: string | undefined;
    exited = new Promise<void>((resolve) => {
      proc.once("exit", (code, signal) => {
        exitInfo = signal ? `killed by ${signal}` : `exited with code ${code}`;
        if (child === proc) child = undefined;
        resolve();
      });
    });
    let spawnError: Error | undefined;
    proc.once("error", (error) => {
      spawnError = error;
    });

    const deadline = Date.now() + timeoutMs;
    const since = () => (logOffset + log.length > startMark ? log.slice(Math.max(0, startMark - logOffset)) : "");
    for (;;) {
      if (spawnError) throw new Error(`mosquitto could not be started (${bin}): ${spawnError.message}`);
      if (exitInfo !== undefined) {
        const out = since();
        if (/Address already in use|Unable to create websockets listener/i.test(out)) throw new PortClash(out);
        throw new Error(`mosquitto ${exitInfo} during startup (config ${configFile}):\n${out}`);
      }
      // "running" is logged once every listener is open; the connect check proves the ports are really ours.
      if (/mosquitto version \S+ running/.test(since())) {
        const ok = await Promise.all(ports.map((p) => canConnect(p)));
        if (ok.every(Boolean) && exitInfo === undefined) return;
      }
      if (Date.now() > deadline) {
        proc.kill("SIGKILL");
        await exited;
        throw new Error(
          `mosquitto did not accept connections on ${ports.join(", ")} within ${timeoutMs} ms:\n${since()}`,
        );
      }
      await sleep(25);
    }
  };

  const spawnRetrying = async (newPortsOnClash: boolean): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await spawnOnce();
        return;
      } catch (error) {
        if (!(error instanceof PortClash)) throw error;
        if (newPortsOnClash ? attempt >= 8 : Date.now() > deadline) {
          throw new Error(`mosquitto could not bind its ports ${ports.join(", ")}:\n${error.message}`);
        }
        if (newPortsOnClash) {
          ports = await getFreePorts(portCount);
          configFile = await writeConfig(dir, options, ports);
        } else {
          await sleep(100); // a restart: the port must be the same; wait for whoever holds it
        }
      }
    }
  };

  const signalAndWait = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (!proc) return;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };

  ports = await getFreePorts(portCount);
  configFile = await writeConfig(dir, options, ports);
  try {
    await spawnRetrying(true);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  const infos = (): ListenerInfo[] =>
    specs.map((s, i) => ({ protocol: s.protocol, port: ports[i], url: listenerUrl(s.protocol, ports[i]) }));
  const firstOf = <T>(pick: (l: ListenerInfo) => T): Partial<Record<ListenerProtocol, T>> => {
    const out: Partial<Record<ListenerProtocol, T>> = {};
    for (const l of infos()) if (!(l.protocol in out)) out[l.protocol] = pick(l);
    return out;
  };

  removeOnExit(dir);
  let closed = false;

  const broker: MosquittoBroker = {
    get port() {
      return ports[0];
    },
    get url() {
      return infos()[0].url;
    },
    get ports() {
      return firstOf((l) => l.port);
    },
    get urls() {
      return firstOf((l) => l.url);
    },
    get listeners() {
      return infos();
    },
    dir,
    get configFile() {
      return configFile;
    },
    get pid() {
      return child?.pid;
    },
    get running() {
      return child !== undefined;
    },
    logs: () => log,
    logMark: () => logOffset + log.length,
    waitForLog(pattern, { since = 0, timeoutMs: wait = 10000 } = {}) {
      const re = typeof pattern === "string" ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : pattern;
      return new Promise<string>((resolve, reject) => {
        const check = () => {
          const text = log.slice(Math.max(0, since - logOffset));
          const line = text.split("\n").find((l) => re.test(l));
          if (line === undefined) return;
          done();
          resolve(line);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`mosquitto log has no line matching ${re} after ${wait} ms; log:\n${log.slice(-4000)}`));
        }, wait);
        const done = () => {
          clearTimeout(timer);
          logWaiters.delete(check);
        };
        logWaiters.add(check);
        check();
      });
    },
    async start() {
      if (closed) throw new Error("mosquitto: start() after close()");
      if (child) return;
      await spawnRetrying(false);
    },
    stop: () => signalAndWait("SIGTERM"),
    kill: () => signalAndWait("SIGKILL"),
    async restart({ kill = false, downMs = 0 } = {}) {
      await (kill ? broker.kill() : broker.stop());
      if (downMs > 0) await sleep(downMs);
      await broker.start();
    },
    async close() {
      closed = true;
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };

  if (options.stopAfterTest ?? true) await onCurrentTestEnd(() => broker.close());
  return broker;
}
