/**
 * PEM <-> DER for certificates and keys. Hosts differ in what they want: Node takes PEM, the device's TLS socket
 * (Moddable TLSSocket) takes DER. TlsOptions accepts either; these convert.
 */
import { base64Decode, base64Encode } from "./base64";
import { NetError } from "./errors";

/** The DER bytes of every `-----BEGIN <label>-----` block in `pem` (any label when `label` is omitted), in order. */
export function pemToDer(pem: string, label?: string, what = "the PEM text"): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    const begin = pem.indexOf("-----BEGIN ", at);
    if (begin < 0) break;
    const close = pem.indexOf("-----", begin + 11);
    if (close < 0) break;
    const name = pem.slice(begin + 11, close);
    const bodyStart = close + 5;
    const endMark = `-----END ${name}-----`;
    const end = pem.indexOf(endMark, bodyStart);
    if (end < 0)
      throw new NetError(
        "INVALID_TLS_OPTIONS",
        `${what} has "-----BEGIN ${name}-----" without its END line: is it cut short?`,
      );
    if (label === undefined || name === label) out.push(base64Decode(pem.slice(bodyStart, end), `${what} (${name})`));
    at = end + endMark.length;
  }
  return out;
}

/** DER bytes as PEM text with the given label (e.g. "CERTIFICATE", "PRIVATE KEY"), 64 characters a line. */
export function derToPem(der: Uint8Array, label: string): string {
  const b64 = base64Encode(der);
  let body = "";
  for (let i = 0; i < b64.length; i += 64) body += `${b64.slice(i, i + 64)}\n`;
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}
