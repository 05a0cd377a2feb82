/**
 * Wi-Fi with this firmware's own reconnect policy, as the NetworkLink. The ECMA-419 Wi-Fi of the SDK
 * (embedded:network/interface/wifi; modules/io/wifi/esp32/wifi-esp32.c, modules/io/wifi/esp/wifi-esp.c) connects
 * once per connect() call and never again by itself. Its `connection` property reads 200 (disconnected),
 * 300 (connecting), 400 (associated, no IP address yet) or 500 (has an address); `onChanged("connection" |
 * "address")` says when to look again; connect() throws "already connecting" while an attempt runs.
 *
 * Policy: the link is up at 500. An attempt that ends below 400, or is not up within `attemptTimeout`, is retried
 * after a full-jitter exponential backoff (`min` doubling to `max`), which starts over only once the link stayed
 * up `resetAfter`, so an access point that drops the device right after association is backed off from too.
 */
import type { Clock, LogLevel, NetworkLink } from "../../src/host";
import { redact } from "../../src/uiot/identity";

/** The parts of the SDK's ECMA-419 WiFi class used here. */
export interface WiFiLike {
  readonly connection: number;
  readonly address?: string;
  connect(options: { SSID: string; password?: string }): void;
  disconnect(): void;
  close(): void;
}
export type WiFiConstructor = new (options: { onChanged: (property: string) => void }) => WiFiLike;

export interface WiFiLinkOptions {
  WiFi: WiFiConstructor;
  ssid: string | undefined;
  password?: string;
  clock: Clock;
  random(): number;
  log(level: LogLevel, message: string): void;
  /** Backoff between attempts, ms: `min` (default 1000) doubling to `max` (default 60000). */
  min?: number;
  max?: number;
  /** Up this long (ms, default 60000) before the backoff starts over. */
  resetAfter?: number;
  /** An attempt not up after this long (ms, default 30000) is abandoned and retried. */
  attemptTimeout?: number;
}

const CONNECTED = 500;
const ASSOCIATED = 400;

export class WiFiLink implements NetworkLink {
  onChange: ((up: boolean) => void) | undefined = undefined;
  private state = false;
  private readonly o: WiFiLinkOptions;
  private wifi: WiFiLike | undefined;
  private attempting = false;
  private attempts = 0;
  private upSince = -1;
  private retryTimer: unknown = undefined;
  private attemptTimer: unknown = undefined;

  constructor(options: WiFiLinkOptions) {
    this.o = options;
  }

  get up(): boolean {
    return this.state;
  }

  /** Printed (String, util.inspect, JSON.stringify): the network and the state, never the password. */
  toString(): string {
    return `Wi-Fi link "${this.o.ssid ?? ""}" (${this.state ? "up" : "down"}; password ${this.o.password ? redact(this.o.password) : "none"})`;
  }

  toJSON(): { ssid: string | undefined; up: boolean; password: string } {
    return { ssid: this.o.ssid, up: this.state, password: this.o.password ? redact(this.o.password) : "" };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }

  /** Starts Wi-Fi (and keeps it up until stop()). */
  start(): void {
    if (this.wifi) return;
    const { log, ssid } = this.o;
    if (!ssid) {
      log(
        "error",
        'no Wi-Fi network configured: store its name under config key "wifi.ssid" (and "wifi.password"), or build with mcconfig ... ssid="name" password="secret"',
      );
      return;
    }
    const self = this;
    this.wifi = new this.o.WiFi({
      onChanged() {
        try {
          self.changed();
        } catch (e) {
          self.o.log("error", `Wi-Fi event handling failed: ${String(e)}`);
        }
      },
    });
    if (this.wifi.connection >= CONNECTED)
      this.changed(); // already connected before this code ran
    else this.attempt();
  }

  stop(): void {
    const w = this.wifi;
    this.wifi = undefined;
    this.clear();
    try {
      w?.close();
    } catch {
      // closed
    }
    this.set(false);
  }

  private changed(): void {
    const w = this.wifi;
    if (!w) return;
    const c = w.connection;
    if (c >= CONNECTED) {
      this.attempting = false;
      this.o.clock.clearTimer(this.attemptTimer);
      this.attemptTimer = undefined;
      if (!this.state) {
        this.upSince = this.o.clock.now();
        this.o.log("info", `Wi-Fi up: "${this.o.ssid}", address ${w.address ?? "?"}`);
      }
      this.set(true);
    } else if (this.state) {
      const lasted = this.o.clock.now() - this.upSince;
      if (lasted >= (this.o.resetAfter ?? 60000)) this.attempts = 0;
      this.o.log("warn", `Wi-Fi lost ("${this.o.ssid}") after ${Math.round(lasted / 1000)} s`);
      this.set(false);
      this.retry();
    } else if (this.attempting && c < ASSOCIATED && c !== 300) {
      this.attempting = false;
      this.o.clock.clearTimer(this.attemptTimer);
      this.attemptTimer = undefined;
      this.o.log("warn", `Wi-Fi: could not join "${this.o.ssid}" (not found, wrong password, or refused)`);
      this.retry();
    }
  }

  private attempt(): void {
    const w = this.wifi;
    if (!w || this.state) return;
    this.attempting = true;
    try {
      w.connect(
        this.o.password ? { SSID: this.o.ssid as string, password: this.o.password } : { SSID: this.o.ssid as string },
      );
    } catch (e) {
      if (String(e).indexOf("already connecting") < 0) {
        this.attempting = false;
        this.o.log("warn", `Wi-Fi: connect failed (${String(e)})`);
        return this.retry();
      }
    }
    this.o.clock.clearTimer(this.attemptTimer);
    this.attemptTimer = this.o.clock.setTimer(() => {
      this.attemptTimer = undefined;
      if (!this.attempting || this.state) return;
      this.attempting = false;
      this.o.log(
        "warn",
        `Wi-Fi: no connection to "${this.o.ssid}" after ${Math.round((this.o.attemptTimeout ?? 30000) / 1000)} s`,
      );
      try {
        w.disconnect(); // ends the driver's attempt; its "disconnected" event is ignored (not attempting)
      } catch {
        // not connecting
      }
      this.retry();
    }, this.o.attemptTimeout ?? 30000);
  }

  private retry(): void {
    if (this.retryTimer !== undefined || !this.wifi) return;
    const min = this.o.min ?? 1000,
      max = this.o.max ?? 60000;
    const ceiling = Math.min(max, min * 2 ** Math.min(this.attempts, 30));
    this.attempts++;
    const delay = Math.floor(this.o.random() * ceiling);
    this.o.log("info", `Wi-Fi: next attempt in ${(delay / 1000).toFixed(1)} s`);
    this.retryTimer = this.o.clock.setTimer(() => {
      this.retryTimer = undefined;
      this.attempt();
    }, delay);
  }

  private set(up: boolean): void {
    if (this.state === up) return;
    this.state = up;
    const f = this.onChange;
    if (f) {
      try {
        f(up);
      } catch (e) {
        this.o.log("error", `the network link's onChange threw: ${String(e)}`);
      }
    }
  }

  private clear(): void {
    this.o.clock.clearTimer(this.retryTimer);
    this.o.clock.clearTimer(this.attemptTimer);
    this.retryTimer = this.attemptTimer = undefined;
    this.attempting = false;
  }
}

/** The desktop simulator's link: the computer's network, always up. */
export function alwaysUp(): NetworkLink {
  return { up: true, onChange: undefined };
}
