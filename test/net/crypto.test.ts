// The small portable pieces under the WebSocket handshake and TLS options: SHA-1, base64, PEM, the UIoT root CA.
import { createHash, X509Certificate } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { base64Decode, base64Encode } from "../../src/net/base64";
import { NetError } from "../../src/net/errors";
import { derToPem, pemToDer } from "../../src/net/pem";
import { md5, Md5, md5Hex } from "../../src/net/md5";
import { sha1 } from "../../src/net/sha1";
import { UIOT_ROOT_CA_PEM, uiotTls } from "../../src/uiot/platform";
import { parseEndpoint } from "../../src/net/endpoint";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("sha1", () => {
  it("matches the FIPS 180 and RFC 6455 examples", () => {
    expect(hex(sha1(new Uint8Array(0)))).toBe("da39a3ee5e6b4b0d3255bfef95601890afd80709");
    expect(hex(sha1(Buffer.from("abc")))).toBe("a9993e364706816aba3e25717850c26c9cd0d89d");
    expect(hex(sha1(Buffer.from("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))).toBe(
      "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
    );
    // RFC 6455 1.3: key "dGhlIHNhbXBsZSBub25jZQ==" gives accept "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    expect(base64Encode(sha1(Buffer.from("dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11")))).toBe(
      "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
    );
  });

  it("matches node:crypto on every length around the block boundaries and on random input", () => {
    for (let n = 0; n <= 200; n++) {
      const data = Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 0xff);
      expect(hex(sha1(data)), `length ${n}`).toBe(createHash("sha1").update(data).digest("hex"));
    }
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 3000 }),
        (data) => hex(sha1(data)) === createHash("sha1").update(data).digest("hex"),
      ),
    );
  });
});

describe("md5", () => {
  it("matches node:crypto on random input, whole and cut into random updates", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.array(fc.nat(200), { maxLength: 20 }), (data, cuts) => {
        const want = createHash("md5").update(data).digest("hex");
        if (md5Hex(md5(data)) !== want) return false;
        const h = new Md5();
        let at = 0;
        for (const c of cuts) {
          h.update(data.subarray(at, Math.min(data.length, at + c)));
          at = Math.min(data.length, at + c);
        }
        h.update(data.subarray(at));
        return md5Hex(h.digest()) === want;
      }),
    );
  });
});

describe("base64", () => {
  it("round-trips and matches Buffer for every length", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (data) => {
        const text = base64Encode(data);
        expect(text).toBe(Buffer.from(data).toString("base64"));
        expect(hex(base64Decode(text))).toBe(hex(data));
      }),
    );
  });

  it("skips whitespace and refuses anything else with a typed error", () => {
    expect(hex(base64Decode("QU\nJD\r\n RA=="))).toBe(hex(Buffer.from("ABCD")));
    for (const bad of ["QUJ", "QU!D", "QQ=A", "Q===", "QUJDRA=x"]) {
      expect(() => base64Decode(bad, "tls.ca[0]")).toThrow(NetError);
      expect(() => base64Decode(bad, "tls.ca[0]")).toThrow(/tls\.ca\[0\] is not valid base64/);
    }
  });
});

describe("PEM", () => {
  it("converts PEM to DER and back, picking blocks by label", () => {
    const der = pemToDer(UIOT_ROOT_CA_PEM, "CERTIFICATE");
    expect(der).toHaveLength(1);
    expect(Buffer.from(der[0]).equals(new X509Certificate(UIOT_ROOT_CA_PEM).raw)).toBe(true);
    const again = derToPem(der[0], "CERTIFICATE");
    expect(again.replace(/\s/g, "")).toBe(UIOT_ROOT_CA_PEM.replace(/\s/g, ""));
    const bundle = `${again}junk between\n${derToPem(new Uint8Array([0x30, 1, 2]), "PRIVATE KEY")}`;
    expect(pemToDer(bundle)).toHaveLength(2);
    expect(pemToDer(bundle, "PRIVATE KEY").map(hex)).toEqual(["300102"]);
    expect(() => pemToDer("-----BEGIN CERTIFICATE-----\nMIIB", "CERTIFICATE", "tls.ca[0]")).toThrow(
      /tls\.ca\[0\] has "-----BEGIN CERTIFICATE-----" without its END line/,
    );
  });
});

describe("the UIoT Core root CA", () => {
  it("is the platform's published root, byte for byte", () => {
    const cert = new X509Certificate(UIOT_ROOT_CA_PEM);
    expect(cert.fingerprint256).toBe(
      "27:4A:C9:13:A8:91:7B:F0:1A:D7:05:EA:0A:51:77:33:0C:47:56:01:E0:82:DA:5B:38:F9:51:12:B7:91:33:8B",
    );
    expect(cert.subject).toMatch(/CN=www\.ucloud\.cn/);
    // The fingerprint pins the certificate; a clone of the repo alone must be able to check it (no ../shared here).
    expect(UIOT_ROOT_CA_PEM).toMatch(/^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n$/);
  });

  it("is the default CA of uiotTls for TLS schemes only; a CA of the caller's wins", () => {
    expect(uiotTls(parseEndpoint("mqtts://mqtt-cn-sh2.iot.ucloud.cn"))).toEqual({ ca: [UIOT_ROOT_CA_PEM] });
    expect(uiotTls(parseEndpoint("wss://mqtt-cn-sh2.iot.ucloud.cn"), { alpn: ["mqtt"] })).toEqual({
      alpn: ["mqtt"],
      ca: [UIOT_ROOT_CA_PEM],
    });
    expect(uiotTls(parseEndpoint("mqtts://h"), { ca: ["mine"] })).toEqual({ ca: ["mine"] });
    expect(uiotTls(parseEndpoint("mqtt://h"), { ca: ["mine"] })).toBeUndefined();
  });
});
