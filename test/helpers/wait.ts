// Wait for a condition instead of sleeping a fixed time: tests stay fast on an idle machine and pass on a loaded one.

export interface WaitOptions {
  /** Give up after this long (default 10 s: CI has two busy cores). */
  timeoutMs?: number;
  /** Poll interval (default 20 ms). */
  intervalMs?: number;
  /** What was awaited, for the error message. */
  message?: string;
}

/**
 * Polls `condition` until it returns a truthy value (or a promise of one) and returns that value.
 * Throws `waitFor timed out after N ms: <message>` otherwise; the last error thrown by `condition`, if any, is the
 * cause.
 */
export async function waitFor<T>(condition: () => T | Promise<T>, options: WaitOptions = {}): Promise<NonNullable<T>> {
  const { timeoutMs = 10000, intervalMs = 20, message = condition.toString() } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      throw new Error(`waitFor timed out after ${timeoutMs} ms: ${message}`, { cause: lastError });
    }
    await sleep(intervalMs);
  }
}

/** Polls a synchronous `f` every 20 ms until it gives a truthy value (returned), or fails after `ms` naming `what`. */
export async function until<T>(f: () => T | undefined | false, what: string, ms = 8000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with `message` if `promise` has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${message}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
