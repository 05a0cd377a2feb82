// The emulated UIoT Core's connections (tools/cloud/cloud.ts): the login at CONNECT, what the platform keeps of each
// accepted connection, what a connection may publish and subscribe (the ACL, the rate and subscription limits), and
// which connection each online device is on (one per device: a second login kicks the first).
import type { EventEmitter } from "node:events";
import type { AuthenticateError, Client, ConnectPacket, PublishPacket, Subscription } from "aedes";
import { topicDenied } from "./acl";
import type { CloudEvents, CloudLimits, OnlineDevice } from "./types";
import type { Registry } from "./registry";
import type { PacketSizeGuard } from "./wire";

/** What the platform keeps of one accepted connection (a device logged in). */
export interface Connection {
  productSN: string;
  deviceSN: string;
  authmode: 1 | 2;
  clientId: string;
  since: number;
  address: string | undefined;
  subscriptions: Set<string>;
  tokens: number;
  tokensAt: number;
  /** Why the connection ended, when the platform ended it. */
  reason?: string;
}

export function deviceKey(productSN: string, deviceSN: string): string {
  return `${productSN}/${deviceSN}`;
}

function onlineDevice(s: Connection): OnlineDevice {
  return {
    productSN: s.productSN,
    deviceSN: s.deviceSN,
    clientId: s.clientId,
    authmode: s.authmode,
    since: s.since,
    address: s.address,
  };
}

export class Connections {
  /** Set while the broker stops: a connection it closes ends with that reason. */
  stopping = false;
  private readonly connects = new WeakMap<Client, ConnectPacket>();
  private readonly connections = new WeakMap<Client, Connection>();
  private readonly connected = new Map<string, Client>();

  constructor(
    private readonly registry: Registry,
    private readonly limits: Readonly<CloudLimits>,
    private readonly now: () => number,
    private readonly events: EventEmitter<CloudEvents>,
  ) {}

  /** The connection of an accepted client. */
  of(client: Client | null | undefined): Connection | undefined {
    return client ? this.connections.get(client) : undefined;
  }

  isOnline(productSN: string, deviceSN: string): boolean {
    return this.connected.has(deviceKey(productSN, deviceSN));
  }

  /** Devices online now. */
  online(): OnlineDevice[] {
    const list: OnlineDevice[] = [];
    for (const client of this.connected.values()) {
      const s = this.connections.get(client);
      if (s) list.push(onlineDevice(s));
    }
    return list;
  }

  /** Closes a device's connection; false when it is not online. */
  kick(productSN: string, deviceSN: string): boolean {
    const client = this.connected.get(deviceKey(productSN, deviceSN));
    if (!client) return false;
    const s = this.connections.get(client);
    if (s) s.reason = "kicked from the console";
    client.close();
    return true;
  }

  /** The broker stopped: nobody is online. */
  clear(): void {
    this.connected.clear();
  }

  // ---- the broker's hooks ----

  preConnect(client: Client, packet: ConnectPacket): void {
    this.connects.set(client, packet);
  }

  /** The wire refused a packet of this client's (PacketSizeGuard): that is why it closes. */
  refused(client: Client | undefined, reason: string): void {
    const s = this.of(client);
    if (s) s.reason = `closed: ${reason}`;
  }

  authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    const packet = this.connects.get(client);
    this.connects.delete(client);
    const decision = this.registry.decide(
      {
        clientId: client.id,
        username,
        password,
        keepalive: packet?.keepalive ?? 0,
        will: packet?.will !== undefined && packet?.will !== null,
      },
      this.limits.keepalive,
    );
    if (!decision.ok) {
      this.events.emit("refused", {
        clientId: client.id,
        username,
        returnCode: decision.returnCode,
        reason: decision.reason,
      });
      done(Object.assign(new Error(decision.reason), { returnCode: decision.returnCode }) as AuthenticateError, false);
      return;
    }
    const { productSN, deviceSN, authmode } = decision;
    if (authmode === 1) this.registry.need(productSN, deviceSN).activated = true;
    const older = this.connected.get(deviceKey(productSN, deviceSN));
    const olderConnection = older && this.connections.get(older);
    if (olderConnection) olderConnection.reason = "kicked: the same device logged in on another connection";
    const conn = client.conn as Partial<PacketSizeGuard>;
    this.connections.set(client, {
      productSN,
      deviceSN,
      authmode,
      clientId: client.id,
      since: this.now(),
      address: conn.remoteAddress,
      subscriptions: new Set(),
      tokens: this.limits.publishRate,
      tokensAt: performance.now(),
    });
    done(null, true);
  }

  authorizePublish(client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void): void {
    const s = this.of(client);
    if (!s) return done(new Error("not logged in")); // a will: none is ever accepted
    const why =
      packet.qos === 2
        ? "QoS 2 is not supported"
        : packet.retain
          ? "retained messages are not supported"
          : !this.takeToken(s)
            ? `more than ${this.limits.publishRate} messages per second`
            : topicDenied(s, packet.topic, "publish", this.limits);
    if (!why) return done(null);
    s.reason = `closed: publish to ${packet.topic}: ${why}`;
    this.events.emit("denied", {
      productSN: s.productSN,
      deviceSN: s.deviceSN,
      direction: "publish",
      topic: packet.topic,
      reason: why,
      closed: true,
    });
    done(new Error(why));
  }

  authorizeSubscribe(
    client: Client,
    sub: Subscription,
    done: (error: Error | null, sub?: Subscription | null) => void,
  ): void {
    const s = this.connections.get(client);
    if (!s) return done(null, null);
    const why =
      sub.qos === 2
        ? "QoS 2 is not supported"
        : (topicDenied(s, sub.topic, "subscribe", this.limits) ??
          (!s.subscriptions.has(sub.topic) && s.subscriptions.size >= this.limits.maxSubscriptions
            ? `more than ${this.limits.maxSubscriptions} subscriptions`
            : undefined));
    if (why) {
      this.events.emit("denied", {
        productSN: s.productSN,
        deviceSN: s.deviceSN,
        direction: "subscribe",
        topic: sub.topic,
        reason: why,
        closed: false,
      });
      return done(null, null);
    }
    s.subscriptions.add(sub.topic);
    done(null, sub);
  }

  /** The publish rate: a token bucket of publishRate tokens refilled at publishRate a second. */
  private takeToken(s: Connection): boolean {
    const t = performance.now();
    const rate = this.limits.publishRate;
    s.tokens = Math.min(rate, s.tokens + ((t - s.tokensAt) * rate) / 1000);
    s.tokensAt = t;
    if (s.tokens < 1) return false;
    s.tokens -= 1;
    return true;
  }

  onClient(client: Client): void {
    const s = this.connections.get(client);
    if (!s) return;
    this.connected.set(deviceKey(s.productSN, s.deviceSN), client);
    this.events.emit("online", onlineDevice(s));
  }

  onClientGone(client: Client): void {
    const s = this.connections.get(client);
    if (!s) return;
    const key = deviceKey(s.productSN, s.deviceSN);
    if (this.connected.get(key) === client) this.connected.delete(key);
    const disconnected = (client as unknown as { _disconnected?: boolean })._disconnected; // aedes: a DISCONNECT came
    const reason =
      s.reason ?? (this.stopping ? "the cloud stopped" : disconnected ? "DISCONNECT" : "connection closed");
    this.events.emit("offline", {
      productSN: s.productSN,
      deviceSN: s.deviceSN,
      clientId: s.clientId,
      authmode: s.authmode,
      reason,
    });
  }

  onClientError(client: Client, error: Error): void {
    const s = this.connections.get(client);
    if (s) s.reason ??= error.message;
  }

  onUnsubscribe(topics: string[], client: Client): void {
    const s = this.connections.get(client);
    for (const t of topics) s?.subscriptions.delete(t);
  }
}
