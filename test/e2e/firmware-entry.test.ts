// The firmware entry (src/device/main.ts with the thermostat) on both engines, against the emulated UIoT Core over
// real sockets: on V8 in this process (tools/simulator/device-view.ts, the Node host's pieces called directly) and on
// Moddable's XS engine, its I/O served by the Node host through the bridge (tools/simulator/xs-device.ts). Each
// scenario is written once and run on each engine through the view the simulator reads (DeviceView). On XS, every
// test ends with no engine process left; XS is skipped when it is not built, a failure when XS_REQUIRED is set.
// `npm start` as a process is tested in test/tools/simulator/simulator.test.ts.
import { afterEach, describe, expect, it } from "vitest";
import type { NodeHost } from "../../hosts/node/host";
import { nodeDevice, type DeviceView } from "../../tools/simulator/device-view";
import { startXsDevice, type XsDevice } from "../../tools/simulator/xs-device";
import { CONFIG_KEYS } from "../../src/device/config-keys";
import type { Host, OutboxStore } from "../../src/host";
import { thermostat, type ThermostatOptions } from "../../src/device/thermostat";
import { hasXsnap, xsnapBinary } from "../../tools/xsnap/worker";
import {
  cloudWith as cloudWith_,
  DEVICE_SECRET,
  DSN,
  hostOn,
  PRODUCT_SECRET,
  provision,
  PSN,
  tlsCloudWith,
  tmpDir as tmpDir_,
  type Cleanups,
} from "../helpers/device-rig";
import { sleep, waitFor } from "../helpers/wait";

const xsBuilt = hasXsnap();
it.runIf(!xsBuilt && !!process.env.XS_REQUIRED)("XS is built (XS_REQUIRED is set)", () => {
  throw new Error(`${xsnapBinary()} is missing: npm run build:xs`);
});

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const tmpDir = () => tmpDir_(cleanups, "uiot-entry-");
const cloudWith = (device: { deviceSecret?: string }) => cloudWith_(cleanups, device);

function gone(pid: number | undefined): boolean {
  try {
    process.kill(pid!, 0);
    return false;
  } catch {
    return true;
  }
}

interface Engine {
  name: "V8" | "XS";
  available: boolean;
  /** The thermostat on this engine, stopped (and whatever runs it gone) when the test ends. */
  boot(host: Host, options?: ThermostatOptions): Promise<DeviceView>;
  /** Stops the device and checks that nothing of it runs any more. */
  stop(device: DeviceView): Promise<void>;
}

const V8: Engine = {
  name: "V8",
  available: true,
  async boot(host, options = { postInterval: 200 }) {
    const device = nodeDevice(host, thermostat(options), () => undefined);
    cleanups.push(() => device.stop());
    return device;
  },
  stop: (device) => device.stop(),
};

const XS: Engine = {
  name: "XS",
  available: xsBuilt,
  async boot(host, options = { postInterval: 200 }) {
    const failures: Error[] = [];
    const device = await startXsDevice({ host, thermostat: options, onFailure: (e) => void failures.push(e) });
    cleanups.push(async () => {
      await XS.stop(device);
      expect(failures).toEqual([]);
    });
    return device;
  },
  async stop(device) {
    await device.stop();
    expect(gone((device as XsDevice).pid), "the engine's process is gone").toBe(true);
  },
};

describe.each([
  ["V8", V8],
  ["XS", XS],
] as const)("the firmware entry on %s against the emulated UIoT Core", (_, engine) => {
  const { boot } = engine;

  it.skipIf(!engine.available)(
    "logs one error naming what to run when the device is not provisioned, and does not start",
    async () => {
      const { host, logs } = hostOn(tmpDir());
      const device = await boot(host);
      expect(await device.started).toBe(false);
      expect(logs).toHaveLength(1);
      expect(logs[0][0]).toBe("error");
      expect(logs[0][1]).toMatch(/not provisioned.*npm run provision/);
      if (engine.name === "XS") expect(device.state).toBe("stopped"); // the engine has quit
    },
  );

  it.skipIf(!engine.available)(
    "registers dynamically once, stores the DeviceSecret, then connects with it; a restart uses the stored secret",
    async () => {
      const cloud = await cloudWith({});
      const dir = tmpDir();
      const { host } = hostOn(dir);
      provision(host, cloud.url, { product: PRODUCT_SECRET });
      let registrations = 0;
      cloud.on("registered", () => registrations++);
      const device = await boot(host);
      expect(await device.started).toBe(true);
      const stored = host.config.get(CONFIG_KEYS.deviceSecret);
      expect(stored).toBe(cloud.device(PSN, DSN)!.deviceSecret);
      expect(host.config.get(CONFIG_KEYS.productSecret)).toBeUndefined(); // deleted once the DeviceSecret was stored
      await waitFor(() => cloud.device(PSN, DSN)?.online, { message: "the device online" });
      await waitFor(() => Object.keys(cloud.properties(PSN, DSN)).includes("temperature"), {
        message: "a property post",
      });
      await engine.stop(device);

      // A restart uses the stored secret: no second registration, and the secret is not touched.
      const again = hostOn(dir);
      const second = await boot(again.host);
      expect(await second.started).toBe(true);
      await waitFor(() => second.connects === 1, { message: "connected again" });
      await waitFor(() => cloud.device(PSN, DSN)?.online, { message: "the device online again" });
      expect(registrations).toBe(1);
      expect(again.host.config.get(CONFIG_KEYS.deviceSecret)).toBe(stored);
    },
  );

  it.skipIf(!engine.available)(
    "the thermostat answers the console: set, command and shadow desired, with range checks; posts are confirmed",
    async () => {
      const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
      const { host } = hostOn(tmpDir());
      provision(host, cloud.url, { device: DEVICE_SECRET });
      const device = await boot(host);
      await waitFor(() => cloud.shadow(PSN, DSN).State.Reported.target_temperature === 21, {
        message: "the first shadow report",
      });

      expect((await cloud.setProperties(PSN, DSN, { target_temperature: 25 }))?.RetCode).toBe(0);
      expect((await cloud.setProperties(PSN, DSN, { target_temperature: 99 }))?.RetCode).toBe(1);
      expect((await cloud.setProperties(PSN, DSN, { humidity: 10 }))?.RetCode).toBe(2);
      await waitFor(() => cloud.properties(PSN, DSN).target_temperature?.Value === 25, {
        message: "the new target posted",
      });

      const ok = await cloud.sendCommand(PSN, DSN, "set_temp_correction", { correction: -1.5 });
      expect(ok.RetCode).toBe(0);
      expect((ok.Output as { correction: number }).correction).toBe(-1.5);
      expect((await cloud.sendCommand(PSN, DSN, "set_temp_correction", { correction: 8 })).RetCode).toBe(1);

      cloud.setShadowDesired(PSN, DSN, { target_temperature: 18 });
      await waitFor(
        () =>
          cloud.shadow(PSN, DSN).State.Reported.target_temperature === 18 &&
          Object.keys(cloud.shadow(PSN, DSN).State.Desired).length === 0,
        { message: "the desired target applied" },
      );
      cloud.setShadowDesired(PSN, DSN, { target_temperature: 50 });
      await waitFor(() => Object.keys(cloud.shadow(PSN, DSN).State.Desired).length === 0, {
        message: "the bad desired value answered",
      });
      expect(cloud.shadow(PSN, DSN).State.Reported.target_temperature).toBe(18);

      // What the view shows is the engine's own state
      await waitFor(() => device.thermostat.posts >= 2, { message: "confirmed posts" });
      await device.sync?.();
      expect(device.thermostat).toMatchObject({ target: 18, correction: -1.5 });
      expect(device.state).toBe("connected");
    },
  );

  it.skipIf(!engine.available)(
    "survives a broker restart: the lost connection is a drop, the refused redials are counted apart, the posts go on",
    async () => {
      const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
      const { host, saw } = hostOn(tmpDir());
      provision(host, cloud.url, { device: DEVICE_SECRET });
      const device = await boot(host);
      expect(await device.started).toBe(true);
      await waitFor(() => device.connects === 1, { message: "connected" });
      expect([device.drops, device.failedDials]).toEqual([0, 0]);
      await cloud.stop();
      // One connection lost; the redials refused while the broker is down are counted apart, not as drops.
      await waitFor(() => device.failedDials >= 2 && device.state !== "connected", {
        message: "the drop and two refused redials",
        timeoutMs: 20000,
      });
      expect(device.drops).toBe(1);
      expect(device.problem).not.toBe("");
      await sleep(300);
      await cloud.start();
      await waitFor(() => device.connects === 2, { message: "the reconnect", timeoutMs: 20000 });
      expect(device.problem).toBe("");
      expect(device.drops).toBe(1);
      const posts = device.thermostat.posts;
      await waitFor(() => device.thermostat.posts > posts + 1, { message: "posts after the restart" });
      expect(saw(/connected to mqtt:\/\/127\.0\.0\.1:\d+ as TESTPRODUCT00001\.thermostat-42 \(reconnect 1\)/)).toBe(
        true,
      );
    },
    60000,
  );

  it.skipIf(!engine.available)(
    "does not dial while the link is down, and connects at once when it comes up",
    async () => {
      const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
      const { host } = hostOn(tmpDir());
      provision(host, cloud.url, { device: DEVICE_SECRET });
      host.link.down();
      const device = await boot(host);
      await sleep(300);
      await device.sync?.();
      expect(device.state).toBe("waiting");
      expect(device.connects).toBe(0);
      host.link.up();
      await waitFor(() => device.connects === 1, { message: "the first connection", timeoutMs: 20000 });

      // Down while connected: dropped, no retries while down; up: connected again. That the client dials at once
      // when told the link is back, not at the end of its backoff, is proven on a fake clock (test/mqtt/offline.test.ts);
      // here, that the entry tells it, whatever the machine's load.
      host.link.down();
      await waitFor(() => device.state === "waiting", { message: "the drop" });
      await sleep(1500);
      await device.sync?.();
      expect(device.state).toBe("waiting");
      expect(device.connects).toBe(1);
      host.link.up();
      await waitFor(() => device.connects === 2, { message: "the reconnect", timeoutMs: 20000 });
    },
  );

  it.skipIf(!engine.available)(
    "verifies TLS by default: an unknown CA is refused, the provisioned CA connects",
    async () => {
      const { url, ca } = await tlsCloudWith(cleanups);

      const untrusted = hostOn(tmpDir());
      provision(untrusted.host, url, { device: DEVICE_SECRET });
      const refused = await boot(untrusted.host);
      await waitFor(() => untrusted.saw(/not signed by a trusted CA/), { message: "the TLS refusal" });
      expect(refused.connects).toBe(0);
      await engine.stop(refused);

      const trusted = hostOn(tmpDir());
      provision(trusted.host, url, { device: DEVICE_SECRET }, ca);
      const device = await boot(trusted.host);
      await waitFor(() => device.connects === 1, { message: "a verified TLS connection" });
    },
  );

  it.skipIf(!engine.available)("keeps its QoS 1 messages in the host's outbox store until acknowledged", async () => {
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const { host } = hostOn(tmpDir());
    provision(host, cloud.url, { device: DEVICE_SECRET });
    const store = host.outbox!;
    const calls = { load: 0, save: 0, remove: 0 };
    const counted: OutboxStore = {
      load: () => (calls.load++, store.load()),
      save: (key, packet) => (calls.save++, store.save(key, packet)),
      remove: (key) => (calls.remove++, store.remove(key)),
    };
    const device = await boot({ ...host, outbox: counted } as NodeHost);
    await waitFor(() => device.thermostat.posts >= 3, { message: "three confirmed posts" });
    await device.sync?.();
    expect(calls.load).toBe(1);
    expect(calls.save).toBeGreaterThanOrEqual(3);
    expect(calls.remove).toBeGreaterThanOrEqual(3);
    expect(calls.save - calls.remove).toBe(device.outbox);
  });

  it.skipIf(!engine.available)("raises high_temp when the temperature passes the threshold", async () => {
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const { host } = hostOn(tmpDir());
    provision(host, cloud.url, { device: DEVICE_SECRET });
    const device = await boot(host, { postInterval: 100, temperature: 29.5, target: 29.5, highTemp: 28 });
    const event = await waitFor(() => cloud.thingEvents(PSN, DSN).find((e) => e.Identifier === "high_temp"), {
      message: "the high_temp event",
    });
    expect(JSON.stringify(event)).toMatch(/threshold/);
    await waitFor(() => device.thermostat.events === 1, { message: "the event confirmed" });
    expect(device.thermostat.hot).toBe(true);
  });
});

// The XS bridge passes no maximum packet size into XS: this one runs on V8.
describe("the firmware entry on V8 with a host's maxPacketSize", () => {
  it("skips a packet larger than the host's maxPacketSize with a clear warning, and goes on answering", async () => {
    const cloud = await cloudWith({ deviceSecret: DEVICE_SECRET });
    const { host, logs } = hostOn(tmpDir());
    provision(host, cloud.url, { device: DEVICE_SECRET });
    await V8.boot({ ...host, maxPacketSize: 1024 });
    await waitFor(() => cloud.shadow(PSN, DSN).State.Reported.target_temperature === 21, {
      message: "the first shadow report",
    });
    const big = cloud.setProperties(PSN, DSN, { target_temperature: 25, note: "x".repeat(1500) });
    await waitFor(
      () => logs.find(([level, m]) => level === "warn" && /PUBLISH exceeds the 1024-byte maximum packet size/.test(m)),
      { message: "the warning" },
    );
    expect((await cloud.setProperties(PSN, DSN, { target_temperature: 23 }))?.RetCode).toBe(0);
    await waitFor(() => cloud.properties(PSN, DSN).target_temperature?.Value === 23, {
      message: "the next set applied",
    });
    void big.catch(() => undefined);
  });
});
