/** Endpoint URLs: parsing, checking and writing back the Endpoint (src/host.ts) every host's connector takes. */
import type { Endpoint, Scheme } from "../host";
import { NetError } from "./errors";

/** Default ports, EMQX-style: 1883 plain, 8883 TLS, 8083 WebSocket, 8084 secure WebSocket. */
export const DEFAULT_PORTS: Readonly<Record<Scheme, number>> = Object.freeze({
  mqtt: 1883,
  mqtts: 8883,
  ws: 8083,
  wss: 8084,
});

/** The WebSocket path when a ws:// or wss:// URL has none. */
const DEFAULT_WS_PATH = "/mqtt";

export interface ParseEndpointOptions {
  /**
   * Ports to use when the URL has none, per scheme (e.g. UIoT Core's WebSocket ports `{ ws: 80, wss: 443 }`);
   * the rest come from DEFAULT_PORTS. A port written in the URL always wins.
   */
  ports?: Partial<Record<Scheme, number>>;
  /** WebSocket path when the URL has none (default "/mqtt"). */
  path?: string;
}

const SCHEMES: readonly Scheme[] = Object.freeze(["mqtt", "mqtts", "ws", "wss"] as const);

/** Schemes people write that mean one of ours, with what to write instead. */
const ALIASES: Readonly<Record<string, string>> = Object.freeze({
  tcp: "mqtt://",
  ssl: "mqtts://",
  tls: "mqtts://",
  mqtt5: "mqtt://",
  http: "ws://",
  https: "wss://",
});

function invalid(message: string): NetError {
  return new NetError("INVALID_URL", message);
}

/** Whether the scheme runs over TLS. */
export function isSecure(scheme: Scheme): boolean {
  return scheme === "mqtts" || scheme === "wss";
}

/**
 * Whether `host` (an Endpoint's host) names this machine's loopback interface: "localhost", an IPv4 address in
 * 127.0.0.0/8, or the IPv6 address ::1 (also written out, or as the IPv4-mapped ::ffff:127.x.y.z). Traffic to it
 * never leaves the machine, so plain mqtt:// and ws:// to it send no secret over a network.
 */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === "localhost" || h === "localhost.") return true;
  if (/^[0-9]{1,3}(\.[0-9]{1,3}){3}$/.test(h))
    return h.split(".")[0] === "127" && h.split(".").every((p) => Number(p) <= 255);
  if (h.indexOf(":") < 0) return false;
  // IPv6: the 8 groups, "::" expanded, an embedded IPv4 address as the last two.
  const halves = h.split("::");
  if (halves.length > 2) return false;
  const groups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    const items = part.split(":");
    for (let i = 0; i < items.length; i++) {
      const g = items[i];
      if (g.indexOf(".") >= 0) {
        const b = g.split(".");
        if (i !== items.length - 1 || b.length !== 4 || b.some((x) => !/^[0-9]{1,3}$/.test(x) || Number(x) > 255))
          return undefined;
        out.push(Number(b[0]) * 256 + Number(b[1]), Number(b[2]) * 256 + Number(b[3]));
      } else if (/^[0-9a-f]{1,4}$/.test(g)) out.push(parseInt(g, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return false;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return false;
  const all = head.concat(new Array<number>(fill).fill(0), tail);
  for (let i = 0; i < 5; i++) if (all[i] !== 0) return false;
  if (all[5] === 0 && all[6] === 0) return all[7] === 1; // ::1
  return all[5] === 0xffff && all[6] >> 8 === 127; // ::ffff:127.x.y.z
}

/** Whether the scheme is MQTT over WebSocket. */
export function isWebSocket(scheme: Scheme): boolean {
  return scheme === "ws" || scheme === "wss";
}

/**
 * Parses a broker URL: `mqtt://`, `mqtts://`, `ws://` or `wss://`, a host (a name, an IPv4 address or an IPv6
 * address in brackets), an optional port (default per scheme, see `options.ports`) and, for WebSocket only, a path
 * (default "/mqtt"; a query is kept as part of it). Throws NetError INVALID_URL with what is wrong and how to write
 * it. User names and passwords in the URL are refused, so they can never end up in a log with it: pass them to the
 * client separately. Error messages never repeat the URL.
 */
export function parseEndpoint(url: string, options: ParseEndpointOptions = {}): Endpoint {
  if (typeof url !== "string")
    throw invalid("the broker URL must be a string, such as mqtts://broker.example.com:8883");
  const text = url.trim();
  if (text === "") throw invalid("the broker URL is empty: write it as mqtts://host:8883 (or mqtt://, ws://, wss://)");
  // Before anything else, so no later message can quote part of a password.
  if (text.indexOf("@") >= 0)
    throw invalid(
      "the broker URL contains '@': user names and passwords do not belong in the URL (it gets logged); pass them to the client as username and password (percent-encode an '@' that is part of a path as %40)",
    );
  const sep = text.indexOf("://");
  const head = sep > 0 ? text.slice(0, sep) : "";
  if (sep <= 0 || !/^[A-Za-z][A-Za-z0-9+.-]*$/.test(head))
    throw invalid(
      "the broker URL has no scheme: write mqtt://host:1883, mqtts://host:8883, ws://host:8083/mqtt or wss://host:8084/mqtt",
    );
  const lower = head.toLowerCase();
  if (SCHEMES.indexOf(lower as Scheme) < 0) {
    const alias = ALIASES[lower];
    if (lower === "http" || lower === "https")
      throw invalid(
        `${lower}:// is a web address: for MQTT over WebSocket write ${alias}host/path (or mqtt:// or mqtts:// for MQTT over TCP)`,
      );
    throw invalid(
      `unknown scheme "${head}://"${alias ? `: write ${alias}` : ""}; the schemes are mqtt:// (TCP), mqtts:// (TLS), ws:// (WebSocket) and wss:// (WebSocket over TLS)`,
    );
  }
  const scheme = lower as Scheme;
  const rest = text.slice(sep + 3);
  let end = rest.length;
  for (let i = 0; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    if (c === 47 || c === 63 || c === 35) {
      // / ? #
      end = i;
      break;
    }
  }
  const authority = rest.slice(0, end);
  const tail = rest.slice(end);
  if (tail.indexOf("#") >= 0) throw invalid("the broker URL has a fragment (#...): MQTT has no use for one; remove it");

  let host: string;
  let portText: string | undefined;
  if (authority.charCodeAt(0) === 91) {
    // [
    const close = authority.indexOf("]");
    if (close < 0) throw invalid("the IPv6 address in the broker URL has no closing ']': write it as [2001:db8::1]");
    host = authority.slice(1, close);
    const after = authority.slice(close + 1);
    if (after !== "") {
      if (after.charCodeAt(0) !== 58)
        throw invalid("unexpected text after the ']' of the IPv6 address: write [address]:port");
      portText = after.slice(1);
    }
    checkIpv6(host);
  } else {
    const colon = authority.indexOf(":");
    if (colon >= 0 && authority.indexOf(":", colon + 1) >= 0)
      throw invalid("an IPv6 address in a URL must be in brackets: write mqtt://[2001:db8::1]:1883");
    host = colon >= 0 ? authority.slice(0, colon) : authority;
    if (colon >= 0) portText = authority.slice(colon + 1);
    if (host === "") throw invalid("the broker URL has no host: write it as mqtts://broker.example.com:8883");
    host = checkHostName(host);
  }

  let port: number;
  if (portText !== undefined) {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)
      throw invalid(`the port "${portText.slice(0, 12)}" is not a number from 1 to 65535`);
    port = Number(portText);
  } else {
    const p = options.ports?.[scheme];
    if (p !== undefined && !validPort(p))
      throw invalid(`the default port given for ${scheme}:// (${String(p)}) is not an integer from 1 to 65535`);
    port = p ?? DEFAULT_PORTS[scheme];
  }

  let path = "";
  if (isWebSocket(scheme)) {
    path = tail === "" ? (options.path ?? DEFAULT_WS_PATH) : tail.charCodeAt(0) === 63 ? `/${tail}` : tail;
    checkPath(path);
  } else if (tail !== "" && tail !== "/") {
    throw invalid(
      `${scheme}:// URLs have no path or query; for MQTT over WebSocket with a path use ${scheme === "mqtts" ? "wss" : "ws"}://`,
    );
  }
  return { scheme, host, port, path };
}

/**
 * Checks an Endpoint built by hand (or parsed) before a connector uses it; throws NetError INVALID_URL.
 * Host names are lower-cased by parseEndpoint; this does not change the object.
 */
export function checkEndpoint(e: Endpoint): void {
  if (e === null || typeof e !== "object")
    throw invalid("the endpoint must be an object { scheme, host, port, path } (see parseEndpoint)");
  if (SCHEMES.indexOf(e.scheme) < 0)
    throw invalid(`unknown scheme "${String(e.scheme)}": use "mqtt", "mqtts", "ws" or "wss"`);
  if (typeof e.host !== "string" || e.host === "") throw invalid("the endpoint has no host");
  if (e.host.indexOf(":") >= 0) checkIpv6(e.host);
  else checkHostName(e.host);
  if (!validPort(e.port)) throw invalid(`the endpoint's port (${String(e.port)}) is not an integer from 1 to 65535`);
  if (isWebSocket(e.scheme)) {
    if (typeof e.path !== "string" || e.path.charCodeAt(0) !== 47)
      throw invalid(`a ${e.scheme} endpoint needs a path starting with '/', such as "/mqtt"`);
    checkPath(e.path);
  }
}

/** The endpoint as a URL (for logs and messages): IPv6 in brackets, the path only for WebSocket. */
export function formatEndpoint(e: Endpoint): string {
  return `${e.scheme}://${hostPort(e.host, e.port)}${isWebSocket(e.scheme) ? e.path : ""}`;
}

/** host:port, with an IPv6 host in brackets. */
export function hostPort(host: string, port: number): string {
  return `${host.indexOf(":") >= 0 ? `[${host}]` : host}:${port}`;
}

function validPort(p: unknown): p is number {
  return typeof p === "number" && (p | 0) === p && p >= 1 && p <= 65535;
}

function checkHostName(host: string): string {
  for (let i = 0; i < host.length; i++) {
    if (host.charCodeAt(i) > 126)
      throw invalid(
        "the host name has non-ASCII characters: write an international name in its punycode form (xn--...)",
      );
  }
  if (/^[0-9.]+$/.test(host)) {
    const parts = host.split(".");
    if (parts.length !== 4 || parts.some((p) => p === "" || p.length > 3 || Number(p) > 255))
      throw invalid(`"${host}" is not a valid IPv4 address (four numbers from 0 to 255, such as 192.168.1.10)`);
    return host;
  }
  const name = host.charCodeAt(host.length - 1) === 46 ? host.slice(0, -1) : host;
  if (name.length > 253) throw invalid("the host name is longer than 253 characters");
  const labels = name.split(".");
  for (const label of labels) {
    // The length is checked apart: XS's RegExp accepts "a".repeat(64) for [A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?
    // (a bounded repeat inside an optional group), where V8 rightly refuses it.
    if (label.length > 63 || !/^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?$/.test(label))
      throw invalid(
        `"${host.slice(0, 64)}" is not a valid host name: letters, digits, '-' and '.' only, no empty parts, none longer than 63`,
      );
  }
  return host.toLowerCase();
}

function checkIpv6(host: string): void {
  if (host.indexOf("%") >= 0) throw invalid("IPv6 zone ids (%eth0) are not supported in broker URLs");
  const bad = () => invalid(`"${host.slice(0, 64)}" is not a valid IPv6 address`);
  if (!/^[0-9A-Fa-f:.]+$/.test(host)) throw bad();
  const double = host.indexOf("::");
  if (double >= 0 && host.indexOf("::", double + 1) >= 0) throw bad();
  const groups = host.split(":");
  let count = 0;
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i];
    if (g === "") continue;
    if (g.indexOf(".") >= 0) {
      if (i !== groups.length - 1) throw bad();
      checkHostName(g); // an embedded IPv4 address, e.g. ::ffff:192.0.2.1
      if (!/^[0-9.]+$/.test(g)) throw bad();
      count += 2;
    } else if (g.length > 4) throw bad();
    else count++;
  }
  if (double < 0 ? count !== 8 : count > 7) throw bad();
  // ':' may start or end the address only as part of '::'.
  if (
    (host.charCodeAt(0) === 58 && host.charCodeAt(1) !== 58) ||
    (host.charCodeAt(host.length - 1) === 58 && host.charCodeAt(host.length - 2) !== 58)
  )
    throw bad();
}

function checkPath(path: string): void {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    // Printable ASCII only: the path goes into the HTTP request line as it is.
    if (c <= 32 || c > 126)
      throw invalid("the WebSocket path may hold printable ASCII only, without spaces: percent-encode anything else");
  }
}
