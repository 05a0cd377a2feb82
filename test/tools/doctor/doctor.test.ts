// The connection doctor against brokers set up right and set up wrong in each way it claims to diagnose: real
// Mosquitto brokers (plain, TLS, wrong host name, expired certificate, users and ACL), the emulated UIoT Core, an
// HTTP server, a closed port and a name that never resolves. Each case checks the step that fails, its verdict, code
// and fix text, the steps skipped after it, the exit status, and that no secret is printed.
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import http from "node:http";
import net from "node:net";
import tls from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCloud, type Cloud } from "../../../tools/cloud";
import { nodeClock } from "../../../hosts/node/clock";
import { FileConfigStore } from "../../../hosts/node/config-store";
import { nodeConnector } from "../../../hosts/node/connect";
import { doctorCli } from "../../../tools/doctor/cli";
import type { Report, Step, StepName } from "../../../tools/doctor/doctor";
import { CONFIG_KEYS } from "../../../src/device/config-keys";
import { Client } from "../../../src/mqtt/client";
import { parseEndpoint } from "../../../src/net/endpoint";
import { getTestCerts, type TestCerts } from "../../helpers/certs";
import { startMosquitto, type MosquittoBroker } from "../../helpers/mosquitto";
import { getFreePort } from "../../helpers/ports";

const PASSWORD = "alice-Pa55word-xyz";
const PSN = "PDOCTOR000000001";
const DSN = "doctor-dev-1";
const SECRET = "Dev1ceSecretAbCd";

let certs: TestCerts;
let broker: MosquittoBroker; // users + ACL: mqtt, mqtts, ws
let wrongHost: MosquittoBroker;
let expired: MosquittoBroker;
let cloud: Cloud;
let web: http.Server;
let webPort: number;
/** Web servers that, like `python3 -m http.server`, wait for a whole request line before answering: plain and TLS. */
let lineWeb: net.Server;
let lineWebTls: tls.Server;
let lineWebPage: http.Server;
let port: { mqtt: number; mqtts: number; ws: number; wss: number };

beforeAll(async () => {
  certs = await getTestCerts();
  const files = (pair: { certFile: string; keyFile: string }) => ({
    cafile: certs.ca.certFile,
    certfile: pair.certFile,
    keyfile: pair.keyFile,
  });
  [broker, wrongHost, expired, cloud] = await Promise.all([
    startMosquitto({
      stopAfterTest: false,
      users: { alice: PASSWORD, bob: "bob-password-123" },
      acl: { users: { alice: [{ access: "readwrite", topic: "doctor/#" }] } },
      listeners: [{ protocol: "mqtt" }, { protocol: "mqtts" }, { protocol: "ws" }, { protocol: "wss" }],
    }),
    startMosquitto({ stopAfterTest: false, listeners: [{ protocol: "mqtts", tls: files(certs.wrongHost) }] }),
    startMosquitto({ stopAfterTest: false, listeners: [{ protocol: "mqtts", tls: files(certs.expired) }] }),
    startCloud({
      products: [{ productSN: PSN, productSecret: "ProductSecret123" }],
      devices: [{ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET }],
    }),
  ]);
  const l = broker.listeners;
  port = { mqtt: l[0].port, mqtts: l[1].port, ws: l[2].port, wss: l[3].port };
  web = http.createServer((_req, res) => res.end("<html>a web page</html>"));
  await new Promise<void>((resolve) => web.listen(0, "127.0.0.1", resolve));
  webPort = (web.address() as net.AddressInfo).port;
  // node:http answers bytes that cannot start a request at once (400); these hold them until a line ends, as
  // Python's http.server does, then node:http serves the request.
  lineWebPage = http.createServer((_req, res) => {
    res.setHeader("Server", "LineWaiting/1.0");
    res.end("<html>a web page</html>");
  });
  const waitForLine = (socket: net.Socket) => {
    let held = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      held = Buffer.concat([held, chunk]);
      if (!held.includes(0x0a)) return;
      socket.off("data", onData);
      socket.unshift(held);
      lineWebPage.emit("connection", socket);
    };
    socket.on("data", onData);
    socket.on("error", () => undefined);
  };
  lineWeb = net.createServer(waitForLine);
  lineWebTls = tls.createServer({ cert: certs.server.chain, key: certs.server.key }, waitForLine);
  await Promise.all(
    [lineWeb, lineWebTls].map((server) => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))),
  );
});

afterAll(async () => {
  await Promise.all([broker?.close(), wrongHost?.close(), expired?.close(), cloud?.close()]);
  web?.closeAllConnections();
  await new Promise((resolve) => web?.close(resolve));
  lineWebPage?.closeAllConnections();
  await Promise.all(
    [lineWeb, lineWebTls].map(
      (server) => new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined))),
    ),
  );
});

interface Run {
  code: number;
  out: string;
  err: string;
  report: Report;
  step(name: StepName): Step;
}

/** Runs the CLI with --json (fast watch and timeouts: 3000 ms unless given); returns the exit status and the parsed report. */
async function doctor(...args: string[]): Promise<Run> {
  let out = "";
  let err = "";
  const code = await doctorCli(
    [...args, "--json", "--watch", "300", ...(args.includes("--timeout") ? [] : ["--timeout", "3000"])],
    { out: (t) => void (out += t), err: (t) => void (err += t) },
  );
  const report = JSON.parse(out) as Report;
  return {
    code,
    out,
    err,
    report,
    step: (name) => {
      const s = report.steps.find((x) => x.name === name);
      if (!s) throw new Error(`no step ${name}`);
      return s;
    },
  };
}

const ALICE = ["--username", "alice", "--password", PASSWORD];
const UIOT = ["--product-sn", PSN, "--device-sn", DSN, "--device-secret", SECRET];

/** The steps after `name` (in order) all skipped. */
function skippedAfter(r: Run, name: StepName, except: StepName[] = ["credentials", "port"]): void {
  const i = r.report.steps.findIndex((s) => s.name === name);
  for (const s of r.report.steps.slice(i + 1)) if (!except.includes(s.name)) expect(s.verdict, s.name).toBe("skipped");
}

describe("set up right", () => {
  it("plain MQTT with a user and password: every step ok, exit 0, the password never printed", async () => {
    const r = await doctor(`mqtt://localhost:${port.mqtt}`, ...ALICE);
    expect(r.code).toBe(0);
    expect(r.report.ok).toBe(true);
    expect(r.report.steps.map((s) => [s.name, s.verdict])).toEqual([
      ["url", "ok"],
      ["dns", "ok"],
      ["port", "ok"],
      ["tcp", "ok"],
      ["tls", "skipped"],
      ["credentials", "ok"],
      ["mqtt", "ok"],
      ["round-trip", "ok"],
      ["kick", "ok"],
    ]);
    expect(r.step("dns").detail).toMatch(/localhost → .*127\.0\.0\.1|localhost → .*::1/);
    expect(r.step("tcp").detail).toMatch(/connected to .*:\d+ in \d+ ms/);
    expect(r.step("credentials").detail).toMatch(/user name alice; password \*\*\*\*yz/);
    expect(r.step("mqtt").detail).toMatch(/CONNACK 0 \(accepted\)/);
    expect(r.step("round-trip").detail).toMatch(
      /subscribe \+ publish on doctor\/doctor-\w+: QoS 1, answered in \d+ ms/,
    );
    expect(r.out).not.toContain(PASSWORD);
  });

  it("TLS with the broker's CA: the certificate chain, names, expiry and protocol are shown", async () => {
    const r = await doctor(`mqtts://localhost:${port.mqtts}`, ...ALICE, "--ca", certs.ca.certFile);
    expect(r.code).toBe(0);
    const t = r.step("tls");
    expect(t.verdict).toBe("ok");
    expect(t.detail).toMatch(/^TLSv1\.[23]; certificate subject CN=localhost \/ issuer CN=uiot test CA/);
    expect(t.detail).toMatch(/names DNS:localhost, IP Address:127\.0\.0\.1/);
    expect(t.detail).toMatch(/\(\d+ days left\); trusted by the CA given \(1 certificate\)/);
    expect(r.step("round-trip").verdict).toBe("ok");
  });

  it("a certificate that expires within 30 days: a warning, the connection still checked", async () => {
    // A broker certificate of the test CA valid for 10 days.
    const dir = fs.mkdtempSync(join(tmpdir(), "doctor-soon-"));
    try {
      const key = join(dir, "key.pem"),
        csr = join(dir, "req.csr"),
        cert = join(dir, "cert.pem"),
        ext = join(dir, "ext.cnf");
      fs.writeFileSync(ext, "subjectAltName = DNS:localhost\nextendedKeyUsage = serverAuth\n");
      execFileSync(
        "openssl",
        ["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        { stdio: "ignore" },
      );
      execFileSync(
        "openssl",
        [
          "x509",
          "-req",
          "-in",
          csr,
          "-CA",
          certs.ca.certFile,
          "-CAkey",
          certs.ca.keyFile,
          "-set_serial",
          String(Date.now()),
          "-out",
          cert,
          "-days",
          "10",
          "-extfile",
          ext,
        ],
        { stdio: "ignore" },
      );
      const soon = await startMosquitto({
        listeners: [{ protocol: "mqtts", tls: { cafile: certs.ca.certFile, certfile: cert, keyfile: key } }],
      });
      const r = await doctor(`mqtts://localhost:${soon.port}`, "--ca", certs.ca.certFile);
      expect(r.code).toBe(0);
      expect(r.step("tls")).toMatchObject({ verdict: "warn", code: "TLS_EXPIRES_SOON" });
      expect(r.step("tls").detail).toMatch(/\((9|10) days left\)/);
      expect(r.step("tls").fix).toMatch(/the certificate expires in (9|10) days: renew it on the broker/);
      expect(r.step("mqtt").verdict).toBe("ok");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the text output: one block per step, a fix for each problem, a result line", async () => {
    let out = "";
    const code = await doctorCli([`mqtt://localhost:${port.mqtt}`, ...ALICE, "--watch", "100"], {
      out: (t) => void (out += t),
      err: () => undefined,
    });
    expect(code).toBe(0);
    expect(out).toMatch(/^Connection doctor: mqtt:\/\/localhost:\d+ \(generic MQTT broker\)\n/);
    expect(out).toMatch(
      /\[ {2}ok {2}\] 4\. a TCP connection opens \(what `telnet host port` shows\) \(\d+ ms\)\n {9}connected to/,
    );
    expect(out).toMatch(/\[ skip \] 5\. TLS: handshake/);
    expect(out).toMatch(/\nResult: OK\.\n$/);
    expect(out).not.toContain(PASSWORD);
  });

  it("WebSocket, and WebSocket over TLS", async () => {
    const r = await doctor(`ws://127.0.0.1:${port.ws}/mqtt`, ...ALICE);
    expect(r.code).toBe(0);
    expect(r.step("url").detail).toMatch(/scheme ws, host 127\.0\.0\.1, port \d+, path \/mqtt/);
    expect(r.step("dns").detail).toMatch(/is an IP address/);
    const secure = await doctor(`wss://localhost:${port.wss}/mqtt`, ...ALICE, "--ca", certs.ca.certFile);
    expect(secure.code).toBe(0);
    expect(secure.step("tls").verdict).toBe("ok");
    expect(secure.step("round-trip").verdict).toBe("ok");
  });
});

describe("set up wrong: each problem named, with its fix", () => {
  it("no such host (.invalid)", async () => {
    const r = await doctor("mqtt://no-such-broker.invalid:1883");
    expect(r.code).toBe(1);
    expect(r.step("dns")).toMatchObject({ verdict: "fail", code: "DNS_FAILED" });
    expect(r.step("dns").detail).toMatch(
      /cannot resolve the host name "no-such-broker\.invalid" \((ENOTFOUND|EAI_AGAIN)\)/,
    );
    expect(r.step("dns").fix).toMatch(/reserved never to resolve: write the broker's real host name/);
    expect(r.step("tcp").detail).toBe("not tried: no-such-broker.invalid does not resolve");
    skippedAfter(r, "dns");
  });

  it("a closed port", async () => {
    const free = await getFreePort();
    const r = await doctor(`mqtt://127.0.0.1:${free}`);
    expect(r.code).toBe(1);
    expect(r.step("tcp")).toMatchObject({ verdict: "fail", code: "CONNECTION_REFUSED" });
    expect(r.step("tcp").detail).toMatch(
      /127\.0\.0\.1:\d+ refused the connection after \d+ ms \(telnet: "Connection refused"\)/,
    );
    expect(r.step("tcp").fix).toMatch(/nothing accepts connections there: check the port \(mqtt 1883, mqtts 8883/);
    skippedAfter(r, "tcp");
  });

  it("TLS to a plain port", async () => {
    const r = await doctor(`mqtts://localhost:${port.mqtt}`, ...ALICE, "--ca", certs.ca.certFile);
    expect(r.code).toBe(1);
    expect(r.step("tcp").verdict).toBe("ok");
    expect(r.step("tls")).toMatchObject({ verdict: "fail", code: "NOT_TLS" });
    expect(r.step("tls").detail).toMatch(/TLS to a plain port/);
    expect(r.step("tls").fix).toMatch(new RegExp(`this port does not speak TLS: use mqtt://localhost:${port.mqtt}`));
    skippedAfter(r, "tls");
  });

  it("plain to a TLS port", async () => {
    const r = await doctor(`mqtt://localhost:${port.mqtts}`, ...ALICE);
    expect(r.code).toBe(1);
    expect(r.step("tls").verdict).toBe("skipped");
    expect(r.step("mqtt")).toMatchObject({ verdict: "fail", code: "TLS_REQUIRED" });
    expect(r.step("mqtt").detail).toMatch(
      /without answering CONNECT, and the port answers a TLS handshake: plain mqtt:\/\/ to a TLS port/,
    );
    expect(r.step("mqtt").fix).toMatch(new RegExp(`use mqtts://localhost:${port.mqtts}`));
    skippedAfter(r, "mqtt");
  });

  it("plain WebSocket to a TLS port, and TLS WebSocket to a plain port", async () => {
    const plain = await doctor(`ws://localhost:${port.wss}/mqtt`, ...ALICE);
    expect(plain.step("mqtt")).toMatchObject({ verdict: "fail", code: "TLS_REQUIRED" });
    expect(plain.step("mqtt").fix).toMatch(new RegExp(`use wss://localhost:${port.wss}/mqtt`));
    const secure = await doctor(`wss://localhost:${port.ws}/mqtt`, ...ALICE, "--ca", certs.ca.certFile);
    expect(secure.step("tls")).toMatchObject({ verdict: "fail", code: "NOT_TLS" });
    expect(secure.step("tls").fix).toMatch(new RegExp(`use ws://localhost:${port.ws}/mqtt`));
  });

  it("an unknown CA (given, and the system store)", async () => {
    const r = await doctor(`mqtts://localhost:${port.mqtts}`, ...ALICE, "--ca", certs.unknownCa.certFile);
    expect(r.code).toBe(1);
    expect(r.step("tls")).toMatchObject({ verdict: "fail", code: "TLS_UNKNOWN_CA" });
    expect(r.step("tls").detail).toMatch(
      /not signed by a trusted CA \(SELF_SIGNED_CERT_IN_CHAIN\); TLSv1\.[23]; certificate subject CN=localhost \/ issuer CN=uiot test CA/,
    );
    // A CA was given, and it is the wrong one: the fix says so, rather than asking for --ca.
    expect(r.step("tls").fix).toMatch(
      new RegExp(
        `^the CA given \\(--ca ${certs.unknownCa.certFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: CN=[^)]+\\) did not sign the broker's certificate, which was issued by CN=uiot test CA: use that issuer's CA certificate instead`,
      ),
    );
    expect(r.step("tls").fix).not.toMatch(/with --ca/);
    skippedAfter(r, "tls");
    const system = await doctor(`mqtts://localhost:${port.mqtts}`, ...ALICE);
    expect(system.step("tls")).toMatchObject({ verdict: "fail", code: "TLS_UNKNOWN_CA" });
    expect(system.step("tls").detail).toMatch(/trusted by the system's CA store/);
    expect(system.step("tls").fix).toMatch(
      /pass the CA that signed the broker's certificate \(issuer: CN=uiot test CA\) with --ca <file\.pem>/,
    );
  });

  it("a wrong host name", async () => {
    const r = await doctor(`mqtts://localhost:${wrongHost.port}`, "--ca", certs.ca.certFile);
    expect(r.code).toBe(1);
    expect(r.step("tls")).toMatchObject({ verdict: "fail", code: "TLS_HOSTNAME_MISMATCH" });
    expect(r.step("tls").detail).toMatch(
      /is not for this host name \(Host: localhost\. is not in the cert's altnames: DNS:wrong\.example\.com\); TLSv1\.[23]; certificate subject CN=wrong\.example\.com/,
    );
    expect(r.step("tls").fix).toMatch(
      /connect with a name the certificate holds \(DNS:wrong\.example\.com\), or pass it with --server-name/,
    );
    // The fix works.
    const fixed = await doctor(
      `mqtts://localhost:${wrongHost.port}`,
      "--ca",
      certs.ca.certFile,
      "--server-name",
      "wrong.example.com",
    );
    expect(fixed.step("tls").verdict).toBe("ok");
    expect(fixed.step("mqtt").verdict).toBe("ok");
  });

  it("an expired certificate", async () => {
    const r = await doctor(`mqtts://localhost:${expired.port}`, "--ca", certs.ca.certFile);
    expect(r.code).toBe(1);
    expect(r.step("tls")).toMatchObject({ verdict: "fail", code: "TLS_EXPIRED" });
    expect(r.step("tls").detail).toMatch(/has expired; .*valid Jan .* 2020 GMT \((-\d+) days left\)/);
    expect(r.step("tls").fix).toMatch(/the broker's certificate expired on Jan .* 2020 GMT: renew it on the broker/);
    // --insecure reports it as a warning and goes on, but the run proves nothing: exit 3, not ok.
    const insecure = await doctor(`mqtts://localhost:${expired.port}`, "--ca", certs.ca.certFile, "--insecure");
    expect(insecure.step("tls")).toMatchObject({ verdict: "warn", code: "TLS_EXPIRED" });
    expect(insecure.step("tls").detail).toMatch(/\(ignored: --insecure; a device would refuse this certificate\)/);
    expect(insecure.step("mqtt").verdict).toBe("ok");
    expect(insecure.code).toBe(3);
    expect(insecure.report).toMatchObject({ ok: false, insecure: true });
  });

  it("--insecure never passes: exit 3 and a result that says verification was off, even with a good certificate", async () => {
    let out = "";
    const code = await doctorCli(
      [`mqtts://localhost:${port.mqtts}`, ...ALICE, "--ca", certs.ca.certFile, "--insecure", "--watch", "100"],
      { out: (t) => void (out += t), err: () => undefined },
    );
    expect(code).toBe(3);
    expect(out).toMatch(
      /\[ {2}ok {2}\] 5\. TLS: [^\n]*\n[^\n]*the certificate passed verification, though --insecure was given/,
    );
    expect(out).toMatch(/\[ {2}ok {2}\] 8\. a message makes a round trip/);
    expect(out).toMatch(
      /\nResult: NOT PROVEN: TLS certificate verification was off \(--insecure\)\. A device verifies the broker's certificate,\nso this run does not show that one can connect; run again without --insecure\.\n$/,
    );
    // On a plain URL there is nothing to verify: --insecure changes nothing.
    const plain = await doctor(`mqtt://localhost:${port.mqtt}`, ...ALICE, "--insecure");
    expect(plain.code).toBe(0);
    expect(plain.report.ok).toBe(true);
    expect(plain.report.insecure).toBeUndefined();
  });

  it("a bad password: Mosquitto 2 answers CONNACK 5 to it, and the fix says the password may be wrong; never printed", async () => {
    const wrong = "not-the-Password-42";
    const r = await doctor(`mqtt://localhost:${port.mqtt}`, "--username", "alice", "--password", wrong);
    expect(r.code).toBe(1);
    expect(r.step("mqtt")).toMatchObject({ verdict: "fail", code: "CONNACK_5" });
    expect(r.step("mqtt").detail).toMatch(/connection refused \(code 5\): not authorized/);
    expect(r.step("mqtt").fix).toMatch(
      /either the password \(or user name\) is wrong, since Mosquitto answers 5 rather than 4 to a wrong password, or user "alice" may not connect/,
    );
    expect(r.out).not.toContain(wrong);
    skippedAfter(r, "mqtt");
  });

  it("not authorized: an anonymous login where anonymous is off gets CONNACK 5", async () => {
    const r = await doctor(`mqtt://localhost:${port.mqtt}`);
    expect(r.code).toBe(1);
    expect(r.step("credentials").detail).toMatch(/no user name \(anonymous login\)/);
    expect(r.step("mqtt")).toMatchObject({ verdict: "fail", code: "CONNACK_5" });
    expect(r.step("mqtt").detail).toMatch(/connection refused \(code 5\): not authorized/);
    expect(r.step("mqtt").fix).toMatch(
      /the broker refuses anonymous logins \(EMQX-style deployments always do\): give --username and --password/,
    );
  });

  it("not authorized by the ACL: the round trip is refused", async () => {
    const r = await doctor(`mqtt://localhost:${port.mqtt}`, "--username", "bob", "--password", "bob-password-123");
    expect(r.code).toBe(1);
    expect(r.step("mqtt").verdict).toBe("ok");
    const rt = r.step("round-trip");
    expect(rt.verdict).toBe("fail");
    expect(["SUBACK_0x80", "NO_ROUND_TRIP"]).toContain(rt.code);
    expect(rt.fix).toMatch(/ACL/);
  });

  it("an HTTP server is not an MQTT broker", async () => {
    const r = await doctor(`mqtt://127.0.0.1:${webPort}`);
    expect(r.code).toBe(1);
    expect(r.step("mqtt")).toMatchObject({ verdict: "fail", code: "NOT_MQTT" });
    expect(r.step("mqtt").detail).toMatch(/answered CONNECT in HTTP .*: not an MQTT broker/);
  });

  it("an HTTP server that waits for a request line (as python3 -m http.server does): no CONNACK, and it answers HTTP", async () => {
    const port = (lineWeb.address() as net.AddressInfo).port;
    const r = await doctor(`mqtt://127.0.0.1:${port}`);
    expect(r.code).toBe(1);
    expect(r.step("mqtt")).toMatchObject({ verdict: "fail", code: "NOT_MQTT" });
    expect(r.step("mqtt").detail).toMatch(
      /^no CONNACK within 3000 ms, and the port answers an HTTP request \(HTTP\/1\.1 200 OK, Server: LineWaiting\/1\.0\): not an MQTT broker: it looks like HTTP/,
    );
    expect(r.step("mqtt").fix).toMatch(
      /this is not an MQTT broker: .*; for MQTT over WebSocket use ws:\/\/ with the broker's path/,
    );
    skippedAfter(r, "mqtt");
    // The same in TLS: mqtts:// to an HTTPS server.
    const tlsPort = (lineWebTls.address() as net.AddressInfo).port;
    const s = await doctor(`mqtts://localhost:${tlsPort}`, "--ca", certs.ca.certFile);
    expect(s.step("tls").verdict).toBe("ok");
    expect(s.step("mqtt")).toMatchObject({ verdict: "fail", code: "NOT_MQTT" });
    expect(s.step("mqtt").detail).toMatch(
      /the port answers an HTTP request \(HTTP\/1\.1 200 OK, Server: LineWaiting\/1\.0\): not an MQTT broker: it looks like HTTP/,
    );
    expect(s.step("mqtt").fix).toMatch(/use wss:\/\//);
  });

  it("a server that never answers anything is not called a web server", async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => {
      sockets.push(socket);
      socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const r = await doctor(`mqtt://127.0.0.1:${(silent.address() as net.AddressInfo).port}`, "--timeout", "500");
      expect(r.step("mqtt")).toMatchObject({ verdict: "fail", code: "CONNECT_TIMEOUT" });
      expect(r.step("mqtt").detail).toBe("no CONNACK within 500 ms");
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("a scheme that does not match the port: a warning with the URL to use", async () => {
    const r = await doctor("mqtt://no-such-broker.invalid:8883");
    expect(r.step("port")).toMatchObject({ verdict: "warn", code: "PORT_MISMATCH" });
    expect(r.step("port").detail).toMatch(/8883 is normally a TLS port \(mqtts\), but mqtt:\/\/ is not encrypted/);
    expect(r.step("port").fix).toMatch(
      /write mqtts:\/\/no-such-broker\.invalid:8883 or mqtt:\/\/no-such-broker\.invalid:1883/,
    );
    const wss = await doctor("wss://no-such-broker.invalid:8083/mqtt");
    expect(wss.step("port").detail).toMatch(/8083 is normally a plain port \(ws\), but wss:\/\/ speaks TLS/);
  });

  it("a URL that does not parse: every later step skipped", async () => {
    const r = await doctor("http://broker.example.com");
    expect(r.code).toBe(1);
    expect(r.step("url")).toMatchObject({ verdict: "fail", code: "INVALID_URL" });
    expect(r.step("url").detail).toMatch(/http:\/\/ is a web address/);
    skippedAfter(r, "url", ["credentials"]);
  });
});

describe("UIoT Core (the emulated cloud)", () => {
  it("a device set up right: identity, keepalive, template get round trip, and --check-kick", async () => {
    const r = await doctor(cloud.url, ...UIOT, "--check-kick");
    expect(r.code).toBe(0);
    expect(r.report.profile).toBe("UIoT Core");
    expect(r.step("credentials").detail).toBe(
      `client id ${PSN}.${DSN}; user name ${PSN}|${DSN}|1 (authmode 1: DeviceSecret); password ****Cd; keepalive 300 s (UIoT Core: keepalive within 30..1200 s)`,
    );
    expect(r.step("round-trip").detail).toMatch(
      /thing-model template get → get_reply: QoS 1, answered in \d+ ms, RetCode 0/,
    );
    expect(r.step("kick").verdict).toBe("ok");
    expect(r.step("kick").detail).toMatch(
      new RegExp(`--check-kick: a second login with client id ${PSN}\\.${DSN} kicked the first \\d+ ms after it began`),
    );
    expect(r.out).not.toContain(SECRET);
  });

  it("keepalive out of range: refused locally, before connecting", async () => {
    const refused: unknown[] = [];
    const online: unknown[] = [];
    const onRefused = (e: unknown) => refused.push(e);
    const onOnline = (e: unknown) => online.push(e);
    cloud.on("refused", onRefused);
    cloud.on("online", onOnline);
    try {
      const r = await doctor(cloud.url, ...UIOT, "--keepalive", "10");
      expect(r.code).toBe(1);
      expect(r.step("tcp").verdict).toBe("ok");
      expect(r.step("credentials")).toMatchObject({ verdict: "fail", code: "KEEPALIVE_RANGE" });
      expect(r.step("credentials").detail).toMatch(
        /keepalive 10 s is outside UIoT Core's 30\.\.1200 s, so the platform would refuse the connection; refused here, before connecting/,
      );
      expect(r.step("credentials").fix).toMatch(
        /use a keepalive from 30 to 1200 s \(300 or more recommended\): --keepalive 300/,
      );
      expect(r.step("mqtt")).toMatchObject({
        verdict: "skipped",
        detail: "not tried: refused locally: the settings break UIoT Core's rules",
      });
      expect(refused).toEqual([]);
      expect(online).toEqual([]);
      const high = await doctor(cloud.url, ...UIOT, "--keepalive", "1201");
      expect(high.step("credentials").code).toBe("KEEPALIVE_RANGE");
    } finally {
      cloud.off("refused", onRefused);
      cloud.off("online", onOnline);
    }
  });

  it("a wrong DeviceSecret: CONNACK 4 (bad user name or password), never printed", async () => {
    const wrong = "WrongSecret12345";
    const r = await doctor(cloud.url, "--product-sn", PSN, "--device-sn", DSN, "--device-secret", wrong);
    expect(r.code).toBe(1);
    expect(r.step("mqtt")).toMatchObject({ verdict: "fail", code: "CONNACK_4" });
    expect(r.step("mqtt").detail).toMatch(/connection refused \(code 4\): bad user name or password/);
    expect(r.step("mqtt").fix).toMatch(/check the user name and password \(for UIoT Core: the DeviceSecret/);
    expect(r.out).not.toContain(wrong);
  });

  it("--device reads the simulator's config store", async () => {
    const dir = fs.mkdtempSync(join(tmpdir(), "doctor-store-"));
    try {
      const store = new FileConfigStore(join(dir, "config.json"));
      store.set(CONFIG_KEYS.productSN, PSN);
      store.set(CONFIG_KEYS.deviceSN, DSN);
      store.set(CONFIG_KEYS.deviceSecret, SECRET);
      store.set(CONFIG_KEYS.brokerUrl, cloud.url);
      const r = await doctor("--device", dir);
      expect(r.code).toBe(0);
      expect(r.report.url).toBe(cloud.url);
      expect(r.step("credentials").detail).toMatch(new RegExp(`^client id ${PSN}\\.${DSN};`));
      expect(r.out).not.toContain(SECRET);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("kicked by a second login with the same client id", () => {
  it("another client that keeps logging in with the same id: the doctor's connection is kicked and the kick named", async () => {
    const clientId = "doctor-duplicate-id";
    // A duplicate that reconnects at once whenever it is kicked (as a second device with the same identity does).
    const rival = new Client({
      clientId,
      username: "alice",
      password: PASSWORD,
      connect: nodeConnector(parseEndpoint(`mqtt://127.0.0.1:${port.mqtt}`)),
      clock: nodeClock,
      backoff: { min: 50, max: 100, resetAfter: 100000 },
      kickThreshold: 1000000,
    });
    rival.start();
    try {
      const r = await doctor(`mqtt://127.0.0.1:${port.mqtt}`, ...ALICE, "--client-id", clientId, "--watch", "3000");
      expect(r.code).toBe(1);
      expect(r.step("mqtt").verdict).toBe("ok");
      expect(r.step("kick")).toMatchObject({ verdict: "fail", code: "KICKED" });
      expect(r.step("kick").detail).toMatch(/closed .*\d+ ms after CONNACK/);
      expect(r.step("kick").fix).toMatch(
        /another client uses the same client id and the broker keeps only the newest connection/,
      );
    } finally {
      rival.close();
    }
  });

  it("UIoT Core: a duplicated DeviceSN is named", async () => {
    const rival = new Client({
      clientId: `${PSN}.${DSN}`,
      username: `${PSN}|${DSN}|1`,
      password: SECRET,
      keepalive: 300,
      connect: nodeConnector(parseEndpoint(cloud.url)),
      clock: nodeClock,
      backoff: { min: 50, max: 100, resetAfter: 100000 },
      kickThreshold: 1000000,
    });
    rival.start();
    try {
      const r = await doctor(cloud.url, ...UIOT, "--watch", "3000");
      expect(r.code).toBe(1);
      expect(r.step("kick")).toMatchObject({ verdict: "fail", code: "KICKED" });
      expect(r.step("kick").fix).toMatch(
        /another device \(or process\) logs in with this same DeviceSN.*almost always a duplicated DeviceSN/,
      );
      expect(r.out).not.toContain(SECRET);
    } finally {
      rival.close();
    }
  });
});

describe("--json and exit codes", () => {
  it("one JSON object: ok, url, profile, steps with name, title, verdict, ms, detail and (for problems) fix and code", async () => {
    const r = await doctor(`mqtt://localhost:${port.mqtt}`, "--username", "alice", "--password", "wrong-password-1");
    expect(r.out.trim().split("\n")).toHaveLength(1);
    expect(Object.keys(r.report).sort()).toEqual(["ok", "profile", "steps", "url"]);
    expect(r.report.steps.map((s) => s.name)).toEqual([
      "url",
      "dns",
      "port",
      "tcp",
      "tls",
      "credentials",
      "mqtt",
      "round-trip",
      "kick",
    ]);
    for (const s of r.report.steps) {
      expect(["ok", "warn", "fail", "skipped"]).toContain(s.verdict);
      expect(typeof s.ms).toBe("number");
      expect(typeof s.detail).toBe("string");
      expect(typeof s.title).toBe("string");
      if (s.verdict === "fail" || s.verdict === "warn") expect(typeof s.fix).toBe("string");
      for (const k of Object.keys(s)) expect(["name", "title", "verdict", "ms", "detail", "fix", "code"]).toContain(k);
    }
    expect(r.report.ok).toBe(false);
    expect(r.code).toBe(1);
  });

  it("through npm: `npm run -s doctor -- --json` prints the JSON alone; without -s it says so on stderr", async () => {
    const root = join(import.meta.dirname, "..", "..", "..");
    const run = (args: string[]) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const child = spawn("npm", args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
        let out = "",
          err = "";
        child.stdout.on("data", (b: Buffer) => (out += b.toString()));
        child.stderr.on("data", (b: Buffer) => (err += b.toString()));
        child.once("exit", (code) => resolve({ code, out, err }));
      });
    const url = `mqtt://localhost:${port.mqtt}`;
    const silent = await run(["run", "-s", "doctor", "--", url, ...ALICE, "--json", "--watch", "100"]);
    expect(silent.code).toBe(0);
    expect((JSON.parse(silent.out) as Report).ok).toBe(true);
    expect(silent.err).toBe("");
    const noisy = await run(["run", "doctor", "--", url, ...ALICE, "--json", "--watch", "100"]);
    expect(noisy.code).toBe(0);
    expect(() => JSON.parse(noisy.out)).toThrow(); // npm's own lines come first
    expect(noisy.err).toMatch(
      /npm printed its own lines on stdout before this JSON: use `npm run -s doctor -- --json` for the JSON alone/,
    );
  }, 60000);

  it("exit 2 for a wrong command line, with the reason (as JSON with --json)", async () => {
    const r = await doctorCli(["--json"], { out: () => undefined, err: () => undefined });
    expect(r).toBe(2);
    let out = "";
    let err = "";
    expect(
      await doctorCli(["--json", "--device-sn", DSN], { out: (t) => void (out += t), err: (t) => void (err += t) }),
    ).toBe(2);
    expect(JSON.parse(out)).toEqual({ ok: false, error: expect.stringMatching(/ProductSN is missing/) });
    out = "";
    expect(await doctorCli(["mqtt://h", "--bogus"], { out: (t) => void (out += t), err: (t) => void (err += t) })).toBe(
      2,
    );
    expect(err).toMatch(/^doctor: Unknown option '--bogus'/);
    expect(err).toMatch(/Usage: npm run doctor -- <broker URL> \[options\]/);
  });

  it("--help prints the usage and exits 0", async () => {
    let out = "";
    expect(await doctorCli(["--help"], { out: (t) => void (out += t), err: () => undefined })).toBe(0);
    expect(out).toMatch(/--check-kick/);
  });
});
