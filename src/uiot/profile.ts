/**
 * The UIoT Core connection profile and the client factory: the platform's documented limits, checked locally
 * before anything is sent, and a client connected with the device's identity.
 */
import { Client, type ClientOptions } from "../mqtt/client";
import { MqttError } from "../mqtt/errors";
import type { Profile } from "../mqtt/profile";
import type { Identity } from "./identity";
import {
  UIOT_DEFAULT_KEEPALIVE,
  UIOT_KEEPALIVE,
  UIOT_MAX_PACKET_SIZE,
  UIOT_MAX_SUBSCRIPTIONS,
  UIOT_PUBLISH_RATE,
  UIOT_PUBLISH_WINDOW,
} from "./platform";
import { TopicGuard } from "./topics";

/**
 * The rules of UIoT Core for the device `productSN`/`deviceSN`: keepalive 30..1200 s, no will, no retain
 * (and, as everywhere in this client, no QoS 2), at most 100 subscriptions, 30 messages/s (paced as 30 per 1.25 s,
 * a margin for the network's jitter), 256 KB packets, and
 * only the device's own topics (see TopicGuard).
 */
export function uiotProfile(productSN: string, deviceSN: string): Profile {
  return new UiotProfile(productSN, deviceSN);
}

/**
 * The profile as a TopicGuard whose constant rules are data properties of the prototype (see below): an instance
 * holds only the device's three topic prefixes (a profile is made per client, and an object literal with a
 * closure costs about 30 heap slots on XS).
 */
class UiotProfile extends TopicGuard implements Profile {
  declare readonly name: string;
  declare readonly keepalive: readonly [number, number];
  declare readonly will: boolean;
  declare readonly retain: boolean;
  declare readonly maxSubscriptions: number;
  declare readonly publishRate: number;
  declare readonly publishWindow: number;
  declare readonly maxPacketSize: number;
  declare readonly kickHint: string;
  checkTopic(topic: string, subscribe: boolean): void {
    this.check(topic, subscribe);
  }
}
Object.assign(UiotProfile.prototype, {
  name: "UIoT Core",
  keepalive: UIOT_KEEPALIVE,
  will: false,
  retain: false,
  maxSubscriptions: UIOT_MAX_SUBSCRIPTIONS,
  publishRate: UIOT_PUBLISH_RATE,
  // 30 in any 1.25 s, not 1 s: the platform counts arrivals, and the network's jitter (up to a quarter second)
  // must not bunch two seconds' worth into one and get the connection closed.
  publishWindow: UIOT_PUBLISH_WINDOW,
  maxPacketSize: UIOT_MAX_PACKET_SIZE,
  kickHint: "is another device using this DeviceSN?",
});

/** Client options without what the identity and the profile decide. */
export interface UiotClientOptions
  extends Omit<ClientOptions, "clientId" | "username" | "password" | "profile" | "will" | "level" | "properties"> {
  /** 4 = MQTT 3.1.1 (default, what the official SDK sends) or 3 = MQTT 3.1. The platform has no 5.0. */
  level?: 3 | 4;
}

/**
 * A client for `identity` on UIoT Core: ClientID, UserName and password from the identity, the UIoT profile,
 * keepalive 300 s unless given (a keepalive outside 30..1200 s throws NOT_ALLOWED here, before connecting).
 * The password sits in the options as a non-enumerable getter, so neither logging nor inspecting them (with
 * showHidden too: a getter shows as [Getter]) nor JSON shows it.
 */
export function uiotClient(identity: Identity, options: UiotClientOptions): Client {
  const o = {} as ClientOptions;
  const keys = Object.keys(options) as (keyof UiotClientOptions)[];
  for (let i = 0; i < keys.length; i++) (o as unknown as Record<string, unknown>)[keys[i]] = options[keys[i]];
  const level = options.level ?? 4;
  if (level !== 3 && level !== 4)
    throw new MqttError(
      "NOT_ALLOWED",
      `UIoT Core speaks MQTT 3.1.1 (level 4) or 3.1 (level 3), not level ${String(level)}`,
    );
  o.level = level;
  o.keepalive = options.keepalive ?? UIOT_DEFAULT_KEEPALIVE;
  o.clientId = identity.clientId;
  o.username = identity.username;
  o.profile = uiotProfile(identity.productSN, identity.deviceSN);
  Object.defineProperty(o, "password", { get: () => identity.revealSecret(), enumerable: false });
  return new Client(o);
}
