/**
 * Portable checks of TlsOptions (the shape is in src/host.ts): every host calls checkTls before dialling, so a
 * mistake is the same clear error everywhere, and logs insecureWarning on every connect when verification is off.
 */
import type { Endpoint, TlsOptions } from "../host";
import { formatEndpoint, isSecure } from "./endpoint";
import { NetError } from "./errors";

function bad(message: string): NetError {
  return new NetError("INVALID_TLS_OPTIONS", message);
}

function looksLikePath(s: string): boolean {
  return s.indexOf("-----BEGIN") < 0 && s.length < 4096 && /^[^\n]*\.(pem|crt|cer|der|key)$|^[./~]/i.test(s.trim());
}

/** `kind`: "certificate" or "private key". */
function checkPemOrDer(value: unknown, what: string, marker: RegExp, kind: string): void {
  if (value instanceof Uint8Array) {
    if (value.length === 0) throw bad(`${what} is empty`);
    if (value[0] !== 0x30)
      throw bad(
        `${what} is not DER (it does not start with an ASN.1 SEQUENCE): pass the ${kind} as PEM text or DER bytes`,
      );
    return;
  }
  if (typeof value !== "string") throw bad(`${what} must be PEM text or DER bytes (Uint8Array)`);
  if (looksLikePath(value))
    throw bad(`${what} looks like a file name: pass the ${kind} itself (the PEM text), not its path`);
  if (!marker.test(value)) throw bad(`${what} is not a PEM ${kind} (no "-----BEGIN ..." line)`);
}

/**
 * Throws NetError INVALID_TLS_OPTIONS when `tls` cannot be right for `endpoint`: TLS options on a plain scheme,
 * `insecure` that is not a boolean, a certificate without its key, a file path where PEM text belongs. Never quotes
 * key material.
 */
export function checkTls(endpoint: Endpoint, tls: TlsOptions | undefined): void {
  if (tls === undefined) return;
  if (tls === null || typeof tls !== "object") throw bad("the TLS options must be an object (see TlsOptions)");
  if (!isSecure(endpoint.scheme)) {
    let given = false;
    for (const k in tls) if ((tls as Record<string, unknown>)[k] !== undefined) given = true;
    if (given)
      throw bad(
        `TLS options were given for ${formatEndpoint(endpoint)}, which is not encrypted: use ${endpoint.scheme === "ws" ? "wss" : "mqtts"}:// (or drop the TLS options)`,
      );
    return;
  }
  if (tls.insecure !== undefined && typeof tls.insecure !== "boolean") throw bad("tls.insecure must be true or false");
  if (tls.serverName !== undefined && (typeof tls.serverName !== "string" || tls.serverName === ""))
    throw bad("tls.serverName must be a non-empty host name");
  if (tls.ca !== undefined) {
    if (!Array.isArray(tls.ca)) throw bad("tls.ca must be an array of CA certificates (PEM text or DER bytes)");
    for (let i = 0; i < tls.ca.length; i++)
      checkPemOrDer(tls.ca[i], `tls.ca[${i}]`, /-----BEGIN (TRUSTED )?CERTIFICATE-----/, "certificate");
  }
  if ((tls.cert === undefined) !== (tls.key === undefined))
    throw bad(
      tls.cert === undefined
        ? "tls.key is set without tls.cert: mutual TLS needs both"
        : "tls.cert is set without tls.key: mutual TLS needs both",
    );
  if (tls.cert !== undefined) checkPemOrDer(tls.cert, "tls.cert", /-----BEGIN CERTIFICATE-----/, "certificate");
  if (tls.key !== undefined) checkPemOrDer(tls.key, "tls.key", /-----BEGIN ([A-Z]+ )?PRIVATE KEY-----/, "private key");
  if (
    tls.alpn !== undefined &&
    (!Array.isArray(tls.alpn) || tls.alpn.some((p) => typeof p !== "string" || p === "" || p.length > 255))
  )
    throw bad('tls.alpn must be an array of protocol names such as ["mqtt"]');
}

/** What a host logs (level "warn") on every connect with `insecure: true`. */
export function insecureWarning(endpoint: Endpoint): string {
  return `TLS CERTIFICATE VERIFICATION IS OFF for ${formatEndpoint(endpoint)} (tls.insecure): anyone on the path can pose as the broker and read the credentials and every message. Pass the broker's CA in tls.ca instead; never ship this.`;
}
