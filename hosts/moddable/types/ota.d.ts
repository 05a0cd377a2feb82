/**
 * Our declarations of two SDK modules the SDK ships no typing for; only what hosts/esp32/main.ts uses.
 * - "ota": build/devices/esp32/modules/ota (ota.js, ota.c). The constructor calls esp_ota_begin on
 *   esp_ota_get_next_update_partition() with OTA_WITH_SEQUENTIAL_WRITES (the slot is erased as it is written);
 *   write() is esp_ota_write; complete() is esp_ota_end (which checks the image) then esp_ota_set_boot_partition;
 *   cancel() is esp_ota_end alone. Each throws an Error ("no update parition", "begin failed", "write failed",
 *   "end failed", "can't change boot partition", "bad state") when ESP-IDF refuses.
 * - "system": modules/io/system/system.js (in the project's $(MODDABLE)/modules/io/manifest.json for esp32):
 *   System.restart() is esp_restart().
 */
declare module "ota" {
  export default class OTA {
    constructor();
    write(data: ArrayBufferLike | ArrayBufferView): void;
    complete(): void;
    cancel(): void;
  }
}

declare module "system" {
  export default class System {
    static restart(): void;
  }
}
