// The real Moddable firmware, built with the SDK's own mcconfig for the desktop (lin) and run headless in the SDK's
// own simulator (mcsim, under Xvfb), with the XS creation settings of each chip. What the tests provision goes into
// the preference file of the SDK's lin `preference` module, in the run's own folder; what the firmware traces is
// read from mcsim's output, with the XS instrumentation samples an instrumented build prints every second (the
// deepest stack, the slot and chunk heaps in use).
//
// Never the SDK makefile's run target: it kills every mcsim and serial2xsbug on the machine. Each run has its own
// folder, HOME (mcsim copies the firmware into ~/.config/tech.moddable.mcsim) and display.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { trackChild } from "./cleanup";
import { waitFor } from "./wait";
import { ROOT, sdkEnv } from "./moddable-sdk";

/** XS creation settings, as a Moddable manifest's `creation` gives them. */
export interface Creation {
  stack: number;
  chunk: { initial: number; incremental: number };
  heap: { initial: number; incremental: number };
  /** All the memory XS gets, in bytes (0: grows from the system heap). The desktop XS does not enforce it. */
  static: number;
}

/** mcconfig's defaults (tools/mcconfig.js, filterCreation) for what a manifest leaves out. */
export const MCCONFIG_DEFAULTS: Creation = {
  stack: 384,
  chunk: { initial: 32768, incremental: 1024 },
  heap: { initial: 2048, incremental: 64 },
  static: 0,
};

export type Chip = "desktop" | "esp32" | "esp8266";

/** The SDK device manifest and ours that give each chip's creation settings. */
const SOURCES: Record<Chip, { sdk?: string; ours: string }> = {
  desktop: { ours: "hosts/moddable-desktop/manifest.json" },
  esp32: { sdk: "build/devices/esp32/manifest.json", ours: "hosts/esp32/manifest.json" },
  esp8266: { sdk: "build/devices/esp/manifest.json", ours: "hosts/esp8266/manifest.json" },
};

function manifestOf(path: string): { creation?: Partial<Creation>; config?: { tls?: Record<string, unknown> } } {
  return existsSync(path) ? JSON.parse(readFileSync(path, "utf8")) : {};
}

function creationOf(path: string): Partial<Creation> {
  return manifestOf(path).creation ?? {};
}

/** A chip's XS creation settings: mcconfig's defaults, then the SDK's device manifest, then our host manifest. */
export function chipCreation(sdk: string, chip: Chip): Creation {
  const src = SOURCES[chip];
  const layers = [src.sdk ? creationOf(join(sdk, src.sdk)) : {}, creationOf(join(ROOT, src.ours))];
  const c: Creation = structuredClone(MCCONFIG_DEFAULTS);
  for (const l of layers) {
    if (l.stack !== undefined) c.stack = l.stack;
    if (l.static !== undefined) c.static = l.static;
    if (l.chunk) c.chunk = { ...c.chunk, ...l.chunk };
    if (l.heap) c.heap = { ...c.heap, ...l.heap };
  }
  return c;
}

export interface Build {
  chip: Chip;
  creation: Creation;
  /** The firmware library mcsim loads. */
  library: string;
  sdk: string;
  /** mcconfig's output (xsl's report and warnings included). */
  log: string;
}

/**
 * Builds the firmware for the desktop with `chip`'s creation settings and chip profile (mc/config `chip`), as an
 * instrumented release build (`mcconfig -i`: what is flashed, plus the XS instrumentation). The output goes to
 * build/moddable-test/<chip>/ (git-ignored), so a later build only recompiles what changed.
 */
export function buildFirmware(sdk: string, chip: Chip): Build {
  const creation = chipCreation(sdk, chip);
  const dir = join(ROOT, "build", "moddable-test", chip);
  mkdirSync(join(dir, "out"), { recursive: true });
  const manifest = {
    include: [join(ROOT, "manifest.json")],
    creation,
    // The lin preference file is config.file.root + "modpreferences.json": relative, so each run (its own working
    // folder) has its own file.
    // the chip's TLS settings too (the ESP8266 build leaves out the ECDHE key exchanges)
    config: {
      file: { root: "./" },
      chip,
      ...(manifestOf(join(ROOT, SOURCES[chip].ours)).config?.tls
        ? { tls: manifestOf(join(ROOT, SOURCES[chip].ours)).config?.tls }
        : {}),
    },
  };
  writeFileSync(join(dir, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  const r = spawnSync("mcconfig", ["-i", "-m", "-t", "build", "-o", join(dir, "out"), join(dir, "manifest.json")], {
    cwd: ROOT,
    env: sdkEnv(sdk),
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  const log = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  if (r.error) throw new Error(`could not run mcconfig: ${r.error.message}`);
  if (r.status !== 0)
    throw new Error(
      `mcconfig failed for ${chip} (exit ${r.status}):\n${log
        .split("\n")
        .filter((l) => !/^# /.test(l))
        .slice(-40)
        .join("\n")}`,
    );
  const library = join(dir, "out", "bin", "lin", "mc", "instrument", chip, "mc.so");
  if (!existsSync(library)) throw new Error(`mcconfig did not build ${library}:\n${log.slice(-4000)}`);
  return { chip, creation, library, sdk, log };
}

/** xsl's "not frozen" warnings for our own modules (src/, hosts/), from a build's log. */
export function notFrozen(log: string): string[] {
  return log
    .split("\n")
    .filter((l) => /### warning: (src|hosts)\//.test(l) && /not frozen/.test(l))
    .map((l) => l.replace("### warning: ", ""));
}

// ---- the display ----

export interface Display {
  readonly name: string;
  stop(): Promise<void>;
}

/** An Xvfb server on a free display number (it picks one and says which on its stdout: -displayfd). */
export async function startXvfb(): Promise<Display> {
  const child = spawnTied("Xvfb", ["-displayfd", "1", "-nolisten", "tcp", "-screen", "0", "640x480x24"], {});
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const spawnError = new Promise<never>((_, reject) =>
    child.once("error", (e) => reject(new Error(`could not start Xvfb (apt-get install xvfb): ${e.message}`))),
  );
  const n = await Promise.race([
    waitFor(() => /^\d+\n/.exec(out)?.[0].trim(), { timeoutMs: 20000, message: `Xvfb to start: ${err}` }),
    spawnError,
  ]);
  return { name: `:${n}`, stop: () => stopChild(child) };
}

// ---- a run ----

export interface Sample {
  /** Deepest JavaScript stack since the previous sample, in slots. */
  stack: number;
  /** Slot heap in use, in slots; chunk heap in use, in bytes (64-bit sizes: a 32-bit board's are smaller). */
  slots: number;
  chunks: number;
  /**
   * What XS has taken so far (it grows a heap only when a collection leaves too little free): slots, and chunk
   * bytes. On a board with `creation.static` this, with the stack, is what comes out of the static block.
   */
  slotsReserved: number;
  chunksReserved: number;
}

export interface Run {
  /** Every line mcsim printed so far (trace output and samples). */
  readonly lines: string[];
  /** The firmware's own log lines ("[info] ...", "[warn] ..."). */
  log(): string[];
  readonly samples: Sample[];
  /** Deepest stack seen so far, in slots. */
  deepest(): number;
  /** The first log line matching, waiting for it (default 20 s); fails at once on an XS abort. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves when the next instrumentation sample arrives (the peak of what ran before it is then counted). */
  nextSample(): Promise<void>;
  /** "XS abort: ..." if the engine aborted. */
  aborted(): string | undefined;
  /** Stops mcsim (SIGTERM, then SIGKILL). */
  stop(): Promise<void>;
}

/** Output lines of the engine's instrumentation: "instruments: v,v,..."; which column is what comes first. */
const KEY = "instruments key: ";
const VALUES = "instruments: ";

/**
 * Runs `build` in mcsim with its working folder `dir` (where the preference file is), its own HOME, on `display`.
 * The run is stopped when the test process exits.
 */
export function runFirmware(build: Build, dir: string, display: Display): Run {
  const home = join(dir, "home");
  mkdirSync(join(home, ".config", "tech.moddable.mcsim"), { recursive: true });
  const env = sdkEnv(build.sdk, {
    HOME: home,
    DISPLAY: display.name,
    // no session bus: mcsim (a GApplication) would otherwise hand its files to an mcsim already running
    DBUS_SESSION_BUS_ADDRESS: "disabled:",
    NO_AT_BRIDGE: "1",
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_DATA_HOME: join(home, ".local", "share"),
    XDG_CACHE_HOME: join(home, ".cache"),
  });
  const mcsim = join(build.sdk, "build", "bin", "lin", "release", "mcsim");
  // stdbuf: mcsim's stdout is a pipe here, and what the firmware traces must arrive as it is printed
  const args = [mcsim, join(build.sdk, "build", "simulators"), build.library];
  // UIOT_MCSIM_GDB=1: under gdb, which prints the native stack if mcsim crashes
  const child = process.env.UIOT_MCSIM_GDB
    ? spawnTied("stdbuf", ["-o0", "-e0", "gdb", "-batch", "-ex", "run", "-ex", "bt 40", "--args", ...args], {
        cwd: dir,
        env,
      })
    : spawnTied("stdbuf", ["-o0", "-e0", ...args], { cwd: dir, env });
  const lines: string[] = [];
  const samples: Sample[] = [];
  let columns: string[] = [];
  let abort: string | undefined;
  let exited: string | undefined;
  let partial = "";
  const sampleWaiters: (() => void)[] = [];
  const onLine = (line: string): void => {
    lines.push(line);
    if (line.startsWith(KEY)) columns = line.slice(KEY.length).split(",");
    else if (line.startsWith(VALUES)) {
      const v = line.slice(VALUES.length).split(",").map(Number);
      const at = (name: string) => v[columns.indexOf(name)];
      const slotSize = at("Stack available") / build.creation.stack;
      samples.push({
        stack: Math.round(at("Stack used") / slotSize),
        slots: Math.round(at("Slot used") / slotSize),
        chunks: at("Chunk used"),
        slotsReserved: Math.round(at("Slot available") / slotSize),
        chunksReserved: at("Chunk available"),
      });
      for (const w of sampleWaiters.splice(0)) w();
    } else if (line.startsWith("XS abort")) abort ??= line;
  };
  const onData = (d: string) => {
    partial += d;
    let i: number;
    while ((i = partial.indexOf("\n")) >= 0) {
      onLine(partial.slice(0, i));
      partial = partial.slice(i + 1);
    }
  };
  child.stdout!.setEncoding("utf8").on("data", onData);
  child.stderr!.setEncoding("utf8").on("data", onData);
  child.once("exit", (code, signal) => (exited = signal ? `killed by ${signal}` : `exit code ${code}`));
  const log = () => lines.filter((l) => /^\[(debug|info|warn|error)\] /.test(l));
  return {
    lines,
    samples,
    log,
    deepest: () => samples.reduce((m, s) => Math.max(m, s.stack), 0),
    aborted: () => abort,
    async waitFor(pattern, timeoutMs = 20000) {
      return waitFor(
        () => {
          if (abort) throw new Error(abort);
          const hit = log().find((l) => pattern.test(l));
          if (hit) return hit;
          if (exited) throw new Error(`mcsim ended (${exited})`);
          return undefined;
        },
        {
          timeoutMs,
          message: `the firmware to log ${pattern}; it logged:\n${lines.filter((l) => !l.startsWith("instruments")).join("\n")}`,
        },
      ).catch((e: Error) => {
        throw e.cause instanceof Error
          ? new Error(
              `${e.cause.message}; the firmware logged:\n${lines.filter((l) => !l.startsWith("instruments")).join("\n")}`,
            )
          : e;
      });
    },
    nextSample: () => new Promise<void>((resolve) => sampleWaiters.push(resolve)),
    stop: () => stopChild(child),
  };
}

// ---- processes ----

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));

/** A child that the kernel kills when this process dies (setpriv --pdeathsig), tracked for cleanup. */
function spawnTied(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv }): ChildProcess {
  const [cmd, argv] = SETPRIV ? [SETPRIV, ["--pdeathsig", "KILL", "--", command, ...args]] : [command, args];
  const child = spawn(cmd, argv, { ...options, stdio: ["ignore", "pipe", "pipe"] });
  trackChild(child);
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(timer);
}
