/**
 * The firmware in Moddable's desktop simulator (`mcconfig -d -m manifest.json` on Linux, macOS or Windows).
 * The same host as on a board, on the computer's network: there is no Wi-Fi to manage, the link is simply up.
 * Module name "hosts/moddable-desktop/main" (creation.main in ./manifest.json).
 */
import { DESKTOP } from "../moddable/chips";
import { createModdableHost, describeHost } from "../moddable/host";
import { start } from "../moddable/boot";
import { seededRandom } from "../moddable/random";
import Preference from "preference";

export default function main(): void {
  // XS's Math.random is never seeded on the desktop: every run would draw the same jitter and masks
  const host = createModdableHost({ chip: DESKTOP, preferences: Preference, random: seededRandom(Date.now()) });
  host.log("info", describeHost(host));
  start(host);
}
