// The Node host's clock: monotonic milliseconds and one-shot timers.
import type { Clock } from "../../src/host";

export const nodeClock: Clock = {
  // Whole milliseconds: small integers stay unboxed in V8 (about 12 days of uptime), fractions do not.
  now: () => Math.floor(performance.now()),
  setTimer: (callback, ms) => setTimeout(callback, ms),
  clearTimer: (timer) => clearTimeout(timer as NodeJS.Timeout),
};
