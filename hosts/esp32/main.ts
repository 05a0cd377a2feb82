/**
 * The firmware on an ESP32 (`mcconfig -d -m -p esp32 manifest.json`; any esp32/<board> target works too).
 * Module name "hosts/esp32/main" (creation.main in ./manifest.json), so its relative imports resolve as on disk.
 */
import WiFi from "embedded:network/interface/wifi";
import { ESP32 } from "../moddable/chips";
import { createModdableHost, describeHost, wifiNetwork } from "../moddable/host";
import { start } from "../moddable/boot";
import Preference from "preference";

export default function main(): void {
  const host = createModdableHost({ chip: ESP32, preferences: Preference, network: wifiNetwork(WiFi) });
  host.log("info", describeHost(host));
  start(host);
}
