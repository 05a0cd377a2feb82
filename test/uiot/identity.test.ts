// Identity and credentials: the documented formats, ClientID/UserName, persistence rules, and that a secret never
// shows in any printed form (toString, JSON, util.inspect, error messages, errors' causes).
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { UiotError } from "../../src/uiot/errors";
import { CONFIG_KEYS, Identity, loadIdentity, redact, storeDeviceSecret } from "../../src/uiot/identity";
import { uiotClient } from "../../src/uiot/profile";
import { FakeClock } from "../helpers/fake-clock";
import { ScriptedNetwork } from "../helpers/scripted-transport";
import { DSN, MemoryStore, PRODUCT_SECRET, PSN, SECRET } from "./harness";

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof UiotError) return e.code;
    throw e;
  }
  return undefined;
}

function message(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("did not throw");
}

/** Every printed form of `x` an application might log. */
function printed(x: unknown): string {
  const forms = [String(x), inspect(x, { depth: 10 }), inspect(x, { depth: 10, showHidden: true })];
  try {
    forms.push(JSON.stringify(x));
  } catch {
    /* circular */
  }
  if (x instanceof Error) forms.push(x.message, x.stack ?? "", inspect(x.cause, { depth: 10 }));
  return forms.join("\n");
}

describe("identity", () => {
  it("builds ClientID and UserName per the spec, authmode 1 with a DeviceSecret and 2 with a ProductSecret", () => {
    const a = new Identity({ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET });
    expect([a.clientId, a.username, a.authmode]).toEqual([`${PSN}.${DSN}`, `${PSN}|${DSN}|1`, 1]);
    const b = new Identity({ productSN: PSN, deviceSN: DSN, productSecret: PRODUCT_SECRET });
    expect([b.clientId, b.username, b.authmode]).toEqual([`${PSN}.${DSN}`, `${PSN}|${DSN}|2`, 2]);
    expect(b.revealSecret()).toBe(PRODUCT_SECRET);
    const c = b.withDeviceSecret(SECRET);
    expect([c.username, c.revealSecret()]).toEqual([`${PSN}|${DSN}|1`, SECRET]);
  });

  it("accepts ProductSNs of 1..16 letters and digits only", () => {
    const id = (productSN: unknown) => () =>
      new Identity({ productSN: productSN as string, deviceSN: DSN, deviceSecret: SECRET });
    expect(code(id("A"))).toBeUndefined();
    expect(code(id("abcdefghijklmnop"))).toBeUndefined();
    expect(message(id("abcdefghijklmnopq"))).toMatch(/has 17 characters; UIoT Core ProductSNs have at most 16/);
    expect(message(id(""))).toMatch(/ProductSN is missing/);
    expect(message(id(undefined))).toMatch(/ProductSN is missing/);
    for (const bad of ["ab.c", "ab|c", "ab/c", "a+b", "a#b", "a$b", "a-b", "a b", "ä"])
      expect(code(id(bad)), bad).toBe("INVALID_IDENTITY");
    expect(message(id("ab/c"))).toMatch(/only letters and digits \(character 3/);
  });

  it("accepts DeviceSNs of 4..64 characters of [A-Za-z0-9-_@:]", () => {
    const id = (deviceSN: string) => () => new Identity({ productSN: PSN, deviceSN, deviceSecret: SECRET });
    for (const ok of ["abcd", "A-b_c@d:e", "x".repeat(64), "0000"]) expect(code(id(ok)), ok).toBeUndefined();
    expect(message(id("abc"))).toMatch(/has 3 characters; UIoT Core DeviceSNs have 4 to 64/);
    expect(message(id("x".repeat(65)))).toMatch(/has 65 characters/);
    for (const bad of ["dev.1", "dev|1", "dev/1", "dev+1", "dev#1", "dev 1", "dev$1", "dév1"])
      expect(code(id(bad)), bad).toBe("INVALID_IDENTITY");
    expect(message(id("dev/1"))).toMatch(/letters, digits and - _ @ : \(character 4/);
  });

  it("accepts secrets of 16..63 printable ASCII characters, and says what is wrong without showing them", () => {
    const id = (deviceSecret: string) => () => new Identity({ productSN: PSN, deviceSN: DSN, deviceSecret });
    expect(code(id(SECRET))).toBeUndefined();
    expect(code(id("!~" + "a".repeat(61)))).toBeUndefined();
    const cases: [string, RegExp][] = [
      ["", /DeviceSecret is missing/],
      [SECRET.slice(0, 15), /has 15 characters; the platform generates 16: was it cut short\?/],
      [
        SECRET + "\n",
        /contains a space, control or non-ASCII character at position 17 of 17 \(a pasted newline or blank\?\)/,
      ],
      [" " + SECRET, /position 1 of 17/],
      ["a".repeat(64), /has 64 characters; at most 63/],
      [SECRET.slice(0, 8) + "é" + SECRET.slice(9), /non-ASCII/],
    ];
    for (const [s, re] of cases) {
      const m = message(id(s));
      expect(m).toMatch(re);
      if (s.length >= 4) expect(m).not.toContain(s.trim().slice(0, 4));
    }
  });

  it("wants exactly one secret", () => {
    expect(message(() => new Identity({ productSN: PSN, deviceSN: DSN }))).toMatch(
      /has no secret: give its DeviceSecret, or the ProductSecret/,
    );
    expect(
      message(
        () => new Identity({ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET, productSecret: PRODUCT_SECRET }),
      ),
    ).toMatch(/not both/);
  });
});

describe("redaction", () => {
  it("is **** plus at most the last 2 characters, and nothing of a short string", () => {
    expect(redact(SECRET)).toBe("****d2");
    expect(redact("short")).toBe("****");
    expect(redact(undefined)).toBe("****");
  });

  it("hides the secret in toString, JSON and util.inspect of an identity (also nested, also with showHidden)", () => {
    for (const id of [
      new Identity({ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET }),
      new Identity({ productSN: PSN, deviceSN: DSN, productSecret: PRODUCT_SECRET }),
    ]) {
      const all = printed(id) + printed({ nested: { id } }) + printed([id]);
      expect(all).not.toContain(SECRET);
      expect(all).not.toContain(PRODUCT_SECRET);
      expect(all).toContain(PSN);
      expect(all).toContain("****");
    }
    expect(String(new Identity({ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET }))).toBe(
      `UIoT device ${PSN}.${DSN} (authmode 1, DeviceSecret ****d2)`,
    );
    expect(JSON.stringify(new Identity({ productSN: PSN, deviceSN: DSN, productSecret: PRODUCT_SECRET }))).toBe(
      `{"productSN":"${PSN}","deviceSN":"${DSN}","authmode":2,"secret":"****3x"}`,
    );
  });

  it("hides it in validation errors, printed every way", () => {
    const bad = SECRET + " tail that is still secret";
    let err: unknown;
    try {
      new Identity({ productSN: PSN, deviceSN: DSN, deviceSecret: bad });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UiotError);
    expect(printed(err)).not.toContain(SECRET);
    expect(printed(err)).not.toContain("tail");
  });

  it("keeps the password out of the client's options: not enumerable, so neither inspect nor JSON shows it", () => {
    const client = uiotClient(new Identity({ productSN: PSN, deviceSN: DSN, deviceSecret: SECRET }), {
      connect: new ScriptedNetwork().connect,
      clock: new FakeClock(),
    });
    expect(inspect(client, { depth: 6 })).not.toContain(SECRET);
    expect(JSON.stringify(client.session.options)).not.toContain(SECRET);
    expect(client.session.options.password).toBe(SECRET);
  });
});

describe("stored credentials", () => {
  it("loads the identity from the config store: DeviceSecret first, else the ProductSecret (authmode 2)", () => {
    const s = new MemoryStore();
    s.map.set(CONFIG_KEYS.productSN, PSN);
    s.map.set(CONFIG_KEYS.deviceSN, DSN);
    expect(message(() => loadIdentity(s))).toMatch(/no uiot_dsecret nor uiot_psecret/);
    s.map.set(CONFIG_KEYS.productSecret, PRODUCT_SECRET);
    expect(loadIdentity(s).authmode).toBe(2);
    s.map.set(CONFIG_KEYS.deviceSecret, SECRET);
    const id = loadIdentity(s);
    expect([id.authmode, id.revealSecret(), id.clientId]).toEqual([1, SECRET, `${PSN}.${DSN}`]);
    s.map.set(CONFIG_KEYS.deviceSN, "x");
    expect(code(() => loadIdentity(s))).toBe("INVALID_IDENTITY");
  });

  it("keys fit ESP32 preference names (at most 15 characters)", () => {
    for (const k of Object.values(CONFIG_KEYS)) expect(k.length).toBeLessThanOrEqual(15);
  });

  it("stores a DeviceSecret and reads it back", () => {
    const s = new MemoryStore();
    storeDeviceSecret(s, SECRET);
    expect(s.map.get(CONFIG_KEYS.deviceSecret)).toBe(SECRET);
    storeDeviceSecret(s, SECRET); // the same one again: nothing to do
    expect(s.writes).toHaveLength(1);
  });

  it("never overwrites a stored secret with nothing, nor with another one unless told", () => {
    const s = new MemoryStore();
    s.map.set(CONFIG_KEYS.deviceSecret, SECRET);
    for (const nothing of ["", undefined as unknown as string, "   "])
      expect(code(() => storeDeviceSecret(s, nothing, true))).toBe("INVALID_IDENTITY");
    const other = "abcdefghijklmnop";
    let err: UiotError | undefined;
    try {
      storeDeviceSecret(s, other);
    } catch (e) {
      err = e as UiotError;
    }
    expect(err?.code).toBe("SECRET_EXISTS");
    expect(err?.message).toMatch(
      /already stored in uiot_dsecret; it is not overwritten unless replace is set explicitly/,
    );
    expect(printed(err)).not.toContain(SECRET);
    expect(s.map.get(CONFIG_KEYS.deviceSecret)).toBe(SECRET);
    expect(s.writes).toEqual([]);
    storeDeviceSecret(s, other, true);
    expect(s.map.get(CONFIG_KEYS.deviceSecret)).toBe(other);
  });

  it("a failed or lying store is a hard STORE_FAILED, without the secret even when the host's error has it", () => {
    const s = new MemoryStore();
    s.failSet = true;
    let err: UiotError | undefined;
    try {
      storeDeviceSecret(s, SECRET);
    } catch (e) {
      err = e as UiotError;
    }
    expect(err?.code).toBe("STORE_FAILED");
    expect(err?.message).toMatch(
      /could not store the DeviceSecret in uiot_dsecret: Error: flash full while writing uiot_dsecret=\*\*\*\*d2/,
    );
    expect(printed(err)).not.toContain(SECRET);
    const liar = new MemoryStore();
    liar.lie = true;
    expect(message(() => storeDeviceSecret(liar, SECRET))).toMatch(/did not read back the same/);
  });
});
