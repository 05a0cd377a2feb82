/**
 * The UIoT Core thing layer on a Client: thing model (properties, events, commands, desired values, template)
 * and the device shadow, on the device's system topics. The application sees identifiers and values, never
 * topics, QoS or bytes.
 *
 * Requests the device makes (post, event, restore, desired, template) carry a string RequestID and wait for the
 * platform's reply in a bounded table, each with its own timeout. Requests the platform makes (property set,
 * command) go to the application's handlers and are answered with their RetCode; a command must be answered
 * within the platform's 5 s, and a late answer is reported as COMMAND_LATE.
 */
import type { Client } from "../mqtt/client";
import { MqttError } from "../mqtt/errors";
import type { Message } from "../mqtt/session";
import type { Clock, LogLevel } from "../host";
import { UiotError, refused } from "./errors";
import {
  checkIdentifier,
  isObject,
  LIMITS,
  objectJson,
  parseObject,
  requestIdOf,
  retCodeOf,
  timeOf,
  valueJson,
  type Params,
} from "./json";
import { OtaAgent, type OtaOptions, type OtaPort } from "./ota";
import { UIOT_COMMAND_WINDOW } from "./platform";
import { Shadow, type ShadowHost } from "./shadow";
import { SYSTEM as S } from "./topics";

export interface ThingOptions {
  /** The host clock (timeouts). */
  clock: Clock;
  /** Milliseconds to wait for the platform's reply to a request. Default 5000 (the official SDK's). */
  timeout?: number;
  /** Thing-model requests awaiting a reply at once. Default 8. */
  maxPending?: number;
  /** Shadow requests waiting behind the one in flight. Default 4. */
  shadowQueue?: number;
  /** Commands being handled at once. Default 4. */
  maxCommands?: number;
  /** Subscribe to the shadow topics (default true) and the thing-model topics (default true). */
  shadow?: boolean;
  thingModel?: boolean;
  /** Problems that belong to no request: bad messages from the platform, handlers that threw, late commands. */
  onError?: (error: UiotError | MqttError) => void;
  log?: (level: LogLevel, message: string) => void;
  /** Firmware updates over the air (src/uiot/ota.ts): subscribes to ota/downstream; call thing.ota.loggedIn() after each login. */
  ota?: OtaOptions;
}

export interface RequestOptions {
  /** Reply timeout for this request, ms. */
  timeout?: number;
}

export interface PostOptions extends RequestOptions {
  /** When the values were measured (ms since 1970 or a Date); sent as each property's Time. Without it the
   * platform stamps the time it received them (the device clock is monotonic, not wall time). */
  time?: number | Date;
}

/** RetCode for the platform; 0 = success. Anything else is a failure the platform shows to the caller. */
export type RetCode = number;
/** A property set from the platform: plain values (booleans arrive as 0/1, dates as ms). Return the RetCode. */
export type SetHandler = (
  properties: { [identifier: string]: unknown },
  requestId: string,
) => RetCode | void | PromiseLike<RetCode | void>;
export interface CommandResult {
  /** Default 0. */
  retCode?: RetCode;
  output?: Params;
}
export type CommandHandler = (
  input: { [identifier: string]: unknown },
  requestId: string,
  identifier: string,
) => CommandResult | void | PromiseLike<CommandResult | void>;

export interface Restored {
  /** ms since 1970, when the platform last got the properties. */
  latestUpdateTime?: number;
  properties: { [identifier: string]: { value: unknown; time?: number } };
}
export type DesiredValues = { [identifier: string]: { value: unknown; version: number } };

/** RetCode the device sends when a handler is missing, threw, or returned something that is not a RetCode. */
export const FAILED: RetCode = -1;

const Q1 = Object.freeze({ qos: 1 as const });
const POST = 1,
  RESTORE = 2,
  DESIRED_GET = 3,
  DESIRED_DELETE = 4,
  EVENT = 5,
  TEMPLATE = 6;
const WHAT: readonly string[] = Object.freeze([
  "",
  "property post",
  "property restore",
  "desired get",
  "desired delete",
  "event post",
  "template get",
]);

interface Pending {
  kind: number;
  what: string;
  timeout: number;
  deadline: number;
  resolve(value: unknown): void;
  reject(error: UiotError): void;
}

interface Running {
  identifier: string;
  received: number;
  deadline: number;
}

/** The system topics the thing reads: thing-model replies route to their request kind (1..6). */
const R_SHADOW = 7,
  R_SHADOW_GET = 8,
  R_SET = 9,
  R_COMMAND = 10,
  R_OTA = 11;
const ROUTES: ReadonlyMap<string, number> = new Map([
  [S.shadowDownstream, R_SHADOW],
  [S.shadowGetReply, R_SHADOW_GET],
  [S.postReply, POST],
  [S.eventReply, EVENT],
  [S.restoreReply, RESTORE],
  [S.desiredGetReply, DESIRED_GET],
  [S.desiredDeleteReply, DESIRED_DELETE],
  [S.templateReply, TEMPLATE],
  [S.set, R_SET],
  [S.command, R_COMMAND],
  [S.otaDownstream, R_OTA],
]);

function noop(): void {}

/** Called with .call: on XS, reading a method of a primitive string makes a String wrapper object each time. */
const startsWith = String.prototype.startsWith;
const substring = String.prototype.substring;

export class Thing {
  readonly shadow: Shadow;
  /** Firmware updates, when ThingOptions.ota was given. */
  readonly ota: OtaAgent | null;
  /** Default reply timeout, ms. */
  readonly timeout: number;
  onError: (error: UiotError | MqttError) => void;

  /** @internal `/$system/${PSN}/${DSN}/` */
  readonly base: string;
  private baseLength: number;
  private client: Client;
  /** @internal */
  readonly clock: Clock;
  /** @internal */
  readonly logger: (level: LogLevel, message: string) => void;
  private maxPending: number;
  private maxCommands: number;
  private subscribeShadow: boolean;
  private subscribeModel: boolean;
  // Requests awaiting the platform's reply, commands being handled, command handlers: each map made on first use.
  private pending: Map<string, Pending> | null = null;
  private running: Map<string, Running> | null = null;
  private seq = 0;
  /** Commands reported late by the timer (so a late answer is not reported twice); bounded by maxCommands. */
  private lateIds: string[] | null = null;
  private setHandler: SetHandler | undefined = undefined;
  private commands: Map<string, CommandHandler> | null = null;
  private previous: Client["onMessage"] | undefined = undefined;
  private timer: unknown = undefined;
  private timerAt = -1;
  private started = false;
  private closed = false;

  constructor(
    client: Client,
    identity: { readonly productSN: string; readonly deviceSN: string },
    options: ThingOptions,
  ) {
    this.client = client;
    this.clock = options.clock;
    this.timeout = options.timeout ?? 5000;
    this.maxPending = options.maxPending ?? 8;
    this.maxCommands = options.maxCommands ?? 4;
    this.subscribeShadow = options.shadow ?? true;
    this.subscribeModel = options.thingModel ?? true;
    this.onError = options.onError ?? noop;
    this.logger = options.log ?? noop;
    this.base = `/$system/${identity.productSN}/${identity.deviceSN}/`;
    this.baseLength = this.base.length;
    this.shadow = new Shadow(new ShadowPort(this), options.shadowQueue ?? 4);
    this.ota = options.ota ? new OtaAgent(new OtaThingPort(this), options.ota) : null;
  }

  /**
   * Takes the client's messages on the device's system topics (others still go to the client's previous
   * onMessage) and subscribes to the system topics with QoS 1. Call before or after client.start().
   */
  start(): void {
    if (this.closed) throw new UiotError("CLOSED", "this thing was stopped: make a new one");
    if (this.started) return;
    const f = this.filters();
    this.previous = this.client.onMessage;
    this.client.onMessage = this.handle;
    this.started = true;
    if (f.length) this.client.subscribe(f, 1, (e) => e && this.report(e));
  }

  /** The system topics the thing subscribes to (made when needed: the client keeps its subscriptions). */
  private filters(): string[] {
    const f: string[] = [];
    if (this.subscribeShadow) f.push(this.base + S.shadowDownstream, this.base + S.shadowGetReply);
    if (this.subscribeModel)
      for (const s of [
        S.postReply,
        S.set,
        S.restoreReply,
        S.desiredGetReply,
        S.desiredDeleteReply,
        S.eventReply,
        S.command,
        S.templateReply,
      ])
        f.push(this.base + s);
    if (this.ota) f.push(this.base + S.otaDownstream);
    return f;
  }

  /** Fails every request still waiting with CLOSED, gives the client's onMessage back and unsubscribes. */
  stop(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.ota) this.ota.stop();
    if (this.client.onMessage === this.handle && this.previous) this.client.onMessage = this.previous;
    const f = this.started && this.client.state !== "closed" ? this.filters() : [];
    if (f.length) {
      try {
        this.client.unsubscribe(f);
      } catch {
        /* the client is going away too */
      }
    }
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = -1;
    const e = new UiotError("CLOSED", "the thing was stopped before the platform answered");
    const all = this.pending ? Array.from(this.pending.values()) : [];
    if (this.pending) this.pending.clear();
    if (this.running) this.running.clear();
    for (let i = 0; i < all.length; i++) all[i].reject(e);
    this.shadow.abort(e);
  }

  // ---- thing model: requests the device makes ----

  /** Reports property values (tmodel/property/post); resolves when the platform confirms. */
  post(properties: Params, options?: PostOptions): Promise<void> {
    return this.request(POST, S.post, options, (id) => {
      const keys = Object.keys(properties ?? {});
      if (!isObject(properties) || keys.length === 0)
        throw new UiotError("INVALID_VALUE", "property post: give at least one property");
      if (keys.length > LIMITS.properties)
        throw new UiotError(
          "INVALID_VALUE",
          `property post: ${keys.length} properties; a product has at most ${LIMITS.properties}`,
        );
      const time = options?.time !== undefined ? ',"Time":' + String(timeOf(options.time, "property post")) + "}" : "}";
      let s = '{"RequestID":' + JSON.stringify(id) + ',"Property":{';
      for (let i = 0; i < keys.length; i++) {
        const k = checkIdentifier(keys[i], "property");
        s += (i ? "," : "") + '"' + k + '":{"Value":' + propertyJson(properties[k], k) + time;
      }
      return s + "}}";
    }) as Promise<void>;
  }

  /** Posts one event (tmodel/event/post) with its output parameters; resolves when the platform confirms. */
  event(identifier: string, output: Params = {}, options?: PostOptions): Promise<void> {
    return this.request(EVENT, S.event, options, (id) => {
      checkIdentifier(identifier, "event");
      let s =
        '{"RequestID":' +
        JSON.stringify(id) +
        ',"Identifier":"' +
        identifier +
        '","Output":' +
        paramsJson(output, `event ${identifier} output`);
      if (options?.time !== undefined) s += ',"Time":' + String(timeOf(options.time, `event ${identifier}`));
      return s + "}";
    }) as Promise<void>;
  }

  /** The property values the platform last got from this device (tmodel/property/restore). */
  restore(options?: RequestOptions): Promise<Restored> {
    return this.request(RESTORE, S.restore, options, idOnly) as Promise<Restored>;
  }

  /** Desired values of `identifiers` (tmodel/property/desired/get), each with the version to delete it with. */
  desired(identifiers: readonly string[], options?: RequestOptions): Promise<DesiredValues> {
    return this.request(DESIRED_GET, S.desiredGet, options, (id) => {
      if (!Array.isArray(identifiers) || identifiers.length === 0 || identifiers.length > LIMITS.properties)
        throw new UiotError("INVALID_VALUE", `desired get: give 1 to ${LIMITS.properties} property identifiers`);
      let s = '{"RequestID":' + JSON.stringify(id) + ',"Require":[';
      for (let i = 0; i < identifiers.length; i++)
        s += (i ? "," : "") + '"' + checkIdentifier(identifiers[i], "property") + '"';
      return s + "]}";
    }) as Promise<DesiredValues>;
  }

  /** Deletes desired values (tmodel/property/desired/delete); each takes effect only if its version still matches. */
  deleteDesired(versions: { readonly [identifier: string]: number }, options?: RequestOptions): Promise<void> {
    return this.request(DESIRED_DELETE, S.desiredDelete, options, (id) => {
      const keys = isObject(versions) ? Object.keys(versions) : [];
      if (keys.length === 0 || keys.length > LIMITS.properties)
        throw new UiotError(
          "INVALID_VALUE",
          `desired delete: give 1 to ${LIMITS.properties} identifier: version pairs`,
        );
      let s = '{"RequestID":' + JSON.stringify(id) + ',"Delete":{';
      for (let i = 0; i < keys.length; i++) {
        const k = checkIdentifier(keys[i], "property"),
          v = versions[k];
        if (!Number.isInteger(v))
          throw new UiotError(
            "INVALID_VALUE",
            `desired delete: the version of ${k} must be an integer (from thing.desired())`,
          );
        s += (i ? "," : "") + '"' + k + '":{"Version":' + String(v) + "}";
      }
      return s + "}}";
    }) as Promise<void>;
  }

  /** The product's thing-model template (tmodel/template/get), as the platform sends it. */
  template(options?: RequestOptions): Promise<unknown> {
    return this.request(TEMPLATE, S.template, options, idOnly);
  }

  // ---- thing model: requests the platform makes ----

  /** Handles property sets from the platform; the handler's RetCode (0 when it returns nothing) is the answer. */
  onSet(handler: SetHandler | undefined): void {
    this.setHandler = handler;
  }

  /** Handles the command `identifier` ("*" for any command without its own handler). */
  onCommand(identifier: string, handler: CommandHandler | undefined): void {
    if (identifier !== "*") checkIdentifier(identifier, "command");
    if (handler) (this.commands ??= new Map()).set(identifier, handler);
    else if (this.commands) this.commands.delete(identifier);
  }

  /** Requests waiting for the platform (thing model) and commands being handled. */
  get busy(): { pending: number; commands: number; shadowQueued: number } {
    return {
      pending: this.pending ? this.pending.size : 0,
      commands: this.running ? this.running.size : 0,
      shadowQueued: this.shadow.queued,
    };
  }

  // ---- internals ----

  /** @internal Publishes with QoS 1; `fail` gets a typed error when the client refuses the message or cannot deliver it. */
  publish(topic: string, payload: string, fail: (error: UiotError) => void): void {
    try {
      this.client.publish(topic, payload, Q1, (e) => e && fail(sendFailed(topic, e)));
    } catch (e) {
      fail(sendFailed(topic, e));
    }
  }

  /** @internal Publishes with QoS 0 (progress reports): what the client refuses is dropped, as QoS 0 may be. */
  publishQos0(topic: string, payload: string): void {
    try {
      this.client.publish(topic, payload);
    } catch (e) {
      this.logger("debug", `a QoS 0 message to ${topic} was not sent: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** @internal */
  report(error: UiotError | MqttError): void {
    try {
      this.onError(error);
    } catch (e) {
      this.logger("error", `the thing's onError handler threw: ${String(e)}`);
    }
  }

  private request(
    kind: number,
    suffix: string,
    options: RequestOptions | undefined,
    build: (id: string) => string,
  ): Promise<unknown> {
    const what = WHAT[kind];
    if (this.closed) return Promise.reject(new UiotError("CLOSED", `${what}: the thing was stopped`));
    const pending = this.pending ?? (this.pending = new Map());
    if (pending.size >= this.maxPending)
      return Promise.reject(
        new UiotError(
          "BUSY",
          `${what}: ${pending.size} requests already await the platform's reply: wait for some, or raise maxPending`,
        ),
      );
    const id = this.nextId();
    let payload: string;
    try {
      payload = build(id);
    } catch (e) {
      return Promise.reject(e);
    }
    const timeout = options?.timeout ?? this.timeout;
    // The message is published after the Promise's executor has returned, not from inside it: two frames less on
    // the XS stack under a publish, which is where the firmware's deepest stack is.
    let p: Pending | undefined;
    const promise = new Promise((resolve, reject) => {
      p = { kind, what, timeout, deadline: this.clock.now() + timeout, resolve, reject };
    });
    const entry = p as Pending;
    pending.set(id, entry);
    this.publish(this.base + suffix, payload, (e) => {
      if (pending.get(id) === entry) {
        pending.delete(id);
        entry.reject(e);
        this.arm();
      }
    });
    this.arm();
    return promise;
  }

  private nextId(): string {
    do this.seq = this.seq >= 0x7fffffff ? 1 : this.seq + 1;
    while (this.pending?.has(String(this.seq)));
    return String(this.seq);
  }

  // The two functions the thing hands out (the client's onMessage, the clock's timer callback) are closures that
  // only call methods: a closure costs heap slots per instance, its body nothing more when it is this short.
  private handle = (topic: string, payload: Uint8Array, message: Message): unknown =>
    this.route(topic, payload, message);
  private tick = (): void => this.expire();

  private route(topic: string, payload: Uint8Array, message: Message): unknown {
    const suffix = startsWith.call(topic, this.base) ? substring.call(topic, this.baseLength) : undefined;
    const route = suffix === undefined ? undefined : ROUTES.get(suffix);
    // ota/downstream is the thing's only when it updates firmware; otherwise the application's, like any topic
    if (route === undefined || (route === R_OTA && !this.ota))
      return this.previous ? this.previous(topic, payload, message) : undefined;
    let msg: { [key: string]: unknown };
    try {
      msg = parseObject(payload, suffix as string);
    } catch (e) {
      this.report(e as UiotError);
      if (route === R_SET || route === R_COMMAND)
        this.logger(
          "warn",
          `an unreadable ${route === R_SET ? "property set" : "command"} (${payload.length} bytes) was not answered: it has no RequestID the device could read`,
        );
      return undefined;
    }
    switch (route) {
      case R_SHADOW:
        return this.shadow.downstream(msg);
      case R_SHADOW_GET:
        return this.shadow.getReply(msg);
      case R_SET:
        return this.set(msg);
      case R_COMMAND:
        return this.command(msg);
      case R_OTA:
        return this.ota ? this.ota.downstream(msg) : undefined;
    }
    return this.reply(route, msg);
  }

  private reply(kind: number, msg: { [key: string]: unknown }): void {
    const id = requestIdOf(msg.RequestID);
    const p = id !== undefined && this.pending ? this.pending.get(id) : undefined;
    if (!p || p.kind !== kind) {
      this.logger(
        "debug",
        `${WHAT[kind]} reply for RequestID ${String(id)} matches no request waiting (timed out, or not ours)`,
      );
      return;
    }
    (this.pending as Map<string, Pending>).delete(id as string);
    this.arm();
    const code = retCodeOf(msg.RetCode);
    if (code === undefined) return p.reject(new UiotError("BAD_PAYLOAD", `${p.what} reply without a RetCode`));
    if (code !== 0) {
      const e = refused(p.what, code);
      if (typeof msg.Message === "string") e.message += ` (platform says: ${msg.Message})`;
      return p.reject(e);
    }
    switch (kind) {
      case RESTORE: {
        const props: Restored["properties"] = {};
        const src = isObject(msg.Property) ? msg.Property : {};
        for (const k of Object.keys(src)) {
          const v = src[k];
          props[k] = isObject(v)
            ? { value: v.Value, time: typeof v.Time === "number" ? v.Time : undefined }
            : { value: v };
        }
        return p.resolve({
          latestUpdateTime: typeof msg.LatestUpdateTime === "number" ? msg.LatestUpdateTime : undefined,
          properties: props,
        });
      }
      case DESIRED_GET: {
        const out: DesiredValues = {};
        const src = isObject(msg.Desired) ? msg.Desired : {};
        for (const k of Object.keys(src)) {
          const v = src[k];
          if (isObject(v)) out[k] = { value: v.Value, version: typeof v.Version === "number" ? v.Version : 0 };
        }
        return p.resolve(out);
      }
      case TEMPLATE:
        return p.resolve(msg.Template);
    }
    p.resolve(undefined);
  }

  private set(msg: { [key: string]: unknown }): unknown {
    const id = requestIdOf(msg.RequestID);
    if (id === undefined)
      return this.report(new UiotError("BAD_PAYLOAD", "property set without a RequestID: not answered"));
    const h = this.setHandler;
    if (!isObject(msg.Property)) {
      this.report(
        new UiotError("BAD_PAYLOAD", `property set ${id} without a Property object: answered RetCode ${FAILED}`),
      );
      return this.setReply(id, FAILED);
    }
    if (!h) {
      this.report(
        new UiotError(
          "NO_HANDLER",
          `property set ${id} arrived but no onSet handler is set: answered RetCode ${FAILED}`,
        ),
      );
      return this.setReply(id, FAILED);
    }
    let r: RetCode | void | PromiseLike<RetCode | void>;
    try {
      r = h(msg.Property, id);
    } catch (e) {
      this.report(
        new UiotError(
          "CALLBACK_ERROR",
          `the onSet handler threw for property set ${id}: ${String(e)}; answered RetCode ${FAILED}`,
          e,
        ),
      );
      return this.setReply(id, FAILED);
    }
    if (r && typeof (r as PromiseLike<RetCode>).then === "function") {
      // Returned to the client: the PUBACK waits until the answer is queued.
      return (r as PromiseLike<RetCode | void>).then(
        (code) => this.setReply(id, this.retCode(code, "onSet")),
        (e: unknown) => {
          this.report(
            new UiotError(
              "CALLBACK_ERROR",
              `the onSet handler failed for property set ${id}: ${String(e)}; answered RetCode ${FAILED}`,
              e,
            ),
          );
          this.setReply(id, FAILED);
        },
      );
    }
    this.setReply(id, this.retCode(r as RetCode | void, "onSet"));
    return undefined;
  }

  private setReply(id: string, code: RetCode): void {
    if (this.closed) return;
    this.publish(
      this.base + S.setReply,
      '{"RequestID":' + JSON.stringify(id) + ',"RetCode":' + String(code) + "}",
      (e) => this.report(e),
    );
  }

  private retCode(code: unknown, handler: string): RetCode {
    if (code === undefined) return 0;
    if (typeof code === "number" && Number.isInteger(code)) return code;
    this.report(
      new UiotError(
        "CALLBACK_ERROR",
        `the ${handler} handler returned ${JSON.stringify(code)}, not an integer RetCode: answered ${FAILED}`,
      ),
    );
    return FAILED;
  }

  private command(msg: { [key: string]: unknown }): unknown {
    const id = requestIdOf(msg.RequestID);
    if (id === undefined) return this.report(new UiotError("BAD_PAYLOAD", "command without a RequestID: not answered"));
    const identifier = typeof msg.Identifier === "string" ? msg.Identifier : "";
    const input = isObject(msg.Input) ? msg.Input : {};
    const h = this.commands ? (this.commands.get(identifier) ?? this.commands.get("*")) : undefined;
    const received = this.clock.now();
    if (!h) {
      this.report(
        new UiotError(
          "NO_HANDLER",
          `command ${JSON.stringify(identifier)} (RequestID ${id}) has no onCommand handler: answered RetCode ${FAILED}`,
        ),
      );
      return this.commandReply(id, identifier, received, { retCode: FAILED });
    }
    const running = this.running ?? (this.running = new Map());
    if (running.size >= this.maxCommands) {
      this.report(
        new UiotError(
          "BUSY",
          `command ${JSON.stringify(identifier)} (RequestID ${id}): ${running.size} commands are still being handled: answered RetCode ${FAILED}`,
        ),
      );
      return this.commandReply(id, identifier, received, { retCode: FAILED });
    }
    running.set(id, { identifier, received, deadline: received + UIOT_COMMAND_WINDOW });
    this.arm();
    let r: CommandResult | void | PromiseLike<CommandResult | void>;
    try {
      r = h(input, id, identifier);
    } catch (e) {
      this.report(
        new UiotError(
          "CALLBACK_ERROR",
          `the onCommand handler threw for ${JSON.stringify(identifier)} (RequestID ${id}): ${String(e)}; answered RetCode ${FAILED}`,
          e,
        ),
      );
      return this.commandReply(id, identifier, received, { retCode: FAILED });
    }
    if (r && typeof (r as PromiseLike<CommandResult>).then === "function") {
      return (r as PromiseLike<CommandResult | void>).then(
        (res) => this.commandReply(id, identifier, received, res),
        (e: unknown) => {
          this.report(
            new UiotError(
              "CALLBACK_ERROR",
              `the onCommand handler failed for ${JSON.stringify(identifier)} (RequestID ${id}): ${String(e)}; answered RetCode ${FAILED}`,
              e,
            ),
          );
          this.commandReply(id, identifier, received, { retCode: FAILED });
        },
      );
    }
    this.commandReply(id, identifier, received, r as CommandResult | void);
    return undefined;
  }

  private commandReply(id: string, identifier: string, received: number, result: CommandResult | void): void {
    if (this.running?.delete(id)) this.arm();
    if (this.closed) return;
    const elapsed = this.clock.now() - received;
    if (elapsed > UIOT_COMMAND_WINDOW) {
      // Reported at the deadline already when the timer fired; otherwise (same tick) now.
      if (!this.lateReported(id)) this.late(id, identifier, elapsed);
      this.logger("info", `command ${JSON.stringify(identifier)} (RequestID ${id}) answered after ${elapsed} ms`);
    }
    let code = this.retCode(result ? result.retCode : undefined, "onCommand");
    let output = "{}";
    if (result && result.output !== undefined) {
      try {
        output = paramsJson(result.output, `command ${identifier} output`);
      } catch (e) {
        this.report(e as UiotError);
        code = FAILED;
      }
    }
    const payload =
      '{"RetCode":' +
      String(code) +
      ',"RequestID":' +
      JSON.stringify(id) +
      ',"Identifier":' +
      JSON.stringify(identifier) +
      ',"Output":' +
      output +
      "}";
    this.publish(this.base + S.commandReply + id, payload, (e) => this.report(e));
  }

  private lateReported(id: string): boolean {
    const i = this.lateIds ? this.lateIds.indexOf(id) : -1;
    if (i >= 0) (this.lateIds as string[]).splice(i, 1);
    return i >= 0;
  }

  private late(id: string, identifier: string, elapsed: number): void {
    this.report(
      new UiotError(
        "COMMAND_LATE",
        `command ${JSON.stringify(identifier)} (RequestID ${id}) was not answered within the platform's ${UIOT_COMMAND_WINDOW} ms (${elapsed} ms so far): the platform has already told the caller "Command timeout" (RetCode 100040). The answer is still sent when the handler finishes, for asynchronous commands; answer synchronous commands faster, or answer at once and report the outcome as an event`,
      ),
    );
  }

  /** @internal Deadlines changed: the timer is armed for the earliest. */
  arm(): void {
    if (this.closed) return;
    let d = this.shadow.deadline();
    // (an iterator is an object: none is made for an empty map)
    if (this.pending?.size) for (const p of this.pending.values()) if (d < 0 || p.deadline < d) d = p.deadline;
    if (this.running?.size) for (const r of this.running.values()) if (d < 0 || r.deadline < d) d = r.deadline;
    if (d === this.timerAt) return;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = d;
    if (d < 0) return;
    this.timer = this.clock.setTimer(this.tick, Math.max(0, d - this.clock.now()));
  }

  private expire(): void {
    this.timer = undefined;
    this.timerAt = -1;
    if (this.closed) return;
    const now = this.clock.now();
    const pending = this.pending,
      running = this.running;
    if (pending?.size)
      for (const [id, p] of pending) {
        if (now < p.deadline) continue;
        pending.delete(id);
        const state = this.client.state;
        p.reject(
          new UiotError(
            "TIMEOUT",
            `no ${p.what} reply from the platform within ${p.timeout} ms (RequestID ${id})` +
              (state === "connected"
                ? ""
                : `; the client is ${state}: the request waits in the outbox and may still be sent, but its reply will be ignored`),
          ),
        );
      }
    if (running?.size)
      for (const [id, r] of running) {
        if (now < r.deadline) continue;
        running.delete(id);
        const late = this.lateIds ?? (this.lateIds = []);
        if (late.length >= this.maxCommands) late.shift();
        late.push(id);
        this.late(id, r.identifier, now - r.received);
      }
    this.shadow.tick(now);
    this.arm();
  }
}

/** What the shadow needs of its thing: one small object with prototype methods, not a bag of closures. */
class ShadowPort implements ShadowHost {
  constructor(private readonly thing: Thing) {}
  get shadowUpstream(): string {
    return this.thing.base + S.shadowUpstream;
  }
  get shadowGet(): string {
    return this.thing.base + S.shadowGet;
  }
  get timeout(): number {
    return this.thing.timeout;
  }
  now(): number {
    return this.thing.clock.now();
  }
  publish(topic: string, payload: string, fail: (error: UiotError) => void): void {
    this.thing.publish(topic, payload, fail);
  }
  changed(): void {
    this.thing.arm();
  }
  report(error: UiotError | MqttError): void {
    this.thing.report(error);
  }
  log(level: LogLevel, message: string): void {
    this.thing.logger(level, message);
  }
}

/** What the OTA agent needs of its thing. */
class OtaThingPort implements OtaPort {
  constructor(private readonly thing: Thing) {}
  get upstream(): string {
    return this.thing.base + S.otaUpstream;
  }
  get clock() {
    return this.thing.clock;
  }
  publish(topic: string, payload: string, qos: 0 | 1): void {
    if (qos === 0) this.thing.publishQos0(topic, payload);
    else this.thing.publish(topic, payload, (e) => this.thing.report(e));
  }
  log(level: LogLevel, message: string): void {
    this.thing.logger(level, message);
  }
}

function idOnly(id: string): string {
  return '{"RequestID":' + JSON.stringify(id) + "}";
}

/** A property value in thing-model JSON. */
function propertyJson(v: unknown, id: string): string {
  return valueJson(v, true, `property ${id}`);
}

/** Event output / command output: at most 20 parameters, identifiers as keys, thing-model values. */
function paramsJson(p: Params, path: string): string {
  return objectJson(p as { [key: string]: unknown }, true, path, 1, LIMITS.params);
}

function sendFailed(topic: string, e: unknown): UiotError {
  if (e instanceof UiotError) return e;
  const m = e instanceof MqttError ? `${e.code}: ${e.message}` : String(e);
  return new UiotError("SEND_FAILED", `could not send to ${topic}: ${m}`, e);
}
