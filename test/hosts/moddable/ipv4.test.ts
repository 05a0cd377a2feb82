// The Moddable host dials an IPv4 address as it is and resolves anything else: isIPv4 tells which, without a RegExp.
import { describe, expect, it } from "vitest";
import { isIPv4 } from "../../../hosts/moddable/socket";

describe("isIPv4", () => {
  it("takes four dot-separated groups of 1 to 3 digits", () => {
    for (const s of ["127.0.0.1", "0.0.0.0", "255.255.255.255", "10.1.22.133", "999.1.1.1"])
      expect(isIPv4(s), s).toBe(true);
  });
  it("refuses names, IPv6, short or long forms, empty groups and stray characters", () => {
    for (const s of [
      "",
      "localhost",
      "::1",
      "1.2.3",
      "1.2.3.4.5",
      "1..2.3",
      ".1.2.3",
      "1.2.3.",
      "1.2.3.4 ",
      "1234.1.1.1",
      "1.2.3.a",
      "a.iot.ucloud.cn",
      "1.2.3.4/8",
    ])
      expect(isIPv4(s), JSON.stringify(s)).toBe(false);
  });
});
