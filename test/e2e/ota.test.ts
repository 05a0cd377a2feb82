// Firmware updates end to end over real sockets: the firmware entry (src/device/main.ts) on the Node host, the
// emulated cloud on TLS sending update_firmware, its HTTPS file server (signed URLs, Range) serving the image, the
// Node host's image writer (hosts/node/firmware.ts) and its restart into the new version. One fault per test:
// a link drop mid-download, an expired URL, an MD5 mismatch, a truncated body, a stalled server, a cancel, and
// a power cut mid-write.
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Cloud, OtaEvent } from "../../tools/cloud";
import { createNodeHost, type NodeHost } from "../../hosts/node/host";
import type { LogLevel } from "../../src/host";
import { start, type Device, type StartOptions } from "../../src/device/main";
import { DEVICE_SECRET, DSN, provision, PSN, tlsCloudWith, tmpDir, type Cleanups } from "../helpers/device-rig";
import { getTestCerts } from "../helpers/certs";
import { waitFor } from "../helpers/wait";

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const IMAGE = randomBytes(256 * 1024);
const QUIET = { name: "quiet", start() {} };

interface Rig {
  cloud: Cloud;
  dir: string;
  logs: [LogLevel, string][];
  events: OtaEvent[];
  /** The versions the device booted as, in order. */
  boots: string[];
  device(): Device;
  host(): NodeHost;
  saw(re: RegExp): boolean;
  /** Boots the device again on the same folder (after a power cut). */
  boot(): Promise<void>;
}

async function otaRig(ota: StartOptions["ota"] = {}): Promise<Rig> {
  const { cloud, url, ca } = await tlsCloudWith(cleanups);
  const certs = await getTestCerts();
  await cloud.ota.listen({ cert: certs.server.chain, key: certs.server.key });
  cloud.ota.publish(PSN, { version: "2.0.0", data: IMAGE });
  const dir = tmpDir(cleanups, "uiot-ota-");
  const logs: [LogLevel, string][] = [];
  const events: OtaEvent[] = [];
  cloud.on("ota", (e) => events.push(e));
  let device: Device | undefined, host: NodeHost | undefined;
  const boots: string[] = [];
  const boot = async (): Promise<void> => {
    host = createNodeHost({
      dir,
      persistOutbox: false,
      log: (level, message) => void logs.push([level, message]),
      firmware: {
        restart: () => {
          device?.stop();
          void boot();
        },
      },
    });
    if (boots.length === 0) provision(host, url, { device: DEVICE_SECRET }, ca);
    boots.push(host.firmware!.version);
    device = await start(host, QUIET, {
      ota: { timeout: 1500, retries: 2, retryDelay: 150, rebootDelay: 50, progressInterval: 0, ...ota },
    });
    if (!device) throw new Error(`the device did not start: ${logs.map((l) => l[1]).join("\n")}`);
  };
  cleanups.push(() => device?.stop());
  await boot();
  await waitFor(() => cloud.ota.status(PSN, DSN).version === "1.0.0", { message: "report_version 1.0.0" });
  return {
    cloud,
    dir,
    logs,
    events,
    boots,
    boot,
    device: () => device!,
    host: () => host!,
    saw: (re) => logs.some(([, m]) => re.test(m)),
  };
}

const slot = (r: Rig, name: string) => path.join(r.dir, "firmware", name);
const methods = (r: Rig) =>
  r.events
    .map((e) => (e.method === "report_progress" ? `${e.payload.State}` : e.method))
    .filter((m, i, a) => m !== a[i - 1]);

function untouched(r: Rig) {
  expect(fs.existsSync(slot(r, "boot.json"))).toBe(false);
  expect(fs.existsSync(slot(r, "incoming.part"))).toBe(false);
  expect(r.boots).toEqual(["1.0.0"]);
  expect(r.device().thing.ota!.running).toBe(undefined);
}

describe("OTA end to end (Node host, emulated cloud over TLS)", () => {
  it("updates: download, MD5, burn, restart as the new version, report_success", async () => {
    const r = await otaRig();
    r.cloud.ota.update(PSN, DSN, "2.0.0");
    await waitFor(() => r.cloud.ota.status(PSN, DSN).state === "success", {
      message: "report_success",
      timeoutMs: 15000,
    });
    // the new image's report_version follows its report_success (both QoS 1, in that order)
    await waitFor(() => methods(r).at(-1) === "report_version" && methods(r).includes("report_success"), {
      message: "report_version after report_success",
    });
    expect(r.boots).toEqual(["1.0.0", "2.0.0"]);
    expect(fs.readFileSync(slot(r, "image.bin")).equals(IMAGE)).toBe(true);
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
    expect(r.saw(/OTA: updated to 2\.0\.0 \(from 1\.0\.0\): reporting success/)).toBe(true);
    // the progress went out at QoS 0, the reports at QoS 1
    const up = r.cloud.log().filter((e) => e.topic.endsWith("/ota/upstream"));
    expect(up.filter((e) => e.payload.includes("report_progress")).every((e) => e.qos === 0)).toBe(true);
    expect(up.filter((e) => !e.payload.includes("report_progress")).every((e) => e.qos === 1)).toBe(true);
  });

  it("a link drop mid-download: the download resumes with Range where it stopped", async () => {
    const r = await otaRig({ retryDelay: 600, retries: 10 }); // however long the link stays down here, the retries outlast it
    r.cloud.ota.faults.push({ stallAfter: 100000 });
    r.cloud.ota.update(PSN, DSN, "2.0.0");
    await waitFor(() => (r.device().thing.ota!.running?.received ?? 0) >= 100000, { message: "100000 bytes in" });
    r.host().link.down();
    await new Promise((res) => setTimeout(res, 100));
    r.host().link.up();
    await waitFor(() => r.cloud.ota.status(PSN, DSN).state === "success", {
      message: "report_success",
      timeoutMs: 15000,
    });
    expect(r.cloud.ota.status(PSN, DSN).downloads).toEqual([
      { from: 0, status: 200 },
      { from: 100000, status: 206 },
    ]);
    expect(fs.readFileSync(slot(r, "image.bin")).equals(IMAGE)).toBe(true);
    expect(r.saw(/interrupted at byte 100000 of 262144 .*resuming from there/)).toBe(true);
  });

  it("a truncated body (the server closes short of its Content-Length): resumed, then right", async () => {
    const r = await otaRig();
    r.cloud.ota.faults.push({ dropAfter: 50000 });
    r.cloud.ota.update(PSN, DSN, "2.0.0");
    await waitFor(() => r.cloud.ota.status(PSN, DSN).state === "success", {
      message: "report_success",
      timeoutMs: 15000,
    });
    expect(r.cloud.ota.status(PSN, DSN).downloads).toEqual([
      { from: 0, status: 200 },
      { from: 50000, status: 206 },
    ]);
    expect(fs.readFileSync(slot(r, "image.bin")).equals(IMAGE)).toBe(true);
  });

  it("an expired URL: report_fail -2, the running image untouched", async () => {
    const r = await otaRig();
    r.cloud.ota.update(PSN, DSN, "2.0.0", { ttlMs: -1000 });
    await waitFor(() => r.cloud.ota.status(PSN, DSN).state === "failed", { message: "report_fail" });
    expect(r.cloud.ota.status(PSN, DSN)).toMatchObject({ errCode: -2, downloads: [{ from: 0, status: 403 }] });
    untouched(r);
    expect(r.saw(/ErrCode -2, URL signature expired\): https:\/\/localhost:\d+ answered HTTP 403/)).toBe(true);
    expect(r.logs.map((l) => l[1]).join("\n")).not.toMatch(/Signature=/);
  });

  it("an MD5 mismatch: report_fail -4, nothing made bootable", async () => {
    const r = await otaRig();
    r.cloud.ota.update(PSN, DSN, "2.0.0", { md5: "00112233445566778899aabbccddeeff" });
    await waitFor(() => r.cloud.ota.status(PSN, DSN).state === "failed", { message: "report_fail" });
    expect(r.cloud.ota.status(PSN, DSN).errCode).toBe(-4);
    untouched(r);
  });

  it("a server that stalls: report_fail -3 after the retries", async () => {
    const r = await otaRig({ timeout: 500 });
    r.cloud.ota.faults.push({ stallAfter: 1000 }, { stallAfter: 0 }, { stallAfter: 0 });
    r.cloud.ota.update(PSN, DSN, "2.0.0");
    await waitFor(() => r.cloud.ota.status(PSN, DSN).state === "failed", { message: "report_fail", timeoutMs: 15000 });
    expect(r.cloud.ota.status(PSN, DSN)).toMatchObject({
      errCode: -3,
      downloads: [
        { from: 0, status: 200 },
        { from: 1000, status: 206 },
        { from: 1000, status: 206 },
      ],
    });
    untouched(r);
  });

  it("a Size larger than the slot: report_fail -5 before any download", async () => {
    const r = await otaRig();
    r.cloud.ota.update(PSN, DSN, "2.0.0", { size: 5 * 1024 * 1024 });
    await waitFor(() => r.cloud.ota.status(PSN, DSN).state === "failed", { message: "report_fail" });
    expect(r.cloud.ota.status(PSN, DSN)).toMatchObject({ errCode: -5, downloads: [] });
    untouched(r);
  });

  it("cancel mid-way: the download stops, the partial image is removed, nothing boots differently", async () => {
    const r = await otaRig();
    r.cloud.ota.faults.push({ stallAfter: 20000 });
    r.cloud.ota.update(PSN, DSN, "2.0.0");
    await waitFor(() => (r.device().thing.ota!.running?.received ?? 0) >= 20000, { message: "20000 bytes in" });
    expect(fs.existsSync(slot(r, "incoming.part"))).toBe(true);
    r.cloud.ota.cancel(PSN, DSN);
    await waitFor(() => r.saw(/cancelled by the platform at byte 20000 of 262144/), { message: "the cancel" });
    untouched(r);
    expect(r.cloud.ota.status(PSN, DSN).state).toBe("cancelled");
  });

  it("a power cut mid-write: the old image boots, asks for the firmware again and then updates", async () => {
    const r = await otaRig();
    r.cloud.ota.faults.push({ stallAfter: 30000 });
    r.cloud.ota.update(PSN, DSN, "2.0.0");
    await waitFor(() => (r.device().thing.ota!.running?.received ?? 0) >= 30000, { message: "30000 bytes in" });
    r.device().stop(); // the power goes (the host's writer keeps nothing bootable)
    expect(fs.existsSync(slot(r, "boot.json"))).toBe(false);
    await r.boot();
    expect(r.boots).toEqual(["1.0.0", "1.0.0"]);
    await waitFor(() => r.cloud.ota.status(PSN, DSN).state === "success", {
      message: "report_success",
      timeoutMs: 15000,
    });
    expect(r.boots).toEqual(["1.0.0", "1.0.0", "2.0.0"]);
    expect(r.events.map((e) => e.method)).toContain("request_firmware");
    expect(fs.readFileSync(slot(r, "image.bin")).equals(IMAGE)).toBe(true);
  });
});
