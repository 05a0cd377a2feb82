/**
 * The host Clock on Moddable's `timer` and `time` modules. `Time.ticks` is a 32-bit millisecond count on a
 * microcontroller (modules/base/time/esp/modTime.c: negative after 24.8 days, back to 0 after 49.7), so now()
 * extends it to a monotonic number; a slow repeating timer keeps the extension right even when nothing asks.
 * Timer delays are 32-bit signed milliseconds (modTimer.c), so longer ones are chained. A callback that throws is
 * reported instead of reaching the native timer, where an uncaught exception aborts the XS machine (a reboot).
 *
 * Re-arming allocates nothing. The client clears and sets its timer on every packet, so a closure per setTimer
 * (to catch what the callback throws) and a native timer per setTimer (Timer.set makes a host object and a native
 * record) would be garbage per packet. Instead the clock keeps a pool of entries, each with one native timer made
 * on its first use and from then on only rescheduled and unscheduled with Timer.schedule (which the SDK's
 * documentation recommends over clear and set). Every native timer calls the same function, made once per clock,
 * with itself as the argument (modTimer.c), and the entry is found by it. The pool grows to the most timers ever
 * pending at once (a handful: the client's, the thing layer's, a deferred write), so the search is short.
 *
 * How an entry's native timer is scheduled, and why (modules/base/timer: mc/timer.c on the boards, lin, mac, win):
 * always with a repeat interval equal to its first interval, at least 1 ms. A timer whose repeat interval is 0 when
 * its callback returns is freed by the SDK (then it cannot be rescheduled; on lin the record is freed under the
 * host object), and on lin a timer rescheduled from its own callback with a first interval other than its repeat
 * interval keeps a second glib source that fires again and again. `fire` unschedules the timer before it runs the
 * callback (which may schedule it again).
 *
 * A handle is a number, the entry's index and its use count, so a handle kept after its timer fired or was
 * cleared never clears the entry's next use.
 */
import type { Clock } from "../../src/host";

/** The parts of the SDK's Timer class used here (modules/base/timer/timer.js). */
export interface TimerApi {
  /** Calls `callback(timer)` after `delay` ms, then every `repeat` ms if that is not 0. */
  set(callback: (timer: unknown) => void, delay?: number, repeat?: number): unknown;
  /** With a delay: reschedules the timer; without: unschedules it (it stays allocated, for a later schedule). */
  schedule(timer: unknown, delay?: number, repeat?: number): void;
  clear(timer: unknown): void;
}

/** Longest delay one Timer.set takes. */
const MAX_DELAY = 0x7fffffff;
/** How often the tick extension is refreshed with nothing else running: well inside 2^31 ms. */
const REFRESH = 12 * 3600 * 1000;
/** A handle is use * SPAN + index. */
const SPAN = 65536;

/** One pooled timer. */
class Entry {
  /** The pending callback; undefined while the entry is free. */
  callback: (() => void) | undefined = undefined;
  /** The native timer, made on first use. */
  native: unknown = undefined;
  /** For a delay longer than one native timer takes: when the callback is due, on the clock's now(); else -1. */
  due = -1;
  /** Uses so far: the handle's upper part. */
  use = 0;
  /** The next free entry. */
  next: Entry | undefined = undefined;

  constructor(readonly index: number) {}
}

export class ModdableClock implements Clock {
  private readonly ticks: () => number;
  private readonly timers: TimerApi;
  private readonly report: (error: unknown) => void;
  private last: number;
  private base = 0;
  private readonly entries: Entry[] = [];
  private free: Entry | undefined = undefined;
  /** What every native timer of the pool calls, with itself. */
  private readonly fire: (timer: unknown) => void;

  /** `ticks`: Time.ticks (milliseconds, may wrap at 2^32); `report`: where a throwing callback's error goes. */
  constructor(ticks: () => number, timers: TimerApi, report: (error: unknown) => void) {
    this.ticks = ticks;
    this.timers = timers;
    this.report = report;
    this.last = ticks();
    this.fire = (timer) => this.expire(timer);
    timers.set(() => void this.now(), REFRESH, REFRESH);
  }

  now(): number {
    const raw = this.ticks();
    this.base += ((raw | 0) - (this.last | 0)) >>> 0; // modulo 2^32: right across the wrap
    this.last = raw;
    return this.base;
  }

  setTimer(callback: () => void, ms: number): unknown {
    let e = this.free;
    if (e) this.free = e.next;
    else {
      e = new Entry(this.entries.length);
      this.entries.push(e);
    }
    e.next = undefined;
    e.callback = callback;
    // 0 is a later turn: 1 ms, as a native timer must repeat (see above); whole milliseconds, rounded up
    let delay = ms > 1 ? (ms === (ms | 0) ? ms : Math.ceil(ms)) : 1;
    if (delay > MAX_DELAY) {
      e.due = this.now() + delay;
      delay = MAX_DELAY;
    } else e.due = -1;
    if (e.native === undefined) e.native = this.timers.set(this.fire, delay, delay);
    else this.timers.schedule(e.native, delay, delay);
    return ++e.use * SPAN + e.index;
  }

  clearTimer(timer: unknown): void {
    if (typeof timer !== "number") return;
    const e = this.entries[timer % SPAN];
    if (e === undefined || e.callback === undefined || e.use * SPAN + e.index !== timer) return; // fired, cleared or reused
    this.timers.schedule(e.native);
    e.callback = undefined;
    e.next = this.free;
    this.free = e;
  }

  /** A native timer of the pool fired: runs its entry's callback, or waits on for a long delay. */
  private expire(timer: unknown): void {
    const entries = this.entries;
    let e: Entry | undefined;
    for (let i = 0; i < entries.length; i++) {
      if (entries[i].native === timer) {
        e = entries[i];
        break;
      }
    }
    if (e === undefined) return; // not ours: never expected
    const callback = e.callback;
    if (callback === undefined) return void this.timers.schedule(e.native); // cleared: never expected, but harmless
    if (e.due >= 0) {
      const left = e.due - this.now();
      if (left > 0) {
        const step = left < MAX_DELAY ? left : MAX_DELAY;
        return void this.timers.schedule(e.native, step, step);
      }
    }
    this.timers.schedule(e.native);
    e.callback = undefined;
    e.next = this.free;
    this.free = e;
    try {
      callback();
    } catch (error) {
      this.report(error);
    }
  }
}
