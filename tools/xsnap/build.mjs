#!/usr/bin/env node
// npm run build:xs: makes sure @agoric/xsnap's XS engine (xsnap-worker) is built. npm builds it at install (the
// package's postinstall, allowed in package.json "allowScripts"); if that did not happen (scripts disabled, an
// older lock), this runs the package's own build again through npm. Needs a C compiler and make.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const pkg = join(import.meta.dirname, "..", "..", "node_modules", "@agoric", "xsnap");
const platform = process.platform === "darwin" ? "mac" : "lin";
const bin = join(pkg, "xsnap-native", "xsnap", "build", "bin", platform, "release", "xsnap-worker");

if (!existsSync(pkg)) {
  console.error("build:xs: @agoric/xsnap is not installed (npm ci)");
  process.exit(1);
}
if (!existsSync(bin)) {
  console.error("build:xs: building XS (npm rebuild @agoric/xsnap)");
  execFileSync("npm", ["rebuild", "@agoric/xsnap", "--foreground-scripts"], {
    stdio: "inherit",
    cwd: join(import.meta.dirname, "..", ".."),
  });
}
if (!existsSync(bin)) {
  console.error(`build:xs: ${bin} is still missing`);
  process.exit(1);
}
console.error(`build:xs: ${bin}`);
