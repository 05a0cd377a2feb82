// The publish rate limit unit (src/mqtt/rate-limit.ts): its ring of send times, and the base it keeps them after
// across long idle spells and a clock set back. Session-level behaviour is in session.test.ts and outbox.test.ts.
import { describe, expect, it } from "vitest";
import { RateLimit } from "../../src/mqtt/rate-limit";

/** Sends at `now` as many messages as the limit lets through; answers when the next one may go. */
function burst(l: RateLimit, now: number, n: number): { sent: number; next: number } {
  let sent = 0;
  while (sent < n && l.next(now) === now) {
    l.sent(now);
    sent++;
  }
  return { sent, next: l.next(now) };
}

describe("the rate limit", () => {
  it("lets `rate` sends through in a window, then the next when the oldest is a window old", () => {
    const l = new RateLimit(3, 1000);
    expect(l.ring).toHaveLength(0); // made on first use
    expect(burst(l, 5000, 5)).toEqual({ sent: 3, next: 6000 });
    expect(l.ring).toHaveLength(3);
    expect(burst(l, 5999, 5)).toEqual({ sent: 0, next: 6000 });
    expect(burst(l, 6000, 5)).toEqual({ sent: 3, next: 7000 });
  });

  it("holds the window across 50 days without a send (the 32-bit times move their base)", () => {
    const l = new RateLimit(2, 1000);
    burst(l, 1000, 2);
    const t = 1000 + 50 * 86400000;
    expect(burst(l, t, 5)).toEqual({ sent: 2, next: t + 1000 });
    expect(l.base).toBe(t - 1000);
  });

  it("holds sending back by one window at most when the clock is set back", () => {
    const l = new RateLimit(2, 1000);
    const t = 10_000_000;
    burst(l, t, 2);
    const back = t - 5_000_000;
    const { sent, next } = burst(l, back, 3);
    expect(sent).toBe(0);
    expect(next - back).toBeLessThanOrEqual(1000);
    expect(burst(l, next, 3).sent).toBe(2);
  });
});
