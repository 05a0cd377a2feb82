// End to end over real sockets: the device layer (src/uiot on src/mqtt/client.ts, the Node host's TCP connector
// and clock) against a platform listening on loopback, the emulated UIoT Core (tools/cloud) or Mosquitto.
// Everything a test starts is closed when the test ends.
import type { Client } from "../../src/mqtt/client";
import type { MqttError } from "../../src/mqtt/errors";
import type { Connector } from "../../src/host";
import { Identity } from "../../src/uiot/identity";
import { uiotClient, type UiotClientOptions } from "../../src/uiot/profile";
import { Thing, type ThingOptions } from "../../src/uiot/thing";
import type { UiotError } from "../../src/uiot/errors";
import { startCloud, type Cloud, type CloudOptions, type JsonObject } from "../../tools/cloud";
import { nodeClock } from "../../hosts/node/clock";
import { tcpConnector } from "../../hosts/node/tcp";
import { onCurrentTestEnd } from "../helpers/cleanup";
import { waitFor } from "../helpers/wait";

export const PSN = "e2eproduct000001"; // 16 characters, like the platform's
export const DSN = "thermostat-01";
export const SECRET = "devsecret0000001";
export const PRODUCT_SECRET = "prodsecret000001";
/** A product with dynamic registration on, and no devices until they register. */
export const PSN_DYN = "e2edynamic000001";
export const SYS = `/$system/${PSN}/${DSN}/`;

/** The product's thing-model template, as the console would hold it. */
export const TEMPLATE: JsonObject = {
  properties: [
    { identifier: "temperature", dataType: { type: "float", specs: { min: -40, max: 120 } } },
    { identifier: "on", dataType: { type: "bool" } },
  ],
  events: [{ identifier: "high_temp", outputData: [{ identifier: "temperature" }] }],
  commands: [{ identifier: "reboot", inputData: [{ identifier: "delay" }] }],
};

/** The system topics a started Thing subscribes to (shadow and thing model). */
export const THING_TOPICS = [
  "shadow/downstream",
  "shadow/get_reply",
  "tmodel/property/post_reply",
  "tmodel/property/set",
  "tmodel/property/restore_reply",
  "tmodel/property/desired/get_reply",
  "tmodel/property/desired/delete_reply",
  "tmodel/event/post_reply",
  "tmodel/command",
  "tmodel/template/get_reply",
];

/** Backoff for tests: reconnects come within tens of milliseconds. */
export const FAST = { min: 20, max: 200 };

/** An emulated UIoT Core for one test, with PSN/DSN (static) and PSN_DYN (dynamic registration on). */
export async function e2eCloud(options: CloudOptions = {}): Promise<Cloud> {
  const cloud = await startCloud({
    products: [
      { productSN: PSN, productSecret: PRODUCT_SECRET, template: TEMPLATE },
      { productSN: PSN_DYN, productSecret: PRODUCT_SECRET, dynamicRegistration: true },
    ],
    devices: [{ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET }],
    ...options,
  });
  await onCurrentTestEnd(() => cloud.close());
  return cloud;
}

export const staticIdentity = (deviceSN = DSN, deviceSecret = SECRET) =>
  new Identity({ productSN: PSN, deviceSN, deviceSecret });

export interface Device {
  identity: Identity;
  client: Client;
  thing: Thing;
  /** Everything the thing and the client reported to onError, in order. */
  errors: (UiotError | MqttError)[];
  /** Every onDisconnect error, in order. */
  disconnects: MqttError[];
  /** CONNACKs accepted so far. */
  connects: number;
  /** The thing's log lines, "level: message". */
  logs: string[];
  /** Resolves once connected with every system subscription of the thing acknowledged. */
  ready(): Promise<void>;
  /** errors with this code. */
  errorsOf(code: string): (UiotError | MqttError)[];
  close(): void;
}

export interface DeviceOptions {
  identity?: Identity;
  client?: Partial<UiotClientOptions>;
  thing?: Partial<ThingOptions>;
  /** Start the thing and the client (default true). */
  start?: boolean;
}

/**
 * A device (uiotClient + Thing) on the Node host's clock and its TCP connector to 127.0.0.1:`target` (or the
 * connector given), closed when the test ends.
 */
export async function device(target: number | Connector, options: DeviceOptions = {}): Promise<Device> {
  const identity = options.identity ?? staticIdentity();
  const errors: (UiotError | MqttError)[] = [];
  const disconnects: MqttError[] = [];
  const logs: string[] = [];
  const d = {} as Device;
  const client = uiotClient(identity, {
    connect: typeof target === "number" ? tcpConnector({ host: "127.0.0.1", port: target }) : target,
    clock: nodeClock,
    backoff: FAST,
    onConnect: () => void d.connects++,
    onDisconnect: (e) => void disconnects.push(e),
    onError: (e) => void errors.push(e),
    ...options.client,
  });
  const thing = new Thing(client, identity, {
    clock: nodeClock,
    onError: (e) => void errors.push(e),
    log: (level, message) => void logs.push(`${level}: ${message}`),
    ...options.thing,
  });
  const base = `/$system/${identity.productSN}/${identity.deviceSN}/`;
  const subscriptions = THING_TOPICS.map((t) => base + t);
  Object.assign(d, {
    identity,
    client,
    thing,
    errors,
    disconnects,
    connects: 0,
    logs,
    ready: async () => {
      await waitFor(
        () => client.state === "connected" && subscriptions.every((f) => client.session.subscriptions.has(f)),
        {
          message: `${identity.clientId} connected and subscribed`,
        },
      );
    },
    errorsOf: (code: string) => errors.filter((e) => e.code === code),
    close: () => {
      thing.stop();
      client.close();
    },
  });
  await onCurrentTestEnd(() => d.close());
  if (options.start ?? true) {
    thing.start();
    client.start();
  }
  return d;
}

/** A started, connected, subscribed device. */
export async function online(target: number | Connector, options: DeviceOptions = {}): Promise<Device> {
  const d = await device(target, options);
  await d.ready();
  return d;
}

/** A deferred promise: resolve it from elsewhere. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
