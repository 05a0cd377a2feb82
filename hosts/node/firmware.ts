// The Node host's firmware slot: what stands for an ESP32's OTA partitions when the firmware runs on the desktop.
//
//   <dir>/firmware/incoming.part   the image being written (begin truncates it; a crash leaves it, unused)
//   <dir>/firmware/image.bin       the last complete image (complete() renames incoming.part to it)
//   <dir>/firmware/boot.json       {"version","size","md5"}: what boots next, replaced atomically by complete()
//
// The version is read once, when the host is made: it is the version of the image "running". The firmware on the
// desktop is always this repository's code, so the version is only a label; restart() asks the owner (the
// simulator, a test) to stop the device and start it again on a new host over the same folder, which then runs
// "as" the new version. A power cut while writing leaves boot.json as it was: the old version boots.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Firmware, ImageWriter } from "../../src/host";
import { makePrivateDir, writeFileAtomic } from "./atomic-file";

export interface NodeFirmwareOptions {
  /** The version before any update (default "1.0.0"); an image booted from boot.json wins. */
  version?: string;
  /** The largest image, bytes (default 4 MB, an ESP32 OTA slot is about 1.9 MB). */
  capacity?: number;
  /** Called by restart(): stop this device and start it again on the same folder. */
  restart?: () => void;
}

export const DEFAULT_FIRMWARE_VERSION = "1.0.0";

/** What boot.json says boots next, or undefined before any update. */
export function bootedImage(dir: string): { version: string; size: number; md5: string } | undefined {
  try {
    const data = JSON.parse(fs.readFileSync(path.join(dir, "firmware", "boot.json"), "utf8")) as {
      version?: unknown;
      size?: unknown;
      md5?: unknown;
    };
    if (typeof data.version !== "string" || data.version === "") return undefined;
    return { version: data.version, size: Number(data.size), md5: String(data.md5) };
  } catch {
    return undefined;
  }
}

export function nodeFirmware(
  dir: string,
  options: NodeFirmwareOptions = {},
  log: (level: "info" | "warn", message: string) => void = () => {},
): Firmware {
  const folder = path.join(dir, "firmware");
  const version = bootedImage(dir)?.version ?? options.version ?? DEFAULT_FIRMWARE_VERSION;
  const capacity = options.capacity ?? 4 * 1024 * 1024;
  return {
    version,
    capacity,
    writer: (next: string): ImageWriter => new FileImageWriter(folder, next, capacity),
    restart: () => {
      if (options.restart) options.restart();
      else
        log(
          "warn",
          "firmware restart asked for, but this Node host has no restart hook: the new version runs from the next start",
        );
    },
  };
}

class FileImageWriter implements ImageWriter {
  private fd: number | undefined;
  private size = 0;
  private written = 0;
  private readonly hash = createHash("md5");
  constructor(
    private readonly folder: string,
    private readonly version: string,
    private readonly capacity: number,
  ) {}

  private get part(): string {
    return path.join(this.folder, "incoming.part");
  }

  begin(size: number): void {
    if (size > this.capacity) throw new Error(`the image is ${size} bytes; this slot holds ${this.capacity}`);
    makePrivateDir(this.folder);
    this.fd = fs.openSync(this.part, "w", 0o600);
    this.size = size;
  }

  write(chunk: Uint8Array): void {
    if (this.fd === undefined) throw new Error("write before begin (or after complete / cancel)");
    if (this.written + chunk.length > this.size) throw new Error(`more bytes than the ${this.size} announced`);
    let at = 0;
    while (at < chunk.length) at += fs.writeSync(this.fd, chunk, at, chunk.length - at);
    this.hash.update(chunk);
    this.written += chunk.length;
  }

  complete(): void {
    if (this.fd === undefined) throw new Error("complete before begin");
    if (this.written !== this.size) throw new Error(`${this.written} of ${this.size} bytes written`);
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = undefined;
    fs.renameSync(this.part, path.join(this.folder, "image.bin"));
    writeFileAtomic(
      path.join(this.folder, "boot.json"),
      JSON.stringify({ version: this.version, size: this.size, md5: this.hash.digest("hex") }),
    );
  }

  cancel(): void {
    if (this.fd !== undefined) {
      try {
        fs.closeSync(this.fd);
      } catch {
        /* already gone */
      }
      this.fd = undefined;
    }
    fs.rmSync(this.part, { force: true });
  }
}
