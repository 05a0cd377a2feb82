// The provisioning command as people run it: the `uiot-provision` bin and `npm run provision` in child processes,
// each target, stdin, options, a real terminal (through `script`, when it is installed) and failures. Then the
// check that matters most: no secret in any stdout or stderr, nor in any file other than the store and the image.
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FileConfigStore } from "../../../hosts/node/config-store";
import { CONFIG_KEYS } from "../../../src/device/config-keys";
import { UIOT_ROOT_CA_PEM } from "../../../src/uiot/platform";
import { trackChild } from "../../helpers/cleanup";
import { readNvsImage } from "./nvs-reader";

const REPO = path.join(import.meta.dirname, "..", "..", "..");
const BIN = path.join(REPO, "bin", "uiot-provision.mjs");
const PSN = "abcdefgh12345678";
const DSN = "thermostat-01";
const SECRET = "Qw3rtyUi0pAsDfGh";
const SECRET2 = "Mn8bVcXz7LkJhGfQ";
const PSECRET = "Pr0ductS3cretXyZ";
const WIFI = "correct-horse-battery";
const SECRETS = [SECRET, SECRET2, PSECRET, WIFI];
const URL = "mqtts://mqtt-cn-sh2.iot.ucloud.cn:8883";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "uiot-provision-cli-"));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));
fs.writeFileSync(path.join(work, "ca.pem"), UIOT_ROOT_CA_PEM);

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}
const outputs: Result[] = [];
/** Files that are meant to hold secrets. */
const vaults = new Set<string>();

/** Runs `command args` in `work`, writing `input` (or, for a terminal, the answers to its prompts). */
function runProcess(
  command: string,
  args: string[],
  input?: string | ((prompt: string) => string | undefined),
  cwd = work,
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    trackChild(child);
    let stdout = "",
      stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 30000);
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      if (typeof input === "function") {
        const answer = input(stdout);
        if (answer !== undefined) child.stdin.write(answer);
      }
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      const r = { code, stdout, stderr };
      outputs.push(r);
      resolve(r);
    });
    if (typeof input === "string") child.stdin.end(input);
    else if (input === undefined) child.stdin.end();
  });
}

const provision = (args: string[], input?: string) => runProcess(process.execPath, [BIN, ...args], input);
const base = ["--product-sn", PSN, "--device-sn", DSN, "--url", URL];

describe("uiot-provision in a child process", () => {
  it("--help through the bin and through npm run provision", async () => {
    const bin = await provision(["--help"]);
    expect(bin.code).toBe(0);
    expect(bin.stdout).toMatch(/^Usage: npm run provision -- \[options\]/);
    const npm = await runProcess(
      process.platform === "win32" ? "npm.cmd" : "npm",
      ["run", "-s", "provision", "--", "--help"],
      undefined,
      REPO,
    );
    expect(npm.code).toBe(0);
    expect(npm.stdout).toContain("--secret-stdin");
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8"));
    expect(pkg.bin["uiot-provision"]).toBe("bin/uiot-provision.mjs");
    expect(fs.statSync(BIN).mode & 0o111).not.toBe(0);
  });

  it("--target simulator with --secret-stdin (DeviceSecret, then the Wi-Fi password)", async () => {
    const r = await provision(
      [...base, "--ca", "ca.pem", "--wifi-ssid", "office", "--secret-stdin", "--store", "sim/config.json"],
      `${SECRET}\n${WIFI}\n`,
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    const file = path.join(work, "sim", "config.json");
    vaults.add(file);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const store = new FileConfigStore(file);
    expect(store.get(CONFIG_KEYS.deviceSecret)).toBe(SECRET);
    expect(store.get(CONFIG_KEYS.wifiPassword)).toBe(WIFI);
  });

  it("the default store is .simulator/config.json under the working directory", async () => {
    const r = await provision([...base, "--product-secret", PSECRET]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: --product-secret puts a secret in your shell history/);
    const file = path.join(work, ".simulator", "config.json");
    vaults.add(file);
    expect(new FileConfigStore(file).get(CONFIG_KEYS.productSecret)).toBe(PSECRET);
  });

  it("--target esp32 --out nvs.bin", async () => {
    const r = await provision(
      [
        ...base,
        "--target",
        "esp32",
        "--out",
        "nvs.bin",
        "--wifi-ssid",
        "office",
        "--wifi-password",
        WIFI,
        "--secret-stdin",
      ],
      `${SECRET2}\n`,
    );
    expect(r.code).toBe(0);
    const file = path.join(work, "nvs.bin");
    vaults.add(file);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(readNvsImage(new Uint8Array(fs.readFileSync(file))).namespaces.has("cfga0")).toBe(true);
    expect(r.stdout).toContain("esptool.py --chip esp32 write_flash 0x9000 nvs.bin");
    expect(r.stderr).toMatch(/--wifi-password puts a secret in your shell history/);
  });

  it("failures: a wrong secret, a refused overwrite, a stray value, a typo'd option", async () => {
    const short = await provision(
      [...base, "--secret-stdin", "--store", "sim/config.json"],
      `${SECRET2.slice(0, 14)}\n`,
    );
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(
      /error: the DeviceSecret from stdin \(line 1\): DeviceSecret \*\*\*\*hG has 14 characters/,
    );
    const overwrite = await provision([...base, "--secret-stdin", "--store", "sim/config.json"], `${SECRET2}\n`);
    expect(overwrite.code).toBe(2);
    expect(overwrite.stderr).toMatch(/already holds a DeviceSecret \(\*\*\*\*Gh\)/);
    const stray = await provision([...base, SECRET2]);
    expect(stray.code).toBe(2);
    const typo = await provision([...base, `--device-secet=${SECRET2}`]);
    expect(typo.stderr).toMatch(/unknown option --device-secet/);
    const noTty = await provision(base);
    expect(noTty.stderr).toMatch(/no DeviceSecret was given and standard input is not a terminal/);
  });

  const script = spawnSync("script", ["--version"], { encoding: "utf8" });
  it.skipIf(script.status !== 0)(
    "prompts on a real terminal (script(1) gives it one) without echoing what is typed",
    async () => {
      const cmd = [process.execPath, BIN, ...base, "--store", "tty/config.json", "--wifi-ssid", "office"]
        .map((a) => `'${a}'`)
        .join(" ");
      let step = 0;
      const r = await runProcess("script", ["-q", "-e", "-c", cmd, "/dev/null"], (seen) => {
        if (step === 0 && seen.includes("(typing is not shown): ")) return ((step = 1), `${SECRET}\r`);
        if (step === 1 && seen.includes("empty for an open network): ")) return ((step = 2), `${WIFI}\r`);
        return undefined;
      });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`DeviceSecret for ${PSN}.${DSN} (typing is not shown): `);
      expect(r.stdout).toMatch(/Provisioned the simulator/);
      const file = path.join(work, "tty", "config.json");
      vaults.add(file);
      expect(new FileConfigStore(file).get(CONFIG_KEYS.deviceSecret)).toBe(SECRET);
      expect(new FileConfigStore(file).get(CONFIG_KEYS.wifiPassword)).toBe(WIFI);
    },
  );

  it("no secret in any output, nor in any file but the stores and the image", () => {
    expect(outputs.length).toBeGreaterThanOrEqual(9);
    for (const r of outputs)
      for (const s of SECRETS) {
        expect(r.stdout, "stdout").not.toContain(s);
        expect(r.stderr, "stderr").not.toContain(s);
      }
    const walk = (d: string): string[] =>
      fs
        .readdirSync(d, { withFileTypes: true })
        .flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
    const files = walk(work);
    expect(files.filter((f) => vaults.has(f)).length).toBe(vaults.size);
    for (const f of files) {
      const text = fs.readFileSync(f).toString("latin1");
      const found = SECRETS.filter((s) => text.includes(s));
      if (vaults.has(f)) expect(found.length, `${f} holds its secrets`).toBeGreaterThan(0);
      else expect(found, `${path.relative(work, f)} holds a secret`).toEqual([]);
    }
  });
});
