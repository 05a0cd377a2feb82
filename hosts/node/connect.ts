// The Node host's connector for every endpoint scheme: mqtt (node:net), mqtts (node:tls), ws and wss (the portable
// WebSocket framing of src/net/websocket.ts over the same TCP or TLS byte transport). Host names resolve through
// Node's resolver (dns.lookup, what net.connect uses). Every failure is a NetError with a code and a message that
// says what to do; the socket is destroyed on every failure, so no connection is left open.
import * as dns from "node:dns";
import * as net from "node:net";
import * as tls from "node:tls";
import type { Connector, Endpoint, LogFunction, TlsOptions, Transport, TransportHandlers } from "../../src/host";
import { checkEndpoint, formatEndpoint, hostPort, isSecure, isWebSocket } from "../../src/net/endpoint";
import { NetError, netError } from "../../src/net/errors";
import { derToPem } from "../../src/net/pem";
import { checkTls, insecureWarning } from "../../src/net/tls";
import { webSocketConnector } from "../../src/net/websocket";
import { socketTransport, type SocketEnd } from "./tcp";

export interface NodeConnectorOptions {
  /** Uniform in [0, 1): WebSocket keys and masks. Default Math.random. */
  random?: () => number;
  /** WebSocket: largest frame or message accepted (default 256 KB, the codec's maximum packet). */
  maxFrameSize?: number;
  /** Name resolution (default dns.lookup); tests may pass their own. */
  lookup?: net.LookupFunction;
  /**
   * Asked before each dial: return an error to fail the dial at once (the scripted link while it is down), or
   * undefined to go ahead. `track` is called with each socket opened, for the link to drop it later.
   */
  gate?: { check(): NetError | undefined; track(socket: net.Socket): void };
}

/** What the error mapping needs to know about one dial. */
interface Dial {
  endpoint: Endpoint;
  secure: boolean;
  clientCert: boolean;
}

const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_CHAIN_TOO_LONG",
  "INVALID_CA",
  "CERT_REJECTED",
]);
const NOT_TLS = new Set([
  "ERR_SSL_WRONG_VERSION_NUMBER",
  "ERR_SSL_PACKET_LENGTH_TOO_LONG",
  "ERR_SSL_HTTP_REQUEST",
  "ERR_SSL_UNKNOWN_PROTOCOL",
  "ERR_SSL_RECORD_LAYER_FAILURE",
]);
const CLIENT_CERT_REFUSED = new Set([
  "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA",
  "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE",
  "ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN",
  "ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED",
  "ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED",
  "ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
  "ERR_SSL_TLSV1_ALERT_ACCESS_DENIED",
  "ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR",
]);
const DNS = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_FAIL", "EAI_NONAME", "EAI_NODATA", "EAI_ADDRFAMILY"]);

/** Node's error code; with autoSelectFamily (happy eyeballs) the attempts' codes are inside an AggregateError. */
function codeOf(error: Error): string {
  const e = error as NodeJS.ErrnoException & { errors?: unknown[] };
  if (e.code) return e.code;
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors)
      if ((inner as NodeJS.ErrnoException)?.code) return (inner as NodeJS.ErrnoException).code!;
  }
  return "";
}

/** OpenSSL's reason, short: "wrong version number", "tlsv13 alert certificate required", ... */
function reason(error: Error): string {
  const r = (error as { reason?: unknown }).reason;
  if (typeof r === "string" && r) return r;
  const m = /:([^:]+):[^:]*$/.exec(error.message.split("\n")[0]);
  return m ? m[1] : error.message.split("\n")[0].slice(0, 120);
}

/** Maps how a socket ended to a NetError (exported for tests of the mapping itself). */
export function describeEnd(end: SocketEnd, dial: Dial, opened: boolean, received: boolean): NetError {
  const where = hostPort(dial.endpoint.host, dial.endpoint.port);
  const url = formatEndpoint(dial.endpoint);
  if (end.kind === "error" && end.error instanceof NetError) return end.error;
  const ws = isWebSocket(dial.endpoint.scheme);
  const hello = ws ? "the WebSocket upgrade" : "CONNECT";
  if (end.kind !== "error") {
    if (dial.secure && !opened) return netError("NOT_TLS", `${where} closed the connection during the TLS handshake`);
    if (!received) return netError("NO_ANSWER", `${where} closed the connection without answering ${hello}`);
    return netError("CLOSED", `${url}: the broker closed the connection`);
  }
  const e = end.error;
  const code = codeOf(e);
  if (DNS.has(code)) return netError("DNS_FAILED", `cannot resolve the host name "${dial.endpoint.host}" (${code})`, e);
  if (code === "ECONNREFUSED") return netError("CONNECTION_REFUSED", `${where} refused the connection`, e);
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "ENETDOWN" || code === "EHOSTDOWN")
    return netError("UNREACHABLE", `${where} is unreachable (${code})`, e);
  if (code === "ETIMEDOUT") return netError("TIMEOUT", `${where} did not answer (${code})`, e);
  if (UNTRUSTED.has(code))
    return netError("TLS_UNKNOWN_CA", `the certificate of ${where} is not signed by a trusted CA (${code})`, e);
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    const detail = (e as { reason?: string }).reason;
    return netError(
      "TLS_HOSTNAME_MISMATCH",
      `the certificate of ${where} is not for this host name${detail ? ` (${detail})` : ""}`,
      e,
    );
  }
  if (code === "CERT_HAS_EXPIRED") return netError("TLS_EXPIRED", `the certificate of ${where} has expired`, e);
  if (code === "CERT_NOT_YET_VALID") return netError("TLS_EXPIRED", `the certificate of ${where} is not valid yet`, e);
  if (code === "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED")
    return netError(
      "TLS_CLIENT_CERT_REQUIRED",
      `${where} requires a client certificate and ${dial.clientCert ? "did not get one it could use" : "none was set"}`,
      e,
    );
  if (code === "ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE" && !dial.clientCert)
    return netError(
      "TLS_CLIENT_CERT_REQUIRED",
      `${where} ended the TLS handshake (alert "handshake failure"), most likely because it requires a client certificate and none was set`,
      e,
    );
  if (CLIENT_CERT_REFUSED.has(code) && dial.clientCert)
    return netError("TLS_CLIENT_CERT_REJECTED", `${where} refused our client certificate (${reason(e)})`, e);
  if (NOT_TLS.has(code)) return netError("NOT_TLS", `${where} does not answer in TLS (${reason(e)})`, e);
  if (code === "ECONNRESET" || code === "EPIPE") {
    if (dial.secure && !opened) return netError("NOT_TLS", `${where} reset the connection during the TLS handshake`, e);
    if (!received) return netError("NO_ANSWER", `${where} reset the connection without answering ${hello}`, e);
    return netError("CLOSED", `${url}: the connection was reset`, e);
  }
  if (code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_") || code.startsWith("CERT_"))
    return netError("TLS_HANDSHAKE_FAILED", `TLS with ${where} failed: ${reason(e)} (${code})`, e);
  return netError("CLOSED", `${url}: ${e.message.split("\n")[0].slice(0, 160)}${code ? ` (${code})` : ""}`, e);
}

function pem(value: string | Uint8Array, label: string): string {
  return typeof value === "string" ? value : derToPem(value, label);
}

/** A transport that failed before it began: reports `error` on the next turn unless closed first. */
function failedTransport(h: TransportHandlers, error: NetError): Transport {
  let closed = false;
  setImmediate(() => closed || h.onError(error));
  return { read: () => undefined, write: () => false, close: () => void (closed = true) };
}

/**
 * A Connector for `endpoint` on Node. TLS (mqtts, wss) verifies the server by default against `tls.ca` (or Node's
 * root store when none is given) and the endpoint's host name (or `tls.serverName`); `tls.insecure` turns that off
 * and is logged at "warn" on every connect. Throws NetError INVALID_URL / INVALID_TLS_OPTIONS for a bad endpoint
 * or TLS options, at once, rather than on every dial.
 */
export function nodeConnector(
  endpoint: Endpoint,
  tlsOptions?: TlsOptions,
  log?: LogFunction,
  options: NodeConnectorOptions = {},
): Connector {
  checkEndpoint(endpoint);
  checkTls(endpoint, tlsOptions);
  const secure = isSecure(endpoint.scheme);
  const t = tlsOptions ?? {};
  const dial: Dial = { endpoint, secure, clientCert: t.cert !== undefined };
  const lookup = options.lookup ?? dns.lookup;
  const host = endpoint.host;
  const insecure = secure && t.insecure === true;
  // Node's TLS options, made once: PEM everywhere (Node does not take a DER CA), SNI only for a name, not an IP.
  const tlsConnect: tls.ConnectionOptions | undefined = secure
    ? {
        host,
        port: endpoint.port,
        lookup,
        servername: t.serverName ?? (net.isIP(host) ? undefined : host),
        ca: t.ca?.map((c) => pem(c, "CERTIFICATE")),
        cert: t.cert === undefined ? undefined : pem(t.cert, "CERTIFICATE"),
        key: t.key === undefined ? undefined : pem(t.key, "PRIVATE KEY"),
        ALPNProtocols: t.alpn,
        rejectUnauthorized: !insecure,
        minVersion: "TLSv1.2",
      }
    : undefined;
  if (tlsConnect && t.serverName !== undefined && net.isIP(host)) {
    // Verify the certificate against serverName even when dialling an address.
    tlsConnect.checkServerIdentity = (_name, cert) => tls.checkServerIdentity(t.serverName!, cert);
  }

  const raw: Connector = (h) => {
    const refused = options.gate?.check();
    if (refused) return failedTransport(h, refused);
    if (insecure) log?.("warn", insecureWarning(endpoint));
    const socket = tlsConnect ? tls.connect(tlsConnect) : net.connect({ host, port: endpoint.port, lookup });
    options.gate?.track(socket);
    return socketTransport(socket, h, {
      connectEvent: tlsConnect ? "secureConnect" : "connect",
      describe: (end, state) => describeEnd(end, dial, state.opened, state.received),
    });
  };
  if (!isWebSocket(endpoint.scheme)) return raw;
  return webSocketConnector(raw, endpoint, {
    random: options.random ?? Math.random,
    maxFrameSize: options.maxFrameSize,
  });
}
