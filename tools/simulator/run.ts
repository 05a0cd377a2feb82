// A running simulator (tools/simulator/simulator.ts): what its pieces share (the device, the cloud, the log, the
// screen on a terminal, what the device's messages tell) and how it ends.
import type { NodeHost } from "../../hosts/node/host";
import type { Cloud } from "../cloud";
import type { DeviceView } from "./device-view";
import { clock, renderScreen, screenFrame, type FirmwareUpdate, type LogLine, type Traced } from "./screen";

/** Where the simulator prints and reads: a terminal, or pipes. */
export interface SimulatorIo {
  stdout: NodeJS.WriteStream | NodeJS.WritableStream;
  stdin?: NodeJS.ReadStream | NodeJS.ReadableStream;
  /** Redraw the screen (a terminal) rather than print lines. */
  tty: boolean;
  /** The terminal's size for the screen (default 100 columns, 24 rows). */
  columns?: () => number;
  rows?: () => number;
}

const ESC = "\x1b[";

/** Where the device keeps its store, who it is and the broker it connects to (the emulated cloud's, unless --broker). */
export interface Place {
  dir: string;
  cloud: Cloud | undefined;
  psn: string;
  dsn: string;
  brokerUrl: string;
}

function utf8(payload: Uint8Array | string): string {
  return typeof payload === "string" ? payload : new TextDecoder().decode(payload);
}

export class Run {
  readonly out: SimulatorIo["stdout"];
  /** A screen redrawn on a terminal, or one line per event. */
  readonly tty: boolean;
  readonly logs: LogLine[] = [];
  place!: Place;
  host!: NodeHost;
  view!: DeviceView;
  lastIn: Traced | undefined;
  lastOut: Traced | undefined;
  /** The shadow as the device's own messages tell it (what the screen shows without the emulated cloud). */
  readonly deviceShadow = {
    reported: {} as Record<string, unknown>,
    desired: {} as Record<string, unknown>,
    version: undefined as number | undefined,
  };
  /** The last firmware update, as the device's own OTA messages tell it (update_firmware in, its reports out). */
  firmwareUpdate: FirmwareUpdate | undefined;
  /** The emulated cloud's firmware file server, once started (the `update` command): its port and certificate. */
  fileServer: { port: number; cert: string } | undefined;
  /** The device restarting into a new firmware: stop() waits for it. */
  restarting: Promise<void> | undefined;
  /** What is being typed after ':'. */
  typing: string | undefined;
  stopping = false;
  /** The firmware did not start. */
  failed = false;
  /** Why the XS engine failed, if it did. */
  engineFailure: string | undefined;
  /** Set once stopped: nothing more is logged. */
  private closed = false;
  /** Resolves at the first message from the broker (or when the firmware cannot start). */
  readonly ready: Promise<void>;
  setReady!: () => void;
  readonly stopped: Promise<void>;
  private resolveStopped!: () => void;
  private stopPromise: Promise<void> | undefined;
  private drawTimer: NodeJS.Timeout | undefined;
  private refresh: NodeJS.Timeout | undefined;
  /** What stop() undoes before the device stops: the input's listener, a script's wait. */
  readonly releases: (() => void)[] = [];

  constructor(
    readonly io: SimulatorIo,
    plain: boolean | undefined,
    readonly engine: "node" | "xs",
  ) {
    this.out = io.stdout;
    this.tty = io.tty && !plain;
    this.ready = new Promise<void>((r) => (this.setReady = r));
    this.stopped = new Promise<void>((r) => (this.resolveStopped = r));
  }

  /** The cloud, the emulated one when it runs here. */
  get cloud(): Cloud | undefined {
    return this.place.cloud;
  }

  /** A line under Recent on the screen, or printed. */
  recent(level: LogLine["level"], text: string): void {
    if (this.closed) return;
    const line = { at: Date.now(), level, text };
    this.logs.push(line);
    if (this.logs.length > 200) this.logs.shift();
    if (!this.tty) this.out.write(`${clock(line.at)} ${level === "info" ? "" : `[${level}] `}${text}\n`);
    else this.schedule();
  }

  // ---- what the device does, as seen from the device ----

  /** The device's topics under /$system/PSN/DSN/. */
  get systemPrefix(): string {
    return `/$system/${this.place.psn}/${this.place.dsn}/`;
  }

  /** Every message through the client's API (the device view's Trace). */
  readonly trace = (direction: "in" | "out", topic: string, payload: Uint8Array | string): void => {
    const prefix = this.systemPrefix;
    const t: Traced = {
      at: Date.now(),
      topic: topic.startsWith(prefix) ? topic.slice(prefix.length) : topic,
      text: utf8(payload),
    };
    // A firmware URL's signature lets anyone download the image until it expires: shown as "…", as the device logs it.
    if (direction === "in" && topic.endsWith("ota/downstream"))
      t.text = t.text.replace(/([?&]Signature=)[^&"]*/g, "$1…");
    // The first answer from the broker comes after the device's subscriptions are in place: console commands
    // of a script wait for it (a command published before the SUBSCRIBE is handled would reach nobody).
    if (direction === "in") this.setReady();
    if (direction === "in") this.lastIn = t;
    else this.lastOut = t;
    this.traceShadow(direction, topic, t.text);
    this.traceFirmware(direction, topic, t.text);
    if (!this.tty) this.out.write(`${clock(t.at)} ${direction === "in" ? "in " : "out"} ${t.topic} ${t.text}\n`);
    else this.schedule();
  };

  private traceShadow(direction: "in" | "out", topic: string, text: string): void {
    const deviceShadow = this.deviceShadow;
    try {
      const m = JSON.parse(text) as {
        Method?: string;
        State?: { Reported?: Record<string, unknown> };
        Payload?: { State?: { Desired?: Record<string, unknown> } };
        Version?: number;
      };
      if (direction === "out" && topic.endsWith("shadow/upstream") && m.State?.Reported)
        Object.assign(deviceShadow.reported, m.State.Reported);
      if (direction === "out" && topic.endsWith("shadow/upstream") && m.State && "Desired" in m.State)
        deviceShadow.desired = {};
      if (direction === "in" && topic.endsWith("shadow/downstream")) {
        if (typeof m.Version === "number") deviceShadow.version = m.Version;
        if (m.Method === "control" && m.Payload?.State?.Desired) deviceShadow.desired = m.Payload.State.Desired;
      }
    } catch {
      // not JSON: nothing to learn
    }
  }

  private traceFirmware(direction: "in" | "out", topic: string, text: string): void {
    if (!topic.endsWith(direction === "in" ? "ota/downstream" : "ota/upstream")) return;
    let m: { Method?: unknown; Payload?: { Version?: unknown; State?: unknown; Percent?: unknown; ErrCode?: unknown } };
    try {
      m = JSON.parse(text) as typeof m;
    } catch {
      return;
    }
    const target = typeof m.Payload?.Version === "string" ? m.Payload.Version : "?";
    const u = this.firmwareUpdate;
    switch (m.Method) {
      case "update_firmware":
        this.firmwareUpdate = { target, state: "sent", percent: 0 };
        break;
      case "cancel_update":
        if (u) u.state = "cancelled";
        break;
      case "report_progress":
        this.firmwareUpdate = {
          target,
          state: m.Payload?.State === "burning" ? "burning" : "downloading",
          percent: Number(m.Payload?.Percent) || 0,
        };
        break;
      case "report_success":
        this.firmwareUpdate = { target, state: "success", percent: 100 };
        break;
      case "report_fail":
        this.firmwareUpdate = {
          target,
          state: "failed",
          percent: u?.percent ?? 0,
          errCode: Number(m.Payload?.ErrCode),
        };
        break;
    }
  }

  // ---- the screen ----

  /** Redraws the screen soon (a terminal only). */
  readonly schedule = (): void => {
    if (!this.tty || this.drawTimer || this.stopping) return;
    this.drawTimer = setTimeout(() => this.draw(), 100);
  };

  private draw(): void {
    this.drawTimer = undefined;
    if (this.stopping) return;
    const { cloud, psn, dsn, brokerUrl } = this.place;
    const view = this.view;
    let shadow = this.deviceShadow as { reported: unknown; desired: unknown; version: number | undefined };
    if (cloud) {
      try {
        const doc = cloud.shadow(psn, dsn);
        shadow = { reported: doc.State.Reported, desired: doc.State.Desired, version: doc.Version };
      } catch {
        // the device is not known yet
      }
    }
    const lines = renderScreen(
      {
        device: `${psn}.${dsn}`,
        brokerUrl,
        engine: this.engine,
        brokerRunning: cloud ? cloud.running : undefined,
        linkUp: this.host.link.isUp,
        connection: view.state,
        connects: view.connects,
        drops: view.drops,
        failedDials: view.failedDials,
        problem: view.problem,
        outbox: view.outbox,
        thermostat: view.thermostat,
        shadow,
        lastIn: this.lastIn,
        lastOut: this.lastOut,
        logs: this.logs,
        typing: this.typing,
        firmware: this.host.firmware ? { version: this.host.firmware.version, update: this.firmwareUpdate } : undefined,
      },
      { columns: this.io.columns?.() ?? 100, rows: this.io.rows?.() ?? 24 },
    );
    this.out.write(screenFrame(lines));
  }

  /** On a terminal: the cursor hidden, a redraw every second and at every resize. */
  showScreen(): void {
    if (!this.tty) return;
    this.out.write(`${ESC}?25l`);
    this.refresh = setInterval(this.schedule, 1000);
    this.out.on("resize", this.schedule); // a terminal's stdout says when its size changed
  }

  private hideScreen(): void {
    if (this.drawTimer) clearTimeout(this.drawTimer);
    if (this.refresh) clearInterval(this.refresh);
  }

  // ---- stopping ----

  /** Stops the input, the screen, the device and the cloud, then says why it stopped. Idempotent. */
  stop(): Promise<void> {
    if (this.stopPromise) return this.stopPromise;
    this.stopping = true;
    this.stopPromise = (async () => {
      this.hideScreen();
      for (const release of this.releases) release();
      if (this.tty) {
        this.out.off("resize", this.schedule);
        this.out.write(`${ESC}?25h\n`);
      }
      await this.restarting; // a restart into a new firmware: its device is the one to stop
      await this.view.stop();
      const cloud = this.cloud;
      if (cloud) {
        await new Promise((r) => setTimeout(r, 100)); // the DISCONNECT reaches the broker first
        await cloud.close();
      }
      this.closed = true;
      // On a terminal the screen held the engine's error, and it is gone now: say it again.
      const how =
        this.engineFailure !== undefined
          ? `the XS engine failed${this.tty ? ` (${this.engineFailure})` : ""}`
          : this.failed
            ? "the firmware did not start"
            : "the device disconnected";
      this.out.write(`${clock(Date.now())} stopped: ${how}${cloud ? " and the emulated cloud closed" : ""}\n`);
      this.resolveStopped();
    })();
    return this.stopPromise;
  }
}
