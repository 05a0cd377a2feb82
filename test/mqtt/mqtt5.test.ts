// MQTT 5.0 as a module of its own: the client's encoder, decoder and session speak 5.0 only when handed `mqtt5`
// (a 3.1.1 build such as the UIoT device image leaves it out), give the same bytes and packets as the full codec
// when they are, and a level-5 client connects to a real Mosquitto with it.
import { afterEach, describe, expect, it } from "vitest";
import { Client } from "../../src/mqtt/client";
import { Decoder as FullDecoder, encode as fullEncode, MqttError, type Packet } from "../../src/mqtt/codec";
import { Decoder } from "../../src/mqtt/decode";
import { encode } from "../../src/mqtt/encode";
import { mqtt5 } from "../../src/mqtt/mqtt5";
import type { ConnackPacket, ConnectPacket } from "../../src/mqtt/packets";
import { nodeClock } from "../../hosts/node/clock";
import { tcpConnector } from "../../hosts/node/tcp";
import { startMosquitto } from "../helpers/mosquitto";
import { thrown as thrownOf } from "../helpers/thrown";
import { waitFor } from "../helpers/wait";

const thrown = (f: () => unknown): MqttError => thrownOf(f, MqttError);

const connect: ConnectPacket = {
  type: 1,
  level: 5,
  clientId: "c5",
  clean: true,
  keepalive: 30,
  properties: { sessionExpiryInterval: 120, receiveMaximum: 8, userProperties: [["k", "v"]] },
  will: { topic: "w", payload: "gone", qos: 1, retain: false, properties: { willDelayInterval: 5 } },
};
const connack: ConnackPacket = {
  type: 2,
  sessionPresent: false,
  returnCode: 0,
  properties: { receiveMaximum: 20, serverKeepAlive: 15, reasonString: "ok" },
};

describe("the client's codec without the mqtt5 module", () => {
  it("refuses a 5.0 CONNECT, saying which module to pass, and encodes 3.1.1 as before", () => {
    const e = thrown(() => encode(connect, 5));
    expect(e.code).toBe("PROTOCOL_MISMATCH");
    expect(e.message).toMatch(/needs the mqtt5 module/);
    const v4: ConnectPacket = { type: 1, level: 4, clientId: "c4", clean: true, keepalive: 30 };
    expect(encode(v4)).toEqual(fullEncode(v4));
  });

  it("refuses a 5.0 CONNACK, and decodes a 3.1.1 one", () => {
    const d = new Decoder(() => {}, { level: 5 });
    expect(thrown(() => d.push(fullEncode(connack, 5))).code).toBe("PROTOCOL_MISMATCH");
    const got: Packet[] = [];
    new Decoder((p) => got.push(p), { level: 4 }).push(new Uint8Array([0x20, 2, 1, 0]));
    expect(got).toEqual([{ type: 2, sessionPresent: true, returnCode: 0 }]);
  });
});

describe("the client's codec with the mqtt5 module", () => {
  it("encodes CONNECT byte for byte as the full codec does", () => {
    expect(encode(connect, 5, undefined, mqtt5)).toEqual(fullEncode(connect, 5));
  });

  it("decodes CONNACK and its properties as the full codec does, and checks 5.0 reason codes", () => {
    const got: Packet[] = [];
    const want: Packet[] = [];
    const bytes = fullEncode(connack, 5);
    new Decoder((p) => got.push(p), { level: 5, mqtt5 }).push(bytes);
    new FullDecoder((p) => want.push(p), { level: 5 }).push(bytes);
    expect(got).toEqual(want);
    expect(got[0]).toMatchObject({ properties: { receiveMaximum: 20, serverKeepAlive: 15, reasonString: "ok" } });
    const bad = new Decoder(() => {}, { level: 5, mqtt5 });
    expect(thrown(() => bad.push(new Uint8Array([0x20, 3, 0, 0x8b, 0]))).code).toBe("BAD_RETURN_CODE");
  });
});

describe("a level-5 client against Mosquitto", () => {
  const clients: Client[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });

  it("connects with its CONNECT properties, reads the CONNACK's, and refuses a 5.0 PUBLISH it cannot make", async () => {
    const broker = await startMosquitto();
    const connacks: ConnackPacket[] = [];
    const client = new Client({
      clientId: "level5",
      connect: tcpConnector({ host: "127.0.0.1", port: broker.port }),
      clock: nodeClock,
      level: 5,
      mqtt5,
      keepalive: 30,
      properties: { sessionExpiryInterval: 0, receiveMaximum: 4, topicAliasMaximum: 0 },
      onConnect: (info) => void connacks.push(info.connack),
    });
    clients.push(client);
    client.start();
    await waitFor(() => connacks.length === 1, { message: "the CONNACK" });
    expect(connacks[0].returnCode).toBe(0);
    // Mosquitto 2 announces its limits in 5.0 CONNACK properties (topic aliases, receive maximum).
    expect(connacks[0].properties?.receiveMaximum).toBeGreaterThan(0);
    expect(client.state).toBe("connected");
    const e = thrown(() => client.publish("t", "x", { qos: 1 }));
    expect(e.code).toBe("NOT_ALLOWED");
    expect(e.message).toMatch(/MQTT 5\.0 PUBLISH, SUBSCRIBE and UNSUBSCRIBE are not supported yet/);
  });
});
