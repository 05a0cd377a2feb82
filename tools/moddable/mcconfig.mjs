#!/usr/bin/env node
// Builds (and flashes, or runs) the firmware with the Moddable SDK's mcconfig, after checking that the SDK is
// there and recent enough: a clear message instead of "command not found". Used by the npm scripts:
//
//   node tools/moddable/mcconfig.mjs esp32|esp8266|desktop build|flash|run [--debug] [mcconfig arguments ...]
//
//   build  mcconfig -m -t build -o build -p <platform> manifest.json   (compile only)
//   flash  mcconfig -m -o build -p <platform> manifest.json            (compile and flash)
//   run    the same as flash, for the desktop simulator
//
// Release firmware by default; --debug adds -d (a debug build: it waits for xsbug at start-up). Other arguments
// go to mcconfig as they are: a board (-p esp32/nodemcu replaces -p esp32), Wi-Fi (ssid="name"
// password="secret"). The command line is printed with every secret-looking value (password=, psk=, ...) masked.
//
// The SDK must be 5.3.2 or newer: its TLS checks the server's name against the certificate only since then
// (modules/crypt/ssl/ssl_cert.js, subjectAltName); older SDKs are refused, naming the version found.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The oldest Moddable SDK accepted: the first whose TLS checks the server name (subjectAltName). */
export const MIN_SDK = "5.3.2";

/**
 * The SDK's version and whether it is too old: $MODDABLE/tools/VERSION (there since 3.2.1, read by the SDK's own
 * tools). That file says 5.3.0 for the releases 5.3.0 to 5.3.3, so for 5.3.x the TLS code itself is looked at: the
 * server-name check of 5.3.2 is X509.decodeSAN in modules/crypt/ssl/ssl_cert.js.
 * Returns { version } or { error }.
 */
export function checkSdkVersion(moddable) {
  const file = join(moddable, "tools", "VERSION");
  let text;
  try {
    text = readFileSync(file, "utf8").trim();
  } catch {
    return {
      error: `cannot tell the Moddable SDK's version: ${file} is missing (an SDK older than 3.2.1, or not a whole SDK). This firmware needs ${MIN_SDK} or newer, whose TLS checks the server's name; update the SDK (xs-dev update, or git pull in $MODDABLE and rebuild its tools)`,
    };
  }
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(text);
  if (!m)
    return {
      error: `cannot read the Moddable SDK's version from ${file} ("${text.slice(0, 20)}"): this firmware needs ${MIN_SDK} or newer`,
    };
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const found = `${major}.${minor}.${patch}`;
  const old = (why) => ({
    error: `the Moddable SDK in $MODDABLE is ${found}${why}; this firmware needs ${MIN_SDK} or newer: before it, the SDK's TLS does not check that the server's certificate is for the host name dialled, so any certificate signed by the CA would be accepted. Update the SDK (xs-dev update, or git pull in $MODDABLE and rebuild its tools)`,
  });
  if (major < 5 || (major === 5 && minor < 3)) return old("");
  if (major === 5 && minor === 3) {
    let tls = "";
    try {
      tls = readFileSync(join(moddable, "modules", "crypt", "ssl", "ssl_cert.js"), "utf8");
    } catch {
      // no TLS code to look at: counted as the old one
    }
    if (!/decodeSAN/.test(tls))
      return old(
        ` (tools/VERSION says ${text}, which 5.3.0 to 5.3.3 all say, and modules/crypt/ssl/ssl_cert.js has no subjectAltName check: 5.3.0 or 5.3.1)`,
      );
  }
  return { version: found };
}

/** mcconfig's arguments as they may be shown: the value of every NAME=value whose NAME looks like a secret masked. */
export function maskSecrets(args) {
  return args.map((a) => {
    const m = /^([A-Za-z_][\w.-]*)=/.exec(a);
    return m && /pass|secret|psk|key|token|credential/i.test(m[1]) ? `${m[1]}=****` : a;
  });
}
const PLATFORMS = { esp32: "esp32", esp8266: "esp", desktop: undefined };
const ACTIONS = ["build", "flash", "run"];

const INSTALL = [
  "Install the Moddable SDK first. The common way is the xs-dev CLI:",
  "  npm install -g xs-dev",
  "  xs-dev setup                      # the SDK, its tools and the desktop simulator; sets $MODDABLE",
  "  xs-dev setup --device esp32       # ESP-IDF, for -p esp32",
  "  xs-dev setup --device esp8266     # the ESP8266 toolchain, for -p esp",
  "then open a new shell (so $MODDABLE and PATH are set) and run this again.",
  "Without xs-dev: https://github.com/Moddable-OpenSource/moddable/blob/public/documentation/Moddable%20SDK%20-%20Getting%20Started.md",
].join("\n");

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

/** The first `name` on PATH (with Windows extensions), or undefined. */
function which(name, path) {
  const exts = process.platform === "win32" ? (process.env.PATHEXT ?? ".EXE;.CMD;.BAT").split(";") : [""];
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const p = join(dir, name + ext);
      try {
        if (statSync(p).isFile()) return p;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

export function plan(argv, env) {
  const [target, action = "build", ...rest] = argv;
  if (!(target in PLATFORMS) || !ACTIONS.includes(action))
    return {
      error: "usage: node tools/moddable/mcconfig.mjs esp32|esp8266|desktop build|flash|run [mcconfig arguments ...]",
    };
  if (target !== "desktop" && action === "run")
    return { error: `"run" is for the desktop simulator; on a board use "flash"` };
  if (target === "desktop" && action === "flash") return { error: `the desktop simulator is not flashed: use "run"` };
  if (!env.MODDABLE) return { error: `The Moddable SDK is not set up: $MODDABLE is not set.\n${INSTALL}` };
  if (!existsSync(join(env.MODDABLE, "tools", "mcconfig")) && !existsSync(join(env.MODDABLE, "xs")))
    return { error: `$MODDABLE (${env.MODDABLE}) is not a Moddable SDK directory.\n${INSTALL}` };
  // npm puts node_modules/.bin first on PATH; the same is done here for `node tools/moddable/mcconfig.mjs`, so mcconfig
  // compiles the TypeScript with this project's TypeScript (6 or newer, as mcconfig's tsconfig needs).
  const path = [join(root, "node_modules", ".bin"), env.PATH ?? ""].join(delimiter);
  const mcconfig = which("mcconfig", path);
  if (!mcconfig)
    return { error: `mcconfig is not on PATH (add $MODDABLE/build/bin/<your OS>/release to PATH).\n${INSTALL}` };
  if (!which("tsc", path))
    return {
      error: "tsc is not on PATH: run npm install in this project first (mcconfig compiles the .ts modules with it)",
    };
  const sdk = checkSdkVersion(env.MODDABLE);
  if (sdk.error) return { error: sdk.error };
  let platform = PLATFORMS[target];
  const args = [];
  let debug = false;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === "--debug" || rest[i] === "-d") debug = true;
    else if (rest[i] === "--release")
      debug = false; // the default; accepted as before
    else if (rest[i] === "-p" && i + 1 < rest.length) platform = rest[++i];
    else args.push(rest[i]);
  }
  if (target === "esp32" && !env.IDF_PATH)
    return {
      error: `ESP-IDF is not set up for this shell: $IDF_PATH is not set. Run xs-dev setup --device esp32 (then open a new shell), or source $IDF_PATH/export.sh.`,
    };
  if (target === "esp8266" && !existsSync(env.ESP_BASE ?? join(env.HOME ?? env.USERPROFILE ?? "", "esp")))
    return {
      error: `The ESP8266 toolchain is not installed ($ESP_BASE, default ~/esp, is missing). Run xs-dev setup --device esp8266.`,
    };
  const command = [
    ...(debug ? ["-d"] : []),
    "-m",
    ...(action === "build" ? ["-t", "build"] : []),
    "-o",
    join(root, "build"),
    ...(platform ? ["-p", platform] : []),
    ...args,
    join(root, "manifest.json"),
  ];
  return { mcconfig, command, path, debug, sdk: sdk.version };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const p = plan(process.argv.slice(2), process.env);
  if (p.error) fail(p.error);
  mkdirSync(join(root, "build"), { recursive: true });
  const ts = JSON.parse(readFileSync(join(root, "node_modules", "typescript", "package.json"), "utf8")).version;
  if (Number(ts.split(".")[0]) < 6)
    fail(`mcconfig needs TypeScript 6 or newer; this project has ${ts}: run npm install`);
  process.stdout.write(
    `Moddable SDK ${p.sdk}; ${p.debug ? "debug build (--debug: waits for xsbug at start-up)" : "release build (--debug for a debug build with xsbug)"}\n`,
  );
  process.stdout.write(`mcconfig ${maskSecrets(p.command).join(" ")}\n`);
  const r = spawnSync(p.mcconfig, p.command, { cwd: root, stdio: "inherit", env: { ...process.env, PATH: p.path } });
  if (r.error) fail(`could not run mcconfig: ${r.error.message}`);
  process.exit(r.status ?? 1);
}
