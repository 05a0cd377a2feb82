// Where the tests find a built Moddable SDK: $MODDABLE when it names one whose Linux host tools are built, else the
// one tools/moddable/sdk.sh builds from ../shared/moddable (under $UIOT_SDK_HOME, default ~/.cache/uiot-firmware).
// Without one, the tests that need it skip, unless MODDABLE_REQUIRED is set (CI sets it): then they fail.
import { existsSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";

export const ROOT = join(import.meta.dirname, "..", "..");

function built(dir: string): boolean {
  const bin = join(dir, "build", "bin", "lin", "release");
  return ["mcconfig", "xsc", "xsl", "mcsim"].every((t) => existsSync(join(bin, t)));
}

/** The SDK's folder (what $MODDABLE names), or undefined when none is built. */
export function moddableSdk(): string | undefined {
  const env = process.env.MODDABLE;
  if (env && built(env)) return env;
  const home = process.env.UIOT_SDK_HOME ?? join(homedir(), ".cache", "uiot-firmware");
  if (!existsSync(home)) return undefined;
  for (const name of readdirSync(home).sort().reverse()) {
    const dir = join(home, name, "moddable");
    if (name.startsWith("moddable-sdk-") && existsSync(join(home, name, ".built")) && built(dir)) return dir;
  }
  return undefined;
}

/** True when a missing SDK must fail the run rather than skip (CI). */
export const SDK_REQUIRED = !!process.env.MODDABLE_REQUIRED;

/** The environment the SDK's tools run in: $MODDABLE, its tools and this project's tsc first on PATH. */
export function sdkEnv(sdk: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const path = [
    join(sdk, "build", "bin", "lin", "release"),
    join(ROOT, "node_modules", ".bin"),
    process.env.PATH ?? "",
  ].join(delimiter);
  return { ...process.env, MODDABLE: sdk, PATH: path, ...extra };
}

/** The message a test fails with when the SDK is required but missing. */
export const NO_SDK =
  "no built Moddable SDK: run `bash tools/moddable/sdk.sh` (it builds one from ../shared/moddable) or set $MODDABLE to a built SDK";
