// The Moddable host's clock (32-bit ticks, long timers, throwing callbacks), its SNTP gate and its Wi-Fi policy.
import { describe, expect, it } from "vitest";
import { ModdableClock, type TimerApi } from "../../hosts/moddable/clock";
import { TimeSync, VALID_AFTER, type SntpConstructor } from "../../hosts/moddable/time-sync";
import { WiFiLink, type WiFiConstructor, type WiFiLike } from "../../hosts/moddable/wifi-link";
import { FakeClock } from "../helpers/fake-clock";

/** Timer.set / Timer.clear over a FakeClock, refusing delays over 2^31 - 1 like modTimer.c (int32). */
function timers(clock: FakeClock): TimerApi & { longest: number } {
  const api = {
    longest: 0,
    set(cb: () => void, delay = 0, repeat = 0): unknown {
      if (delay > 0x7fffffff) throw new Error("int32 overflow");
      api.longest = Math.max(api.longest, delay);
      const box = { id: undefined as unknown };
      const fire = (): void => {
        if (repeat) box.id = clock.setTimer(fire, repeat);
        cb();
      };
      box.id = clock.setTimer(fire, delay);
      return box;
    },
    clear(t: unknown): void {
      if (t) clock.clearTimer((t as { id: unknown }).id);
    },
  };
  return api;
}

describe("ModdableClock", () => {
  it("stays monotonic across the 32-bit tick wrap (int32 negative, then back to 0)", () => {
    const fake = new FakeClock();
    const ticks = () => fake.now() + 0x7fff0000 | 0; // what xsmcSetInteger(modMilliseconds()) gives
    const c = new ModdableClock(ticks, timers(fake), () => {});
    let last = c.now();
    for (let i = 0; i < 120; i++) {
      fake.advance(12 * 3600 * 1000); // 60 days in all
      const n = c.now();
      expect(n - last).toBe(12 * 3600 * 1000);
      last = n;
    }
  });

  it("chains delays over 24.8 days and can clear them", () => {
    const fake = new FakeClock();
    const t = timers(fake);
    const c = new ModdableClock(() => fake.now(), t, () => {});
    let fired = 0;
    c.setTimer(() => fired++, 40 * 86400 * 1000);
    const cleared = c.setTimer(() => fired += 100, 40 * 86400 * 1000);
    c.clearTimer(cleared);
    fake.advance(40 * 86400 * 1000 - 1);
    expect(fired).toBe(0);
    fake.advance(1);
    expect(fired).toBe(1);
    expect(t.longest).toBeLessThanOrEqual(0x7fffffff);
  });

  it("reports a callback that throws instead of letting it reach the native timer", () => {
    const fake = new FakeClock();
    const errors: unknown[] = [];
    const c = new ModdableClock(() => fake.now(), timers(fake), (e) => errors.push(e));
    c.setTimer(() => {
      throw new Error("boom");
    }, 5);
    fake.advance(5);
    expect(String(errors[0])).toMatch(/boom/);
    c.clearTimer(undefined);
  });
});

class FakeSntp {
  static made: FakeSntp[] = [];
  closed = false;
  constructor(readonly options: { host: string }, readonly cb: (m: number, v?: unknown) => unknown) {
    FakeSntp.made.push(this);
  }
  close(): void {
    this.closed = true;
  }
}

describe("TimeSync", () => {
  function sync(now: { t: number }, hosts = ["pool.ntp.org", "time.cloudflare.com"]) {
    FakeSntp.made = [];
    const logs: string[] = [];
    const s = new TimeSync({ SNTP: FakeSntp as unknown as SntpConstructor, setTime: (sec) => (now.t = sec * 1000), now: () => now.t, hosts, log: (_l, m) => logs.push(m) });
    return { s, logs };
  }

  it("answers at once when the clock is set", () => {
    const { s } = sync({ t: VALID_AFTER + 1 });
    let called = 0;
    s.whenValid((e) => (expect(e).toBeUndefined(), called++));
    expect(called).toBe(1);
    expect(FakeSntp.made.length).toBe(0);
  });

  it("runs SNTP once for every waiter, sets the clock, and lets a waiter cancel", () => {
    const now = { t: 5000 };
    const { s } = sync(now);
    const got: unknown[] = [];
    s.whenValid((e) => got.push(e ?? "ok"));
    const cancel = s.whenValid(() => got.push("cancelled one"));
    s.whenValid((e) => got.push(e ?? "ok"));
    cancel();
    expect(FakeSntp.made.length).toBe(1);
    FakeSntp.made[0].cb(2); // retry: nothing yet
    expect(got).toEqual([]);
    FakeSntp.made[0].cb(1, 1767225600);
    expect(now.t).toBe(1767225600000);
    expect(got).toEqual(["ok", "ok"]);
    expect(s.valid).toBe(true);
  });

  it("tries the next server on an error and fails with TLS_EXPIRED when all fail", () => {
    const { s } = sync({ t: 0 });
    let error: unknown;
    s.whenValid((e) => (error = e));
    expect(FakeSntp.made[0].cb(-1, "no response")).toBe("time.cloudflare.com");
    expect(FakeSntp.made[0].cb(-1, "no response")).toBeUndefined();
    expect((error as { code: string }).code).toBe("TLS_EXPIRED");
    expect(String((error as Error).message)).toMatch(/pool\.ntp\.org, time\.cloudflare\.com/);
    s.whenValid(() => {}); // a later dial starts a new round
    expect(FakeSntp.made.length).toBe(2);
  });
});

class FakeWiFi implements WiFiLike {
  static last: FakeWiFi;
  connection = 200;
  address: string | undefined = undefined;
  connects = 0;
  disconnects = 0;
  throwOnConnect: string | undefined;
  constructor(readonly options: { onChanged: (p: string) => void }) {
    FakeWiFi.last = this;
  }
  connect(): void {
    this.connects++;
    if (this.throwOnConnect) throw new Error(this.throwOnConnect);
    this.connection = 300;
  }
  disconnect(): void {
    this.disconnects++;
    this.connection = 200;
  }
  close(): void {}
  to(c: number): void {
    this.connection = c;
    if (c === 500) this.address = "192.168.1.20";
    this.options.onChanged("connection");
  }
}

describe("WiFiLink", () => {
  function link(ssid: string | undefined = "home") {
    const clock = new FakeClock();
    const logs: string[] = [];
    const changes: boolean[] = [];
    const l = new WiFiLink({ WiFi: FakeWiFi as unknown as WiFiConstructor, ssid, password: "pw", clock, random: () => 0.999, log: (lvl, m) => logs.push(`${lvl} ${m}`) });
    l.onChange = (up) => changes.push(up);
    l.start();
    return { l, clock, logs, changes, w: () => FakeWiFi.last };
  }

  it("without an SSID says how to configure one and stays down", () => {
    const { l, logs } = link("");
    expect(l.up).toBe(false);
    expect(logs.join("\n")).toMatch(/wifi\.ssid.*ssid=/);
  });

  it("comes up at 500 and retries with a growing backoff after failed attempts", () => {
    const { l, clock, w, changes } = link();
    expect(w().connects).toBe(1);
    w().to(200); // not found / wrong password
    clock.advance(999);
    expect(w().connects).toBe(2); // first retry within 1 s
    w().to(200);
    clock.advance(1500);
    expect(w().connects).toBe(2); // second within 2 s, not yet
    clock.advance(500);
    expect(w().connects).toBe(3);
    w().to(400); // associated, waiting for DHCP: still attempting
    w().to(500);
    expect(l.up).toBe(true);
    expect(changes).toEqual([true]);
  });

  it("abandons an attempt stuck past 30 s, and reconnects by itself after losing the link", () => {
    const { l, clock, w, changes } = link();
    clock.advance(30000);
    expect(w().disconnects).toBe(1);
    clock.advance(1000);
    expect(w().connects).toBe(2);
    w().to(500);
    clock.advance(120000); // up long enough: the backoff starts over
    w().to(200);
    expect(l.up).toBe(false);
    expect(changes).toEqual([true, false]);
    clock.advance(999);
    expect(w().connects).toBe(3);
  });

  it("waits when the driver is already connecting", () => {
    const { clock, w } = link();
    w().throwOnConnect = "already connecting";
    w().to(200);
    clock.advance(1000);
    expect(w().connects).toBe(2);
    clock.advance(29000);
    expect(w().disconnects).toBe(0);
  });
});
