// The bridge between the firmware on XS and the Node host (hosts/xsnap/wire.ts, hosts/xsnap/host.ts, tools/simulator/xs-device.ts):
// its message format, and its failure paths with the real engine: an uncaught exception in XS and the engine dying
// each end the device with a clear error (never a hang, no process left), and a socket's failure reaches the
// firmware as the typed NetError the Node host made.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { traceMessage } from "../../../hosts/xsnap/host";
import {
  answer,
  answerNumber,
  E,
  frame,
  HEADER,
  idOf,
  NONE,
  numberOf,
  opOf,
  packEntries,
  Q,
  textBytes,
  u32,
  unpackEntries,
  withBytes,
  withText,
  withU32,
} from "../../../hosts/xsnap/wire";
import { createNodeHost } from "../../../hosts/node/host";
import { startXsDevice, xsEngineMissing, type XsDevice } from "../../../tools/simulator/xs-device";
import { CONFIG_KEYS } from "../../../src/device/config-keys";
import type { LogLevel } from "../../../src/host";
import { hasXsnap, xsnapBinary } from "../../../tools/xsnap/worker";
import { getFreePort } from "../../helpers/ports";
import { waitFor } from "../../helpers/wait";

const PSN = "TESTPRODUCT00001",
  DSN = "thermostat-42",
  SECRET = "devicesecret4567";

describe("the bridge's message format (hosts/xsnap/wire.ts)", () => {
  it("frames a 1-byte op and a 32-bit id ahead of the body, ids up to 2^32 - 1", () => {
    const m = withBytes(Q.WRITE, 0xfedcba98, Uint8Array.of(1, 2, 3));
    expect([...m]).toEqual([Q.WRITE, 0xfe, 0xdc, 0xba, 0x98, 1, 2, 3]);
    expect(opOf(m)).toBe(Q.WRITE);
    expect(idOf(m)).toBe(0xfedcba98);
    expect(frame(E.TIMER, 7, 0)).toEqual(Uint8Array.of(E.TIMER, 0, 0, 0, 7));
    expect(u32(withU32(E.WRITABLE, 1, 65536), HEADER)).toBe(65536);
    expect(u32(withU32(E.WRITABLE, 1, 0xffffffff), HEADER)).toBe(0xffffffff);
  });

  it("gives every query its own op, and every event its own, each fitting the op byte", () => {
    for (const ops of [Object.values(Q), Object.values(E)]) {
      expect(new Set(ops).size).toBe(ops.length);
      for (const op of ops) expect(op >= 1 && op <= 255).toBe(true);
    }
    // the firmware slot's queries: a writer's id in the header, a chunk of the image as the body, as it is
    const chunk = Uint8Array.of(0xde, 0xad, 0xbe, 0xef);
    const m = withBytes(Q.FW_WRITE, 3, chunk);
    expect([opOf(m), idOf(m)]).toEqual([Q.FW_WRITE, 3]);
    expect(m.subarray(HEADER)).toEqual(chunk);
  });

  it("carries text as UTF-8, U+0000 and astral characters included, and numbers as float64", () => {
    const s = "°C \u0000 😀 é";
    const m = withText(Q.LOG, 2, s);
    expect(Buffer.from(m.subarray(HEADER)).toString("utf8")).toBe(s);
    expect(textBytes(s)).toEqual(new Uint8Array(Buffer.from(s, "utf8")));
    expect(numberOf(answerNumber(1795433046743.25))).toBe(1795433046743.25);
    expect(numberOf(answerNumber(0.123456789))).toBe(0.123456789);
    expect([...answer(NONE)]).toEqual([NONE]);
  });

  it("packs outbox entries as [key][length][packet] and unpacks them as views, not copies", () => {
    const entries = [
      { key: 1, packet: Uint8Array.of(0x32, 3, 0, 1, 9) },
      { key: 0x10000, packet: new Uint8Array(0) },
      { key: 4000000000, packet: Uint8Array.of(7) },
    ];
    const body = packEntries(entries);
    expect(body.length).toBe(8 * 3 + 5 + 0 + 1);
    const a = answer(0, body);
    const back = unpackEntries(a, 1);
    expect(back).toEqual(entries);
    expect(back[0].packet.buffer).toBe(a.buffer);
  });

  it("traces a message as [u16 topic length][topic][payload], from bytes or text", () => {
    const t = traceMessage(1, "/$system/p/d/tmodel/property/post", '{"t":"°"}');
    expect(opOf(t)).toBe(Q.TRACE);
    expect(idOf(t)).toBe(1);
    const n = (t[HEADER] << 8) | t[HEADER + 1];
    expect(Buffer.from(t.subarray(HEADER + 2, HEADER + 2 + n)).toString()).toBe("/$system/p/d/tmodel/property/post");
    expect(Buffer.from(t.subarray(HEADER + 2 + n)).toString()).toBe('{"t":"°"}');
    expect([...traceMessage(0, "a", Uint8Array.of(0, 255)).subarray(HEADER)]).toEqual([0, 1, 0x61, 0, 255]);
  });

  it("says in one line what to run when the engine is not built", () => {
    const line = xsEngineMissing("/nonexistent/xsnap-worker");
    expect(line).toBe("the XS engine is not built (/nonexistent/xsnap-worker is missing): run `npm run build:xs`");
    expect(line).not.toContain("\n");
  });
});

// .ci/run sets XS_REQUIRED: there a missing engine is a failure, never a skip
const available = hasXsnap();
it.runIf(!available && !!process.env.XS_REQUIRED)("XS is built (XS_REQUIRED is set)", () => {
  throw new Error(`${xsnapBinary()} is missing: npm run build:xs`);
});

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function gone(pid: number | undefined): boolean {
  try {
    process.kill(pid!, 0);
    return false;
  } catch {
    return true;
  }
}

/** A provisioned device store for `url`, a Node host on it, and the bridge's probe application in XS. */
async function probe(url: string, app: Record<string, unknown> = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "uiot-bridge-"));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const logs: [LogLevel, string][] = [];
  const draws = { n: 0 };
  const host = createNodeHost({
    dir,
    log: (level, message) => void logs.push([level, message]),
    random: () => (draws.n++, Math.random()),
  });
  for (const [k, v] of [
    [CONFIG_KEYS.productSN, PSN],
    [CONFIG_KEYS.deviceSN, DSN],
    [CONFIG_KEYS.deviceSecret, SECRET],
    [CONFIG_KEYS.brokerUrl, url],
  ])
    host.config.set(k, v);
  const failures: Error[] = [];
  const device: XsDevice = await startXsDevice({
    host,
    entry: "test/hosts/xsnap/bridge-entry.ts",
    app,
    onFailure: (e) => void failures.push(e),
  });
  cleanups.push(() => device.stop());
  return { host, logs, device, failures, draws };
}

describe.skipIf(!available)("the bridge with the real engine: failures are clear errors", () => {
  it("a socket that fails reaches the firmware as the Node host's typed NetError (refused, then the link down)", async () => {
    const port = await getFreePort(); // nothing listens there
    const { host, logs, device, draws } = await probe(`mqtt://127.0.0.1:${port}`);
    expect(await device.started).toBe(true);
    await waitFor(() => logs.some(([, m]) => m === "lost: CONNECTION_LOST; cause NetError CONNECTION_REFUSED"), {
      message: `the refusal, logs: ${JSON.stringify(logs)}`,
    });
    expect(
      logs.some(
        ([level, m]) =>
          level === "warn" && /127\.0\.0\.1:\d+ refused the connection: nothing accepts connections there/.test(m),
      ),
    ).toBe(true);
    // The backoff's jitter comes from the Node host, not from XS's Math.random (unseeded C rand() on a desktop build)
    expect(draws.n).toBeGreaterThan(0);
    host.link.down();
    await device.sync!();
    expect(device.state).toBe("waiting");
    expect(logs.some(([, m]) => m === "network link down: the device reconnects when it is back")).toBe(true);
    expect(device.failure).toBeUndefined();
  });

  it("an uncaught exception in XS ends the device with an error that says so, and the engine quits", async () => {
    const port = await getFreePort();
    const { device, failures } = await probe(`mqtt://127.0.0.1:${port}`, { throwAfter: 50 });
    await waitFor(() => failures.length > 0, { message: "the failure" });
    expect(failures).toHaveLength(1);
    expect(failures[0].message).toMatch(
      /^the firmware on XS failed: uncaught exception in XS: .*boom from a timer callback/,
    );
    expect(device.failure).toBe(failures[0]);
    await device.exited;
    expect(gone(device.pid)).toBe(true);
    await device.stop(); // nothing left to stop: resolves at once
  });

  it("the engine dying ends the device with an error, not a hang", async () => {
    const port = await getFreePort();
    const { device, failures } = await probe(`mqtt://127.0.0.1:${port}`);
    expect(await device.started).toBe(true);
    process.kill(device.pid!, "SIGKILL");
    await waitFor(() => failures.length > 0, { message: "the failure" });
    expect(failures[0].message).toMatch(
      /^the firmware on XS failed: the XS engine exited unexpectedly: XS exited \(SIGKILL\)/,
    );
    await device.exited;
    await device.stop();
  });

  it("stop() sends the device's DISCONNECT and leaves no engine process; a second stop() is the same promise", async () => {
    const { startCloud } = await import("../../../tools/cloud");
    const cloud = await startCloud({
      products: [{ productSN: PSN, productSecret: "productsecret123" }],
      devices: [{ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET }],
    });
    cleanups.push(() => cloud.close());
    const offline: string[] = [];
    cloud.on("offline", (e) => void offline.push(e.reason));
    const { device } = await probe(cloud.url);
    await waitFor(() => device.connects === 1, { message: "connected" });
    const s = device.stop();
    expect(device.stop()).toBe(s);
    await s;
    expect(gone(device.pid)).toBe(true);
    await waitFor(() => offline.length > 0, { message: "offline" });
    expect(offline).toEqual(["DISCONNECT"]);
  });
});
