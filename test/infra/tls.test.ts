// The test PKI (./helpers/certs.ts) against Mosquitto's TLS listeners: the right CA verifies, the wrong CA, a wrong
// host name and an expired certificate do not; mutual TLS takes our client certificate and refuses others.
import { X509Certificate } from "node:crypto";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONNACK } from "../../src/mqtt/packets.ts";
import { getTestCerts, type TestCerts } from "../helpers/certs.ts";
import { type MosquittoBroker, startMosquitto } from "../helpers/mosquitto.ts";
import { connect, end, nextMessage } from "./mqttjs.ts";

/** Opens a TLS connection and resolves with its outcome: "ok" or the error code Node reports. */
function handshake(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ...options });
    socket.once("secureConnect", () => {
      socket.destroy();
      resolve("ok");
    });
    socket.once("error", (e: NodeJS.ErrnoException) => {
      socket.destroy();
      resolve(e.code ?? e.message);
    });
  });
}

/** Mutual TLS: the server may reject the client certificate only after the handshake; an MQTT round trip tells. */
function mqttOverTls(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ...options });
    // CONNECT, MQTT 3.1.1, clean session, keepalive 10, client id "t"
    const connect = Buffer.from([
      0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x0a, 0x00, 0x01, 0x74,
    ]);
    socket.once("secureConnect", () => socket.write(connect));
    socket.once("data", (d: Buffer) => {
      socket.destroy();
      resolve(d[0] === CONNACK << 4 ? `connack ${d[3]}` : `unexpected ${d.toString("hex")}`);
    });
    socket.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    socket.once("close", () => resolve("closed"));
  });
}

let certs: TestCerts;
beforeAll(async () => {
  certs = await getTestCerts();
});

describe("test certificates", () => {
  it("are what they say they are", () => {
    const ca = new X509Certificate(certs.ca.cert);
    const server = new X509Certificate(certs.server.cert);
    expect(ca.ca).toBe(true);
    expect(server.checkIssued(ca)).toBe(true);
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(server.checkHost("localhost")).toBe("localhost");
    expect(server.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(new X509Certificate(certs.wrongHost.cert).checkHost("localhost")).toBeUndefined();
    expect(Date.parse(new X509Certificate(certs.expired.cert).validTo)).toBeLessThan(Date.now());
    expect(new X509Certificate(certs.client.cert).checkIssued(ca)).toBe(true);
    expect(new X509Certificate(certs.unknownClient.cert).checkIssued(ca)).toBe(false);
    expect(certs.client.key).toMatch(/^-----BEGIN PRIVATE KEY-----/); // PKCS#8, as the device wants it
    expect(Buffer.from(certs.ca.der).equals(ca.raw)).toBe(true);
  });

  it("are made once per test run", async () => {
    expect(await getTestCerts()).toBe(certs);
  });
});

describe("Mosquitto TLS listeners with the test certificates", () => {
  let broker: MosquittoBroker;
  let wrongHost: MosquittoBroker;
  let expired: MosquittoBroker;
  beforeAll(async () => {
    const files = (pair: { certFile: string; keyFile: string }) => ({
      cafile: certs.ca.certFile,
      certfile: pair.certFile,
      keyfile: pair.keyFile,
    });
    [broker, wrongHost, expired] = await Promise.all([
      startMosquitto({
        listeners: [{ protocol: "mqtts" }, { protocol: "mqtts", requireCertificate: true }, { protocol: "wss" }],
      }),
      startMosquitto({ listeners: [{ protocol: "mqtts", tls: files(certs.wrongHost) }] }),
      startMosquitto({ listeners: [{ protocol: "mqtts", tls: files(certs.expired) }] }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([broker?.close(), wrongHost?.close(), expired?.close()]);
  });

  it("verifies with the test CA, by IP and by host name", async () => {
    expect(await handshake(broker.ports.mqtts!, { ca: certs.ca.cert })).toBe("ok");
    expect(await handshake(broker.ports.mqtts!, { ca: certs.ca.cert, servername: "localhost" })).toBe("ok");
  });

  it("fails with an unknown CA, a wrong host name, an expired certificate", async () => {
    // Mosquitto sends its CA along with its certificate (cafile), hence "self-signed certificate in chain".
    const untrusted = /^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/;
    expect(await handshake(broker.ports.mqtts!, { ca: certs.unknownCa.cert })).toMatch(untrusted);
    expect(await handshake(broker.ports.mqtts!, {})).toMatch(untrusted); // the system's CAs only
    expect(await handshake(wrongHost.port, { ca: certs.ca.cert })).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
    expect(await handshake(expired.port, { ca: certs.ca.cert })).toBe("CERT_HAS_EXPIRED");
  });

  it("mutual TLS: our client certificate in, none or an unknown CA's out", async () => {
    const port = broker.listeners[1].port;
    expect(await mqttOverTls(port, { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key })).toBe(
      "connack 0",
    );
    expect(await mqttOverTls(port, { ca: certs.ca.cert })).not.toMatch(/^connack/);
    expect(
      await mqttOverTls(port, { ca: certs.ca.cert, cert: certs.unknownClient.cert, key: certs.unknownClient.key }),
    ).not.toMatch(/^connack/);
    // The one-way listener does not ask for a certificate at all.
    expect(await mqttOverTls(broker.ports.mqtts!, { ca: certs.ca.cert })).toBe("connack 0");
  });

  it("carries MQTT.js over mqtts:// and wss://", async () => {
    const viaTls = (await connect(broker.urls.mqtts!, { ca: certs.ca.cert })).client;
    const viaWss = (await connect(broker.urls.wss!, { ca: certs.ca.cert })).client;
    await viaWss.subscribeAsync("tls/x", { qos: 1 });
    const got = nextMessage(viaWss, "tls/x");
    await viaTls.publishAsync("tls/x", "secret", { qos: 1 });
    expect((await got).toString()).toBe("secret");
    await Promise.all([end(viaTls), end(viaWss)]);
  });
});
