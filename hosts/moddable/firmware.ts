/**
 * Firmware updates on the Moddable targets (Host.firmware, src/uiot/ota.ts). Plain TypeScript: the SDK's classes
 * are handed in by each target's main.ts, so this module can be preloaded and tested off the board.
 *
 * ESP32: the SDK's `ota` module writes the image into the next OTA app partition as it streams in (see
 * types/ota.d.ts), hosts/esp32/partitions.csv gives the two slots (ota_0, ota_1, 0x1F0000 bytes each at least),
 * and System.restart() boots the new image. Rollback: the SDK 8.2.3 has no binding for
 * esp_ota_mark_app_valid_cancel_rollback, so the bootloader's rollback stays off (its default): turning it on would
 * roll every update back at the next reset. An image that ESP-IDF's esp_ota_end accepts (a valid app image, its
 * checksum and SHA-256 right) boots and stays, even if it then cannot log in; it is recovered over USB.
 *
 * ESP8266: the SDK has no `ota` module for it (the ota manifest refuses every platform but esp32), and a 4 MB
 * ESP8266's 1 MB program area does not hold two images of this firmware: every update_firmware is answered
 * report_fail -5 with that reason.
 *
 * The desktop simulator (mcsim): the image goes into a file through the SDK's `file` module (config.file.root, /tmp/
 * on Linux), complete() records its version in the preference domain "fw", and the restart stops the device and
 * starts it again in the same process, where that version is the one running. The simulator's code is the same
 * build whatever the version, so the version is a label, as in the Node host's simulator (hosts/node/firmware.ts).
 */
import type { Firmware, ImageWriter } from "../../src/host";
import { decodeUtf8, utf8Bytes } from "../../src/mqtt/utf8";
import type { Preferences } from "./preference-store";

/** The SDK's OTA session (build/devices/esp32/modules/ota). */
export interface OtaSession {
  write(data: ArrayBufferLike | ArrayBufferView): void;
  complete(): void;
  cancel(): void;
}

/** The smaller of the two OTA app slots of hosts/esp32/partitions.csv (ota_0: 0x1F0000, ota_1: 0x1FE000). */
const ESP32_OTA_SLOT = 0x1f0000;

export const ESP8266_NO_OTA =
  "the Moddable SDK has no OTA module for the ESP8266 (its `ota` module is ESP32-only) and the ESP8266 build keeps one image: update this device over USB (npm run flash:esp8266)";

export interface Esp32FirmwareOptions {
  /** The SDK's `ota` class: the default export of its "ota" module. */
  OTA: unknown;
  /** System.restart(). */
  restart(): void;
  /** The running version (mc/config `firmware`). */
  version: string;
  /** Default ESP32_OTA_SLOT. */
  capacity?: number;
}

/** The ESP32's firmware: the next OTA slot through the SDK's `ota` module. */
export function esp32Firmware(options: Esp32FirmwareOptions): Firmware {
  const OTA = options.OTA as new () => OtaSession;
  const capacity = options.capacity ?? ESP32_OTA_SLOT;
  return {
    version: options.version,
    capacity,
    writer: (): ImageWriter => new OtaWriter(OTA, capacity),
    restart: options.restart,
  };
}

/** A device that cannot be updated over the air: update_firmware is answered report_fail -5 with `reason`. */
export function noFirmwareUpdates(version: string, reason: string): Firmware {
  return { version, unsupported: reason };
}

/**
 * What both slots' writers check, whatever they write to: an image no larger than the slot, no more bytes than
 * begin() announced, and complete() only once all of them came. `T` is what an image is written into while it
 * comes (the SDK's OTA session, an open file); the subclass opens, writes, finishes and abandons it.
 */
abstract class SlotWriter<T> implements ImageWriter {
  private target: T | undefined = undefined;
  private size = 0;
  private written = 0;
  constructor(
    private readonly capacity: number,
    /** How the slot is named in the refusal of a too large image. */
    private readonly slot: string,
  ) {}

  /** What is being written now (a begin() after another without complete() or cancel() finds the first). */
  protected get current(): T | undefined {
    return this.target;
  }

  protected abstract open(): T;
  protected abstract put(target: T, chunk: Uint8Array): void;
  /** Makes the written image the one to boot next. */
  protected abstract finish(target: T): void;
  /** Undoes what open() and put() did; `target` is undefined when nothing is being written. Never throws. */
  protected abstract abandon(target: T | undefined): void;

  begin(size: number): void {
    if (size > this.capacity) throw new Error(`the image is ${size} bytes; the ${this.slot} holds ${this.capacity}`);
    this.target = this.open();
    this.size = size;
    this.written = 0;
  }

  write(chunk: Uint8Array): void {
    const t = this.target;
    if (t === undefined) throw new Error("write before begin");
    if (this.written + chunk.length > this.size) throw new Error(`more bytes than the ${this.size} announced`);
    this.put(t, chunk);
    this.written += chunk.length;
  }

  complete(): void {
    const t = this.target;
    if (t === undefined) throw new Error("complete before begin");
    if (this.written !== this.size) throw new Error(`${this.written} of ${this.size} bytes written`);
    this.target = undefined;
    this.finish(t);
  }

  cancel(): void {
    const t = this.target;
    this.target = undefined;
    this.abandon(t);
  }
}

class OtaWriter extends SlotWriter<OtaSession> {
  constructor(
    private readonly OTA: new () => OtaSession,
    capacity: number,
  ) {
    super(capacity, "OTA slot");
  }

  protected open(): OtaSession {
    return new this.OTA(); // throws when there is no OTA partition (a factory-only partition table)
  }

  protected put(s: OtaSession, chunk: Uint8Array): void {
    s.write(chunk);
  }

  protected finish(s: OtaSession): void {
    s.complete(); // esp_ota_end checks the image; then the boot partition is switched
  }

  protected abandon(s: OtaSession | undefined): void {
    if (!s) return;
    try {
      s.cancel();
    } catch {
      /* nothing more to undo: the boot partition was never switched */
    }
  }
}

/** What the desktop writer needs of the SDK's `file` module's File (modules/files/file). */
interface FileHandle {
  write(data: ArrayBufferLike): void;
  close(): void;
}
interface FileClass {
  new (path: string, write: boolean): FileHandle;
  delete(path: string): boolean;
  exists(path: string): boolean;
  rename(path: string, name: string): boolean;
}

/** The preference domain and key of the version the desktop simulator runs after an update. */
const FW_DOMAIN = "fw";
const FW_VERSION = "version";
/** The files of the desktop image slot, in config.file.root. */
export const DESKTOP_IMAGE = "uiot-firmware.bin";
const DESKTOP_PART = "uiot-firmware.part";

export interface DesktopFirmwareOptions {
  /** The SDK's File class (the `File` export of its "file" module). */
  File: unknown;
  /** Where the image files go: mc/config file.root, ending in "/". */
  root: string;
  /** The SDK's Preference class: where the version to run is recorded. */
  preferences: unknown;
  /** The version built in (mc/config `firmware`): the one running until an update completes. */
  version: string;
  /** Stops the device and starts it again (hosts/moddable-desktop/main.ts). */
  restart(): void;
  /** The largest image, bytes (default ESP32_OTA_SLOT). */
  capacity?: number;
}

/**
 * The desktop simulator's firmware slot: a file and a preference (see the module's comment). `version` is the one
 * booted: the preference's when an update completed before this start, else the one built in; restart() boots
 * again, as whatever an update made bootable.
 */
export function desktopFirmware(options: DesktopFirmwareOptions): Firmware {
  const prefs = options.preferences as Preferences;
  const File = options.File as FileClass;
  const capacity = options.capacity ?? ESP32_OTA_SLOT;
  const booted = (): string => {
    const v = prefs.get(FW_DOMAIN, FW_VERSION);
    return v instanceof ArrayBuffer && v.byteLength > 0
      ? decodeUtf8(new Uint8Array(v), 0, v.byteLength)
      : options.version;
  };
  let running = booted();
  return {
    get version(): string {
      return running;
    },
    capacity,
    writer: (version: string): ImageWriter => new FileWriter(File, options.root, prefs, version, capacity),
    restart: () => {
      running = booted();
      options.restart();
    },
  };
}

class FileWriter extends SlotWriter<FileHandle> {
  private readonly part: string;
  constructor(
    private readonly File: FileClass,
    private readonly root: string,
    private readonly prefs: Preferences,
    private readonly version: string,
    capacity: number,
  ) {
    super(capacity, "slot");
    this.part = root + DESKTOP_PART;
  }

  protected open(): FileHandle {
    // the image begun before, and a part left by a download cut short: opened for writing, it would not be truncated
    this.abandon(this.current);
    return new this.File(this.part, true);
  }

  protected put(f: FileHandle, chunk: Uint8Array): void {
    // The file module writes whole ArrayBuffers: a view on part of one is copied.
    const whole = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
    f.write(whole ? chunk.buffer : chunk.slice().buffer);
  }

  protected finish(f: FileHandle): void {
    f.close();
    if (!this.File.rename(this.part, DESKTOP_IMAGE))
      throw new Error(`could not rename ${this.part} to ${this.root}${DESKTOP_IMAGE}`);
    this.prefs.set(FW_DOMAIN, FW_VERSION, utf8Bytes(this.version).buffer as ArrayBuffer); // what boots next
  }

  protected abandon(f: FileHandle | undefined): void {
    try {
      if (f) f.close();
      if (this.File.exists(this.part)) this.File.delete(this.part);
    } catch {
      /* nothing was made bootable: the running version stays the one to boot */
    }
  }
}
