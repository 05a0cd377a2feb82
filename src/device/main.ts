/**
 * The firmware entry: what every target runs once its host is built (hosts/esp32/main.ts, hosts/esp8266/main.ts,
 * hosts/moddable-desktop/main.ts through hosts/moddable/boot.ts, and the Node simulator, tools/simulator/simulator.ts).
 *
 *   start(host)                  // the thermostat application (src/device/thermostat.ts)
 *   start(host, myApp)           // another application
 *
 * What it does, in order:
 * 1. loadDeviceConfig(host.config): a device that is not provisioned logs ONE error naming what to run, and stops.
 * 2. Only a ProductSecret stored: dynamic registration (register()), which stores the DeviceSecret in the config
 *    store before anything else happens, then deletes the ProductSecret (unless CONFIG_KEYS.keepProductSecret).
 *    A stored DeviceSecret is never overwritten (it is used instead); a ProductSecret left beside it is deleted.
 * 3. The client (uiotClient: UIoT profile, the host's connector for the configured endpoint with TLS verified, by
 *    default against the UIoT root CA for UIoT hosts; the host's clock, random and outbox store) and the Thing.
 * 4. The application is started with the device; then the client, once the host's network link is up.
 *
 * Plain mqtt:// or ws:// to a host that is not loopback runs only with CONFIG_KEYS.allowPlaintext (loadDeviceConfig
 * refuses it otherwise), and every dial then logs a warning that the secret crosses the network in clear.
 *
 * Reconnecting is the client's job (backoff with jitter, forever). The entry only follows the link: it does not
 * dial before the link is first up, and when the link comes back it asks the client to dial at once instead of
 * waiting out its backoff. Portable: no Node APIs, no timer globals (everything goes through the host).
 */
import type { Allocator, Connector, Host, TlsOptions } from "../host";
import type { MqttError } from "../mqtt/errors";
import { isSecure, formatEndpoint } from "../net/endpoint";
import { httpEndpoint, type HttpUrl } from "../net/http";
import type { OtaOptions } from "../uiot/ota";
import { register, type UnstoredRegistration } from "../uiot/register";
import { uiotClient } from "../uiot/profile";
import { Thing } from "../uiot/thing";
import { printsAs, type Identity } from "../uiot/identity";
import { isUiotHost, UIOT_ROOT_CA_PEM } from "../uiot/platform";
import { loadDeviceConfig, sendsSecretsInClear, type DeviceConfig } from "./config";
import { CONFIG_KEYS } from "./config-keys";
import { thermostat } from "./thermostat";
import type { App, Device } from "./app";

export type { App, Device } from "./app";

export interface StartOptions {
  /** The client's packet allocator (the Node host passes its slab allocator; a board keeps the default). */
  alloc?: Allocator;
  /** Called with the device before the client starts (a simulator watching it). */
  observe?: (device: Device) => void;
  /** Keepalive in seconds (default the UIoT default, 300). */
  keepalive?: number;
  /** Firmware-update settings (timeouts, retries, restart delay), when the host has `firmware`. */
  ota?: Partial<Pick<OtaOptions, "timeout" | "retries" | "retryDelay" | "progressInterval" | "rebootDelay">>;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** TLS for the endpoint: the provisioned CA, else the UIoT platform root for UIoT hosts, else the host's default. */
function tlsFor(config: DeviceConfig): TlsOptions | undefined {
  if (!isSecure(config.endpoint.scheme)) return undefined;
  if (config.tls) return config.tls;
  if (isUiotHost(config.endpoint.host)) return { ca: [UIOT_ROOT_CA_PEM] };
  return undefined;
}

/**
 * `connect`, logging at every dial that the secret crosses the network in clear (plain text was allowed for a host
 * that is not loopback); `secret()` names the secret in use at that moment.
 */
function warnPlaintext(connect: Connector, host: Host, where: string, secret: () => string): Connector {
  return (handlers) => {
    host.log(
      "warn",
      `PLAIN TEXT: connecting to ${where} without TLS: the ${secret()} crosses the network in clear, readable by anyone on the way (allowed by ${CONFIG_KEYS.allowPlaintext} = 1; use mqtts:// or wss:// to protect it)`,
    );
    return connect(handlers);
  };
}

/**
 * TLS for a firmware download from `url`: the provisioned CA when there is one (the platform's own file servers are
 * expected to chain to it), the UIoT root for UIoT hosts, else the host's default trust store. Always verified.
 */
function downloadTls(config: DeviceConfig, url: HttpUrl): TlsOptions | undefined {
  if (!url.secure) return undefined;
  if (config.tls) return config.tls;
  if (isUiotHost(url.host)) return { ca: [UIOT_ROOT_CA_PEM] };
  return undefined;
}

/**
 * Boots the firmware on `host` with `app` (default: the thermostat). Resolves with the running device, or with
 * undefined when it cannot run (not provisioned, registration failed): the reason has been logged at "error".
 * Never rejects.
 */
export async function start(host: Host, app?: App, options: StartOptions = {}): Promise<Device | undefined> {
  const loaded = loadDeviceConfig(host.config);
  if (!loaded.ok) {
    host.log("error", loaded.message);
    return undefined;
  }
  const config = loaded.config;
  let connect: Connector;
  try {
    connect = host.connector(config.endpoint, tlsFor(config));
  } catch (e) {
    host.log("error", `cannot connect to ${config.url}: ${errorText(e)}`);
    return undefined;
  }

  let identity = config.identity;
  if (sendsSecretsInClear(config.endpoint))
    connect = warnPlaintext(connect, host, formatEndpoint(config.endpoint), () =>
      identity.authmode === 1 ? "DeviceSecret" : "ProductSecret (the secret of every device of the product)",
    );
  if (identity.authmode === 2) {
    host.log(
      "info",
      `${identity.clientId}: only the ProductSecret is stored: registering dynamically with ${config.url}`,
    );
    await whenUp(host);
    try {
      identity = await register(identity, {
        store: host.config,
        connect,
        clock: host.clock,
        random: host.random,
        alloc: options.alloc,
        keepProductSecret: config.keepProductSecret,
        log: (m) => host.log("info", m),
      });
    } catch (e) {
      const err = e as UnstoredRegistration;
      if (err.identity) {
        // Registered but the store failed: keep running with the secret in RAM (the message says what to do).
        host.log("error", err.message);
        identity = err.identity;
      } else {
        host.log("error", `${errorText(e)}; the device stops here: fix this and restart it`);
        return undefined;
      }
    }
  } else if (!config.keepProductSecret) dropProductSecret(host);
  return run(host, config, identity, connect, app ?? thermostat(), options);
}

/**
 * Deletes a ProductSecret stored beside the DeviceSecret (a device registered before it was deleted after
 * registration, or provisioned with both): the device never needs it again, and one board's flash must not yield
 * the secret of the whole product. A failure is logged, not fatal: the device runs with its DeviceSecret.
 */
function dropProductSecret(host: Host): void {
  try {
    const ps = host.config.get(CONFIG_KEYS.productSecret);
    if (ps === undefined || ps === "") return;
    host.config.delete(CONFIG_KEYS.productSecret);
    host.log(
      "info",
      `the ProductSecret (${CONFIG_KEYS.productSecret}) was deleted from the config store: this device has its DeviceSecret (set ${CONFIG_KEYS.keepProductSecret} = 1 to keep it)`,
    );
  } catch (e) {
    host.log(
      "warn",
      `could not delete the ProductSecret (${CONFIG_KEYS.productSecret}) from the config store: ${errorText(e)}; provision the device again to remove it`,
    );
  }
}

/** Resolves once the host's network link is up. */
function whenUp(host: Host): Promise<void> {
  if (host.network.up) return Promise.resolve();
  host.log("info", "waiting for the network link");
  return new Promise((resolve) => {
    const previous = host.network.onChange;
    host.network.onChange = (up) => {
      if (previous) previous(up);
      if (!up) return;
      host.network.onChange = previous;
      resolve();
    };
  });
}

function run(
  host: Host,
  config: DeviceConfig,
  identity: Identity,
  connect: Connector,
  app: App,
  options: StartOptions,
): Device {
  const connectListeners: (() => void)[] = [];
  const disconnectListeners: ((error: MqttError, retryIn: number) => void)[] = [];
  let connects = 0;
  let stopped = false;
  const where = formatEndpoint(config.endpoint);

  const client = uiotClient(identity, {
    connect,
    clock: host.clock,
    random: host.random,
    alloc: options.alloc,
    keepalive: options.keepalive ?? config.keepalive,
    maxPacketSize: host.maxPacketSize,
    outbox: host.outbox ? { store: host.outbox } : undefined,
    log: (m) => host.log("warn", m),
    onConnect: ({ sessionPresent }) => {
      connects++;
      host.log(
        "info",
        `connected to ${where} as ${identity.clientId}${connects > 1 ? ` (reconnect ${connects - 1})` : ""}${sessionPresent ? ", session kept" : ""}`,
      );
      if (thing.ota) thing.ota.loggedIn();
      for (let i = 0; i < connectListeners.length; i++) connectListeners[i]();
    },
    onDisconnect: (error, retryIn) => {
      if (!stopped)
        host.log(
          "warn",
          host.network.up
            ? `${error.message}${retryIn >= 0 ? `; retrying in ${(retryIn / 1000).toFixed(1)} s` : ""}`
            : `${error.message}; waiting for the link`,
        );
      for (let i = 0; i < disconnectListeners.length; i++) disconnectListeners[i](error, retryIn);
    },
    onError: (error) => host.log("warn", error.message),
  });
  const firmware = host.firmware;
  const thing = new Thing(client, identity, {
    clock: host.clock,
    onError: (error) => host.log("warn", error.message),
    log: (level, message) => host.log(level, message),
    ota: firmware
      ? {
          ...options.ota,
          firmware,
          store: host.config,
          open: (url) => host.connector(httpEndpoint(url), downloadTls(config, url)),
        }
      : undefined,
  });

  // The link: no dialling while it is down (the client holds its retries); back up, the client dials at once.
  const previous = host.network.onChange;
  host.network.onChange = (up) => {
    if (previous) previous(up);
    if (stopped) return;
    host.log(up ? "info" : "warn", up ? "network link up" : "network link down: the device reconnects when it is back");
    client.setOffline(!up);
  };

  // Printed (String, util.inspect, JSON.stringify), it is a summary: the host's store, the client's options and
  // the configuration hold secrets, so none of them is walked.
  const device: Device = printsAs(
    {
      host,
      identity,
      config,
      client,
      thing,
      get connects() {
        return connects;
      },
      onConnect: (listener) => void connectListeners.push(listener),
      onDisconnect: (listener) => void disconnectListeners.push(listener),
      stop: () => {
        if (stopped) return;
        stopped = true;
        host.network.onChange = previous;
        try {
          if (app.stop) app.stop();
        } catch (e) {
          host.log("warn", `the application's stop threw: ${errorText(e)}`);
        }
        thing.stop();
        client.close();
      },
    },
    () => `UIoT device ${identity.clientId} on ${host.name}, ${where}: ${client.state}, ${connects} connection(s)`,
    () => ({
      clientId: identity.clientId,
      host: host.name,
      url: where,
      state: client.state,
      connects,
      identity,
      config,
    }),
  );

  thing.start();
  try {
    app.start(device);
  } catch (e) {
    host.log("error", `the application ${app.name} failed to start: ${errorText(e)}`);
  }
  if (options.observe) options.observe(device);
  if (!host.network.up) {
    host.log("info", `waiting for the network link before connecting to ${where}`);
    client.setOffline(true);
  }
  client.start();
  return device;
}
