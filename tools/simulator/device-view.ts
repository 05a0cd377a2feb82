// What the simulator (tools/simulator/simulator.ts) shows of the running device, whichever engine runs the firmware:
// V8 in this process (nodeDevice, below: the Device that src/device/main.ts returns) or Moddable's XS in a child
// process (tools/simulator/xs-device.ts). The simulator reads only this.
import type { Host } from "../../src/host";
import { start, type Device } from "../../src/device/main";
import type { Thermostat, ThermostatState } from "../../src/device/thermostat";
import { nodeAlloc } from "../../hosts/node/alloc";

/** Called with every message through the client's API: "in" as it is handed to the application, "out" as published. */
export type Trace = (direction: "in" | "out", topic: string, payload: Uint8Array | string) => void;

export interface DeviceView {
  readonly engine: "node" | "xs";
  /** The client's state ("connected", "waiting", ...); "starting" until the device runs. */
  readonly state: string;
  /** Connections made (CONNACKs). */
  readonly connects: number;
  /** Connections that were up and then lost. */
  readonly drops: number;
  /** Attempts that never connected (a dial, a TLS handshake or a CONNECT that failed). */
  readonly failedDials: number;
  /** Why the last connection was lost or the last attempt failed (empty once connected again). */
  readonly problem: string;
  /** QoS 1 messages waiting for the broker. */
  readonly outbox: number;
  readonly thermostat: Readonly<ThermostatState>;
  /** Resolves true once the device runs, false when the firmware did not start (the reason was logged). */
  readonly started: Promise<boolean>;
  /** Stops the device (DISCONNECT) and whatever runs it. Idempotent. */
  stop(): Promise<void>;
  /**
   * XS only: resolves once the engine has handled every event so far, so the view is current (the XS view is the
   * status of the last event handled; V8's is read live).
   */
  sync?(): Promise<void>;
}

/** The firmware entry in this process, on `host`, with `app`. */
export function nodeDevice(host: Host, app: Thermostat, trace: Trace): DeviceView {
  let device: Device | undefined;
  let drops = 0,
    failedDials = 0,
    problem = "",
    up = false;
  const observe = (d: Device): void => {
    const client = d.client;
    const inner = client.onMessage;
    client.onMessage = (topic, payload, message) => {
      trace("in", topic, payload);
      return inner.call(client, topic, payload, message);
    };
    const publish = client.publish;
    client.publish = (topic, payload, opts, cb) => {
      const r = publish.call(client, topic, payload, opts, cb);
      trace("out", topic, payload);
      return r;
    };
    // The client reports a lost connection and a failed attempt alike: only a connection that was up is a drop.
    d.onDisconnect((error) => {
      if (up) drops++;
      else failedDials++;
      up = false;
      problem = error.message;
    });
    d.onConnect(() => {
      up = true;
      problem = "";
    });
  };
  const running = start(host, app, { alloc: nodeAlloc, observe });
  const started = running.then((d) => {
    device = d;
    return d !== undefined;
  });
  return {
    engine: "node",
    get state() {
      return device ? device.client.state : "starting";
    },
    get connects() {
      return device?.connects ?? 0;
    },
    get drops() {
      return drops;
    },
    get failedDials() {
      return failedDials;
    },
    get problem() {
      return problem;
    },
    get outbox() {
      return device ? device.client.outbox.messages : 0;
    },
    thermostat: app.state,
    started,
    stop: async () => {
      const d = await Promise.race([running, new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000))]);
      d?.stop();
    },
  };
}
