/**
 * The publish rate limit of a profile (`publishRate` PUBLISH packets in any `publishWindow` ms): a ring of the last
 * `rate` send times, 4 bytes a send. A send may go when the oldest of them is a whole window old.
 *
 * Its fields are public because Session.flush, which runs once per message written, checks and records a send on
 * them directly (next() and sent() written out: a call is dear on XS); times() makes the ring and keeps its base in
 * range.
 */

/** The ring before the first send: empty, never written (the base of Infinity makes times() replace it). */
const NO_TIMES = new Uint32Array(0);

export class RateLimit {
  /** The last `rate` send times, in ms after `base`, oldest at `at`; made by times() at the first send. */
  ring = NO_TIMES;
  base = Infinity;
  /** The oldest send time in the ring: the one the next send replaces. */
  at = 0;

  constructor(
    readonly rate: number,
    readonly span: number,
  ) {}

  /**
   * The ring for a send at `now`. Made with every time at now - span, long enough ago to hold nothing back. When now
   * gets too far from the base for 32 bits (after 49 days), or before it (a clock set back), the base moves to
   * now - span: older times become it, and times after now (the clock went back) become now, so a clock set back
   * holds sending back by one window at most.
   */
  times(now: number): Uint32Array {
    if (now < this.base || now - this.base > 0xffffffff) {
      const rate = this.rate,
        span = this.span,
        base = now - span,
        old = this.ring,
        made = old.length > 0;
      const times = made ? old : (this.ring = new Uint32Array(rate));
      for (let i = 0; i < rate; i++) times[i] = made ? Math.min(span, Math.max(0, this.base + old[i] - base)) : 0;
      this.base = base;
    }
    return this.ring;
  }

  /** When a send may go: `now` if at once. */
  next(now: number): number {
    const times = this.times(now); // (first: it may move the base)
    const oldest = this.base + times[this.at];
    return now - oldest < this.span ? oldest + this.span : now;
  }

  /** A send went at `now` (after next() allowed it). */
  sent(now: number): void {
    const times = this.times(now);
    times[this.at] = now - this.base;
    this.at = this.at + 1 === this.rate ? 0 : this.at + 1;
  }
}
