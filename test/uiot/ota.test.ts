// Firmware updates over the air on a fake clock, the test playing both the platform (MQTT, through the harness)
// and the download server (HTTP on scripted transports): every outcome the platform's protocol defines, with the
// bytes the image writer got. Portable: runs inside XS too (test/xsnap/suite/files.ts).
import { describe, expect, it } from "vitest";
import { NetError } from "../../src/net/errors";
import type { HttpUrl } from "../../src/net/http";
import { md5, md5Hex } from "../../src/net/md5";
import type { Clock, Connector, Firmware, ImageWriter, Transport, TransportHandlers } from "../../src/host";
import { OTA_STATE_KEY, type OtaOptions } from "../../src/uiot/ota";
import { MemoryStore, rig, type Rig } from "./harness";

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
const text = (b: Uint8Array) => String.fromCharCode.apply(null, Array.from(b));

function image(n: number, seed = 7): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    b[i] = x >>> 16;
  }
  return b;
}

interface Behaviour {
  status?: number;
  /** answer 200 with the whole file whatever the Range */
  ignoreRange?: boolean;
  /** the connection breaks when the file offset reaches this, once */
  dropAt?: number;
  /** the server stops sending (connection left open) at this offset */
  stallAt?: number;
  chunked?: boolean;
  /** the Content-Length / total the server claims for its file */
  fileSize?: number;
  /** dials fail with this NetError code */
  refuse?: "CONNECTION_REFUSED" | "DNS_FAILED" | "TIMEOUT";
  /** a redirect to this path first (for paths other than it) */
  redirectTo?: string;
  /** bytes per read, and ms between reads */
  chunk?: number;
  every?: number;
}

/** A download server on scripted transports: answers each GET on the fake clock. */
class FakeServer {
  requests: { host: string; path: string; head: string }[] = [];
  behave: Behaviour = {};
  open = 0;
  constructor(
    public file: Uint8Array,
    private clock: () => Clock,
  ) {}

  connector =
    (url: HttpUrl): Connector =>
    (h: TransportHandlers): Transport =>
      new FakeConn(this, url, h, this.clock());
}

class FakeConn implements Transport {
  private inbox: Uint8Array[] = [];
  private timer: unknown = undefined;
  private closed = false;
  constructor(
    private srv: FakeServer,
    private url: HttpUrl,
    private h: TransportHandlers,
    private clock: Clock,
  ) {
    srv.open++;
    this.later(() => {
      if (srv.behave.refuse) return this.fail(new NetError(srv.behave.refuse, `scripted ${srv.behave.refuse}`));
      h.onConnect();
    }, 0);
  }
  read(): Uint8Array | undefined {
    return this.inbox.shift();
  }
  write(data: Uint8Array): boolean {
    const head = text(data);
    const path = head.split(" ")[1];
    this.srv.requests.push({ host: `${this.url.host}:${this.url.port}`, path, head });
    const b = this.srv.behave,
      file = this.srv.file;
    if (b.redirectTo && path !== b.redirectTo)
      return (this.answer(`HTTP/1.1 302 Found\r\nLocation: ${b.redirectTo}\r\nContent-Length: 0\r\n\r\n`), true);
    if (b.status) return (this.answer(`HTTP/1.1 ${b.status} Nope\r\nContent-Length: 0\r\n\r\n`), true);
    const total = b.fileSize ?? file.length;
    const m = /\r\nRange: bytes=(\d+)-\r\n/.exec(head);
    const from = m && !b.ignoreRange ? Number(m[1]) : 0;
    if (b.chunked) {
      this.answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      return true;
    }
    const length = total - from;
    this.answer(
      from > 0
        ? `HTTP/1.1 206 Partial Content\r\nContent-Length: ${length}\r\nContent-Range: bytes ${from}-${total - 1}/${total}\r\n\r\n`
        : `HTTP/1.1 200 OK\r\nContent-Length: ${length}\r\n\r\n`,
    );
    this.stream(from, Math.min(total, file.length));
    return true;
  }
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
  }
  private answer(head: string): void {
    this.later(() => this.push(ascii(head)), 1);
  }
  private stream(at: number, end: number): void {
    const b = this.srv.behave;
    const step = b.chunk ?? 1024;
    this.later(() => {
      if (at >= end) return; // a short file: the connection stays open, the client waits
      if (b.stallAt !== undefined && at >= b.stallAt) return;
      let next = Math.min(end, at + step);
      if (b.dropAt !== undefined && at < b.dropAt && next >= b.dropAt) {
        next = b.dropAt;
        b.dropAt = undefined;
        this.push(this.srv.file.subarray(at, next));
        return this.fail(new NetError("CLOSED", "scripted drop"));
      }
      this.push(this.srv.file.subarray(at, next));
      this.stream(next, end);
    }, b.every ?? 10);
  }
  private push(bytes: Uint8Array): void {
    if (this.closed) return;
    this.inbox.push(bytes.slice());
    this.h.onReadable(bytes.length);
  }
  private fail(e: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.h.onError(e);
  }
  private later(f: () => void, ms: number): void {
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      if (!this.closed) f();
    }, ms);
  }
}

class MemoryWriter implements ImageWriter {
  size = -1;
  bytes: number[] = [];
  completed = false;
  cancelled = 0;
  failAt = -1;
  begin(size: number): void {
    if (size > 1 << 20) throw new Error("no room");
    this.size = size;
  }
  write(chunk: Uint8Array): void {
    if (this.failAt >= 0 && this.bytes.length + chunk.length > this.failAt) throw new Error("flash write error 0x105");
    for (let i = 0; i < chunk.length; i++) this.bytes.push(chunk[i]);
  }
  complete(): void {
    this.completed = true;
  }
  cancel(): void {
    this.cancelled++;
  }
}

interface OtaRig extends Rig {
  srv: FakeServer;
  writer: MemoryWriter;
  store: MemoryStore;
  restarts: number;
  confirms: number;
  /** ota/upstream messages as parsed JSON, with their QoS */
  ota(): { Method: string; Payload: { [k: string]: unknown }; qos: number }[];
  update(version: string, extra?: { [k: string]: unknown }): void;
}

const FILE = image(10000);
const MD5 = md5Hex(md5(FILE));

function otaRig(
  options: {
    version?: string;
    store?: MemoryStore;
    firmware?: Partial<Firmware>;
    ota?: Partial<OtaOptions>;
    file?: Uint8Array;
  } = {},
): OtaRig {
  const store = options.store ?? new MemoryStore();
  const writer = new MemoryWriter();
  let r: OtaRig;
  const srv = new FakeServer(options.file ?? FILE, () => r.clock);
  const firmware: Firmware = {
    version: options.version ?? "1.0.0",
    capacity: 65536,
    writer: () => writer,
    restart: () => void r.restarts++,
    confirm: () => void r.confirms++,
    ...options.firmware,
  };
  const base = rig({ ota: { firmware, store, open: srv.connector, retries: 2, timeout: 5000, ...options.ota } });
  r = Object.assign(base, {
    srv,
    writer,
    store,
    restarts: 0,
    confirms: 0,
    ota: () =>
      base
        .sent()
        .filter((p) => p.topic === "ota/upstream")
        .map((p) => ({ ...(JSON.parse(p.json) as { Method: string; Payload: { [k: string]: unknown } }), qos: p.qos })),
    update: (version: string, extra: { [k: string]: unknown } = {}) =>
      base.push(
        "ota/downstream",
        JSON.stringify({
          Method: "update_firmware",
          Payload: {
            Module: "default",
            Version: version,
            URL: "https://files.example.com/fw/2.0.bin?Expires=1&Signature=abc",
            MD5,
            Size: FILE.length,
            ...extra,
          },
        }),
      ),
  });
  return r;
}

const methods = (r: OtaRig) =>
  r
    .ota()
    .map((m) =>
      m.Method === "report_progress"
        ? `${m.Payload.State} ${m.Payload.Percent}`
        : m.Method === "report_fail"
          ? `fail ${m.Payload.ErrCode}`
          : m.Method,
    );
const logged = (r: OtaRig, re: RegExp) => r.logs.some((l) => re.test(l));

describe("OTA: versions", () => {
  it("subscribes to ota/downstream and reports the running version after every login", () => {
    const r = otaRig();
    const sub = r.c.of(8)[0];
    expect(sub.subscriptions.map((s) => s.topic)).toContain("/$system/prod0123456789ab/dev-001/ota/downstream");
    r.thing.ota!.loggedIn();
    r.thing.ota!.loggedIn();
    const all = r.ota();
    expect(all.map((m) => [m.Method, m.Payload, m.qos])).toEqual([
      ["report_version", { Module: "default", Version: "1.0.0" }, 1],
      ["report_version", { Module: "default", Version: "1.0.0" }, 1],
    ]);
  });

  it("an update to the version already running is a success at once, without a download", () => {
    const r = otaRig();
    r.update("1.0.0");
    expect(methods(r)).toEqual(["report_success"]);
    expect(r.ota()[0].Payload).toEqual({ Module: "default", Version: "1.0.0" });
    expect(r.srv.requests).toEqual([]);
    expect(r.writer.size).toBe(-1);
  });
});

describe("OTA: a successful update", () => {
  it("downloads into the writer, checks the MD5, reports progress (QoS 0, rate-limited), restarts; the new image reports success", () => {
    const store = new MemoryStore();
    const r = otaRig({ store });
    r.update("2.0.0");
    expect(store.map.get(OTA_STATE_KEY)).toBe('{"s":"dl","v":"2.0.0","m":"default"}');
    r.clock.advance(5000);
    expect(r.srv.requests.length).toBe(1);
    expect(r.srv.requests[0].head).toMatch(
      /^GET \/fw\/2\.0\.bin\?Expires=1&Signature=abc HTTP\/1\.1\r\nHost: files\.example\.com\r\n/,
    );
    expect(r.srv.requests[0].head).not.toMatch(/Range/);
    expect(r.writer.size).toBe(FILE.length);
    expect(r.writer.bytes.length).toBe(FILE.length);
    expect(md5Hex(md5(Uint8Array.from(r.writer.bytes)))).toBe(MD5);
    expect(r.writer.completed).toBe(true);
    expect(r.writer.cancelled).toBe(0);
    const m = methods(r);
    expect(m[0]).toBe("downloading 0");
    expect(m.slice(-3)).toEqual(["downloading 100", "burning 0", "burning 100"]);
    // 10 reads 10 ms apart: no more than one report a second (1000 ms) besides the changes of state
    expect(m.filter((x) => x.startsWith("downloading")).length).toBe(2);
    expect(
      r
        .ota()
        .filter((x) => x.Method === "report_progress")
        .every((x) => x.qos === 0 && x.Payload.Version === "2.0.0"),
    ).toBe(true);
    expect(JSON.parse(store.map.get(OTA_STATE_KEY)!)).toEqual({ s: "boot", v: "2.0.0", m: "default", f: "1.0.0" });
    expect(r.restarts).toBe(1);

    // the new image boots and logs in
    const n = otaRig({ store, version: "2.0.0" });
    n.thing.ota!.loggedIn();
    expect(n.ota().map((x) => [x.Method, x.Payload])).toEqual([
      ["report_success", { Module: "default", Version: "2.0.0" }],
      ["report_version", { Module: "default", Version: "2.0.0" }],
    ]);
    expect(n.confirms).toBe(1);
    expect(store.map.has(OTA_STATE_KEY)).toBe(false);
    n.thing.ota!.loggedIn();
    expect(methods(n)).toEqual(["report_success", "report_version", "report_version"]);
  });

  it("reports downloading progress every 5 % at most once a second on a slow link", () => {
    const r = otaRig();
    r.srv.behave = { chunk: 100, every: 200 }; // 100 reads, 20 s
    r.update("2.0.0");
    r.clock.advance(30000);
    const down = methods(r)
      .filter((x) => x.startsWith("downloading"))
      .map((x) => Number(x.split(" ")[1]));
    expect(down.length).toBeGreaterThan(5);
    expect(down.length).toBeLessThanOrEqual(22);
    for (let i = 1; i < down.length; i++)
      expect(down[i]).toBeGreaterThanOrEqual(down[i - 1] + (down[i] === 100 ? 0 : 5));
    expect(r.writer.completed).toBe(true);
  });

  it("follows a redirect", () => {
    const r = otaRig();
    r.srv.behave = { redirectTo: "/real/2.0.bin" };
    r.update("2.0.0");
    r.clock.advance(5000);
    expect(r.srv.requests.map((q) => q.path)).toEqual(["/fw/2.0.bin?Expires=1&Signature=abc", "/real/2.0.bin"]);
    expect(r.writer.completed).toBe(true);
  });
});

describe("OTA: a dropped link resumes where it stopped", () => {
  it("the next GET asks for the rest with Range; the image is whole and right", () => {
    const r = otaRig();
    r.srv.behave = { dropAt: 4096 };
    r.update("2.0.0");
    r.clock.advance(10000);
    expect(r.srv.requests.length).toBe(2);
    expect(r.srv.requests[1].head).toMatch(/\r\nRange: bytes=4096-\r\n/);
    expect(r.writer.bytes.length).toBe(FILE.length);
    expect(r.writer.completed).toBe(true);
    expect(logged(r, /interrupted at byte 4096 of 10000 .*resuming from there in 1000 ms/)).toBe(true);
    expect(methods(r).slice(-1)).toEqual(["burning 100"]);
  });

  it("a login while a retry waits out its backoff resumes the download at once", () => {
    const r = otaRig({ ota: { retryDelay: 60000 } });
    r.srv.behave = { dropAt: 4096 };
    r.update("2.0.0");
    r.clock.advance(1000);
    expect(r.srv.requests.length).toBe(1);
    r.thing.ota!.loggedIn();
    r.clock.advance(1000);
    expect(r.srv.requests.length).toBe(2);
    expect(r.srv.requests[1].head).toMatch(/Range: bytes=4096-/);
    expect(r.writer.completed).toBe(true);
  });

  it("a server that ignores the Range (200) has the bytes the device has skipped", () => {
    const r = otaRig();
    r.srv.behave = { dropAt: 3000, ignoreRange: true };
    r.update("2.0.0");
    r.clock.advance(10000);
    expect(r.srv.requests.length).toBe(2);
    expect(r.writer.bytes.length).toBe(FILE.length);
    expect(md5Hex(md5(Uint8Array.from(r.writer.bytes)))).toBe(MD5);
    expect(r.writer.completed).toBe(true);
  });

  it("a new update_firmware for the same image (a fresh URL) goes on from the same byte with the new URL", () => {
    const r = otaRig({ ota: { retries: 3, retryDelay: 60000 } });
    r.srv.behave = { dropAt: 5000 };
    r.update("2.0.0");
    r.clock.advance(1000);
    expect(r.thing.ota!.running).toEqual({ version: "2.0.0", received: 5000, size: 10000 });
    r.update("2.0.0", { URL: "https://files.example.com/fw/2.0.bin?Expires=2&Signature=new" });
    r.clock.advance(1000);
    expect(r.srv.requests.map((q) => q.path)).toEqual([
      "/fw/2.0.bin?Expires=1&Signature=abc",
      "/fw/2.0.bin?Expires=2&Signature=new",
    ]);
    expect(r.srv.requests[1].head).toMatch(/Range: bytes=5000-/);
    expect(r.writer.completed).toBe(true);
  });
});

describe("OTA: failures map to the platform's codes and leave the running image alone", () => {
  function failed(r: OtaRig, code: number) {
    const f = r.ota().filter((m) => m.Method === "report_fail");
    expect(f.map((m) => [m.Payload, m.qos])).toEqual([[{ ErrCode: code, Module: "default", Version: "2.0.0" }, 1]]);
    expect(r.writer.completed).toBe(false);
    expect(r.restarts).toBe(0);
    expect(r.store.map.has(OTA_STATE_KEY)).toBe(false);
    expect(r.thing.ota!.running).toBe(undefined);
  }

  it("-1: the server cannot be reached (after the retries)", () => {
    const r = otaRig();
    r.srv.behave = { refuse: "CONNECTION_REFUSED" };
    r.update("2.0.0");
    r.clock.advance(60000);
    expect(r.srv.open).toBe(3);
    failed(r, -1);
    expect(
      logged(
        r,
        /error: OTA: update to 2\.0\.0 failed \(ErrCode -1, URL unreachable\): .*scripted CONNECTION_REFUSED \(3 attempts in a row without progress, at byte 0 of 10000\); the running image \(1\.0\.0\) is untouched/,
      ),
    ).toBe(true);
  });

  it("-1: HTTP 404, at once", () => {
    const r = otaRig();
    r.srv.behave = { status: 404 };
    r.update("2.0.0");
    r.clock.advance(60000);
    expect(r.srv.requests.length).toBe(1);
    failed(r, -1);
    expect(r.writer.cancelled).toBe(1);
    expect(logged(r, /https:\/\/files\.example\.com:443 answered HTTP 404 \(not found\)/)).toBe(true);
    expect(r.logs.join("\n")).not.toMatch(/Signature/); // the signed query never reaches a log
  });

  it("-2: HTTP 403 (the signature expired), at once", () => {
    const r = otaRig();
    r.srv.behave = { status: 403 };
    r.update("2.0.0");
    r.clock.advance(60000);
    expect(r.srv.requests.length).toBe(1);
    failed(r, -2);
    expect(logged(r, /ErrCode -2, URL signature expired.*the platform must send a new URL/)).toBe(true);
  });

  it("-3: a server that stalls mid-body", () => {
    const r = otaRig();
    r.srv.behave = { stallAt: 6144 };
    r.update("2.0.0");
    r.clock.advance(120000);
    expect(r.srv.requests.length).toBe(3);
    expect(r.srv.requests[1].head).toMatch(/Range: bytes=6144-/);
    failed(r, -3);
    expect(logged(r, /ErrCode -3, download timeout\): .*the body stalled after 0 of 3856 bytes within 5000 ms/)).toBe(
      true,
    );
  });

  it("-3: the link keeps failing with timeouts", () => {
    const r = otaRig();
    r.srv.behave = { refuse: "TIMEOUT" };
    r.update("2.0.0");
    r.clock.advance(60000);
    failed(r, -3);
  });

  it("-4: the image's MD5 is not the one announced", () => {
    const r = otaRig();
    r.update("2.0.0", { MD5: "0123456789abcdef0123456789abcdef" });
    r.clock.advance(5000);
    failed(r, -4);
    expect(r.writer.cancelled).toBe(1);
    expect(
      logged(r, new RegExp(`the image's MD5 is ${MD5}, update_firmware said 0123456789abcdef0123456789abcdef`)),
    ).toBe(true);
  });

  it("-4: the server's file is not Size bytes", () => {
    const r = otaRig();
    r.update("2.0.0", { Size: 12000 });
    r.clock.advance(5000);
    failed(r, -4);
    expect(logged(r, /the server's file is 10000 bytes, update_firmware said Size 12000/)).toBe(true);
  });

  it("a body cut short of its Content-Length is resumed; one that stays short fails -3", () => {
    const r = otaRig();
    r.srv.behave = { fileSize: 10000 };
    r.srv.file = FILE.subarray(0, 7000); // the server claims 10000 bytes and has 7000
    r.update("2.0.0");
    r.clock.advance(120000);
    expect(r.srv.requests.length).toBe(3);
    expect(r.srv.requests[2].head).toMatch(/Range: bytes=7000-/);
    failed(r, -3);
  });

  it("-5: the writer fails mid-image", () => {
    const r = otaRig();
    r.writer.failAt = 5000;
    r.update("2.0.0");
    r.clock.advance(5000);
    failed(r, -5);
    expect(r.writer.cancelled).toBe(1);
    expect(
      logged(
        r,
        /ErrCode -5, flash write failed\): writing bytes 4096\.\.5119 of the image failed: flash write error 0x105/,
      ),
    ).toBe(true);
  });

  it("-5: a Size the update partition cannot hold, before any download", () => {
    const r = otaRig();
    r.update("2.0.0", { Size: 65537 });
    failed(r, -5);
    expect(r.srv.open).toBe(0);
    expect(logged(r, /the image is 65537 bytes and the update partition holds 65536: it cannot fit/)).toBe(true);
  });

  it("-5: a device that cannot be updated says why", () => {
    const r = otaRig({ firmware: { unsupported: "the ESP8266 build has no OTA support", writer: undefined } });
    r.update("2.0.0");
    expect(methods(r)).toEqual(["fail -5"]);
    expect(logged(r, /this device cannot be updated over the air: the ESP8266 build has no OTA support/)).toBe(true);
  });

  it("-1: a chunked answer, a plain http:// URL, a payload without a URL", () => {
    const r = otaRig();
    r.srv.behave = { chunked: true };
    r.update("2.0.0");
    r.clock.advance(5000);
    failed(r, -1);
    expect(logged(r, /sent the file chunked \(Transfer-Encoding\), without a Content-Length/)).toBe(true);
    const h = otaRig();
    h.update("2.0.0", { URL: "http://files.example.com/fw.bin" });
    failed(h, -1);
    expect(logged(h, /only https:\/\/ is accepted/)).toBe(true);
    const u = otaRig();
    u.update("2.0.0", { URL: undefined });
    failed(u, -1);
    expect(logged(u, /update_firmware refused: it has no URL/)).toBe(true);
  });
});

describe("OTA: cancel, a second update, a restart", () => {
  it("cancel_update stops the download and cancels the writer; nothing is reported", () => {
    const r = otaRig();
    r.srv.behave = { chunk: 500, every: 100 };
    r.update("2.0.0");
    r.clock.advance(500);
    const before = r.ota().length;
    r.push("ota/downstream", '{"Method":"cancel_update","Payload":{"Module":"default","Version":"2.0.0"}}');
    r.clock.advance(60000);
    expect(r.writer.cancelled).toBe(1);
    expect(r.writer.completed).toBe(false);
    expect(r.writer.bytes.length).toBeLessThan(FILE.length);
    expect(r.ota().length).toBe(before);
    expect(r.store.map.has(OTA_STATE_KEY)).toBe(false);
    expect(logged(r, /update to 2\.0\.0 cancelled by the platform at byte \d+ of 10000/)).toBe(true);
  });

  it("an update_firmware for another version replaces the one running", () => {
    const r = otaRig();
    r.srv.behave = { chunk: 500, every: 100 };
    r.update("2.0.0");
    r.clock.advance(500);
    const first = r.writer.bytes.length;
    expect(first).toBeGreaterThan(0);
    r.writer.bytes = [];
    r.update("3.0.0");
    r.clock.advance(60000);
    expect(r.writer.cancelled).toBe(1);
    expect(r.writer.completed).toBe(true);
    expect(r.writer.bytes.length).toBe(FILE.length);
    expect(r.ota().filter((m) => m.Method === "report_fail")).toEqual([]);
    expect(logged(r, /update_firmware for 3\.0\.0 replaces the update to 2\.0\.0/)).toBe(true);
  });

  it("a restart mid-download: the next boot asks for the firmware again (request_firmware)", () => {
    const store = new MemoryStore();
    const r = otaRig({ store });
    r.update("2.0.0");
    r.clock.advance(20);
    r.thing.stop(); // the power goes
    expect(store.map.get(OTA_STATE_KEY)).toMatch(/"s":"dl"/);
    const n = otaRig({ store });
    n.thing.ota!.loggedIn();
    expect(n.ota().map((m) => [m.Method, m.Payload])).toEqual([
      ["request_firmware", { Module: "default", Version: "1.0.0" }],
      ["report_version", { Module: "default", Version: "1.0.0" }],
    ]);
    expect(store.map.has(OTA_STATE_KEY)).toBe(false);
  });

  it("a new image that did not start (the old version boots) is reported as failed -5", () => {
    const store = new MemoryStore();
    store.map.set(OTA_STATE_KEY, '{"s":"boot","v":"2.0.0","m":"default","f":"1.0.0"}');
    const n = otaRig({ store });
    n.thing.ota!.loggedIn();
    expect(methods(n)).toEqual(["fail -5", "report_version"]);
    expect(n.ota()[0].Payload.Version).toBe("2.0.0");
    expect(n.confirms).toBe(0);
  });
});
