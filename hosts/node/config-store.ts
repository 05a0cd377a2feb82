// A file-backed KeyValueStore for configuration and secrets on the Node host: one JSON file, mode 0600, in a 0700
// directory, replaced atomically (temporary file, fsync, rename), so a crash leaves the old file or the new one,
// never half a secret. Limits default to the ESP32's `preference` store (keys of at most 15 characters, values of
// at most 4000 bytes), so the simulator refuses what a board would. Values never appear in errors.
import * as fs from "node:fs";
import * as path from "node:path";
import { inspect } from "node:util";
import type { KeyValueStore } from "../../src/device/host";

export type ConfigStoreErrorCode = "INVALID_KEY" | "INVALID_VALUE" | "VALUE_TOO_LARGE" | "WRITE_FAILED" | "CORRUPT";

export class ConfigStoreError extends Error {
  readonly code: ConfigStoreErrorCode;
  override cause?: unknown;
  constructor(code: ConfigStoreErrorCode, message: string, cause?: unknown) {
    super(message);
    this.code = code;
    this.name = "ConfigStoreError";
    if (cause !== undefined) this.cause = cause;
  }
}

export interface FileConfigStoreOptions {
  /** Longest key (default 15, ESP32 NVS); 0 for no limit. */
  maxKeyLength?: number;
  /** Largest value in UTF-8 bytes (default 4000, ESP32 NVS); 0 for no limit. */
  maxValueBytes?: number;
}

export class FileConfigStore implements KeyValueStore {
  private values: Record<string, string>;
  private readonly maxKey: number;
  private readonly maxValue: number;

  constructor(readonly file: string, options: FileConfigStoreOptions = {}) {
    this.maxKey = options.maxKeyLength ?? 15;
    this.maxValue = options.maxValueBytes ?? 4000;
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    this.values = this.load();
  }

  get(key: string): string | undefined {
    return Object.prototype.hasOwnProperty.call(this.values, key) ? this.values[key] : undefined;
  }

  set(key: string, value: string): void {
    this.checkKey(key);
    if (typeof value !== "string") throw new ConfigStoreError("INVALID_VALUE", `the value for "${key}" must be a string`);
    const bytes = Buffer.byteLength(value, "utf8");
    if (this.maxValue && bytes > this.maxValue)
      throw new ConfigStoreError("VALUE_TOO_LARGE", `the value for "${key}" is ${bytes} bytes, over the limit of ${this.maxValue} (a board's preference store holds no more)`);
    this.write({ ...this.values, [key]: value });
  }

  delete(key: string): void {
    if (this.get(key) === undefined) return;
    const next = { ...this.values };
    delete next[key];
    this.write(next);
  }

  /** Printed (String, util.inspect, JSON.stringify): the file and the keys it holds, never a value. */
  toString(): string {
    return `FileConfigStore ${this.file} (keys: ${Object.keys(this.values).join(", ") || "none"}; values not shown)`;
  }

  toJSON(): { file: string; keys: string[] } {
    return { file: this.file, keys: Object.keys(this.values) };
  }

  [inspect.custom](): string {
    return this.toString();
  }

  private checkKey(key: string): void {
    if (typeof key !== "string" || key === "") throw new ConfigStoreError("INVALID_KEY", "a config key must be a non-empty string");
    if (this.maxKey && key.length > this.maxKey)
      throw new ConfigStoreError("INVALID_KEY", `the config key "${key}" is longer than ${this.maxKey} characters (the ESP32 preference store's limit)`);
    if (key === "__proto__" || !/^[\x21-\x7e]+$/.test(key)) throw new ConfigStoreError("INVALID_KEY", `the config key ${JSON.stringify(key)} must be printable ASCII without spaces`);
  }

  private load(): Record<string, string> {
    let text: string;
    try {
      text = fs.readFileSync(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return {};
      throw new ConfigStoreError("CORRUPT", `cannot read the config file ${this.file}: ${(e as Error).message}`, e);
    }
    fs.chmodSync(this.file, 0o600); // it holds secrets, whoever made it
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      // No cause: the engine's message quotes the text around the fault, and this text holds secrets.
      throw new ConfigStoreError("CORRUPT", `the config file ${this.file} is not valid JSON: repair it or move it away (it may hold the device's secrets: keep a copy)`);
    }
    if (data === null || typeof data !== "object" || Array.isArray(data) || Object.values(data).some((v) => typeof v !== "string"))
      throw new ConfigStoreError("CORRUPT", `the config file ${this.file} must hold one JSON object of string values: repair it or move it away`);
    return { ...(data as Record<string, string>) };
  }

  private write(next: Record<string, string>): void {
    const tmp = `${this.file}.tmp`;
    try {
      const fd = fs.openSync(tmp, "w", 0o600);
      try {
        fs.writeSync(fd, JSON.stringify(next, null, 1));
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, this.file);
    } catch (e) {
      try {
        fs.rmSync(tmp, { force: true });
      } catch {
        // not a file we made (or already gone)
      }
      throw new ConfigStoreError("WRITE_FAILED", `cannot write the config file ${this.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
    }
    this.values = next;
  }
}
