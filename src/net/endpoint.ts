/** Where a broker is and how to reach it: the portable shape every host's connector understands. */

export type Scheme = "mqtt" | "mqtts" | "ws" | "wss";

export interface Endpoint {
  scheme: Scheme;
  host: string;
  port: number;
  /** WebSocket path (default "/mqtt"); "" for mqtt/mqtts. */
  path: string;
}

/**
 * TLS settings, one shape for every host. Verification is on unless `insecure` is set explicitly, and hosts log
 * loudly on every connect when it is.
 */
export interface TlsOptions {
  /** Trusted CAs, PEM text or DER bytes; several allowed. The UIoT profile defaults to the platform's root. */
  ca?: (string | Uint8Array)[];
  /** Name for SNI and certificate verification; default: the endpoint's host. */
  serverName?: string;
  /** Client certificate (PEM or DER) and its private key (PKCS#8 PEM or DER), for mutual TLS. */
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
  /** ALPN protocol names, e.g. ["mqtt"]. */
  alpn?: string[];
  /** Turns certificate verification off. Never the default; logged on every connect. */
  insecure?: boolean;
}
