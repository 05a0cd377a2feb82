// The thing-model service of the emulated UIoT Core, per docs/uiot-platform.md "Thing model": pure logic per
// device, fed a request payload and the time, answering with the payload to send back.
//
// Decisions where the spec is silent (docs/simulator.md, "The emulated cloud"):
// - A request that cannot be served (not JSON, RequestID not a string, a field of the wrong shape, a JSON boolean
//   where bool travels as 0/1, a string over 2048 bytes, an array outside 1..128 items, a bad identifier) is
//   answered with RetCode 230 (the shadow's "bad request" code) and a Message saying what is wrong; nothing is kept.
// - Restore's LatestUpdateTime is when the platform last received a property post (ms; 0 before the first).
// - Desired get without Require (or with an empty one) returns every desired property.
// - Desired delete removes a property only when its Version matches; a missing Version does not match.
// - Console values are sent with booleans as 0/1.

import { isObject, parse, type Json, type JsonObject } from "./shadow";

export interface PropertyValue {
  Value: Json;
  /** ms: the device's Time, else when the platform received it. */
  Time: number;
}

export interface DesiredValue {
  Value: Json;
  Version: number;
}

export interface ThingEvent {
  RequestID: string;
  Identifier: string;
  Output: JsonObject;
  /** ms: the device's Time, else when the platform received it. */
  Time: number;
}

export const TMODEL_OK = 0;
export const TMODEL_BAD_REQUEST = 230;
export const COMMAND_TIMEOUT = 100040;

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;
const MAX_STRING_BYTES = 2048;
const MAX_ARRAY = 128;
const MAX_ITEMS = 100;
const KEEP_EVENTS = 100;

/** Requests the service answers itself: request suffix -> reply suffix (after `/$system/${PSN}/${DSN}/`). */
export const TMODEL_REPLIES: Readonly<Record<string, string>> = {
  "tmodel/property/post": "tmodel/property/post_reply",
  "tmodel/property/restore": "tmodel/property/restore_reply",
  "tmodel/property/desired/get": "tmodel/property/desired/get_reply",
  "tmodel/property/desired/delete": "tmodel/property/desired/delete_reply",
  "tmodel/event/post": "tmodel/event/post_reply",
  "tmodel/template/get": "tmodel/template/get_reply",
};

class BadRequest extends Error {}

export class ThingModel {
  private readonly reported = new Map<string, PropertyValue>();
  private readonly desiredValues = new Map<string, DesiredValue>();
  /** Last version handed out per property: a property deleted and set again does not reuse a version. */
  private readonly desiredVersions = new Map<string, number>();
  private readonly received: ThingEvent[] = [];
  private lastPost = 0;

  /** Answers a request on `suffix` (a key of TMODEL_REPLIES) with the payload for its reply topic. */
  handle(suffix: string, payload: string, nowMs: number, template: Json): string {
    const msg = parse(payload);
    const id = echoId(msg);
    try {
      if (!isObject(msg)) throw new BadRequest("the payload is not a JSON object");
      if (typeof msg.RequestID !== "string") throw new BadRequest("RequestID must be a string");
      switch (suffix) {
        case "tmodel/property/post":
          this.post(msg.Property, nowMs);
          return success(id);
        case "tmodel/property/restore":
          return JSON.stringify({
            RetCode: TMODEL_OK,
            RequestID: id,
            LatestUpdateTime: this.lastPost,
            Property: this.properties(),
          });
        case "tmodel/property/desired/get":
          return JSON.stringify({ RetCode: TMODEL_OK, RequestID: id, Desired: this.desiredFor(msg.Require) });
        case "tmodel/property/desired/delete":
          this.deleteDesired(msg.Delete);
          return success(id);
        case "tmodel/event/post":
          this.event(id, msg, nowMs);
          return success(id);
        case "tmodel/template/get":
          return JSON.stringify({ RetCode: TMODEL_OK, RequestID: id, Template: template });
        default:
          throw new BadRequest(`no thing-model service on ${suffix}`);
      }
    } catch (error) {
      if (!(error instanceof BadRequest)) throw error;
      return JSON.stringify({ RequestID: id, RetCode: TMODEL_BAD_REQUEST, Message: error.message });
    }
  }

  /** The reported properties (a copy). */
  properties(): Record<string, PropertyValue> {
    return Object.fromEntries([...this.reported].map(([k, v]) => [k, structuredClone(v)]));
  }

  /** The desired properties (a copy). */
  desired(): Record<string, DesiredValue> {
    return Object.fromEntries([...this.desiredValues].map(([k, v]) => [k, structuredClone(v)]));
  }

  /** The events the device posted, oldest first (the last 100). */
  events(): ThingEvent[] {
    return structuredClone(this.received);
  }

  /** The console sets desired values (null deletes one); each set property gets its next Version. */
  setDesired(values: Record<string, unknown>): Record<string, DesiredValue> {
    const entries = Object.entries(values).map(([k, v]) => [k, v === null ? null : toWire(v)] as const);
    for (const [k, v] of entries) {
      if (!IDENTIFIER.test(k)) throw new Error(`not a thing-model identifier: ${JSON.stringify(k)}`);
      if (v !== null) checkValue(v, k);
    }
    for (const [k, v] of entries) {
      if (v === null) {
        this.desiredValues.delete(k);
        continue;
      }
      const version = (this.desiredVersions.get(k) ?? 0) + 1;
      this.desiredVersions.set(k, version);
      this.desiredValues.set(k, { Value: v, Version: version });
    }
    return this.desired();
  }

  private post(property: Json | undefined, nowMs: number): void {
    if (!isObject(property)) throw new BadRequest('Property must be an object of {"Value": ..., "Time": ms}');
    const entries = Object.entries(property);
    if (entries.length > MAX_ITEMS) throw new BadRequest(`more than ${MAX_ITEMS} properties`);
    const values: [string, PropertyValue][] = [];
    for (const [k, entry] of entries) {
      identifier(k);
      if (!isObject(entry) || entry.Value === undefined)
        throw new BadRequest(`Property.${k} must be {"Value": ..., "Time": ms}`);
      badValue(entry.Value, `Property.${k}.Value`);
      values.push([k, { Value: entry.Value, Time: time(entry.Time, `Property.${k}.Time`) ?? nowMs }]);
    }
    for (const [k, v] of values) this.reported.set(k, v);
    this.lastPost = nowMs;
  }

  private desiredFor(require: Json | undefined): Record<string, DesiredValue> {
    if (require === undefined || (Array.isArray(require) && require.length === 0)) return this.desired();
    if (!Array.isArray(require) || !require.every((r) => typeof r === "string")) {
      throw new BadRequest("Require must be an array of property identifiers");
    }
    const out: Record<string, DesiredValue> = {};
    for (const k of require as string[]) {
      const v = this.desiredValues.get(k);
      if (v)
        Object.defineProperty(out, k, {
          value: structuredClone(v),
          enumerable: true,
          writable: true,
          configurable: true,
        });
    }
    return out;
  }

  private deleteDesired(del: Json | undefined): void {
    if (!isObject(del)) throw new BadRequest('Delete must be an object of {"Version": n}');
    const entries = Object.entries(del);
    for (const [k, entry] of entries) {
      if (!isObject(entry)) throw new BadRequest(`Delete.${k} must be {"Version": n}`);
    }
    for (const [k, entry] of entries) {
      const current = this.desiredValues.get(k);
      if (current && isObject(entry) && entry.Version === current.Version) this.desiredValues.delete(k);
    }
  }

  private event(id: string, msg: JsonObject, nowMs: number): void {
    const { Identifier, Output = {} } = msg;
    if (typeof Identifier !== "string") throw new BadRequest("Identifier must be a string");
    identifier(Identifier);
    if (!isObject(Output)) throw new BadRequest("Output must be an object");
    if (Object.keys(Output).length > 20) throw new BadRequest("an event has at most 20 parameters");
    for (const [k, v] of Object.entries(Output)) badValue(v, `Output.${k}`);
    this.received.push({ RequestID: id, Identifier, Output, Time: time(msg.Time, "Time") ?? nowMs });
    if (this.received.length > KEEP_EVENTS) this.received.shift();
  }
}

/** The payload of a console property set: plain values, booleans as 0/1. */
export function propertySetPayload(requestId: string, values: Record<string, unknown>): string {
  const property = toWire(values) as JsonObject;
  for (const [k, v] of Object.entries(property)) {
    if (!IDENTIFIER.test(k)) throw new Error(`not a thing-model identifier: ${JSON.stringify(k)}`);
    checkValue(v, k);
  }
  return JSON.stringify({ RequestID: requestId, Property: property });
}

/** The payload of a console command. */
export function commandPayload(requestId: string, identifier: string, input: Record<string, unknown>): string {
  if (!IDENTIFIER.test(identifier)) throw new Error(`not a thing-model identifier: ${JSON.stringify(identifier)}`);
  const wire = toWire(input) as JsonObject;
  for (const [k, v] of Object.entries(wire)) checkValue(v, `Input.${k}`);
  return JSON.stringify({ RequestID: requestId, Identifier: identifier, Input: wire });
}

/** The RequestID to echo in an answer: a string as given, a number as text (then refused), else "". */
export function echoId(msg: unknown): string {
  const id = isObject(msg) ? msg.RequestID : undefined;
  return typeof id === "string" ? id : typeof id === "number" ? String(id) : "";
}

function success(id: string): string {
  return JSON.stringify({ RequestID: id, RetCode: TMODEL_OK, Message: "success" });
}

function identifier(k: string): void {
  if (!IDENTIFIER.test(k))
    throw new BadRequest(`${JSON.stringify(k)} is not an identifier ([A-Za-z_][A-Za-z0-9_]{0,31})`);
}

function time(v: Json | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new BadRequest(`${what} must be a UTC time in ms`);
  return v;
}

/** Throws BadRequest when `v` is not a thing-model value. */
function badValue(v: Json, path: string): void {
  const problem = valueProblem(v, path);
  if (problem) throw new BadRequest(problem);
}

function checkValue(v: Json, path: string): void {
  const problem = valueProblem(v, path);
  if (problem) throw new Error(problem);
}

function valueProblem(v: Json, path: string): string | undefined {
  if (v === null) return `${path} is null: not a thing-model value`;
  if (typeof v === "boolean") return `${path} is a JSON boolean: bool travels as 0/1`;
  if (typeof v === "string") {
    return Buffer.byteLength(v, "utf8") > MAX_STRING_BYTES
      ? `${path} is a string over ${MAX_STRING_BYTES} bytes`
      : undefined;
  }
  if (Array.isArray(v)) {
    if (v.length < 1 || v.length > MAX_ARRAY)
      return `${path} is an array of ${v.length} items: 1..${MAX_ARRAY} allowed`;
    for (const [i, item] of v.entries()) {
      const p = valueProblem(item, `${path}[${i}]`);
      if (p) return p;
    }
    return undefined;
  }
  if (typeof v === "object") {
    for (const [k, item] of Object.entries(v)) {
      const p = valueProblem(item, `${path}.${k}`);
      if (p) return p;
    }
  }
  return undefined;
}

/** A console value as it travels: booleans as 0/1, through arrays and objects. */
export function toWire(v: unknown): Json {
  if (typeof v === "boolean") return v ? 1 : 0;
  if (Array.isArray(v)) return v.map(toWire);
  if (typeof v === "object" && v !== null) {
    const out: JsonObject = {};
    for (const [k, item] of Object.entries(v))
      Object.defineProperty(out, k, { value: toWire(item), enumerable: true, writable: true, configurable: true });
    return out;
  }
  if (v === undefined || typeof v === "function" || typeof v === "symbol" || typeof v === "bigint") {
    throw new Error(`not a JSON value: ${String(v)}`);
  }
  return v as Json;
}
