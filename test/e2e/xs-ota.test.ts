// Firmware updates end to end with the firmware on Moddable's XS engine (tools/simulator/xs-device.ts): the OTA agent
// in XS downloads the image over TLS through the bridge's connectors and checks its MD5 there; each chunk goes over
// the bridge to the Node host's image writer (hosts/node/firmware.ts), which writes the device folder; the restart
// stops the engine and starts a new one on the same folder, which runs as the new version and reports success.
// The same flow test/e2e/ota.test.ts runs on V8. Skipped when XS is not built, a failure when XS_REQUIRED is set.
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Cloud, OtaEvent } from "../../tools/cloud";
import { createNodeHost } from "../../hosts/node/host";
import type { ImageWriter, LogLevel } from "../../src/host";
import { startXsDevice, type XsDevice } from "../../tools/simulator/xs-device";
import { hasXsnap, xsnapBinary } from "../../tools/xsnap/worker";
import { DEVICE_SECRET, DSN, provision, PSN, tlsCloudWith, tmpDir, type Cleanups } from "../helpers/device-rig";
import { getTestCerts } from "../helpers/certs";
import { waitFor } from "../helpers/wait";

const available = hasXsnap();
it.runIf(!available && !!process.env.XS_REQUIRED)("XS is built (XS_REQUIRED is set)", () => {
  throw new Error(`${xsnapBinary()} is missing: npm run build:xs`);
});

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const IMAGE = randomBytes(256 * 1024);

function gone(pid: number | undefined): boolean {
  try {
    process.kill(pid!, 0);
    return false;
  } catch {
    return true;
  }
}

interface Rig {
  cloud: Cloud;
  dir: string;
  logs: [LogLevel, string][];
  events: OtaEvent[];
  /** The versions the device booted as, in order. */
  boots: string[];
  /** Every engine started, in order. */
  engines: XsDevice[];
  /** The size of each chunk the Node host's writer was handed. */
  chunks: number[];
  saw(re: RegExp): boolean;
}

/** `refuseAt`: the Node host's writer throws at that write (a full disk), to prove its errors reach XS. */
async function xsOtaRig(refuseAt?: number): Promise<Rig> {
  const { cloud, url, ca } = await tlsCloudWith(cleanups);
  const certs = await getTestCerts();
  await cloud.ota.listen({ cert: certs.server.chain, key: certs.server.key });
  cloud.ota.publish(PSN, { version: "2.0.0", data: IMAGE });
  const dir = tmpDir(cleanups, "uiot-xs-ota-");
  const logs: [LogLevel, string][] = [];
  const events: OtaEvent[] = [];
  cloud.on("ota", (e) => events.push(e));
  const boots: string[] = [];
  const chunks: number[] = [];
  const engines: XsDevice[] = [];
  const failures: Error[] = [];
  let stopping = false;
  const boot = async (): Promise<void> => {
    const host = createNodeHost({
      dir,
      persistOutbox: false,
      log: (level, message) => void logs.push([level, message]),
      // The restart: this engine stops (its DISCONNECT goes out), a new one starts on the same folder.
      firmware: { restart: () => void engines[engines.length - 1].stop().then(() => (stopping ? undefined : boot())) },
    });
    if (boots.length === 0) provision(host, url, { device: DEVICE_SECRET }, ca);
    boots.push(host.firmware!.version);
    const firmware = host.firmware!;
    const bridged = {
      ...firmware,
      writer: (version: string): ImageWriter => {
        const w = firmware.writer!(version);
        let writes = 0;
        return {
          begin: (size) => w.begin(size),
          write: (chunk) => {
            if (++writes === refuseAt) throw new Error("no space left on the device (ENOSPC)");
            chunks.push(chunk.length);
            w.write(chunk);
          },
          complete: () => w.complete(),
          cancel: () => w.cancel(),
        };
      },
    };
    const device = await startXsDevice({
      host: { ...host, firmware: bridged },
      thermostat: { postInterval: 1000 },
      onFailure: (e) => void failures.push(e),
      ota: { timeout: 3000, retries: 2, retryDelay: 150, rebootDelay: 50, progressInterval: 0 },
    });
    engines.push(device);
    if (!(await device.started)) throw new Error(`the device did not start on XS: ${logs.map((l) => l[1]).join("\n")}`);
  };
  cleanups.push(async () => {
    stopping = true;
    for (const e of engines) await e.stop();
    expect(
      engines.every((e) => gone(e.pid)),
      "no engine process left",
    ).toBe(true);
    expect(failures).toEqual([]);
  });
  await boot();
  await waitFor(() => cloud.ota.status(PSN, DSN).version === "1.0.0", {
    message: "report_version 1.0.0",
    timeoutMs: 15000,
  });
  return { cloud, dir, logs, events, boots, engines, chunks, saw: (re) => logs.some(([, m]) => re.test(m)) };
}

const slot = (r: Rig, name: string) => path.join(r.dir, "firmware", name);
const methods = (r: Rig) =>
  r.events
    .map((e) => (e.method === "report_progress" ? `${e.payload.State}` : e.method))
    .filter((m, i, a) => m !== a[i - 1]);

describe.skipIf(!available)(
  "OTA end to end with the firmware on XS (the Node host's writer through the bridge)",
  () => {
    it("updates: download and MD5 in XS, the image written by Node, restart as the new version, report_success", async () => {
      const r = await xsOtaRig();
      r.cloud.ota.update(PSN, DSN, "2.0.0");
      await waitFor(() => r.cloud.ota.status(PSN, DSN).state === "success", {
        message: "report_success",
        timeoutMs: 30000,
      });
      // the new image's report_version follows its report_success (both QoS 1, in that order)
      await waitFor(() => methods(r).at(-1) === "report_version" && methods(r).includes("report_success"), {
        message: "report_version after report_success",
      });
      expect(r.boots).toEqual(["1.0.0", "2.0.0"]);
      expect(r.engines).toHaveLength(2);
      expect(gone(r.engines[0].pid), "the first engine stopped").toBe(true);
      expect(fs.readFileSync(slot(r, "image.bin")).equals(IMAGE)).toBe(true);
      // written as the download handed the bytes over, never the whole image in one message
      expect(r.chunks.reduce((a, b) => a + b, 0)).toBe(IMAGE.length);
      expect(Math.max(...r.chunks)).toBeLessThanOrEqual(64 * 1024);
      expect(JSON.parse(fs.readFileSync(slot(r, "boot.json"), "utf8"))).toMatchObject({
        version: "2.0.0",
        size: IMAGE.length,
      });
      expect(r.cloud.ota.status(PSN, DSN)).toMatchObject({
        version: "2.0.0",
        target: "2.0.0",
        state: "success",
        downloads: [{ from: 0, status: 200 }],
      });
      expect(methods(r)).toEqual(["report_version", "downloading", "burning", "report_success", "report_version"]);
      expect(r.events.filter((e) => e.method === "report_success")).toEqual([
        { productSN: PSN, deviceSN: DSN, method: "report_success", payload: { Module: "default", Version: "2.0.0" } },
      ]);
      expect(r.saw(/OTA: 2\.0\.0 downloaded \(262144 bytes, MD5 [0-9a-f]{32}\) and made bootable/)).toBe(true);
      expect(r.saw(/OTA: updated to 2\.0\.0 \(from 1\.0\.0\): reporting success/)).toBe(true);
    }, 60000);

    it("an MD5 mismatch: report_fail -4 from XS, nothing made bootable, the old version still running", async () => {
      const r = await xsOtaRig();
      r.cloud.ota.update(PSN, DSN, "2.0.0", { md5: "00112233445566778899aabbccddeeff" });
      await waitFor(() => r.cloud.ota.status(PSN, DSN).state === "failed", {
        message: "report_fail",
        timeoutMs: 30000,
      });
      expect(r.cloud.ota.status(PSN, DSN)).toMatchObject({ version: "1.0.0", errCode: -4 });
      expect(
        r.saw(/OTA: update to 2\.0\.0 failed \(ErrCode -4, MD5 mismatch\).*the running image \(1\.0\.0\) is untouched/),
      ).toBe(true);
      expect(fs.existsSync(slot(r, "boot.json"))).toBe(false);
      expect(fs.existsSync(slot(r, "incoming.part"))).toBe(false); // the Node writer was cancelled through the bridge
      expect(r.boots).toEqual(["1.0.0"]);
      expect(r.engines).toHaveLength(1);
      await r.engines[0].sync!();
      expect(r.engines[0].state).toBe("connected");
    }, 60000);

    it("the Node host's writer refusing a chunk: its error reaches XS, report_fail -5, the old version still running", async () => {
      const r = await xsOtaRig(3);
      r.cloud.ota.update(PSN, DSN, "2.0.0");
      await waitFor(() => r.cloud.ota.status(PSN, DSN).state === "failed", {
        message: "report_fail",
        timeoutMs: 30000,
      });
      expect(r.cloud.ota.status(PSN, DSN)).toMatchObject({ version: "1.0.0", errCode: -5 });
      expect(r.saw(/ErrCode -5, flash write failed\).*no space left on the device \(ENOSPC\)/)).toBe(true);
      expect(fs.existsSync(slot(r, "boot.json"))).toBe(false);
      expect(fs.existsSync(slot(r, "incoming.part"))).toBe(false);
      expect(r.boots).toEqual(["1.0.0"]);
    }, 60000);
  },
);
