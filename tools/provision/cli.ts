// `npm run provision -- ...` (bin: uiot-provision): puts a device's UIoT Core credentials, broker, CA and Wi-Fi
// settings where the firmware reads them on boot — the simulator's config store, or an ESP32 NVS partition image
// to flash. Secrets come from a prompt that echoes nothing, from stdin (--secret-stdin), or (with a warning) from
// options; they are never printed: summaries show `****` and the last two characters.
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { isUiotHost } from "../../src/uiot/platform";
import { isSecure } from "../../src/net/endpoint";
import { scrub } from "../../src/uiot/identity";
import { MODDABLE_ESP32_NVS, NVS_PAGE_SIZE } from "./nvs";
import {
  describePlan,
  esp32Image,
  flashCommand,
  planProvisioning,
  ProvisionError,
  provisionSimulator,
  SIMULATOR_CONFIG_FILE,
  writePrivateFile,
  type ProvisionInput,
} from "./provision";
import { lines, readAll, readHidden, type SecretInput } from "./secret-input";

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  stdin: SecretInput;
  /** Relative paths are resolved against this. */
  cwd: string;
}

export const USAGE = `Usage: npm run provision -- [options]       (or: uiot-provision [options])

Puts a device's UIoT Core credentials and settings where the firmware reads them on boot.

Identity (UIoT Core console):
  --product-sn <PSN>        ProductSN: 1..16 letters and digits
  --device-sn <DSN>         DeviceSN: 4..64 of A-Z a-z 0-9 - _ @ :
  --device-secret <secret>  DeviceSecret (authmode 1, static registration)
  --product-secret <secret> ProductSecret (authmode 2, dynamic registration: the device fetches its
                            DeviceSecret once and keeps it)
  --dynamic                 authmode 2 with the ProductSecret from the prompt or stdin
  --secret-stdin            read the secret from standard input (first line) and, with --wifi-ssid and
                            no --wifi-password, the Wi-Fi password from the second line
  Without a secret option or --secret-stdin, the secret is asked for on the terminal; nothing typed is shown.
  Secrets given as options end up in your shell history and in the process list (ps): prefer the prompt
  or --secret-stdin.

Connection:
  --url <url>               broker: mqtt://, mqtts://, ws:// or wss://host[:port][/path]
                            (UIoT Core: mqtts://mqtt-cn-sh2.iot.ucloud.cn:8883)
  --ca <file.pem>           CA certificate(s) the broker's certificate chains to (mqtts/wss only; default:
                            the UIoT Core root for the UIoT profile)
  --wifi-ssid <name>        Wi-Fi network (1..32 bytes)
  --wifi-password <pass>    its WPA2 passphrase (8..63 characters, or 64 hex digits; empty for open)
  --allow-plaintext         allow plain mqtt:// or ws:// to a host that is not this machine: the secret
                            then crosses the network in clear (the device warns at every connect);
                            without it such a URL is refused (loopback needs no opt-in)
  --keep-product-secret     dynamic registration: keep the ProductSecret on the device after it has
                            registered (by default it is deleted once the DeviceSecret is stored: it is
                            the secret of every device of the product)

Target:
  --target simulator        (default) the simulator's config store, a 0600 file
  --store <file>            that file (default ${SIMULATOR_CONFIG_FILE})
  --replace                 allow replacing (or dropping) a DeviceSecret already in the store
  --target esp32            an ESP32 NVS partition image to flash
  --out <file>              the image file (required), written 0600; an existing file is kept
                            (the command stops) unless --force is given. It holds the secrets in
                            clear: write it outside any repository and delete it once flashed
  --force                   replace the file --out names if it exists
  --size <bytes>            NVS partition size (default 0x${MODDABLE_ESP32_NVS.size.toString(16)}: Moddable's default partitions.csv)
  --offset <addr>           NVS partition offset for the printed flash command (default 0x${MODDABLE_ESP32_NVS.offset.toString(16)})
  --port <device>           serial port for the printed flash command

  -h, --help                this text

Examples:
  npm run provision -- --product-sn abcdefgh12345678 --device-sn thermostat-01 \\
      --url mqtts://mqtt-cn-sh2.iot.ucloud.cn:8883                  (asks for the DeviceSecret)
  pass show uiot/thermostat-01 | npm run provision -- --target esp32 --out ~/uiot-nvs/thermostat-01.bin --secret-stdin \\
      --product-sn abcdefgh12345678 --device-sn thermostat-01 --url mqtts://mqtt-cn-sh2.iot.ucloud.cn:8883 \\
      --wifi-ssid office                 (stdin: the DeviceSecret, then the Wi-Fi password)
`;

const OPTIONS = {
  target: { type: "string" },
  "product-sn": { type: "string" },
  "device-sn": { type: "string" },
  "device-secret": { type: "string" },
  "product-secret": { type: "string" },
  dynamic: { type: "boolean" },
  "secret-stdin": { type: "boolean" },
  url: { type: "string" },
  ca: { type: "string" },
  "wifi-ssid": { type: "string" },
  "wifi-password": { type: "string" },
  "allow-plaintext": { type: "boolean" },
  "keep-product-secret": { type: "boolean" },
  store: { type: "string" },
  replace: { type: "boolean" },
  out: { type: "string" },
  force: { type: "boolean" },
  size: { type: "string" },
  offset: { type: "string" },
  port: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]["type"] extends "string" ? string : boolean };

/** Parses the options; messages never repeat an argument's value (it may be a secret typed in the wrong place). */
function parse(args: string[]): Values {
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: true }) as typeof parsed;
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      const m = /'(--?[A-Za-z][A-Za-z0-9-]*)'/.exec(err.message);
      throw new ProvisionError(`unknown option${m ? ` ${m[1]}` : ""} (see --help)`);
    }
    if (err.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      const m = /'(--[a-z-]+)/.exec(err.message);
      const opt = m ? m[1] : "an option";
      const flag = m && (OPTIONS as Record<string, { type: string }>)[m[1].slice(2)]?.type === "boolean";
      throw new ProvisionError(
        flag ? `${opt} takes no value` : `${opt} needs a value (write --option=value for a value starting with "-")`,
      );
    }
    throw new ProvisionError("cannot read the options (see --help)");
  }
  if (parsed.positionals.length > 0)
    throw new ProvisionError(
      `unexpected argument (${parsed.positionals.length} value(s) without an option; not shown, in case one is a secret): every value needs its option, e.g. --device-sn DSN`,
    );
  return parsed.values as Values;
}

function parseNumber(text: string, option: string): number {
  const n = /^0x[0-9a-f]+$/i.test(text) ? parseInt(text.slice(2), 16) : /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n))
    throw new ProvisionError(`${option} must be a number (decimal or 0x hex), not "${text.slice(0, 20)}"`, option);
  return n;
}

interface Secrets {
  uiot?: string;
  wifi?: string;
}

/** Runs the command; returns the exit code (0 done, 1 could not write, 2 bad input, 130 cancelled). */
export async function runCli(args: string[], io: CliIo): Promise<number> {
  const secrets: Secrets = {};
  const out = (line = "") => io.stdout(`${line}\n`);
  const warn = (line: string) => io.stderr(`warning: ${line}\n`);
  try {
    const v = parse(args);
    if (v.help) {
      io.stdout(USAGE);
      return 0;
    }
    const target = v.target ?? "simulator";
    if (target !== "simulator" && target !== "esp32")
      throw new ProvisionError(`--target must be "simulator" or "esp32", not "${target.slice(0, 20)}"`, "--target");
    const only = (names: (keyof Values)[], t: string) => {
      for (const n of names) if (v[n] !== undefined) throw new ProvisionError(`--${n} is for --target ${t}`, `--${n}`);
    };
    if (target === "simulator") only(["out", "force", "size", "offset", "port"], "esp32");
    else only(["store", "replace"], "simulator");

    // ---- secrets ----
    const dynamic = v.dynamic === true || v["product-secret"] !== undefined;
    if (v["device-secret"] !== undefined && v["product-secret"] !== undefined)
      throw new ProvisionError("give either --device-secret (authmode 1) or --product-secret (authmode 2), not both");
    if (v.dynamic && v["device-secret"] !== undefined)
      throw new ProvisionError(
        "--dynamic means a ProductSecret (authmode 2); it cannot go with --device-secret",
        "--dynamic",
      );
    const secretName = dynamic ? "ProductSecret" : "DeviceSecret";
    const flagged = (["device-secret", "product-secret", "wifi-password"] as const).filter(
      (n) => v[n] !== undefined && v[n] !== "",
    );
    if (flagged.length)
      warn(
        `${flagged.map((n) => `--${n}`).join(" and ")} put${flagged.length === 1 ? "s" : ""} a secret in your shell history and in the process list (ps), where other users of this machine can see it; leave ${flagged.length === 1 ? "it" : "them"} out to be prompted (nothing is echoed) or use --secret-stdin`,
      );
    secrets.uiot = v["device-secret"] ?? v["product-secret"];
    secrets.wifi = v["wifi-password"];
    const needUiot = secrets.uiot === undefined;
    const needWifi = v["wifi-ssid"] !== undefined && secrets.wifi === undefined;
    let uiotSource = `--${dynamic ? "product" : "device"}-secret`;
    if (v["secret-stdin"]) {
      if (!needUiot && !needWifi)
        throw new ProvisionError("--secret-stdin was given but every secret came as an option", "--secret-stdin");
      if (io.stdin.isTTY)
        throw new ProvisionError(
          "--secret-stdin reads a pipe (e.g. `pass show x | npm run provision -- --secret-stdin ...`); on a terminal leave it out and you are prompted, with nothing echoed",
          "--secret-stdin",
        );
      const got = lines(await readAll(io.stdin));
      let at = 0;
      if (needUiot) {
        if (got.length <= at)
          throw new ProvisionError(
            `--secret-stdin: standard input is empty; its first line must be the ${secretName}`,
            "--secret-stdin",
          );
        secrets.uiot = got[at++];
        uiotSource = `the ${secretName} from stdin (line 1)`;
      }
      if (needWifi) {
        if (got.length <= at)
          throw new ProvisionError(
            `--secret-stdin: no line ${at + 1} on standard input for the Wi-Fi password of "${v["wifi-ssid"]}" (an empty line for an open network, or give --wifi-password)`,
            "--secret-stdin",
          );
        secrets.wifi = got[at++];
      }
    } else if (needUiot || needWifi) {
      if (!io.stdin.isTTY) {
        const what = needUiot ? `no ${secretName} was given` : `no Wi-Fi password was given for "${v["wifi-ssid"]}"`;
        throw new ProvisionError(
          `${what} and standard input is not a terminal to ask on: pipe ${needUiot && needWifi ? "them, one per line," : "it"} with --secret-stdin (or run this in a terminal to be prompted)`,
          "--secret-stdin",
        );
      }
      const who = v["product-sn"] && v["device-sn"] ? ` for ${v["product-sn"]}.${v["device-sn"]}` : "";
      if (needUiot) {
        secrets.uiot = await readHidden(`${secretName}${who} (typing is not shown): `, io.stdin, { write: io.stderr });
        uiotSource = `the ${secretName} typed at the prompt`;
      }
      if (needWifi)
        secrets.wifi = await readHidden(
          `Wi-Fi password for "${v["wifi-ssid"]}" (typing is not shown; empty for an open network): `,
          io.stdin,
          { write: io.stderr },
        );
    }

    // ---- the rest of the input ----
    const input: ProvisionInput = {
      productSN: v["product-sn"],
      deviceSN: v["device-sn"],
      url: v.url,
      wifiSsid: v["wifi-ssid"],
      wifiPassword: secrets.wifi,
      allowPlaintext: v["allow-plaintext"] === true,
      keepProductSecret: v["keep-product-secret"] === true,
    };
    if (dynamic) input.productSecret = secrets.uiot;
    else input.deviceSecret = secrets.uiot;
    if (v.ca !== undefined) {
      const file = path.resolve(io.cwd, v.ca);
      let text: string;
      try {
        if (fs.statSync(file).size > 256 * 1024)
          throw new ProvisionError(`${v.ca} is over 256 KB: not a CA certificate file`, "--ca");
        text = fs.readFileSync(file, "utf8");
      } catch (e) {
        if (e instanceof ProvisionError) throw e;
        throw new ProvisionError(
          `cannot read ${v.ca}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
          "--ca",
        );
      }
      input.ca = { text, file: v.ca };
    }
    let plan: ReturnType<typeof planProvisioning>;
    try {
      plan = planProvisioning(input);
    } catch (e) {
      if (
        e instanceof ProvisionError &&
        (e.option === "--device-secret" || e.option === "--product-secret") &&
        !uiotSource.startsWith("--")
      )
        throw new ProvisionError(e.message, uiotSource);
      throw e;
    }

    if (target === "esp32") {
      if (plan.caCerts.length > 1)
        throw new ProvisionError(
          `${v.ca} holds ${plan.caCerts.length} certificates; the ESP32's TLS socket trusts exactly one CA: give only the one that signed the broker's certificate (for UIoT Core, the platform root)`,
          "--ca",
        );
      if (isSecure(plan.endpoint.scheme) && plan.caCerts.length === 0 && !isUiotHost(plan.endpoint.host))
        warn(
          `the ESP32 has no built-in CA store: without --ca it can verify only UIoT Core brokers (with the platform root), so it will refuse to connect to ${plan.url}; give --ca with the CA that signed its certificate`,
        );
    }

    // ---- write ----
    if (target === "simulator") {
      let file = path.resolve(io.cwd, v.store ?? SIMULATOR_CONFIG_FILE);
      if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, "config.json");
      const notes = provisionSimulator(plan, file, { replace: v.replace === true });
      out(`Provisioned the simulator: ${file} (mode 0600)`);
      for (const l of describePlan(plan)) out(`  ${l}`);
      for (const n of notes) out(`note: ${n}`);
      return 0;
    }

    if (v.out === undefined || v.out === "")
      throw new ProvisionError(
        "--target esp32 needs --out <file> for the NVS partition image, e.g. --out ~/uiot-nvs/thermostat-01.bin (outside the repository: it holds the secrets in clear)",
        "--out",
      );
    const size = v.size === undefined ? MODDABLE_ESP32_NVS.size : parseNumber(v.size, "--size");
    const offset = v.offset === undefined ? MODDABLE_ESP32_NVS.offset : parseNumber(v.offset, "--offset");
    if (offset % NVS_PAGE_SIZE !== 0)
      throw new ProvisionError(
        `--offset must be a multiple of 0x1000 (a flash sector), not 0x${offset.toString(16)}`,
        "--offset",
      );
    const built = esp32Image(plan, { size });
    const file = path.resolve(io.cwd, v.out);
    writePrivateFile(file, built.image, { force: v.force === true });
    const pages = size / NVS_PAGE_SIZE;
    out(
      `Wrote ${v.out}: an ESP32 NVS partition image, ${size} bytes (0x${size.toString(16)}), ${built.pagesUsed} of ${pages} pages used (${built.entriesUsed} entries), namespaces ${built.namespaces.join(", ")}, mode 0600`,
    );
    for (const l of describePlan(plan)) out(`  ${l}`);
    out();
    out(
      `Flash it at the NVS partition (offset 0x${offset.toString(16)}, size 0x${size.toString(16)}${v.offset === undefined && v.size === undefined ? " in the Moddable SDK's default ESP32 partition table" : ""}):`,
    );
    out(`  ${flashCommand(v.out, offset, v.port)}`);
    if (!v.port) out("  (esptool finds the serial port itself; add --port /dev/ttyUSB0 or COM3 to choose)");
    warn(`${v.out} holds the secrets unencrypted: delete it once the device is flashed`);
    warn(
      "flashing it replaces the device's whole NVS partition: everything stored there is lost, including a DeviceSecret the device obtained by dynamic registration (the platform does not hand it out again)",
    );
    return 0;
  } catch (e) {
    let message: string;
    let code = 2;
    if (e instanceof ProvisionError) {
      message = e.option && !e.message.startsWith(e.option) ? `${e.option}: ${e.message}` : e.message;
      code = e.exitCode;
    } else {
      message = `unexpected failure: ${e instanceof Error ? e.message : String(e)}`;
      code = 1;
    }
    // Last line of defence: no message may carry a secret, whatever produced it.
    for (const s of [secrets.uiot, secrets.wifi]) if (s) message = scrub(message, s);
    io.stderr(`error: ${message}\n`);
    return code;
  }
}
