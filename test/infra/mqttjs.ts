// MQTT.js (npm `mqtt`) as a stand-in client for the infrastructure tests only: it proves the brokers, certificates
// and proxy work with a known-good client, so the firmware's own client can later be tested against them.

import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from "mqtt";
import { withTimeout } from "../helpers/wait.ts";

export interface Connected {
  client: MqttClient;
  connack: IConnackPacket;
  /** Every message received since before CONNACK (a kept session's queue can arrive in the same read). */
  messages: Array<{ topic: string; payload: Buffer }>;
}

/** Connects once (no automatic reconnect unless options say so); rejects on a refused CONNACK or a closed socket. */
export function connect(url: string, options: IClientOptions = {}): Promise<Connected> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 10000, ...options });
  const messages: Connected["messages"] = [];
  client.on("message", (topic, payload) => messages.push({ topic, payload }));
  const attempt = new Promise<Connected>((resolve, reject) => {
    const cleanup = () => {
      client.off("connect", onConnect);
      client.off("error", onError);
      client.off("close", onClose);
    };
    const onConnect = (connack: IConnackPacket) => {
      cleanup();
      resolve({ client, connack, messages });
    };
    const onError = (error: Error) => {
      cleanup();
      client.end(true);
      reject(error);
    };
    const onClose = () => onError(new Error(`connection to ${url} closed before CONNACK`));
    client.on("connect", onConnect);
    client.on("error", onError);
    client.on("close", onClose);
  });
  return withTimeout(attempt, 15000, `connect to ${url}`).catch((error: unknown) => {
    client.end(true);
    throw error;
  });
}

/** Resolves with the first message on `topic` (exact match) that `client` receives. */
export function nextMessage(client: MqttClient, topic: string, timeoutMs = 10000): Promise<Buffer> {
  const received = new Promise<Buffer>((resolve) => {
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      client.off("message", onMessage);
      resolve(payload);
    };
    client.on("message", onMessage);
  });
  return withTimeout(received, timeoutMs, `message on ${topic}`);
}

/** Ends a client, forcibly (no DISCONNECT wait) when `force`. */
export async function end(client: MqttClient, force = false): Promise<void> {
  await client.endAsync(force);
}
