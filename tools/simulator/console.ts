// The simulator's console (tools/simulator/simulator.ts): the commands typed after ':' on a terminal or read one a
// line from a script on stdin, the keys on a terminal, and stdin feeding the one or the other.
import { randomBytes } from "node:crypto";
import { CORRECTION_RANGE, TARGET_RANGE } from "../../src/device/thermostat";
import type { Cloud } from "../cloud";
import { OTA_ERRORS } from "../cloud/ota";
import { selfSignedCertificate } from "../cloud/self-signed";
import type { Run } from "./run";
import { CONSOLE_COMMANDS, DEVICE_COMMANDS } from "./screen";

/** How long a console command waits for the device's answer (the platform's own limit for a command reply). */
export const ANSWER_WAIT_MS = 5000;
/** How long `update` waits for the device's report_success or report_fail. */
export const UPDATE_WAIT_MS = 120000;
/** The size of the demo firmware image `update` publishes. */
export const DEMO_IMAGE_SIZE = 320 * 1024;
/** How long a script's commands wait for the device's first connection before each is refused. */
export const READY_WAIT_MS = 60000;

type Command = (line: string) => Promise<void>;

function json(value: unknown): string {
  return JSON.stringify(value) ?? "";
}

/** The commands that work here: the console's need the emulated cloud. */
function commandsOf(run: Run): string {
  return run.cloud ? CONSOLE_COMMANDS : DEVICE_COMMANDS;
}

function needCloud(run: Run): Cloud {
  if (!run.cloud)
    throw new Error(
      `there is no console against a real broker: use the platform's console (here only ${DEVICE_COMMANDS} work)`,
    );
  return run.cloud;
}

function number(arg: string | undefined, what: string): number {
  const n = Number(arg);
  if (arg === undefined || arg === "" || !Number.isFinite(n)) throw new Error(`${what} needs a number`);
  return n;
}

/** The device's next shadow report (its answer to a desired value), or undefined after ANSWER_WAIT_MS. */
function shadowReport(
  run: Run,
  c: Cloud,
): { promise: Promise<Record<string, unknown> | undefined>; cancel: () => void } {
  const topic = `${run.systemPrefix}shadow/upstream`;
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
}

// ---- the commands ----

async function desired(run: Run, v: number): Promise<void> {
  const c = needCloud(run);
  const report = shadowReport(run, c);
  try {
    c.setShadowDesired(run.place.psn, run.place.dsn, { target_temperature: v });
  } catch (e) {
    report.cancel();
    throw e;
  }
  run.recent("console", `shadow desired target_temperature = ${v} …`);
  const reported = await report.promise;
  run.recent(
    "console",
    reported
      ? `shadow desired target_temperature = ${v}: the device reported ${json(reported)}`
      : `shadow desired target_temperature = ${v}: no report from the device within ${ANSWER_WAIT_MS / 1000} s`,
  );
}

async function setProperty(run: Run, v: number): Promise<void> {
  run.recent("console", `property set target_temperature = ${v} …`);
  const reply = await needCloud(run).setProperties(run.place.psn, run.place.dsn, { target_temperature: v });
  run.recent(
    "console",
    reply
      ? `property set target_temperature = ${v}: RetCode ${reply.RetCode}`
      : `property set target_temperature = ${v}: no answer within 5 s`,
  );
}

async function sendCommand(run: Run, v: number): Promise<void> {
  run.recent("console", `command set_temp_correction { correction: ${v} } …`);
  const reply = await needCloud(run).sendCommand(run.place.psn, run.place.dsn, "set_temp_correction", {
    correction: v,
  });
  run.recent(
    "console",
    `command set_temp_correction: RetCode ${reply.RetCode}${reply.Output ? ` Output ${json(reply.Output)}` : ""}${reply.Message ? ` (${reply.Message})` : ""}`,
  );
}

/** The version after `version`: its last number plus one ("0.1.0" -> "0.1.1"), or ".1" appended. */
export function nextVersion(version: string): string {
  const m = /^(.*?)(\d+)$/.exec(version);
  return m ? `${m[1]}${Number(m[2]) + 1}` : `${version}.1`;
}

/** The emulated cloud's firmware file server: started at the first update, with a certificate made for it. */
async function fileServer(run: Run, c: Cloud): Promise<void> {
  if (run.fileServer) return;
  const tls = selfSignedCertificate();
  const port = await c.ota.listen(tls);
  run.fileServer ??= { port, cert: tls.cert };
}

/** A firmware image for the demo: a header naming the version, then random bytes (DEMO_IMAGE_SIZE in all). */
function demoImage(version: string): Buffer {
  const image = randomBytes(DEMO_IMAGE_SIZE);
  image.write(`UIoT thermostat demo firmware ${version}\n`, 0, "utf8");
  return image;
}

/**
 * Publishes firmware `version` (default the next) for the demo's product and sends update_firmware to the device, as
 * the platform's console does; waits for the device's report_success or report_fail (or the cancel, at most
 * UPDATE_WAIT_MS). The screen's Firmware line shows the progress; the device restarts into the new version. One
 * update at a time: another is refused while one waits.
 */
function updater(run: Run): (arg: string | undefined) => Promise<void> {
  let waiting: string | undefined;
  return async (arg) => {
    const c = needCloud(run);
    if (waiting !== undefined) throw new Error(`the update to ${waiting} is under way: wait for it to end`);
    const { psn, dsn } = run.place;
    const running = c.ota.status(psn, dsn).version ?? run.host.firmware?.version ?? "0.0.0";
    const version = arg ?? nextVersion(running);
    if (!/^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$/.test(version))
      throw new Error(`update takes a version such as ${nextVersion(running)} (letters, digits, . _ -; 32 at most)`);
    waiting = version;
    try {
      await update(run, c, version, running);
    } finally {
      waiting = undefined;
    }
  };
}

async function update(run: Run, c: Cloud, version: string, running: string): Promise<void> {
  const { psn, dsn } = run.place;
  await fileServer(run, c);
  const release = c.ota.publish(psn, { version, data: demoImage(version) });
  c.ota.update(psn, dsn, version); // throws when the device is offline
  run.recent(
    "console",
    `firmware ${version} published (${release.size} bytes, MD5 ${release.md5}); update_firmware sent to the device (running ${running}) …`,
  );
  const end = Date.now() + UPDATE_WAIT_MS;
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    const s = c.ota.status(psn, dsn);
    if (run.stopping || s.target !== version) return;
    if (s.state === "success")
      return run.recent("console", `firmware update to ${version}: done, the device runs ${s.version ?? version}`);
    if (s.state === "failed")
      return run.recent(
        "console",
        `firmware update to ${version}: report_fail ErrCode ${s.errCode} (${OTA_ERRORS[s.errCode ?? 0] ?? "unknown"}), the device runs ${s.version ?? running}`,
      );
    if (s.state === "cancelled") return run.recent("console", `firmware update to ${version}: cancelled`);
    if (Date.now() > end)
      return run.recent(
        "console",
        `firmware update to ${version}: no report_success or report_fail within ${UPDATE_WAIT_MS / 1000} s (${s.state} ${s.percent} %)`,
      );
  }
}

function link(run: Run, arg: string | undefined): void {
  const link = run.host.link;
  const up = arg === "up" ? true : arg === "down" ? false : !link.isUp;
  run.recent("console", up ? "Wi-Fi link up" : "Wi-Fi link down");
  if (up) link.up();
  else link.down();
}

async function status(run: Run): Promise<void> {
  const view = run.view;
  if (view.sync) await view.sync(); // XS: the status after every event so far (a link change just made)
  const st = view.thermostat;
  const line =
    `status: link ${run.host.link.isUp ? "up" : "down"}, ${view.state}, connections ${view.connects}, drops ${view.drops}, failed dials ${view.failedDials}, ` +
    `${st.temperature} °C ${st.humidity} %RH target ${st.target} correction ${st.correction}, posts ${st.posts}, events ${st.events}` +
    `${run.host.firmware ? `, firmware ${run.host.firmware.version}` : ""}`;
  if (!run.tty) run.out.write(`${line}\n`);
  else run.recent("console", line);
}

/** Restarts the emulated broker: stopped for 3 s, then started again (one restart at a time). */
function brokerRestarter(run: Run): () => Promise<void> {
  let restarting = false;
  return async () => {
    const c = needCloud(run);
    if (restarting) return;
    restarting = true;
    run.recent("console", "restarting the broker: stopping it for 3 s");
    await c.stop();
    await new Promise((r) => setTimeout(r, 3000));
    if (!run.stopping) {
      await c.start();
      run.recent("console", "the broker is back");
    }
    restarting = false;
  };
}

/** The console's commands, as typed; a command's error goes to the log. `usage` answers help off a terminal. */
export function consoleCommands(run: Run, usage: string): Command {
  const restartBroker = brokerRestarter(run);
  const update = updater(run);
  return async (line) => {
    const [verb, arg] = line.trim().split(/\s+/);
    try {
      switch ((verb ?? "").toLowerCase()) {
        case "":
          return;
        case "desired":
          return await desired(run, number(arg, "desired"));
        case "set":
          return await setProperty(run, number(arg, "set"));
        case "command":
          return await sendCommand(run, number(arg, "command"));
        case "update":
          return await update(arg);
        case "link":
          return link(run, arg);
        case "restart":
          return await restartBroker();
        case "status":
          return await status(run);
        case "help":
          if (!run.tty) run.out.write(usage);
          else run.recent("console", commandsOf(run));
          return;
        case "quit":
        case "exit":
          return await run.stop();
        default:
          throw new Error(`unknown command "${verb.slice(0, 40)}": ${commandsOf(run)}`);
      }
    } catch (e) {
      run.recent("error", e instanceof Error ? e.message : String(e));
    }
  };
}

// ---- the keys ----

function random(lo: number, hi: number, step: number): number {
  return Math.round((lo + Math.random() * (hi - lo)) / step) * step;
}

/** A key while a command is typed after ':'. */
function typingKey(run: Run, k: string, command: Command): void {
  if (k === "\r" || k === "\n") {
    const line = run.typing!;
    run.typing = undefined;
    void command(line);
  } else if (k === "\x1b") run.typing = undefined;
  else if (k === "\x7f" || k === "\b") run.typing = run.typing!.slice(0, -1);
  else if (k === "\x03") void run.stop();
  else if (k >= " ") run.typing += k;
  run.schedule();
}

/** The keys on a terminal, each a command (or ':' to type one). */
export function consoleKeys(run: Run, command: Command): (k: string) => void {
  return (k) => {
    if (run.typing !== undefined) return typingKey(run, k, command);
    switch (k) {
      case "q":
      case "\x03":
        void run.stop();
        return;
      case "+":
      case "=":
      case "-": {
        const doc = run.cloud?.shadow(run.place.psn, run.place.dsn);
        const base =
          typeof doc?.State.Desired.target_temperature === "number"
            ? doc.State.Desired.target_temperature
            : run.view.thermostat.target;
        void command(`desired ${base + (k === "-" ? -1 : 1)}`);
        return;
      }
      case "s":
        void command(`set ${random(TARGET_RANGE[0] + 8, TARGET_RANGE[1] - 4, 1)}`);
        return;
      case "c":
        void command(`command ${random(CORRECTION_RANGE[0] + 3, CORRECTION_RANGE[1] - 3, 0.1).toFixed(1)}`);
        return;
      case "u":
        void command("update");
        return;
      case "l":
        void command("link");
        return;
      case "r":
        void command("restart");
        return;
      case ":":
        run.typing = "";
        run.schedule();
        return;
    }
  };
}

// ---- a script: one command a line on stdin (not a terminal) ----
// Each line runs to its end (the device's answer, a report, a timeout or an error) before the next starts. The
// commands wait for the device's first connection with its subscriptions in place (a command published before
// would reach nobody), at most READY_WAIT_MS; quit waits for every line before it.

/** Resolves whether the device is ready (its first connection), waiting for it at most READY_WAIT_MS in all. */
function readiness(run: Run): () => Promise<boolean> {
  let isReady = false;
  void run.ready.then(() => (isReady = true));
  let readyDeadline: Promise<void> | undefined;
  let readyTimer: NodeJS.Timeout | undefined;
  run.releases.push(() => readyTimer && clearTimeout(readyTimer));
  return async () => {
    if (!isReady) {
      readyDeadline ??= new Promise<void>((r) => (readyTimer = setTimeout(r, READY_WAIT_MS)));
      await Promise.race([run.ready, readyDeadline, run.stopped]);
    }
    return isReady;
  };
}

/** Waits (at most ANSWER_WAIT_MS) until the device's QoS 1 messages (its answers too) are acknowledged. */
async function delivered(run: Run): Promise<void> {
  const view = run.view;
  const end = Date.now() + ANSWER_WAIT_MS;
  for (;;) {
    if (view.sync) await view.sync();
    if (run.stopping || view.outbox === 0 || view.state !== "connected" || Date.now() > end) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A script's line, run once the device is ready for it (quit: once its messages are delivered). */
export function scriptLines(run: Run, command: Command): (line: string) => Promise<void> {
  const deviceReady = readiness(run);
  return async (line) => {
    if (run.stopping) return;
    const verb = (line.trim().split(/\s+/)[0] ?? "").toLowerCase();
    if (verb === "quit" || verb === "exit") {
      await delivered(run);
      return run.stop();
    }
    // What needs the device: the console's commands (with the emulated cloud), the link and the status.
    const needsDevice =
      ["link", "status"].includes(verb) ||
      (run.cloud !== undefined && ["desired", "set", "command", "update", "restart"].includes(verb));
    if (needsDevice && !(await deviceReady())) {
      if (!run.stopping)
        run.recent(
          "error",
          `not run: ${line.trim().slice(0, 60)}: the device has not connected within ${READY_WAIT_MS / 1000} s (see the errors above)`,
        );
      return;
    }
    if (run.stopping) return;
    await command(line);
  };
}

// ---- stdin ----

/** Feeds stdin to the keys (a terminal in raw mode) or, a line at a time in order, to the script; stop() undoes it. */
export function listenToInput(run: Run, key: (k: string) => void, scriptLine: (line: string) => Promise<void>): void {
  const io = run.io;
  const stdin = io.stdin as (NodeJS.ReadStream & { setRawMode?: (raw: boolean) => void }) | undefined;
  if (!stdin) return;
  /** A terminal's keys, one at a time (raw mode), rather than lines. */
  const raw = io.tty && typeof stdin.setRawMode === "function";
  let pending = "";
  let script: Promise<void> = Promise.resolve();
  const onData = (chunk: Buffer | string): void => {
    const text = chunk.toString();
    if (raw) {
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
  if (raw) stdin.setRawMode!(true);
  stdin.on("data", onData);
  stdin.resume();
  run.releases.push(() => {
    stdin.off("data", onData);
    if (raw) stdin.setRawMode!(false);
    stdin.pause();
  });
}
