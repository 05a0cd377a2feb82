// The firmware on Moddable's XS engine, driven from Node: `npm start -- --engine xs` and its tests.
//
//   const device = await startXsDevice({ host: createNodeHost({ dir }), thermostat: { postInterval: 1000 } });
//   await device.started;     // true: the device runs (false: it could not start, the reason was logged)
//   device.state; device.connects; device.thermostat;   // as of the last event XS handled
//   await device.stop();      // DISCONNECT, then the engine quits: no process is left
//
// XS runs hosts/xsnap/main.ts (the real entry, src/device/main.ts, with the thermostat) in an xsnap-worker process
// (tools/xsnap/worker.ts). Everything the firmware touches is served here by the Node host it is given: its connectors (TCP,
// TLS, WebSocket), clock and timers, randomness, config store, outbox store, network link and log (the queries of
// hosts/xsnap/wire.ts, answered synchronously). What happens here (bytes, a socket's end, a timer, the link) goes to XS
// as events, strictly one at a time: a queue feeds the engine its next event only once it has finished the last one
// with every promise job it started. An uncaught exception in XS, or the engine dying, ends the device with an
// error (onFailure, `failure`): never a hang.
//
// Firmware updates: when the host has a firmware slot (the Node host's, hosts/node/firmware.ts), XS gets its version
// with START; the OTA agent downloads the image in XS through the connectors here and checks its MD5 there, and each
// chunk it writes is handed to the Node host's image writer as it arrives (Q.FW_WRITE). Its restart() calls the
// host's `firmware.restart` (the owner stops this device and starts it again on the same folder), once the query
// that asked for it has been answered.
import { existsSync } from "node:fs";
import type { Connector, Host, ImageWriter, Transport, TransportHandlers } from "../../src/host";
import type { ThermostatState } from "../../src/device/thermostat";
import { NetError } from "../../src/net/errors";
import {
  answer,
  answerNumber,
  E,
  ERROR,
  frame,
  HEADER,
  idOf,
  LEVELS,
  NONE,
  OK,
  packEntries,
  Q,
  textBytes,
  u32,
  withBytes,
  withText,
  withU32,
  type DeviceStatus,
  type StartOptions,
} from "../../hosts/xsnap/wire";
import { bundleForXs, PRELUDE } from "../xsnap/bundle";
import { startXs, xsnapBinary } from "../xsnap/worker";
import type { DeviceView, Trace } from "./device-view";

/** The one line to print when the engine is not built, or undefined when it is. */
export function xsEngineMissing(binary = xsnapBinary()): string | undefined {
  return existsSync(binary) ? undefined : `the XS engine is not built (${binary} is missing): run \`npm run build:xs\``;
}

export interface XsDeviceOptions {
  /** The host whose pieces serve the firmware (the simulator's Node host). */
  host: Host;
  /** The thermostat's options. */
  thermostat?: StartOptions["thermostat"];
  keepalive?: number;
  /** Every message in and out, as the simulator prints them. */
  trace?: Trace;
  /** Called once if the engine fails (an uncaught exception in XS, the process died): the device is gone. */
  onFailure?: (error: Error) => void;
  /** The bundle's entry (default hosts/xsnap/main.ts); tests load their own application. */
  entry?: string;
  /** Options for a test entry's application. */
  app?: Record<string, unknown>;
  /** Firmware-update settings (timeouts, retries, restart delay), as src/device/main.ts takes them. */
  ota?: StartOptions["ota"];
}

export interface XsDevice extends DeviceView {
  /** The engine's process. */
  readonly pid: number | undefined;
  /** The status XS sent with its last reply. */
  readonly status: DeviceStatus;
  /** What ended the engine, if it failed. */
  readonly failure: Error | undefined;
  /** Resolves once the engine's process has exited (after stop() or a failure). */
  readonly exited: Promise<void>;
  /** What the engine printed (stdout, stderr). */
  output(): string;
}

const bundles = new Map<string, Promise<string>>();
/** Bundled once per process and entry (esbuild; about a tenth of a second). */
function bundle(entry: string): Promise<string> {
  let b = bundles.get(entry);
  if (!b) {
    b = bundleForXs(entry);
    bundles.set(entry, b);
    b.catch(() => bundles.delete(entry));
  }
  return b;
}

const INITIAL: ThermostatState = {
  temperature: 0,
  humidity: 0,
  target: 0,
  correction: 0,
  posts: 0,
  events: 0,
  hot: false,
};

/** What an error is, for XS to rebuild it (hosts/xsnap/host.ts): a NetError keeps its code. */
function errorJson(e: unknown): string {
  if (e instanceof NetError) return JSON.stringify({ name: "NetError", code: e.code, message: e.message });
  const err = e as Error & { code?: unknown };
  return JSON.stringify({
    name: err?.name,
    code: typeof err?.code === "string" ? err.code : undefined,
    message: err?.message ?? String(e),
  });
}

const OK_ANSWER = answer(OK),
  NONE_ANSWER = answer(NONE),
  TAKEN = answer(OK, Uint8Array.of(1)),
  REFUSED = answer(OK, Uint8Array.of(0));
const text = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("utf8");

/** Starts the firmware in XS; resolves once the engine has its START (see `started` for the device itself). */
export async function startXsDevice(options: XsDeviceOptions): Promise<XsDevice> {
  const missing = xsEngineMissing();
  if (missing) throw new Error(missing);
  const code = await bundle(options.entry ?? "hosts/xsnap/main.ts");
  const host = options.host;
  const connectors = new Map<number, Connector>();
  const transports = new Map<number, Transport>();
  const timers = new Map<number, unknown>();
  /** The images being written, by the writer id XS gave them. */
  const writers = new Map<number, ImageWriter>();
  let status: DeviceStatus = {
    state: "starting",
    connects: 0,
    drops: 0,
    failedDials: 0,
    problem: "",
    outbox: 0,
    thermostat: INITIAL,
  };
  let failure: Error | undefined;
  let closed = false;
  /** The firmware is loaded: from here on a failure is reported to onFailure (before, startXsDevice rejects). */
  let loaded = false;
  let resolveStarted!: (ok: boolean) => void;
  const started = new Promise<boolean>((r) => (resolveStarted = r));
  /** What STARTED said, told once the event it came in is done (so the status read then is the one after it). */
  let startedWith: boolean | undefined;
  let resolveExited!: () => void;
  const exited = new Promise<void>((r) => (resolveExited = r));

  // ---- events into XS, one at a time ----
  const queue: { message: Uint8Array; done: () => void }[] = [];
  let busy = true; // until the bundle is loaded
  const post = (message: Uint8Array): Promise<void> =>
    new Promise((done) => {
      if (closed) return done();
      queue.push({ message, done });
      if (!busy) void pump();
    });
  async function pump(): Promise<void> {
    busy = true;
    while (queue.length && !closed) {
      const item = queue.shift()!;
      try {
        const run = await worker.command(item.message);
        status = JSON.parse(text(run.reply)) as DeviceStatus;
        if (startedWith !== undefined) resolveStarted(startedWith);
      } catch (e) {
        fail(e as Error);
      }
      item.done();
    }
    busy = false;
  }

  // ---- queries from XS, answered at once (XS waits). Nothing here may send to XS: events only queue. ----
  const handlers = (id: number): TransportHandlers => ({
    onConnect: () => void post(frame(E.CONNECTED, id, 0)),
    onReadable: () => {
      const t = transports.get(id);
      if (t) for (let c = t.read(); c; c = t.read()) void post(withBytes(E.DATA, id, c));
    },
    onWritable: (count) => void post(withU32(E.WRITABLE, id, count)),
    onError: (error) => {
      transports.delete(id);
      void post(withText(E.ERROR, id, errorJson(error)));
    },
  });
  const firmware = () => {
    const f = host.firmware;
    if (!f?.writer) throw new Error("this host has no firmware slot to write an image into");
    return f;
  };
  const writer = (id: number): ImageWriter => {
    const w = writers.get(id);
    if (!w)
      throw new Error(`XS wrote to image writer ${id}, which it never began (or which was completed or cancelled)`);
    return w;
  };
  const outbox = () => {
    if (!host.outbox) throw new Error("this host keeps no outbox");
    return host.outbox;
  };
  const serve = (m: Uint8Array): Uint8Array => {
    const id = idOf(m),
      body = m.subarray(HEADER);
    switch (m[0]) {
      case Q.NOW:
        return answerNumber(host.clock.now());
      case Q.RANDOM:
        return answerNumber(host.random());
      case Q.TIMER_SET:
        timers.set(
          id,
          host.clock.setTimer(
            () => {
              timers.delete(id);
              void post(frame(E.TIMER, id, 0));
            },
            u32(m, HEADER),
          ),
        );
        return OK_ANSWER;
      case Q.TIMER_CLEAR: {
        const t = timers.get(id);
        if (t !== undefined) host.clock.clearTimer(t);
        timers.delete(id);
        return OK_ANSWER;
      }
      case Q.CONNECTOR: {
        const { endpoint, tls } = JSON.parse(text(body)) as {
          endpoint: Parameters<Host["connector"]>[0];
          tls?: Parameters<Host["connector"]>[1];
        };
        connectors.set(id, host.connector(endpoint, tls));
        return OK_ANSWER;
      }
      case Q.OPEN: {
        const connect = connectors.get(u32(m, HEADER));
        if (!connect) throw new Error(`XS opened a transport on connector ${u32(m, HEADER)}, which it never made`);
        transports.set(id, connect(handlers(id)));
        return OK_ANSWER;
      }
      case Q.WRITE: {
        // `body` is a view of the engine's message, which nothing reuses: the transport may keep it as it is.
        const t = transports.get(id);
        return t?.write(body) ? TAKEN : REFUSED;
      }
      case Q.CLOSE: {
        const t = transports.get(id);
        transports.delete(id);
        t?.close();
        return OK_ANSWER;
      }
      case Q.CONFIG_GET: {
        const v = host.config.get(text(body));
        return v === undefined ? NONE_ANSWER : answer(OK, textBytes(v));
      }
      case Q.CONFIG_SET: {
        const [key, value] = JSON.parse(text(body)) as [string, string];
        host.config.set(key, value);
        return OK_ANSWER;
      }
      case Q.CONFIG_DELETE:
        host.config.delete(text(body));
        return OK_ANSWER;
      case Q.OUTBOX_LOAD:
        return answer(OK, packEntries(outbox().load()));
      case Q.OUTBOX_SAVE:
        outbox().save(id, body);
        return OK_ANSWER;
      case Q.OUTBOX_REMOVE:
        outbox().remove(id);
        return OK_ANSWER;
      case Q.LOG:
        host.log(LEVELS[id] ?? "info", text(body));
        return OK_ANSWER;
      case Q.TRACE: {
        const n = (body[0] << 8) | body[1];
        options.trace?.(id ? "out" : "in", text(body.subarray(2, 2 + n)), body.subarray(2 + n));
        return OK_ANSWER;
      }
      case Q.FW_BEGIN: {
        const { version, size } = JSON.parse(text(body)) as { version: string; size: number };
        const w = firmware().writer!(version);
        w.begin(size); // throws when the slot cannot take it: XS's writer throws it (report_fail -5)
        writers.set(id, w);
        return OK_ANSWER;
      }
      case Q.FW_WRITE:
        // A view of the engine's message: the writer writes it out before answering, it keeps nothing.
        writer(id).write(body);
        return OK_ANSWER;
      case Q.FW_COMPLETE: {
        const w = writer(id);
        writers.delete(id);
        w.complete();
        return OK_ANSWER;
      }
      case Q.FW_CANCEL:
        writers.get(id)?.cancel();
        writers.delete(id);
        return OK_ANSWER;
      case Q.FW_RESTART: {
        // Not from inside a query: the owner's hook stops this engine, which must have its answer first.
        const f = firmware();
        setImmediate(() => f.restart?.());
        return OK_ANSWER;
      }
      case Q.STARTED:
        if (id === 2) {
          // Not from inside a query: failing closes the engine, which must not hear of it before this answer.
          const e = new Error(`the firmware entry failed on XS: ${text(body)}`);
          setImmediate(() => fail(e));
        } else startedWith = id === 1;
        return OK_ANSWER;
    }
    throw new Error(`XS sent a query the bridge does not know (op ${m[0]})`);
  };

  const worker = startXs({
    ownProcessGroup: true,
    onQuery: (m) => {
      try {
        return serve(m);
      } catch (e) {
        // The host's own errors (a config store that refused a value, a bad endpoint) go back to XS as thrown errors.
        return answer(ERROR, textBytes(errorJson(e)));
      }
    },
    onExit: (e) => {
      resolveExited();
      if (!closed) fail(new Error(`the XS engine exited unexpectedly: ${e.message}`));
    },
  });

  // ---- ending ----
  const network = host.network;
  const previous = network.onChange;
  const onLink = (up: boolean): void => {
    previous?.(up);
    void post(frame(E.LINK, up ? 1 : 0, 0));
  };
  function release(): void {
    closed = true;
    if (network.onChange === onLink) network.onChange = previous;
    for (const t of timers.values()) host.clock.clearTimer(t);
    timers.clear();
    for (const t of transports.values()) t.close();
    transports.clear();
    // The device is gone mid-write (stopped, failed): as a power cut, nothing of the image is made bootable.
    for (const w of writers.values()) w.cancel();
    writers.clear();
    for (const item of queue.splice(0)) item.done();
  }
  function fail(e: Error): void {
    if (closed) return;
    failure = new Error(`the firmware on XS failed: ${e.message}`, { cause: e });
    release();
    resolveStarted(false);
    void worker.close();
    if (loaded) options.onFailure?.(failure);
  }
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (!closed) {
        // The device stops in XS (its DISCONNECT goes out through the transport it closes); a stuck engine is killed.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([post(frame(E.STOP, 0, 0)), new Promise((r) => (timer = setTimeout(r, 2000)))]);
        clearTimeout(timer);
        release();
      }
      await worker.close();
      await exited;
    })());

  try {
    await worker.evaluate(PRELUDE);
    await worker.evaluate(code);
  } catch (e) {
    closed = true;
    await worker.close();
    throw new Error(`the XS engine could not load the firmware: ${(e as Error).message}`);
  }
  loaded = true;
  const start: StartOptions = {
    up: network.up,
    outbox: host.outbox !== undefined,
    thermostat: options.thermostat,
    keepalive: options.keepalive,
    trace: options.trace !== undefined,
    app: options.app,
    ota: options.ota,
    firmware: host.firmware
      ? { version: host.firmware.version, capacity: host.firmware.capacity, unsupported: host.firmware.unsupported }
      : undefined,
  };
  queue.push({ message: withText(E.START, 0, JSON.stringify(start)), done: () => undefined });
  // From here on the link's changes reach XS, after START (the queue keeps the order).
  network.onChange = onLink;
  void pump();

  return {
    engine: "xs",
    pid: worker.pid,
    get status() {
      return status;
    },
    get state() {
      return status.state;
    },
    get connects() {
      return status.connects;
    },
    get drops() {
      return status.drops;
    },
    get failedDials() {
      return status.failedDials;
    },
    get problem() {
      return status.problem;
    },
    get outbox() {
      return status.outbox;
    },
    get thermostat() {
      return status.thermostat;
    },
    get failure() {
      return failure;
    },
    started,
    exited,
    stop,
    sync: () => post(frame(E.STATUS, 0, 0)),
    output: () => worker.output(),
  };
}
