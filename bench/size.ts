/**
 * Code size of the codec, as a proxy for its XS bytecode size on the device (target about 4 KB of bytecode; the
 * Moddable SDK's own MQTT clients compile to about 9.4 KB). Ours: src/mqtt/codec.ts bundled with esbuild (bundle,
 * minify, ESM). Peer: mqtt-packet's entry bundled the same way for platform node (Node built-ins left out, its npm
 * dependencies bl, debug and readable-stream in), which is what a bundler would ship of it.
 */
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import type { Benchmark, Line } from "./harness";

async function minified(entry: string, platform: "neutral" | "node"): Promise<Uint8Array> {
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    format: "esm",
    platform,
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  return out.outputFiles[0].contents;
}

async function sizes(): Promise<Record<string, Line>> {
  const ours = await minified(fileURLToPath(new URL("../src/mqtt/codec.ts", import.meta.url)), "neutral");
  const peer = await minified(createRequire(import.meta.url).resolve("mqtt-packet"), "node");
  const gz = (b: Uint8Array): number => gzipSync(b, { level: 9 }).length;
  return {
    "codec size (minified bytes)": {
      what: "src/mqtt/codec.ts vs mqtt-packet with its npm dependencies, each bundled and minified by esbuild",
      ours: ours.length,
      peer: peer.length,
      unit: "bytes",
      better: "lower",
    },
    "codec size (gzip bytes)": {
      what: "the same two bundles, gzip -9",
      ours: gz(ours),
      peer: gz(peer),
      unit: "bytes",
      better: "lower",
    },
  };
}

export const benchmarks: Benchmark[] = [
  { names: ["codec size (minified bytes)", "codec size (gzip bytes)"], run: sizes },
];
