// The Node host's connector against real servers on loopback: Mosquitto with plain, TLS, mutual-TLS, WebSocket and
// secure WebSocket listeners (the tests' own CA), an HTTP server, a name that does not resolve, a closed port.
// Every refusal is a distinct NetError code with a message a person can act on, and leaves no connection open.
import http from "node:http";
import type net from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { nodeClock } from "../../../hosts/node/clock";
import { nodeConnector } from "../../../hosts/node/connect";
import { Client } from "../../../src/mqtt/client";
import type { MqttError } from "../../../src/mqtt/codec";
import type { TlsOptions } from "../../../src/host";
import { parseEndpoint } from "../../../src/net/endpoint";
import { NetError } from "../../../src/net/errors";
import { getTestCerts, type TestCerts } from "../../helpers/certs";
import { startMosquitto, type MosquittoBroker } from "../../helpers/mosquitto";
import { getFreePort } from "../../helpers/ports";
import { openConnections } from "../../helpers/sockets";
import { waitFor } from "../../helpers/wait";

let certs: TestCerts;
let broker: MosquittoBroker;
let wrongHost: MosquittoBroker;
let expired: MosquittoBroker;
let web: http.Server;
let webPort: number;
/** The ports of `broker`'s listeners: mqtt, mqtts, mqtts with client certificates, ws, wss. */
let port: { mqtt: number; mqtts: number; mutual: number; ws: number; wss: number };

beforeAll(async () => {
  certs = await getTestCerts();
  const files = (pair: { certFile: string; keyFile: string }) => ({
    cafile: certs.ca.certFile,
    certfile: pair.certFile,
    keyfile: pair.keyFile,
  });
  [broker, wrongHost, expired] = await Promise.all([
    startMosquitto({
      stopAfterTest: false,
      listeners: [
        { protocol: "mqtt" },
        { protocol: "mqtts" },
        { protocol: "mqtts", requireCertificate: true },
        { protocol: "ws" },
        { protocol: "wss" },
      ],
    }),
    startMosquitto({ stopAfterTest: false, listeners: [{ protocol: "mqtts", tls: files(certs.wrongHost) }] }),
    startMosquitto({ stopAfterTest: false, listeners: [{ protocol: "mqtts", tls: files(certs.expired) }] }),
  ]);
  const l = broker.listeners;
  port = { mqtt: l[0].port, mqtts: l[1].port, mutual: l[2].port, ws: l[3].port, wss: l[4].port };
  web = http.createServer((_req, res) => res.end("<html>a web page</html>"));
  await new Promise<void>((resolve) => web.listen(0, "127.0.0.1", resolve));
  webPort = (web.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await Promise.all([broker?.close(), wrongHost?.close(), expired?.close()]);
  web?.closeAllConnections();
  await new Promise((resolve) => web?.close(resolve));
});

const clients: Client[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

interface Probe {
  client: Client;
  connects: number;
  downs: MqttError[];
  received: string[];
  logs: string[];
}

function probe(url: string, tls?: TlsOptions): Probe {
  const p: Probe = { client: undefined as unknown as Client, connects: 0, downs: [], received: [], logs: [] };
  const connect = nodeConnector(parseEndpoint(url), tls, (level, message) => p.logs.push(`${level}: ${message}`));
  p.client = new Client({
    clientId: `net-${Math.random().toString(36).slice(2, 10)}`,
    connect,
    clock: nodeClock,
    keepalive: 30,
    connectTimeout: 5000,
    backoff: { min: 50, max: 200 },
    outbox: { maxBytes: 1 << 20 },
    onConnect: () => p.connects++,
    onDisconnect: (e) => p.downs.push(e),
    onMessage: (topic, payload) => void p.received.push(`${topic}=${Buffer.from(payload).toString()}`),
  });
  clients.push(p.client);
  return p;
}

describe("a QoS 1 round trip over every kind of listener", () => {
  const cases: [string, () => string, () => TlsOptions | undefined][] = [
    ["mqtt:// (plain TCP)", () => `mqtt://127.0.0.1:${port.mqtt}`, () => undefined],
    [
      "mqtts:// (TLS, verified by name with the test CA)",
      () => `mqtts://localhost:${port.mqtts}`,
      () => ({ ca: [certs.ca.cert] }),
    ],
    [
      "mqtts:// (mutual TLS, CA as DER, client certificate and key)",
      () => `mqtts://localhost:${port.mutual}`,
      () => ({ ca: [certs.ca.der], cert: certs.client.cert, key: certs.client.key }),
    ],
    ["ws:// (WebSocket)", () => `ws://127.0.0.1:${port.ws}/mqtt`, () => undefined],
    [
      "wss:// (WebSocket over TLS, verified by IP)",
      () => `wss://127.0.0.1:${port.wss}/mqtt`,
      () => ({ ca: [certs.ca.cert] }),
    ],
  ];
  for (const [name, url, tls] of cases) {
    it(name, async () => {
      const p = probe(url(), tls());
      p.client.start();
      await new Promise<void>((resolve, reject) => p.client.subscribe("rt/x", 1, (e) => (e ? reject(e) : resolve())));
      const big = "x".repeat(70000); // crosses the WebSocket 64-bit length and many TCP segments
      await new Promise<void>((resolve, reject) =>
        p.client.publish("rt/x", "hello", { qos: 1 }, (e) => (e ? reject(e) : resolve())),
      );
      await new Promise<void>((resolve, reject) =>
        p.client.publish("rt/x", big, { qos: 1 }, (e) => (e ? reject(e) : resolve())),
      );
      await waitFor(() => p.received.length === 2);
      expect(p.received).toEqual(["rt/x=hello", `rt/x=${big}`]);
      expect(p.downs).toEqual([]);
      expect(p.connects).toBe(1);
      expect(p.logs).toEqual([]);
      // The socket counter sees this connection (both ends), so its zero after a refusal means something.
      expect(openConnections(parseEndpoint(url()).port)).toBeGreaterThanOrEqual(2);
    });
  }
});

/** Starts a client on `url`, waits for its first failure, closes it; returns the failure's NetError. */
async function refusal(
  url: string,
  tls?: TlsOptions,
): Promise<{ error: MqttError; net: NetError; port: number; logs: string[] }> {
  const p = probe(url, tls);
  p.client.start();
  await waitFor(() => p.downs.length > 0, { message: `a failure on ${url}` });
  p.client.close();
  const error = p.downs[0];
  expect(error.code).toBe("CONNECTION_LOST");
  expect(error.cause).toBeInstanceOf(NetError);
  const cause = error.cause as NetError;
  expect(error.message).toBe(cause.message); // what a person sees is the NetError's message
  expect(p.connects).toBe(0);
  const ep = parseEndpoint(url);
  // Nothing left open, on either end.
  await waitFor(() => openConnections(ep.port) === 0, { message: `no connection left open on port ${ep.port}` });
  return { error, net: cause, port: ep.port, logs: p.logs };
}

describe("refusals: distinct, clear, nothing left open", () => {
  const seen = new Map<string, string>();
  afterAll(() => {
    // Each situation has its own code.
    const codes = [...seen.values()];
    expect(new Set(codes).size).toBe(codes.length);
  });

  const cases: [string, () => string, () => TlsOptions | undefined, string, RegExp][] = [
    [
      "an unknown CA",
      () => `mqtts://localhost:${port.mqtts}`,
      () => ({ ca: [certs.unknownCa.cert] }),
      "TLS_UNKNOWN_CA",
      /the certificate of localhost:\d+ is not signed by a trusted CA \(SELF_SIGNED_CERT_IN_CHAIN\): pass the CA certificate that signed the broker's certificate in tls\.ca/,
    ],
    [
      "a wrong host name",
      () => `mqtts://localhost:${wrongHost.port}`,
      () => ({ ca: [certs.ca.cert] }),
      "TLS_HOSTNAME_MISMATCH",
      /not for this host name \(Host: localhost\. is not in the cert's altnames: DNS:wrong\.example\.com\): .*tls\.serverName/,
    ],
    [
      "an expired certificate",
      () => `mqtts://localhost:${expired.port}`,
      () => ({ ca: [certs.ca.cert] }),
      "TLS_EXPIRED",
      /the certificate of localhost:\d+ has expired: check this device's clock/,
    ],
    [
      "a missing client certificate",
      () => `mqtts://localhost:${port.mutual}`,
      () => ({ ca: [certs.ca.cert] }),
      "TLS_CLIENT_CERT_REQUIRED",
      /requires a client certificate and none was set: .*set tls\.cert and tls\.key/,
    ],
    [
      "a client certificate from an unknown CA",
      () => `mqtts://localhost:${port.mutual}`,
      () => ({ ca: [certs.ca.cert], cert: certs.unknownClient.cert, key: certs.unknownClient.key }),
      "TLS_CLIENT_CERT_REJECTED",
      /refused our client certificate \(tlsv1 alert unknown ca\): the client certificate must be signed by a CA the broker trusts/,
    ],
    [
      "a plain client on a TLS port",
      () => `mqtt://127.0.0.1:${port.mqtts}`,
      () => undefined,
      "NO_ANSWER",
      /127\.0\.0\.1:\d+ (reset|closed) the connection without answering CONNECT: if this is a TLS port .* use mqtts:\/\//,
    ],
    [
      "a TLS client on a plain port",
      () => `mqtts://127.0.0.1:${port.mqtt}`,
      () => ({ ca: [certs.ca.cert] }),
      "NOT_TLS",
      /127\.0\.0\.1:\d+ (reset|closed) the connection during the TLS handshake: this port does not speak TLS: use mqtt:\/\/ \(1883\)/,
    ],
    [
      "an HTTP server",
      () => `mqtt://127.0.0.1:${webPort}`,
      () => undefined,
      "NOT_MQTT",
      /the server answered CONNECT in HTTP \("HTTP\/1\.1 400 Bad Request"\), so it is a web server, not an MQTT broker/,
    ],
    [
      "WebSocket to a web page",
      () => `ws://127.0.0.1:${webPort}/mqtt`,
      () => undefined,
      "WS_HANDSHAKE_FAILED",
      /refused the WebSocket upgrade with HTTP 200 OK; that is a web page, not a WebSocket endpoint/,
    ],
    [
      "a host name that does not resolve",
      () => "mqtt://no-such-broker.invalid:1883",
      () => undefined,
      "DNS_FAILED",
      /cannot resolve the host name "no-such-broker\.invalid" \(ENOTFOUND\): check the host name for typos/,
    ],
  ];
  for (const [what, url, tls, code, message] of cases) {
    it(what, async () => {
      const r = await refusal(url(), tls());
      expect(r.net.code).toBe(code);
      expect(r.net.message).toMatch(message);
      seen.set(what, code);
    });
  }

  it("a port with nothing listening", async () => {
    const free = await getFreePort();
    const r = await refusal(`mqtt://127.0.0.1:${free}`);
    expect(r.net.code).toBe("CONNECTION_REFUSED");
    expect(r.net.message).toMatch(
      /127\.0\.0\.1:\d+ refused the connection: nothing accepts connections there: check the port \(mqtt 1883/,
    );
    seen.set("nothing listening", r.net.code);
  });

  it("the same distinctions over WebSocket: plain to wss, TLS to ws, TLS to a web server", async () => {
    const plainToTls = await refusal(`ws://127.0.0.1:${port.wss}/mqtt`);
    expect(plainToTls.net.code).toBe("NO_ANSWER");
    expect(plainToTls.net.message).toMatch(
      /without answering the WebSocket upgrade: if this is a TLS port .* wss:\/\//,
    );
    const tlsToPlain = await refusal(`wss://127.0.0.1:${port.ws}/mqtt`, { ca: [certs.ca.cert] });
    expect(tlsToPlain.net.code).toBe("NOT_TLS");
    expect(tlsToPlain.net.message).toMatch(
      /does not answer in TLS \(wrong version number\): this port does not speak TLS/,
    );
    const tlsToWeb = await refusal(`mqtts://127.0.0.1:${webPort}`, { ca: [certs.ca.cert] });
    expect(tlsToWeb.net.code).toBe("NOT_TLS");
  });

  it("the system's CAs alone do not trust a private CA", async () => {
    const r = await refusal(`mqtts://localhost:${port.mqtts}`);
    expect(r.net.code).toBe("TLS_UNKNOWN_CA");
  });
});

describe("TLS choices", () => {
  it("tls.serverName verifies against another name than the one dialled", async () => {
    const p = probe(`mqtts://127.0.0.1:${wrongHost.port}`, { ca: [certs.ca.cert], serverName: "wrong.example.com" });
    p.client.start();
    await waitFor(() => p.connects === 1);
    expect(p.downs).toEqual([]);
  });

  it("insecure: true connects to an untrusted, misnamed broker, and says so loudly on every connect", async () => {
    const p = probe(`mqtts://localhost:${wrongHost.port}`, { insecure: true });
    p.client.start();
    await waitFor(() => p.connects === 1);
    expect(p.logs).toHaveLength(1);
    expect(p.logs[0]).toMatch(
      /^warn: TLS CERTIFICATE VERIFICATION IS OFF for mqtts:\/\/localhost:\d+ \(tls\.insecure\)/,
    );
    await wrongHost.restart(); // a second connect, a second warning
    await waitFor(() => p.connects === 2, { timeoutMs: 15000 });
    // One warning per dial: the first connect, then every dial after the restart dropped us (those that hit the
    // broker while it was down included), the last of which connected.
    expect(p.logs.filter((l) => l.startsWith("warn: TLS CERTIFICATE VERIFICATION IS OFF"))).toHaveLength(
      1 + p.downs.length,
    );
  });

  it("bad endpoints and TLS options fail when the connector is made, not on every dial", () => {
    expect(() => nodeConnector({ scheme: "mqtts", host: "", port: 8883, path: "" })).toThrow(/no host/);
    expect(() => nodeConnector(parseEndpoint("mqtt://h"), { ca: [certs.ca.cert] })).toThrow(
      /not encrypted: use mqtts:\/\//,
    );
    expect(() => nodeConnector(parseEndpoint("mqtts://h"), { cert: certs.client.cert })).toThrow(
      /tls\.cert is set without tls\.key/,
    );
    let error: unknown;
    try {
      nodeConnector(parseEndpoint("mqtts://h"), { cert: certs.client.cert, key: "not a key" });
    } catch (e) {
      error = e;
    }
    expect((error as NetError).code).toBe("INVALID_TLS_OPTIONS");
  });
});
