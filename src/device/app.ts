// What the firmware entry (./main.ts) and an application agree on: the running device an application is given,
// and the application itself. Types only, apart from the entry, so an application (./thermostat.ts) and the entry
// that starts it by default do not import each other.
import type { Client } from "../mqtt/client";
import type { MqttError } from "../mqtt/errors";
import type { Identity } from "../uiot/identity";
import type { Thing } from "../uiot/thing";
import type { DeviceConfig } from "./config";
import type { Host } from "../host";

/** What an application gets: the running device. */
export interface Device {
  readonly host: Host;
  readonly identity: Identity;
  readonly config: DeviceConfig;
  readonly client: Client;
  readonly thing: Thing;
  /** Connections made so far (1 after the first CONNACK; more after reconnects). */
  readonly connects: number;
  /** Listeners for the connection's life (the application's and a simulator's). */
  onConnect(listener: () => void): void;
  onDisconnect(listener: (error: MqttError, retryIn: number) => void): void;
  /** Stops the application, the thing and the client (DISCONNECT); timers of the entry are cleared. */
  stop(): void;
}

/** An application: started once the device is built, before the first connection. */
export interface App {
  readonly name: string;
  start(device: Device): void;
  /** Called by device.stop(). */
  stop?(): void;
}
