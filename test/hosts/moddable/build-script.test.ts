// tools/moddable/mcconfig.mjs: the mcconfig command lines behind the npm build scripts (release by default, --debug for a
// debug build), secrets masked in what it prints, and the clear refusal when the Moddable SDK is missing or older
// than 5.3.2 (fake SDK trees of each version; the real SDK's tools/VERSION when one is built).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script without types
import { checkSdkVersion, maskSecrets, plan } from "../../../tools/moddable/mcconfig.mjs";

const script = join(import.meta.dirname, "..", "..", "..", "tools", "moddable", "mcconfig.mjs");
/** Where tools/moddable/sdk.sh builds the SDK for the tests. */
const BUILT_SDK = join(homedir(), ".cache", "uiot-firmware", "moddable-sdk-8.2.3", "moddable");

/**
 * A fake SDK: $MODDABLE with tools/xsnap/, tools/VERSION saying `version` (none when null), the TLS certificate code
 * with or without the subjectAltName check of 5.3.2 (`san`), and an mcconfig on PATH that records its arguments.
 */
function fakeSdk(version: string | null = "8.2.3", san = true): { MODDABLE: string; PATH: string } {
  const dir = mkdtempSync(join(tmpdir(), "fake-moddable-"));
  mkdirSync(join(dir, "xs"));
  mkdirSync(join(dir, "bin"));
  mkdirSync(join(dir, "tools"));
  mkdirSync(join(dir, "modules", "crypt", "ssl"), { recursive: true });
  if (version !== null) writeFileSync(join(dir, "tools", "VERSION"), `${version}\n`);
  writeFileSync(
    join(dir, "modules", "crypt", "ssl", "ssl_cert.js"),
    san ? "const names = X509.decodeSAN(certs[i]);\n" : "x509 = X509.decode(certs[i]);\n",
  );
  writeFileSync(join(dir, "bin", "mcconfig"), `#!/bin/sh\nprintf '%s\\n' "$@" > "${join(dir, "args")}"\nexit 0\n`);
  chmodSync(join(dir, "bin", "mcconfig"), 0o755);
  return { MODDABLE: dir, PATH: `${join(dir, "bin")}:${process.env.PATH}` };
}

describe("tools/moddable/mcconfig.mjs", () => {
  it("says how to install the SDK when $MODDABLE is not set", () => {
    const env = { ...process.env };
    delete env.MODDABLE;
    const r = spawnSync(process.execPath, [script, "esp32", "build"], { env, encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/\$MODDABLE is not set/);
    expect(r.stderr).toMatch(/npm install -g xs-dev/);
    expect(r.stderr).toMatch(/xs-dev setup --device esp32/);
  });

  it("says so when mcconfig is not on PATH, or ESP-IDF is not set up", () => {
    const sdk = fakeSdk();
    expect(plan(["desktop", "build"], { MODDABLE: sdk.MODDABLE, PATH: "/nonexistent" }).error).toMatch(
      /mcconfig is not on PATH/,
    );
    expect(plan(["esp32", "build"], { ...sdk }).error).toMatch(/IDF_PATH is not set.*xs-dev setup --device esp32/);
    expect(plan(["esp8266", "flash"], { ...sdk, ESP_BASE: "/nonexistent" }).error).toMatch(
      /xs-dev setup --device esp8266/,
    );
    expect(plan(["esp32", "run"], { ...sdk }).error).toMatch(/use "flash"/);
  });

  it("builds the mcconfig command lines: release firmware by default, debug with --debug", () => {
    const sdk = fakeSdk();
    const esp32 = plan(["esp32", "build"], { ...sdk, IDF_PATH: "/idf" });
    expect(esp32.command.join(" ")).toMatch(/^-m -t build -o \S+\/build -p esp32 \S+\/manifest\.json$/);
    expect(
      plan(["esp32", "flash", "-p", "esp32/nodemcu", "ssid=home"], { ...sdk, IDF_PATH: "/idf" }).command.join(" "),
    ).toMatch(/^-m -o \S+ -p esp32\/nodemcu ssid=home \S+manifest\.json$/);
    expect(plan(["esp32", "flash", "--debug"], { ...sdk, IDF_PATH: "/idf" }).command.join(" ")).toMatch(
      /^-d -m -o \S+ -p esp32 \S+manifest\.json$/,
    );
    expect(plan(["esp8266", "build", "--release"], { ...sdk, ESP_BASE: sdk.MODDABLE }).command.join(" ")).toMatch(
      /^-m -t build -o \S+ -p esp \S+manifest\.json$/,
    );
    expect(plan(["desktop", "run"], { ...sdk }).command.join(" ")).toMatch(/^-m -o \S+ \S+manifest\.json$/);
    expect(plan(["desktop", "run", "--debug"], { ...sdk }).command.join(" ")).toMatch(
      /^-d -m -o \S+ \S+manifest\.json$/,
    );
  });

  it("prints the command with secrets masked, and hands mcconfig the real values", () => {
    expect(
      maskSecrets(["ssid=home", "password=Vu7Qe2Nx9Ra4Lk", "WIFI_PSK=abc", "-p", "esp32/x", "keepalive=30"]),
    ).toEqual(["ssid=home", "password=****", "WIFI_PSK=****", "-p", "esp32/x", "keepalive=30"]);
    const sdk = fakeSdk();
    const r = spawnSync(process.execPath, [script, "desktop", "build", "ssid=home", "password=Vu7Qe2Nx9Ra4Lk"], {
      env: { ...process.env, ...sdk },
      encoding: "utf8",
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^Moddable SDK 8\.2\.3; release build \(--debug for a debug build with xsbug\)\nmcconfig -m -t build -o \S+ ssid=home password=\*\*\*\* \S+manifest\.json\n$/,
    );
    expect(r.stdout + r.stderr).not.toContain("Vu7Qe2");
    expect(readFileSync(join(sdk.MODDABLE, "args"), "utf8")).toContain("password=Vu7Qe2Nx9Ra4Lk");
  });

  it("refuses a Moddable SDK older than 5.3.2, naming the version found", () => {
    const refused = (version: string | null, san = true) =>
      plan(["desktop", "build"], { ...fakeSdk(version, san) }).error as string | undefined;
    for (const v of ["4.9.5", "5.2.0", "3.9.4", "0.1.0"])
      expect(refused(v)).toMatch(
        new RegExp(
          `^the Moddable SDK in \\$MODDABLE is ${v.replace(/\./g, "\\.")}; this firmware needs 5\\.3\\.2 or newer: before it, the SDK's TLS does not check that the server's certificate is for the host name dialled.*Update the SDK`,
        ),
      );
    // 5.3.0 to 5.3.3 all say "5.3.0" in tools/VERSION: the TLS code tells 5.3.0/5.3.1 from 5.3.2/5.3.3.
    expect(refused("5.3.0", false)).toMatch(
      /is 5\.3\.0 \(tools\/VERSION says 5\.3\.0, which 5\.3\.0 to 5\.3\.3 all say, and modules\/crypt\/ssl\/ssl_cert\.js has no subjectAltName check: 5\.3\.0 or 5\.3\.1\); this firmware needs 5\.3\.2 or newer/,
    );
    expect(refused(null)).toMatch(
      /cannot tell the Moddable SDK's version: \S+tools\/VERSION is missing .* needs 5\.3\.2 or newer/,
    );
    expect(refused("garbage")).toMatch(/cannot read the Moddable SDK's version from \S+ \("garbage"\)/);
    for (const v of ["5.3.0", "5.4.0", "8.2.3", "10.0.0"]) expect(refused(v), v).toBeUndefined();
    // And through the npm script's entry: exit 1 with the message, mcconfig not run.
    const sdk = fakeSdk("5.1.0");
    const r = spawnSync(process.execPath, [script, "desktop", "build"], {
      env: { ...process.env, ...sdk },
      encoding: "utf8",
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/the Moddable SDK in \$MODDABLE is 5\.1\.0; this firmware needs 5\.3\.2 or newer/);
    expect(existsSync(join(sdk.MODDABLE, "args"))).toBe(false);
  });

  it.skipIf(!process.env.MODDABLE && !existsSync(BUILT_SDK))(
    "reads the version of a real SDK checkout (tools/VERSION)",
    () => {
      const sdk = process.env.MODDABLE ?? BUILT_SDK;
      const v = checkSdkVersion(sdk) as { version?: string; error?: string };
      expect(v.error).toBeUndefined();
      expect(v.version).toMatch(/^\d+\.\d+\.\d+$/);
    },
  );
});
