// Provisioning, in process: every validation rule (a clear error naming the option and the rule, nothing written),
// both targets read back the way the firmware reads them (the Node host's FileConfigStore; the ESP32 host's
// PreferenceStore over the NVS image parsed by the independent reader), stored-secret protection, the no-echo
// prompt and --secret-stdin. No output ever contains a secret.
import { EventEmitter } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { ESP32 } from "../../../hosts/moddable/chips";
import { PreferenceStore, type Preferences } from "../../../hosts/moddable/preference-store";
import { FileConfigStore } from "../../../hosts/node/config-store";
import { runCli } from "../../../tools/provision/cli";
import { buildNvsImage, MODDABLE_ESP32_NVS } from "../../../tools/provision/nvs";
import { esp32PreferenceItems, flashCommand } from "../../../tools/provision/provision";
import { lines, readHidden } from "../../../tools/provision/secret-input";
import { loadDeviceConfig } from "../../../src/device/config";
import { CONFIG_KEYS, PREFERENCE_DOMAIN } from "../../../src/device/config-keys";
import { UIOT_ROOT_CA_PEM } from "../../../src/uiot/platform";
import { getTestCerts } from "../../helpers/certs";
import { readNvsImage } from "./nvs-reader";

const PSN = "abcdefgh12345678";
const DSN = "thermostat-01";
const SECRET = "Qw3rtyUi0pAsDfGh";
const SECRET2 = "Zx9cVbNm1LkJhGfD";
const PSECRET = "Pr0ductS3cretXyZ";
const WIFI = "correct-horse-battery";
const SECRETS = [SECRET, SECRET2, PSECRET, WIFI];
const URL = "mqtts://mqtt-cn-sh2.iot.ucloud.cn:8883";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "uiot-provision-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let dirs = 0;
function newDir(): string {
  const d = path.join(root, `d${dirs++}`);
  fs.mkdirSync(d);
  return d;
}

/** A terminal: records raw mode, lets the test type. */
class FakeTty extends EventEmitter {
  isTTY = true;
  raw: boolean[] = [];
  paused = true;
  setRawMode(mode: boolean): this {
    this.raw.push(mode);
    return this;
  }
  resume(): this {
    this.paused = false;
    return this;
  }
  pause(): this {
    this.paused = true;
    return this;
  }
  type(text: string): void {
    this.emit("data", Buffer.from(text));
  }
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  cwd: string;
}

async function run(
  args: string[],
  options: { stdin?: string | FakeTty; cwd?: string; onPrompt?: (tty: FakeTty, prompt: string) => void } = {},
): Promise<Run> {
  const cwd = options.cwd ?? newDir();
  let stdout = "",
    stderr = "";
  const stdin =
    options.stdin instanceof FakeTty
      ? options.stdin
      : Readable.from(options.stdin === undefined ? [] : [Buffer.from(options.stdin)]);
  const code = await runCli(args, {
    stdout: (t) => void (stdout += t),
    stderr: (t) => {
      stderr += t;
      if (options.onPrompt && stdin instanceof FakeTty && /not shown/.test(t)) options.onPrompt(stdin, t);
    },
    stdin,
    cwd,
  });
  for (const s of SECRETS) {
    expect(stdout, "a secret in stdout").not.toContain(s);
    expect(stderr, "a secret in stderr").not.toContain(s);
  }
  return { code, stdout, stderr, cwd };
}

const id = ["--product-sn", PSN, "--device-sn", DSN];
const base = [...id, "--url", URL];

function memoryPreferences(domains: Map<string, Map<string, Uint8Array>>): Preferences {
  return {
    get: (d, k) => {
      const v = domains.get(d)?.get(k);
      return v === undefined ? undefined : v.slice().buffer;
    },
    set: () => {
      throw new Error("read-only");
    },
    delete: () => undefined,
    keys: (d) => [...(domains.get(d)?.keys() ?? [])],
  };
}

/** What the ESP32 host reads from an image: NVS parsed independently, then the host's own PreferenceStore. */
function boardStore(image: Uint8Array): PreferenceStore {
  const read = readNvsImage(image);
  const domains = new Map<string, Map<string, Uint8Array>>();
  for (const [ns, values] of read.values) {
    const m = new Map<string, Uint8Array>();
    for (const [k, v] of values) {
      expect(v.type, `${ns}/${k} is a blob, as Preference.set(ArrayBuffer) writes`).toBe("blob");
      m.set(k, v.value as Uint8Array);
    }
    domains.set(ns, m);
  }
  return new PreferenceStore(memoryPreferences(domains), {
    domain: PREFERENCE_DOMAIN,
    limits: ESP32.preference,
    maxValueBytes: ESP32.maxConfigValue,
  });
}

describe("every rule: exit 2, one error naming the option and the rule, nothing written", () => {
  const cases: [string, string[], RegExp][] = [
    [
      "ProductSN missing",
      ["--device-sn", DSN, "--url", URL, "--device-secret", SECRET],
      /--product-sn: ProductSN is missing/,
    ],
    [
      "ProductSN too long",
      ["--product-sn", "a".repeat(17), "--device-sn", DSN, "--url", URL, "--device-secret", SECRET],
      /--product-sn: ProductSN "a{17}" has 17 characters; UIoT Core ProductSNs have at most 16/,
    ],
    [
      "ProductSN not alphanumeric",
      ["--product-sn", "abc-def", "--device-sn", DSN, "--url", URL, "--device-secret", SECRET],
      /--product-sn: .*only letters and digits \(character 4/,
    ],
    [
      "DeviceSN missing",
      ["--product-sn", PSN, "--url", URL, "--device-secret", SECRET],
      /--device-sn: DeviceSN is missing/,
    ],
    [
      "DeviceSN too short",
      ["--product-sn", PSN, "--device-sn", "abc", "--url", URL, "--device-secret", SECRET],
      /--device-sn: DeviceSN "abc" has 3 characters; UIoT Core DeviceSNs have 4 to 64/,
    ],
    [
      "DeviceSN too long",
      ["--product-sn", PSN, "--device-sn", "d".repeat(65), "--url", URL, "--device-secret", SECRET],
      /--device-sn: .*has 65 characters/,
    ],
    [
      "DeviceSN bad character",
      ["--product-sn", PSN, "--device-sn", "dev/001", "--url", URL, "--device-secret", SECRET],
      /--device-sn: .*only letters, digits and - _ @ : \(character 4/,
    ],
    [
      "DeviceSecret short",
      [...base, "--device-secret", SECRET.slice(0, 15)],
      /--device-secret: DeviceSecret \*\*\*\*fG has 15 characters; the platform generates 16: was it cut short\?/,
    ],
    [
      "DeviceSecret long",
      [...base, "--device-secret", SECRET.repeat(4) + "x"],
      /--device-secret: DeviceSecret \*\*\*\*hx has 65 characters; at most 63/,
    ],
    [
      "DeviceSecret blank",
      [...base, "--device-secret", `${SECRET} x`],
      /--device-secret: DeviceSecret .*space, control or non-ASCII character at position 17/,
    ],
    [
      "DeviceSecret non-ASCII",
      [...base, "--device-secret", `${SECRET}é`],
      /--device-secret: .*non-ASCII character at position 17/,
    ],
    [
      "both secrets",
      [...base, "--device-secret", SECRET, "--product-secret", PSECRET],
      /error: give either --device-secret \(authmode 1\) or --product-secret \(authmode 2\), not both/,
    ],
    [
      "--dynamic with a DeviceSecret",
      [...base, "--dynamic", "--device-secret", SECRET],
      /error: --dynamic means a ProductSecret/,
    ],
    ["URL missing", [...id, "--device-secret", SECRET], /--url: the broker URL is missing/],
    [
      "URL tcp://",
      [...id, "--url", "tcp://h:1883", "--device-secret", SECRET],
      /--url: unknown scheme "tcp:\/\/": write mqtt:\/\//,
    ],
    ["URL http://", [...id, "--url", "http://h", "--device-secret", SECRET], /--url: http:\/\/ is a web address/],
    [
      "URL with a password",
      [...id, "--url", `mqtt://u:${SECRET}@h`, "--device-secret", SECRET2],
      /--url: the broker URL contains '@'/,
    ],
    [
      "URL bad port",
      [...id, "--url", "mqtts://h:70000", "--device-secret", SECRET],
      /--url: the port "70000" is not a number from 1 to 65535/,
    ],
    [
      "URL path on mqtt",
      [...id, "--url", "mqtt://h/x", "--device-secret", SECRET],
      /--url: mqtt:\/\/ URLs have no path/,
    ],
    [
      "plain mqtt:// to another host",
      [...id, "--url", "mqtt://broker.example.com", "--device-secret", SECRET],
      /--url: mqtt:\/\/broker\.example\.com:1883 is plain mqtt:\/\/ to a host that is not this machine: the DeviceSecret would cross the network in clear, and the device refuses to boot with it\. Use mqtts:\/\/ or wss:\/\/ \(the broker's TLS port\), or, only on a network you trust, give --allow-plaintext/,
    ],
    [
      "plain ws:// to another host",
      [...id, "--url", "ws://10.0.0.7/mqtt", "--product-secret", PSECRET],
      /--url: ws:\/\/10\.0\.0\.7:8083\/mqtt is plain ws:\/\/ .*the ProductSecret would cross the network in clear.*give --allow-plaintext/,
    ],
    [
      "--keep-product-secret with a DeviceSecret",
      [...base, "--device-secret", SECRET, "--keep-product-secret"],
      /error: --keep-product-secret is for dynamic registration \(a ProductSecret\); this device has its DeviceSecret/,
    ],
    ["CA file missing", [...base, "--device-secret", SECRET, "--ca", "nope.pem"], /--ca: cannot read nope.pem: ENOENT/],
    [
      "CA with a plain URL",
      [...id, "--url", "mqtt://h", "--device-secret", SECRET, "--ca", "ca.pem"],
      /--ca: a CA was given but mqtt:\/\/h:1883 does not use TLS/,
    ],
    ["CA empty", [...base, "--device-secret", SECRET, "--ca", "empty.pem"], /--ca: empty.pem: the CA file is empty/],
    [
      "CA with a private key",
      [...base, "--device-secret", SECRET, "--ca", "key.pem"],
      /--ca: key.pem: the CA file contains a private key/,
    ],
    [
      "CA not PEM",
      [...base, "--device-secret", SECRET, "--ca", "text.pem"],
      /--ca: text.pem: the CA file holds no PEM certificate/,
    ],
    [
      "CA cut short",
      [...base, "--device-secret", SECRET, "--ca", "cut.pem"],
      /--ca: cut.pem: .*(without its END line|cut short)/,
    ],
    [
      "CA too large",
      [...base, "--device-secret", SECRET, "--ca", "huge.pem"],
      /--ca: the CA certificates take \d+ bytes as PEM; the device keeps at most 32000/,
    ],
    [
      "SSID too long",
      [...base, "--device-secret", SECRET, "--wifi-ssid", "s".repeat(33), "--wifi-password", WIFI],
      /--wifi-ssid: the Wi-Fi SSID "s{33}" is 33 bytes; an SSID is at most 32 bytes/,
    ],
    [
      "Wi-Fi password short",
      [...base, "--device-secret", SECRET, "--wifi-ssid", "office", "--wifi-password", "Secret7"],
      /--wifi-password: the Wi-Fi password has 7 characters; a WPA2 passphrase has 8 to 63/,
    ],
    [
      "Wi-Fi password 64 not hex",
      [...base, "--device-secret", SECRET, "--wifi-ssid", "office", "--wifi-password", "g".repeat(64)],
      /--wifi-password: .*64 hex digits/,
    ],
    [
      "Wi-Fi password without SSID",
      [...base, "--device-secret", SECRET, "--wifi-password", WIFI],
      /--wifi-password: a Wi-Fi password was given without --wifi-ssid/,
    ],
    [
      "unknown target",
      [...base, "--device-secret", SECRET, "--target", "esp8266"],
      /error: --target must be "simulator" or "esp32"/,
    ],
    [
      "esp32 without --out",
      [...base, "--device-secret", SECRET, "--target", "esp32"],
      /--out: --target esp32 needs --out <file>/,
    ],
    [
      "--out for the simulator",
      [...base, "--device-secret", SECRET, "--out", "x.bin"],
      /error: --out is for --target esp32/,
    ],
    [
      "--store for the esp32",
      [...base, "--device-secret", SECRET, "--target", "esp32", "--out", "x.bin", "--store", "s.json"],
      /error: --store is for --target simulator/,
    ],
    [
      "bad --size",
      [...base, "--device-secret", SECRET, "--target", "esp32", "--out", "x.bin", "--size", "5000"],
      /--size: cannot build the NVS image: the NVS partition size must be a positive multiple of 4096/,
    ],
    [
      "tiny --size",
      [...base, "--device-secret", SECRET, "--target", "esp32", "--out", "x.bin", "--size", "0x1000"],
      /--size: .*leaves no page for data/,
    ],
    [
      "bad --offset",
      [...base, "--device-secret", SECRET, "--target", "esp32", "--out", "x.bin", "--offset", "0x9100"],
      /error: --offset must be a multiple of 0x1000/,
    ],
    [
      "unknown option, value not echoed",
      [...base, `--device-secrt=${SECRET}`],
      /unknown option --device-secrt \(see --help\)/,
    ],
    [
      "a stray value, not echoed",
      [...base, "--device-secret", SECRET2, SECRET],
      /unexpected argument .*not shown, in case one is a secret/,
    ],
    ["a flag with a value", [...base, "--device-secret", SECRET, `--replace=${SECRET2}`], /--replace takes no value/],
  ];

  it.each(cases)("%s", async (_name, args, pattern) => {
    const cwd = newDir();
    fs.writeFileSync(path.join(cwd, "ca.pem"), UIOT_ROOT_CA_PEM);
    fs.writeFileSync(path.join(cwd, "empty.pem"), "\n");
    fs.writeFileSync(path.join(cwd, "key.pem"), (await getTestCerts()).ca.key);
    fs.writeFileSync(path.join(cwd, "text.pem"), "just some text\n");
    fs.writeFileSync(path.join(cwd, "cut.pem"), UIOT_ROOT_CA_PEM.slice(0, 500));
    fs.writeFileSync(path.join(cwd, "huge.pem"), UIOT_ROOT_CA_PEM.repeat(30));
    const before = fs.readdirSync(cwd).sort();
    const r = await run(args, { cwd });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("error: "));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(pattern);
    expect(fs.readdirSync(cwd).sort(), "nothing written").toEqual(before);
  });
});

describe("--target simulator", () => {
  it("writes the Node host's config store, 0600 in a 0700 directory, and the boot check accepts it", async () => {
    const cwd = newDir();
    fs.writeFileSync(path.join(cwd, "ca.pem"), `# UCloud root\n${UIOT_ROOT_CA_PEM}`);
    const r = await run([...base, "--ca", "ca.pem", "--wifi-ssid", "office", "--secret-stdin"], {
      cwd,
      stdin: `${SECRET}\n${WIFI}\n`,
    });
    expect(r.code).toBe(0);
    const file = path.join(cwd, ".simulator", "config.json");
    expect(r.stdout).toContain(`Provisioned the simulator: ${file} (mode 0600)`);
    expect(r.stdout).toMatch(/DeviceSecret {3}\*\*\*\*Gh \(authmode 1/);
    expect(r.stdout).toMatch(/Wi-Fi {10}"office", password \*\*\*\*ry/);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    const loaded = loadDeviceConfig(new FileConfigStore(file), { requireWifi: true });
    expect(loaded.ok).toBe(true);
    if (!loaded.ok) return;
    expect(loaded.config.identity.clientId).toBe(`${PSN}.${DSN}`);
    expect(loaded.config.identity.revealSecret()).toBe(SECRET);
    expect(loaded.config.url).toBe(URL);
    expect(loaded.config.tls?.ca?.[0]).toBe(UIOT_ROOT_CA_PEM.replace(/\r/g, ""));
    expect(loaded.config.wifi).toEqual({ ssid: "office", password: WIFI });
  });

  it("--store picks the file (or a directory's config.json)", async () => {
    const cwd = newDir();
    fs.mkdirSync(path.join(cwd, "dev"));
    expect((await run([...base, "--store", "dev", "--device-secret", SECRET], { cwd })).code).toBe(0);
    expect((await run([...base, "--store", "other/c.json", "--device-secret", SECRET], { cwd })).code).toBe(0);
    expect(new FileConfigStore(path.join(cwd, "dev", "config.json")).get(CONFIG_KEYS.deviceSecret)).toBe(SECRET);
    expect(new FileConfigStore(path.join(cwd, "other", "c.json")).get(CONFIG_KEYS.productSN)).toBe(PSN);
  });

  it("never replaces a stored DeviceSecret unless --replace", async () => {
    const cwd = newDir();
    const file = path.join(cwd, ".simulator", "config.json");
    expect((await run([...base, "--device-secret", SECRET], { cwd })).code).toBe(0);
    expect((await run([...base, "--device-secret", SECRET], { cwd })).code).toBe(0); // the same again: fine
    const other = await run([...base, "--device-secret", SECRET2], { cwd });
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(
      /--replace: .*already holds a DeviceSecret \(\*\*\*\*Gh\) and it differs from the DeviceSecret given; it is kept.*Pass --replace/,
    );
    const moved = await run(
      ["--product-sn", PSN, "--device-sn", "another-01", "--url", URL, "--device-secret", SECRET],
      { cwd },
    );
    expect(moved.stderr).toMatch(/it belongs to abcdefgh12345678\.thermostat-01, not abcdefgh12345678\.another-01/);
    expect(new FileConfigStore(file).get(CONFIG_KEYS.deviceSecret)).toBe(SECRET);
    expect(new FileConfigStore(file).get(CONFIG_KEYS.deviceSN)).toBe(DSN);
    const replaced = await run([...base, "--device-secret", SECRET2, "--replace"], { cwd });
    expect(replaced.code).toBe(0);
    expect(replaced.stdout).toMatch(/note: the stored DeviceSecret \(\*\*\*\*Gh\) was replaced/);
    expect(new FileConfigStore(file).get(CONFIG_KEYS.deviceSecret)).toBe(SECRET2);
  });

  it("authmode 2 keeps a DeviceSecret already registered for the same device", async () => {
    const cwd = newDir();
    const file = path.join(cwd, ".simulator", "config.json");
    expect((await run([...base, "--device-secret", SECRET], { cwd })).code).toBe(0);
    const r = await run([...base, "--product-secret", PSECRET], { cwd });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ProductSecret {2}\*\*\*\*yZ \(authmode 2/);
    expect(r.stdout).toMatch(/note: a DeviceSecret \(\*\*\*\*Gh\) from an earlier registration is kept/);
    const loaded = loadDeviceConfig(new FileConfigStore(file));
    expect(loaded.ok && loaded.config.identity.authmode).toBe(1);
    const again = await run([...base, "--product-secret", PSECRET, "--replace"], { cwd });
    expect(again.stdout).toMatch(
      /note: the stored DeviceSecret \(\*\*\*\*Gh\) was deleted: the device registers again/,
    );
    const after = loadDeviceConfig(new FileConfigStore(file));
    expect(after.ok && after.config.identity.authmode).toBe(2);
    // back to authmode 1: the ProductSecret does not linger
    expect((await run([...base, "--device-secret", SECRET], { cwd })).code).toBe(0);
    expect(new FileConfigStore(file).get(CONFIG_KEYS.productSecret)).toBeUndefined();
  });

  it("--allow-plaintext and --keep-product-secret: written as 1, shown, and read by the boot check; loopback needs no opt-in", async () => {
    const cwd = newDir();
    const file = path.join(cwd, ".simulator", "config.json");
    const r = await run(
      [
        ...id,
        "--url",
        "mqtt://broker.example.com",
        "--product-secret",
        PSECRET,
        "--allow-plaintext",
        "--keep-product-secret",
      ],
      { cwd },
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /plain text {5}allowed \(--allow-plaintext\): the ProductSecret crosses the network in clear/,
    );
    expect(r.stdout).toMatch(/ProductSecret {2}kept on the device after registration \(--keep-product-secret\)/);
    const s = new FileConfigStore(file);
    expect([s.get(CONFIG_KEYS.allowPlaintext), s.get(CONFIG_KEYS.keepProductSecret)]).toEqual(["1", "1"]);
    const loaded = loadDeviceConfig(s);
    expect(loaded.ok && [loaded.config.allowPlaintext, loaded.config.keepProductSecret]).toEqual([true, true]);
    // Provisioned again without them: both switches go (settings not given again are removed).
    const again = await run([...id, "--url", "mqtt://127.0.0.1:1883", "--product-secret", PSECRET], { cwd });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(
      /ProductSecret {2}deleted from the device once it has registered and stored its DeviceSecret/,
    );
    expect(again.stdout).toMatch(/note: removed settings not given this time: uiot_plaintext, uiot_keep_psec/);
    const t = new FileConfigStore(file);
    expect([t.get(CONFIG_KEYS.allowPlaintext), t.get(CONFIG_KEYS.keepProductSecret)]).toEqual([undefined, undefined]);
  });

  it("settings not given again are removed (no stale CA or Wi-Fi)", async () => {
    const cwd = newDir();
    const file = path.join(cwd, ".simulator", "config.json");
    fs.writeFileSync(path.join(cwd, "ca.pem"), UIOT_ROOT_CA_PEM.repeat(4)); // two parts
    expect(
      (
        await run([...base, "--device-secret", SECRET, "--ca", "ca.pem", "--wifi-ssid", "x", "--wifi-password", WIFI], {
          cwd,
        })
      ).code,
    ).toBe(0);
    expect(new FileConfigStore(file).get("uiot_ca1")).toBeDefined();
    const r = await run([...base, "--device-secret", SECRET], { cwd });
    expect(r.stdout).toMatch(
      /note: removed settings not given this time: wifi\.ssid, wifi\.password, uiot_ca, uiot_ca1/,
    );
    const s = new FileConfigStore(file);
    for (const k of ["uiot_ca", "uiot_ca1", "wifi.ssid", "wifi.password"]) expect(s.get(k)).toBeUndefined();
  });
});

describe("--target esp32", () => {
  it("an NVS image the ESP32 host's PreferenceStore reads back as the boot check wants it", async () => {
    const cwd = newDir();
    fs.writeFileSync(path.join(cwd, "ca.pem"), UIOT_ROOT_CA_PEM);
    const r = await run(
      [...base, "--target", "esp32", "--out", "nvs.bin", "--ca", "ca.pem", "--wifi-ssid", "office", "--secret-stdin"],
      { cwd, stdin: `${SECRET}\r\n${WIFI}\r\n` },
    );
    expect(r.code).toBe(0);
    const file = path.join(cwd, "nvs.bin");
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const image = new Uint8Array(fs.readFileSync(file));
    expect(image.length).toBe(MODDABLE_ESP32_NVS.size);
    const read = readNvsImage(image);
    expect([...read.namespaces.keys()]).toEqual(["cfga0"]);
    expect(read.pages.filter((p) => p.state === "EMPTY").length).toBeGreaterThanOrEqual(2);
    const loaded = loadDeviceConfig(boardStore(image), { requireWifi: true });
    expect(loaded.ok).toBe(true);
    if (!loaded.ok) return;
    expect(loaded.config.identity.revealSecret()).toBe(SECRET);
    expect(loaded.config.url).toBe(URL);
    expect(loaded.config.tls?.ca).toHaveLength(1);
    expect(loaded.config.wifi).toEqual({ ssid: "office", password: WIFI });
    expect(r.stdout).toMatch(/Wrote nvs\.bin: an ESP32 NVS partition image, 24576 bytes \(0x6000\), 1 of 6 pages used/);
    expect(r.stdout).toContain("offset 0x9000, size 0x6000 in the Moddable SDK's default ESP32 partition table");
    expect(r.stdout).toContain("  esptool.py --chip esp32 write_flash 0x9000 nvs.bin\n");
    expect(r.stderr).toMatch(/warning: nvs\.bin holds the secrets unencrypted/);
    expect(r.stderr).toMatch(/warning: flashing it replaces the device's whole NVS partition/);
  });

  it("one CA only (the device's TLS socket trusts exactly one); a warning when a non-UIoT TLS broker gets none", async () => {
    const cwd = newDir();
    fs.writeFileSync(path.join(cwd, "chain.pem"), UIOT_ROOT_CA_PEM + (await getTestCerts()).ca.cert);
    const two = await run(
      [...base, "--target", "esp32", "--out", "nvs.bin", "--ca", "chain.pem", "--device-secret", SECRET],
      { cwd },
    );
    expect(two.code).toBe(2);
    expect(two.stderr).toMatch(
      /error: --ca: chain.pem holds 2 certificates; the ESP32's TLS socket trusts exactly one CA/,
    );
    const other = await run(
      [
        "--product-sn",
        PSN,
        "--device-sn",
        DSN,
        "--url",
        "mqtts://broker.example.com",
        "--target",
        "esp32",
        "--out",
        "nvs.bin",
        "--device-secret",
        SECRET,
      ],
      { cwd },
    );
    expect(other.code).toBe(0);
    expect(other.stderr).toMatch(
      /warning: the ESP32 has no built-in CA store: without --ca .* refuse to connect to mqtts:\/\/broker.example.com:8883/,
    );
    const uiot = await run([...base, "--target", "esp32", "--out", "nvs.bin", "--force", "--device-secret", SECRET], {
      cwd,
    });
    expect(uiot.code).toBe(0);
    expect(uiot.stderr).not.toMatch(/no built-in CA store/);
  });

  it("never replaces an existing file unless --force (then atomically, a symbolic link replaced, not followed)", async () => {
    const cwd = newDir();
    const args = [...base, "--target", "esp32", "--device-secret", SECRET];
    fs.writeFileSync(path.join(cwd, "config.json"), '{"uiot_dsecret":"the only copy of a secret"}');
    const kept = await run([...args, "--out", "config.json"], { cwd });
    expect(kept.code).toBe(2);
    expect(kept.stderr).toMatch(
      /error: --out: .*config\.json already exists and is kept: it may be another device's image or a file you need\. Choose another file, or pass --force to replace it\n$/,
    );
    expect(fs.readFileSync(path.join(cwd, "config.json"), "utf8")).toBe('{"uiot_dsecret":"the only copy of a secret"}');
    expect(kept.stdout).toBe("");

    fs.mkdirSync(path.join(cwd, "dir"));
    expect((await run([...args, "--out", "dir"], { cwd })).stderr).toMatch(
      /error: --out: .*dir is a directory: give a file name for the image/,
    );
    fs.writeFileSync(path.join(cwd, "victim"), "victim");
    fs.symlinkSync(path.join(cwd, "victim"), path.join(cwd, "link.bin"));
    expect((await run([...args, "--out", "link.bin"], { cwd })).stderr).toMatch(
      /link\.bin already exists \(a symbolic link\) and is kept/,
    );

    const forced = await run([...args, "--out", "config.json", "--force"], { cwd });
    expect(forced.code).toBe(0);
    expect(fs.statSync(path.join(cwd, "config.json")).size).toBe(MODDABLE_ESP32_NVS.size);
    expect((await run([...args, "--out", "link.bin", "--force"], { cwd })).code).toBe(0);
    expect(fs.lstatSync(path.join(cwd, "link.bin")).isFile()).toBe(true);
    expect(fs.readFileSync(path.join(cwd, "victim"), "utf8")).toBe("victim");
    expect(fs.readdirSync(cwd).sort()).toEqual(["config.json", "dir", "link.bin", "victim"]); // no temporary file left

    const fresh = await run([...args, "--out", "sub/new.bin"], { cwd });
    expect(fresh.code).toBe(0);
    expect(fs.statSync(path.join(cwd, "sub")).mode & 0o777).toBe(0o700);
    expect((await run([...base, "--device-secret", SECRET, "--force"], { cwd })).stderr).toMatch(
      /error: --force is for --target esp32/,
    );
  });

  it("values over one preference entry: PreferenceStore's second chunk lands in namespace cfga1, and reads back", () => {
    const long = "-".repeat(4000); // a 4000-byte value: 6 bytes of record header push it past one 4000-byte entry
    const items = esp32PreferenceItems([
      [CONFIG_KEYS.productSN, PSN],
      ["uiot_big", long],
    ]);
    expect(items.map((i) => `${i.namespace}/${i.key}`)).toEqual(["cfga0/uiot_big", "cfga0/uiot_psn", "cfga1/uiot_big"]);
    const image = buildNvsImage(items).image;
    expect([...readNvsImage(image).namespaces.keys()]).toEqual(["cfga0", "cfga1"]);
    const store = boardStore(image);
    expect(store.get("uiot_big")).toBe(long);
    expect(store.get(CONFIG_KEYS.productSN)).toBe(PSN);
  });

  it("--size, --offset and --port shape the image and the printed command", async () => {
    const r = await run([
      ...base,
      "--target",
      "esp32",
      "--out",
      "my nvs.bin",
      "--size",
      "0x5000",
      "--offset",
      "0x11000",
      "--port",
      "/dev/ttyUSB0",
      "--device-secret",
      SECRET,
    ]);
    expect(r.code).toBe(0);
    expect(fs.statSync(path.join(r.cwd, "my nvs.bin")).size).toBe(0x5000);
    expect(r.stdout).toContain("(offset 0x11000, size 0x5000):");
    expect(r.stdout).toContain("  esptool.py --chip esp32 --port /dev/ttyUSB0 write_flash 0x11000 'my nvs.bin'\n");
    expect(flashCommand("nvs.bin")).toBe("esptool.py --chip esp32 write_flash 0x9000 nvs.bin");
  });
});

describe("secrets: options warn, stdin, the prompt", () => {
  it("a secret given as an option works, with the shell-history warning", async () => {
    const r = await run([...base, "--device-secret", SECRET, "--wifi-ssid", "x", "--wifi-password", WIFI]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      /^warning: --device-secret and --wifi-password put a secret in your shell history and in the process list \(ps\)/,
    );
  });

  it("--secret-stdin: from a pipe only, one line per secret", async () => {
    expect((await run([...base, "--secret-stdin"], { stdin: "" })).stderr).toMatch(
      /standard input is empty; its first line must be the DeviceSecret/,
    );
    expect((await run([...base, "--secret-stdin", "--wifi-ssid", "x"], { stdin: `${SECRET}\n` })).stderr).toMatch(
      /no line 2 on standard input for the Wi-Fi password of "x"/,
    );
    expect((await run([...base, "--secret-stdin"], { stdin: new FakeTty() })).stderr).toMatch(
      /--secret-stdin reads a pipe/,
    );
    expect((await run([...base, "--secret-stdin", "--device-secret", SECRET])).stderr).toMatch(
      /every secret came as an option/,
    );
    const bad = await run([...base, "--secret-stdin"], { stdin: `${SECRET.slice(0, 12)}\n` });
    expect(bad.stderr).toMatch(
      /^error: the DeviceSecret from stdin \(line 1\): DeviceSecret \*\*\*\*As has 12 characters/m,
    );
    const open = await run([...base, "--secret-stdin", "--wifi-ssid", "cafe"], { stdin: `${SECRET}\n\n` });
    expect(open.code).toBe(0);
    expect(open.stdout).toContain('"cafe", password none (open network)');
    expect(lines("a\r\nb\n")).toEqual(["a", "b"]);
    expect(lines("a")).toEqual(["a"]);
    expect(lines("\n")).toEqual([""]);
  });

  it("no secret and no terminal: says how to give it", async () => {
    const r = await run(base);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /no DeviceSecret was given and standard input is not a terminal to ask on: pipe it with --secret-stdin/,
    );
  });

  it("prompts on a terminal in raw mode for the secret and the Wi-Fi password, echoing nothing", async () => {
    const tty = new FakeTty();
    const prompts: string[] = [];
    const r = await run([...base, "--wifi-ssid", "office", "--dynamic"], {
      stdin: tty,
      onPrompt: (t, prompt) => {
        prompts.push(prompt);
        setImmediate(() => t.type(prompts.length === 1 ? `${PSECRET}\r` : `${WIFI}\r`));
      },
    });
    expect(r.code).toBe(0);
    expect(prompts).toEqual([
      `ProductSecret for ${PSN}.${DSN} (typing is not shown): `,
      'Wi-Fi password for "office" (typing is not shown; empty for an open network): ',
    ]);
    expect(r.stderr).toBe(prompts.map((p) => `${p}\n`).join("")); // the prompts, a newline each, nothing typed
    expect(tty.raw).toEqual([true, false, true, false]);
    const loaded = loadDeviceConfig(new FileConfigStore(path.join(r.cwd, ".simulator", "config.json")));
    expect(loaded.ok && loaded.config.identity.revealSecret()).toBe(PSECRET);
  });

  it("the line editor: backspace, Ctrl-U, escape sequences; Ctrl-C and Ctrl-D cancel and restore the terminal", async () => {
    const read = async (keys: string[]) => {
      const tty = new FakeTty();
      let shown = "";
      const p = readHidden("? ", tty, { write: (t: string) => void (shown += t) });
      for (const k of keys) tty.type(k);
      const result = await p.then(
        (v) => ({ v }),
        (e: Error & { exitCode?: number }) => ({ e }),
      );
      expect(tty.raw).toEqual([true, false]);
      expect(tty.paused).toBe(true);
      expect(tty.listenerCount("data")).toBe(0);
      expect(shown).toBe("? \n");
      return result;
    };
    expect(await read(["abc", "\x7f", "d\r"])).toEqual({ v: "abd" });
    expect(await read(["wrong\x15right", "\n"])).toEqual({ v: "right" });
    expect(await read(["a\x1b[A", "b\b", "c\r"])).toEqual({ v: "ac" });
    expect(await read(["x", "y\x04"])).toEqual({ v: "xy" });
    const cancelled = await read(["abc\x03"]);
    expect("e" in cancelled && cancelled.e.exitCode).toBe(130);
    expect("e" in (await read(["\x04"]))).toBe(true);
    await expect(readHidden("? ", Readable.from([]), { write: () => undefined })).rejects.toThrow(/not a terminal/);
  });

  it("Ctrl-C at the prompt exits 130 and writes nothing", async () => {
    const tty = new FakeTty();
    const r = await run(base, { stdin: tty, onPrompt: (t) => setImmediate(() => t.type("Qw3\x03")) });
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/error: cancelled/);
    expect(fs.existsSync(path.join(r.cwd, ".simulator"))).toBe(false);
  });
});

describe("--help", () => {
  it("documents every option, the stdin and prompt options and the shell-history warning", async () => {
    const r = await run(["--help"]);
    expect(r.code).toBe(0);
    for (const o of [
      "--product-sn",
      "--device-sn",
      "--device-secret",
      "--product-secret",
      "--dynamic",
      "--secret-stdin",
      "--url",
      "--ca",
      "--wifi-ssid",
      "--wifi-password",
      "--allow-plaintext",
      "--keep-product-secret",
      "--target simulator",
      "--store",
      "--replace",
      "--target esp32",
      "--out",
      "--size",
      "--offset",
      "--port",
    ])
      expect(r.stdout).toContain(o);
    expect(r.stdout).toMatch(/shell history/);
    expect(r.stdout).toContain(".simulator/config.json");
  });
});
