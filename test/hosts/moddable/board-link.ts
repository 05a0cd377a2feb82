// The JavaScript side of a board image, built with the real Moddable SDK tools and no board toolchain: mcconfig
// writes the makefile for -p esp32 or -p esp (ESP8266), then only that makefile's `$(TMP_DIR)/mc.xs.c` target runs:
// tsc for every .ts module, xsc for every module, xsid over the native sources and the xsl link of the preloaded
// heap. Nothing is compiled for the chip and nothing is flashed: the C compile, ESP-IDF, the ESP8266 core and the
// radio are out of reach here.
//
// The SDK's makefiles refuse to run without ESP-IDF ($IDF_PATH, a git checkout: its version is `git describe`) or
// the ESP8266 tools ($ESP_BASE with the Arduino core esp8266-2.3.0, ESP8266_RTOS_SDK, toolchain/<uname>, and a
// `python` on PATH). Empty placeholder folders stand in for them, made in a temporary folder that is removed
// afterwards (never in the project). A dry run (make -n) first checks that the target runs nothing but the SDK's
// host tools, so a change in the SDK's makefiles can never make this compile C or flash.
//
// xsl only resolves the imports of preloaded modules. A module imported by a module that is not preloaded (each
// target's main.ts is not) is looked up on the device at start-up, so a missing one links fine and fails at boot:
// the report also resolves every import of our modules against the modules in the image, as XS does
// (tools/xsnap/platforms/mc/xsHosts.c, fxFindModule: a relative specifier against the importer's name like a path, ".js"
// stripped).
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { delimiter, join, posix } from "node:path";
import { moddableSdk, NO_SDK, ROOT, sdkEnv } from "../../helpers/moddable-sdk";

export type BoardChip = "esp32" | "esp";

export interface LinkOptions {
  /** The SDK's folder (default: moddableSdk()). */
  sdk?: string;
  /** A debug build (mcconfig -d; xsc keeps line numbers, the image waits for xsbug). Default: release. */
  debug?: boolean;
  /** make -j (default: the machine's cores). */
  jobs?: number;
  /** The project to build (default: this one). */
  root?: string;
  /** Keep the temporary folder (its path is in report.dir) instead of removing it. */
  keep?: boolean;
}

export interface BoardLinkReport {
  chip: BoardChip;
  /** Linked with no tsc, xsc or xsl error and every import of our modules is in the image. */
  ok: boolean;
  /** What the xsl link reports for the preloaded heap ("### N instances, M keys, ..."); undefined when it did not run. */
  instances: number | undefined;
  keys: number | undefined;
  /** xsl's "not frozen" warnings from our modules (src/, hosts/), as "module: path". */
  notFrozen: string[];
  /** xsl's "not frozen" warnings from the SDK's modules (not ours to fix), for the record. */
  notFrozenSdk: string[];
  /** Bytecode (.xsb bytes) of our modules: those the manifest maps from ./src and ./hosts. */
  bytecode: { ours: number; perModule: Record<string, number> };
  /** tsc / xsc / xsl / make errors, and imports of our modules that the image does not hold. */
  errors: string[];
  /** Wall-clock seconds for mcconfig and the make target. */
  seconds: number;
  /** CPU seconds (user + system) of the make target and everything it ran: the figure that does not depend on load. */
  cpuSeconds: number | undefined;
  /** The temporary folder when `keep` was set. */
  dir?: string;
  /** mcconfig's and make's output. */
  log: string;
}

/** The only programs the mc.xs.c target may run (checked on make -n before the real run). */
const ALLOWED = new Set(["echo", "tsc", "xsc", "xsid", "xsl"]);

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
}

function output(r: SpawnSyncReturns<string>): string {
  return `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? `\n${r.error.message}\n` : ""}`;
}

/** Placeholder toolchain folders in `dir`: what the chip's makefile checks for. Returns the environment to add. */
function placeholders(chip: BoardChip, dir: string): Record<string, string> {
  const bin = join(dir, "bin");
  mkdirSync(bin, { recursive: true });
  if (chip === "esp32") {
    // make.esp32.mk: $IDF_PATH set, and `git describe` in it gives a version (IDF_VERSION).
    const idf = join(dir, "esp-idf");
    mkdirSync(idf, { recursive: true });
    const git = {
      ...process.env,
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_AUTHOR_NAME: "placeholder",
      GIT_AUTHOR_EMAIL: "placeholder@invalid",
      GIT_COMMITTER_NAME: "placeholder",
      GIT_COMMITTER_EMAIL: "placeholder@invalid",
    };
    for (const args of [
      ["init", "-q"],
      ["commit", "-q", "--allow-empty", "-m", "placeholder: not ESP-IDF"],
    ]) {
      const r = run("git", args, idf, git);
      if (r.status !== 0) throw new Error(`placeholder ESP-IDF: git ${args.join(" ")} failed: ${output(r)}`);
    }
    return { IDF_PATH: idf };
  }
  // make.esp.mk: $ESP_BASE, $ARDUINO_ROOT ($ESP_BASE/esp8266-2.3.0, written by mcconfig), its platform.txt (grepped),
  // $ESP_BASE/ESP8266_RTOS_SDK, $ESP_BASE/toolchain/<uname>, and a `python` on PATH.
  const esp = join(dir, "esp");
  const uname = run("uname", [], dir, process.env).stdout.trim() || "Linux";
  for (const d of ["esp8266-2.3.0", "ESP8266_RTOS_SDK", join("toolchain", uname)])
    mkdirSync(join(esp, d), { recursive: true });
  writeFileSync(join(esp, "esp8266-2.3.0", "platform.txt"), "");
  // Last on PATH: a real python wins. This one only answers `which python` and refuses to run.
  writeFileSync(
    join(bin, "python"),
    "#!/bin/sh\necho 'placeholder python (test/hosts/moddable/board-link.ts): not for a real build' >&2\nexit 1\n",
  );
  chmodSync(join(bin, "python"), 0o755);
  return { ESP_BASE: esp };
}

/** The value of a variable of the generated makefile, as make expands it. */
function makeVar(makefile: string, name: string, cwd: string, env: NodeJS.ProcessEnv, extra: string[]): string {
  const r = run(
    "make",
    [
      "-s",
      "--no-print-directory",
      "-f",
      makefile,
      ...extra,
      "--eval",
      `uiot-print-var: ; @echo '$(${name})'`,
      "uiot-print-var",
    ],
    cwd,
    env,
  );
  if (r.status !== 0) throw new Error(`make could not read ${name} from ${makefile}:\n${output(r)}`);
  return r.stdout.trim().split("\n").at(-1) ?? "";
}

/** "~.embedded/io/x" (the makefile's name for a module with a scheme) is "embedded:io/x". */
const moduleName = (name: string): string => (name.startsWith("~.") ? name.slice(2).replace("/", ":") : name);

/** The modules in the image (the makefile's MODULES list), each with the JavaScript xsc compiles, when it is some. */
function imageModules(makefile: string, tmp: string): Map<string, string | undefined> {
  const text = readFileSync(makefile, "utf8");
  const block = /^MODULES =\\\n((?:\t.*\\?\n)*)/m.exec(text);
  if (!block) throw new Error(`no MODULES list in ${makefile}`);
  const sources = new Map<string, string>();
  for (const m of text.matchAll(/^\$\(MODULES_DIR\)\/(.+?)\.xsb: (\S+)/gm))
    sources.set(m[1], m[2].replace("$(TMP_DIR)", tmp));
  const out = new Map<string, string | undefined>();
  for (const m of block[1].matchAll(/\$\(MODULES_DIR\)\/(.+?)\.xsb/g)) {
    const source = sources.get(m[1]);
    out.set(moduleName(m[1]), source?.endsWith(".js") ? source : undefined);
  }
  return out;
}

function specifiers(js: string): string[] {
  return [
    ...js.matchAll(
      /^\s*(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm,
    ),
  ].map((m) => m[1] ?? m[2] ?? m[3]);
}

const ours = (module: string): boolean => module.startsWith("src/") || module.startsWith("hosts/");

/** Errors in the output of tsc, xsc, xsl and make (the "# xsc name.xsb" step banners aside). */
export function buildErrors(log: string): string[] {
  return log
    .split("\n")
    .filter((line) => !/^# (xsc|tsc|xsid|xsl|mcrez) /.test(line) && !/: not frozen$/.test(line))
    .filter((line) => /\berror\b|Error\b|failure|^make(\[\d+\])?: \*\*\*|^fatal:/i.test(line));
}

/** Parses xsl's summary and warnings. */
export function parseLink(log: string): Pick<BoardLinkReport, "instances" | "keys" | "notFrozen" | "notFrozenSdk"> {
  const summary = /^### (\d+) instances, (\d+) keys/m.exec(log);
  const notFrozen: string[] = [];
  const notFrozenSdk: string[] = [];
  for (const m of log.matchAll(/^### warning: (.+?): (.+): not frozen$/gm))
    (ours(m[1]) ? notFrozen : notFrozenSdk).push(`${m[1]}: ${m[2]}`);
  return {
    instances: summary ? Number(summary[1]) : undefined,
    keys: summary ? Number(summary[2]) : undefined,
    notFrozen,
    notFrozenSdk,
  };
}

/** The children's user + system time from sh's `times` (its second line: "1m3.508s 0m4.044s"). */
function childCpu(times: string): number | undefined {
  const line = times.trim().split("\n")[1];
  if (!line) return undefined;
  const parts = [...line.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return parts.length === 2 ? Math.round((parts[0] + parts[1]) * 10) / 10 : undefined;
}

/** Builds the JavaScript side of the chip's image (through mc.xs.c) in a temporary folder and reports on it. */
export function linkBoard(chip: BoardChip, options: LinkOptions = {}): BoardLinkReport {
  const sdk = options.sdk ?? moddableSdk();
  const root = options.root ?? ROOT;
  if (!sdk) throw new Error(NO_SDK);
  const dir = mkdtempSync(join(tmpdir(), `uiot-board-${chip}-`));
  const started = performance.now();
  const log: string[] = [];
  const report = (fields: Partial<BoardLinkReport>): BoardLinkReport => {
    const text = log.join("");
    const errors = [...buildErrors(text), ...(fields.errors ?? [])];
    const r: BoardLinkReport = {
      chip,
      ok: false,
      bytecode: { ours: 0, perModule: {} },
      cpuSeconds: undefined,
      ...parseLink(text),
      ...fields,
      errors,
      seconds: Math.round((performance.now() - started) / 100) / 10,
      log: text,
    };
    r.ok = fields.ok === true && errors.length === 0;
    if (options.keep) r.dir = dir;
    else rmSync(dir, { recursive: true, force: true });
    return r;
  };
  try {
    const tools = placeholders(chip, join(dir, "toolchain"));
    const base = sdkEnv(sdk, tools);
    const env = { ...base, PATH: [base.PATH ?? "", join(dir, "toolchain", "bin")].join(delimiter) };
    const out = join(dir, "build");
    mkdirSync(out);
    // Without -m: mcconfig only writes the makefile (with -m it would run the default target: the whole build, then
    // flash; on esp32 it would also source $IDF_PATH/export.sh).
    const args = [...(options.debug ? ["-d"] : []), "-p", chip, "-o", out, join(root, "manifest.json")];
    log.push(`$ mcconfig ${args.join(" ")}\n`);
    const mc = run("mcconfig", args, root, env);
    log.push(output(mc));
    if (mc.status !== 0) return report({ errors: [`mcconfig exited with ${mc.status}`] });
    const variant = options.debug ? "debug" : "release";
    const parent = join(out, "tmp", chip, variant);
    const name = readdirSync(parent).find((n) => existsSync(join(parent, n, "makefile")));
    if (!name) return report({ errors: [`mcconfig wrote no makefile under ${parent}`] });
    const makefile = join(parent, name, "makefile");
    // esp32: mc.xs.c depends on sdkconfig.h, which ESP-IDF's reconfigure makes; -o treats it as made.
    const extra = chip === "esp32" ? ["-o", makeVar(makefile, "SDKCONFIG_H", root, env, [])] : [];
    const tmp = makeVar(makefile, "TMP_DIR", root, env, extra);
    const target = join(tmp, "mc.xs.c");
    const dry = run("make", ["-n", "-f", makefile, ...extra, target], root, env);
    if (dry.status !== 0) {
      log.push(output(dry));
      return report({ errors: [`make -n ${target} failed`] });
    }
    const foreign = dry.stdout
      .split("\n")
      .map((l) => l.trim().split(/\s+/)[0])
      .filter((w) => w && !ALLOWED.has(w));
    if (foreign.length)
      return report({
        errors: [`the mc.xs.c target would run more than the SDK's host tools: ${[...new Set(foreign)].join(", ")}`],
      });
    const jobs = options.jobs ?? availableParallelism();
    log.push(`$ make -j${jobs} -f ${makefile} ${extra.join(" ")} ${target}\n`);
    // sh's `times` on fd 3: the CPU time of make and its children.
    const made = spawnSync(
      "sh",
      ["-c", 'make "$@"; s=$?; times >&3; exit $s', "sh", `-j${jobs}`, "-f", makefile, ...extra, target],
      { cwd: root, env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024, stdio: ["ignore", "pipe", "pipe", "pipe"] },
    );
    log.push(output(made));
    const cpuSeconds = childCpu(String(made.output[3] ?? ""));
    if (made.status !== 0 || !existsSync(target))
      return report({ cpuSeconds, errors: [`make ${target} exited with ${made.status}`] });

    // Our modules' bytecode, and every import reachable from them resolved against the image.
    const modules = imageModules(makefile, tmp);
    const perModule: Record<string, number> = {};
    const errors: string[] = [];
    const mine = [...modules.keys()].filter(ours).sort();
    for (const module of mine) {
      const xsb = join(tmp, "modules", `${module}.xsb`);
      if (existsSync(xsb)) perModule[module] = statSync(xsb).size;
      else errors.push(`${module}: no bytecode (${xsb})`);
    }
    const seen = new Set(mine);
    for (const queue = [...mine]; queue.length > 0; ) {
      const module = queue.shift() as string;
      const js = modules.get(module);
      if (!js || !existsSync(js)) continue;
      for (const spec of specifiers(readFileSync(js, "utf8"))) {
        const target = spec.startsWith(".") ? posix.join(posix.dirname(module), spec).replace(/\.js$/, "") : spec;
        if (!modules.has(target))
          errors.push(
            `${module} imports "${spec}" (module "${target}"), which the ${chip} image does not hold: it fails at start-up`,
          );
        else if (!seen.has(target)) {
          seen.add(target);
          queue.push(target);
        }
      }
    }
    const total = Object.values(perModule).reduce((a, b) => a + b, 0);
    return report({ ok: true, errors, cpuSeconds, bytecode: { ours: total, perModule } });
  } catch (e) {
    return report({ errors: [e instanceof Error ? e.message : String(e)] });
  }
}

/** One line for a CI log. */
export function describeLink(r: BoardLinkReport): string {
  const kb = (r.bytecode.ours / 1024).toFixed(1);
  return (
    `${r.chip}: ${r.ok ? "links" : "FAILS"} in ${r.seconds} s (${r.cpuSeconds ?? "?"} s CPU); ${r.instances ?? "?"} instances, ${r.keys ?? "?"} keys; ` +
    `our bytecode ${r.bytecode.ours} bytes (${kb} KB, ${Object.keys(r.bytecode.perModule).length} modules); ` +
    `not frozen: ${r.notFrozen.length} ours, ${r.notFrozenSdk.length} SDK` +
    (r.errors.length ? `; errors: ${r.errors.length}` : "")
  );
}
