// Test helpers for the emulated cloud: a cloud per test with known products and devices, and MQTT.js (npm `mqtt`)
// as a stand-in device.

import mqtt, { type IClientOptions, type MqttClient, type Packet } from "mqtt";
import { expect } from "vitest";
import { startCloud, type Cloud, type CloudOptions } from "../../../tools/cloud";
import { onCurrentTestEnd } from "../../helpers/cleanup";
import { withTimeout } from "../../helpers/wait";

export const PSN = "abcdefghijklmnop"; // 16 characters, like the platform's
export const PSECRET = "productsecret001";
export const DSN = "thermostat-01";
export const SECRET = "devicesecret0001";
/** A product with dynamic registration off. */
export const PSN_STATIC = "staticproduct001";
/** A product with pre-authentication on: only whitelisted DeviceSNs may register. */
export const PSN_PREAUTH = "preauthproduct01";
/** 2019-07-12T04:03:32Z, the spec's first shadow timestamp. */
export const NOW = 1562904212000;

/** A cloud for one test (closed when it ends): product PSN (dynamic registration on) with device DSN/SECRET. */
export async function testCloud(options: CloudOptions = {}): Promise<Cloud> {
  const cloud = await startCloud({
    products: [
      { productSN: PSN, productSecret: PSECRET, dynamicRegistration: true },
      { productSN: PSN_STATIC, productSecret: PSECRET },
      {
        productSN: PSN_PREAUTH,
        productSecret: PSECRET,
        dynamicRegistration: true,
        preAuthentication: true,
        whitelist: ["listed-01"],
      },
    ],
    devices: [{ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET }],
    ...options,
  });
  await onCurrentTestEnd(() => cloud.close());
  return cloud;
}

export interface Login {
  productSN?: string;
  deviceSN?: string;
  /** Default SECRET (authmode 1) or PSECRET (authmode 2). */
  password?: string;
  authmode?: 1 | 2;
  /** Default `${productSN}.${deviceSN}`. */
  clientId?: string;
  username?: string;
  /** Default 300. */
  keepalive?: number;
  url?: string;
  mqtt?: IClientOptions;
}

export interface Message {
  topic: string;
  payload: string;
}

export class TestDevice {
  readonly messages: Message[] = [];
  /** Resolves when the connection closes. */
  readonly closed: Promise<void>;
  private waiters: Array<{ topic: string; resolve: (m: Message) => void }> = [];

  constructor(
    readonly client: MqttClient,
    readonly productSN: string,
    readonly deviceSN: string,
  ) {
    client.on("message", (topic, payload) => {
      const m = { topic, payload: payload.toString("utf8") };
      this.messages.push(m);
      const i = this.waiters.findIndex((w) => w.topic === topic);
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(m);
    });
    this.closed = new Promise((resolve) => client.once("close", () => resolve()));
  }

  /** `/$system/${PSN}/${DSN}/${suffix}` */
  sys(suffix: string): string {
    return `/$system/${this.productSN}/${this.deviceSN}/${suffix}`;
  }

  /** The next message on `topic` (exact), its payload as text. Register before causing it. */
  next(topic: string, timeoutMs = 10000): Promise<string> {
    const got = new Promise<Message>((resolve) => this.waiters.push({ topic, resolve }));
    return withTimeout(got, timeoutMs, `message on ${topic}`).then((m) => m.payload);
  }

  /** Subscribes (QoS 1) and returns the granted QoS per filter (128 = refused). */
  async subscribe(...filters: string[]): Promise<number[]> {
    // MQTT.js reports a refusal as an error with the *requested* QoS, so read the SUBACK itself.
    const suback = new Promise<number[]>((resolve) => {
      const onPacket = (packet: Packet) => {
        if (packet.cmd !== "suback") return;
        this.client.off("packetreceive", onPacket);
        resolve((packet.granted as number[]).slice());
      };
      this.client.on("packetreceive", onPacket);
    });
    this.client.subscribe(filters, { qos: 1 }, () => {});
    return withTimeout(suback, 10000, `SUBACK for ${filters.join(", ")}`);
  }

  /** Publishes with QoS 1 (awaits the PUBACK). */
  async publish(
    topic: string,
    payload: string | object,
    options: { qos?: 0 | 1 | 2; retain?: boolean } = {},
  ): Promise<void> {
    const text = typeof payload === "string" ? payload : JSON.stringify(payload);
    await this.client.publishAsync(topic, text, { qos: options.qos ?? 1, retain: options.retain ?? false });
  }

  /** Publishes something the cloud must refuse and resolves once it has closed the connection. */
  async publishClosed(
    topic: string,
    payload: string | object,
    options: { qos?: 0 | 1 | 2; retain?: boolean } = {},
  ): Promise<void> {
    const text = typeof payload === "string" ? payload : JSON.stringify(payload);
    this.client.publish(topic, text, { qos: options.qos ?? 1, retain: options.retain ?? false }, () => {});
    await withTimeout(this.closed, 5000, `the cloud closing the connection after a publish to ${topic}`);
  }

  /** Subscribes `replySuffix`, publishes `payload` on `suffix`, returns the reply text. */
  async request(suffix: string, payload: string | object, replySuffix: string): Promise<string> {
    if (!this.client.connected) throw new Error("not connected");
    const reply = this.next(this.sys(replySuffix));
    await this.publish(this.sys(suffix), payload);
    return reply;
  }

  async end(): Promise<void> {
    await this.client.endAsync(true);
  }
}

function clientOptions(cloud: Cloud, login: Login): { url: string; options: IClientOptions } {
  const productSN = login.productSN ?? PSN;
  const deviceSN = login.deviceSN ?? DSN;
  const authmode = login.authmode ?? 1;
  return {
    url: login.url ?? cloud.url,
    options: {
      clientId: login.clientId ?? `${productSN}.${deviceSN}`,
      username: login.username ?? `${productSN}|${deviceSN}|${authmode}`,
      password: login.password ?? (authmode === 1 ? SECRET : PSECRET),
      keepalive: login.keepalive ?? 300,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 10000,
      ...login.mqtt,
    },
  };
}

/** Logs in as a device; rejects on a refused CONNACK. Ended when the test ends. */
export async function login(cloud: Cloud, login: Login = {}): Promise<TestDevice> {
  const { url, options } = clientOptions(cloud, login);
  const client = mqtt.connect(url, options);
  await onCurrentTestEnd(() => client.endAsync(true));
  const device = new TestDevice(client, login.productSN ?? PSN, login.deviceSN ?? DSN);
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
      client.once("close", () => reject(new Error("closed before CONNACK")));
    }),
    15000,
    "CONNACK",
  );
  // MQTT.js leaves Nagle on: a request right after a PUBACK would wait ~40 ms for the delayed ACK.
  (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  return device;
}

/** The CONNACK return code of a login the cloud refuses (throws if it is accepted). */
export async function refusedWith(cloud: Cloud, l: Login = {}): Promise<number> {
  try {
    const device = await login(cloud, l);
    await device.end();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "number") return code;
    throw error;
  }
  throw new Error("the login was accepted");
}

/** Registers dynamically (authmode 2) and returns the password_reply payload. */
export async function register(cloud: Cloud, l: Login = {}): Promise<string> {
  const device = await login(cloud, { ...l, authmode: 2 });
  expect(await device.subscribe(device.sys("password_reply"))).toEqual([1]);
  const reply = await device.request("password", { RequestID: "1" }, "password_reply");
  await device.end();
  return reply;
}
