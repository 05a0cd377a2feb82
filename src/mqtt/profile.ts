/**
 * A connection profile: the rules a platform imposes, checked locally before anything reaches the broker,
 * so a forbidden request fails at once with a clear error instead of a disconnect from the platform.
 */
export interface Profile {
  name: string;
  /** Allowed keepalive range in seconds, inclusive; connecting with another value is refused up front. */
  keepalive?: readonly [min: number, max: number];
  /** Whether a will may be set (default true). */
  will?: boolean;
  /** Whether retained publishes are allowed (default true). */
  retain?: boolean;
  /** Most subscriptions one connection may hold. */
  maxSubscriptions?: number;
  /** Most PUBLISH packets per second per connection; more wait in the outbox. */
  publishRate?: number;
  /**
   * The window, in ms, in which at most `publishRate` PUBLISH packets are sent (default 1000). A platform counts
   * arrivals, and the network's jitter can bunch messages sent a second apart into less than a second: a window
   * longer than 1000 ms leaves that much margin.
   */
  publishWindow?: number;
  /** Largest packet the platform accepts, in bytes (both ways). */
  maxPacketSize?: number;
  /** Extra topic rules: throws MqttError (NOT_ALLOWED or INVALID_TOPIC) for a topic the platform refuses. */
  checkTopic?(topic: string, subscribe: boolean): void;
  /** Said after repeated kicks, e.g. "is another device using this DeviceSN?". */
  kickHint?: string;
}

/** A generic MQTT 3.1.1 broker (Mosquitto, EMQX, aedes): no extra rules. */
export const GENERIC: Profile = Object.freeze({ name: "generic" });
