// The device shadow of the emulated UIoT Core, per docs/uiot-platform.md "Device shadow": pure logic, fed a
// request payload and the time, answering with the payload to send back.
//
// Decisions where the spec is silent (docs/simulator.md, "The emulated cloud"):
// - Version -1 on an update applies the update and sets the version to 0 (the spec: "the shadow version becomes 0").
// - Version is int32 and wraps as one: 2147483647 + 1 = -2147483648 (devices compare versions with int32 serial
//   arithmetic). A request with Version -1 always means "reset", even in the one state where the server is at -1.
// - `null` for a key deletes it, in update and delete alike; `"Reported": null` clears all reported (and likewise
//   Desired); `"Desired": null` in an update accepts the desired state: Desired is copied into Reported, then the
//   message's own Reported is applied, then Desired is cleared.
// - A get that cannot be served is answered on get_reply in the reply shape (`"Method":"reply"` with the RetCode).
// - A console desired update answers `control` with the whole Desired state and its Metadata.

import { checkDepth, MAX_PAYLOAD_DEPTH } from "../../src/uiot/json";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface ShadowDocument {
  State: { Reported: JsonObject; Desired: JsonObject };
  Metadata: { Reported: Record<string, { Timestamp: number }>; Desired: Record<string, { Timestamp: number }> };
  /** Unix seconds of the last change. */
  Timestamp: number;
  Version: number;
}

export const SHADOW_OK = 0;
export const SHADOW_BAD_REQUEST = 230;
export const SHADOW_SERVER_ERROR = 130;
export const SHADOW_VERSION_CONFLICT = 100026;
export const SHADOW_DISABLED = 100027;

const INT32_MAX = 2147483647;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const isInt32 = (v: unknown): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= -1 - INT32_MAX && v <= INT32_MAX;
const seconds = (ms: number) => Math.floor(ms / 1000);

export interface InitialShadow {
  reported?: JsonObject;
  desired?: JsonObject;
  version?: number;
}

export class Shadow {
  private doc: ShadowDocument;

  constructor(nowMs: number, initial: InitialShadow = {}) {
    const t = seconds(nowMs);
    this.doc = {
      State: { Reported: {}, Desired: {} },
      Metadata: { Reported: {}, Desired: {} },
      Timestamp: t,
      Version: initial.version ?? 0,
    };
    if (!isInt32(this.doc.Version)) throw new Error(`shadow version must be an int32: ${initial.version}`);
    this.merge("Reported", initial.reported ?? {}, t);
    this.merge("Desired", initial.desired ?? {}, t);
  }

  get version(): number {
    return this.doc.Version;
  }

  /** A deep copy of the document. */
  document(): ShadowDocument {
    return structuredClone(this.doc);
  }

  /** shadow/get -> the get_reply payload. */
  get(payload: string, nowMs: number): string {
    const msg = parse(payload);
    if (!isObject(msg) || msg.Method !== "get") return this.reply(SHADOW_BAD_REQUEST, nowMs);
    return JSON.stringify(this.doc);
  }

  /** shadow/upstream (update or delete) -> the shadow/downstream payload. */
  upstream(payload: string, nowMs: number): string {
    const msg = parse(payload);
    if (!isObject(msg) || (msg.Method !== "update" && msg.Method !== "delete"))
      return this.reply(SHADOW_BAD_REQUEST, nowMs);
    const state = msg.State;
    const version = "Version" in msg ? msg.Version : msg.version; // the docs write "version" for delete-all
    if (!isObject(state) || !isInt32(version)) return this.reply(SHADOW_BAD_REQUEST, nowMs);
    const { Reported: reported, Desired: desired } = state;
    if (reported === undefined && desired === undefined) return this.reply(SHADOW_BAD_REQUEST, nowMs);
    if (!(reported === undefined || reported === null || isObject(reported)))
      return this.reply(SHADOW_BAD_REQUEST, nowMs);
    if (!(desired === undefined || desired === null || isObject(desired))) return this.reply(SHADOW_BAD_REQUEST, nowMs);

    const reset = msg.Method === "update" && version === -1;
    if (!reset && version !== this.doc.Version) return this.control(SHADOW_VERSION_CONFLICT, nowMs, true);

    const t = seconds(nowMs);
    if (msg.Method === "update") {
      if (desired === null) {
        this.merge("Reported", this.doc.State.Desired, t);
        this.clear("Desired");
      } else if (desired) {
        this.merge("Desired", desired, t);
      }
      if (reported === null) this.clear("Reported");
      else if (reported) this.merge("Reported", reported, t);
    } else {
      for (const [side, keys] of [
        ["Reported", reported],
        ["Desired", desired],
      ] as const) {
        if (keys === null) this.clear(side);
        else if (keys) this.remove(side, Object.keys(keys));
      }
    }
    this.changed(t, reset ? 0 : undefined);
    return this.reply(SHADOW_OK, nowMs);
  }

  /** The console changes Desired (null deletes a key) -> the `control` payload to push on shadow/downstream. */
  setDesired(desired: JsonObject, nowMs: number): string {
    const t = seconds(nowMs);
    this.merge("Desired", desired, t);
    this.changed(t);
    return this.control(SHADOW_OK, nowMs, false);
  }

  /** The answer for a request the product cannot serve (shadow disabled): on downstream or get_reply. */
  reply(retCode: number, nowMs: number): string {
    return JSON.stringify({
      Method: "reply",
      Payload: { RetCode: retCode },
      Version: this.doc.Version,
      Timestamp: seconds(nowMs),
    });
  }

  private control(retCode: number, nowMs: number, full: boolean): string {
    const { State, Metadata } = this.doc;
    const payload = full
      ? { RetCode: retCode, State, Metadata }
      : { RetCode: retCode, State: { Desired: State.Desired }, Metadata: { Desired: Metadata.Desired } };
    return JSON.stringify({
      Method: "control",
      Payload: payload,
      Version: this.doc.Version,
      Timestamp: seconds(nowMs),
    });
  }

  private merge(side: "Reported" | "Desired", values: JsonObject, t: number): void {
    for (const [key, value] of Object.entries(values)) {
      if (value === null) {
        this.remove(side, [key]);
      } else {
        put(this.doc.State[side], key, structuredClone(value));
        put(this.doc.Metadata[side], key, { Timestamp: t });
      }
    }
  }

  private remove(side: "Reported" | "Desired", keys: string[]): void {
    for (const key of keys) {
      delete this.doc.State[side][key];
      delete this.doc.Metadata[side][key];
    }
  }

  private clear(side: "Reported" | "Desired"): void {
    this.doc.State[side] = {};
    this.doc.Metadata[side] = {};
  }

  private changed(t: number, version?: number): void {
    this.doc.Timestamp = t;
    this.doc.Version = version ?? (this.doc.Version + 1) | 0;
  }
}

/** obj[key] = value, also for a key named "__proto__" (JSON.parse makes such keys own properties). */
export function put<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * A device's JSON, or undefined when it is not JSON or nests deeper than MAX_PAYLOAD_DEPTH levels (what the firmware
 * itself accepts): the cloud answers such a payload as a bad request rather than parse it, and so never meets
 * something nested deep enough to overflow the stack of JSON.parse or structuredClone.
 */
export function parse(text: string): unknown {
  try {
    checkDepth(Buffer.from(text), "payload", MAX_PAYLOAD_DEPTH);
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
