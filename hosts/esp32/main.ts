/**
 * The firmware on an ESP32 (`mcconfig -d -m -p esp32 manifest.json`; any esp32/<board> target works too).
 * Module name "hosts/esp32/main" (creation.main in ./manifest.json), so its relative imports resolve as on disk.
 */
/// <reference path="../moddable/types/ota.d.ts" />
import WiFi from "embedded:network/interface/wifi";
import OTA from "ota";
import System from "system";
import { ESP32 } from "../moddable/chips";
import { esp32Firmware } from "../moddable/firmware";
import { createModdableHost, describeHost, firmwareVersion, wifiNetwork } from "../moddable/host";
import { start } from "../moddable/boot";
import Preference from "preference";

export default function main(): void {
  // Firmware updates: the SDK's `ota` module into the next slot of ./partitions.csv, System.restart() into it.
  const firmware = esp32Firmware({ OTA, restart: () => System.restart(), version: firmwareVersion() });
  const host = createModdableHost({ chip: ESP32, preferences: Preference, network: wifiNetwork(WiFi), firmware });
  host.log("info", describeHost(host));
  start(host);
}
