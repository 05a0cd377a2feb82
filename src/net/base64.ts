/** Base64 (RFC 4648, standard alphabet, with padding) for the WebSocket handshake and PEM, without Node's buffers or atob. */
import { NetError } from "./errors";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

export function base64Encode(bytes: Uint8Array): string {
  let out = "";
  const n = bytes.length;
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += ALPHABET[v >> 18] + ALPHABET[(v >> 12) & 63] + ALPHABET[(v >> 6) & 63] + ALPHABET[v & 63];
  }
  if (i < n) {
    const two = i + 1 < n;
    const v = (bytes[i] << 16) | (two ? bytes[i + 1] << 8 : 0);
    out += ALPHABET[v >> 18] + ALPHABET[(v >> 12) & 63] + (two ? ALPHABET[(v >> 6) & 63] : "=") + "=";
  }
  return out;
}

function value(c: number): number {
  if (c >= 65 && c <= 90) return c - 65; // A-Z
  if (c >= 97 && c <= 122) return c - 71; // a-z
  if (c >= 48 && c <= 57) return c + 4; // 0-9
  if (c === 43) return 62; // +
  if (c === 47) return 63; // /
  return -1;
}

/**
 * Decodes base64, skipping whitespace (PEM bodies are wrapped). Throws NetError INVALID_TLS_OPTIONS (base64 is
 * only decoded for certificates and keys here) on any other character or a wrong length; `what` names the input.
 */
export function base64Decode(text: string, what = "base64 text"): Uint8Array {
  let chars = 0;
  let pad = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10 || c === 13) continue;
    if (c === 61)
      pad++; // =
    else if (pad > 0 || value(c) < 0)
      throw new NetError("INVALID_TLS_OPTIONS", `${what} is not valid base64 (unexpected character at offset ${i})`);
    chars++;
  }
  if (chars % 4 !== 0 || pad > 2)
    throw new NetError("INVALID_TLS_OPTIONS", `${what} is not valid base64 (its length is wrong: truncated?)`);
  const out = new Uint8Array((chars / 4) * 3 - pad);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const v = value(text.charCodeAt(i));
    if (v < 0) continue;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}
