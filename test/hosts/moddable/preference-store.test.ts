// The config store and the persistent outbox on `preference`, against fakes with each chip's limits: chunking,
// the limits, a failed write keeping the old value, and a power cut at every flash step.
import { describe, expect, it } from "vitest";
import { ESP32, ESP8266, ESP8266_OUTBOX } from "../../../hosts/moddable/chips";
import { PreferenceOutboxStore, PreferenceStore, StoreError } from "../../../hosts/moddable/preference-store";
import { Client } from "../../../src/mqtt/client";
import { encode, PUBLISH, type MqttError, type PublishPacket } from "../../../src/mqtt/codec";
import { FakeClock } from "../../helpers/fake-clock";
import { ScriptedNetwork } from "../../helpers/scripted-transport";
import { ESP32_PREFS, ESP8266_PREFS, FakePreferences, PowerCut } from "./fake-preferences";

const chips = [
  { name: "ESP32", chip: ESP32, fake: ESP32_PREFS },
  { name: "ESP8266", chip: ESP8266, fake: ESP8266_PREFS },
];

function store(prefs: FakePreferences, chip = ESP32): PreferenceStore {
  return new PreferenceStore(prefs, { limits: chip.preference, maxValueBytes: chip.maxConfigValue });
}

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof StoreError ? e.code : `not a StoreError: ${String(e)}`;
  }
  return undefined;
}

describe("PreferenceStore", () => {
  for (const { name, chip, fake } of chips) {
    it(`${name}: set, get, overwrite and delete, any size up to the limit`, () => {
      const prefs = new FakePreferences(fake);
      const s = store(prefs, chip);
      expect(s.get("uiot_dsecret")).toBeUndefined();
      for (const value of ["", "zlc3d21u5k8fq0d2", "é→😀 ünïcode", "x".repeat(chip.maxConfigValue)]) {
        s.set("uiot_dsecret", value);
        expect(s.get("uiot_dsecret")).toBe(value);
        expect(store(prefs, chip).get("uiot_dsecret")).toBe(value); // after a reboot
      }
      for (const [n, v] of prefs.map) {
        expect(v.length).toBeLessThanOrEqual(fake.maxEntry);
        for (const part of n.split("\u0000")) expect(part.length).toBeLessThanOrEqual(15);
      }
      s.delete("uiot_dsecret");
      expect(s.get("uiot_dsecret")).toBeUndefined();
      expect(prefs.map.size).toBe(0);
    });

    it(`${name}: refuses a value over ${chip.maxConfigValue} bytes and bad keys, clearly`, () => {
      const s = store(new FakePreferences(fake), chip);
      expect(code(() => s.set("k", "x".repeat(chip.maxConfigValue + 1)))).toBe("VALUE_TOO_LARGE");
      expect(code(() => s.set("k", "é".repeat(chip.maxConfigValue / 2 + 1)))).toBe("VALUE_TOO_LARGE");
      expect(code(() => s.set("sixteen_chars_ky", "v"))).toBe("INVALID_KEY");
      expect(code(() => s.set("", "v"))).toBe("INVALID_KEY");
      expect(code(() => s.set("with space", "v"))).toBe("INVALID_KEY");
      expect(code(() => s.set("k", 5 as unknown as string))).toBe("INVALID_VALUE");
    });

    it(`${name}: a power cut at any flash step leaves the old value or the new one`, () => {
      for (let cut = 0; ; cut++) {
        const prefs = new FakePreferences(fake);
        store(prefs, chip).set("uiot_dsecret", "old-secret-1234");
        prefs.stepsLeft = cut;
        let finished = true;
        try {
          store(prefs, chip).set("uiot_dsecret", "new-secret-" + "n".repeat(chip === ESP8266 ? 100 : 3000));
        } catch (e) {
          if (!(e instanceof StoreError) || !(e.cause instanceof PowerCut)) throw e;
          finished = false;
        }
        prefs.stepsLeft = Infinity;
        const after = store(prefs, chip).get("uiot_dsecret");
        if (finished) {
          expect(after).toMatch(/^new-secret-/);
          break;
        }
        expect(after === "old-secret-1234" || after?.startsWith("new-secret-")).toBe(true);
        // and the store still works
        store(prefs, chip).set("uiot_dsecret", "third");
        expect(store(prefs, chip).get("uiot_dsecret")).toBe("third");
      }
    });
  }

  it("ESP8266: a write that does not fit keeps the previous value", () => {
    const prefs = new FakePreferences(ESP8266_PREFS);
    const s = store(prefs, ESP8266);
    s.set("uiot_dsecret", "keep-me-please");
    let i = 0;
    try {
      for (; i < 1000; i++) s.set(`filler${i}`, "f".repeat(200));
    } catch (e) {
      expect((e as StoreError).code).toBe("WRITE_FAILED");
      expect((e as Error).message).toMatch(/full.*previous value is kept/);
    }
    expect(i).toBeGreaterThan(3);
    expect(code(() => s.set("uiot_dsecret", "x".repeat(256)))).toBe("WRITE_FAILED");
    expect(s.get("uiot_dsecret")).toBe("keep-me-please");
  });

  it("a damaged value is CORRUPT, never silently missing; setting it again repairs it", () => {
    const prefs = new FakePreferences(ESP32_PREFS);
    const s = store(prefs);
    s.set("uiot_dsecret", "abcdefgh12345678");
    const [name, bytes] = [...prefs.map][0];
    bytes[bytes.length - 1] ^= 1;
    prefs.map.set(name, bytes);
    expect(code(() => s.get("uiot_dsecret"))).toBe("CORRUPT");
    s.set("uiot_dsecret", "fresh");
    expect(s.get("uiot_dsecret")).toBe("fresh");
  });

  it("never puts the value in an error message", () => {
    const s = store(new FakePreferences(ESP32_PREFS));
    try {
      s.set("k", "secret!".repeat(1000));
    } catch (e) {
      expect((e as Error).message).not.toMatch(/secret!/);
    }
  });
});

function packet(n: number, size: number): Uint8Array {
  const p = new Uint8Array(size);
  for (let i = 0; i < size; i++) p[i] = (n * 31 + i) & 0xff;
  return p;
}

describe("PreferenceOutboxStore", () => {
  const setups = [
    { name: "ESP32", fake: ESP32_PREFS, limits: ESP32.preference, bounds: ESP32.outbox! },
    { name: "ESP8266 (opt-in)", fake: ESP8266_PREFS, limits: ESP8266.preference, bounds: ESP8266_OUTBOX },
  ];
  for (const { name, fake, limits, bounds } of setups) {
    const open = (prefs: FakePreferences) => new PreferenceOutboxStore(prefs, { limits, ...bounds });

    it(`${name}: saves, loads after a reboot, removes`, () => {
      const prefs = new FakePreferences(fake);
      const o = open(prefs);
      expect(o.load()).toEqual([]);
      const size = Math.floor(bounds.maxBytes / bounds.maxMessages);
      for (let k = 0; k < bounds.maxMessages; k++) o.save(1000 + k, packet(k, size));
      const loaded = open(prefs)
        .load()
        .sort((a, b) => a.key - b.key);
      expect(loaded.map((e) => e.key)).toEqual([...Array(bounds.maxMessages).keys()].map((k) => 1000 + k));
      for (const [k, e] of loaded.entries()) expect(e.packet).toEqual(packet(k, size));
      const again = open(prefs);
      again.remove(1000);
      again.remove(99999); // absent: no error
      expect(open(prefs).load().length).toBe(bounds.maxMessages - 1);
    });

    it(`${name}: refuses beyond ${bounds.maxMessages} messages or ${bounds.maxBytes} bytes`, () => {
      const o = open(new FakePreferences(fake));
      expect(code(() => o.save(1, packet(1, bounds.maxBytes + 1)))).toBe("VALUE_TOO_LARGE");
      o.save(1, packet(1, bounds.maxBytes - 10));
      expect(code(() => o.save(2, packet(2, 11)))).toBe("FULL");
      o.remove(1);
      for (let k = 0; k < bounds.maxMessages; k++) o.save(10 + k, packet(k, 1));
      expect(code(() => o.save(99, packet(0, 1)))).toBe("FULL");
      expect(o.usage.messages).toBe(bounds.maxMessages);
    });

    it(`${name}: a power cut during save or remove leaves the whole message or none, and load sweeps the rest`, () => {
      const big = packet(7, Math.min(bounds.maxBytes, 300));
      for (const phase of ["save", "remove"] as const) {
        for (let cut = 0; ; cut++) {
          const prefs = new FakePreferences(fake);
          open(prefs).save(1, packet(1, 20));
          if (phase === "remove") open(prefs).save(2, big);
          prefs.stepsLeft = cut;
          let done = true;
          try {
            if (phase === "save") open(prefs).save(2, big);
            else open(prefs).remove(2);
          } catch {
            done = false;
          }
          prefs.stepsLeft = Infinity;
          const loaded = open(prefs).load();
          const two = loaded.find((e) => e.key === 2);
          if (two) expect(two.packet).toEqual(big);
          expect(loaded.find((e) => e.key === 1)?.packet).toEqual(packet(1, 20));
          const held = new Set(loaded.map((e) => e.key.toString(36)));
          for (const n of prefs.map.keys()) expect(held.has(n.split("\u0000")[1])).toBe(true); // nothing orphaned
          if (done) break;
        }
      }
    });

    it(`${name}: a damaged message (one flipped bit) is reported by the client as STORE_FAILED, not dropped silently`, () => {
      const pub = (id: number, payload: string) =>
        encode({ type: 3, topic: "t/up", payload, qos: 1, id, retain: false, dup: false });
      // The bit flipped in each entry of the damaged message in turn: its header entry, then each later chunk.
      const damaged = pub(2, "second, to be damaged " + "x".repeat(Math.min(200, bounds.maxBytes - 80)));
      const chunks = Math.ceil((damaged.length + 6) / limits.maxEntryBytes);
      for (let entry = 0; entry < chunks; entry++) {
        const prefs = new FakePreferences(fake);
        const o = open(prefs);
        o.save(1, pub(1, "first"));
        o.save(2, damaged);
        o.save(3, pub(3, "third"));
        const name = `obx${entry}\u00002`;
        const bytes = prefs.map.get(name) as Uint8Array;
        bytes[bytes.length - 1] ^= 0x08; // one bit, in the last byte of the entry

        // A reboot: a new client loads the outbox.
        const errors: MqttError[] = [];
        const net = new ScriptedNetwork();
        const client = new Client({
          clientId: "dev1",
          connect: net.connect,
          clock: new FakeClock(),
          random: () => 0.5,
          clean: false,
          outbox: { store: open(prefs) },
          onError: (e) => errors.push(e),
        });
        expect(errors.map((e) => `${e.code}: ${e.message}`)).toEqual([
          "STORE_FAILED: discarded an unreadable entry (key 2) from the persistent outbox",
        ]);
        client.start();
        net.last.open();
        net.last.connack(true);
        const resent = (net.last.sent.filter((p) => p.type === PUBLISH) as PublishPacket[]).map((p) =>
          new TextDecoder().decode(p.payload as Uint8Array),
        );
        expect(resent).toEqual(["first", "third"]); // the others go out; nothing of the damaged one does
        client.close();
        expect([...prefs.map.keys()].some((k) => k.endsWith("\u00002"))).toBe(false); // its entries are gone
        expect(
          open(prefs)
            .load()
            .map((e) => e.key)
            .sort(),
        ).toEqual([1, 3]);
      }
    });

    it(`${name}: an entry under a name this store never writes is reported too (key -1), and removed`, () => {
      const prefs = new FakePreferences(fake);
      open(prefs).save(1, new Uint8Array([0x32, 5, 0, 1, 0x74, 0, 1]));
      prefs.set("obx0", "Zz", new Uint8Array([1, 2, 3]).buffer);
      const loaded = open(prefs)
        .load()
        .sort((a, b) => a.key - b.key);
      expect(loaded).toEqual([
        { key: -1, packet: new Uint8Array(0) },
        { key: 1, packet: new Uint8Array([0x32, 5, 0, 1, 0x74, 0, 1]) },
      ]);
      expect(prefs.keys("obx0")).toEqual(["1"]);
    });
  }
});
