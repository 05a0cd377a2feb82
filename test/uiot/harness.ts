// Plays the UIoT Core platform byte for byte against a real Client on a fake clock and a scripted transport.
import type { KeyValueStore } from "../../src/host";
import type { Client } from "../../src/mqtt/client";
import type { MqttError, PublishPacket } from "../../src/mqtt/codec";
import { Identity } from "../../src/uiot/identity";
import { uiotClient, type UiotClientOptions } from "../../src/uiot/profile";
import { Thing, type ThingOptions } from "../../src/uiot/thing";
import type { UiotError } from "../../src/uiot/errors";
import { FakeClock } from "../helpers/fake-clock";
import { ScriptedNetwork, type ScriptedConnection } from "../helpers/scripted-transport";

export const PSN = "prod0123456789ab";
export const DSN = "dev-001";
export const SECRET = "zlc3d21u5k8fq0d2";
export const PRODUCT_SECRET = "ps9k2m4n6b8v1c3x";
export const SYS = `/$system/${PSN}/${DSN}/`;

export const identity = () => new Identity({ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET });

export const text = (p: PublishPacket) => new TextDecoder().decode(p.payload as Uint8Array);

/** Lets promise callbacks run. */
export const settle = () => new Promise<void>((r) => setImmediate(r));

export interface Rig {
  clock: FakeClock;
  net: ScriptedNetwork;
  client: Client;
  thing: Thing;
  errors: (UiotError | MqttError)[];
  logs: string[];
  c: ScriptedConnection;
  /** PUBLISH packets the device sent from index `from`, as { topic (suffix when a system topic), json }. */
  sent(from?: number): { topic: string; json: string; id: number; qos: number }[];
  /** The last thing the device published on a system topic suffix. */
  last(suffix: string): string;
  /** The platform publishes `json` on the system topic `suffix` (QoS 1). */
  push(suffix: string, json: string, qos?: 0 | 1): void;
  /** PUBACKs everything the device published so far. */
  ackAll(): void;
  /** Number of PUBLISH packets so far. */
  count(): number;
}

/** A config store in memory that can fail or lie on writes. */
export class MemoryStore implements KeyValueStore {
  map = new Map<string, string>();
  failSet = false;
  lie = false;
  writes: string[] = [];
  get(key: string) {
    return this.map.get(key);
  }
  set(key: string, value: string) {
    this.writes.push(key);
    if (this.failSet) throw new Error(`flash full while writing ${key}=${value}`);
    if (!this.lie) this.map.set(key, value);
  }
  delete(key: string) {
    this.map.delete(key);
  }
}

let packetId = 1000;

export function rig(options: Partial<ThingOptions> = {}, clientOptions: Partial<UiotClientOptions> = {}): Rig {
  const clock = new FakeClock();
  const net = new ScriptedNetwork();
  const errors: (UiotError | MqttError)[] = [];
  const logs: string[] = [];
  const client = uiotClient(identity(), { connect: net.connect, clock, random: () => 0.5, ...clientOptions });
  const thing = new Thing(client, identity(), {
    clock,
    onError: (e) => errors.push(e),
    log: (l, m) => logs.push(`${l}: ${m}`),
    ...options,
  });
  thing.start();
  client.start();
  const c = net.last;
  c.open();
  c.connack();
  const sub = c.of(8)[0];
  if (sub) c.send({ type: 9, id: sub.id, granted: sub.subscriptions.map(() => 1) });
  let acked = 0;
  const r: Rig = {
    clock,
    net,
    client,
    thing,
    errors,
    logs,
    c,
    sent(from = 0) {
      return (r.c.of(3) as PublishPacket[]).slice(from).map((p) => ({
        topic: p.topic.startsWith(SYS) ? p.topic.slice(SYS.length) : p.topic,
        json: text(p),
        id: p.id ?? 0,
        qos: p.qos,
      }));
    },
    last(suffix) {
      const all = r.sent().filter((p) => p.topic === suffix);
      if (!all.length) throw new Error(`nothing was published to ${suffix}`);
      return all[all.length - 1].json;
    },
    push(suffix, json, qos = 1) {
      r.c.send({
        type: 3,
        topic: SYS + suffix,
        payload: json,
        qos,
        id: qos ? ++packetId : undefined,
        retain: false,
        dup: false,
      } as PublishPacket);
    },
    ackAll() {
      const all = r.c.of(3) as PublishPacket[];
      for (; acked < all.length; acked++) if (all[acked].qos === 1) r.c.send({ type: 4, id: all[acked].id as number });
    },
    count: () => r.c.of(3).length,
  };
  return r;
}
