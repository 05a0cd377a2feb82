// The Node host's clock: monotonic milliseconds and one-shot timers.
import type { Clock } from "../../src/net/transport";

export const nodeClock: Clock = {
  now: () => performance.now(),
  setTimer: (callback, ms) => setTimeout(callback, ms),
  clearTimer: (timer) => clearTimeout(timer as NodeJS.Timeout),
};
