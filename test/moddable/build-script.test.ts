// scripts/mcconfig.mjs: the mcconfig command lines behind the npm build scripts, and the clear refusal when the
// Moddable SDK is missing.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script without types
import { plan } from "../../scripts/mcconfig.mjs";

const script = join(import.meta.dirname, "..", "..", "scripts", "mcconfig.mjs");

/** A fake SDK: $MODDABLE with xs/ and an mcconfig on PATH. */
function fakeSdk(): { MODDABLE: string; PATH: string } {
  const dir = mkdtempSync(join(tmpdir(), "fake-moddable-"));
  mkdirSync(join(dir, "xs"));
  mkdirSync(join(dir, "bin"));
  writeFileSync(join(dir, "bin", "mcconfig"), "#!/bin/sh\nexit 0\n");
  chmodSync(join(dir, "bin", "mcconfig"), 0o755);
  return { MODDABLE: dir, PATH: `${join(dir, "bin")}:${process.env.PATH}` };
}

describe("scripts/mcconfig.mjs", () => {
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
    expect(plan(["desktop", "build"], { MODDABLE: sdk.MODDABLE, PATH: "/nonexistent" }).error).toMatch(/mcconfig is not on PATH/);
    expect(plan(["esp32", "build"], { ...sdk }).error).toMatch(/IDF_PATH is not set.*xs-dev setup --device esp32/);
    expect(plan(["esp8266", "flash"], { ...sdk, ESP_BASE: "/nonexistent" }).error).toMatch(/xs-dev setup --device esp8266/);
    expect(plan(["esp32", "run"], { ...sdk }).error).toMatch(/use "flash"/);
  });

  it("builds the mcconfig command lines", () => {
    const sdk = fakeSdk();
    const esp32 = plan(["esp32", "build"], { ...sdk, IDF_PATH: "/idf" });
    expect(esp32.command.join(" ")).toMatch(/^-d -m -t build -o \S+\/build -p esp32 \S+\/manifest\.json$/);
    expect(plan(["esp32", "flash", "-p", "esp32/nodemcu", 'ssid=home'], { ...sdk, IDF_PATH: "/idf" }).command.join(" "))
      .toMatch(/^-d -m -o \S+ -p esp32\/nodemcu ssid=home \S+manifest\.json$/);
    expect(plan(["esp8266", "build", "--release"], { ...sdk, ESP_BASE: sdk.MODDABLE }).command.join(" ")).toMatch(/^-m -t build -o \S+ -p esp \S+manifest\.json$/);
    expect(plan(["desktop", "run"], { ...sdk }).command.join(" ")).toMatch(/^-d -m -o \S+ \S+manifest\.json$/);
  });
});
