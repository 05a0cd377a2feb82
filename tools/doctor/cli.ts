// `npm run doctor -- <url> [credentials]`: argument parsing, the run, the output and the exit status.
//   0 every step ok, warn or skipped · 1 a step failed · 2 the command line is wrong · 3 nothing failed, but TLS
//   verification was off (--insecure): that proves nothing about the real setup
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { loadDeviceConfig } from "../../src/device/config";
import { Identity } from "../../src/uiot/identity";
import { FileConfigStore } from "../../hosts/node/config-store";
import { runDoctor, type DoctorOptions, type Report } from "./doctor";
import { reportJson, reportText } from "./report";

export const USAGE = `Usage: npm run doctor -- <broker URL> [options]

Runs the troubleshooting order step by step: URL, DNS, port, TCP, TLS, credentials, MQTT CONNECT, a round trip,
and a watch for a second login that kicks this one. Exit status 0 when nothing failed, 1 when a step failed, 2 for
a wrong command line, 3 when nothing failed but TLS verification was off (--insecure), which proves nothing.

Generic broker (Mosquitto, EMQX):
  -u, --username <name>       -P, --password <password>   (or the DOCTOR_PASSWORD environment variable)
  -i, --client-id <id>        --topic <topic>              (round trip topic, default doctor/<client id>)
UIoT Core device:
  --product-sn <PSN> --device-sn <DSN> --device-secret <secret>   (or --product-secret for authmode 2)
  --device <store>            the simulator's config store (.simulator/config.json, what npm run provision writes):
                              identity, URL and CA from there (a URL given here wins)
Both:
  -k, --keepalive <s>         default 60, UIoT 300 (UIoT accepts 30..1200)
  --ca <file.pem>             trusted CA (repeatable); default: UIoT root for *.iot.ucloud.cn, else the system store
  --cert <file> --key <file>  client certificate for mutual TLS
  --server-name <name>        the name to verify the certificate against
  --insecure                  report certificate problems as warnings and go on (never for production); the run
                              then exits 3, not 0: a device verifies, so it shows nothing about the real setup
  --check-kick                open a second login with the same client id and check that it kicks the first
  --watch <ms>                how long to watch the connection for a kick (default 2000)
  --timeout <ms>              per step (default 5000)
  --json                      print one JSON object (through npm: npm run -s doctor -- --json, as npm prints
                              its own lines first on stdout without -s)
`;

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  env?: Record<string, string | undefined>;
  /** Extra options for runDoctor (tests). */
  extra?: Partial<DoctorOptions>;
}

class UsageError extends Error {}

function readPem(file: string, what: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(
      `cannot read the ${what} file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

function int(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^-?[0-9]+$/.test(text)) throw new UsageError(`${name} must be a whole number, not ${JSON.stringify(text)}`);
  return Number(text);
}

const DOCTOR_OPTIONS = {
  username: { type: "string", short: "u" },
  password: { type: "string", short: "P" },
  "client-id": { type: "string", short: "i" },
  keepalive: { type: "string", short: "k" },
  "product-sn": { type: "string" },
  "device-sn": { type: "string" },
  "device-secret": { type: "string" },
  "product-secret": { type: "string" },
  device: { type: "string" },
  ca: { type: "string", multiple: true },
  cert: { type: "string" },
  key: { type: "string" },
  "server-name": { type: "string" },
  insecure: { type: "boolean" },
  topic: { type: "string" },
  "check-kick": { type: "boolean" },
  watch: { type: "string" },
  timeout: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** Doctor options from the command line (throws UsageError). */
export function doctorOptions(
  argv: string[],
  env: Record<string, string | undefined> = {},
): { options: DoctorOptions; json: boolean; help: boolean } {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: typeof DOCTOR_OPTIONS }>>;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: DOCTOR_OPTIONS });
  } catch (e) {
    // Node's message quotes the option, never its value.
    throw new UsageError((e as Error).message);
  }
  const v = parsed.values;
  if (v.help) return { options: { url: "" }, json: false, help: true };
  if (parsed.positionals.length > 1)
    throw new UsageError(`one broker URL expected, got ${parsed.positionals.length} arguments`);
  let url = parsed.positionals[0];
  const options: DoctorOptions = { url: url ?? "" };
  let ca = (v.ca ?? []).map((f) => readPem(f, "CA"));

  if (v.device !== undefined) {
    let file = v.device;
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, "config.json");
    if (!fs.existsSync(file))
      throw new UsageError(
        `no device config store at ${file}: run npm run provision first (it writes .simulator/config.json)`,
      );
    const loaded = loadDeviceConfig(new FileConfigStore(file));
    if (!loaded.ok) throw new UsageError(`the device config store ${file}: ${loaded.message}`);
    options.identity = loaded.config.identity;
    url = url ?? loaded.config.url;
    if (ca.length === 0 && loaded.config.tls?.ca)
      ca = loaded.config.tls.ca.map((c) => (typeof c === "string" ? c : Buffer.from(c).toString("utf8")));
  }
  const uiotFlags =
    v["product-sn"] !== undefined ||
    v["device-sn"] !== undefined ||
    v["device-secret"] !== undefined ||
    v["product-secret"] !== undefined;
  if (uiotFlags) {
    if (options.identity)
      throw new UsageError("give either --device <store> or --product-sn/--device-sn/--device-secret, not both");
    try {
      options.identity = new Identity({
        productSN: v["product-sn"]!,
        deviceSN: v["device-sn"]!,
        deviceSecret: v["device-secret"],
        productSecret: v["product-secret"],
      });
    } catch (e) {
      throw new UsageError((e as Error).message); // identity messages never show the secret
    }
  }
  if (options.identity && (v.username !== undefined || v.password !== undefined || v["client-id"] !== undefined))
    throw new UsageError(
      "a UIoT device's user name, password and client id come from its identity: drop --username/--password/--client-id",
    );
  if (url === undefined)
    throw new UsageError("no broker URL: npm run doctor -- mqtts://host:8883 [options] (see --help)");
  options.url = url;
  if (v.username !== undefined) options.username = v.username;
  const password = v.password ?? env.DOCTOR_PASSWORD;
  if (password !== undefined) options.password = password;
  if (v["client-id"] !== undefined) options.clientId = v["client-id"];
  const keepalive = int(v.keepalive, "--keepalive");
  if (keepalive !== undefined) options.keepalive = keepalive;
  if (ca.length) {
    options.ca = ca;
    options.caFrom = v.ca?.length ? `--ca ${v.ca.join(", ")}` : `the device store ${v.device}`;
  }
  if (v.cert !== undefined) options.cert = readPem(v.cert, "client certificate");
  if (v.key !== undefined) options.key = readPem(v.key, "client key");
  if (v["server-name"] !== undefined) options.serverName = v["server-name"];
  if (v.insecure) options.insecure = true;
  if (v.topic !== undefined) options.topic = v.topic;
  if (v["check-kick"]) options.checkKick = true;
  const watch = int(v.watch, "--watch");
  if (watch !== undefined) options.watchMs = watch;
  const timeout = int(v.timeout, "--timeout");
  if (timeout !== undefined) {
    if (timeout < 100) throw new UsageError("--timeout is in milliseconds: give 100 or more");
    options.timeoutMs = timeout;
  }
  return { options, json: v.json === true, help: false };
}

/** Every secret the options hold, to mask in anything printed. */
function secrets(options: DoctorOptions): string[] {
  const list: string[] = [];
  if (options.password) list.push(options.password);
  if (options.identity) list.push(options.identity.revealSecret());
  return list.filter((s) => s.length > 0);
}

function mask(text: string, list: string[]): string {
  for (const s of list) if (text.indexOf(s) >= 0) text = text.split(s).join("****");
  return text;
}

/** Runs the doctor for `argv`; returns the exit status. */
export async function doctorCli(argv: string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<typeof doctorOptions>;
  try {
    parsed = doctorOptions(argv, io.env ?? {});
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    if (argv.includes("--json")) io.out(JSON.stringify({ ok: false, error: e.message }) + "\n");
    else io.err(`doctor: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.help) {
    io.out(USAGE);
    return 0;
  }
  // Through npm without -s, npm's own lines come first on stdout and the JSON alone does not parse.
  const env = io.env ?? {};
  if (parsed.json && env.npm_lifecycle_event === "doctor" && env.npm_config_loglevel !== "silent")
    io.err(
      "doctor: npm printed its own lines on stdout before this JSON: use `npm run -s doctor -- --json` for the JSON alone\n",
    );
  const report: Report = await runDoctor({ ...parsed.options, ...io.extra });
  const text = parsed.json ? reportJson(report) + "\n" : reportText(report);
  io.out(mask(text, secrets(parsed.options)));
  if (report.steps.some((s) => s.verdict === "fail")) return 1;
  return report.insecure ? 3 : 0;
}
