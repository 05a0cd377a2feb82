// The connection doctor: the documented troubleshooting order (docs/brokers.md, "Troubleshooting order"), run step by
// step against a broker URL and optional credentials, each step with a verdict, its time, what was seen and what to do.
//
//   url → dns → port → tcp → tls → credentials → mqtt → round-trip → kick
//
// A failed step skips the steps that need it (and says which). Nothing here prints: runDoctor returns a Report that
// report.ts formats as text or JSON. The password never goes into a Report: only its redacted form does.
import { X509Certificate } from "node:crypto";
import * as dns from "node:dns";
import * as net from "node:net";
import * as tls from "node:tls";
import { nodeClock } from "../../hosts/node/clock";
import { describeEnd, nodeConnector } from "../../hosts/node/connect";
import { Client } from "../../src/mqtt/client";
import { MqttError } from "../../src/mqtt/errors";
import { GENERIC, type Profile } from "../../src/mqtt/profile";
import type { Endpoint, Scheme, TlsOptions } from "../../src/host";
import { DEFAULT_PORTS, formatEndpoint, hostPort, isSecure, isWebSocket, parseEndpoint } from "../../src/net/endpoint";
import { NetError, netHint, type NetErrorCode } from "../../src/net/errors";
import { redact, type Identity } from "../../src/uiot/identity";
import {
  isUiotHost,
  UIOT_DEFAULT_KEEPALIVE,
  UIOT_KEEPALIVE,
  UIOT_PORTS,
  UIOT_ROOT_CA_PEM,
} from "../../src/uiot/platform";
import { uiotProfile } from "../../src/uiot/profile";

export type Verdict = "ok" | "warn" | "fail" | "skipped";

export type StepName = "url" | "dns" | "port" | "tcp" | "tls" | "credentials" | "mqtt" | "round-trip" | "kick";

export interface Step {
  name: StepName;
  /** One line for a person: what the step checks. */
  title: string;
  verdict: Verdict;
  /** Milliseconds the step took (0 when skipped). */
  ms: number;
  /** What was seen. */
  detail: string;
  /** What to do (present for warn and fail). */
  fix?: string;
  /** A stable code for programs: a NetError code, "CONNACK_5", "KICKED", ... */
  code?: string;
}

export interface Report {
  /** Nothing failed, and TLS was verified (false with --insecure on a TLS URL: that proves nothing). */
  ok: boolean;
  /** TLS verification was off (--insecure on a TLS URL): passing steps do not show that a device can connect. */
  insecure?: true;
  /** The endpoint as understood (no credentials), or the text given when it did not parse. */
  url: string;
  profile: "generic" | "UIoT Core";
  steps: Step[];
}

export interface DoctorOptions {
  url: string;
  /** UIoT Core device identity: the UIoT profile, its ClientID, UserName and secret. */
  identity?: Identity;
  /** Generic brokers. */
  username?: string;
  password?: string;
  clientId?: string;
  /** Seconds; default 60 (generic) or 300 (UIoT). */
  keepalive?: number;
  /** Trusted CAs (PEM). Default: the UIoT root for *.iot.ucloud.cn, else the system store. */
  ca?: string[];
  /** Where `ca` came from, for the messages: "--ca ca.pem", "the device store .simulator/config.json". */
  caFrom?: string;
  /** Client certificate and key (PEM) for mutual TLS. */
  cert?: string;
  key?: string;
  serverName?: string;
  /** Certificate problems become warnings and the MQTT steps still run. */
  insecure?: boolean;
  /** Topic of the generic round trip (default doctor/<client id>). */
  topic?: string;
  /** Open a second connection with the same client id and see whether it kicks the first. */
  checkKick?: boolean;
  /** How long the connection is watched for an early disconnect, ms (default 2000). */
  watchMs?: number;
  /** Per-step timeout, ms (default 5000). */
  timeoutMs?: number;
  /** Name resolution (tests). */
  lookup?: typeof dns.lookup;
  /** Milliseconds now (tests). */
  now?: () => number;
}

const TITLES: Record<StepName, string> = {
  url: "the URL parses (scheme, host, port, path)",
  dns: "the address resolves",
  port: "the port matches the scheme",
  tcp: "a TCP connection opens (what `telnet host port` shows)",
  tls: "TLS: handshake, certificate chain, host name, expiry",
  credentials: "the credentials and settings are well-formed",
  mqtt: "MQTT CONNECT is accepted (CONNACK)",
  "round-trip": "a message makes a round trip",
  kick: "the connection stays up (no second login with the same client id)",
};

/** What a CONNACK return code (3.1.1) means and what to do. */
const CONNACK_FIX: Record<number, string> = {
  1: "the broker does not speak this MQTT level: it may be an MQTT 5-only or 3.1-only broker; check its documentation",
  2: "the broker refused the client id: use 1..23 letters and digits, make it unique; a broker may also answer 2 to a keepalive above its maximum (Mosquitto's max_keepalive): try a lower --keepalive",
  3: "the broker is up but not accepting connections (overloaded, or its backend is down): try again later, check its status and log",
  4: "check the user name and password (for UIoT Core: the DeviceSecret, and the user name ProductSN|DeviceSN|1); EMQX-style deployments never accept an anonymous login",
  5: "the broker knows who this is but refuses it: an anonymous login where anonymous is off (give --username/--password), or an ACL/authorization rule, or a disabled device; check the broker's access rules",
};

/** Ports everyone knows, and the scheme each belongs to. */
const KNOWN_PORTS: Record<number, Scheme> = { 1883: "mqtt", 8883: "mqtts", 8083: "ws", 8084: "wss" };

interface Ctx {
  o: DoctorOptions;
  now: () => number;
  timeout: number;
  endpoint?: Endpoint;
  uiot: boolean;
  address?: string;
  /** Every address the name resolved to (the TCP step tries them in order). */
  addresses?: string[];
  tls?: TlsOptions;
  client?: ClientSetup;
  /** Set when the network path is broken: later steps are skipped with this reason. */
  blocked?: string;
}

interface ClientSetup {
  clientId: string;
  username?: string;
  password?: string;
  keepalive: number;
  profile: Profile;
}

class StepResult {
  constructor(
    readonly verdict: Verdict,
    readonly detail: string,
    readonly fix?: string,
    readonly code?: string,
  ) {}
}
const ok = (detail: string) => new StepResult("ok", detail);
const warn = (detail: string, fix: string, code?: string) => new StepResult("warn", detail, fix, code);
const fail = (detail: string, fix: string, code?: string) => new StepResult("fail", detail, fix, code);
const skip = (detail: string) => new StepResult("skipped", detail);

/** Splits a NetError message "what: hint" into its parts (the hint is the standard one for the code). */
function netParts(e: NetError): { detail: string; fix: string } {
  const hint = netHint(e.code);
  const suffix = `: ${hint}`;
  const detail = e.message.endsWith(suffix) ? e.message.slice(0, -suffix.length) : e.message;
  return { detail, fix: hint };
}

function elapsed(since: number, now: () => number): number {
  return Math.max(0, Math.round(now() - since));
}

/** Runs every step in order; never throws for a broker problem (only for a bug). */
export async function runDoctor(options: DoctorOptions): Promise<Report> {
  const now = options.now ?? (() => performance.now());
  const ctx: Ctx = { o: options, now, timeout: options.timeoutMs ?? 5000, uiot: options.identity !== undefined };
  const steps: Step[] = [];
  const run = async (name: StepName, f: () => Promise<StepResult> | StepResult) => {
    const start = now();
    let r: StepResult;
    try {
      r = await f();
    } catch (e) {
      r = fail(
        `the doctor itself failed here: ${e instanceof Error ? e.message : String(e)}`,
        "please report this with the output above",
        "DOCTOR_ERROR",
      );
    }
    const step: Step = {
      name,
      title: TITLES[name],
      verdict: r.verdict,
      ms: r.verdict === "skipped" ? 0 : elapsed(start, now),
      detail: r.detail,
    };
    if (r.fix !== undefined) step.fix = r.fix;
    if (r.code !== undefined) step.code = r.code;
    steps.push(step);
    return step;
  };
  const blocked = (f: () => Promise<StepResult> | StepResult) => () =>
    ctx.blocked ? skip(`not tried: ${ctx.blocked}`) : f();

  await run("url", () => stepUrl(ctx));
  await run(
    "dns",
    blocked(() => stepDns(ctx)),
  );
  await run("port", () => (ctx.endpoint ? stepPort(ctx) : skip("not tried: the URL does not parse")));
  await run(
    "tcp",
    blocked(() => stepTcp(ctx)),
  );
  await run(
    "tls",
    blocked(() => stepTls(ctx)),
  );
  // The credentials are checked even when the network is broken: a local refusal is worth knowing either way.
  await run("credentials", () => stepCredentials(ctx));
  const mqtt = new MqttSteps(ctx);
  await run(
    "mqtt",
    blocked(() => mqtt.connect()),
  );
  await run(
    "round-trip",
    blocked(() => mqtt.roundTrip()),
  );
  await run(
    "kick",
    blocked(() => mqtt.watch()),
  );
  mqtt.close();

  const url = ctx.endpoint ? formatEndpoint(ctx.endpoint) : options.url.replace(/\/\/[^/@]*@/, "//****@");
  const insecure = options.insecure === true && ctx.endpoint !== undefined && isSecure(ctx.endpoint.scheme);
  const report: Report = {
    ok: !insecure && !steps.some((s) => s.verdict === "fail"),
    url,
    profile: ctx.uiot ? "UIoT Core" : "generic",
    steps,
  };
  if (insecure) report.insecure = true;
  return report;
}

// ---- 1. the URL ----

function stepUrl(ctx: Ctx): StepResult {
  let e: Endpoint;
  try {
    e = parseEndpoint(ctx.o.url);
    if (isUiotHost(e.host)) e = parseEndpoint(ctx.o.url, { ports: UIOT_PORTS });
  } catch (err) {
    ctx.blocked = "the URL does not parse";
    if (err instanceof NetError) {
      const p = netParts(err);
      return fail(p.detail, p.fix, err.code);
    }
    throw err;
  }
  ctx.endpoint = e;
  const parts = [`scheme ${e.scheme}`, `host ${e.host}`, `port ${e.port}`];
  if (isWebSocket(e.scheme)) parts.push(`path ${e.path}`);
  const kind = isSecure(e.scheme)
    ? isWebSocket(e.scheme)
      ? "MQTT over WebSocket over TLS"
      : "MQTT over TLS"
    : isWebSocket(e.scheme)
      ? "MQTT over WebSocket"
      : "MQTT over plain TCP";
  return ok(`${parts.join(", ")} (${kind}${isUiotHost(e.host) ? ", a UIoT Core host" : ""})`);
}

// ---- 2. DNS ----

async function stepDns(ctx: Ctx): Promise<StepResult> {
  const host = ctx.endpoint!.host;
  if (net.isIP(host)) {
    ctx.address = host;
    return ok(`${host} is an IP address: nothing to resolve`);
  }
  const lookup = ctx.o.lookup ?? dns.lookup;
  try {
    const addresses = await withTimeout(
      new Promise<dns.LookupAddress[]>((resolve, reject) =>
        lookup(host, { all: true }, (err, list) => (err ? reject(err) : resolve(list as dns.LookupAddress[]))),
      ),
      ctx.timeout,
      () => Object.assign(new Error("timeout"), { code: "EAI_AGAIN" }),
    );
    if (addresses.length === 0) throw Object.assign(new Error("no addresses"), { code: "ENODATA" });
    ctx.address = addresses[0].address;
    ctx.addresses = addresses.map((a) => a.address);
    return ok(`${host} → ${addresses.map((a) => a.address).join(", ")}`);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    ctx.blocked = `${host} does not resolve`;
    const fix =
      host.endsWith(".invalid") || host.endsWith(".example") || host.endsWith(".test")
        ? `"${host}" ends in a name reserved never to resolve: write the broker's real host name (the deployment's address from its console)`
        : `${netHint("DNS_FAILED")}; compare with the address the broker's console shows`;
    return fail(`cannot resolve the host name "${host}"${code ? ` (${code})` : ""}`, fix, "DNS_FAILED");
  }
}

// ---- 3. the port ----

function stepPort(ctx: Ctx): StepResult {
  const e = ctx.endpoint!;
  const uiotHost = isUiotHost(e.host);
  const expected = uiotHost && isWebSocket(e.scheme) ? UIOT_PORTS[e.scheme]! : DEFAULT_PORTS[e.scheme];
  const usual = `${e.scheme}:// usually uses ${expected}${uiotHost ? " on UIoT Core" : ""}`;
  if (e.port === expected) return ok(`${e.port} is the usual port for ${e.scheme}://`);
  let owner: Scheme | undefined = KNOWN_PORTS[e.port];
  if (uiotHost || owner === undefined) {
    if (e.port === 80) owner = "ws";
    if (e.port === 443) owner = "wss";
  }
  if (owner !== undefined && owner !== e.scheme) {
    const tlsMismatch = isSecure(owner) !== isSecure(e.scheme);
    const right = `${owner}://${hostPort(e.host, e.port)}${isWebSocket(owner) ? e.path || "/mqtt" : ""}`;
    const what = tlsMismatch
      ? isSecure(owner)
        ? `${e.port} is normally a TLS port (${owner}), but ${e.scheme}:// is not encrypted`
        : `${e.port} is normally a plain port (${owner}), but ${e.scheme}:// speaks TLS`
      : `${e.port} is normally the ${owner}:// port`;
    return warn(
      `${what}; ${usual}`,
      `if the broker uses the usual ports, write ${right} or ${e.scheme}://${hostPort(e.host, expected)}${isWebSocket(e.scheme) ? e.path : ""}`,
      "PORT_MISMATCH",
    );
  }
  return ok(`${e.port} is not a standard port (${usual}): fine if the broker was set up that way`);
}

// ---- 4. TCP ----

async function stepTcp(ctx: Ctx): Promise<StepResult> {
  const e = ctx.endpoint!;
  const candidates = ctx.addresses ?? [ctx.address!];
  let first: { where: string; ms: number; error?: NodeJS.ErrnoException; timeout?: boolean } | undefined;
  for (const address of candidates) {
    const where = hostPort(address, e.port);
    const start = ctx.now();
    const outcome = await tcpProbe(address, e.port, ctx.timeout);
    const ms = elapsed(start, ctx.now);
    if (!outcome.error && !outcome.timeout) {
      ctx.address = address; // the MQTT steps dial the name again; TLS uses this address
      const others = first ? ` (after ${first.where} failed)` : "";
      return ok(`connected to ${where} in ${ms} ms${others} (telnet: "Connected to ${e.host}")`);
    }
    first = first ?? { where, ms, ...outcome };
  }
  const { where, ms, error, timeout } = first!;
  ctx.blocked = `no TCP connection to ${hostPort(e.host, e.port)}`;
  const tried = candidates.length > 1 ? ` (${candidates.length} addresses tried, none connected)` : "";
  if (timeout)
    return fail(
      `no answer from ${where} within ${ctx.timeout} ms${tried} (telnet would hang at "Trying ${candidates[0]}...")`,
      netHint("TIMEOUT"),
      "TIMEOUT",
    );
  const code = error!.code ?? "";
  if (code === "ECONNREFUSED")
    return fail(
      `${where} refused the connection after ${ms} ms${tried} (telnet: "Connection refused")`,
      netHint("CONNECTION_REFUSED"),
      "CONNECTION_REFUSED",
    );
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "ENETDOWN" || code === "EHOSTDOWN")
    return fail(`${where} is unreachable (${code})${tried}`, netHint("UNREACHABLE"), "UNREACHABLE");
  return fail(`cannot connect to ${where}: ${error!.message}${tried}`, netHint("TIMEOUT"), code || "TCP_FAILED");
}

function tcpProbe(
  host: string,
  port: number,
  timeoutMs: number,
): Promise<{ error?: NodeJS.ErrnoException; timeout?: boolean }> {
  const socket = net.connect({ host, port });
  return probeSocket<{ error?: NodeJS.ErrnoException; timeout?: boolean }>(
    socket,
    timeoutMs,
    { timeout: true },
    (settle) => {
      socket.once("connect", () => settle({}));
      socket.once("error", (error) => settle({ error }));
    },
  );
}

/**
 * A look at the endpoint through one socket, settled once: `wire` hooks the socket's events to `settle`, and after
 * `timeoutMs` it settles with `timedOut`. Settling stops the timer, leaves an error sink on the socket and destroys
 * it, unless the settler keeps it (the TLS step reads the certificate of the socket it kept, then destroys it).
 */
function probeSocket<T>(
  socket: net.Socket,
  timeoutMs: number,
  timedOut: T,
  wire: (settle: (value: T, keep?: boolean) => void) => void,
): Promise<T> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (value: T, keep = false): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners("error");
      socket.on("error", () => undefined);
      if (!keep) socket.destroy();
      resolve(value);
    };
    const timer = setTimeout(() => settle(timedOut), timeoutMs);
    wire(settle);
  });
}

/** A TLS connection to the endpoint that checks no certificate (the TLS step did), for the probes below. */
function unverifiedTls(ctx: Ctx): tls.TLSSocket {
  const e = ctx.endpoint!;
  return tls.connect({
    host: ctx.address ?? e.host,
    port: e.port,
    rejectUnauthorized: false,
    servername: ctx.tls?.serverName ?? (net.isIP(e.host) ? undefined : e.host),
  });
}

// ---- 5. TLS ----

interface PeerCert {
  subject?: Record<string, string | string[]>;
  issuer?: Record<string, string | string[]>;
  subjectaltname?: string;
  valid_from: string;
  valid_to: string;
  fingerprint256: string;
  issuerCertificate?: PeerCert;
}

function dn(name: Record<string, string | string[]> | undefined): string {
  if (!name) return "?";
  const v = (k: string) => (Array.isArray(name[k]) ? (name[k] as string[]).join("+") : name[k]);
  const parts: string[] = [];
  for (const k of ["CN", "O", "OU"]) if (name[k] !== undefined) parts.push(`${k}=${v(k)}`);
  return parts.length
    ? parts.join(", ")
    : Object.keys(name)
        .map((k) => `${k}=${v(k)}`)
        .join(", ");
}

/** The TLS options the MQTT steps use (and this step checks with). */
function tlsOptions(ctx: Ctx): TlsOptions | undefined {
  const e = ctx.endpoint!;
  if (!isSecure(e.scheme)) return undefined;
  const o = ctx.o;
  const t: TlsOptions = {};
  if (o.ca?.length) t.ca = o.ca;
  else if (isUiotHost(e.host)) t.ca = [UIOT_ROOT_CA_PEM];
  if (o.cert !== undefined) t.cert = o.cert;
  if (o.key !== undefined) t.key = o.key;
  if (o.serverName !== undefined) t.serverName = o.serverName;
  if (o.insecure) t.insecure = true;
  return t;
}

function caSource(ctx: Ctx): string {
  if (ctx.o.ca?.length) return `the CA given (${ctx.o.ca.length} certificate${ctx.o.ca.length > 1 ? "s" : ""})`;
  if (isUiotHost(ctx.endpoint!.host)) return "the bundled UIoT Core root CA";
  return "the system's CA store";
}

async function stepTls(ctx: Ctx): Promise<StepResult> {
  const e = ctx.endpoint!;
  if (!isSecure(e.scheme)) return skip(`${e.scheme}:// is not encrypted`);
  const t = tlsOptions(ctx)!;
  ctx.tls = t;
  const dial = { endpoint: e, secure: true, clientCert: t.cert !== undefined };
  const outcome = await tlsHandshake(ctx, t);
  if (!outcome.socket) return handshakeFailed(ctx, outcome, dial);
  const socket = outcome.socket;
  try {
    const cert = socket.getPeerCertificate(true) as unknown as PeerCert;
    const protocol = socket.getProtocol() ?? "?";
    const days = Math.floor((Date.parse(cert.valid_to) - Date.now()) / 86400000);
    const facts = certificateFacts(ctx, cert, protocol, days);
    const err = certificateProblem(socket, t.serverName ?? e.host, dial);
    if (err) return certificateRefused(ctx, err, cert, facts, t.insecure === true);
    if (t.insecure) facts.push("the certificate passed verification, though --insecure was given");
    if (protocol !== "TLSv1.2" && protocol !== "TLSv1.3")
      return warn(
        facts.join("; "),
        "the server negotiated an outdated TLS version: a device (and UIoT Core) uses TLS 1.2; update the broker's TLS settings",
        "TLS_OLD_VERSION",
      );
    if (days < 30)
      return warn(
        facts.join("; "),
        `the certificate expires in ${days} days: renew it on the broker before devices start failing`,
        "TLS_EXPIRES_SOON",
      );
    return ok(facts.join("; "));
  } finally {
    socket.destroy();
  }
}

type Dial = Parameters<typeof describeEnd>[1];
type Handshake = { socket?: tls.TLSSocket; end?: Parameters<typeof describeEnd>[0]; timeout?: boolean };

/** The TLS handshake with the options the MQTT steps use, verification left for after a look at the certificate. */
function tlsHandshake(ctx: Ctx, t: TlsOptions): Promise<Handshake> {
  const e = ctx.endpoint!;
  const socket = tls.connect({
    host: ctx.address!,
    port: e.port,
    servername: t.serverName ?? (net.isIP(e.host) ? undefined : e.host),
    ca: t.ca as string[] | undefined,
    cert: t.cert as string | undefined,
    key: t.key as string | undefined,
    rejectUnauthorized: false, // verified by the TLS step, after a look at what the server presented
  });
  return probeSocket<Handshake>(socket, ctx.timeout, { timeout: true }, (settle) => {
    socket.once("secureConnect", () => settle({ socket }, true));
    socket.once("error", (error) => settle({ end: { kind: "error", error } }));
    socket.once("end", () => settle({ end: { kind: "end" } }));
    socket.once("close", () => settle({ end: { kind: "close" } }));
  });
}

/** The TLS step's verdict on a handshake that timed out or ended without a session. */
function handshakeFailed(ctx: Ctx, outcome: Handshake, dial: Dial): StepResult {
  const e = ctx.endpoint!;
  if (outcome.timeout) {
    ctx.blocked = "the TLS handshake did not complete";
    return fail(
      `no TLS handshake with ${hostPort(e.host, e.port)} within ${ctx.timeout} ms`,
      netHint("TIMEOUT"),
      "TIMEOUT",
    );
  }
  const err = describeEnd(outcome.end!, dial, false, false);
  ctx.blocked = "the TLS handshake failed";
  const p = netParts(err);
  if (err.code === "NOT_TLS") {
    const plain = e.scheme === "wss" ? "ws" : "mqtt";
    return fail(
      `${p.detail}: the port answers, but not in TLS (TLS to a plain port)`,
      `this port does not speak TLS: use ${plain}://${hostPort(e.host, e.port)}${e.scheme === "wss" ? e.path : ""}, or the broker's TLS port (usually mqtts 8883, wss 8084)`,
      err.code,
    );
  }
  return fail(p.detail, p.fix, err.code);
}

/** What the server presented: protocol, chain, names, validity and the CA it is checked against. */
function certificateFacts(ctx: Ctx, cert: PeerCert, protocol: string, days: number): string[] {
  const chain: string[] = [];
  const seen = new Set<string>();
  for (let c: PeerCert | undefined = cert; c?.fingerprint256 && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    chain.push(`subject ${dn(c.subject)} / issuer ${dn(c.issuer)}`);
  }
  return [
    `${protocol}`,
    `certificate ${chain.join(" ← ")}`,
    cert.subjectaltname ? `names ${cert.subjectaltname}` : "no subjectAltName",
    `valid ${cert.valid_from} .. ${cert.valid_to} (${days} days left)`,
    `trusted by ${caSource(ctx)}`,
  ];
}

/** Why a device would refuse the server's certificate (as `checkName`), or undefined when it would accept it. */
function certificateProblem(socket: tls.TLSSocket, checkName: string, dial: Dial): NetError | undefined {
  const problem = (code: string): NetError =>
    describeEnd({ kind: "error", error: Object.assign(new Error(code), { code }) }, dial, true, false);
  const authError = socket.authorizationError as unknown as string | Error | null;
  const authCode = authError
    ? typeof authError === "string"
      ? authError
      : ((authError as NodeJS.ErrnoException).code ?? authError.message)
    : "";
  if (authCode && authCode !== "ERR_TLS_CERT_ALTNAME_INVALID") return problem(authCode);
  // Node records only the code of a name mismatch: ask again for the reason (which names the certificate has).
  const nameError = tls.checkServerIdentity(checkName, socket.getPeerCertificate() as tls.PeerCertificate);
  if (nameError) return describeEnd({ kind: "error", error: nameError }, dial, true, false);
  return authCode ? problem(authCode) : undefined;
}

/** The TLS step's verdict on a certificate a device would refuse: a failure, or a warning under --insecure. */
function certificateRefused(ctx: Ctx, err: NetError, cert: PeerCert, facts: string[], insecure: boolean): StepResult {
  const p = netParts(err);
  const fix = certificateFix(ctx, err, cert) ?? p.fix;
  const detail = `${p.detail}; ${facts.join("; ")}`;
  if (insecure)
    return warn(
      `${detail} (ignored: --insecure; a device would refuse this certificate)`,
      `${fix}; never ship with verification off`,
      err.code,
    );
  ctx.blocked = "the server's certificate is not accepted";
  return fail(detail, fix, err.code);
}

/** What to do about a refused certificate, from what it holds, when there is more to say than the error's own hint. */
function certificateFix(ctx: Ctx, err: NetError, cert: PeerCert): string | undefined {
  const host = ctx.endpoint!.host;
  if (err.code === "TLS_UNKNOWN_CA")
    return ctx.o.ca?.length
      ? `the CA given (${ctx.o.caFrom ?? "--ca"}: ${caSubjects(ctx.o.ca)}) did not sign the broker's certificate, which was issued by ${dn(cert.issuer)}: use that issuer's CA certificate instead (from the broker's operator), or check that this is the broker you meant`
      : `pass the CA that signed the broker's certificate (issuer: ${dn(cert.issuer)}) with --ca <file.pem>${isUiotHost(host) ? " (the bundled UIoT Core root did not sign it: is this a UIoT Core host?)" : "; the system's CA store is used when none is given"}`;
  if (err.code === "TLS_HOSTNAME_MISMATCH")
    return `connect with a name the certificate holds (${cert.subjectaltname ?? dn(cert.subject)}), or pass it with --server-name`;
  if (err.code === "TLS_EXPIRED")
    return Date.now() < Date.parse(cert.valid_from)
      ? "the certificate is not valid yet: check this machine's clock, or the broker's certificate dates"
      : `the broker's certificate expired on ${cert.valid_to}: renew it on the broker (and check this machine's clock)`;
  return undefined;
}

/** The subjects of the CA certificates in `pems` (each may hold several), for a message. */
function caSubjects(pems: string[]): string {
  const names: string[] = [];
  for (const pem of pems) {
    for (const block of pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []) {
      try {
        const subject = new X509Certificate(block).subject;
        const cn = /^CN=(.*)$/m.exec(subject);
        names.push(cn ? `CN=${cn[1]}` : subject.split("\n").join(", "));
      } catch {
        names.push("a certificate that does not parse");
      }
    }
  }
  return names.length ? names.join("; ") : "no PEM certificate";
}

// ---- 6. credentials ----

function stepCredentials(ctx: Ctx): StepResult {
  const o = ctx.o;
  const id = o.identity;
  if (id) {
    const keepalive = o.keepalive ?? UIOT_DEFAULT_KEEPALIVE;
    const facts = [
      `client id ${id.clientId}`,
      `user name ${id.username} (authmode ${id.authmode}: ${id.authmode === 1 ? "DeviceSecret" : "ProductSecret, dynamic registration only"})`,
      `password ${redact(id.revealSecret())}`,
      `keepalive ${keepalive} s`,
    ];
    const [min, max] = UIOT_KEEPALIVE;
    if (!Number.isInteger(keepalive) || keepalive < min || keepalive > max) {
      ctx.blocked = ctx.blocked ?? "refused locally: the settings break UIoT Core's rules";
      return fail(
        `${facts.join("; ")}: keepalive ${keepalive} s is outside UIoT Core's ${min}..${max} s, so the platform would refuse the connection; refused here, before connecting`,
        `use a keepalive from ${min} to ${max} s (${UIOT_DEFAULT_KEEPALIVE} or more recommended): --keepalive ${UIOT_DEFAULT_KEEPALIVE}`,
        "KEEPALIVE_RANGE",
      );
    }
    ctx.client = {
      clientId: id.clientId,
      username: id.username,
      password: id.revealSecret(),
      keepalive,
      profile: uiotProfile(id.productSN, id.deviceSN),
    };
    if (id.authmode === 2)
      return warn(
        `${facts.join("; ")}`,
        "authmode 2 (the ProductSecret) may only fetch the DeviceSecret once (npm run provision / dynamic registration): check the device with its DeviceSecret",
        "AUTHMODE_2",
      );
    if (keepalive < 300)
      return warn(
        facts.join("; "),
        `UIoT Core recommends a keepalive of 300 s or more: --keepalive ${UIOT_DEFAULT_KEEPALIVE}`,
        "KEEPALIVE_LOW",
      );
    return ok(`${facts.join("; ")} (UIoT Core: keepalive within ${min}..${max} s)`);
  }
  const keepalive = o.keepalive ?? 60;
  const clientId = o.clientId ?? `doctor-${Math.random().toString(36).slice(2, 10)}`;
  const facts = [`client id ${clientId}`];
  if (o.username !== undefined)
    facts.push(`user name ${o.username}`, `password ${o.password === undefined ? "none" : redact(o.password)}`);
  else facts.push("no user name (anonymous login)");
  facts.push(`keepalive ${keepalive} s`);
  if (!Number.isInteger(keepalive) || keepalive < 0 || keepalive > 65535) {
    ctx.blocked = ctx.blocked ?? "refused locally: the keepalive is not valid";
    return fail(`${facts.join("; ")}: MQTT's keepalive is 0..65535 s`, "use a keepalive such as 60", "KEEPALIVE_RANGE");
  }
  if (clientId === "" || Buffer.byteLength(clientId) > 65535) {
    ctx.blocked = ctx.blocked ?? "refused locally: the client id is not valid";
    return fail(
      `${facts.join("; ")}: the client id is empty or too long`,
      "give --client-id with 1..23 letters and digits",
      "CLIENT_ID",
    );
  }
  ctx.client = { clientId, username: o.username, password: o.password, keepalive, profile: GENERIC };
  if (o.password !== undefined && o.username === undefined)
    return warn(
      facts.join("; "),
      "a password without a user name is not sent by MQTT 3.1.1: give --username too",
      "PASSWORD_WITHOUT_USER",
    );
  return ok(facts.join("; "));
}

// ---- 7, 8. MQTT: CONNECT, round trip, kick ----

/** One MQTT connection of the doctor's, with what happened to it. */
class Conn {
  readonly client: Client;
  connectedAt = -1;
  downAt = -1;
  down?: MqttError;
  messages: { topic: string; payload: string }[] = [];
  private waiters: (() => void)[] = [];

  constructor(ctx: Ctx, setup: ClientSetup) {
    const connect = nodeConnector(ctx.endpoint!, ctx.tls);
    const options = {
      clientId: setup.clientId,
      username: setup.username,
      keepalive: setup.keepalive,
      profile: setup.profile,
      connect,
      clock: nodeClock,
      connectTimeout: ctx.timeout,
      // One attempt: the doctor reports, it does not retry.
      backoff: { min: 3600000, max: 3600000 },
      onConnect: () => {
        this.connectedAt = ctx.now();
        this.poke();
      },
      onDisconnect: (error: MqttError) => {
        if (this.down === undefined) {
          this.down = error;
          this.downAt = ctx.now();
        }
        this.client.close();
        this.poke();
      },
      onMessage: (topic: string, payload: Uint8Array) => {
        this.messages.push({ topic, payload: Buffer.from(payload).toString("utf8") });
        this.poke();
      },
    };
    if (setup.password !== undefined)
      Object.defineProperty(options, "password", { value: setup.password, enumerable: false });
    this.client = new Client(options);
  }

  private poke(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when `cond` holds or after `ms`; returns whether it held. */
  until(cond: () => boolean, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (cond()) return resolve(true);
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve(cond());
      }, ms);
      const check = () => {
        if (cond()) {
          clearTimeout(timer);
          resolve(true);
        } else this.waiters.push(check);
      };
      this.waiters.push(check);
    });
  }
}

/** The MQTT steps (CONNECT, the round trip, the kick watch) on the doctor's one connection. */
class MqttSteps {
  private conn?: Conn;
  private connected = false;
  constructor(private ctx: Ctx) {}

  close(): void {
    this.conn?.client.close();
  }

  async connect(): Promise<StepResult> {
    const ctx = this.ctx;
    if (!ctx.client) return skip("not tried: the credentials step failed");
    const e = ctx.endpoint!;
    if (ctx.tls === undefined) ctx.tls = tlsOptions(ctx);
    const conn = (this.conn = new Conn(ctx, ctx.client));
    const start = ctx.now();
    conn.client.start();
    await conn.until(() => conn.connectedAt >= 0 || conn.down !== undefined, ctx.timeout + 1000);
    const ms = elapsed(start, ctx.now);
    if (conn.connectedAt >= 0) {
      // Accepted; a close right after (a kick) is the kick step's to report.
      this.connected = true;
      return ok(`CONNACK 0 (accepted) after ${ms} ms, MQTT 3.1.1, clean session, keepalive ${ctx.client.keepalive} s`);
    }
    ctx.blocked = "MQTT CONNECT was not accepted";
    const err = conn.down;
    if (!err || err.code === "CONNECT_TIMEOUT") {
      // A server silent after CONNECT may be waiting for the rest of a request line: ask it in HTTP on a second
      // connection (a web server answers at once).
      conn.client.close();
      const http = isWebSocket(e.scheme) ? undefined : await httpAnswer(ctx);
      if (http)
        return fail(
          `no CONNACK within ${ctx.timeout} ms, and the port answers an HTTP request (${http}): not an MQTT broker: it looks like HTTP (a web server)`,
          `${netHint("NOT_MQTT")}; for MQTT over WebSocket use ${isSecure(e.scheme) ? "wss" : "ws"}:// with the broker's path (often /mqtt)`,
          "NOT_MQTT",
        );
    }
    if (!err)
      return fail(
        `no CONNACK within ${ctx.timeout} ms`,
        "the server accepted the connection but did not answer CONNECT: is it an MQTT broker? check the port, the scheme (TLS or not) and the broker's log",
        "CONNECT_TIMEOUT",
      );
    if (err.code === "CONNECT_REFUSED") {
      const rc = err.returnCode ?? -1;
      let fix = CONNACK_FIX[rc] ?? "see the broker's documentation for this return code";
      const setup = ctx.client!;
      if (rc === 5 && setup.username === undefined)
        fix = "the broker refuses anonymous logins (EMQX-style deployments always do): give --username and --password";
      else if (rc === 5)
        fix = ctx.uiot
          ? "the platform knows the device but refuses it: is the device disabled, or its DeviceSecret wrong? check it in the console"
          : `either the password (or user name) is wrong, since Mosquitto answers 5 rather than 4 to a wrong password, or user "${setup.username}" may not connect (an ACL or plugin refuses it): check both in the broker's configuration and log`;
      return fail(`${err.message}`, fix, `CONNACK_${rc}`);
    }
    if (err.code === "CONNECT_TIMEOUT")
      return fail(
        `no CONNACK within ${ctx.timeout} ms`,
        "the server accepted the connection but did not answer CONNECT: is it an MQTT broker (and not, say, a WebSocket or TLS port)? check the scheme and port",
        err.code,
      );
    const cause = err.cause instanceof NetError ? err.cause : undefined;
    if (cause) {
      const p = netParts(cause);
      if (cause.code === "NO_ANSWER" && !isSecure(e.scheme)) {
        // Plain to a TLS port? Ask the port in TLS.
        if (await speaksTls(ctx)) {
          const tlsScheme = e.scheme === "ws" ? "wss" : "mqtts";
          return fail(
            `${p.detail}, and the port answers a TLS handshake: plain ${e.scheme}:// to a TLS port`,
            `use ${tlsScheme}://${hostPort(e.host, e.port)}${e.scheme === "ws" ? e.path : ""} (with --ca when the broker's CA is private)`,
            "TLS_REQUIRED",
          );
        }
      }
      if (cause.code === "NOT_MQTT" || cause.code === "WS_HANDSHAKE_FAILED")
        return fail(`${p.detail}: not an MQTT broker`, p.fix, cause.code);
      return fail(p.detail, p.fix, cause.code as NetErrorCode);
    }
    return fail(err.message, "check the broker's log", err.code);
  }

  async roundTrip(): Promise<StepResult> {
    const ctx = this.ctx;
    const conn = this.conn;
    if (!conn || !this.connected) return skip("not tried: no MQTT connection");
    const id = ctx.o.identity;
    const requestId = `doctor-${Date.now().toString(36)}`;
    let subTopic: string,
      pubTopic: string,
      payload: string,
      match: (m: { topic: string; payload: string }) => boolean,
      what: string;
    if (id) {
      const base = `/$system/${id.productSN}/${id.deviceSN}/tmodel/template/`;
      subTopic = `${base}get_reply`;
      pubTopic = `${base}get`;
      payload = JSON.stringify({ RequestID: requestId });
      what = "thing-model template get → get_reply";
      match = (m) => m.topic === subTopic && m.payload.indexOf(`"${requestId}"`) >= 0;
    } else {
      subTopic = pubTopic = ctx.o.topic ?? `doctor/${ctx.client!.clientId}`;
      payload = requestId;
      what = `subscribe + publish on ${subTopic}`;
      match = (m) => m.topic === subTopic && m.payload === requestId;
    }
    const subscribed = await new Promise<{ error?: MqttError; granted?: number[] }>((resolve) => {
      try {
        conn.client.subscribe(subTopic, 1, (error, granted) => resolve({ error, granted }));
      } catch (error) {
        resolve({ error: error as MqttError });
      }
      setTimeout(() => resolve({ error: new MqttError("CONNECT_TIMEOUT", "no SUBACK") }), ctx.timeout);
    });
    if (subscribed.error || !subscribed.granted || subscribed.granted[0] === 0x80) {
      if (conn.down) return this.lostDuring("the subscription");
      if (subscribed.error && subscribed.error.code !== "SUBSCRIBE_REFUSED")
        return fail(
          `SUBSCRIBE ${subTopic}: ${subscribed.error.message}`,
          subscribed.error.code === "NOT_ALLOWED"
            ? "use a topic the platform allows this device"
            : "check the broker's log",
          subscribed.error.code,
        );
      return fail(
        `SUBSCRIBE ${subTopic} refused (SUBACK 0x80)`,
        id
          ? "the platform refused the device's own topic: check the ProductSN/DeviceSN and the product's topic permissions"
          : "the broker's ACL does not let this user read that topic: grant it, or pick one with --topic",
        "SUBACK_0x80",
      );
    }
    const start = ctx.now();
    const published = await new Promise<MqttError | undefined>((resolve) => {
      try {
        conn.client.publish(pubTopic, payload, { qos: 1 }, (error) => resolve(error));
      } catch (error) {
        resolve(error as MqttError);
      }
      setTimeout(() => resolve(new MqttError("CONNECT_TIMEOUT", "no PUBACK")), ctx.timeout);
    });
    if (conn.down) return this.lostDuring("the publish");
    if (published) return fail(`PUBLISH ${pubTopic}: ${published.message}`, "check the broker's log", published.code);
    const got = await conn.until(() => conn.messages.some(match) || conn.down !== undefined, ctx.timeout);
    if (conn.down) return this.lostDuring("the round trip");
    if (!got || !conn.messages.some(match)) {
      return fail(
        `${what}: PUBACK came, but no answer within ${ctx.timeout} ms`,
        id
          ? "the platform did not answer on the device's reply topic: check the product's thing model service and the device's topic permissions"
          : "the broker accepted the publish but did not deliver it back: its ACL probably denies publishing (Mosquitto drops denied publishes silently) or reading that topic; grant it, or pick one with --topic",
        "NO_ROUND_TRIP",
      );
    }
    const reply = conn.messages.find(match)!;
    let extra = "";
    if (id) {
      try {
        const r = JSON.parse(reply.payload) as { RetCode?: unknown };
        extra = `, RetCode ${String(r.RetCode)}`;
        if (r.RetCode !== 0 && r.RetCode !== "0")
          return warn(
            `${what}: answered in ${elapsed(start, ctx.now)} ms${extra}`,
            "the platform answered with an error: check the product's thing model",
            "RETCODE",
          );
      } catch {
        extra = ", answer not JSON";
      }
    }
    return ok(`${what}: QoS 1, answered in ${elapsed(start, ctx.now)} ms${extra}`);
  }

  private lostDuring(what: string): StepResult {
    const conn = this.conn!;
    const after = conn.downAt - conn.connectedAt;
    return fail(
      `the broker closed the connection during ${what}, ${after} ms after CONNACK (${conn.down!.message})`,
      this.kickFix(),
      "CONNECTION_LOST",
    );
  }

  private kickFix(): string {
    return this.ctx.uiot
      ? "another device (or process) logs in with this same DeviceSN and the platform keeps only the newest: find the duplicate (a second board flashed with the same identity, a simulator left running); kicks again and again right after CONNACK are almost always a duplicated DeviceSN"
      : "another client uses the same client id and the broker keeps only the newest connection: give every client its own id (stop the other process, or change --client-id)";
  }

  async watch(): Promise<StepResult> {
    const ctx = this.ctx;
    const conn = this.conn;
    if (!conn || !this.connected) return skip("not tried: no MQTT connection");
    if (conn.down) {
      return fail(
        `the connection was closed ${conn.downAt - conn.connectedAt} ms after CONNACK (${conn.down.message}): most likely a second login with the same client id kicked it`,
        this.kickFix(),
        "KICKED",
      );
    }
    const watchMs = ctx.o.watchMs ?? 2000;
    await conn.until(() => conn.down !== undefined, watchMs);
    const down = conn.down as MqttError | undefined;
    if (down)
      return fail(
        `the broker closed the connection ${conn.downAt - conn.connectedAt} ms after CONNACK (${down.message}), with nothing sent that it could refuse: a second login with the same client id kicked it`,
        this.kickFix(),
        "KICKED",
      );
    const upFor = Math.round(ctx.now() - conn.connectedAt);
    if (!ctx.o.checkKick)
      return ok(
        `still connected ${upFor} ms after CONNACK: nobody else logged in with this client id meanwhile (--check-kick opens a second login to see the broker kick the first)`,
      );
    // --check-kick: a second login with the same client id; the broker should keep only the newest.
    const second = new Conn(ctx, ctx.client!);
    const start = ctx.now();
    second.client.start();
    try {
      await second.until(() => second.connectedAt >= 0 || second.down !== undefined, ctx.timeout + 1000);
      if (second.connectedAt < 0)
        return warn(
          `the second login was not accepted (${second.down?.message ?? "no CONNACK"})`,
          "the broker refuses a second login with a client id in use instead of kicking the first: fine, but a restarted device then waits for its old session to time out",
          "SECOND_LOGIN_REFUSED",
        );
      const kicked = await conn.until(() => conn.down !== undefined, Math.min(ctx.timeout, 3000));
      if (kicked)
        return ok(
          `--check-kick: a second login with client id ${ctx.client!.clientId} kicked the first ${Math.round(conn.downAt - start)} ms after it began, as it should: one connection per client id${ctx.uiot ? " (per DeviceSN)" : ""}. A device kicked again and again right after CONNACK therefore has a duplicate`,
        );
      return warn(
        `--check-kick: a second login with client id ${ctx.client!.clientId} was accepted and the first stayed connected`,
        "the broker lets two clients share a client id (MQTT says the first must be closed): messages may go to either; give every client its own id",
        "NO_KICK",
      );
    } finally {
      second.client.close();
    }
  }
}

/**
 * The status line (and Server header) the endpoint answers to `GET / HTTP/1.0`, in TLS for a TLS scheme (certificate
 * not checked: the TLS step did), or undefined when the answer is not HTTP or none comes within the timeout.
 */
function httpAnswer(ctx: Ctx): Promise<string | undefined> {
  const e = ctx.endpoint!;
  const socket: net.Socket = isSecure(e.scheme)
    ? unverifiedTls(ctx)
    : net.connect({ host: ctx.address ?? e.host, port: e.port });
  let head = "";
  return probeSocket<string | undefined>(socket, ctx.timeout, undefined, (done) => {
    socket.once(isSecure(e.scheme) ? "secureConnect" : "connect", () => {
      socket.write(
        `GET / HTTP/1.0\r\nHost: ${hostPort(e.host, e.port)}\r\nUser-Agent: uiot-doctor\r\nConnection: close\r\n\r\n`,
      );
    });
    socket.on("data", (chunk: Buffer) => {
      head += chunk.toString("latin1");
      if (!"HTTP/".startsWith(head.slice(0, 5))) return done(undefined); // not an HTTP answer
      const end = head.indexOf("\r\n\r\n");
      if (end < 0 && head.length < 8192) return;
      const lines = head.slice(0, end < 0 ? head.length : end).split("\r\n");
      if (!/^HTTP\/\d\.\d \d{3}/.test(lines[0])) return done(undefined);
      const server = lines.find((l) => /^server:/i.test(l));
      done(`${lines[0].slice(0, 60)}${server ? `, ${server.slice(0, 80)}` : ""}`);
    });
    socket.once("error", () => done(undefined));
    socket.once("close", () => done(head.startsWith("HTTP/1.") ? head.split("\r\n")[0].slice(0, 60) : undefined));
  });
}

/** Whether the endpoint's port completes a TLS handshake (certificate not checked). */
function speaksTls(ctx: Ctx): Promise<boolean> {
  const socket = unverifiedTls(ctx);
  return probeSocket(socket, ctx.timeout, false, (done) => {
    socket.once("secureConnect", () => done(true));
    socket.once("error", () => done(false));
    socket.once("close", () => done(false));
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, error: () => Error): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(error()), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
