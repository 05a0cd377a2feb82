// A file-backed persistent outbox for the Node host: one file per QoS 1 message in a private directory
// (0700, files 0600). Each file is written to a temporary name, synced, then renamed, so a crash leaves either
// the whole message or none of it.
import * as fs from "node:fs";
import * as path from "node:path";
import type { OutboxStore } from "../../src/mqtt/store";

const SUFFIX = ".mqtt";

export class FileOutboxStore implements OutboxStore {
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  load(): { key: number; packet: Uint8Array }[] {
    const out: { key: number; packet: Uint8Array }[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      if (!name.endsWith(SUFFIX)) {
        if (name.endsWith(".tmp")) fs.rmSync(path.join(this.dir, name), { force: true }); // a write cut short
        continue;
      }
      const key = Number(name.slice(0, -SUFFIX.length));
      if (!Number.isInteger(key) || key <= 0) continue;
      out.push({ key, packet: new Uint8Array(fs.readFileSync(path.join(this.dir, name))) });
    }
    return out;
  }

  save(key: number, packet: Uint8Array): void {
    const final = path.join(this.dir, `${key}${SUFFIX}`);
    const tmp = `${final}.tmp`;
    const fd = fs.openSync(tmp, "w", 0o600);
    try {
      fs.writeSync(fd, packet);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, final);
  }

  remove(key: number): void {
    fs.rmSync(path.join(this.dir, `${key}${SUFFIX}`), { force: true });
  }
}
