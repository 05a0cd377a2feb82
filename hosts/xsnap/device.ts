// The firmware entry as the Node bridge (tools/simulator/xs-device.ts) drives it inside XS: globalThis.handleCommand
// takes the bridge's events (hosts/xsnap/wire.ts); START builds the host (hosts/xsnap/host.ts) and calls the real
// `start(host, app)` of src/device/main.ts. The reply to every event is the device's status (DeviceStatus JSON),
// read once the event's promise jobs have run, so the Node side always shows the state after the event.
import { start, type App, type Device } from "../../src/device/main";
import type { ThermostatState } from "../../src/device/thermostat";
import { ask, text, traceMessage, XsHost } from "./host";
import { E, frame, HEADER, opOf, Q, textBytes, withText, type DeviceStatus, type StartOptions } from "./wire";

/** An application the bridge can show: the thermostat has `state`. */
export interface ServedApp extends App {
  readonly state?: Readonly<ThermostatState>;
}

const NO_STATE: ThermostatState = {
  temperature: 0,
  humidity: 0,
  target: 0,
  correction: 0,
  posts: 0,
  events: 0,
  hot: false,
};

/** Serves the bridge's events with `makeApp(options)` as the application (the bundle's entry calls this once). */
export function serveDevice(makeApp: (options: StartOptions) => ServedApp): void {
  let bridge: XsHost | undefined;
  let app: ServedApp | undefined;
  let device: Device | undefined;
  let phase = "starting";
  let drops = 0,
    failedDials = 0,
    problem = "",
    up = false;

  const status = (): ArrayBuffer => {
    const s: DeviceStatus = {
      state: device ? device.client.state : phase,
      connects: device ? device.connects : 0,
      drops,
      failedDials,
      problem,
      outbox: device ? device.client.outbox.messages : 0,
      thermostat: app?.state || NO_STATE,
    };
    return textBytes(JSON.stringify(s)).buffer as ArrayBuffer;
  };
  // xsnap reads `result` after the promise jobs of the event ran out: the status then, not at the event's start.
  const reply = {
    get result(): ArrayBuffer {
      return status();
    },
  };

  const observe = (d: Device, trace: boolean): void => {
    // A lost connection and a failed attempt come alike: only a connection that was up is a drop.
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
    if (!trace) return;
    // What the simulator prints as "in"/"out" lines: every message through the client's API.
    const client = d.client;
    const inner = client.onMessage;
    client.onMessage = (topic, payload, message) => {
      ask(traceMessage(0, topic, payload));
      return inner.call(client, topic, payload, message);
    };
    // Traced before the call, not after as on V8: here the bytes reach the Node side (and a broker in that process)
    // before XS's next query, so a trace after it would print after the broker's answer to it.
    const publish = client.publish;
    client.publish = (topic, payload, opts, cb) => {
      ask(traceMessage(1, topic, payload));
      return publish.call(client, topic, payload, opts, cb);
    };
  };

  const begin = (o: StartOptions): void => {
    if (bridge) throw new Error("the XS device was started twice");
    bridge = new XsHost({ up: o.up, outbox: o.outbox, firmware: o.firmware });
    app = makeApp(o);
    start(bridge.host, app, { keepalive: o.keepalive, ota: o.ota, observe: (d) => observe(d, o.trace === true) }).then(
      (d) => {
        device = d;
        if (!d) phase = "stopped";
        ask(frame(Q.STARTED, d ? 1 : 0, 0));
      },
      // start() never rejects; if it ever does, that is a bug the Node side reports as a failure of the engine
      (e: unknown) => {
        phase = "stopped";
        ask(withText(Q.STARTED, 2, e instanceof Error ? `${e.name}: ${e.message}` : String(e)));
      },
    );
  };

  (globalThis as unknown as { handleCommand: (m: ArrayBuffer) => unknown }).handleCommand = (message: ArrayBuffer) => {
    const m = new Uint8Array(message);
    const op = opOf(m);
    if (op === E.START) begin(JSON.parse(text(m, HEADER)) as StartOptions);
    else if (op === E.STOP) {
      if (device) device.stop();
    } else if (op !== E.STATUS && !bridge?.deliver(m))
      throw new Error(`the XS device got an event it does not know (op ${op})`);
    return reply;
  };
}
