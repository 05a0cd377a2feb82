/**
 * The host Clock on Moddable's `timer` and `time` modules. `Time.ticks` is a 32-bit millisecond count on a
 * microcontroller (modules/base/time/esp/modTime.c: negative after 24.8 days, back to 0 after 49.7), so now()
 * extends it to a monotonic number; a slow repeating timer keeps the extension right even when nothing asks.
 * Timer delays are 32-bit signed milliseconds (modTimer.c), so longer ones are chained. A callback that throws is
 * reported instead of reaching the native timer, where an uncaught exception aborts the XS machine (a reboot).
 */
import type { Clock } from "../../src/net/transport";

/** The parts of the SDK's Timer class used here (modules/base/timer/timer.js). */
export interface TimerApi {
  set(callback: () => void, delay?: number, repeat?: number): unknown;
  clear(timer: unknown): void;
}

/** Longest delay one Timer.set takes. */
const MAX_DELAY = 0x7fffffff;
/** How often the tick extension is refreshed with nothing else running: well inside 2^31 ms. */
const REFRESH = 12 * 3600 * 1000;

/** A chain of Timer.set calls for delays over 24.8 days. */
interface Long {
  timer: unknown;
}

export class ModdableClock implements Clock {
  private readonly ticks: () => number;
  private readonly timers: TimerApi;
  private readonly report: (error: unknown) => void;
  private last: number;
  private base = 0;

  /** `ticks`: Time.ticks (milliseconds, may wrap at 2^32); `report`: where a throwing callback's error goes. */
  constructor(ticks: () => number, timers: TimerApi, report: (error: unknown) => void) {
    this.ticks = ticks;
    this.timers = timers;
    this.report = report;
    this.last = ticks();
    timers.set(() => void this.now(), REFRESH, REFRESH);
  }

  now(): number {
    const raw = this.ticks();
    this.base += ((raw | 0) - (this.last | 0)) >>> 0; // modulo 2^32: right across the wrap
    this.last = raw;
    return this.base;
  }

  setTimer(callback: () => void, ms: number): unknown {
    const delay = ms > 0 ? Math.ceil(ms) : 0;
    if (delay <= MAX_DELAY) return this.timers.set(() => this.run(callback), delay);
    const long: Long = { timer: undefined };
    const due = this.now() + delay;
    const step = (): void => {
      const left = due - this.now();
      long.timer = left > 0 ? this.timers.set(step, Math.min(left, MAX_DELAY)) : undefined;
      if (left <= 0) this.run(callback);
    };
    long.timer = this.timers.set(step, MAX_DELAY);
    return long;
  }

  clearTimer(timer: unknown): void {
    if (timer !== null && typeof timer === "object" && "timer" in (timer as Long)) this.timers.clear((timer as Long).timer);
    else if (timer !== undefined) this.timers.clear(timer);
  }

  private run(callback: () => void): void {
    try {
      callback();
    } catch (e) {
      this.report(e);
    }
  }
}
