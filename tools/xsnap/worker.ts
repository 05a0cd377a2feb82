// A Node-side driver for Moddable's XS engine as built by the npm package @agoric/xsnap (its `xsnap-worker` binary,
// compiled from the package's bundled Moddable sources at install). We speak the worker's netstring protocol
// ourselves: @agoric/xsnap's own JS API needs SES (lockdown) in the Node process, which a test runner cannot have.
//
// Protocol (xsnap-native/xsnap/sources/xsnap-worker.c): netstrings on fd 3 (to XS) and fd 4 (from XS).
//   to XS:   "e<code>" evaluate a script; "?<bytes>" call globalThis.handleCommand(ArrayBuffer); "q" quit;
//            "/<bytes>" answers an issueCommand() query of the script
//   from XS: ".<meters>\x01<reply>" done, with the meters of that run (compute units, heap slots in use, bytes the
//            machine holds); "!<message>" uncaught exception; "?<bytes>" issueCommand() from the script
// A reply is the ArrayBuffer handleCommand returned, or the `result` property of the object it returned, read after
// the promise jobs and setImmediate callbacks ran out (so an async handler sets `box.result` when it is done).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";

const ROOT = join(import.meta.dirname, "..", "..");
export const XSNAP_PACKAGE = join(ROOT, "node_modules", "@agoric", "xsnap");

/** The release xsnap-worker binary @agoric/xsnap builds at install, or where it would be. */
export function xsnapBinary(goal: "release" | "debug" = "release"): string {
  const platform = process.platform === "darwin" ? "mac" : "lin";
  return join(XSNAP_PACKAGE, "xsnap-native", "xsnap", "build", "bin", platform, goal, "xsnap-worker");
}

export const hasXsnap = (): boolean => existsSync(xsnapBinary());

export interface Meters {
  /** XS compute units of the run (the engine's meter: roughly one per bytecode and per unit of native work). */
  compute: number;
  /** Heap slots in use at the end of the run (a slot is 32 bytes on a 64-bit build, 16 on ESP32/ESP8266). */
  currentHeapCount: number;
  /** Bytes the machine holds for its slot and chunk heaps (grows, never shrinks). */
  allocate: number;
}

export interface Run {
  reply: Uint8Array;
  meters: Meters;
}

export interface XsWorker {
  /** The engine's process id. */
  readonly pid: number | undefined;
  evaluate(code: string): Promise<Run>;
  command(message: Uint8Array | string): Promise<Run>;
  close(): Promise<void>;
  /** Writes a snapshot of the machine to `path` (the engine collects garbage first); resolves with its size in bytes. */
  snapshot(path: string): Promise<number>;
  /** What the script printed (print()) and wrote to stderr so far. */
  output(): string;
}

export interface XsOptions {
  /** Answers issueCommand() from the script; default: echo. */
  onQuery?: (message: Uint8Array) => Uint8Array;
  /** Parser buffer, in KB (the largest script evaluate() takes); default 8 MB. */
  parserBufferKb?: number;
  /**
   * Run the engine in a process group of its own, so a Ctrl-C at the terminal (SIGINT to the foreground group)
   * reaches only the Node process, which then stops the engine in order. It still ends when Node dies: it reads
   * end-of-file on its command pipe and exits.
   */
  ownProcessGroup?: boolean;
  /** Called once when the engine's process ends, however (after close() too), with why. */
  onExit?: (error: Error) => void;
}

export function startXs(options: XsOptions = {}): XsWorker {
  const bin = xsnapBinary();
  if (!existsSync(bin)) throw new Error(`no XS engine: ${bin} is missing (run npm run build:xs)`);
  const args = ["uiot-xs"];
  if (options.parserBufferKb) args.push("-s", String(options.parserBufferKb));
  const child: ChildProcess = spawn(bin, args, {
    stdio: ["ignore", "pipe", "pipe", "pipe", "pipe", "ignore", "ignore", "ignore", "ignore"],
    detached: options.ownProcessGroup === true,
  });
  const toXs = child.stdio[3] as Writable;
  const fromXs = child.stdio[4] as Readable;
  let out = "";
  child.stdout?.setEncoding("utf8").on("data", (s: string) => (out += s));
  child.stderr?.setEncoding("utf8").on("data", (s: string) => (out += s));

  type Waiter = { resolve: (r: Run) => void; reject: (e: Error) => void };
  const waiters: Waiter[] = [];
  let dead: Error | undefined;
  const fail = (e: Error) => {
    dead ??= e;
    for (const w of waiters.splice(0)) w.reject(e);
  };
  child.on("exit", (code, signal) => {
    const e = new Error(`XS exited (${signal ?? `code ${code}`})${out ? `: ${out.slice(-2000)}` : ""}`);
    fail(e);
    options.onExit?.(e);
  });
  child.on("error", fail);
  // A pipe to an engine that just died fails (EPIPE, ECONNRESET): its exit, which follows, says why (a signal, a
  // code, what it printed). An engine that cannot be talked to any more is ended, so that exit does follow.
  const broken = (): void => void (child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"));
  toXs.on("error", broken);
  fromXs.on("error", broken);

  const send = (prefix: string, body: Uint8Array) => {
    const head = Buffer.from(`${body.length + prefix.length}:${prefix}`);
    toXs.write(Buffer.concat([head, body, Buffer.from(",")]));
  };

  let buf: Buffer = Buffer.alloc(0);
  fromXs.on("data", (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      const colon = buf.indexOf(0x3a);
      if (colon < 0) return;
      const n = Number(buf.subarray(0, colon).toString());
      if (buf.length < colon + 1 + n + 1) return;
      const msg = buf.subarray(colon + 1, colon + 1 + n);
      buf = buf.subarray(colon + 2 + n);
      const kind = msg[0];
      if (kind === 0x3f) {
        // "?": issueCommand() from the script, answered synchronously from its point of view
        const answer = options.onQuery ? options.onQuery(msg.subarray(1)) : msg.subarray(1);
        send("/", answer);
        continue;
      }
      const w = waiters.shift();
      if (!w) continue;
      if (kind === 0x2e) {
        const sep = msg.indexOf(1, 1);
        const m = JSON.parse(msg.subarray(1, sep).toString()) as Meters;
        w.resolve({
          reply: new Uint8Array(msg.subarray(sep + 1)),
          meters: { compute: m.compute, currentHeapCount: m.currentHeapCount, allocate: m.allocate },
        });
      } else if (kind === 0x21) {
        w.reject(new Error(`uncaught exception in XS: ${msg.subarray(1).toString()}`));
      } else {
        w.reject(new Error(`XS protocol error: ${msg.subarray(0, 80).toString()}`));
      }
    }
  });

  const request = (prefix: string, body: Uint8Array): Promise<Run> =>
    new Promise<Run>((resolve, reject) => {
      if (dead) return reject(dead);
      waiters.push({ resolve, reject });
      send(prefix, body);
    });

  return {
    pid: child.pid,
    evaluate: (code) => request("e", Buffer.from(code)),
    command: (message) => request("?", typeof message === "string" ? Buffer.from(message) : message),
    output: () => out,
    snapshot: async (path) => Number(Buffer.from((await request("w", Buffer.from(path))).reply).toString()),
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        send("q", new Uint8Array(0));
        setTimeout(() => child.kill("SIGKILL"), 2000).unref();
      }),
  };
}
