// The part of vitest's API our portable test files use, for running them inside XS (the bundle aliases "vitest" to
// this file). Tests register with describe/it; run() runs them in order, awaiting async ones, and reports each one.
// Matchers follow vitest's semantics for what the tests rely on: toEqual ignores undefined-valued keys, toMatchObject
// is a recursive subset, toThrow takes a class, a RegExp, a string, an Error (same message) or an asymmetric matcher.

type Fn = () => unknown;
interface Test {
  name: string;
  fn: Fn;
}
interface Hooks {
  before: Fn[];
  after: Fn[];
}

const tests: Test[] = [];
const path: string[] = [];
const hookStack: Hooks[] = [{ before: [], after: [] }];
const testHooks = new Map<Test, Hooks[]>();
const afterAlls: Fn[] = [];

export function describe(name: string, body: () => void): void {
  path.push(name);
  hookStack.push({ before: [], after: [] });
  try {
    body();
  } finally {
    hookStack.pop();
    path.pop();
  }
}
describe.skip = (_name: string, _body: () => void): void => {};

export function it(name: string, fn: Fn): void {
  const t = { name: [...path, name].join(" > "), fn };
  tests.push(t);
  testHooks.set(t, hookStack.slice());
}
it.skip = (_name: string, _fn?: Fn): void => {};
it.each =
  <T>(rows: readonly T[]) =>
  // biome-ignore lint/suspicious/noExplicitAny: each row spreads into the test's own parameters, as in vitest
  (name: string, fn: (...args: any[]) => unknown): void => {
    rows.forEach((row, i) => {
      const args = Array.isArray(row) ? row : [row];
      let k = 0;
      const title = name.replace(/%[sdijo#%]/g, (m) => {
        if (m === "%%") return "%";
        if (m === "%#") return String(i);
        const v = args[k++];
        return m === "%j" || m === "%o" ? JSON.stringify(v) : String(v);
      });
      it(title, () => fn(...args));
    });
  };
export const test = it;
export const beforeEach = (fn: Fn): void => void hookStack[hookStack.length - 1].before.push(fn);
export const afterEach = (fn: Fn): void => void hookStack[hookStack.length - 1].after.push(fn);
export const afterAll = (fn: Fn): void => void afterAlls.push(fn);

export interface Outcome {
  name: string;
  ok: boolean;
  error?: string;
  ms?: number;
}

const now = (): number => Date.now();

function describeError(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}${e.stack ? `\n${e.stack}` : ""}`;
  return String(e);
}

/** Runs every registered test whose name contains `filter` (all when empty). */
export async function run(filter = "", trace?: (name: string) => void, skip: string[] = []): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (const t of tests) {
    if (filter && !t.name.includes(filter)) continue;
    if (skip.includes(t.name)) continue;
    trace?.(t.name);
    const started = now();
    const hooks = testHooks.get(t) ?? [];
    try {
      for (const h of hooks) for (const f of h.before) await f();
      try {
        await t.fn();
      } finally {
        for (let i = hooks.length - 1; i >= 0; i--) for (const f of hooks[i].after) await f();
      }
      out.push({ name: t.name, ok: true, ms: now() - started });
    } catch (e) {
      out.push({ name: t.name, ok: false, error: describeError(e), ms: now() - started });
    }
  }
  for (const f of afterAlls) await f();
  return out;
}

// ---- equality ----

abstract class Asymmetric {
  abstract matches(v: unknown): boolean;
  abstract toString(): string;
}
class ObjectContaining extends Asymmetric {
  constructor(readonly sample: Record<string, unknown>) {
    super();
  }
  matches(v: unknown): boolean {
    return v !== null && typeof v === "object" && subset(v, this.sample);
  }
  toString(): string {
    return `ObjectContaining ${show(this.sample)}`;
  }
}
class StringMatching extends Asymmetric {
  constructor(readonly re: RegExp | string) {
    super();
  }
  matches(v: unknown): boolean {
    return typeof v === "string" && (typeof this.re === "string" ? v.includes(this.re) : this.re.test(v));
  }
  toString(): string {
    return `StringMatching ${String(this.re)}`;
  }
}
/** A class, as `instanceof` and expect.any take it. */
type Ctor = abstract new (...args: never[]) => unknown;

class Anything extends Asymmetric {
  constructor(readonly ctor?: Ctor) {
    super();
  }
  matches(v: unknown): boolean {
    if (!this.ctor) return v !== null && v !== undefined;
    if (this.ctor === Number) return typeof v === "number" || v instanceof Number;
    if (this.ctor === String) return typeof v === "string" || v instanceof String;
    if (this.ctor === Boolean) return typeof v === "boolean" || v instanceof Boolean;
    return v instanceof (this.ctor as new () => unknown);
  }
  toString(): string {
    return this.ctor ? `Any<${this.ctor.name}>` : "Anything";
  }
}

function isBytes(v: unknown): v is ArrayBufferView & ArrayLike<number> {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

function equals(a: unknown, b: unknown, strict: boolean): boolean {
  if (b instanceof Asymmetric) return b.matches(a);
  if (a instanceof Asymmetric) return a.matches(b);
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (isBytes(a) || isBytes(b)) {
    if (!isBytes(a) || !isBytes(b) || a.constructor !== b.constructor || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (a instanceof Date || b instanceof Date)
    return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  if (a instanceof RegExp || b instanceof RegExp) return String(a) === String(b);
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map && b instanceof Map) || a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !equals(v, b.get(k), strict)) return false;
    return true;
  }
  if (a instanceof Set || b instanceof Set) {
    if (!(a instanceof Set && b instanceof Set) || a.size !== b.size) return false;
    for (const v of a) if (!b.has(v)) return false;
    return true;
  }
  if (strict && Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Error && b instanceof Error && a.message !== b.message) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!equals(a[i], b[i], strict)) return false;
    return true;
  }
  const ka = Object.keys(a).filter((k) => strict || (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => strict || (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.hasOwn(b, k)) return false;
    if (!equals((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], strict)) return false;
  }
  return true;
}

function subset(actual: unknown, sample: unknown): boolean {
  if (sample instanceof Asymmetric) return sample.matches(actual);
  if (Array.isArray(sample)) {
    return Array.isArray(actual) && actual.length === sample.length && sample.every((s, i) => subset(actual[i], s));
  }
  if (sample !== null && typeof sample === "object" && !isBytes(sample) && !(sample instanceof Date)) {
    if (actual === null || typeof actual !== "object") return false;
    for (const k of Object.keys(sample)) {
      if (!(k in (actual as object))) return false;
      if (!subset((actual as Record<string, unknown>)[k], (sample as Record<string, unknown>)[k])) return false;
    }
    return true;
  }
  return equals(actual, sample, false);
}

function show(v: unknown): string {
  if (v instanceof Asymmetric) return v.toString();
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "function") return `[Function ${v.name}]`;
  if (v instanceof Error) return `${v.name}(${JSON.stringify(v.message)})`;
  if (isBytes(v)) return `${v.constructor.name}[${Array.prototype.join.call(v, ",")}]`;
  if (v instanceof RegExp) return String(v);
  try {
    const s = JSON.stringify(v, (_k, x) =>
      typeof x === "bigint"
        ? `${x}n`
        : x instanceof Asymmetric
          ? x.toString()
          : isBytes(x)
            ? `bytes[${Array.prototype.join.call(x, ",")}]`
            : x === undefined
              ? "<undefined>"
              : x,
    );
    return s === undefined ? String(v) : s.length > 600 ? `${s.slice(0, 600)}...` : s;
  } catch {
    return String(v);
  }
}

// ---- expect ----

class AssertionError extends Error {
  override name = "AssertionError";
}

function thrownMatches(e: unknown, expected: unknown): boolean {
  if (expected === undefined) return true;
  if (typeof expected === "function") return e instanceof (expected as new () => unknown);
  const message = e instanceof Error ? e.message : String(e);
  if (expected instanceof RegExp) return expected.test(message);
  if (typeof expected === "string") return message.includes(expected);
  if (expected instanceof Asymmetric) return expected.matches(e);
  if (expected instanceof Error) return message === expected.message;
  return subset(e, expected);
}

function matchers(actual: unknown, negate: boolean, label: string | undefined) {
  const check = (pass: boolean, what: string, expected?: unknown): void => {
    if (pass === negate) {
      const msg = `expected ${show(actual)} ${negate ? "not " : ""}${what}${expected !== undefined ? ` ${show(expected)}` : ""}`;
      throw new AssertionError(label ? `${label}: ${msg}` : msg);
    }
  };
  const m = {
    toBe: (e: unknown) => check(Object.is(actual, e), "to be", e),
    toEqual: (e: unknown) => check(equals(actual, e, false), "to equal", e),
    toStrictEqual: (e: unknown) => check(equals(actual, e, true), "to strictly equal", e),
    toMatchObject: (e: unknown) => check(subset(actual, e), "to match object", e),
    toBeNull: () => check(actual === null, "to be null"),
    toBeUndefined: () => check(actual === undefined, "to be undefined"),
    toBeDefined: () => check(actual !== undefined, "to be defined"),
    toBeTruthy: () => check(!!actual, "to be truthy"),
    toBeFalsy: () => check(!actual, "to be falsy"),
    toBeInstanceOf: (c: Ctor) => check(actual instanceof c, `to be an instance of ${c.name}`),
    toBeGreaterThan: (n: number) => check((actual as number) > n, "to be greater than", n),
    toBeGreaterThanOrEqual: (n: number) => check((actual as number) >= n, "to be >=", n),
    toBeLessThan: (n: number) => check((actual as number) < n, "to be less than", n),
    toBeLessThanOrEqual: (n: number) => check((actual as number) <= n, "to be <=", n),
    toHaveLength: (n: number) => check((actual as { length: number }).length === n, "to have length", n),
    toContain: (e: unknown) =>
      check(
        typeof actual === "string"
          ? actual.includes(e as string)
          : Array.from(actual as Iterable<unknown>).some((x) => Object.is(x, e)),
        "to contain",
        e,
      ),
    toContainEqual: (e: unknown) =>
      check(
        Array.from(actual as Iterable<unknown>).some((x) => equals(x, e, false)),
        "to contain equal",
        e,
      ),
    toMatch: (re: RegExp | string) =>
      check(
        typeof actual === "string" && (typeof re === "string" ? actual.includes(re) : re.test(actual)),
        "to match",
        re,
      ),
    toThrow: (expected?: unknown) => {
      let threw = false,
        error: unknown;
      try {
        (actual as () => unknown)();
      } catch (e) {
        threw = true;
        error = e;
      }
      const pass = threw && thrownMatches(error, expected);
      if (pass === negate) {
        const got = threw ? `threw ${show(error)}` : "did not throw";
        throw new AssertionError(
          `${label ? `${label}: ` : ""}expected function ${negate ? "not " : ""}to throw${expected === undefined ? "" : ` ${show(expected)}`}, but it ${got}`,
        );
      }
    },
  };
  return m;
}

type Matchers = ReturnType<typeof matchers>;
type Async<T> = { [K in keyof T]: T[K] extends (...a: infer A) => unknown ? (...a: A) => Promise<void> : never };

function expectImpl(actual: unknown, label?: string) {
  const promised = (negate: boolean, mode: "resolves" | "rejects"): Async<Matchers> =>
    new Proxy({} as Async<Matchers>, {
      get:
        (_t, key: string) =>
        async (...args: unknown[]) => {
          let v: unknown;
          try {
            v = await actual;
            if (mode === "rejects") throw new AssertionError(`expected promise to reject, it resolved with ${show(v)}`);
          } catch (e) {
            if (mode === "resolves" || e instanceof AssertionError) throw e;
            v = e;
          }
          (matchers(v, negate, label) as Record<string, (...a: unknown[]) => void>)[key](...args);
        },
    });
  return Object.assign(matchers(actual, false, label), {
    not: Object.assign(matchers(actual, true, label), {
      resolves: promised(true, "resolves"),
      rejects: promised(true, "rejects"),
    }),
    resolves: Object.assign(promised(false, "resolves"), { not: promised(true, "resolves") }),
    rejects: Object.assign(promised(false, "rejects"), { not: promised(true, "rejects") }),
  });
}

export const expect = Object.assign(expectImpl, {
  objectContaining: (sample: Record<string, unknown>) => new ObjectContaining(sample),
  stringMatching: (re: RegExp | string) => new StringMatching(re),
  any: (ctor: Ctor) => new Anything(ctor),
  anything: () => new Anything(),
});

export const vi = {};
