// node:crypto's createHash("sha1") for the WebSocket test run inside XS (its handshake check computes the
// Sec-WebSocket-Accept). It uses our own SHA-1, which test/net/crypto.test.ts checks against node:crypto on V8.
import { base64Encode } from "../../../src/net/base64";
import { sha1 } from "../../../src/net/sha1";
import { utf8Bytes } from "../../../src/mqtt/utf8";
import { toHex } from "../suite/canon";

export function createHash(algorithm: string) {
  if (algorithm !== "sha1") throw new Error(`createHash(${algorithm}): only sha1 inside XS`);
  const parts: Uint8Array[] = [];
  const hash = {
    update(data: string | Uint8Array) {
      parts.push(typeof data === "string" ? utf8Bytes(data) : data);
      return hash;
    },
    digest(encoding?: string) {
      const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        all.set(p, at);
        at += p.length;
      }
      const d = sha1(all);
      if (encoding === "base64") return base64Encode(d);
      if (encoding === "hex") return toHex(d);
      return d;
    },
  };
  return hash;
}
