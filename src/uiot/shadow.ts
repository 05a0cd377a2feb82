/**
 * The device shadow. The platform's shadow messages carry no request id, so at most one request is in flight;
 * the others wait, in order, in a bounded queue. Versions: every update/delete carries the version the device
 * last saw; the platform answers a mismatch with `control` RetCode 100026, the full state and its version: the
 * shadow re-aligns to that version and retries once, then reports VERSION_CONFLICT. Versions are int32 and are
 * never computed here, only taken from the platform; "newer" is judged with int32 wrap-around.
 */
import type { LogLevel } from "../host";
import type { MqttError } from "../mqtt/errors";
import { UiotError, refused } from "./errors";
import { isObject, objectJson, retCodeOf, type Params } from "./json";

/** What the shadow needs from the thing that owns it. */
export interface ShadowHost {
  /** `/$system/${PSN}/${DSN}/shadow/upstream` and `.../shadow/get`. */
  readonly shadowUpstream: string;
  readonly shadowGet: string;
  now(): number;
  /** Default reply timeout, ms. */
  readonly timeout: number;
  /** Publishes with QoS 1; `fail` is called (now or later) if the message cannot be delivered. */
  publish(topic: string, payload: string, fail: (error: UiotError) => void): void;
  /** Deadlines changed: re-arm the timer. */
  changed(): void;
  report(error: UiotError | MqttError): void;
  log(level: LogLevel, message: string): void;
}

export interface ShadowDocument {
  reported: { [key: string]: unknown };
  desired: { [key: string]: unknown };
  metadata: { reported: { [key: string]: unknown }; desired: { [key: string]: unknown } };
  /** Unix seconds. */
  timestamp: number;
  version: number;
}

/** What the application answers to desired values: true = applied as asked (desired is cleared and copied to
 * reported by the platform); an object = applied these values instead (reported, and desired cleared); false or
 * nothing = not now (call shadow.accept() or shadow.report(values, { clearDesired: true }) later). */
export type DesiredAnswer = boolean | Params | void | undefined;
export type DesiredHandler = (
  desired: { [key: string]: unknown },
  info: { version: number; timestamp?: number },
) => DesiredAnswer | PromiseLike<DesiredAnswer>;

export interface ShadowRequestOptions {
  /** Reply timeout for this request, ms (default: the thing's timeout). */
  timeout?: number;
}

const GET = 0,
  UPDATE = 1,
  DELETE = 2;
const METHOD: readonly string[] = Object.freeze([
  '{"Method":"get"}',
  '{"Method":"update","State":',
  '{"Method":"delete","State":',
]);
const CONFLICT = 100026;

interface Op {
  method: number;
  /** The State object's JSON (update, delete). */
  state: string;
  /** Version -1: reset the shadow version to 0. */
  reset: boolean;
  what: string;
  retried: boolean;
  /** The update clears Desired (accepts it). */
  clears: boolean;
  /** The desired state it accepts and the version it had when the application was shown it (undefined: not known). */
  accepts: Seen | undefined;
  /** The Version it was last sent with. */
  sentAt: number;
  timeout: number;
  deadline: number;
  resolve(value: unknown): void;
  reject(error: UiotError): void;
}

/** A desired state as the application was shown it, and the shadow version it had then. */
interface Seen {
  desired: { [key: string]: unknown };
  version: number;
}

/** True when int32 version `a` comes after `b` (serial-number arithmetic, so 2147483647 -> -2147483648 is forward). */
export function newerVersion(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

function int32Of(v: unknown): number | undefined {
  return typeof v === "number" && (v | 0) === v ? v : undefined;
}

export class Shadow {
  private host: ShadowHost;
  private max: number;
  private known: number | undefined = undefined;
  private inflight: Op | undefined = undefined;
  private queue: Op[] = [];
  /** Inside finish()'s loop of sends. */
  private sending = false;
  private handler: DesiredHandler | undefined = undefined;
  private closed: UiotError | undefined = undefined;
  /** Version of the last desired values handed to the application (so a conflict answer does not repeat them). */
  private desiredSeen: number | undefined = undefined;
  /** The last desired state the application was shown (onDesired, or a get's document): what accept() accepts. */
  private shown: Seen | undefined = undefined;

  constructor(host: ShadowHost, maxQueued: number) {
    this.host = host;
    this.max = maxQueued;
  }

  /** The shadow version last seen from the platform; undefined before the first answer (requests then carry 0). */
  get version(): number | undefined {
    return this.known;
  }

  /** Requests waiting behind the one in flight. */
  get queued(): number {
    return this.queue.length;
  }

  /** Gets the whole shadow document (and aligns the version with it). */
  get(options?: ShadowRequestOptions): Promise<ShadowDocument> {
    return this.enqueue(GET, "", false, "shadow get", options) as Promise<ShadowDocument>;
  }

  /**
   * Reports values (State.Reported); with `clearDesired`, also clears the desired state (the device applied
   * other values than desired). Resolves with the new shadow version.
   */
  report(reported: Params, options?: ShadowRequestOptions & { clearDesired?: boolean }): Promise<number> {
    const clears = options?.clearDesired === true;
    return this.reportAccepting(reported, options, clears, clears ? this.shown : undefined);
  }

  /**
   * Accepts the desired state as it is: clears Desired, which the platform copies into Reported. What is accepted is
   * the desired state the application was last shown: should the platform's desired state have changed meanwhile
   * (a version conflict whose state differs), the request fails with VERSION_CONFLICT rather than clear values the
   * application has not seen, and the new desired state goes to onDesired.
   */
  accept(options?: ShadowRequestOptions): Promise<number> {
    return this.enqueue(
      UPDATE,
      '{"Desired":null}',
      false,
      "shadow update (accept desired)",
      options,
      true,
      this.shown,
    ) as Promise<number>;
  }

  /** Deletes reported keys, or (no keys) the whole reported state. Resolves with the new version. */
  delete(keys?: string | readonly string[], options?: ShadowRequestOptions): Promise<number> {
    let state = '{"Reported":null}';
    if (keys !== undefined) {
      const list = typeof keys === "string" ? [keys] : keys;
      if (!Array.isArray(list) || list.length === 0)
        return Promise.reject(
          new UiotError(
            "INVALID_VALUE",
            "shadow delete: give the keys to delete, or no argument to delete the whole reported state",
          ),
        );
      state = '{"Reported":{';
      for (let i = 0; i < list.length; i++) {
        if (typeof list[i] !== "string" || list[i] === "")
          return Promise.reject(
            new UiotError("INVALID_VALUE", `shadow delete: key ${JSON.stringify(list[i])} is not a non-empty string`),
          );
        state += (i ? "," : "") + JSON.stringify(list[i]) + ":null";
      }
      state += "}}";
    }
    return this.enqueue(DELETE, state, false, "shadow delete", options) as Promise<number>;
  }

  /** An update with Version -1: the platform resets the shadow version to 0. Resolves with the new version. */
  resetVersion(reported: Params = {}, options?: ShadowRequestOptions): Promise<number> {
    let state: string;
    try {
      state = '{"Reported":' + objectJson(reported as { [key: string]: unknown }, false, "shadow reset", 1, 0) + "}";
    } catch (e) {
      return Promise.reject(e);
    }
    return this.enqueue(UPDATE, state, true, "shadow version reset", options) as Promise<number>;
  }

  /** Desired values pushed by the platform (`control`) go to `handler`; see DesiredAnswer. */
  onDesired(handler: DesiredHandler | undefined): void {
    this.handler = handler;
  }

  // ---- called by the thing ----

  /** The in-flight request's deadline, or -1. */
  deadline(): number {
    return this.inflight ? this.inflight.deadline : -1;
  }

  tick(now: number): void {
    const op = this.inflight;
    if (op && now >= op.deadline) {
      this.finish(
        op,
        new UiotError(
          "TIMEOUT",
          `no answer to the ${op.what} within ${op.timeout} ms: is the shadow enabled, and the device connected? (a late answer cannot be told apart from the next request's: the platform's shadow has no request id)`,
        ),
      );
    }
  }

  /** A message on shadow/downstream: a reply, a desired push (`control`), or a version conflict. */
  downstream(msg: { [key: string]: unknown }): void {
    const payload = isObject(msg.Payload) ? msg.Payload : undefined;
    const code = retCodeOf(payload?.RetCode);
    const version = int32Of(msg.Version);
    if (msg.Method === "reply") {
      const op = this.inflight;
      if (!op || op.method === GET) {
        if (code !== undefined && code !== 0 && op) return this.finish(op, refused(op.what, code));
        this.host.log(
          "debug",
          `shadow: a reply (RetCode ${String(code)}) with no update or delete in flight was ignored`,
        );
        return;
      }
      if (code === undefined)
        return this.finish(op, new UiotError("BAD_PAYLOAD", `${op.what}: the platform's reply has no RetCode`));
      if (code === CONFLICT) return this.conflict(version, payload);
      if (code !== 0) return this.finish(op, refused(op.what, code));
      if (version === undefined)
        return this.finish(op, new UiotError("BAD_PAYLOAD", `${op.what}: the platform's reply has no int32 Version`));
      this.known = version;
      if (!op.reset) this.rebase(op.sentAt, version);
      return this.finish(op, undefined, version);
    }
    if (msg.Method === "control") {
      if (code === CONFLICT) return this.conflict(version, payload);
      if (code !== undefined && code !== 0) return this.host.report(refused("shadow control message", code));
      if (version !== undefined && (this.known === undefined || newerVersion(version, this.known)))
        this.known = version;
      const state = payload && isObject(payload.State) ? payload.State : undefined;
      if (!state || !isObject(state.Desired))
        return this.host.report(new UiotError("BAD_PAYLOAD", "shadow control message without Payload.State.Desired"));
      this.desired(
        state.Desired,
        version ?? this.known ?? 0,
        typeof msg.Timestamp === "number" ? msg.Timestamp : undefined,
      );
      return;
    }
    this.host.report(
      new UiotError(
        "BAD_PAYLOAD",
        `shadow/downstream message with Method ${JSON.stringify(msg.Method)}: expected "reply" or "control"`,
      ),
    );
  }

  /** The document on shadow/get_reply. */
  getReply(msg: { [key: string]: unknown }): void {
    const op = this.inflight;
    const code = retCodeOf(msg.RetCode ?? (isObject(msg.Payload) ? msg.Payload.RetCode : undefined));
    if (code !== undefined && code !== 0) {
      if (op && op.method === GET) return this.finish(op, refused(op.what, code));
      return this.host.report(refused("shadow get", code));
    }
    const version = int32Of(msg.Version);
    const state = isObject(msg.State) ? msg.State : undefined;
    if (version === undefined || !state) {
      const e = new UiotError("BAD_PAYLOAD", "shadow get reply: the document has no State or no int32 Version");
      return op && op.method === GET ? this.finish(op, e) : this.host.report(e);
    }
    if (!op || op.method !== GET) {
      if (this.known === undefined || newerVersion(version, this.known)) this.known = version;
      this.host.log("debug", "shadow: a document with no get in flight was used only for its version");
      return;
    }
    this.known = version;
    const meta = isObject(msg.Metadata) ? msg.Metadata : {};
    const doc: ShadowDocument = {
      reported: isObject(state.Reported) ? state.Reported : {},
      desired: isObject(state.Desired) ? state.Desired : {},
      metadata: {
        reported: isObject(meta.Reported) ? meta.Reported : {},
        desired: isObject(meta.Desired) ? meta.Desired : {},
      },
      timestamp: typeof msg.Timestamp === "number" ? msg.Timestamp : 0,
      version,
    };
    this.shown = { desired: doc.desired, version };
    this.finish(op, undefined, doc);
  }

  /** Fails everything (the thing stopped). */
  abort(error: UiotError): void {
    this.closed = error;
    const all = this.inflight ? [this.inflight].concat(this.queue) : this.queue;
    this.inflight = undefined;
    this.queue = [];
    for (let i = 0; i < all.length; i++) all[i].reject(error);
  }

  // ---- internals ----

  private reportAccepting(
    reported: Params,
    options: ShadowRequestOptions | undefined,
    clears: boolean,
    accepts: Seen | undefined,
  ): Promise<number> {
    let state: string;
    try {
      state =
        '{"Reported":' +
        objectJson(reported as { [key: string]: unknown }, false, "shadow report", 1, 0) +
        (clears ? ',"Desired":null}' : "}");
      if (state.startsWith('{"Reported":{}'))
        throw new UiotError("INVALID_VALUE", "shadow report: nothing to report (an empty object)");
    } catch (e) {
      return Promise.reject(e);
    }
    return this.enqueue(UPDATE, state, false, "shadow update", options, clears, accepts) as Promise<number>;
  }

  private enqueue(
    method: number,
    state: string,
    reset: boolean,
    what: string,
    options: ShadowRequestOptions | undefined,
    clears = false,
    accepts?: Seen,
  ): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closed);
    if (this.inflight && this.queue.length >= this.max)
      return Promise.reject(
        new UiotError(
          "BUSY",
          `${what}: ${this.queue.length} shadow requests already wait behind the one in flight (the platform's shadow takes one at a time): wait for them, or raise shadowQueue`,
        ),
      );
    const timeout = options?.timeout ?? this.host.timeout;
    let op: Op | undefined;
    const promise = new Promise((resolve, reject) => {
      op = {
        method,
        state,
        reset,
        what,
        retried: false,
        clears,
        accepts,
        sentAt: 0,
        timeout,
        deadline: 0,
        resolve,
        reject,
      };
    });
    // sent after the Promise's executor has returned: two frames less on the XS stack under the publish
    if (this.inflight) this.queue.push(op as Op);
    else this.send(op as Op);
    return promise;
  }

  private send(op: Op): void {
    this.inflight = op;
    op.deadline = this.host.now() + op.timeout;
    let payload: string,
      topic = this.host.shadowUpstream;
    if (op.method === GET) {
      payload = METHOD[GET];
      topic = this.host.shadowGet;
    } else {
      // An acceptance goes first with the version its desired state had when the application saw it, so that the
      // platform refuses it (100026) if the desired state changed since; a retry goes with the version re-aligned to.
      op.sentAt = op.reset ? -1 : op.accepts && !op.retried ? op.accepts.version : (this.known ?? 0);
      payload = METHOD[op.method] + op.state + ',"Version":' + String(op.sentAt) + "}";
    }
    this.host.changed();
    this.host.publish(topic, payload, (e) => {
      if (this.inflight === op) this.finish(op, e);
    });
  }

  private conflict(version: number | undefined, payload: { [key: string]: unknown } | undefined): void {
    if (version !== undefined) this.known = version;
    const op = this.inflight;
    const state = payload && isObject(payload.State) ? payload.State : undefined;
    if (op && op.method !== GET) {
      if (version === undefined)
        this.finish(
          op,
          new UiotError("BAD_PAYLOAD", `${op.what}: the version-conflict answer has no int32 Version to re-align to`),
        );
      else if (op.clears && op.accepts && !(state && sameJson(state.Desired, op.accepts.desired))) {
        // Retrying would clear (and have the platform copy into Reported) desired values the application never accepted.
        const e = new UiotError(
          "VERSION_CONFLICT",
          `${op.what}: the desired state changed on the platform (now version ${version}) while this device was accepting it: not retried, so desired values the application has not seen are not cleared; the new desired state goes to shadow.onDesired`,
        );
        e.retCode = CONFLICT;
        this.finish(op, e);
      } else if (!op.retried) {
        op.retried = true;
        this.host.log(
          "info",
          `${op.what}: version conflict, re-aligned to the platform's version ${version} and retrying once`,
        );
        this.send(op);
      } else {
        const e = new UiotError(
          "VERSION_CONFLICT",
          `${op.what}: the shadow changed on the platform again while retrying (now version ${version}): get the shadow and decide again`,
        );
        e.retCode = CONFLICT;
        this.finish(op, e);
      }
    } else
      this.host.log(
        "debug",
        `shadow: a version conflict answer with nothing in flight: re-aligned to version ${String(version)}`,
      );
    // The full state came along: desired values the device has not seen yet go to the application too.
    const v = this.known ?? 0;
    if (
      state &&
      isObject(state.Desired) &&
      Object.keys(state.Desired).length &&
      (this.desiredSeen === undefined || newerVersion(v, this.desiredSeen))
    )
      this.desired(state.Desired, v, undefined);
  }

  private desired(desired: { [key: string]: unknown }, version: number, timestamp: number | undefined): void {
    this.desiredSeen = version;
    const h = this.handler;
    if (!h) {
      this.host.report(
        new UiotError(
          "NO_HANDLER",
          "desired shadow values arrived but no shadow.onDesired handler is set: they stay desired on the platform",
        ),
      );
      return;
    }
    this.shown = { desired, version };
    let r: DesiredAnswer | PromiseLike<DesiredAnswer>;
    try {
      r = h(desired, { version, timestamp });
    } catch (e) {
      this.host.report(new UiotError("CALLBACK_ERROR", `the shadow.onDesired handler threw: ${String(e)}`, e));
      return;
    }
    if (r && typeof (r as PromiseLike<DesiredAnswer>).then === "function")
      (r as PromiseLike<DesiredAnswer>).then(
        (a) => this.answer(a, { desired, version }),
        (e: unknown) =>
          this.host.report(new UiotError("CALLBACK_ERROR", `the shadow.onDesired handler failed: ${String(e)}`, e)),
      );
    else this.answer(r as DesiredAnswer, { desired, version });
  }

  /** The device's own update moved the version from `from` to `to`, the desired state unchanged by anyone else:
   * acceptances waiting with `from` (and the state last shown) now go with `to`. */
  private rebase(from: number, to: number): void {
    for (let i = 0; i < this.queue.length; i++) {
      const a = this.queue[i].accepts;
      if (a && a.version === from) this.queue[i].accepts = { desired: a.desired, version: to };
    }
    if (this.shown && this.shown.version === from) this.shown = { desired: this.shown.desired, version: to };
  }

  /** The handler's answer to the desired state it was shown: an acceptance of exactly that state. */
  private answer(a: DesiredAnswer, seen: Seen): void {
    if (this.closed || !a) return;
    const same = a === true || (isObject(a) && Object.keys(a).length === 0);
    const p = same
      ? this.enqueue(UPDATE, '{"Desired":null}', false, "shadow update (accept desired)", undefined, true, seen)
      : this.reportAccepting(a as Params, undefined, true, seen);
    p.then(undefined, (e: UiotError) => this.host.report(e));
  }

  private finish(op: Op, error?: UiotError, value?: unknown): void {
    if (this.inflight === op) this.inflight = undefined;
    if (error) op.reject(error);
    else op.resolve(value);
    // A loop, not recursion: a publish that fails at once (the client closed) finishes its request from inside
    // send(), and the next one is then sent by this loop, not one frame deeper per queued request.
    if (this.sending) return;
    this.sending = true;
    while (!this.inflight && !this.closed && this.queue.length) this.send(this.queue.shift() as Op);
    this.sending = false;
    if (!this.inflight) this.host.changed();
  }
}

/** Deep equality of two JSON values, ignoring the order of object keys. */
function sameJson(a: unknown, b: unknown): boolean {
  // A loop over pairs still to compare, not recursion: the depth of what the platform sends is bounded
  // (MAX_PAYLOAD_DEPTH), but each level of recursion would cost XS stack a board does not have.
  const pairs: unknown[] = [a, b];
  while (pairs.length) {
    const y = pairs.pop(),
      x = pairs.pop();
    if (x === y) continue;
    if (
      typeof x !== "object" ||
      typeof y !== "object" ||
      x === null ||
      y === null ||
      Array.isArray(x) !== Array.isArray(y)
    )
      return false;
    const p = x as { [key: string]: unknown },
      q = y as { [key: string]: unknown };
    const keys = Object.keys(p);
    if (keys.length !== Object.keys(q).length) return false;
    for (let i = 0; i < keys.length; i++) {
      if (!Object.hasOwn(q, keys[i])) return false;
      pairs.push(p[keys[i]], q[keys[i]]);
    }
  }
  return true;
}
