// The Node host: what the firmware gets when it runs on the desktop (simulator, tests, command line).
//
//   const host = createNodeHost({ dir: "./.device" });
//   const connect = host.connector(parseEndpoint("mqtts://broker:8883"), { ca: [caPem] });
//   host.link.down(); host.link.up();   // scripted Wi-Fi
import * as path from "node:path";
import type { Clock, Connector, Endpoint, Host, LogFunction, LogLevel, TlsOptions } from "../../src/host";
import { nodeClock } from "./clock";
import { FileConfigStore, type FileConfigStoreOptions } from "./config-store";
import { nodeConnector, type NodeConnectorOptions } from "./connect";
import { FileOutboxStore } from "./file-store";
import { nodeFirmware, type NodeFirmwareOptions } from "./firmware";
import { ScriptedLink } from "./link";

export interface NodeHostOptions {
  /** Where the device keeps its state: config.json (0600) and outbox/ (0700), created as needed. */
  dir: string;
  /** Default: one line per message on stderr, "[level] message". */
  log?: LogFunction;
  /** Default Math.random. */
  random?: () => number;
  /** Default the real clock (performance.now and Node timers). */
  clock?: Clock;
  /** The link; default a new ScriptedLink that is up. */
  link?: ScriptedLink;
  /** Limits of the config store (default: the ESP32's). */
  config?: FileConfigStoreOptions;
  /** Keep QoS 1 messages across restarts in dir/outbox (default true). */
  persistOutbox?: boolean;
  /** The firmware slot in dir/firmware (hosts/node/firmware.ts): the version before any update, the restart hook. */
  firmware?: NodeFirmwareOptions;
  /** WebSocket frame limit and name resolution for every connector. */
  connect?: Pick<NodeConnectorOptions, "maxFrameSize" | "lookup">;
}

export interface NodeHost extends Host {
  /** The scripted link behind `network`: down() / up(). */
  readonly link: ScriptedLink;
  readonly config: FileConfigStore;
  readonly outbox: FileOutboxStore | undefined;
}

function stderrLog(level: LogLevel, message: string): void {
  process.stderr.write(`[${level}] ${message}\n`);
}

export function createNodeHost(options: NodeHostOptions): NodeHost {
  const log = options.log ?? stderrLog;
  const random = options.random ?? Math.random;
  const link = options.link ?? new ScriptedLink();
  return {
    name: "node",
    clock: options.clock ?? nodeClock,
    random,
    connector(endpoint: Endpoint, tls?: TlsOptions): Connector {
      return nodeConnector(endpoint, tls, log, { ...options.connect, random, gate: link });
    },
    config: new FileConfigStore(path.join(options.dir, "config.json"), options.config),
    outbox: options.persistOutbox === false ? undefined : new FileOutboxStore(path.join(options.dir, "outbox")),
    network: link.network,
    link,
    log,
    firmware: nodeFirmware(options.dir, options.firmware, log),
  };
}
