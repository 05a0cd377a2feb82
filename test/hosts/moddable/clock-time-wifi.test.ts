// The Moddable host's clock (32-bit ticks, long timers, throwing callbacks), its SNTP gate and its Wi-Fi policy.
import { describe, expect, it } from "vitest";
import { ModdableClock, type TimerApi } from "../../../hosts/moddable/clock";
import { TimeSync, VALID_AFTER } from "../../../hosts/moddable/time-sync";
import { WiFiLink, type WiFiConstructor, type WiFiLike } from "../../../hosts/moddable/wifi-link";
import { FakeClock } from "../../helpers/fake-clock";
import { fakeSntp } from "../../helpers/sdk-fakes";

/**
 * The SDK's Timer (modules/base/timer/modTimer.c, mc/timer.c) over a FakeClock: the callback gets the timer; a
 * timer whose repeat interval is 0 when its callback returns is freed (schedule then throws, as
 * xsmcGetHostDataValidate does); schedule() without a delay unschedules; delays over 2^31 - 1 are refused (int32).
 */
function timers(clock: FakeClock): TimerApi & { longest: number; made: number; live: number } {
  interface Box {
    id: unknown;
    repeat: number;
    dead: boolean;
  }
  const check = (delay: number): void => {
    if (delay > 0x7fffffff || delay < 0) throw new Error("int32 overflow");
    api.longest = Math.max(api.longest, delay);
  };
  const arm = (box: Box, cb: (t: unknown) => void, delay: number): void => {
    const fire = (): void => {
      box.id = box.repeat > 0 ? clock.setTimer(fire, box.repeat) : undefined;
      cb(box);
      if (box.repeat === 0) {
        box.dead = true;
        api.live--;
      }
    };
    box.id = clock.setTimer(fire, delay);
    callbacks.set(box, cb);
  };
  const callbacks = new Map<Box, (t: unknown) => void>();
  const api = {
    longest: 0,
    made: 0,
    live: 0,
    set(cb: (t: unknown) => void, delay = 0, repeat = 0): unknown {
      check(delay);
      check(repeat);
      const box: Box = { id: undefined, repeat, dead: false };
      api.made++;
      api.live++;
      arm(box, cb, delay);
      return box;
    },
    schedule(t: unknown, delay?: number, repeat = 0): void {
      const box = t as Box;
      if (box.dead) throw new Error("invalid");
      clock.clearTimer(box.id);
      box.id = undefined;
      if (delay === undefined) {
        box.repeat = -1;
        return;
      }
      check(delay);
      check(repeat);
      box.repeat = repeat;
      arm(box, callbacks.get(box)!, delay);
    },
    clear(t: unknown): void {
      const box = t as Box | undefined;
      if (!box || box.dead) return;
      clock.clearTimer(box.id);
      box.dead = true;
      api.live--;
    },
  };
  return api;
}

describe("ModdableClock", () => {
  it("stays monotonic across the 32-bit tick wrap (int32 negative, then back to 0)", () => {
    const fake = new FakeClock();
    const ticks = () => (fake.now() + 0x7fff0000) | 0; // what xsmcSetInteger(modMilliseconds()) gives
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
    const c = new ModdableClock(
      () => fake.now(),
      t,
      () => {},
    );
    let fired = 0;
    c.setTimer(() => fired++, 40 * 86400 * 1000);
    const cleared = c.setTimer(() => (fired += 100), 40 * 86400 * 1000);
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
    const c = new ModdableClock(
      () => fake.now(),
      timers(fake),
      (e) => errors.push(e),
    );
    c.setTimer(() => {
      throw new Error("boom");
    }, 5);
    fake.advance(5);
    expect(String(errors[0])).toMatch(/boom/);
    c.clearTimer(undefined);
    // the entry whose callback threw is free again and works
    let fired = 0;
    c.setTimer(() => fired++, 5);
    fake.advance(5);
    expect(fired).toBe(1);
  });

  it("re-arms without making native timers: a pool of entries rescheduled with Timer.schedule", () => {
    const fake = new FakeClock();
    const t = timers(fake);
    const c = new ModdableClock(
      () => fake.now(),
      t,
      () => {},
    );
    const made = t.made; // the refresh timer
    let fired = 0;
    // what the client does on every packet: clear its timer and set it again, and re-arm from its own callback
    let handle: unknown;
    const tick = (): void => {
      fired++;
      handle = c.setTimer(tick, 1000);
    };
    handle = c.setTimer(tick, 1000);
    for (let i = 0; i < 50; i++) {
      fake.advance(10);
      c.clearTimer(handle);
      handle = c.setTimer(tick, 1000);
    }
    fake.advance(3500);
    expect(fired).toBe(3);
    // a deferred call next to it, as a write from a socket callback makes
    let later = 0;
    c.setTimer(() => later++, 0);
    fake.advance(1); // a later turn: 1 ms (a native timer that repeats every 0 ms would be freed when it fires)
    expect(later).toBe(1);
    expect(t.made - made).toBe(2); // the client's entry and the deferred call's, made once each
    expect(t.live).toBe(made + 2); // none freed by the SDK after firing: they stay for the next use
    c.clearTimer(handle);
    fake.advance(5000);
    expect(fired).toBe(3);
  });

  it("a handle kept after its timer fired or was cleared never touches the entry's next use", () => {
    const fake = new FakeClock();
    const c = new ModdableClock(
      () => fake.now(),
      timers(fake),
      () => {},
    );
    const log: string[] = [];
    const a = c.setTimer(() => log.push("a"), 10);
    fake.advance(10);
    const b = c.setTimer(() => log.push("b"), 10); // the same entry, reused
    c.clearTimer(a); // stale: a fired already
    fake.advance(10);
    const d = c.setTimer(() => log.push("d"), 10);
    c.clearTimer(d);
    c.clearTimer(d);
    const e = c.setTimer(() => log.push("e"), 10);
    c.clearTimer(b);
    c.clearTimer(d);
    fake.advance(10);
    expect(log).toEqual(["a", "b", "e"]);
    expect(a).not.toBe(b);
    expect(d).not.toBe(e);
  });

  it("fires several pending timers in the order they are due; a callback may clear another", () => {
    const fake = new FakeClock();
    const c = new ModdableClock(
      () => fake.now(),
      timers(fake),
      () => {},
    );
    const log: string[] = [];
    let late: unknown;
    c.setTimer(() => log.push("30"), 30);
    c.setTimer(() => (log.push("10"), c.clearTimer(late)), 10);
    late = c.setTimer(() => log.push("20"), 20);
    c.setTimer(() => log.push("0"), 0);
    fake.advance(40);
    expect(log).toEqual(["0", "10", "30"]);
  });
});

describe("TimeSync", () => {
  function sync(now: { t: number }, hosts = ["pool.ntp.org", "time.cloudflare.com"]) {
    const { SNTP, made } = fakeSntp();
    const logs: string[] = [];
    const s = new TimeSync({
      SNTP,
      setTime: (sec) => (now.t = sec * 1000),
      now: () => now.t,
      hosts,
      log: (_l, m) => logs.push(m),
    });
    return { s, logs, made };
  }

  it("answers at once when the clock is set", () => {
    const { s, made } = sync({ t: VALID_AFTER + 1 });
    let called = 0;
    s.whenValid((e) => (expect(e).toBeUndefined(), called++));
    expect(called).toBe(1);
    expect(made.length).toBe(0);
  });

  it("runs SNTP once for every waiter, sets the clock, and lets a waiter cancel", () => {
    const now = { t: 5000 };
    const { s, made } = sync(now);
    const got: unknown[] = [];
    s.whenValid((e) => got.push(e ?? "ok"));
    const cancel = s.whenValid(() => got.push("cancelled one"));
    s.whenValid((e) => got.push(e ?? "ok"));
    cancel();
    expect(made.length).toBe(1);
    made[0].cb(2); // retry: nothing yet
    expect(got).toEqual([]);
    made[0].cb(1, 1767225600);
    expect(now.t).toBe(1767225600000);
    expect(got).toEqual(["ok", "ok"]);
    expect(s.valid).toBe(true);
  });

  it("tries the next server on an error and fails with TLS_EXPIRED when all fail", () => {
    const { s, made } = sync({ t: 0 });
    let error: unknown;
    s.whenValid((e) => (error = e));
    expect(made[0].cb(-1, "no response")).toBe("time.cloudflare.com");
    expect(made[0].cb(-1, "no response")).toBeUndefined();
    expect((error as { code: string }).code).toBe("TLS_EXPIRED");
    expect(String((error as Error).message)).toMatch(/pool\.ntp\.org, time\.cloudflare\.com/);
    s.whenValid(() => {}); // a later dial starts a new round
    expect(made.length).toBe(2);
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
    const l = new WiFiLink({
      WiFi: FakeWiFi as unknown as WiFiConstructor,
      ssid,
      password: "pw",
      clock,
      random: () => 0.999,
      log: (lvl, m) => logs.push(`${lvl} ${m}`),
    });
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
