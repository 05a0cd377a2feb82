/**
 * The firmware on an ESP8266 (`mcconfig -d -m -p esp manifest.json`; esp/<board> targets work too).
 * Module name "hosts/esp8266/main" (creation.main in ./manifest.json). The persistent outbox is off here (see
 * README, "Memory and storage per chip"): pass `persistOutbox: true` to keep up to 4 messages / 512 bytes.
 */
import WiFi from "embedded:network/interface/wifi";
import { ESP8266 } from "../moddable/chips";
import { createModdableHost, describeHost, wifiNetwork } from "../moddable/host";
import { start } from "../moddable/boot";
import Preference from "preference";

export default function main(): void {
  const host = createModdableHost({ chip: ESP8266, preferences: Preference, network: wifiNetwork(WiFi) });
  host.log("info", describeHost(host));
  start(host);
}
