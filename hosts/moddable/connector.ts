/**
 * The Moddable host's Connector for every endpoint scheme: mqtt (TCP), mqtts (TLS), ws and wss (the portable
 * WebSocket framing of src/net/websocket.ts over the same TCP or TLS byte transport). Options are checked and
 * converted once, here; a bad endpoint or TLS option throws NetError INVALID_URL / INVALID_TLS_OPTIONS at once.
 */
import type { Connector, Endpoint, LogLevel, NetworkLink, TlsOptions } from "../../src/host";
import { checkEndpoint, isWebSocket } from "../../src/net/endpoint";
import { insecureWarning } from "../../src/net/tls";
import { webSocketConnector } from "../../src/net/websocket";
import { ModdableTransport, type DialOptions, type OpenSocket, type Resolve } from "./socket";
import type { TimeSync } from "./time-sync";
import { moddableTls, type ModdableTls } from "./tls-options";

/** TLS records are at most 2^14 bytes of data (the SDK's session throws "too large" above). */
const MAX_RECORD = 16384;

export interface ModdableNet {
  network: NetworkLink;
  resolve: Resolve;
  openTcp: OpenSocket;
  /** A socket opener for one TLS configuration. */
  openTls(tls: ModdableTls): OpenSocket;
  time: TimeSync;
  defer(f: () => void): void;
  random(): number;
  log(level: LogLevel, message: string): void;
  /** Asked-for TLS record size (0: none), see ChipProfile. */
  maxFragment: number;
  /** Largest WebSocket frame accepted. */
  maxFrameSize: number;
}

export function moddableConnector(endpoint: Endpoint, tlsOptions: TlsOptions | undefined, net: ModdableNet): Connector {
  checkEndpoint(endpoint);
  const tls = moddableTls(endpoint, tlsOptions, net.maxFragment);
  const open = tls ? net.openTls(tls) : net.openTcp;
  const facts = tls
    ? {
        verify: !tls.insecure,
        clientCert: tls.clientCert,
        serverName: tls.serverName,
        maxRecord: net.maxFragment > 0 ? Math.min(MAX_RECORD, net.maxFragment) : MAX_RECORD,
      }
    : undefined;
  // the same for every dial: made once here, not once per connection
  const dial: DialOptions = {
    endpoint,
    tls: facts,
    network: net.network,
    resolve: net.resolve,
    open,
    time: net.time,
    defer: net.defer,
  };
  const raw: Connector = (h) => {
    if (tls?.insecure) net.log("warn", insecureWarning(endpoint));
    return new ModdableTransport(dial, h);
  };
  if (!isWebSocket(endpoint.scheme)) return raw;
  return webSocketConnector(raw, endpoint, { random: net.random, maxFrameSize: net.maxFrameSize });
}
