/**
 * The firmware in Moddable's desktop simulator (`mcconfig -d -m manifest.json` on Linux, macOS or Windows).
 * The same host as on a board, on the computer's network: there is no Wi-Fi to manage, the link is simply up.
 * Module name "hosts/moddable-desktop/main" (creation.main in ./manifest.json).
 *
 * mc/config `chip` ("esp32" or "esp8266"; set in a manifest's "config") runs it with that chip's limits (config
 * values, outbox, TLS fragments, frames): with the chip's XS creation settings, the desktop build then shows what
 * the board would do. The tests build it that way (test/helpers/moddable-firmware.ts).
 */
import config from "mc/config";
import Preference from "preference";
import { DESKTOP, ESP32, ESP8266, type ChipProfile } from "../moddable/chips";
import { createModdableHost, describeHost } from "../moddable/host";
import { start } from "../moddable/boot";
import { seededRandom } from "../moddable/random";

function profile(): ChipProfile {
  const chip = (config as { chip?: unknown }).chip;
  if (chip === "esp32" || chip === "esp8266")
    return { ...(chip === "esp32" ? ESP32 : ESP8266), name: `moddable-desktop (${chip} limits)` };
  return DESKTOP;
}

export default function main(): void {
  // XS's Math.random is never seeded on the desktop: every run would draw the same jitter and masks
  const host = createModdableHost({ chip: profile(), preferences: Preference, random: seededRandom(Date.now()) });
  host.log("info", describeHost(host));
  start(host);
}
