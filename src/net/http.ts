/**
 * A small HTTP/1.1 client for one thing: downloading a file in ranges (a firmware image), over the byte
 * transports the MQTT client already uses (the host's connector for a raw TCP or TLS stream, src/host.ts).
 *
 *   const get = new HttpGet({ url, open, clock, from: 4096 }, {
 *     onResponse(r) { ... r.start, r.length, r.total ... },
 *     onData(chunk) { ... },        // the body, as it arrives (never held whole)
 *     onEnd() { ... },              // every byte of the body came
 *     onError(e) { ... },           // HttpError: code, status, message for a person
 *   });
 *   get.abort();                    // no callback after it
 *
 * What it does and does not do:
 * - GET only, one request per connection (`Connection: close`); `Range: bytes=N-` when `from` > 0.
 * - The body must have a Content-Length (200) or a Content-Range (206): a chunked response, or one that runs until
 *   the server closes, is refused with PROTOCOL, because a download whose end cannot be told from a cut link could
 *   not be resumed or checked.
 * - Redirects (301, 302, 303, 307, 308) are followed up to `maxRedirects` (default 3); one from https to http is
 *   refused.
 * - `timeout` (default 30 s) bounds the wait for each byte, the connection and TLS handshake included.
 * - Response heads are at most `maxHead` bytes (default 4 KB); no cookies, no authentication, no compression.
 */
import type { Clock, Connector, Endpoint, Transport, TransportHandlers } from "../host";
import { hostPort } from "./endpoint";
import { NetError } from "./errors";

export interface HttpUrl {
  secure: boolean;
  host: string;
  port: number;
  /** Path and query, as they go on the request line. */
  path: string;
}

export type HttpErrorCode =
  | "INVALID_URL" // the URL is not an http:// or https:// URL this client can use
  | "UNREACHABLE" // the connection could not be made (DNS, refused, TLS...: see `cause`, a NetError)
  | "STATUS" // the server answered with a status other than 200 / 206 (see `status`)
  | "PROTOCOL" // the answer is not HTTP this client can use (chunked, no length, bad head, bad range)
  | "REDIRECTS" // more redirects than allowed, or to a place not allowed
  | "TIMEOUT" // no byte for `timeout` ms
  | "CLOSED"; // the connection ended before the whole body came (see `received`)

export class HttpError extends Error {
  // A field, defined on the instance: on XS Error.prototype is frozen, so assigning `this.name` would throw.
  override name = "HttpError";
  readonly code: HttpErrorCode;
  /** STATUS: the HTTP status. */
  declare status?: number;
  override cause?: unknown;
  constructor(code: HttpErrorCode, message: string, cause?: unknown) {
    super(message);
    this.code = code;
    if (cause !== undefined) this.cause = cause;
  }
}

/** Where a URL points, for messages: the scheme, host and port only (a signed URL's query is a credential). */
export function describeUrl(u: HttpUrl): string {
  return `${u.secure ? "https" : "http"}://${hostPort(u.host, u.port)}`;
}

function badUrl(message: string): HttpError {
  return new HttpError("INVALID_URL", message);
}

/**
 * Parses an http:// or https:// URL (default ports 80 and 443). The path keeps its query; a fragment is dropped.
 * Throws HttpError INVALID_URL; messages never repeat the query (it may hold a signature).
 */
export function parseHttpUrl(url: string): HttpUrl {
  if (typeof url !== "string" || url === "") throw badUrl("the URL is empty");
  const sep = url.indexOf("://");
  const scheme = sep > 0 ? url.slice(0, sep).toLowerCase() : "";
  if (scheme !== "http" && scheme !== "https")
    throw badUrl(
      `the URL must start with https:// (or http://), not ${JSON.stringify(url.slice(0, sep > 0 ? sep + 3 : 8))}`,
    );
  const rest = url.slice(sep + 3);
  let end = rest.length;
  for (let i = 0; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    if (c === 47 || c === 63 || c === 35) {
      end = i;
      break;
    }
  }
  const authority = rest.slice(0, end);
  let path = rest.slice(end);
  const hash = path.indexOf("#");
  if (hash >= 0) path = path.slice(0, hash);
  if (path === "") path = "/";
  else if (path.charCodeAt(0) === 63) path = "/" + path;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c <= 32 || c > 126)
      throw badUrl("the URL's path holds a space, a control or a non-ASCII character: it must be percent-encoded");
  }
  if (authority.indexOf("@") >= 0) throw badUrl("the URL holds a user name or password (before '@'): not supported");
  let host: string, portText: string | undefined;
  if (authority.charCodeAt(0) === 91) {
    const close = authority.indexOf("]");
    if (close < 0) throw badUrl("the URL's IPv6 address has no closing ']'");
    host = authority.slice(1, close);
    const after = authority.slice(close + 1);
    if (after !== "") {
      if (after.charCodeAt(0) !== 58) throw badUrl("unexpected text after the URL's IPv6 address");
      portText = after.slice(1);
    }
  } else {
    const colon = authority.indexOf(":");
    host = colon >= 0 ? authority.slice(0, colon) : authority;
    if (colon >= 0) portText = authority.slice(colon + 1);
  }
  if (host === "") throw badUrl("the URL has no host");
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    const ok =
      (c >= 48 && c <= 58) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 46 || c === 95;
    if (!ok) throw badUrl(`the URL's host ${JSON.stringify(host.slice(0, 64))} holds a character a host name may not`);
  }
  let port = scheme === "https" ? 443 : 80;
  if (portText !== undefined && portText !== "") {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)
      throw badUrl("the URL's port is not a number from 1 to 65535");
    port = Number(portText);
  }
  return { secure: scheme === "https", host: host.toLowerCase(), port, path };
}

/**
 * The byte stream an HTTP URL needs, as an Endpoint every host's connector understands: "mqtts" is a TLS stream
 * and "mqtt" a TCP stream to host:port (no MQTT is spoken on them; the scheme names the transport).
 */
export function httpEndpoint(u: HttpUrl): Endpoint {
  return { scheme: u.secure ? "mqtts" : "mqtt", host: u.host, port: u.port, path: "" };
}

export interface HttpResponse {
  status: number;
  /** Offset in the file of the first body byte (the Content-Range start; 0 for a 200). */
  start: number;
  /** Body bytes in this response. */
  length: number;
  /** The whole file's size (Content-Range's total, a 200's length), or -1 when the server did not say. */
  total: number;
  /** Where it came from, after redirects. */
  url: HttpUrl;
}

export interface HttpHandlers {
  onResponse(response: HttpResponse): void;
  onData(chunk: Uint8Array): void;
  onEnd(): void;
  onError(error: HttpError): void;
}

export interface HttpGetOptions {
  url: string | HttpUrl;
  /** A connector for the byte stream to `url` (TLS verified for https): typically host.connector(httpEndpoint(url), tls). */
  open(url: HttpUrl): Connector;
  clock: Clock;
  /** The first byte wanted: sent as `Range: bytes=N-` when > 0. */
  from?: number;
  /** ms without a byte (connecting included) before TIMEOUT; default 30000. */
  timeout?: number;
  /** Default 3. */
  maxRedirects?: number;
  /** Largest response head, bytes; default 4096. */
  maxHead?: number;
  /** Refuse plain http:// (and redirects to it); default false. */
  httpsOnly?: boolean;
}

const HEAD = 0,
  BODY = 1,
  DONE = 2;

function ascii(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0x7f;
  return b;
}

export class HttpGet implements TransportHandlers {
  /** Body bytes received from the responses so far. */
  received = 0;
  private url: HttpUrl;
  private readonly open: (url: HttpUrl) => Connector;
  private readonly clock: Clock;
  private readonly from: number;
  private readonly timeout: number;
  private readonly maxRedirects: number;
  private readonly maxHead: number;
  private readonly httpsOnly: boolean;
  private redirects = 0;
  private transport: Transport | undefined = undefined;
  private timer: unknown = undefined;
  private state = HEAD;
  private head: Uint8Array;
  private headUsed = 0;
  private length = 0;
  private opened = false;
  private got = false;
  private finished = false;

  constructor(
    options: HttpGetOptions,
    private readonly handlers: HttpHandlers,
  ) {
    this.clock = options.clock;
    this.open = options.open;
    this.from = options.from ?? 0;
    this.timeout = options.timeout ?? 30000;
    this.maxRedirects = options.maxRedirects ?? 3;
    this.maxHead = options.maxHead ?? 4096;
    this.httpsOnly = options.httpsOnly ?? false;
    this.head = new Uint8Array(this.maxHead);
    this.url = typeof options.url === "string" ? parseHttpUrl(options.url) : options.url;
    if (this.httpsOnly && !this.url.secure)
      throw badUrl(
        "the URL is plain http://: only https:// is allowed here (the download would be neither private nor authenticated)",
      );
    this.dial();
  }

  /** Stops: the connection is closed and no callback follows. */
  abort(): void {
    this.finished = true;
    this.shut();
  }

  // ---- TransportHandlers ----

  onConnect(): void {
    if (this.finished) return;
    this.opened = true;
    this.arm();
    const u = this.url;
    const defaultPort = u.secure ? 443 : 80;
    const host =
      u.port === defaultPort ? (u.host.indexOf(":") >= 0 ? `[${u.host}]` : u.host) : hostPort(u.host, u.port);
    let req = `GET ${u.path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: uiot-thing-firmware\r\nAccept-Encoding: identity\r\nConnection: close\r\n`;
    if (this.from > 0) req += `Range: bytes=${this.from}-\r\n`;
    const t = this.transport;
    if (t && !t.write(ascii(req + "\r\n"))) {
      // A fresh connection takes a few hundred bytes: a transport that cannot is broken.
      this.fail(new HttpError("UNREACHABLE", `${describeUrl(u)}: the connection did not take the request`));
    }
  }

  onWritable(): void {}

  onReadable(): void {
    for (;;) {
      if (this.finished || !this.transport) return;
      const chunk = this.transport.read();
      if (!chunk) return;
      if (chunk.length === 0) continue;
      this.got = true;
      this.arm();
      if (this.state === HEAD) this.headBytes(chunk);
      else if (this.state === BODY) this.body(chunk, 0);
    }
  }

  onError(error: Error): void {
    if (this.finished) return;
    this.transport = undefined;
    const where = describeUrl(this.url);
    if (this.state === BODY) {
      return this.fail(
        new HttpError(
          "CLOSED",
          `${where}: the connection ended after ${this.received} of ${this.length} body bytes (${error.message})`,
          error,
        ),
      );
    }
    if (error instanceof NetError && error.code === "TIMEOUT")
      return this.fail(new HttpError("TIMEOUT", `${where}: ${error.message}`, error));
    if (!this.opened) return this.fail(new HttpError("UNREACHABLE", `cannot reach ${where}: ${error.message}`, error));
    return this.fail(
      new HttpError(
        "CLOSED",
        `${where} closed the connection ${this.got ? "in the middle of its answer's head" : "without answering"} (${error.message})`,
        error,
      ),
    );
  }

  // ---- internals ----

  private dial(): void {
    this.state = HEAD;
    this.headUsed = 0;
    this.opened = false;
    this.got = false;
    this.arm();
    let connect: Connector;
    try {
      connect = this.open(this.url);
    } catch (e) {
      this.fail(
        new HttpError(
          "UNREACHABLE",
          `cannot connect to ${describeUrl(this.url)}: ${e instanceof Error ? e.message : String(e)}`,
          e,
        ),
      );
      return;
    }
    this.transport = connect(this);
  }

  private arm(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = this.finished ? undefined : this.clock.setTimer(this.expired, this.timeout);
  }

  private expired = (): void => {
    this.timer = undefined;
    if (this.finished) return;
    const where = describeUrl(this.url);
    const what = !this.opened
      ? "the connection was not made"
      : this.state === HEAD
        ? "no answer came"
        : `the body stalled after ${this.received} of ${this.length} bytes`;
    this.fail(new HttpError("TIMEOUT", `${where}: ${what} within ${this.timeout} ms`));
  };

  private shut(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    const t = this.transport;
    this.transport = undefined;
    if (t) t.close();
  }

  private fail(error: HttpError): void {
    if (this.finished) return;
    this.finished = true;
    this.shut();
    this.handlers.onError(error);
  }

  private headBytes(chunk: Uint8Array): void {
    // Find the end of the head across chunk edges; the rest of the chunk is body.
    let i = 0;
    for (; i < chunk.length; i++) {
      if (this.headUsed >= this.maxHead)
        return this.fail(
          new HttpError("PROTOCOL", `${describeUrl(this.url)}: the answer's head is longer than ${this.maxHead} bytes`),
        );
      this.head[this.headUsed++] = chunk[i];
      const n = this.headUsed;
      if (
        n >= 4 &&
        this.head[n - 4] === 13 &&
        this.head[n - 3] === 10 &&
        this.head[n - 2] === 13 &&
        this.head[n - 1] === 10
      ) {
        i++;
        break;
      }
    }
    const n = this.headUsed;
    if (
      n < 4 ||
      this.head[n - 1] !== 10 ||
      this.head[n - 2] !== 13 ||
      this.head[n - 3] !== 10 ||
      this.head[n - 4] !== 13
    )
      return;
    let text = "";
    for (let k = 0; k < n - 4; k++) text += String.fromCharCode(this.head[k]);
    if (!this.parseHead(text)) return;
    if (i < chunk.length) this.body(chunk, i);
  }

  /** Returns true when a body follows. */
  private parseHead(text: string): boolean {
    const where = describeUrl(this.url);
    const lines = text.split("\r\n");
    const m = /^HTTP\/1\.[01] ([0-9]{3})/.exec(lines[0]);
    if (!m) {
      this.fail(
        new HttpError("PROTOCOL", `${where} did not answer in HTTP/1.1 (${JSON.stringify(lines[0].slice(0, 40))})`),
      );
      return false;
    }
    const status = Number(m[1]);
    let contentLength = -1,
      contentRange = "",
      location = "",
      chunked = false;
    for (let k = 1; k < lines.length; k++) {
      const line = lines[k];
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === "content-length") {
        if (!/^[0-9]{1,15}$/.test(value) || (contentLength >= 0 && contentLength !== Number(value))) {
          this.fail(new HttpError("PROTOCOL", `${where} sent a Content-Length that is not one number`));
          return false;
        }
        contentLength = Number(value);
      } else if (name === "content-range") contentRange = value;
      else if (name === "location") location = value;
      else if (name === "transfer-encoding" && value.toLowerCase() !== "identity") chunked = true;
    }
    if (status === 301 || status === 302 || status === 303 || status === 307 || status === 308) {
      this.redirect(status, location);
      return false;
    }
    if (status !== 200 && status !== 206) {
      const e = new HttpError(
        "STATUS",
        `${where} answered HTTP ${status}${status === 403 ? " (forbidden: an expired or wrong signature)" : status === 404 ? " (not found)" : status === 416 ? " (the range asked for is past the end of the file)" : ""}`,
      );
      e.status = status;
      this.fail(e);
      return false;
    }
    if (chunked) {
      this.fail(
        new HttpError(
          "PROTOCOL",
          `${where} sent the file chunked (Transfer-Encoding), without a Content-Length: a download must know its length to resume and to tell a cut link from the end; serve the file with Content-Length`,
        ),
      );
      return false;
    }
    if (contentLength < 0) {
      this.fail(
        new HttpError(
          "PROTOCOL",
          `${where} sent no Content-Length: a download must know its length to resume and to tell a cut link from the end`,
        ),
      );
      return false;
    }
    let start = 0,
      total = contentLength;
    if (status === 206) {
      const r = /^bytes ([0-9]{1,15})-([0-9]{1,15})\/([0-9]{1,15}|\*)$/.exec(contentRange);
      if (!r || Number(r[2]) - Number(r[1]) + 1 !== contentLength) {
        this.fail(
          new HttpError("PROTOCOL", `${where} answered 206 without a Content-Range that matches its Content-Length`),
        );
        return false;
      }
      start = Number(r[1]);
      total = r[3] === "*" ? -1 : Number(r[3]);
      if (start !== this.from) {
        this.fail(new HttpError("PROTOCOL", `${where} sent bytes from ${start}, not from ${this.from} as asked`));
        return false;
      }
    }
    this.length = contentLength;
    this.state = BODY;
    this.handlers.onResponse({ status, start, length: contentLength, total, url: this.url });
    if (this.finished) return false;
    if (contentLength === 0) {
      this.complete();
      return false;
    }
    return true;
  }

  private redirect(status: number, location: string): void {
    const where = describeUrl(this.url);
    if (location === "")
      return this.fail(new HttpError("PROTOCOL", `${where} answered ${status} (a redirect) without a Location`));
    if (++this.redirects > this.maxRedirects)
      return this.fail(new HttpError("REDIRECTS", `${where}: more than ${this.maxRedirects} redirects`));
    let next: HttpUrl;
    try {
      next =
        location.charCodeAt(0) === 47 && location.charCodeAt(1) !== 47
          ? { ...this.url, path: location }
          : parseHttpUrl(location);
    } catch (e) {
      return this.fail(
        new HttpError("REDIRECTS", `${where} redirected to a URL this client cannot use: ${(e as Error).message}`),
      );
    }
    if (this.url.secure && !next.secure)
      return this.fail(new HttpError("REDIRECTS", `${where} redirected from https to plain http: refused`));
    this.shut();
    this.url = next;
    // A new connection on the next turn, not from inside this one's read.
    this.timer = this.clock.setTimer(this.redial, 0);
  }

  private redial = (): void => {
    this.timer = undefined;
    if (!this.finished) this.dial();
  };

  private body(chunk: Uint8Array, at: number): void {
    const left = this.length - this.received;
    let part = at === 0 ? chunk : chunk.subarray(at);
    if (part.length > left) part = part.subarray(0, left); // bytes past the body: ignored
    this.received += part.length;
    this.handlers.onData(part);
    if (this.finished) return;
    if (this.received >= this.length) this.complete();
  }

  private complete(): void {
    this.state = DONE;
    this.finished = true;
    this.shut();
    this.handlers.onEnd();
  }
}
