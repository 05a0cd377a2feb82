/**
 * XS bytecode size, measured with the Moddable SDK's own compiler (xsc) when an SDK is installed ($MODDABLE, or
 * xsc on PATH); skipped otherwise (CI has no SDK). Ours is bundled by esbuild into one module and compiled the way
 * mcconfig compiles a module (`xsc -e`); the peer is the SDK's own MQTT client (modules/network/mqtt/mqtt.js),
 * compiled the same way. These are the bytes a device build stores in flash for the code.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { Skip, type Benchmark, type Line } from "../harness";

function findXsc(): string {
  const sdk = process.env.MODDABLE;
  for (const p of [sdk && join(sdk, "build/bin/lin/release/xsc"), sdk && join(sdk, "build/bin/mac/release/xsc")])
    if (p && existsSync(p)) return p;
  try {
    return execFileSync("which", ["xsc"], { encoding: "utf8" }).trim() || "";
  } catch {
    return "";
  }
}

function xsbSize(xsc: string, dir: string, name: string, source: string): number {
  const file = join(dir, `${name}.js`);
  writeFileSync(file, source);
  execFileSync(xsc, ["-e", "-o", dir, file], { stdio: "ignore" });
  return statSync(join(dir, `${name}.xsb`)).size;
}

async function bundle(entry: string): Promise<string> {
  const out = await build({
    entryPoints: [fileURLToPath(new URL(entry, import.meta.url))],
    bundle: true,
    format: "esm",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  return out.outputFiles[0].text;
}

/** The codec a device carries: what the client's session imports of decode and encode (no broker-codec). */
async function deviceCodec(): Promise<string> {
  const out = await build({
    stdin: {
      contents:
        'export { Decoder } from "./decode";\nexport { encode, encodeAck, encodePublishFields, TopicCache } from "./encode";\n',
      resolveDir: fileURLToPath(new URL("../../src/mqtt/", import.meta.url)),
      loader: "ts",
    },
    bundle: true,
    format: "esm",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  return out.outputFiles[0].text;
}

async function sizes(): Promise<Record<string, Line>> {
  const xsc = findXsc();
  const sdk = process.env.MODDABLE ?? (xsc ? join(xsc, "../../../../..") : "");
  const peerFile = join(sdk, "modules/network/mqtt/mqtt.js");
  if (!xsc || !existsSync(peerFile)) throw new Skip("no Moddable SDK here (set $MODDABLE to an SDK with xsc built) ");
  const dir = mkdtempSync(join(tmpdir(), "xsb-"));
  try {
    const peer = xsbSize(xsc, dir, "peer", readFileSync(peerFile, "utf8"));
    const codec = xsbSize(xsc, dir, "codec", await bundle("../../src/mqtt/codec.ts"));
    const device = xsbSize(xsc, dir, "device", await deviceCodec());
    const client = xsbSize(xsc, dir, "client", await bundle("../../src/mqtt/client.ts"));
    return {
      "codec XS bytecode (vs Moddable's MQTT client)": {
        what: "src/mqtt/codec.ts bundled vs the SDK's mqtt module, each compiled by the SDK's xsc -e",
        ours: codec,
        peer,
        unit: "bytes",
        better: "lower",
      },
      "the device's codec (what the session imports), XS bytecode (vs Moddable's MQTT client)": {
        what: "the decode and encode the session imports, bundled, vs the SDK's mqtt module, each compiled by xsc -e",
        ours: device,
        peer,
        unit: "bytes",
        better: "lower",
      },
      "client with codec, XS bytecode (vs Moddable's MQTT client)": {
        what: "src/mqtt/client.ts with all it imports, bundled, vs the SDK's mqtt module, each compiled by xsc -e",
        ours: client,
        peer,
        unit: "bytes",
        better: "lower",
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const benchmarks: Benchmark[] = [
  {
    names: [
      "codec XS bytecode (vs Moddable's MQTT client)",
      "the device's codec (what the session imports), XS bytecode (vs Moddable's MQTT client)",
      "client with codec, XS bytecode (vs Moddable's MQTT client)",
    ],
    run: sizes,
  },
];
