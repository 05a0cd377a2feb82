// Crash-safe file writes for the Node host's stores (config store, outbox, provisioning output). A file is never
// written in place: the new content goes to a temporary file with a random name in the same folder, created
// exclusively (O_CREAT|O_EXCL, so a file or symbolic link already at that name makes the write fail rather than
// be written through; O_NOFOLLOW as well) with mode 0600, synced to disk, renamed over the target (rename replaces
// a symbolic link at the target, never what it points to), and then the folder is synced so the rename itself
// survives a power cut. A crash at any point leaves the old file or the new one, whole; at worst a temporary file
// is left behind (0600, named `.<name>.<random>.tmp`).
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

/**
 * The file system calls the functions here make. @internal A test seam: tests replace or spy on these to see that
 * the folder is synced, to plant a file at the temporary name just before it is created, or to "cut the power"
 * between two steps.
 */
export const atomicFs = {
  openSync: fs.openSync,
  writeSync: fs.writeSync as (fd: number, data: Uint8Array, offset: number, length: number) => number,
  fsyncSync: fs.fsyncSync,
  fchmodSync: fs.fchmodSync,
  fstatSync: fs.fstatSync as (fd: number) => fs.Stats,
  closeSync: fs.closeSync,
  renameSync: fs.renameSync,
  linkSync: fs.linkSync,
  unlinkSync: fs.unlinkSync,
  lstatSync: fs.lstatSync as (file: string) => fs.Stats,
};

const C = fs.constants;
/** 0 where the platform has no such flag (Windows). */
const NOFOLLOW = C.O_NOFOLLOW ?? 0;
const NONBLOCK = C.O_NONBLOCK ?? 0;
const DIRECTORY = C.O_DIRECTORY ?? 0;

/** The name of a temporary file for `file`: same folder, hidden, 128 random bits. */
export function tempName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(16).toString("hex")}.tmp`);
}

/** True for the names tempName() makes (and the fixed `<name>.tmp` of older versions). */
export function isTempName(name: string): boolean {
  return name.endsWith(".tmp");
}

/** What a file system answers when it cannot sync a folder at all (some network and FUSE file systems). */
const CANNOT_SYNC_DIR = new Set(["EINVAL", "ENOTSUP", "EOPNOTSUPP"]);

/**
 * Syncs a folder, so that a file just created, renamed or removed in it stays so after a power cut. Windows cannot
 * open a folder for that (and does not need it): a no-op there; so it is on a file system that cannot sync a
 * folder. Any other failure (an I/O error) is thrown.
 */
export function syncDir(dir: string): void {
  if (process.platform === "win32") return;
  const fd = atomicFs.openSync(dir, C.O_RDONLY | DIRECTORY);
  try {
    atomicFs.fsyncSync(fd);
  } catch (e) {
    if (!CANNOT_SYNC_DIR.has((e as NodeJS.ErrnoException).code ?? "")) throw e;
  } finally {
    atomicFs.closeSync(fd);
  }
}

/**
 * Creates `dir` (and missing parents) with mode 0700 and syncs each parent of a folder it created, so the folder
 * outlives a power cut along with what is written in it.
 */
export function makePrivateDir(dir: string): void {
  const first = fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (first === undefined) return;
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    syncDir(path.dirname(d));
    if (d === path.resolve(first) || d === path.dirname(d)) break;
  }
}

export class TargetExistsError extends Error {
  readonly code = "EEXIST";
  constructor(
    readonly file: string,
    readonly kind: "file" | "directory" | "symbolic link" | "other",
  ) {
    super(`${file} already exists`);
    this.name = "TargetExistsError";
  }
}

export interface AtomicWriteOptions {
  /** Mode of the new file (default 0600). */
  mode?: number;
  /**
   * Replace a file already at the target (default true). With false the target must not exist: it is created
   * with link(2), which fails if anything appeared there meanwhile (TargetExistsError), never replacing it.
   */
  overwrite?: boolean;
}

function kindOf(st: fs.Stats): TargetExistsError["kind"] {
  return st.isSymbolicLink() ? "symbolic link" : st.isDirectory() ? "directory" : st.isFile() ? "file" : "other";
}

/**
 * Writes `data` to `file` in one atomic step (see the top of this file). Throws what the file system threw (an
 * ErrnoException), or TargetExistsError with `overwrite: false`; the target is then untouched and no temporary file
 * is left behind.
 */
export function writeFileAtomic(file: string, data: Uint8Array | string, options: AtomicWriteOptions = {}): void {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const mode = options.mode ?? 0o600;
  const dir = path.dirname(path.resolve(file));
  const tmp = tempName(path.resolve(file));
  if (options.overwrite === false) {
    let st: fs.Stats | undefined;
    try {
      st = atomicFs.lstatSync(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    if (st) throw new TargetExistsError(file, kindOf(st));
  }
  const fd = atomicFs.openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | NOFOLLOW, mode);
  let linked = false;
  try {
    try {
      atomicFs.fchmodSync(fd, mode); // whatever the umask
      for (let at = 0; at < bytes.length; ) at += atomicFs.writeSync(fd, bytes, at, bytes.length - at);
      atomicFs.fsyncSync(fd);
    } finally {
      atomicFs.closeSync(fd);
    }
    if (options.overwrite !== false) atomicFs.renameSync(tmp, file);
    else {
      try {
        atomicFs.linkSync(tmp, file); // fails if the target appeared since the check: never replaces it
        linked = true;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "EEXIST") {
          let kind: TargetExistsError["kind"] = "other";
          try {
            kind = kindOf(atomicFs.lstatSync(file));
          } catch {
            // gone again: still refused
          }
          throw new TargetExistsError(file, kind);
        }
        if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "ENOSYS") throw e;
        // A file system without hard links (FAT, exFAT): checked above, so rename (a race remains, only there).
        atomicFs.renameSync(tmp, file);
      }
    }
  } catch (e) {
    try {
      atomicFs.unlinkSync(tmp); // ours: created exclusively above (ENOENT once renamed)
    } catch {
      // the power is out, or it is already gone
    }
    throw e;
  }
  if (linked) {
    try {
      atomicFs.unlinkSync(tmp); // the target holds the data now; this was its second name
    } catch {
      // a second name of the new file (0600) is left; the write itself is done
    }
  }
  syncDir(dir);
}

export type NotOursReason = "symbolic link" | "not a regular file" | "other owner";

/** Why a file is not one of ours to read or change. */
export class NotOursError extends Error {
  constructor(
    readonly file: string,
    readonly reason: NotOursReason,
    readonly uid?: number,
  ) {
    super(
      reason === "symbolic link"
        ? `${file} is a symbolic link`
        : reason === "not a regular file"
          ? `${file} is not a regular file`
          : `${file} belongs to another user (uid ${uid}, not ${process.getuid?.()})`,
    );
    this.name = "NotOursError";
  }
}

export interface OwnFile {
  bytes: Uint8Array;
  /** The open file (read-only): for fchmod once the content is known to be ours. Close it. */
  fd: number;
  stat: fs.Stats;
}

/**
 * Opens and reads a file that must be a regular file owned by the user running this, without following a symbolic
 * link (or blocking on a FIFO). Returns undefined when there is no file; throws NotOursError, an ErrnoException, or
 * RangeError when it is larger than `maxBytes`. The caller closes `fd`.
 */
export function readOwnFile(file: string, maxBytes: number): OwnFile | undefined {
  let fd: number;
  try {
    fd = atomicFs.openSync(file, C.O_RDONLY | NOFOLLOW | NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP" || code === "EMLINK") throw new NotOursError(file, "symbolic link"); // EMLINK: FreeBSD
    throw e;
  }
  try {
    const stat = atomicFs.fstatSync(fd);
    if (!stat.isFile()) throw new NotOursError(file, "not a regular file");
    const uid = process.getuid?.();
    if (uid !== undefined && stat.uid !== uid) throw new NotOursError(file, "other owner", stat.uid);
    if (stat.size > maxBytes) throw new RangeError(`${file} is ${stat.size} bytes, larger than ${maxBytes}`);
    const bytes = new Uint8Array(stat.size);
    let at = 0;
    for (;;) {
      if (at === bytes.length) break;
      const n = fs.readSync(fd, bytes, at, bytes.length - at, at);
      if (n === 0) break;
      at += n;
    }
    return { bytes: bytes.subarray(0, at), fd, stat };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}
