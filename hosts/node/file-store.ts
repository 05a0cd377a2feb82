// A file-backed persistent outbox for the Node host: one file per QoS 1 message in a private directory
// (0700, files 0600). Each message is written with writeFileAtomic (atomic-file.ts): a temporary file with a random
// name created exclusively, fsync, rename, fsync of the directory, so a message accepted is on disk for good and a
// crash leaves either the whole message or none of it. Files are read without following symbolic links.
import * as fs from "node:fs";
import * as path from "node:path";
import type { OutboxStore } from "../../src/host";
import { isTempName, makePrivateDir, readOwnFile, writeFileAtomic } from "./atomic-file";

const SUFFIX = ".mqtt";
/** Larger than any packet the client keeps (the MQTT limit is 256 MB; the outbox's byte bound is far lower). */
const MAX_ENTRY_BYTES = 268435460;

export class FileOutboxStore implements OutboxStore {
  constructor(readonly dir: string) {
    makePrivateDir(dir);
  }

  /**
   * Every message stored. An entry that cannot be read as a file of ours (a symbolic link, not a regular file,
   * another owner) comes back empty, so the client reports it (STORE_FAILED, "discarded an unreadable entry") and
   * removes it, as it does an entry whose bytes are not a packet.
   */
  load(): { key: number; packet: Uint8Array }[] {
    const out: { key: number; packet: Uint8Array }[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      if (!name.endsWith(SUFFIX)) {
        if (isTempName(name)) fs.rmSync(path.join(this.dir, name), { force: true }); // a write cut short
        continue;
      }
      const key = Number(name.slice(0, -SUFFIX.length));
      if (!Number.isInteger(key) || key <= 0) continue;
      let packet: Uint8Array;
      try {
        const file = readOwnFile(path.join(this.dir, name), MAX_ENTRY_BYTES);
        if (!file) continue; // gone meanwhile
        fs.closeSync(file.fd);
        packet = file.bytes;
      } catch {
        packet = new Uint8Array(0);
      }
      out.push({ key, packet });
    }
    return out;
  }

  save(key: number, packet: Uint8Array): void {
    writeFileAtomic(path.join(this.dir, `${key}${SUFFIX}`), packet);
  }

  remove(key: number): void {
    // Not synced: a message removed just before a power cut may be sent again, which QoS 1 allows.
    fs.rmSync(path.join(this.dir, `${key}${SUFFIX}`), { force: true });
  }
}
