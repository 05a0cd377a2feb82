// Endpoint URLs: every scheme, host form and port rule, and a clear typed error for everything else.
import { describe, expect, it } from "vitest";
import type { Endpoint } from "../../src/host";
import { checkEndpoint, DEFAULT_PORTS, formatEndpoint, isLoopback, parseEndpoint } from "../../src/net/endpoint";
import { NetError } from "../../src/net/errors";
import { UIOT_PORTS } from "../../src/uiot/platform";

function refused(url: string, options?: Parameters<typeof parseEndpoint>[1]): NetError {
  try {
    parseEndpoint(url, options);
  } catch (e) {
    expect(e).toBeInstanceOf(NetError);
    expect((e as NetError).code).toBe("INVALID_URL");
    return e as NetError;
  }
  throw new Error(`parseEndpoint accepted ${url}`);
}

describe("parseEndpoint", () => {
  it("takes each scheme with its default port and, for WebSocket, the default path", () => {
    expect(parseEndpoint("mqtt://broker.example.com")).toEqual({
      scheme: "mqtt",
      host: "broker.example.com",
      port: 1883,
      path: "",
    });
    expect(parseEndpoint("mqtts://broker.example.com")).toEqual({
      scheme: "mqtts",
      host: "broker.example.com",
      port: 8883,
      path: "",
    });
    expect(parseEndpoint("ws://broker.example.com")).toEqual({
      scheme: "ws",
      host: "broker.example.com",
      port: 8083,
      path: "/mqtt",
    });
    expect(parseEndpoint("wss://broker.example.com")).toEqual({
      scheme: "wss",
      host: "broker.example.com",
      port: 8084,
      path: "/mqtt",
    });
    expect(DEFAULT_PORTS).toEqual({ mqtt: 1883, mqtts: 8883, ws: 8083, wss: 8084 });
  });

  it("takes names, IPv4 and bracketed IPv6 hosts, ports and paths", () => {
    expect(parseEndpoint("mqtt://127.0.0.1:1884")).toMatchObject({ host: "127.0.0.1", port: 1884 });
    expect(parseEndpoint("mqtts://[::1]:8883")).toMatchObject({ host: "::1", port: 8883 });
    expect(parseEndpoint("mqtts://[2001:db8::42]")).toMatchObject({ host: "2001:db8::42", port: 8883 });
    expect(parseEndpoint("mqtt://[::ffff:192.0.2.1]")).toMatchObject({ host: "::ffff:192.0.2.1" });
    expect(parseEndpoint("mqtt://[1:2:3:4:5:6:7:8]:1")).toMatchObject({ host: "1:2:3:4:5:6:7:8", port: 1 });
    expect(parseEndpoint("wss://mqtt-cn-sh2.iot.ucloud.cn:443/mqtt")).toEqual({
      scheme: "wss",
      host: "mqtt-cn-sh2.iot.ucloud.cn",
      port: 443,
      path: "/mqtt",
    });
    expect(parseEndpoint("ws://h/custom/path?x=1")).toMatchObject({ path: "/custom/path?x=1" });
    expect(parseEndpoint("ws://h:9001/")).toMatchObject({ port: 9001, path: "/" });
    expect(parseEndpoint("ws://h?x=1")).toMatchObject({ path: "/?x=1" });
    expect(parseEndpoint("mqtt://h/")).toMatchObject({ path: "" });
    expect(parseEndpoint("mqtt://localhost.")).toMatchObject({ host: "localhost." });
  });

  it("is forgiving about case and surrounding space, and lower-cases host names", () => {
    expect(parseEndpoint("  MQTTS://Broker.Example.COM:8883 ")).toEqual({
      scheme: "mqtts",
      host: "broker.example.com",
      port: 8883,
      path: "",
    });
    expect(parseEndpoint("mqtt://[2001:DB8::1]")).toMatchObject({ host: "2001:DB8::1" });
  });

  it("lets a profile override default ports, but a port in the URL always wins", () => {
    expect(parseEndpoint("wss://mqtt-cn-sh2.iot.ucloud.cn", { ports: UIOT_PORTS })).toMatchObject({
      port: 443,
      path: "/mqtt",
    });
    expect(parseEndpoint("ws://mqtt-cn-sh2.iot.ucloud.cn", { ports: UIOT_PORTS })).toMatchObject({ port: 80 });
    expect(parseEndpoint("mqtts://mqtt-cn-sh2.iot.ucloud.cn", { ports: UIOT_PORTS })).toMatchObject({ port: 8883 });
    expect(parseEndpoint("wss://h:8084", { ports: UIOT_PORTS })).toMatchObject({ port: 8084 });
    expect(parseEndpoint("ws://h", { path: "/ws" })).toMatchObject({ path: "/ws" });
    expect(refused("ws://h", { ports: { ws: 70000 } }).message).toMatch(/default port given for ws/);
  });

  it("refuses unknown schemes and says which one to write", () => {
    expect(refused("http://broker:8083/mqtt").message).toMatch(/http:\/\/ is a web address.*ws:\/\//);
    expect(refused("https://broker/mqtt").message).toMatch(/wss:\/\//);
    expect(refused("tcp://broker:1883").message).toMatch(/unknown scheme "tcp:\/\/": write mqtt:\/\//);
    expect(refused("ssl://broker:8883").message).toMatch(/write mqtts:\/\//);
    expect(refused("coap://broker").message).toMatch(/unknown scheme "coap:\/\/".*mqtt:\/\/ \(TCP\)/);
    expect(refused("broker.example.com:1883").message).toMatch(/no scheme/);
    expect(refused("").message).toMatch(/empty/);
    expect(refused(42 as unknown as string).message).toMatch(/must be a string/);
  });

  it("refuses a missing host, bad ports and bad host names", () => {
    expect(refused("mqtt://").message).toMatch(/no host/);
    expect(refused("mqtt://:1883").message).toMatch(/no host/);
    for (const port of ["0", "65536", "-1", "18a3", "", "99999999"])
      expect(refused(`mqtt://h:${port}`).message).toMatch(/is not a number from 1 to 65535/);
    expect(refused("mqtt://256.1.1.1").message).toMatch(/not a valid IPv4/);
    expect(refused("mqtt://1.2.3").message).toMatch(/not a valid IPv4/);
    expect(refused("mqtt://bad_host!.com").message).toMatch(/not a valid host name/);
    expect(refused("mqtt://a..b").message).toMatch(/not a valid host name/);
    expect(refused("mqtt://-a.com").message).toMatch(/not a valid host name/);
    expect(refused(`mqtt://${"a".repeat(64)}.com`).message).toMatch(/not a valid host name/);
    expect(refused("mqtt://bücher.de").message).toMatch(/punycode/);
    expect(refused("mqtt://::1").message).toMatch(/IPv6 address in a URL must be in brackets/);
    expect(refused("mqtt://[::1").message).toMatch(/no closing/);
    expect(refused("mqtt://[::1]x").message).toMatch(/after the '\]'/);
    expect(refused("mqtt://[fe80::1%eth0]").message).toMatch(/zone/);
    for (const v6 of ["1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "1:2:3", ":1::", "g::1", "1:2:3:4:5:6:7:8::"])
      expect(refused(`mqtt://[${v6}]`).message).toMatch(/not a valid IPv6/);
  });

  it("refuses credentials in the URL without repeating them", () => {
    for (const url of [
      "mqtt://user:hunter2@broker:1883",
      "mqtts://hunter2@broker",
      "ws://u:p/ss@broker/mqtt",
      "wss://broker/mqtt?token=a@hunter2",
    ]) {
      const e = refused(url);
      expect(e.message).toMatch(/user names and passwords do not belong in the URL.*pass them to the client/);
      expect(e.message).not.toMatch(/hunter2|ss@|user:/);
    }
  });

  it("refuses paths on mqtt:// and mqtts://, fragments, and paths that could break the HTTP request", () => {
    expect(refused("mqtt://h/mqtt").message).toMatch(/mqtt:\/\/ URLs have no path.*ws:\/\//);
    expect(refused("mqtts://h:8883/x").message).toMatch(/wss:\/\//);
    expect(refused("mqtt://h?x").message).toMatch(/no path or query/);
    expect(refused("ws://h/mqtt#frag").message).toMatch(/fragment/);
    expect(refused("ws://h/a b").message).toMatch(/printable ASCII/);
    expect(refused("ws://h/a\r\nX-Injected: 1").message).toMatch(/printable ASCII/);
    expect(refused("ws://h/ü").message).toMatch(/percent-encode/);
  });
});

describe("formatEndpoint and checkEndpoint", () => {
  it("format back to a URL, IPv6 in brackets, the path only for WebSocket", () => {
    for (const url of ["mqtt://h:1883", "mqtts://[::1]:8883", "ws://10.0.0.1:80/mqtt", "wss://a.b:443/x?y=1"])
      expect(formatEndpoint(parseEndpoint(url))).toBe(url);
  });

  it("check hand-made endpoints with the same rules", () => {
    const ok: Endpoint = { scheme: "wss", host: "broker", port: 8084, path: "/mqtt" };
    expect(() => checkEndpoint(ok)).not.toThrow();
    expect(() => checkEndpoint({ scheme: "mqtt", host: "::1", port: 1883, path: "" })).not.toThrow();
    const bad: [Partial<Endpoint> | null, RegExp][] = [
      [null, /must be an object/],
      [{ ...ok, scheme: "http" as "ws" }, /unknown scheme "http"/],
      [{ ...ok, host: "" }, /no host/],
      [{ ...ok, host: "a b" }, /not a valid host name/],
      [{ ...ok, port: 0 }, /port \(0\)/],
      [{ ...ok, port: 1.5 }, /port/],
      [{ ...ok, path: "mqtt" }, /path starting with '\/'/],
      [{ ...ok, path: "/a\nb" }, /printable ASCII/],
    ];
    for (const [e, re] of bad) {
      let error: unknown;
      try {
        checkEndpoint(e as Endpoint);
      } catch (x) {
        error = x;
      }
      expect(error, JSON.stringify(e)).toBeInstanceOf(NetError);
      expect((error as NetError).code).toBe("INVALID_URL");
      expect((error as NetError).message).toMatch(re);
    }
  });
});

describe("isLoopback", () => {
  it("is true for localhost, 127.0.0.0/8 and ::1 (also written out, or IPv4-mapped), false for everything else", () => {
    const host = (url: string) => parseEndpoint(url).host;
    for (const url of [
      "mqtt://localhost",
      "mqtt://LOCALHOST:1",
      "mqtt://localhost.",
      "mqtt://127.0.0.1",
      "mqtt://127.255.3.4",
      "ws://[::1]",
      "ws://[0:0:0:0:0:0:0:1]",
      "ws://[::0:1]",
      "mqtt://[::ffff:127.0.0.1]",
      "mqtt://[::ffff:7f00:1]",
    ])
      expect(isLoopback(host(url)), url).toBe(true);
    for (const url of [
      "mqtt://broker.example.com",
      "mqtt://localhost.example.com",
      "mqtt://mylocalhost",
      "mqtt://128.0.0.1",
      "mqtt://10.0.0.1",
      "mqtt://0.0.0.0",
      "mqtt://1.127.0.0",
      "ws://[::2]",
      "ws://[::]",
      "ws://[1::1]",
      "ws://[::1:0]",
      "mqtt://[::ffff:10.0.0.1]",
      "mqtt://[::127.0.0.1]",
      "mqtt://[2001:db8::1]",
      "mqtt://[fe80::1]",
    ])
      expect(isLoopback(host(url)), url).toBe(false);
    expect(isLoopback("")).toBe(false);
  });
});
