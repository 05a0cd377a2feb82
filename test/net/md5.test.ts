// MD5, portable (runs inside XS too): the RFC 1321 test suite, and the same digest however the input is cut.
// test/net/crypto.test.ts checks it against node:crypto on random input.
import { describe, expect, it } from "vitest";
import { Md5, md5, md5Hex } from "../../src/net/md5";

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

describe("md5", () => {
  it("matches the RFC 1321 test suite", () => {
    const suite: [string, string][] = [
      ["", "d41d8cd98f00b204e9800998ecf8427e"],
      ["a", "0cc175b9c0f1b6a831c399e269772661"],
      ["abc", "900150983cd24fb0d6963f7d28e17f72"],
      ["message digest", "f96b697d7cb7938d525a2f31aaf161d0"],
      ["abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"],
      ["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"],
      [
        "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
        "57edf4a22be3c955ac49da2e2107b67a",
      ],
    ];
    for (const [input, digest] of suite) expect(md5Hex(md5(ascii(input))), JSON.stringify(input)).toBe(digest);
  });

  it("gives the same digest however the input is cut into updates, at every length around the block edges", () => {
    for (let n = 0; n <= 130; n++) {
      const data = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n * 11) & 0xff);
      const whole = md5Hex(md5(data));
      for (const step of [1, 3, 63, 64, 65]) {
        const h = new Md5();
        for (let at = 0; at < n; at += step) h.update(data.subarray(at, Math.min(n, at + step)));
        expect(h.length).toBe(n);
        expect(md5Hex(h.digest()), `length ${n} in steps of ${step}`).toBe(whole);
      }
    }
  });

  it("refuses to be used after its digest", () => {
    const h = new Md5();
    h.digest();
    expect(() => h.update(new Uint8Array(1))).toThrow(/after digest/);
    expect(() => h.digest()).toThrow(/twice/);
  });
});
