/**
 * The Host (src/host.ts) on the Moddable SDK, for every Moddable target: ESP32, ESP8266 and the desktop
 * simulator (lin, mac, win). This is the one module that imports the SDK's modules; everything it builds on is
 * plain TypeScript beside it. The SDK modules and what is used of them:
 *   timer                       Timer.set / Timer.schedule / Timer.clear     (modules/base/timer/timer.js)
 *   time                        Time.ticks, Time.set                         (modules/base/time/time.js)
 *   preference                  Preference.get / set / delete / keys         (modules/files/preference; handed in
 *                               by each target's main.ts, see ModdableHostOptions.preferences)
 *   net                         Net.resolve(name, callback)  (lwIP DNS with the DHCP server; modules/network/net)
 *   sntp                        new SNTP({host}, callback)                   (modules/network/sntp/sntp.js)
 *   embedded:io/socket/tcp      new TCP({address, port, nodelay, onReadable, onWritable, onError})
 *                               (modules/io/socket/lwip/tcp.c; lin/mac/win beside it)
 *   embedded:io/socket/tcp/tls  new TLSSocket({address, port, host, secure, TCP: {io}, onReadable, ...})
 *                               (examples/io/tcp/tlssocket/tlssocket.js with modules/crypt/tls_419.json)
 *   mc/config                   ssid, password (mcconfig ... ssid= password=) and sntp (manifest_net.json)
 * The Wi-Fi module (embedded:network/interface/wifi) exists on the boards only: their main.ts hands it in.
 */
/// <reference path="./types/tlssocket.d.ts" />
import config from "mc/config";
// biome-ignore lint/style/useNodejsImportProtocol: the Moddable SDK's own "net" module, not Node's
import Net from "net";
import SNTP from "sntp";
import Time from "time";
import Timer from "timer";
import TCP from "embedded:io/socket/tcp";
import TLSSocket from "embedded:io/socket/tcp/tls";
import type {
  Connector,
  Endpoint,
  Firmware,
  Host,
  KeyValueStore,
  LogLevel,
  NetworkLink,
  TlsOptions,
} from "../../src/host";
import { CONFIG_KEYS, PREFERENCE_DOMAIN } from "../../src/device/config-keys";
import { ESP8266_OUTBOX, type ChipProfile } from "./chips";
import { ModdableClock, type TimerApi } from "./clock";
import { moddableConnector, type ModdableNet } from "./connector";
import { PreferenceOutboxStore, PreferenceStore, type Preferences } from "./preference-store";
import { tcpOpener, tlsOpener, type SocketClass } from "./openers";
import { TimeSync, type SntpConstructor } from "./time-sync";
import { alwaysUp, WiFiLink, type WiFiConstructor } from "./wifi-link";

/** What a network factory gets to build the link with. */
export interface HostParts {
  clock: ModdableClock;
  random(): number;
  config: KeyValueStore;
  log(level: LogLevel, message: string): void;
}

export interface ModdableHostOptions {
  chip: ChipProfile;
  /**
   * The SDK's `preference` class, imported by the target's main.ts. Not imported here: this module is preloaded,
   * and on the desktop (lin) the SDK's `preference` is a JavaScript class that reads its file in a static
   * initializer, which preloading would run once at build time (on the build machine) instead of at every start.
   */
  preferences: unknown;
  /** Builds the network link (default: always up, the simulator's). */
  network?: (parts: HostParts) => NetworkLink;
  /** Default: trace(), one line per message: "[level] message". */
  log?: (level: LogLevel, message: string) => void;
  /** Keep QoS 1 messages across reboots in `preference` (default: when the chip profile has an outbox). */
  persistOutbox?: boolean;
  /** Uniform in [0, 1): backoff jitter and WebSocket masks (default Math.random, the chip's hardware generator). */
  random?: () => number;
  /** SNTP servers, in order (default: mc/config `sntp`, then time.cloudflare.com and ntp.aliyun.com). */
  sntp?: string[];
  /** Firmware updates over the air (./firmware.ts): esp32Firmware, or noFirmwareUpdates with the reason. */
  firmware?: Firmware;
}

export interface ModdableHost extends Host {
  readonly chip: ChipProfile;
  readonly clock: ModdableClock;
  readonly config: PreferenceStore;
  readonly outbox: PreferenceOutboxStore | undefined;
  /** The SNTP gate in front of TLS (certificate dates). */
  readonly time: TimeSync;
}

function traceLog(level: LogLevel, message: string): void {
  trace(`[${level}] ${message}\n`);
}

const openTcp = tcpOpener(TCP as unknown as SocketClass);
const openTls = tlsOpener(TCP as unknown as SocketClass, TLSSocket as unknown as SocketClass);

function resolve(host: string, callback: (address: string | undefined) => void): void {
  Net.resolve(host, (_name, address) => callback(address));
}

/** Builds the host. Runs at start-up (never at preload: it calls native code). */
export function createModdableHost(options: ModdableHostOptions): ModdableHost {
  const chip = options.chip;
  const log = options.log ?? traceLog;
  const random = options.random ?? ((): number => Math.random());
  const clock = new ModdableClock(
    () => Time.ticks,
    Timer as unknown as TimerApi,
    (e) => log("error", `a timer callback threw: ${String(e)}`),
  );
  const prefs = options.preferences as Preferences;
  const store = new PreferenceStore(prefs, {
    domain: PREFERENCE_DOMAIN,
    limits: chip.preference,
    maxValueBytes: chip.maxConfigValue,
  });
  const persist = options.persistOutbox ?? chip.outbox !== undefined;
  const bounds = chip.outbox ?? ESP8266_OUTBOX;
  const outbox = persist
    ? new PreferenceOutboxStore(prefs, { domain: "obx", limits: chip.preference, ...bounds })
    : undefined;
  const sntp = (config as Record<string, unknown>).sntp;
  const time = new TimeSync({
    SNTP: SNTP as unknown as SntpConstructor,
    setTime: (seconds) => Time.set(seconds),
    now: () => Date.now(),
    hosts: options.sntp ?? [
      typeof sntp === "string" && sntp ? sntp : "pool.ntp.org",
      "time.cloudflare.com",
      "ntp.aliyun.com",
    ],
    log,
  });
  const network = (options.network ?? alwaysUp)({ clock, random, config: store, log });
  const net: ModdableNet = {
    network,
    resolve,
    openTcp,
    openTls,
    time,
    random,
    log,
    defer: (f) => void clock.setTimer(f, 0),
    maxFragment: chip.tlsMaxFragment,
    maxFrameSize: chip.maxFrameSize,
  };
  return {
    name: chip.name,
    chip,
    clock,
    random,
    connector: (endpoint: Endpoint, tls?: TlsOptions): Connector => moddableConnector(endpoint, tls, net),
    config: store,
    outbox,
    network,
    time,
    log,
    maxPacketSize: chip.maxPacketSize,
    firmware: options.firmware,
  };
}

/** The firmware's version: mc/config `firmware` (the project manifest's "config"), else "0.0.0". */
export function firmwareVersion(): string {
  const v = (config as Record<string, unknown>).firmware;
  return typeof v === "string" && v !== "" ? v : "0.0.0";
}

function stored(config: KeyValueStore, key: string, log: HostParts["log"]): string | undefined {
  try {
    return config.get(key) || undefined;
  } catch (e) {
    log("error", `cannot read config key "${key}": ${String(e)}`);
    return undefined;
  }
}

/**
 * A network factory for the boards: Wi-Fi on the ECMA-419 WiFi class (`embedded:network/interface/wifi`, handed
 * in by main.ts), with the credentials from the config store (CONFIG_KEYS.wifiSsid, wifiPassword) or, failing that,
 * from mcconfig's ssid= and password= arguments.
 */
export function wifiNetwork(WiFi: unknown): (parts: HostParts) => NetworkLink {
  return ({ clock, random, config: store, log }) => {
    const mc = config as Record<string, unknown>;
    const ssid = stored(store, CONFIG_KEYS.wifiSsid, log) ?? (typeof mc.ssid === "string" ? mc.ssid : undefined);
    const password =
      stored(store, CONFIG_KEYS.wifiPassword, log) ?? (typeof mc.password === "string" ? mc.password : undefined);
    const link = new WiFiLink({ WiFi: WiFi as WiFiConstructor, ssid, password, clock, random, log });
    link.start();
    return link;
  };
}

/** One line saying what this host is, for the boot log. */
export function describeHost(host: ModdableHost): string {
  const o = host.outbox?.usage;
  return `uiot-thing-firmware on ${host.name}: network ${host.network.up ? "up" : "down (connecting)"}; clock ${host.time.valid ? "set" : "not set (SNTP before the first TLS connection)"}; config in preference "${PREFERENCE_DOMAIN}*" (values up to ${host.chip.maxConfigValue} bytes); outbox ${o ? `in preference "obx*" (${o.messages} kept, up to ${o.maxMessages} messages / ${o.maxBytes} bytes)` : "in RAM only (lost on reboot)"}`;
}
