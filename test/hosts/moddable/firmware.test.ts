// The Moddable targets' firmware slots (hosts/moddable/firmware.ts) off the board: the ESP32's writer over a stand-in
// for the SDK's `ota` module, and the desktop simulator's over a stand-in for its `file` module that behaves as the
// Linux one does (modules/files/file/lin/modFile.c: an existing file opened for writing is not truncated, write takes
// whole ArrayBuffers, rename takes a bare name). The real build runs the desktop slot end to end
// (firmware-suite.ts: "updates over the air").
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  DESKTOP_IMAGE,
  desktopFirmware,
  ESP8266_NO_OTA,
  esp32Firmware,
  noFirmwareUpdates,
} from "../../../hosts/moddable/firmware";
import { tmpDir, type Cleanups } from "../../helpers/device-rig";
import { FakePreferences } from "./fake-preferences";

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** The lin `file` module's File, on Node's fs. */
class LinFile {
  private fd: number;
  constructor(p: string, write: boolean) {
    this.fd = fs.existsSync(p) ? fs.openSync(p, write ? "r+" : "r") : fs.openSync(p, "w+");
  }
  write(data: ArrayBuffer): void {
    if (!(data instanceof ArrayBuffer)) throw new TypeError("not an ArrayBuffer");
    fs.writeSync(this.fd, new Uint8Array(data));
  }
  close(): void {
    fs.closeSync(this.fd);
  }
  static delete(p: string): boolean {
    fs.rmSync(p);
    return true;
  }
  static exists(p: string): boolean {
    return fs.existsSync(p);
  }
  static rename(p: string, name: string): boolean {
    if (name.includes("/")) throw new Error("invalid to");
    fs.renameSync(p, path.join(path.dirname(p), name));
    return true;
  }
}

function desktop(version = "0.1.0") {
  const dir = tmpDir(cleanups, "uiot-fw-desktop-");
  const prefs = new FakePreferences({ maxName: 64, maxEntry: 4096 });
  let restarts = 0;
  const fw = desktopFirmware({
    File: LinFile,
    root: `${dir}/`,
    preferences: prefs,
    version,
    restart: () => void restarts++,
  });
  return { dir, prefs, fw, restarts: () => restarts };
}

describe("the desktop simulator's slot", () => {
  it("writes the image into its file, in pieces and views on larger buffers, and runs as the new version once complete", () => {
    const d = desktop();
    expect(d.fw.version).toBe("0.1.0");
    const image = Uint8Array.from({ length: 5000 }, (_, i) => i * 7);
    const w = d.fw.writer!("2.0.0");
    w.begin(image.length);
    const backing = new Uint8Array(6000);
    backing.set(image.subarray(1000), 500);
    w.write(image.subarray(0, 1000).slice()); // a whole buffer
    w.write(backing.subarray(500, 4500)); // a view on part of one
    expect(d.fw.version).toBe("0.1.0"); // nothing bootable before complete()
    w.complete();
    expect(fs.readFileSync(path.join(d.dir, DESKTOP_IMAGE)).equals(Buffer.from(image))).toBe(true);
    expect(fs.existsSync(path.join(d.dir, "uiot-firmware.part"))).toBe(false);
    expect(d.fw.version).toBe("0.1.0"); // the running image until the restart
    d.fw.restart!();
    expect(d.restarts()).toBe(1);
    expect(d.fw.version).toBe("2.0.0");
    // and a simulator started again from scratch on the same preferences runs it too
    const again = desktopFirmware({
      File: LinFile,
      root: `${d.dir}/`,
      preferences: d.prefs,
      version: "0.1.0",
      restart() {},
    });
    expect(again.version).toBe("2.0.0");
  });

  it("starts a new image over a longer one left by a cut download, and refuses more or fewer bytes than announced", () => {
    const d = desktop();
    fs.writeFileSync(path.join(d.dir, "uiot-firmware.part"), new Uint8Array(9000).fill(0xee));
    const w = d.fw.writer!("2.0.0");
    w.begin(4);
    w.write(Uint8Array.of(1, 2, 3));
    expect(() => w.write(Uint8Array.of(4, 5))).toThrow(/more bytes than the 4 announced/);
    expect(() => w.complete()).toThrow(/3 of 4 bytes written/);
    w.write(Uint8Array.of(4));
    w.complete();
    expect([...fs.readFileSync(path.join(d.dir, DESKTOP_IMAGE))]).toEqual([1, 2, 3, 4]);
  });

  it("refuses an image larger than the slot, and a cancel removes the partial image and changes nothing", () => {
    const d = desktop();
    expect(() => d.fw.writer!("2.0.0").begin(d.fw.capacity! + 1)).toThrow(/the slot holds/);
    const w = d.fw.writer!("2.0.0");
    w.begin(10);
    w.write(new Uint8Array(5));
    w.cancel();
    w.cancel(); // again: nothing to undo
    expect(fs.readdirSync(d.dir)).toEqual([]);
    expect(d.fw.version).toBe("0.1.0");
  });
});

describe("the ESP32's slot", () => {
  it("streams into the SDK's ota session and completes it only when every byte came", () => {
    const calls: string[] = [];
    class FakeOta {
      constructor() {
        calls.push("new");
      }
      write(data: Uint8Array) {
        calls.push(`write ${data.length}`);
      }
      complete() {
        calls.push("complete");
      }
      cancel() {
        calls.push("cancel");
      }
    }
    const fw = esp32Firmware({ OTA: FakeOta, restart: () => calls.push("restart"), version: "1.0.0" });
    expect(() => fw.writer!("2.0.0").begin(0x1f0001)).toThrow(/the OTA slot holds 2031616/);
    const w = fw.writer!("2.0.0");
    w.begin(6);
    w.write(new Uint8Array(4));
    expect(() => w.complete()).toThrow(/4 of 6 bytes written/);
    w.write(new Uint8Array(2));
    w.complete();
    fw.restart!();
    expect(calls).toEqual(["new", "write 4", "write 2", "complete", "restart"]);
  });
});

describe("a target without updates", () => {
  it("says why (the ESP8266)", () => {
    expect(noFirmwareUpdates("1.0.0", ESP8266_NO_OTA)).toEqual({ version: "1.0.0", unsupported: ESP8266_NO_OTA });
  });
});
