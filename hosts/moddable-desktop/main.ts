/**
 * The firmware in Moddable's desktop simulator (`mcconfig -d -m manifest.json` on Linux, macOS or Windows).
 * The same host as on a board, on the computer's network: there is no Wi-Fi to manage, the link is simply up.
 * Module name "hosts/moddable-desktop/main" (creation.main in ./manifest.json).
 */
import { DESKTOP } from "../moddable/chips";
import { createModdableHost, describeHost } from "../moddable/host";
import { start } from "../moddable/boot";

export default function main(): void {
  const host = createModdableHost({ chip: DESKTOP });
  host.log("info", describeHost(host));
  start(host);
}
