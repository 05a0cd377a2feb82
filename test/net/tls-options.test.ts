// TLS options: one portable shape, checked the same way for every host before anything is dialled.
import { describe, expect, it } from "vitest";
import { parseEndpoint } from "../../src/net/endpoint";
import { NetError } from "../../src/net/errors";
import { checkTls, insecureWarning } from "../../src/net/tls";
import { UIOT_ROOT_CA_PEM } from "../../src/uiot/platform";
import { pemToDer } from "../../src/net/pem";

const tlsEp = parseEndpoint("mqtts://broker.example.com");
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";

function refusal(f: () => void): NetError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(NetError);
    expect((e as NetError).code).toBe("INVALID_TLS_OPTIONS");
    return e as NetError;
  }
  throw new Error("accepted");
}

describe("checkTls", () => {
  it("accepts the shapes the hosts take: none, PEM or DER CAs, a client certificate and key, ALPN, a server name", () => {
    expect(() => checkTls(tlsEp, undefined)).not.toThrow();
    expect(() => checkTls(tlsEp, {})).not.toThrow();
    expect(() => checkTls(tlsEp, { ca: [UIOT_ROOT_CA_PEM, pemToDer(UIOT_ROOT_CA_PEM)[0]] })).not.toThrow();
    expect(() =>
      checkTls(tlsEp, { cert: UIOT_ROOT_CA_PEM, key: KEY, alpn: ["mqtt"], serverName: "broker" }),
    ).not.toThrow();
    expect(() =>
      checkTls(tlsEp, { cert: pemToDer(UIOT_ROOT_CA_PEM)[0], key: new Uint8Array([0x30, 0]) }),
    ).not.toThrow();
    expect(() => checkTls(tlsEp, { insecure: true })).not.toThrow();
    expect(() => checkTls(parseEndpoint("mqtt://h"), { ca: undefined })).not.toThrow();
  });

  it("refuses TLS options on a plain scheme, rather than silently not encrypting", () => {
    expect(refusal(() => checkTls(parseEndpoint("mqtt://h"), { ca: [UIOT_ROOT_CA_PEM] })).message).toMatch(
      /mqtt:\/\/h:1883, which is not encrypted: use mqtts:\/\//,
    );
    expect(refusal(() => checkTls(parseEndpoint("ws://h"), { insecure: false })).message).toMatch(/use wss:\/\//);
  });

  it("refuses what cannot be right, with what to do and without quoting key material", () => {
    const cases: [object, RegExp][] = [
      [{ insecure: "false" }, /tls\.insecure must be true or false/],
      [{ ca: UIOT_ROOT_CA_PEM }, /tls\.ca must be an array/],
      [{ ca: ["/etc/ssl/certs/ca.pem"] }, /tls\.ca\[0\] looks like a file name: pass the certificate itself/],
      [{ ca: ["ca.crt"] }, /looks like a file name/],
      [{ ca: ["hello"] }, /tls\.ca\[0\] is not a PEM certificate/],
      [{ ca: [new Uint8Array([1, 2])] }, /tls\.ca\[0\] is not DER/],
      [{ ca: [new Uint8Array(0)] }, /tls\.ca\[0\] is empty/],
      [{ ca: [42] }, /must be PEM text or DER bytes/],
      [{ cert: UIOT_ROOT_CA_PEM }, /tls\.cert is set without tls\.key/],
      [{ key: KEY }, /tls\.key is set without tls\.cert/],
      [{ cert: UIOT_ROOT_CA_PEM, key: "SECRETSECRET" }, /tls\.key is not a PEM private key/],
      [{ cert: UIOT_ROOT_CA_PEM, key: "./device.key" }, /tls\.key looks like a file name/],
      [{ alpn: "mqtt" }, /tls\.alpn must be an array/],
      [{ alpn: [""] }, /tls\.alpn/],
      [{ serverName: "" }, /tls\.serverName/],
    ];
    for (const [tls, re] of cases) {
      const e = refusal(() => checkTls(tlsEp, tls));
      expect(e.message, JSON.stringify(tls)).toMatch(re);
      expect(e.message).not.toContain("SECRET");
    }
    expect(refusal(() => checkTls(tlsEp, null as never)).message).toMatch(/must be an object/);
  });

  it("has one loud warning for insecure connections", () => {
    expect(insecureWarning(tlsEp)).toMatch(
      /^TLS CERTIFICATE VERIFICATION IS OFF for mqtts:\/\/broker\.example\.com:8883.*never ship this/,
    );
  });
});
