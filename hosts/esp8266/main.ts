/**
 * The firmware on an ESP8266 (`mcconfig -d -m -p esp manifest.json`; esp/<board> targets work too).
 * Module name "hosts/esp8266/main" (creation.main in ./manifest.json). The persistent outbox is off here (see
 * docs/build-and-flash.md, "Memory and storage per chip"): pass `persistOutbox: true` to keep up to 4 messages /
 * 512 bytes.
 */
import WiFi from "embedded:network/interface/wifi";
import { ESP8266 } from "../moddable/chips";
import { ESP8266_NO_OTA, noFirmwareUpdates } from "../moddable/firmware";
import { createModdableHost, describeHost, firmwareVersion, wifiNetwork } from "../moddable/host";
import { start } from "../moddable/boot";
import Preference from "preference";

export default function main(): void {
  // No over-the-air updates here: update_firmware is answered report_fail -5 with the reason.
  const firmware = noFirmwareUpdates(firmwareVersion(), ESP8266_NO_OTA);
  const host = createModdableHost({ chip: ESP8266, preferences: Preference, network: wifiNetwork(WiFi), firmware });
  host.log("info", describeHost(host));
  start(host);
}
