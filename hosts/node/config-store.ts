// A file-backed KeyValueStore for configuration and secrets on the Node host: one JSON file, mode 0600, in a 0700
// directory, replaced atomically (atomic-file.ts: a temporary file with a random name created exclusively, fsync,
// rename, fsync of the folder), so a crash leaves the old file or the new one, never half a secret. Limits default
// to the ESP32's `preference` store (src/device/config-keys.ts: isConfigKey, CONFIG_VALUE_MAX_BYTES), so the simulator
// refuses what a board would. Values never appear in errors.
//
// The file is one JSON object of strings whose first member, "$store": "uiot-config/1", marks it as a store of
// ours. A file is read only if it is a regular file (not a symbolic link) owned by the user running this. It is
// taken as ours, its mode tightened to 0600 and written into, only if it is marked, or is an older store without
// the marker holding nothing but device configuration keys: another JSON file of strings is never changed.
import * as fs from "node:fs";
import * as path from "node:path";
import { inspect } from "node:util";
import {
  CA_MAX_PARTS,
  CONFIG_KEY_MAX_LENGTH,
  CONFIG_KEYS,
  CONFIG_VALUE_MAX_BYTES,
  caPartKey,
  isConfigKey,
} from "../../src/device/config-keys";
import type { KeyValueStore } from "../../src/host";
import { atomicFs, makePrivateDir, NotOursError, readOwnFile, writeFileAtomic } from "./atomic-file";

export type ConfigStoreErrorCode =
  | "INVALID_KEY"
  | "INVALID_VALUE"
  | "VALUE_TOO_LARGE"
  | "WRITE_FAILED"
  | "CORRUPT"
  | "NOT_A_STORE";

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

/** The member that marks a file as one of these stores, and its value (the format's version). */
export const STORE_MARKER_KEY = "$store";
export const STORE_MARKER = "uiot-config/1";

/** The largest file read as a store (a board's whole NVS partition is 24 KB). */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

const DEVICE_KEYS = new Set<string>([
  ...Object.values(CONFIG_KEYS),
  ...Array.from({ length: CA_MAX_PARTS }, (_, i) => caPartKey(i)),
]);

/** The keys a device's configuration uses (src/device/config-keys.ts): what an older, unmarked store holds. */
export function isDeviceConfigKey(key: string): boolean {
  return DEVICE_KEYS.has(key);
}

export interface FileConfigStoreOptions {
  /** Longest key (default CONFIG_KEY_MAX_LENGTH, ESP32 NVS); 0 for no limit. */
  maxKeyLength?: number;
  /** Largest value in UTF-8 bytes (default CONFIG_VALUE_MAX_BYTES, ESP32 NVS); 0 for no limit. */
  maxValueBytes?: number;
  /**
   * The keys a file without the "$store" marker (written before it existed) may hold for the store to write into
   * it; a file holding any other key is refused with NOT_A_STORE. Default: isDeviceConfigKey.
   */
  legacyKeys?: (key: string) => boolean;
}

/** What is on disk: a marked store, an older store without the marker, or nothing yet. */
export type ConfigStoreFormat = "marked" | "unmarked" | "none";

const own = (o: object, key: string) => Object.hasOwn(o, key);

export class FileConfigStore implements KeyValueStore {
  private values: Record<string, string>;
  private onDisk: ConfigStoreFormat = "none";
  private readonly maxKey: number;
  private readonly maxValue: number;
  private readonly legacyKeys: (key: string) => boolean;

  constructor(
    readonly file: string,
    options: FileConfigStoreOptions = {},
  ) {
    this.maxKey = options.maxKeyLength ?? CONFIG_KEY_MAX_LENGTH;
    this.maxValue = options.maxValueBytes ?? CONFIG_VALUE_MAX_BYTES;
    this.legacyKeys = options.legacyKeys ?? isDeviceConfigKey;
    makePrivateDir(path.dirname(path.resolve(file)));
    this.values = this.load();
  }

  /** The file's format when it was read or last written. */
  get format(): ConfigStoreFormat {
    return this.onDisk;
  }

  get(key: string): string | undefined {
    return own(this.values, key) ? this.values[key] : undefined;
  }

  set(key: string, value: string): void {
    this.update((draft) => draft.set(key, value));
  }

  delete(key: string): void {
    this.update((draft) => draft.delete(key));
  }

  /**
   * Makes several changes in one atomic write: `change` gets a draft of the store (the same rules as set and
   * delete); what it leaves there is written at once when it returns. If it throws, nothing is written.
   */
  update(change: (draft: KeyValueStore) => void): void {
    const next: Record<string, string> = { ...this.values };
    const draft: KeyValueStore = {
      get: (key) => (own(next, key) ? next[key] : undefined),
      set: (key, value) => {
        this.checkEntry(key, value);
        next[key] = value;
      },
      delete: (key) => {
        if (own(next, key)) delete next[key];
      },
    };
    change(draft);
    const keys = Object.keys(next);
    if (
      keys.length === Object.keys(this.values).length &&
      keys.every((k) => own(this.values, k) && this.values[k] === next[k])
    )
      return;
    this.write(next);
  }

  private checkEntry(key: string, value: string): void {
    this.checkKey(key);
    if (typeof value !== "string")
      throw new ConfigStoreError("INVALID_VALUE", `the value for "${key}" must be a string`);
    const bytes = Buffer.byteLength(value, "utf8");
    if (this.maxValue && bytes > this.maxValue)
      throw new ConfigStoreError(
        "VALUE_TOO_LARGE",
        `the value for "${key}" is ${bytes} bytes, over the limit of ${this.maxValue} (a board's preference store holds no more)`,
      );
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
    if (!isConfigKey(key, this.maxKey) || key === "__proto__") {
      // isConfigKey decides; the message says which part of the rule the key breaks
      const why =
        typeof key !== "string" || key === ""
          ? "a config key must be a non-empty string"
          : this.maxKey && key.length > this.maxKey
            ? `the config key "${key}" is longer than ${this.maxKey} characters (the ESP32 preference store's limit)`
            : `the config key ${JSON.stringify(key)} must be printable ASCII without spaces`;
      throw new ConfigStoreError("INVALID_KEY", why);
    }
    if (key === STORE_MARKER_KEY)
      throw new ConfigStoreError(
        "INVALID_KEY",
        `the config key "${STORE_MARKER_KEY}" is reserved: it marks the file as a config store`,
      );
  }

  private load(): Record<string, string> {
    let file: ReturnType<typeof readOwnFile>;
    try {
      file = readOwnFile(this.file, MAX_FILE_BYTES);
    } catch (e) {
      if (e instanceof NotOursError)
        throw new ConfigStoreError(
          "NOT_A_STORE",
          `${e.message}: a config store must be a regular file of the user running this; it is left as it is (give the store's own path)`,
        );
      if (e instanceof RangeError)
        throw new ConfigStoreError("NOT_A_STORE", `${e.message}: not a config store; it is left as it is`);
      throw new ConfigStoreError(
        "CORRUPT",
        `cannot read the config file ${this.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        e,
      );
    }
    if (file === undefined) return {};
    try {
      let data: unknown;
      try {
        data = JSON.parse(new TextDecoder().decode(file.bytes));
      } catch {
        // No cause: the engine's message quotes the text around the fault, and this text holds secrets.
        throw new ConfigStoreError(
          "CORRUPT",
          `the config file ${this.file} is not valid JSON: repair it or move it away (it may hold the device's secrets: keep a copy)`,
        );
      }
      if (
        data === null ||
        typeof data !== "object" ||
        Array.isArray(data) ||
        Object.values(data).some((v) => typeof v !== "string")
      )
        throw new ConfigStoreError(
          "CORRUPT",
          `the config file ${this.file} must hold one JSON object of string values: repair it or move it away`,
        );
      const values = { ...(data as Record<string, string>) };
      if (own(values, STORE_MARKER_KEY)) {
        if (values[STORE_MARKER_KEY] !== STORE_MARKER)
          throw new ConfigStoreError(
            "NOT_A_STORE",
            `the config file ${this.file} is marked as a store of another format ("${STORE_MARKER_KEY}" is not "${STORE_MARKER}"): it was written by another version; it is left as it is`,
          );
        delete values[STORE_MARKER_KEY];
        this.onDisk = "marked";
      } else this.onDisk = "unmarked";
      // A store of ours holds secrets, whoever made it: only its owner may read it. Another JSON file of strings
      // is read (it may be an older store with keys this version does not know) but its mode is left alone.
      const ours = this.onDisk === "marked" || Object.keys(values).every((k) => this.legacyKeys(k));
      if (ours && process.platform !== "win32" && (file.stat.mode & 0o077) !== 0) atomicFs.fchmodSync(file.fd, 0o600);
      return values;
    } finally {
      fs.closeSync(file.fd);
    }
  }

  /**
   * Throws NOT_A_STORE when the file may not be written into: it has no marker and holds keys other than
   * `legacyKeys` (it is some other JSON file of strings, not an older store).
   */
  checkWritable(): void {
    if (this.onDisk === "unmarked") {
      const foreign = Object.keys(this.values).filter((k) => !this.legacyKeys(k));
      if (foreign.length)
        throw new ConfigStoreError(
          "NOT_A_STORE",
          `${this.file} is not a config store (it has no "${STORE_MARKER_KEY}" marker and holds ${foreign.length} key(s) a device's configuration does not use): nothing is written into it; give another file, or move this one away`,
        );
    }
  }

  private write(next: Record<string, string>): void {
    this.checkWritable();
    try {
      writeFileAtomic(this.file, JSON.stringify({ [STORE_MARKER_KEY]: STORE_MARKER, ...next }, null, 1));
    } catch (e) {
      throw new ConfigStoreError(
        "WRITE_FAILED",
        `cannot write the config file ${this.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        e,
      );
    }
    this.values = next;
    this.onDisk = "marked";
  }
}
