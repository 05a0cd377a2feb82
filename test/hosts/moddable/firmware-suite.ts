// The scenarios the real firmware must pass under one chip's XS creation settings and limits: built with the SDK's
// mcconfig, run in the SDK's mcsim (test/helpers/moddable-firmware.ts), against the emulated UIoT Core and Mosquitto on
// loopback. Each scenario is one run of the firmware; the deepest XS stack it reached is recorded, and must leave a
// tenth of the chip's stack free (a board's event loop calls in a little differently from the desktop's).
// test/hosts/moddable/firmware-<chip>.test.ts each run this suite for one chip, so the two CI workers take two chips.
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import mqtt from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DESKTOP, ESP32, ESP8266, type ChipProfile } from "../../../hosts/moddable/chips";
import { DESKTOP_IMAGE } from "../../../hosts/moddable/firmware";
import { CONFIG_KEYS } from "../../../src/device/config-keys";
import { getTestCerts } from "../../helpers/certs";
import {
  cloudWith,
  DEVICE_SECRET,
  DSN,
  PRODUCT_SECRET,
  PSN,
  tlsCloudWith,
  tmpDir,
  type Cleanups,
} from "../../helpers/device-rig";
import { startFaultProxy } from "../../helpers/fault-proxy";
import { startMosquitto } from "../../helpers/mosquitto";
import { waitFor } from "../../helpers/wait";
import {
  buildFirmware,
  notFrozen,
  runFirmware,
  startXvfb,
  type Build,
  type Chip,
  type Display,
  type Run,
} from "../../helpers/moddable-firmware";
import { linConfigStore, provisionLin, type Provisioning } from "../../helpers/lin-preferences";
import { moddableSdk, NO_SDK, ROOT, SDK_REQUIRED } from "../../helpers/moddable-sdk";

const PROFILES: Record<Chip, ChipProfile> = { desktop: DESKTOP, esp32: ESP32, esp8266: ESP8266 };

/** What a chip's runs measured, for the report. */
export interface ChipReport {
  chip: Chip;
  stack: number;
  /** Deepest stack per scenario, in slots. */
  deepest: Record<string, number>;
  /** Slot heap (slots) and chunk heap (bytes, 64-bit) in use after the firmware connected, from the samples. */
  connected?: { slots: number; chunks: number };
  notFrozen: string[];
}

export function firmwareSuite(chip: Chip): void {
  const sdk = moddableSdk();
  it.runIf(!sdk && SDK_REQUIRED)(`a built Moddable SDK (MODDABLE_REQUIRED is set)`, () => {
    throw new Error(NO_SDK);
  });

  describe.skipIf(!sdk)(`the real firmware (mcconfig, mcsim) under the ${chip} creation settings`, () => {
    const profile = PROFILES[chip];
    let build: Build;
    let display: Display;
    const report: ChipReport = { chip, stack: 0, deepest: {}, notFrozen: [] };
    const cleanups: Cleanups = [];

    beforeAll(async () => {
      build = buildFirmware(sdk as string, chip);
      report.stack = build.creation.stack;
      report.notFrozen = notFrozen(build.log);
      display = await startXvfb();
    }, 1_800_000); // mcconfig's build is CPU-bound: on two busy cores (load average 35) it took longer than 600 s

    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!();
    });

    afterAll(async () => {
      if (display) await display.stop();
      const dir = join(ROOT, "build", "moddable-test");
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `report-${chip}.json`), `${JSON.stringify(report, null, 2)}\n`);
      const rows = Object.entries(report.deepest)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ");
      console.log(
        `[${chip}] stack ${report.stack} slots; deepest per scenario: ${rows}; connected: ${report.connected?.slots} slots, ${report.connected?.chunks} chunk bytes`,
      );
    });

    /** A run of the firmware provisioned with `p`, stopped (and checked for no XS abort) when the test ends. */
    function start(p: Provisioning | ((path: string) => void), name: string): { run: Run; prefs: string } {
      const dir = tmpDir(cleanups, `uiot-fw-${chip}-`);
      const prefs = join(dir, "modpreferences.json");
      if (typeof p === "function") p(prefs);
      else provisionLin(prefs, profile, p);
      const run = runFirmware(build, dir, display);
      cleanups.push(async () => {
        await run.stop();
        record(name, run);
      });
      return { run, prefs };
    }

    function record(name: string, run: Run): void {
      expect(run.aborted(), `${name}: the engine aborted`).toBeUndefined();
      const deepest = run.deepest();
      report.deepest[name] = Math.max(report.deepest[name] ?? 0, deepest);
      // a tenth of the stack free: what a board's slightly different call-in depth may take
      expect(deepest, `${name}: deepest XS stack ${deepest} of ${build.creation.stack} slots`).toBeLessThanOrEqual(
        Math.floor(build.creation.stack * 0.9),
      );
    }

    const identity = { productSN: PSN, deviceSN: DSN };

    /** The preference file's text once it is there and whole (it parses as JSON). */
    const wholePreferences = (path: string): Promise<string> =>
      waitFor(
        () => {
          try {
            const text = readFileSync(path, "utf8");
            JSON.parse(text);
            return text;
          } catch {
            return undefined;
          }
        },
        { message: `${path} whole` },
      );

    it("links with no 'not frozen' object of ours, and boots on the chip's creation settings", () => {
      expect(report.notFrozen).toEqual([]);
      expect(build.creation.stack).toBeGreaterThan(0);
    });

    it("registers dynamically, stores the DeviceSecret, and logs in with it after a restart", async () => {
      const cloud = await cloudWith(cleanups, {});
      let registrations = 0;
      cloud.on("registered", () => registrations++);
      const first = start({ ...identity, productSecret: PRODUCT_SECRET, url: cloud.url }, "registration");
      await first.run.waitFor(/connected to mqtt:\/\/127\.0\.0\.1:\d+ as TESTPRODUCT00001\.thermostat-42/, 60_000);
      const secret = cloud.device(PSN, DSN)!.deviceSecret;
      expect(secret).toBeTruthy();
      await waitFor(() => Object.keys(cloud.properties(PSN, DSN)).includes("temperature"), {
        message: "a property post",
        timeoutMs: 20_000,
      });
      // The SDK's desktop `preference` rewrites modpreferences.json whole at every change (delete, then write: the
      // persistent outbox changes it at each QoS 1 post), so it is read while whole, and copied before the stop,
      // which could land between the delete and the write.
      const prefs = await wholePreferences(first.prefs);
      await first.run.stop();
      const copy = join(tmpDir(cleanups, `uiot-fw-${chip}-`), "modpreferences.json");
      writeFileSync(copy, prefs);
      expect(linConfigStore(copy, profile).get(CONFIG_KEYS.deviceSecret)).toBe(secret);
      expect(linConfigStore(copy, profile).get(CONFIG_KEYS.productSecret)).toBeUndefined(); // deleted once the DeviceSecret was stored

      // the same preferences, a new start: the stored secret, no second registration
      const dir = tmpDir(cleanups, `uiot-fw-${chip}-`);
      writeFileSync(join(dir, "modpreferences.json"), prefs);
      const again = runFirmware(build, dir, display);
      cleanups.push(async () => {
        await again.stop();
        record("login after restart", again);
      });
      await again.waitFor(/connected to mqtt:/, 60_000);
      expect(again.log().some((l) => /registering dynamically/.test(l))).toBe(false);
      expect(registrations).toBe(1);
    });

    it("answers the console: property set and set_reply, a command and its reply, shadow desired applied", async () => {
      const cloud = await cloudWith(cleanups, { deviceSecret: DEVICE_SECRET });
      const { run } = start({ ...identity, deviceSecret: DEVICE_SECRET, url: cloud.url }, "console");
      await run.waitFor(/connected to/, 60_000);
      await waitFor(() => cloud.shadow(PSN, DSN).State.Reported.target_temperature === 21, {
        message: "the first shadow report",
        timeoutMs: 20_000,
      });
      expect((await cloud.setProperties(PSN, DSN, { target_temperature: 25 }))?.RetCode).toBe(0);
      expect((await cloud.setProperties(PSN, DSN, { target_temperature: 99 }))?.RetCode).toBe(1);
      await waitFor(() => cloud.properties(PSN, DSN).target_temperature?.Value === 25, {
        message: "the new target posted",
        timeoutMs: 20_000,
      });
      const ok = await cloud.sendCommand(PSN, DSN, "set_temp_correction", { correction: -1.5 });
      expect(ok.RetCode).toBe(0);
      expect((ok.Output as { correction: number }).correction).toBe(-1.5);
      cloud.setShadowDesired(PSN, DSN, { target_temperature: 18 });
      await waitFor(
        () =>
          cloud.shadow(PSN, DSN).State.Reported.target_temperature === 18 &&
          Object.keys(cloud.shadow(PSN, DSN).State.Desired).length === 0,
        { message: "the desired target applied", timeoutMs: 20_000 },
      );
      await run.waitFor(/target temperature 18 °C \(desired in the shadow\)/);
      await run.nextSample();
      const s = run.samples[run.samples.length - 1];
      report.connected = { slots: s.slots, chunks: s.chunks };
    });

    it("verifies TLS: the provisioned CA connects; a CA that did not sign the server is refused", async () => {
      const certs = await getTestCerts();
      const { cloud, url, ca } = await tlsCloudWith(cleanups);
      const { run } = start({ ...identity, deviceSecret: DEVICE_SECRET, url, ca }, "TLS");
      await run.waitFor(/connected to mqtts:\/\/localhost:\d+/, 60_000);
      await waitFor(() => Object.keys(cloud.properties(PSN, DSN)).includes("temperature"), {
        message: "a property post over TLS",
        timeoutMs: 20_000,
      });
      await run.stop();

      const wrong = start({ ...identity, deviceSecret: DEVICE_SECRET, url, ca: certs.unknownCa.cert }, "TLS refused");
      const line = await wrong.run.waitFor(/TLS|certificate/i, 60_000);
      expect(line).toMatch(/not signed by a trusted CA|certificate/i);
      expect(wrong.run.log().some((l) => /connected to/.test(l))).toBe(false);
    });

    it(chip === "esp8266"
      ? "refuses an update over the air as the ESP8266 board does: report_fail -5, nothing downloaded"
      : "updates over the air: the image over HTTPS into its file, MD5 checked, restarted in-process as the new version, report_success", async () => {
      const certs = await getTestCerts();
      const { cloud, url, ca } = await tlsCloudWith(cleanups);
      await cloud.ota.listen({ cert: certs.server.chain, key: certs.server.key });
      const image = randomBytes(96 * 1024);
      cloud.ota.publish(PSN, { version: "2.0.0", data: image });
      const { run, prefs } = start({ ...identity, deviceSecret: DEVICE_SECRET, url, ca }, "OTA");
      // the version built in (manifest.json's config.firmware), reported after the login
      await waitFor(() => cloud.ota.status(PSN, DSN).version === "0.1.0", {
        message: "report_version 0.1.0",
        timeoutMs: 60_000,
      });
      cloud.ota.update(PSN, DSN, "2.0.0");
      if (chip === "esp8266") {
        await waitFor(() => cloud.ota.status(PSN, DSN).state === "failed", {
          message: "report_fail",
          timeoutMs: 20_000,
        });
        expect(cloud.ota.status(PSN, DSN)).toMatchObject({ errCode: -5, downloads: [], version: "0.1.0" });
        await run.waitFor(/no OTA module for the ESP8266/);
        return;
      }
      await waitFor(() => cloud.ota.status(PSN, DSN).state === "success", {
        message: "report_success",
        timeoutMs: 120_000,
      });
      expect(cloud.ota.status(PSN, DSN)).toMatchObject({ version: "2.0.0", target: "2.0.0" });
      expect(readFileSync(join(dirname(prefs), DESKTOP_IMAGE)).equals(image)).toBe(true);
      await run.waitFor(/OTA: updated to 2\.0\.0 \(from 0\.1\.0\): reporting success/);
    }, 240_000);

    it("keepalive: a dead link is found by PINGREQ and its timeout; QoS 1 posts sent into it, and across a broker restart, all arrive", async () => {
      // persistence: the watcher's session and subscription outlive the broker's restart
      const broker = await startMosquitto({ persistence: true });
      const proxy = await startFaultProxy({ target: { port: broker.port } });
      const seen = new Set<number>();
      const sub = await mqtt.connectAsync(broker.url, {
        clientId: `watch-${chip}`,
        clean: false,
        reconnectPeriod: 200,
      });
      cleanups.push(() => sub.endAsync(true));
      sub.on("message", (_topic, payload) => {
        for (const m of payload.toString().matchAll(/"RequestID":"(\d+)"/g)) seen.add(Number(m[1]));
      });
      await sub.subscribeAsync("/$system/+/+/tmodel/property/post", { qos: 1 });
      const { run } = start((prefs) => {
        const s = provisionLin(prefs, profile, { ...identity, deviceSecret: DEVICE_SECRET, url: proxy.url });
        s.set(CONFIG_KEYS.keepalive, "30");
      }, "keepalive");
      await run.waitFor(/connected to mqtt:/, 60_000);
      await waitFor(() => seen.size >= 1, { message: "the first post", timeoutMs: 20_000 });
      const before = Math.max(...seen);

      // The link goes dead without a FIN: the posts (every 10 s) go into it unanswered; 30 s after the last byte
      // received the client sends PINGREQ, and its timeout ends the connection.
      proxy.setFaults({ halfOpen: true });
      const from = run.log().length;
      await run.waitFor(/no answer to PINGREQ within/, 90_000);
      expect(
        run
          .log()
          .slice(from)
          .some((l) => /nothing received for/.test(l)),
        "the PINGREQ went first, not the idle check",
      ).toBe(false);

      // and the broker restarts before the device gets through again
      await broker.restart({ downMs: 1500 });
      proxy.setFaults({});
      proxy.dropAll();
      await run.waitFor(/\(reconnect \d+\)/, 60_000);
      // Every post has arrived: those sent into the dead link (three or more in 35 s) and those after, no gap.
      await waitFor(() => Math.max(...seen) >= before + 4, {
        message: `posts after the reconnect (seen ${[...seen]})`,
        timeoutMs: 40_000,
      });
      const last = Math.max(...seen),
        missing: number[] = [];
      for (let i = Math.min(...seen); i <= last; i++) if (!seen.has(i)) missing.push(i);
      expect(missing, `RequestIDs the broker never delivered (seen ${[...seen].sort((x, y) => x - y)})`).toEqual([]);
    }, 240_000);
  });
}
