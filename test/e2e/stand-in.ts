// A stand-in for UIoT Core's services on a plain broker: a backend connected with MQTT.js (not our client) as a
// privileged user, answering the devices' system topics with the spec's JSON (docs/uiot-platform.md), written
// from the spec alone, independently of the emulated cloud (tools/cloud), so the device layer is shown to
// depend on the documented payloads and nothing else. Mosquitto supplies the login (password file) and the topic
// isolation (ACL); this supplies the shadow, the thing-model replies, and the console's pushes.
import mqtt, { type MqttClient } from "mqtt";
import { withTimeout } from "../helpers/wait";

type Obj = { [key: string]: unknown };

interface ShadowState {
  reported: Obj;
  desired: Obj;
  version: number;
}

export interface StandInReply {
  RequestID: string;
  RetCode: number;
  [field: string]: unknown;
}

/** The backend's subscriptions: every device's requests and answers. */
const REQUESTS = [
  "shadow/get",
  "shadow/upstream",
  "tmodel/property/post",
  "tmodel/event/post",
  "tmodel/property/set_reply",
  "tmodel/command_reply/+",
];

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

export class StandInPlatform {
  /** Every message the backend got from a device, in order. */
  readonly received: { topic: string; payload: string }[] = [];
  /** Last reported properties per `${PSN}/${DSN}`. */
  readonly properties = new Map<string, Obj>();
  private readonly shadows = new Map<string, ShadowState>();
  private readonly waiting = new Map<string, (reply: StandInReply) => void>();
  private seq = 0;

  private constructor(
    readonly client: MqttClient,
    private readonly now: () => number,
  ) {
    client.on("message", (topic, payload) => this.handle(topic, payload.toString("utf8")));
  }

  /** Connects as `username` (which must be allowed every device's system topics) and subscribes. */
  static async start(
    url: string,
    username: string,
    password: string,
    now: () => number = Date.now,
  ): Promise<StandInPlatform> {
    const client = mqtt.connect(url, {
      clientId: `backend-${process.pid}`,
      username,
      password,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 10000,
    });
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        client.once("connect", () => resolve());
        client.once("error", reject);
      }),
      15000,
      "the backend's CONNACK",
    );
    const granted = await client.subscribeAsync(REQUESTS.map((s) => `/$system/+/+/${s}`).concat("/+/+/upload"), {
      qos: 1,
    });
    if (granted.some((g) => g.qos !== 1))
      throw new Error(`the backend's subscriptions were refused: ${JSON.stringify(granted)}`);
    return new StandInPlatform(client, now);
  }

  /** The shadow of a device (a copy); a device starts at version 0 unless `setShadow` said otherwise. */
  shadow(psn: string, dsn: string): ShadowState {
    return structuredClone(this.state(psn, dsn));
  }

  setShadow(psn: string, dsn: string, state: Partial<ShadowState>): void {
    Object.assign(this.state(psn, dsn), structuredClone(state));
  }

  /** The console changes desired values: version + 1 and a `control` push with the whole desired state. */
  pushDesired(psn: string, dsn: string, desired: Obj): void {
    const s = this.state(psn, dsn);
    merge(s.desired, desired);
    s.version = (s.version + 1) | 0;
    const t = this.seconds();
    const meta: Obj = {};
    for (const k of Object.keys(s.desired)) meta[k] = { Timestamp: t };
    this.send(psn, dsn, "shadow/downstream", {
      Method: "control",
      Payload: { RetCode: 0, State: { Desired: s.desired }, Metadata: { Desired: meta } },
      Version: s.version,
      Timestamp: t,
    });
  }

  /** A property set (plain values); resolves with the device's set_reply, or undefined after 5 s. */
  setProperties(psn: string, dsn: string, property: Obj): Promise<StandInReply | undefined> {
    const id = this.requestId();
    return this.await(id, () => this.send(psn, dsn, "tmodel/property/set", { RequestID: id, Property: property }));
  }

  /** A command; resolves with the device's reply, or the platform's 100040 after 5 s. */
  async sendCommand(psn: string, dsn: string, identifier: string, input: Obj): Promise<StandInReply> {
    const id = this.requestId();
    const reply = await this.await(id, () =>
      this.send(psn, dsn, "tmodel/command", { RequestID: id, Identifier: identifier, Input: input }),
    );
    return reply ?? { RequestID: id, Identifier: identifier, RetCode: 100040, Message: "Command timeout" };
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }

  // ---- the services ----

  private handle(topic: string, text: string): void {
    this.received.push({ topic, payload: text });
    const parts = topic.split("/"); // "", "$system", PSN, DSN, ...suffix
    if (parts[1] !== "$system") return; // a custom topic (upload): only recorded
    const [psn, dsn] = [parts[2], parts[3]];
    const suffix = parts.slice(4).join("/");
    let msg: Obj;
    try {
      const v: unknown = JSON.parse(text);
      if (!isObj(v)) throw new Error("not an object");
      msg = v;
    } catch {
      return;
    }
    const key = `${psn}/${dsn}`;
    switch (suffix) {
      case "shadow/get":
        return this.send(psn, dsn, "shadow/get_reply", this.document(psn, dsn));
      case "shadow/upstream":
        return this.send(psn, dsn, "shadow/downstream", this.upstream(psn, dsn, msg));
      case "tmodel/property/post": {
        const props = this.properties.get(key) ?? {};
        if (isObj(msg.Property)) for (const [k, v] of Object.entries(msg.Property)) props[k] = isObj(v) ? v.Value : v;
        this.properties.set(key, props);
        return this.send(psn, dsn, "tmodel/property/post_reply", {
          RequestID: msg.RequestID,
          RetCode: 0,
          Message: "success",
        });
      }
      case "tmodel/event/post":
        return this.send(psn, dsn, "tmodel/event/post_reply", {
          RequestID: msg.RequestID,
          RetCode: 0,
          Message: "success",
        });
      case "tmodel/property/set_reply":
        return this.settle(msg);
    }
    if (suffix.startsWith("tmodel/command_reply/"))
      this.settle({ ...msg, RequestID: suffix.slice("tmodel/command_reply/".length) });
  }

  private upstream(psn: string, dsn: string, msg: Obj): Obj {
    const s = this.state(psn, dsn);
    const t = this.seconds();
    const state = msg.State;
    if ((msg.Method !== "update" && msg.Method !== "delete") || !isObj(state) || typeof msg.Version !== "number") {
      return { Method: "reply", Payload: { RetCode: 230 }, Version: s.version, Timestamp: t };
    }
    const reset = msg.Method === "update" && msg.Version === -1;
    if (!reset && msg.Version !== s.version) {
      return {
        Method: "control",
        Payload: {
          RetCode: 100026,
          State: { Reported: s.reported, Desired: s.desired },
          Metadata: { Reported: {}, Desired: {} },
        },
        Version: s.version,
        Timestamp: t,
      };
    }
    if (msg.Method === "update") {
      if (state.Desired === null) {
        merge(s.reported, s.desired);
        s.desired = {};
      } else if (isObj(state.Desired)) merge(s.desired, state.Desired);
      if (state.Reported === null) s.reported = {};
      else if (isObj(state.Reported)) merge(s.reported, state.Reported);
    } else if (state.Reported === null) s.reported = {};
    else if (isObj(state.Reported)) for (const k of Object.keys(state.Reported)) delete s.reported[k];
    s.version = reset ? 0 : (s.version + 1) | 0;
    return { Method: "reply", Payload: { RetCode: 0 }, Version: s.version, Timestamp: t };
  }

  private document(psn: string, dsn: string): Obj {
    const s = this.state(psn, dsn);
    return {
      State: { Reported: s.reported, Desired: s.desired },
      Metadata: { Reported: {}, Desired: {} },
      Timestamp: this.seconds(),
      Version: s.version,
    };
  }

  private settle(msg: Obj): void {
    const id = typeof msg.RequestID === "string" ? msg.RequestID : "";
    const resolve = this.waiting.get(id);
    if (!resolve) return;
    this.waiting.delete(id);
    resolve(msg as StandInReply);
  }

  private await(id: string, send: () => void): Promise<StandInReply | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(undefined);
      }, 5000);
      this.waiting.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      send();
    });
  }

  private state(psn: string, dsn: string): ShadowState {
    const key = `${psn}/${dsn}`;
    let s = this.shadows.get(key);
    if (!s) this.shadows.set(key, (s = { reported: {}, desired: {}, version: 0 }));
    return s;
  }

  private send(psn: string, dsn: string, suffix: string, body: Obj): void {
    this.client.publish(`/$system/${psn}/${dsn}/${suffix}`, JSON.stringify(body), { qos: 1 });
  }

  private requestId(): string {
    return `${Date.now()}${++this.seq}`;
  }

  private seconds(): number {
    return Math.floor(this.now() / 1000);
  }
}

function merge(into: Obj, values: Obj): void {
  for (const [k, v] of Object.entries(values)) {
    if (v === null) delete into[k];
    else into[k] = v;
  }
}
