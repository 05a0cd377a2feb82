/**
 * The one error type of the network layer: endpoint URLs, TLS options, DNS, TCP, TLS and WebSocket. `code` is
 * stable and meant for programs; `message` is meant for a person: what happened, then what to do about it.
 * Messages never contain secrets (no passwords, no keys, no URL credentials).
 *
 * The MQTT client reports a NetError from a transport as MqttError CONNECTION_LOST with this message as its text
 * and the NetError as its `cause`.
 */
export type NetErrorCode =
  | "INVALID_URL" // an endpoint URL or Endpoint object the network layer cannot use
  | "INVALID_TLS_OPTIONS" // TLS options that are wrong in themselves (cert without key, a file path as a CA, ...)
  | "NETWORK_DOWN" // the link (Wi-Fi) is down: nothing can be dialled
  | "DNS_FAILED" // the host name does not resolve
  | "CONNECTION_REFUSED" // nothing listens on that port
  | "UNREACHABLE" // no route to the host
  | "TIMEOUT" // the host did not answer in time
  | "CLOSED" // the peer or the network closed the connection
  | "NO_ANSWER" // the server closed the connection without a byte of answer (often: a TLS port)
  | "TLS_REQUIRED" // a plain client on a TLS port and the server said so in TLS
  | "NOT_TLS" // a TLS client on a port that does not speak TLS
  | "TLS_UNKNOWN_CA" // the server's certificate does not chain to a trusted CA
  | "TLS_HOSTNAME_MISMATCH" // the server's certificate is for another name
  | "TLS_EXPIRED" // the server's certificate is expired or not yet valid (or the clock is wrong)
  | "TLS_CLIENT_CERT_REQUIRED" // mutual TLS: the server wants a client certificate and got none
  | "TLS_CLIENT_CERT_REJECTED" // mutual TLS: the server refused our client certificate
  | "TLS_HANDSHAKE_FAILED" // any other TLS failure
  | "NOT_MQTT" // the server answered, but not as an MQTT broker (e.g. an HTTP server)
  | "WS_HANDSHAKE_FAILED" // the WebSocket upgrade was refused or answered wrongly
  | "WS_PROTOCOL_ERROR" // the server broke RFC 6455 (text frame, masked frame, bad opcode, ...)
  | "FRAME_TOO_LARGE"; // a WebSocket frame or message over the configured maximum

/** What to do, per code: appended to the specific message by `netError`. */
const HINTS: { readonly [code in NetErrorCode]: string } = Object.freeze({
  INVALID_URL: "write it as mqtt://host:1883, mqtts://host:8883, ws://host:8083/mqtt or wss://host:8084/mqtt",
  INVALID_TLS_OPTIONS: "see TlsOptions in src/net/endpoint.ts",
  NETWORK_DOWN: "the client tries again when the network is back",
  DNS_FAILED: "check the host name for typos and that this device has working DNS (network up, DNS server set)",
  CONNECTION_REFUSED:
    "nothing accepts connections there: check the port (mqtt 1883, mqtts 8883, ws 8083, wss 8084) and that the broker runs",
  UNREACHABLE: "there is no route to that host: check the address and the network",
  TIMEOUT: "the host did not answer in time: check the address, the port and any firewall",
  CLOSED: "the client reconnects; if this repeats, look at the broker's log",
  NO_ANSWER:
    "if this is a TLS port (mqtts 8883, wss 8084 or 443) use mqtts:// or wss://; otherwise the server is not an MQTT broker or refused the connection (see its log)",
  TLS_REQUIRED: "this port expects TLS: use mqtts:// (8883) or wss:// (8084)",
  NOT_TLS:
    "this port does not speak TLS: use mqtt:// (1883) or ws:// (8083) for a plain port, or the broker's TLS port (mqtts 8883, wss 8084)",
  TLS_UNKNOWN_CA: "pass the CA certificate that signed the broker's certificate in tls.ca (PEM text or DER bytes)",
  TLS_HOSTNAME_MISMATCH: "connect with a host name the certificate names, or set tls.serverName to one of them",
  TLS_EXPIRED: "check this device's clock (set it with SNTP before connecting) and the certificate's validity dates",
  TLS_CLIENT_CERT_REQUIRED:
    "the broker uses mutual TLS: set tls.cert and tls.key to this device's certificate and private key",
  TLS_CLIENT_CERT_REJECTED:
    "the client certificate must be signed by a CA the broker trusts, be valid now and match tls.key",
  TLS_HANDSHAKE_FAILED: "the TLS versions, ciphers or certificates do not match what the broker accepts",
  NOT_MQTT:
    "this is not an MQTT broker: check the host, the port and the scheme (mqtt 1883, mqtts 8883, ws 8083, wss 8084)",
  WS_HANDSHAKE_FAILED: "check the URL's path (EMQX and Mosquitto: /mqtt) and that this port serves MQTT over WebSocket",
  WS_PROTOCOL_ERROR: "the server broke the WebSocket protocol (RFC 6455): report it to the broker's operator",
  FRAME_TOO_LARGE: "raise maxFrameSize, or keep the broker's messages smaller",
});

export class NetError extends Error {
  // A field, defined on the instance: on XS Error.prototype is frozen, so assigning `this.name` would throw.
  override name = "NetError";
  readonly code: NetErrorCode;
  /** What was reported underneath (a host's socket error), when there was something. */
  override cause?: unknown;
  constructor(code: NetErrorCode, message: string, cause?: unknown) {
    super(message);
    this.code = code;
    if (cause !== undefined) this.cause = cause;
  }
}

/** A NetError whose message is `what` followed by the standard hint for `code`. */
export function netError(code: NetErrorCode, what: string, cause?: unknown): NetError {
  return new NetError(code, `${what}: ${HINTS[code]}`, cause);
}

/** The standard hint for `code` (what a person should check). */
export function netHint(code: NetErrorCode): string {
  return HINTS[code];
}

/** Up to `max` leading bytes as text when they are printable ASCII (first line only), else as hex. */
export function describeBytes(bytes: Uint8Array, max = 40): string {
  const n = bytes.length < max ? bytes.length : max;
  let text = "";
  let printable = n > 0;
  for (let i = 0; i < n; i++) {
    const b = bytes[i];
    if (b === 13 || b === 10) break;
    if (b < 32 || b > 126) {
      printable = false;
      break;
    }
    text += String.fromCharCode(b);
  }
  if (printable && text.length > 0) return JSON.stringify(text);
  let hex = "";
  const m = n < 8 ? n : 8;
  for (let i = 0; i < m; i++) hex += (i ? " " : "") + (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
  return `bytes ${hex}${bytes.length > m ? " ..." : ""}`;
}

/**
 * Checks the first bytes a broker sent on a new connection (after any TLS or WebSocket layer): an MQTT broker's
 * first packet is CONNACK (0x20) or, in MQTT 5.0, AUTH (0xF0). Anything else means the server is not an MQTT
 * broker; returns the error to report, or undefined when the answer looks like MQTT.
 */
export function checkBrokerAnswer(first: Uint8Array): NetError | undefined {
  if (first.length === 0) return undefined;
  const b = first[0];
  if (b === 0x20 || b === 0xf0) return undefined;
  if (
    first.length >= 5 &&
    b === 0x48 &&
    first[1] === 0x54 &&
    first[2] === 0x54 &&
    first[3] === 0x50 &&
    first[4] === 0x2f
  )
    return netError(
      "NOT_MQTT",
      `the server answered CONNECT in HTTP (${describeBytes(first)}), so it is a web server, not an MQTT broker; for MQTT over WebSocket use ws:// or wss:// with the path`,
    );
  if ((b === 0x15 || b === 0x16) && first.length >= 2 && first[1] === 0x03)
    return netError("TLS_REQUIRED", "the server answered CONNECT with a TLS record");
  return netError("NOT_MQTT", `the server answered CONNECT with ${describeBytes(first)} instead of a CONNACK (0x20)`);
}
