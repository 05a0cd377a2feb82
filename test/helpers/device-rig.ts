// What the tests of the device against the emulated cloud share (the firmware entry on V8 and on XS in
// test/e2e/firmware-entry.test.ts, the real Moddable image, OTA, secrets): a throwaway device store, a Node host that
// keeps its log, a provisioned config, and the emulated cloud knowing the device. Each test file passes its own list
// of cleanups, run after every test.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startCloud, type Cloud } from "../../tools/cloud";
import { createNodeHost, type NodeHost } from "../../hosts/node/host";
import { CONFIG_KEYS } from "../../src/device/config-keys";
import type { LogLevel } from "../../src/host";
import { getTestCerts } from "./certs";

export const PSN = "TESTPRODUCT00001",
  DSN = "thermostat-42";
export const PRODUCT_SECRET = "productsecret123",
  DEVICE_SECRET = "devicesecret4567";

export type Cleanups = (() => unknown)[];

/** A fresh directory, removed when the test ends. */
export function tmpDir(cleanups: Cleanups, prefix = "uiot-device-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A Node host on `dir` whose log lines are kept. */
export function hostOn(dir: string) {
  const logs: [LogLevel, string][] = [];
  const host = createNodeHost({ dir, log: (level, message) => void logs.push([level, message]) });
  return { host, logs, saw: (re: RegExp) => logs.some(([, m]) => re.test(m)) };
}

/** Stores the test device's identity, one of its secrets, the broker URL and, for TLS, the CA. */
export function provision(
  host: NodeHost,
  url: string,
  secret: { device?: string; product?: string },
  ca?: string,
): void {
  host.config.set(CONFIG_KEYS.productSN, PSN);
  host.config.set(CONFIG_KEYS.deviceSN, DSN);
  if (secret.device) host.config.set(CONFIG_KEYS.deviceSecret, secret.device);
  if (secret.product) host.config.set(CONFIG_KEYS.productSecret, secret.product);
  host.config.set(CONFIG_KEYS.brokerUrl, url);
  if (ca) host.config.set(CONFIG_KEYS.caCert, ca);
}

/** The emulated cloud with the test product (dynamic registration on) and the device, closed when the test ends. */
export async function cloudWith(cleanups: Cleanups, device: { deviceSecret?: string }): Promise<Cloud> {
  const cloud = await startCloud({
    products: [{ productSN: PSN, productSecret: PRODUCT_SECRET, dynamicRegistration: true }],
    devices: [{ productSN: PSN, deviceSN: DSN, ...device }],
  });
  cleanups.push(() => cloud.close());
  return cloud;
}

/** The emulated cloud on TLS (the test CA's server certificate) knowing the device by its secret; `url` names it
 * "localhost", the name the certificate carries. Closed when the test ends. */
export async function tlsCloudWith(cleanups: Cleanups): Promise<{ cloud: Cloud; url: string; ca: string }> {
  const certs = await getTestCerts();
  const cloud = await startCloud({
    products: [{ productSN: PSN, productSecret: PRODUCT_SECRET }],
    devices: [{ productSN: PSN, deviceSN: DSN, deviceSecret: DEVICE_SECRET }],
    tls: { cert: certs.server.chain, key: certs.server.key },
  });
  cleanups.push(() => cloud.close());
  return { cloud, url: cloud.tlsUrl!.replace("127.0.0.1", "localhost"), ca: certs.ca.cert };
}
