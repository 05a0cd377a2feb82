/**
 * The firmware in Moddable's desktop simulator (`mcconfig -d -m manifest.json` on Linux, macOS or Windows).
 * The same host as on a board, on the computer's network: there is no Wi-Fi to manage, the link is simply up.
 * Module name "hosts/moddable-desktop/main" (creation.main in ./manifest.json).
 *
 * mc/config `chip` ("esp32" or "esp8266"; set in a manifest's "config") runs it with that chip's limits (config
 * values, outbox, TLS fragments, frames): with the chip's XS creation settings, the desktop build then shows what
 * the board would do. The tests build it that way (test/helpers/moddable-firmware.ts).
 *
 * Firmware updates over the air run here too (hosts/moddable/firmware.ts, desktopFirmware): the image is written to
 * a file in mc/config file.root, and the restart into it stops the device and starts it again in this process, as
 * the new version. Under the ESP8266's limits an update is refused, as on the board.
 */
import config from "mc/config";
import Preference from "preference";
import { File } from "file";
import type { Device } from "../../src/device/app";
import type { Firmware } from "../../src/host";
import { DESKTOP, ESP32, ESP8266, type ChipProfile } from "../moddable/chips";
import { desktopFirmware, ESP8266_NO_OTA, noFirmwareUpdates } from "../moddable/firmware";
import { createModdableHost, describeHost, firmwareVersion, type ModdableHost } from "../moddable/host";
import { start } from "../moddable/boot";
import { seededRandom } from "../moddable/random";

function chipName(): string | undefined {
  const chip = (config as { chip?: unknown }).chip;
  return chip === "esp32" || chip === "esp8266" ? chip : undefined;
}

function profile(): ChipProfile {
  const chip = chipName();
  if (chip) return { ...(chip === "esp32" ? ESP32 : ESP8266), name: `moddable-desktop (${chip} limits)` };
  return DESKTOP;
}

export default function main(): void {
  let device: Device | undefined;
  let host: ModdableHost | undefined;
  const boot = (): void => {
    void start(host as ModdableHost).then((d) => {
      device = d;
    });
  };
  const firmware: Firmware =
    chipName() === "esp8266"
      ? noFirmwareUpdates(firmwareVersion(), ESP8266_NO_OTA)
      : desktopFirmware({
          File,
          root: (config as { file?: { root?: string } }).file?.root ?? "/tmp/",
          preferences: Preference,
          version: firmwareVersion(),
          restart: () => {
            (host as ModdableHost).log(
              "info",
              "restarting into the new image (in this process: the desktop simulator)",
            );
            const running = device;
            device = undefined;
            if (running) running.stop();
            boot();
          },
        });
  // XS's Math.random is never seeded on the desktop: every run would draw the same jitter and masks
  host = createModdableHost({ chip: profile(), preferences: Preference, random: seededRandom(Date.now()), firmware });
  host.log("info", describeHost(host));
  boot();
}
