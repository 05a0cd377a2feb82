/**
 * Sets the real-time clock with SNTP before the first TLS connection that verifies certificates: the Moddable
 * TLS stack checks certificate dates against Date.now() (modules/crypt/ssl/ssl_cert.js), and a board boots in
 * 1970. Uses the SDK's `sntp` module (modules/network/sntp/sntp.js: `new SNTP({host}, callback)`; callback
 * messages 1 = time (value: Unix seconds), 2 = retry, -1 = error; returning a host name from an error callback
 * tries that host next) and `Time.set(seconds)`.
 */
import type { LogLevel } from "../../src/host";
import { type NetError, netError } from "../../src/net/errors";

/** What the SDK's SNTP class offers. */
export interface SntpLike {
  close(): void;
}
export type SntpConstructor = new (
  options: { host: string },
  callback: (message: number, value?: unknown) => unknown,
) => SntpLike;

/** The clock counts as set from this date on (2025-01-01T00:00:00Z): no certificate in use predates it. */
export const VALID_AFTER = 1735689600000;

const SNTP_TIME = 1;
const SNTP_ERROR = -1;

export interface TimeSyncOptions {
  SNTP: SntpConstructor;
  /** Time.set: sets the real-time clock, in Unix seconds. */
  setTime(seconds: number): void;
  /** Date.now. */
  now(): number;
  /** SNTP servers, tried in order. */
  hosts: readonly string[];
  log(level: LogLevel, message: string): void;
}

type Waiter = (error?: NetError) => void;

export class TimeSync {
  private readonly o: TimeSyncOptions;
  private waiters: Waiter[] = [];
  private sntp: SntpLike | undefined;

  constructor(options: TimeSyncOptions) {
    this.o = options;
  }

  /** Whether Date.now() can be trusted for certificate dates. */
  get valid(): boolean {
    return this.o.now() >= VALID_AFTER;
  }

  /**
   * Calls `done()` once the clock is set (at once when it is), or `done(error)` when every SNTP server failed.
   * Returns a function that cancels the wait.
   */
  whenValid(done: Waiter): () => void {
    if (this.valid) {
      done();
      return () => {};
    }
    this.waiters.push(done);
    if (!this.sntp) this.start(0);
    return () => {
      const i = this.waiters.indexOf(done);
      if (i >= 0) this.waiters.splice(i, 1);
    };
  }

  private start(index: number): void {
    const { hosts, log } = this.o;
    if (hosts.length === 0)
      return this.finish(
        netError(
          "TLS_EXPIRED",
          "the clock is not set and no SNTP server is configured, so certificate dates cannot be checked",
        ),
      );
    log("info", `setting the clock with SNTP from ${hosts[index]} (certificate dates need it)`);
    let at = index;
    try {
      this.sntp = new this.o.SNTP({ host: hosts[at] }, (message, value) => {
        try {
          if (message === SNTP_TIME && typeof value === "number") {
            this.o.setTime(value);
            log("info", `clock set by SNTP: ${new Date(value * 1000).toISOString()}`);
            this.sntp = undefined;
            this.finish();
          } else if (message === SNTP_ERROR) {
            log("warn", `SNTP from ${hosts[at]} failed: ${String(value)}`);
            if (++at < hosts.length) return hosts[at]; // the SNTP object tries this host next
            this.sntp = undefined;
            this.finish(
              netError(
                "TLS_EXPIRED",
                `the clock is not set: SNTP failed (${hosts.join(", ")}), so certificate dates cannot be checked`,
              ),
            );
          }
        } catch (e) {
          log("error", `SNTP callback failed: ${String(e)}`);
        }
        return undefined;
      });
    } catch (e) {
      this.sntp = undefined;
      this.finish(netError("TLS_EXPIRED", `the clock is not set: SNTP could not start (${String(e)})`, e));
    }
  }

  private finish(error?: NetError): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w(error);
  }

  /** Stops a running SNTP exchange (the waiters are dropped). */
  stop(): void {
    this.waiters = [];
    const s = this.sntp;
    this.sntp = undefined;
    try {
      s?.close();
    } catch {
      // already closed
    }
  }
}
