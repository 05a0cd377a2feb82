/**
 * TlsOptions (src/net/endpoint.ts) as the `secure` dictionary of the SDK's TLSSocket
 * (examples/io/tcp/tlssocket/tlssocket.js over modules/crypt/ssl/session_419.js and ssl_cert.js):
 *   certificate         one trusted CA, DER (the only trust anchor: this build bundles no CA store)
 *   clientCertificates  DER certificates sent for mutual TLS, the device's own first
 *   clientKey           its private key: PKCS#8, unencrypted, RSA (pkcs8.js parses nothing else)
 *   verify              false only for `insecure`
 *   applicationLayerProtocolNegotiation  ALPN names
 *   tls_max_fragment_length  asks for smaller records (RFC 6066), when the chip profile wants it
 * TLSSocket itself always speaks TLS 1.2 (it sets protocolVersion 0x303) and sends the socket's `host` as SNI;
 * ssl_cert.js verifies the server's name against its certificate's subjectAltName (DNS names, IPv4 addresses).
 */
import type { Endpoint, TlsOptions } from "../../src/host";
import { isSecure } from "../../src/net/endpoint";
import { NetError } from "../../src/net/errors";
import { pemToDer } from "../../src/net/pem";
import { checkTls } from "../../src/net/tls";

export interface SecureOptions {
  certificate?: ArrayBuffer;
  clientCertificates?: ArrayBuffer[];
  clientKey?: ArrayBuffer;
  verify: boolean;
  applicationLayerProtocolNegotiation?: string[];
  tls_max_fragment_length?: number;
}

export interface ModdableTls {
  /** TLSSocket's `host`: SNI and the name the certificate must carry. */
  serverName: string;
  secure: SecureOptions;
  insecure: boolean;
  clientCert: boolean;
}

function bad(message: string): NetError {
  return new NetError("INVALID_TLS_OPTIONS", message);
}

function buffer(der: Uint8Array): ArrayBuffer {
  return der.slice().buffer;
}

/** DER certificates of a PEM text (every CERTIFICATE block) or DER bytes. */
function certificates(value: string | Uint8Array, what: string): Uint8Array[] {
  if (value instanceof Uint8Array) return [value];
  const ders = pemToDer(value, "CERTIFICATE", what).concat(pemToDer(value, "TRUSTED CERTIFICATE", what));
  if (ders.length === 0) throw bad(`${what} holds no "-----BEGIN CERTIFICATE-----" block`);
  return ders;
}

/** Length of a DER element's header at `at` (tag and length bytes), or -1. */
function headerLength(b: Uint8Array, at: number): number {
  if (at + 2 > b.length) return -1;
  const l = b[at + 1];
  return l < 0x80 ? 2 : l === 0x80 || l > 0x84 ? -1 : 2 + (l & 0x7f);
}

const RSA_OID: readonly number[] = Object.freeze([0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]);
const PKCS8_HINT = "convert it with: openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-pkcs8.pem";

/** Checks that `der` is an unencrypted PKCS#8 RSA private key, the only kind the Moddable TLS stack signs with. */
export function checkPrivateKey(der: Uint8Array): void {
  // SEQUENCE { INTEGER version, SEQUENCE { OID algorithm, ... }, OCTET STRING key }
  const outer = headerLength(der, 0);
  if (der[0] !== 0x30 || outer < 0)
    throw bad("tls.key is not a DER private key (it does not start with an ASN.1 SEQUENCE)");
  const version = outer;
  if (der[version] !== 0x02 || headerLength(der, version) !== 2)
    throw bad(`tls.key is not a PKCS#8 private key: ${PKCS8_HINT}`);
  const next = version + 2 + der[version + 1];
  if (der[next] === 0x02)
    throw bad(`tls.key is a PKCS#1 ("RSA PRIVATE KEY") key; the device's TLS stack takes PKCS#8: ${PKCS8_HINT}`);
  if (der[next] !== 0x30) throw bad(`tls.key is not a PKCS#8 private key (an encrypted or EC key?): ${PKCS8_HINT}`);
  const oid = next + headerLength(der, next);
  for (let i = 0; i < RSA_OID.length; i++)
    if (der[oid + i] !== RSA_OID[i])
      throw bad(
        "tls.key is not an RSA key: the Moddable TLS stack signs client certificates with RSA keys only (use an RSA client certificate and key)",
      );
}

function privateKey(value: string | Uint8Array): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (value.indexOf("-----BEGIN ENCRYPTED PRIVATE KEY-----") >= 0)
    throw bad(`tls.key is encrypted; the device needs it unencrypted: ${PKCS8_HINT}`);
  if (value.indexOf("-----BEGIN RSA PRIVATE KEY-----") >= 0)
    throw bad(`tls.key is a PKCS#1 ("RSA PRIVATE KEY") key; the device's TLS stack takes PKCS#8: ${PKCS8_HINT}`);
  if (value.indexOf("-----BEGIN EC PRIVATE KEY-----") >= 0)
    throw bad("tls.key is an EC key: the Moddable TLS stack signs client certificates with RSA keys only");
  const ders = pemToDer(value, "PRIVATE KEY", "tls.key");
  if (ders.length !== 1) throw bad(`tls.key must hold one "-----BEGIN PRIVATE KEY-----" block`);
  return ders[0];
}

/**
 * Checks `tls` for `endpoint` (checkTls, then what this TLS stack can do) and converts it once, at connector
 * creation: PEM to DER here, so no dial pays for it. Throws NetError INVALID_TLS_OPTIONS.
 */
export function moddableTls(
  endpoint: Endpoint,
  tls: TlsOptions | undefined,
  maxFragment: number,
): ModdableTls | undefined {
  checkTls(endpoint, tls);
  if (!isSecure(endpoint.scheme)) return undefined;
  const t = tls ?? {};
  const insecure = t.insecure === true;
  const secure: SecureOptions = { verify: !insecure };
  const cas: Uint8Array[] = [];
  for (let i = 0; i < (t.ca?.length ?? 0); i++) for (const der of certificates(t.ca![i], `tls.ca[${i}]`)) cas.push(der);
  if (cas.length > 1)
    throw bad(
      `tls.ca holds ${cas.length} certificates; this device's TLS socket trusts exactly one CA: give the one that signed the broker's certificate (for UIoT Core, the platform root)`,
    );
  if (cas.length === 1) secure.certificate = buffer(cas[0]);
  else if (!insecure)
    throw bad(
      "tls.ca is required on this device: its TLS stack has no built-in CA store in this firmware, so it can only verify the broker against the CA you give (PEM text or DER)",
    );
  if (t.cert !== undefined && t.key !== undefined) {
    secure.clientCertificates = certificates(t.cert, "tls.cert").map(buffer);
    const key = privateKey(t.key);
    checkPrivateKey(key);
    secure.clientKey = buffer(key);
  }
  if (t.alpn !== undefined && t.alpn.length > 0) secure.applicationLayerProtocolNegotiation = t.alpn.slice();
  if (maxFragment > 0) secure.tls_max_fragment_length = maxFragment;
  return { serverName: t.serverName ?? endpoint.host, secure, insecure, clientCert: t.cert !== undefined };
}
