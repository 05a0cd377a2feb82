// The emulated UIoT Core: an aedes broker on loopback with the platform's rules (docs/uiot-platform.md) and
// its shadow, thing-model and dynamic-registration services, plus a small console API that the simulator and the
// tests drive. docs/simulator.md, "The emulated cloud", lists what it enforces and every decision the spec left open.
//
//   const cloud = await startCloud({ products: [{ productSN, productSecret }], devices: [{ productSN, deviceSN, deviceSecret }] });
//   cloud.url                                        // mqtt://127.0.0.1:PORT
//   cloud.on("message", (m) => console.log(m.direction, m.topic, m.payload));
//   await cloud.sendCommand(productSN, deviceSN, "reboot", { delay: 1 });
//   await cloud.close();

import { EventEmitter } from "node:events";
import net from "node:net";
import tls from "node:tls";
import { Aedes, type Client } from "aedes";
import { Connections } from "./connections";
import { MessageLog } from "./message-log";
import { Registry, type Device, type DeviceOptions, type ProductOptions } from "./registry";
import { Requests } from "./requests";
import { serveDevicePublish, type ServiceContext } from "./services";
import { isObject, type Json, type ShadowDocument } from "./shadow";
import {
  COMMAND_TIMEOUT,
  commandPayload,
  propertySetPayload,
  type DesiredValue,
  type PropertyValue,
  type ThingEvent,
} from "./thing-model";
import { PacketSizeGuard } from "./wire";
import {
  UIOT_LIMITS,
  type CloudLimits,
  type CloudTls,
  type CloudOptions,
  type DeviceInfo,
  type OnlineDevice,
  type LogEntry,
  type Reply,
  type CloudEvents,
} from "./types";
import { CloudOta } from "./ota";

export { maskSecrets } from "./message-log";

/** Starts an emulated UIoT Core; see CloudOptions. */
export async function startCloud(options: CloudOptions = {}): Promise<Cloud> {
  const cloud = new Cloud(options);
  await cloud.start();
  return cloud;
}

/**
 * The emulated platform: where it listens and its lifecycle, and the console API. Its jobs are its parts': the
 * login, the ACL and who is online (Connections), the services behind the system topics (services.ts), the
 * console's requests waiting for replies (Requests), the message log (MessageLog), firmware updates (CloudOta).
 */
export class Cloud extends EventEmitter<CloudEvents> {
  readonly host: string;
  /** Firmware updates: releases, the HTTPS file server with signed URLs, update_firmware, what devices reported. */
  readonly ota: CloudOta;
  readonly limits: Readonly<CloudLimits>;
  private readonly now: () => number;
  private readonly registry: Registry;
  private readonly connections: Connections;
  private readonly requests: Requests;
  private readonly messages: MessageLog;
  private readonly services: ServiceContext;
  private readonly tlsOptions: CloudTls | undefined;
  private plainPort: number;
  private securePort: number;
  private broker: Aedes | undefined;
  private servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private closed = false;

  constructor(options: CloudOptions = {}) {
    super();
    this.host = options.host ?? "127.0.0.1";
    this.plainPort = options.port ?? 0;
    this.tlsOptions = options.tls;
    this.securePort = options.tls?.port ?? 0;
    this.limits = Object.freeze({ ...UIOT_LIMITS, ...options.limits });
    this.now = options.now ?? Date.now;
    this.registry = new Registry(this.now);
    for (const p of options.products ?? []) this.registry.addProduct(p);
    for (const d of options.devices ?? []) this.registry.addDevice(d);
    this.connections = new Connections(this.registry, this.limits, this.now, this);
    this.requests = new Requests(this.limits.commandTimeoutMs, (device, suffix, payload) =>
      this.send(device, suffix, payload),
    );
    this.messages = new MessageLog(options.logSize ?? 1000, this.now, (entry) => this.emit("message", entry));
    this.ota = this.otaService(options.tls);
    this.services = {
      registry: this.registry,
      ota: this.ota,
      requests: this.requests,
      now: this.now,
      send: (device, suffix, payload) => this.send(device, suffix, payload),
      deliver: (topic, payload, productSN, deviceSN) => this.deliver(topic, payload, productSN, deviceSN),
      registered: (productSN, deviceSN) => this.emit("registered", { productSN, deviceSN }),
    };
  }

  /** Firmware updates, wired to this cloud's devices and events. */
  private otaService(tlsOptions: CloudTls | undefined): CloudOta {
    return new CloudOta(
      {
        now: this.now,
        send: (productSN, deviceSN, suffix, payload) =>
          this.deliver(`/$system/${productSN}/${deviceSN}/${suffix}`, payload, productSN, deviceSN),
        emit: (event) => this.emit("ota", event),
        online: (productSN, deviceSN) => this.connections.isOnline(productSN, deviceSN),
      },
      tlsOptions ? { cert: tlsOptions.cert, key: tlsOptions.key } : undefined,
    );
  }

  // ---- where it listens -------------------------------------------------------------------------------------------

  get port(): number {
    return this.plainPort;
  }

  /** mqtt://HOST:PORT */
  get url(): string {
    return `mqtt://${this.host}:${this.plainPort}`;
  }

  /** The TLS port, when started with `tls`. */
  get tlsPort(): number | undefined {
    return this.tlsOptions ? this.securePort : undefined;
  }

  /** mqtts://HOST:PORT, when started with `tls`. */
  get tlsUrl(): string | undefined {
    return this.tlsOptions ? `mqtts://${this.host}:${this.securePort}` : undefined;
  }

  get running(): boolean {
    return this.broker !== undefined;
  }

  // ---- products and devices ---------------------------------------------------------------------------------------

  addProduct(options: ProductOptions): void {
    this.registry.addProduct(options);
  }

  addDevice(options: DeviceOptions): void {
    this.registry.addDevice(options);
  }

  /** What the console shows about a device, or undefined for an unknown one. */
  device(productSN: string, deviceSN: string): DeviceInfo | undefined {
    const d = this.registry.device(productSN, deviceSN);
    if (!d) return undefined;
    return {
      productSN,
      deviceSN,
      deviceSecret: d.deviceSecret,
      registered: d.deviceSecret !== undefined,
      activated: d.activated,
      online: this.connections.isOnline(productSN, deviceSN),
    };
  }

  /** Devices online now. */
  online(): OnlineDevice[] {
    return this.connections.online();
  }

  /** Closes a device's connection; false when it is not online. */
  kick(productSN: string, deviceSN: string): boolean {
    return this.connections.kick(productSN, deviceSN);
  }

  // ---- shadow -----------------------------------------------------------------------------------------------------

  /** The device's shadow document (a copy). */
  shadow(productSN: string, deviceSN: string): ShadowDocument {
    return this.registry.need(productSN, deviceSN).shadow.document();
  }

  /** The console changes the shadow's Desired state (null deletes a key) and pushes `control` to the device. */
  setShadowDesired(productSN: string, deviceSN: string, desired: Record<string, unknown>): ShadowDocument {
    const device = this.registry.need(productSN, deviceSN);
    if (!this.registry.product(productSN)?.shadow)
      throw new Error(`the shadow service is off for product ${productSN}`);
    const values = JSON.parse(JSON.stringify(desired)) as Json;
    if (!isObject(values)) throw new Error("desired must be an object");
    this.send(device, "shadow/downstream", device.shadow.setDesired(values, this.now()));
    return device.shadow.document();
  }

  // ---- thing model ------------------------------------------------------------------------------------------------

  /** The properties the device reported (a copy). */
  properties(productSN: string, deviceSN: string): Record<string, PropertyValue> {
    return this.registry.need(productSN, deviceSN).thing.properties();
  }

  /** The thing model's desired properties with their versions (a copy). */
  desired(productSN: string, deviceSN: string): Record<string, DesiredValue> {
    return this.registry.need(productSN, deviceSN).thing.desired();
  }

  /** Sets desired property values (null deletes one); the device fetches them with desired/get. */
  setDesired(productSN: string, deviceSN: string, values: Record<string, unknown>): Record<string, DesiredValue> {
    return this.registry.need(productSN, deviceSN).thing.setDesired(values);
  }

  /** The events the device posted, oldest first (the last 100). */
  thingEvents(productSN: string, deviceSN: string): ThingEvent[] {
    return this.registry.need(productSN, deviceSN).thing.events();
  }

  /**
   * Pushes a property set (plain values, booleans as 0/1) and resolves with the device's set_reply, or undefined
   * when none came within commandTimeoutMs. Rejects at once when the device is offline.
   */
  async setProperties(
    productSN: string,
    deviceSN: string,
    values: Record<string, unknown>,
  ): Promise<Reply | undefined> {
    const device = this.onlineDevice(productSN, deviceSN);
    const id = this.requests.nextId();
    const payload = propertySetPayload(id, values);
    return this.requests.request(device, "set", id, "tmodel/property/set", payload);
  }

  /**
   * Sends a command and resolves with the device's reply from tmodel/command_reply/${RequestID}, or, when none came
   * within commandTimeoutMs (5 s), with `{"RequestID","Identifier","RetCode":100040,"Message":"Command timeout"}`.
   * Rejects at once when the device is offline.
   */
  async sendCommand(
    productSN: string,
    deviceSN: string,
    identifier: string,
    input: Record<string, unknown> = {},
  ): Promise<Reply> {
    const device = this.onlineDevice(productSN, deviceSN);
    const id = this.requests.nextId();
    const payload = commandPayload(id, identifier, input);
    const reply = (await this.requests.request(device, "command", id, "tmodel/command", payload)) ?? {
      RequestID: id,
      Identifier: identifier,
      RetCode: COMMAND_TIMEOUT,
      Message: "Command timeout",
    };
    this.emit("command", { productSN, deviceSN, RequestID: id, Identifier: identifier, reply });
    return reply;
  }

  /** Publishes on a custom topic `/${PSN}/${DSN}/...` or a broadcast topic `/${PSN}/$broadcast/...` (QoS 1). */
  publish(topic: string, payload: string): void {
    if (topic.startsWith("/$system/")) throw new Error("system topics are the platform's: use the console API");
    const [, productSN, deviceSN] = topic.split("/");
    const broadcast = deviceSN === "$broadcast";
    if (!this.registry.product(productSN) || !(broadcast || this.registry.device(productSN, deviceSN))) {
      throw new Error(`not a topic of a known product or device: ${topic}`);
    }
    this.deliver(topic, payload, productSN, broadcast ? undefined : deviceSN);
  }

  // ---- message log ------------------------------------------------------------------------------------------------

  /** The last `logSize` messages, both directions, oldest first, secrets masked. */
  log(): LogEntry[] {
    return this.messages.list();
  }

  // ---- lifecycle ----------------------------------------------------------------------------------------------------

  /** Starts listening (again, after stop(): on the same ports, with products, devices and shadows kept). */
  async start(): Promise<void> {
    if (this.closed) throw new Error("the cloud is closed");
    if (this.broker) return;
    const broker = await Aedes.createBroker({
      maxClientsIdLength: 256, // MQTT 3.1's 23 would refuse every PSN.DSN
      connectTimeout: 10000,
      preConnect: (client, packet, done) => {
        this.connections.preConnect(client, packet);
        done(null, true);
      },
      authenticate: (client, username, password, done) =>
        this.connections.authenticate(client, username, password, done),
      authorizePublish: (client, packet, done) => this.connections.authorizePublish(client, packet, done),
      authorizeSubscribe: (client, sub, done) => this.connections.authorizeSubscribe(client, sub, done),
    });
    broker.on("client", (client) => this.connections.onClient(client));
    broker.on("clientDisconnect", (client) => this.connections.onClientGone(client));
    broker.on("clientError", (client, error) => this.connections.onClientError(client, error));
    broker.on("unsubscribe", (topics, client) => this.connections.onUnsubscribe(topics, client));
    broker.on("publish", (packet, client) => {
      const s = this.connections.of(client);
      if (s)
        this.onDevicePublish(
          s.productSN,
          s.deviceSN,
          packet.topic,
          packet.payload.toString("utf8"),
          packet.qos === 0 ? 0 : 1,
        );
    });
    (broker as EventEmitter).on("error", () => {}); // aedes' persistence errors: nothing the emulator can do
    this.broker = broker;
    this.connections.stopping = false;
    try {
      const plain = net.createServer((socket) => this.accept(broker, socket));
      this.plainPort = await this.listen(plain, this.plainPort);
      if (this.tlsOptions) {
        const { cert, key, ca, requestCert = false } = this.tlsOptions;
        const secure = tls.createServer({ cert, key, ca, requestCert, rejectUnauthorized: requestCert }, (socket) =>
          this.accept(broker, socket),
        );
        this.securePort = await this.listen(secure, this.securePort);
      }
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  /** Stops the broker: every connection closes, nothing listens; state is kept for start(). Idempotent. */
  async stop(): Promise<void> {
    const broker = this.broker;
    if (!broker) return;
    this.connections.stopping = true;
    const servers = this.servers;
    this.servers = [];
    const serversClosed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await serversClosed;
    this.broker = undefined;
    this.connections.clear();
  }

  /** stop(), and waiting commands resolve as timed out. The cloud cannot start again. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.ota.close();
    await this.stop();
    this.requests.close();
  }

  // ---- the broker's hooks ---------------------------------------------------------------------------------------------

  private accept(broker: Aedes, socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    const conn: PacketSizeGuard = new PacketSizeGuard(socket, this.limits.maxPacketSize, (reason) => {
      this.connections.refused((conn as unknown as { client?: Client }).client, reason); // aedes sets conn.client
    });
    broker.handle(conn);
  }

  private onDevicePublish(productSN: string, deviceSN: string, topic: string, payload: string, qos: 0 | 1): void {
    this.messages.record("in", topic, payload, qos, productSN, deviceSN);
    serveDevicePublish(this.services, productSN, deviceSN, topic, payload);
  }

  // ---- the platform's messages to devices ---------------------------------------------------------------------------

  private onlineDevice(productSN: string, deviceSN: string): Device {
    const device = this.registry.need(productSN, deviceSN);
    if (!this.connections.isOnline(productSN, deviceSN)) throw new Error(`device ${productSN}/${deviceSN} is offline`);
    return device;
  }

  private send(device: Device, suffix: string, payload: string): void {
    this.deliver(
      `/$system/${device.productSN}/${device.deviceSN}/${suffix}`,
      payload,
      device.productSN,
      device.deviceSN,
    );
  }

  private deliver(topic: string, payload: string, productSN: string, deviceSN: string | undefined): void {
    const bytes = Buffer.from(payload, "utf8");
    if (bytes.length + Buffer.byteLength(topic) + 16 > this.limits.maxPacketSize) {
      throw new Error(
        `a message over ${this.limits.maxPacketSize} bytes would be refused by the device's platform limit`,
      );
    }
    this.messages.record("out", topic, payload, 1, productSN, deviceSN);
    this.broker?.publish({ cmd: "publish", topic, payload: bytes, qos: 1, retain: false, dup: false }, () => {});
  }

  private async listen(server: net.Server, port: number): Promise<number> {
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen(port, this.host, () => {
            server.off("error", reject);
            resolve();
          });
        });
        this.servers.push(server);
        return (server.address() as net.AddressInfo).port;
      } catch (error) {
        // a restart on the same port: wait for whoever holds it
        if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || port === 0 || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }
}
