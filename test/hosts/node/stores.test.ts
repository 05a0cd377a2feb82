// The Node host's stores on disk (hosts/node/atomic-file.ts and its users: the config store, the file outbox and
// the provisioning output): a temporary file nobody can predict or plant, created exclusively without following a
// symbolic link; the file synced before the rename and the folder after it; a crash between any two steps leaves
// the old store or the new one, whole; a provisioning is one write. And the config store touches (reads, tightens,
// writes) only a file that is one of its own. Real files in temporary folders; the file system calls go through
// `atomicFs`, which the tests wrap to record them, to plant a link at the last moment, or to cut the power.
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { atomicFs } from "../../../hosts/node/atomic-file";
import { ConfigStoreError, FileConfigStore } from "../../../hosts/node/config-store";
import { FileOutboxStore } from "../../../hosts/node/file-store";
import { runCli } from "../../../tools/provision/cli";
import { planProvisioning, provisionSimulator, writePrivateFile } from "../../../tools/provision/provision";
import { CONFIG_KEYS } from "../../../src/device/config-keys";

const PSN = "abcdefgh12345678";
const SECRET = "Qw3rtyUi0pAsDfGh";
const SECRET2 = "Zx9cVbNm1LkJhGfD";
const URL = "mqtts://mqtt-cn-sh2.iot.ucloud.cn:8883";

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = fs.mkdtempSync(join(tmpdir(), "uiot-stores-"));
  dirs.push(d);
  return d;
}

const mode = (file: string) => fs.lstatSync(file).mode & 0o777;
const read = (file: string) => fs.readFileSync(file, "utf8");

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error("did not throw");
}

/** A file that must not receive anything: 0644, known content. */
function victim(dir: string): string {
  const file = join(dir, "victim.txt");
  fs.writeFileSync(file, "the victim's own content\n", { mode: 0o644 });
  fs.chmodSync(file, 0o644);
  return file;
}

/** The three writers, each writing `n` (a number in the content) to its file in `dir`. */
const writers: {
  name: string;
  target: (dir: string) => string;
  write: (dir: string, n: number) => void;
  content: (dir: string) => string;
}[] = [
  {
    name: "the config store",
    target: (dir) => join(dir, "config.json"),
    write: (dir, n) => new FileConfigStore(join(dir, "config.json")).set(CONFIG_KEYS.deviceSN, `device-${n}`),
    content: (dir) => String(new FileConfigStore(join(dir, "config.json")).get(CONFIG_KEYS.deviceSN)),
  },
  {
    name: "the file outbox",
    target: (dir) => join(dir, "outbox", "1.mqtt"),
    write: (dir, n) => new FileOutboxStore(join(dir, "outbox")).save(1, new TextEncoder().encode(`device-${n}`)),
    content: (dir) => read(join(dir, "outbox", "1.mqtt")),
  },
  {
    name: "the provisioning image (writePrivateFile)",
    target: (dir) => join(dir, "nvs.bin"),
    write: (dir, n) => writePrivateFile(join(dir, "nvs.bin"), new TextEncoder().encode(`device-${n}`), { force: true }),
    content: (dir) => read(join(dir, "nvs.bin")),
  },
];

interface Call {
  op: string;
  path?: string;
  flags?: number;
  fd?: number;
}

/** Records the calls made through atomicFs, in order. */
function recordCalls(): Call[] {
  const calls: Call[] = [];
  const open = atomicFs.openSync;
  vi.spyOn(atomicFs, "openSync").mockImplementation(((p: fs.PathLike, flags: number, m?: number) => {
    const fd = open(p, flags, m);
    calls.push({ op: "open", path: String(p), flags, fd });
    return fd;
  }) as typeof atomicFs.openSync);
  const fsync = atomicFs.fsyncSync;
  vi.spyOn(atomicFs, "fsyncSync").mockImplementation((fd: number) => {
    calls.push({ op: "fsync", fd });
    fsync(fd);
  });
  const rename = atomicFs.renameSync;
  vi.spyOn(atomicFs, "renameSync").mockImplementation((from: fs.PathLike, to: fs.PathLike) => {
    calls.push({ op: "rename", path: String(to) });
    rename(from, to);
  });
  return calls;
}

class PowerCut extends Error {}

/** Cuts the power after `steps` file system calls through atomicFs: that call and every later one throw. */
function cutPowerAfter(steps: number): { cut: () => boolean } {
  let left = steps;
  for (const name of Object.keys(atomicFs) as (keyof typeof atomicFs)[]) {
    const real = atomicFs[name] as (...args: unknown[]) => unknown;
    vi.spyOn(atomicFs, name).mockImplementation(((...args: unknown[]) => {
      if (left-- <= 0) throw new PowerCut("power cut");
      return real(...args);
    }) as never);
  }
  return { cut: () => left < 0 };
}

describe("no temporary file anyone can plant", () => {
  for (const w of writers) {
    it(`${w.name}: a symbolic link at the fixed temporary names of old receives nothing`, () => {
      const dir = tempDir();
      const target = w.target(dir);
      fs.mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
      const v = victim(dir);
      for (const name of [`${target}.tmp`, `${target}.tmp-${process.pid}`]) fs.symlinkSync(v, name);
      w.write(dir, 1);
      w.write(dir, 2);
      expect(read(v)).toBe("the victim's own content\n");
      expect(mode(v)).toBe(0o644);
      expect(w.content(dir)).toContain("device-2");
      expect(mode(target)).toBe(0o600);
    });

    it(`${w.name}: a symbolic link planted at the random temporary name just before it is created makes the write fail; nothing goes through it`, () => {
      const dir = tempDir();
      w.write(dir, 1);
      const v = victim(dir);
      const open = atomicFs.openSync;
      const planted: string[] = [];
      vi.spyOn(atomicFs, "openSync").mockImplementation(((p: fs.PathLike, flags: number, m?: number) => {
        if (String(p).endsWith(".tmp")) {
          fs.symlinkSync(v, String(p)); // the attacker guessed the name
          planted.push(String(p));
        }
        return open(p, flags, m);
      }) as typeof atomicFs.openSync);
      const e = thrown(() => w.write(dir, 2));
      vi.restoreAllMocks();
      expect(planted).toHaveLength(1);
      expect(planted[0]).toMatch(/\/\.[^/]+\.[0-9a-f]{32}\.tmp$/); // hidden, 128 random bits, next to the target
      expect(e.message).toMatch(/EEXIST/);
      expect(read(v)).toBe("the victim's own content\n");
      expect(mode(v)).toBe(0o644);
      expect(w.content(dir)).toContain("device-1");
      expect(fs.lstatSync(planted[0]).isSymbolicLink()).toBe(true); // not ours: left where it is
    });
  }
});

describe("synced: the file before the rename, the folder after it", () => {
  for (const w of writers) {
    it(w.name, () => {
      const dir = tempDir();
      w.write(dir, 1);
      const calls = recordCalls();
      w.write(dir, 2);
      const target = w.target(dir);
      const create = calls.findIndex((c) => c.op === "open" && c.path?.endsWith(".tmp"));
      expect(create).toBeGreaterThanOrEqual(0);
      const { path: tmp, flags, fd } = calls[create];
      expect(dirname(tmp as string)).toBe(dirname(target));
      const C = fs.constants;
      expect((flags as number) & (C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW)).toBe(C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW);
      const synced = calls.findIndex((c, i) => i > create && c.op === "fsync" && c.fd === fd);
      const renamed = calls.findIndex((c) => c.op === "rename" && c.path === target);
      expect(synced).toBeGreaterThan(create);
      expect(renamed).toBeGreaterThan(synced);
      const openDir = calls.findIndex((c, i) => i > renamed && c.op === "open" && c.path === dirname(target));
      expect(openDir, "the folder is opened after the rename").toBeGreaterThan(renamed);
      expect(
        calls.findIndex((c, i) => i > openDir && c.op === "fsync" && c.fd === calls[openDir].fd),
        "and synced",
      ).toBeGreaterThan(openDir);
    });
  }

  it("a file system that cannot sync a folder (EINVAL) does not fail the write; an I/O error does", () => {
    const dir = tempDir();
    const file = join(dir, "config.json");
    new FileConfigStore(file).set(CONFIG_KEYS.deviceSN, "device-1");
    for (const [code, fails] of [
      ["EINVAL", false],
      ["EIO", true],
    ] as const) {
      const fsync = atomicFs.fsyncSync;
      const dirFds = new Set<number>();
      const open = atomicFs.openSync;
      vi.spyOn(atomicFs, "openSync").mockImplementation(((p: fs.PathLike, flags: number, m?: number) => {
        const fd = open(p, flags, m);
        if (String(p) === dir) dirFds.add(fd);
        return fd;
      }) as typeof atomicFs.openSync);
      vi.spyOn(atomicFs, "fsyncSync").mockImplementation((fd: number) => {
        if (dirFds.has(fd)) throw Object.assign(new Error(`${code}: fsync`), { code });
        fsync(fd);
      });
      const store = new FileConfigStore(file);
      const e = fails ? (thrown(() => store.set(CONFIG_KEYS.deviceSN, code)) as ConfigStoreError) : undefined;
      if (!fails) store.set(CONFIG_KEYS.deviceSN, code);
      vi.restoreAllMocks();
      expect(dirFds.size).toBe(1);
      if (e) expect([e.code, e.message]).toEqual(["WRITE_FAILED", `cannot write the config file ${file}: EIO`]);
      expect(new FileConfigStore(file).get(CONFIG_KEYS.deviceSN)).toBe(code); // renamed in both cases
    }
  });

  it("a store's folder, when it creates it, is synced into its parent", () => {
    const dir = tempDir();
    const calls = recordCalls();
    new FileConfigStore(join(dir, "a", "b", "config.json"));
    const synced = calls.filter((c) => c.op === "open").map((c) => c.path);
    expect(synced).toEqual(expect.arrayContaining([join(dir, "a"), dir]));
  });
});

describe("a crash between any two steps leaves the old store or the new one, whole", () => {
  it("a provisioning is one atomic write: never a mix of two identities", () => {
    const dir = tempDir();
    const first = planProvisioning({ productSN: PSN, deviceSN: "thermostat-01", deviceSecret: SECRET, url: URL });
    const second = planProvisioning({
      productSN: PSN,
      deviceSN: "thermostat-02",
      deviceSecret: SECRET2,
      url: "mqtts://broker.example.com",
      wifiSsid: "office",
      wifiPassword: "correct-horse-battery",
    });
    const snapshot = (file: string) => {
      const s = new FileConfigStore(file);
      return JSON.stringify([...Object.values(CONFIG_KEYS), "uiot_ca"].map((k) => [k, s.get(k)]));
    };
    const reference = join(dir, "reference", "config.json");
    provisionSimulator(first, reference);
    const before = snapshot(reference);
    const calls = recordCalls();
    provisionSimulator(second, reference, { replace: true });
    vi.restoreAllMocks();
    expect(
      calls.filter((c) => c.op === "rename"),
      "one write for the whole provisioning",
    ).toHaveLength(1);
    const after = snapshot(reference);
    expect(after).toContain(SECRET2);

    const outcomes = new Set<string>();
    for (let steps = 0; ; steps++) {
      const file = join(dir, `cut${steps}`, "config.json");
      provisionSimulator(first, file);
      const power = cutPowerAfter(steps);
      let e: unknown;
      try {
        provisionSimulator(second, file, { replace: true });
      } catch (err) {
        e = err;
      }
      vi.restoreAllMocks();
      const now = snapshot(file);
      expect([before, after], `after a cut at step ${steps}`).toContain(now);
      if (!power.cut()) {
        expect(e).toBeUndefined();
        expect(now).toBe(after);
        break;
      }
      expect(e, `a cut at step ${steps} is an error`).toBeDefined();
      outcomes.add(now === before ? "old" : "new");
    }
    // Cuts before the rename leave the old store, cuts after it (before the folder is synced) the new one.
    expect([...outcomes].sort()).toEqual(["new", "old"]);
  });

  it("the file outbox: a message accepted is whole after a cut, or absent; load sweeps the leftovers", () => {
    const dir = tempDir();
    const packet = new Uint8Array(5000).map((_, i) => i & 0xff);
    for (let steps = 0; ; steps++) {
      const box = join(dir, `box${steps}`);
      new FileOutboxStore(box).save(1, new Uint8Array([1, 2, 3]));
      const power = cutPowerAfter(steps);
      let e: unknown;
      try {
        new FileOutboxStore(box).save(2, packet);
      } catch (err) {
        e = err;
      }
      vi.restoreAllMocks();
      const loaded = new FileOutboxStore(box).load().sort((a, b) => a.key - b.key);
      expect(loaded[0]).toEqual({ key: 1, packet: new Uint8Array([1, 2, 3]) });
      if (loaded.length === 2) expect(loaded[1]).toEqual({ key: 2, packet });
      else expect(loaded).toHaveLength(1);
      expect(fs.readdirSync(box).sort()).toEqual(loaded.map((m) => `${m.key}.mqtt`));
      if (!power.cut()) {
        expect(e).toBeUndefined();
        expect(loaded).toHaveLength(2);
        expect(steps, "the save went through atomicFs, step by step").toBeGreaterThan(5);
        break;
      }
      expect(e).toBeInstanceOf(PowerCut);
    }
  });
});

describe("the config store touches only a file of its own", () => {
  it("a symbolic link: refused; neither it nor what it points to is changed", () => {
    const dir = tempDir();
    const v = victim(dir);
    const file = join(dir, "config.json");
    fs.symlinkSync(v, file);
    const e = thrown(() => new FileConfigStore(file)) as ConfigStoreError;
    expect(e).toBeInstanceOf(ConfigStoreError);
    expect(e.code).toBe("NOT_A_STORE");
    expect(e.message).toMatch(/config\.json is a symbolic link: a config store must be a regular file/);
    expect(mode(v)).toBe(0o644);
    expect(read(v)).toBe("the victim's own content\n");
  });

  it("a file that is not a store (like /etc/passwd): CORRUPT, and its mode is left alone", () => {
    const file = join(tempDir(), "passwd");
    fs.writeFileSync(file, "root:x:0:0:root:/root:/bin/bash\n");
    fs.chmodSync(file, 0o644);
    expect((thrown(() => new FileConfigStore(file)) as ConfigStoreError).code).toBe("CORRUPT");
    expect(mode(file)).toBe(0o644);
  });

  it("a directory or a FIFO: refused at once (no read that waits for a writer), nothing changed", () => {
    const dir = tempDir();
    const sub = join(dir, "sub");
    fs.mkdirSync(sub, { mode: 0o755 });
    fs.chmodSync(sub, 0o755);
    expect((thrown(() => new FileConfigStore(sub)) as ConfigStoreError).code).toBe("NOT_A_STORE");
    expect(mode(sub)).toBe(0o755);
    const fifo = join(dir, "fifo");
    if (spawnSync("mkfifo", ["-m", "644", fifo]).status !== 0) return; // no mkfifo here
    // A writer that goes away after a while, so that a store that did block on the FIFO still comes back.
    const writer = spawn("sh", ["-c", `sleep 3 > '${fifo}'`], { stdio: "ignore" });
    try {
      const e = thrown(() => new FileConfigStore(fifo)) as ConfigStoreError;
      expect(e.code).toBe("NOT_A_STORE");
      expect(e.message).toMatch(/is not a regular file/);
      expect(mode(fifo)).toBe(0o644);
    } finally {
      writer.kill();
    }
  });

  it.runIf(process.getuid?.() === 0)("a file of another user (run as root): refused, its mode left alone", () => {
    const file = join(tempDir(), "config.json");
    fs.writeFileSync(file, '{"uiot_psn":"abc"}');
    fs.chmodSync(file, 0o644);
    fs.chownSync(file, 4242, 4242);
    const e = thrown(() => new FileConfigStore(file)) as ConfigStoreError;
    expect(e.code).toBe("NOT_A_STORE");
    expect(e.message).toMatch(/belongs to another user \(uid 4242, not 0\)/);
    expect(mode(file)).toBe(0o644);
  });

  it("another JSON file of strings: read, but neither tightened nor written into", () => {
    const file = join(tempDir(), "settings.json");
    const text = '{"theme": "dark", "name": "x"}';
    fs.writeFileSync(file, text);
    fs.chmodSync(file, 0o644);
    const store = new FileConfigStore(file);
    expect(store.format).toBe("unmarked");
    expect(store.get("theme")).toBe("dark");
    expect(mode(file)).toBe(0o644);
    const e = thrown(() => store.set(CONFIG_KEYS.deviceSecret, SECRET)) as ConfigStoreError;
    expect(e.code).toBe("NOT_A_STORE");
    expect(e.message).toMatch(
      /settings\.json is not a config store \(it has no "\$store" marker and holds 2 key\(s\) a device's configuration does not use\): nothing is written into it/,
    );
    expect(read(file)).toBe(text);
  });

  it("provision --store never merges secrets into another JSON file of strings; an older store (no marker) is taken", async () => {
    const dir = tempDir();
    const foreign = join(dir, "settings.json");
    const text = '{"theme": "dark"}';
    fs.writeFileSync(foreign, text);
    const out: string[] = [];
    const io = {
      stdout: (t: string) => void out.push(t),
      stderr: (t: string) => void out.push(t),
      stdin: process.stdin,
      cwd: dir,
    };
    const args = ["--product-sn", PSN, "--device-sn", "thermostat-01", "--url", URL, "--device-secret", SECRET];
    expect(await runCli([...args, "--store", "settings.json"], io)).toBe(1);
    expect(out.join("")).toMatch(
      /error: --store: .*settings\.json is not a config store .*nothing is written into it; give another file, or move this one away/,
    );
    expect(read(foreign)).toBe(text);

    // A store written before the marker existed: device settings only. It is provisioned, and marked from then on.
    const older = join(dir, "older.json");
    fs.writeFileSync(older, JSON.stringify({ uiot_psn: PSN, uiot_dsn: "thermostat-01", uiot_url: URL }));
    expect(await runCli([...args, "--store", "older.json"], io)).toBe(0);
    const written = JSON.parse(read(older)) as Record<string, string>;
    expect(Object.entries(written)[0]).toEqual(["$store", "uiot-config/1"]);
    expect(written[CONFIG_KEYS.deviceSecret]).toBe(SECRET);
    expect(new FileConfigStore(older).format).toBe("marked");
  });

  it("a store of another format version is refused, and the marker cannot be set as a key", () => {
    const file = join(tempDir(), "config.json");
    fs.writeFileSync(file, '{"$store": "uiot-config/9", "uiot_psn": "abc"}');
    expect((thrown(() => new FileConfigStore(file)) as ConfigStoreError).code).toBe("NOT_A_STORE");
    const fresh = new FileConfigStore(join(tempDir(), "config.json"));
    expect((thrown(() => fresh.set("$store", "x")) as ConfigStoreError).code).toBe("INVALID_KEY");
  });
});
