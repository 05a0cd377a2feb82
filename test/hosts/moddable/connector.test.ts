// The Moddable connector and transport against fake sockets: the order network -> clock -> DNS -> socket, writes
// fed in pieces that fit (with a TLS record margin), errors mapped from how far a connection got, TLS options
// converted once, and the TLS engine's exceptions mapped to NetError codes.
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { moddableConnector, type ModdableNet } from "../../../hosts/moddable/connector";
import { tcpOpener, tlsOpener } from "../../../hosts/moddable/openers";
import {
  describeTlsException,
  type ByteSocket,
  type Probe,
  type SocketCallbacks,
  type SocketTarget,
} from "../../../hosts/moddable/socket";
import { TimeSync, VALID_AFTER } from "../../../hosts/moddable/time-sync";
import { checkPrivateKey, moddableTls, type ModdableTls } from "../../../hosts/moddable/tls-options";
import type { TlsOptions, TransportHandlers } from "../../../src/host";
import { parseEndpoint } from "../../../src/net/endpoint";
import { NetError } from "../../../src/net/errors";
import { pemToDer } from "../../../src/net/pem";
import { UIOT_ROOT_CA_PEM } from "../../../src/uiot/platform";
import { fakeSntp, fakeTcp, fakeTlsSocket } from "../../helpers/sdk-fakes";

class FakeSocket implements ByteSocket {
  written: Uint8Array[] = [];
  /** The objects write() was handed, as they were. */
  views: Uint8Array[] = [];
  incoming: ArrayBuffer[] = [];
  closed = false;
  room: number;
  throwOnWrite: Error | undefined;
  constructor(
    readonly address: string,
    readonly port: number,
    readonly cb: SocketCallbacks,
    readonly probe: Probe,
    room: number,
  ) {
    this.room = room;
  }
  read(): ArrayBuffer | undefined {
    return this.incoming.shift();
  }
  write(data: Uint8Array): number {
    if (this.throwOnWrite) throw this.throwOnWrite;
    if (data.length > this.room) throw new Error("would block");
    this.views.push(data);
    this.written.push(data.slice());
    this.room -= data.length;
    return this.room;
  }
  close(): void {
    this.closed = true;
  }
  open(): void {
    this.probe.opened = true;
    this.cb.onWritable(this.room);
  }
  receive(bytes: number[]): void {
    this.probe.received = true;
    this.incoming.push(new Uint8Array(bytes).buffer);
    this.cb.onReadable(bytes.length);
  }
}

function setup(options: { up?: boolean; now?: number; room?: number; maxFragment?: number } = {}) {
  const sockets: FakeSocket[] = [];
  const tlsSeen: ModdableTls[] = [];
  const deferred: (() => void)[] = [];
  const lookups: { host: string; cb: (a: string | undefined) => void }[] = [];
  const logs: string[] = [];
  const clock = { t: options.now ?? VALID_AFTER + 1 };
  const { SNTP, made: sntp } = fakeSntp();
  const time = new TimeSync({
    SNTP,
    setTime: (s) => (clock.t = s * 1000),
    now: () => clock.t,
    hosts: ["pool.ntp.org"],
    log: () => {},
  });
  const open = (address: string, port: number, target: SocketTarget) => {
    const s = new FakeSocket(address, port, target, target, options.room ?? 1000);
    sockets.push(s);
    return s;
  };
  const net: ModdableNet = {
    network: { up: options.up ?? true, onChange: undefined },
    resolve: (host, cb) => void lookups.push({ host, cb }),
    openTcp: open,
    openTls: (tls) => (tlsSeen.push(tls), open),
    time,
    defer: (f) => void deferred.push(f),
    random: () => 0.5,
    log: (level, m) => logs.push(`${level} ${m}`),
    maxFragment: options.maxFragment ?? 0,
    maxFrameSize: 4096,
  };
  return { net, sockets, tlsSeen, deferred, lookups, logs, sntp, clock };
}

function handlers() {
  const events: string[] = [];
  const errors: NetError[] = [];
  const h: TransportHandlers = {
    onConnect: () => events.push("connect"),
    onReadable: (n) => events.push(`readable ${n}`),
    onWritable: () => events.push("writable"),
    onError: (e) => (errors.push(e as NetError), events.push(`error ${(e as NetError).code}`)),
  };
  return { h, events, errors };
}

const ca = [UIOT_ROOT_CA_PEM];

describe("Moddable connector: plain TCP", () => {
  it("resolves the name, opens the socket on the address, connects on the first onWritable", () => {
    const f = setup();
    const { h, events } = handlers();
    const t = moddableConnector(parseEndpoint("mqtt://broker.example.com"), undefined, f.net)(h);
    expect(f.lookups[0].host).toBe("broker.example.com");
    expect(f.sockets.length).toBe(0);
    f.lookups[0].cb("10.0.0.7");
    expect([f.sockets[0].address, f.sockets[0].port]).toEqual(["10.0.0.7", 1883]);
    expect(t.write(new Uint8Array(3))).toBe(false); // not open yet
    f.sockets[0].open();
    expect(events).toEqual(["connect"]);
    f.sockets[0].receive([0x20, 2, 0, 0]);
    expect(Array.from(t.read()!)).toEqual([0x20, 2, 0, 0]);
    expect(t.read()).toBeUndefined();
  });

  it("skips DNS for an IPv4 address and refuses IPv6, which the ECMA-419 TCP socket cannot take", () => {
    const f = setup();
    moddableConnector(parseEndpoint("mqtt://192.168.1.5:1884"), undefined, f.net)(handlers().h);
    expect(f.lookups.length).toBe(0);
    expect(f.sockets[0].address).toBe("192.168.1.5");
    const { h, errors } = handlers();
    moddableConnector(parseEndpoint("mqtt://[::1]"), undefined, f.net)(h);
    for (const g of f.deferred.splice(0)) g();
    expect(errors[0].code).toBe("UNREACHABLE");
  });

  it("fails NETWORK_DOWN and DNS_FAILED on a later turn, never inside the dial", () => {
    const f = setup({ up: false });
    const { h, errors } = handlers();
    moddableConnector(parseEndpoint("mqtt://broker"), undefined, f.net)(h);
    expect(errors.length).toBe(0);
    for (const g of f.deferred.splice(0)) g();
    expect(errors[0].code).toBe("NETWORK_DOWN");
    const g = setup();
    const two = handlers();
    moddableConnector(parseEndpoint("mqtt://nowhere.invalid"), undefined, g.net)(two.h);
    g.lookups[0].cb(undefined);
    expect(two.errors[0].code).toBe("DNS_FAILED");
    expect(two.errors[0].message).toMatch(/nowhere\.invalid/);
  });

  it("takes a write whole and feeds it in pieces that fit; a second write waits for onWritable", () => {
    const f = setup({ room: 100 });
    const { h, events } = handlers();
    const t = moddableConnector(parseEndpoint("mqtt://10.0.0.1"), undefined, f.net)(h);
    const s = f.sockets[0];
    s.open();
    const big = new Uint8Array(250).map((_, i) => i);
    expect(t.write(big)).toBe(true);
    expect(s.written.map((w) => w.length)).toEqual([100]);
    expect(t.write(new Uint8Array([1]))).toBe(false);
    s.room = 100;
    s.cb.onWritable(100);
    s.room = 100;
    s.cb.onWritable(100);
    expect(s.written.map((w) => w.length)).toEqual([100, 100, 50]);
    expect(Array.from(s.written.flatMap((w) => Array.from(w)))).toEqual(Array.from(big));
    expect(events).toEqual(["connect", "writable"]);
    expect(t.write(new Uint8Array([1]))).toBe(true);
  });

  it("names what ended a connection: refused, no answer, closed", () => {
    const cases: [(s: FakeSocket) => void, string][] = [
      [() => {}, "CONNECTION_REFUSED"],
      [(s) => s.open(), "NO_ANSWER"],
      [(s) => (s.open(), s.receive([0x20, 2, 0, 0])), "CLOSED"],
    ];
    for (const [before, expected] of cases) {
      const f = setup();
      const { h, errors } = handlers();
      moddableConnector(parseEndpoint("mqtt://10.0.0.1"), undefined, f.net)(h);
      before(f.sockets[0]);
      f.sockets[0].cb.onError();
      expect(errors.map((e) => e.code)).toEqual([expected]);
      expect(f.sockets[0].closed).toBe(true);
    }
  });

  it("close() is final: no callback follows, a late DNS answer opens nothing", () => {
    const f = setup({ up: false });
    const { h, events } = handlers();
    moddableConnector(parseEndpoint("mqtt://broker"), undefined, f.net)(h).close();
    for (const g of f.deferred.splice(0)) g();
    const g = setup();
    const t = moddableConnector(parseEndpoint("mqtt://broker"), undefined, g.net)(h);
    t.close();
    g.lookups[0].cb("10.0.0.1");
    expect(g.sockets.length).toBe(0);
    expect(events).toEqual([]);
  });

  it("a handler that throws ends the connection as CLOSED instead of reaching the socket", () => {
    const f = setup();
    const { h, errors } = handlers();
    h.onConnect = () => {
      throw new Error("app bug");
    };
    moddableConnector(parseEndpoint("mqtt://10.0.0.1"), undefined, f.net)(h);
    f.sockets[0].open();
    expect(errors[0].code).toBe("CLOSED");
    expect(errors[0].message).toMatch(/handler threw.*app bug/);
  });
});

describe("Moddable transport: socket callbacks", () => {
  it("a handler that throws inside onReadable or onWritable is the owner's bug (CLOSED), never the socket's", () => {
    for (const which of ["onReadable", "onWritable"] as const) {
      const f = setup({ room: 10 });
      const { h, errors } = handlers();
      h[which] = () => {
        throw new Error(`bug in ${which}`);
      };
      const t = moddableConnector(parseEndpoint("mqtt://10.0.0.1"), undefined, f.net)(h);
      const s = f.sockets[0];
      s.open();
      if (which === "onReadable") expect(() => s.receive([0xd0, 0])).not.toThrow();
      else {
        t.write(new Uint8Array(20));
        t.write(new Uint8Array(1)); // refused: onWritable follows when the first is sent
        s.room = 100;
        expect(() => s.cb.onWritable(100)).not.toThrow();
      }
      expect(errors.map((e) => e.code)).toEqual(["CLOSED"]);
      expect(errors[0].message).toMatch(new RegExp(`handler threw \\(bug in ${which}\\)`));
      expect(s.closed).toBe(true);
      s.receive([0xd0, 0]); // a late event of the closed socket does nothing
      expect(errors.length).toBe(1);
    }
  });

  it("a handler that throws and an onError that throws as well still reach nothing of the socket", () => {
    const f = setup();
    const { h } = handlers();
    let told = 0;
    h.onReadable = () => {
      throw new Error("bug");
    };
    h.onError = () => {
      told++;
      throw new Error("bug in onError");
    };
    moddableConnector(parseEndpoint("mqtt://10.0.0.1"), undefined, f.net)(h);
    const s = f.sockets[0];
    s.open();
    expect(() => s.receive([0xd0, 0])).not.toThrow();
    expect(told).toBe(1);
    expect(s.closed).toBe(true);
  });

  it("an exception of the socket inside a callback (its read throws) becomes the connection's error", () => {
    const f = setup();
    const { h, errors } = handlers();
    const t = moddableConnector(parseEndpoint("mqtt://10.0.0.1"), undefined, f.net)(h);
    h.onReadable = () => void t.read();
    const s = f.sockets[0];
    s.open();
    s.read = () => {
      throw new Error("pbuf gone");
    };
    expect(() => s.receive([0xd0, 0])).not.toThrow();
    expect(errors.length).toBe(0); // it failed inside the owner's read(): reported on a later turn
    expect(s.closed).toBe(true);
    for (const g of f.deferred.splice(0)) g();
    expect(errors.map((e) => e.code)).toEqual(["CLOSED"]);
    expect(errors[0].message).toMatch(/^mqtt:\/\/10\.0\.0\.1:1883: pbuf gone/);
  });

  it("a write from inside a socket callback goes out at once on plain TCP (under TLS on the next turn)", () => {
    const f = setup({ room: 100 });
    const { h, events } = handlers();
    const t = moddableConnector(parseEndpoint("mqtt://10.0.0.1"), undefined, f.net)(h);
    h.onConnect = () => void t.write(new Uint8Array([0x10, 0]));
    h.onReadable = () => {
      for (let c = t.read(); c; c = t.read()) expect(t.write(new Uint8Array([0x40, 2, 0, 1]))).toBe(true);
    };
    const s = f.sockets[0];
    s.open();
    expect(s.written.map((w) => w.length)).toEqual([2]);
    s.receive([0x32, 5, 0, 1, 0x61, 0, 1]);
    expect(s.written.map((w) => w.length)).toEqual([2, 4]);
    // one that does not fit goes in pieces that fit, the rest on onWritable, as any other
    s.room = 3;
    s.cb.onWritable(3);
    s.receive([0x32, 5, 0, 1, 0x61, 0, 2]);
    expect(s.written.map((w) => w.length)).toEqual([2, 4, 3]);
    s.room = 100;
    s.cb.onWritable(100);
    expect(s.written.map((w) => w.length)).toEqual([2, 4, 3, 1]);
    expect(f.deferred.length).toBe(0);
    expect(events).toEqual([]);
  });

  it("a write that fits goes to the socket as the caller's own bytes; only a piece is a view", () => {
    const f = setup({ room: 100 });
    const { h } = handlers();
    const t = moddableConnector(parseEndpoint("mqtt://10.0.0.1"), undefined, f.net)(h);
    const s = f.sockets[0];
    s.open();
    const small = new Uint8Array([1, 2, 3]);
    t.write(small);
    expect(s.views[0]).toBe(small);
    const big = new Uint8Array(150);
    t.write(big);
    expect(s.views[1]).not.toBe(big);
    expect(s.views[1].buffer).toBe(big.buffer);
  });

  it("a write the socket refuses although it fits the room reported: would block waits for onWritable, anything else is fatal", () => {
    const f = setup({ room: 1000 });
    const { h, events, errors } = handlers();
    const t = moddableConnector(parseEndpoint("mqtt://10.0.0.1"), undefined, f.net)(h);
    const s = f.sockets[0];
    s.open();
    s.room = 5; // less than the 1000 it reported: lwIP's buffer filled meanwhile
    const data = new Uint8Array(10).map((_, i) => i);
    expect(t.write(data)).toBe(true); // taken whole: it waits
    expect(s.written.length).toBe(0);
    expect(t.write(new Uint8Array(1))).toBe(false);
    s.room = 100;
    s.cb.onWritable(100);
    expect(s.written.map((w) => Array.from(w))).toEqual([Array.from(data)]);
    expect(events).toEqual(["connect", "writable"]);
    s.throwOnWrite = new Error("not ready");
    expect(t.write(new Uint8Array(3))).toBe(true);
    expect(errors.length).toBe(0); // inside the owner's write(): reported on a later turn
    for (const g of f.deferred.splice(0)) g();
    expect(errors.map((e) => e.code)).toEqual(["CLOSED"]);
    expect(errors[0].message).toMatch(/not ready/);
  });

  it("tcpOpener: the SDK socket's callbacks (called with the socket as this, its target the connection) reach the transport", () => {
    // like the mac build, it does not keep options.target: the opener sets it
    const { TCP, made } = fakeTcp({ keepsTarget: false });
    const f = setup();
    f.net.openTcp = tcpOpener(TCP);
    const { h, events } = handlers();
    const t = moddableConnector(parseEndpoint("mqtt://10.0.0.1:1884"), undefined, f.net)(h);
    const sock = made[0];
    sock.inbox.push(new Uint8Array([0x20, 2, 0, 0]).buffer);
    expect(sock.options).toMatchObject({ address: "10.0.0.1", port: 1884, nodelay: true, format: "buffer" });
    expect(sock.target).toBe(sock.options.target);
    sock.call("onWritable", 5744);
    sock.call("onReadable", 4);
    expect(events).toEqual(["connect", "readable 4"]);
    expect(Array.from(t.read()!)).toEqual([0x20, 2, 0, 0]);
    expect(t.read()).toBeUndefined();
    expect(t.write(new Uint8Array([0xc0, 0]))).toBe(true);
    expect(sock.sent.length).toBe(1);
    sock.call("onError");
    expect(events[2]).toBe("error CLOSED");
    expect(sock.closed).toBe(true);
    // one set of callbacks for every connection, not closures made per socket
    moddableConnector(parseEndpoint("mqtt://10.0.0.2"), undefined, f.net)(handlers().h);
    expect(made[1].options.onReadable).toBe(sock.options.onReadable);
  });

  it("tlsOpener: an exception of the TLS engine inside the TCP socket's callbacks becomes the connection's error", () => {
    // the SDK's TLSSocket builds its TCP socket with callbacks of its own and calls the application's with a `this` of
    // its own; the TCP socket keeps options.target, as builtinInitializeTarget does
    const { TCP, made: tcps } = fakeTcp({ keepsTarget: true });
    const { TLSSocket, made: tls } = fakeTlsSocket();
    const f = setup();
    f.net.openTls = tlsOpener(TCP, TLSSocket);
    const { h, events, errors } = handlers();
    moddableConnector(parseEndpoint("mqtts://10.0.0.1"), { ca }, f.net)(h);
    const tcp = tcps[0];
    expect(tcp.options).toMatchObject({ address: "10.0.0.1", port: 8883, nodelay: true, host: "10.0.0.1" });
    tcp.call("onWritable", 5000);
    tcp.call("onReadable", 10);
    expect(events).toEqual(["connect", "readable 10"]);
    tls[0].fail = new Error("alert: 2, 20");
    expect(() => tcp.call("onReadable", 10)).not.toThrow();
    expect(errors.map((e) => e.code)).toEqual(["CLOSED"]); // open: the broker ended the session
    expect(errors[0].message).toMatch(/bad_record_mac/);
    expect(tcp.closed).toBe(true);
    // before the handshake: the TCP probe says how far it got
    const g = setup();
    g.net.openTls = tlsOpener(TCP, TLSSocket);
    const two = handlers();
    moddableConnector(parseEndpoint("mqtts://10.0.0.2"), { ca }, g.net)(two.h);
    tcps[1].call("onError");
    expect(two.errors.map((e) => e.code)).toEqual(["CONNECTION_REFUSED"]);
  });
});

describe("Moddable connector: TLS", () => {
  it("waits for the clock (SNTP) before it dials, then passes DER options once converted", () => {
    const f = setup({ now: 0, maxFragment: 2048 });
    const { h, events } = handlers();
    const connect = moddableConnector(
      parseEndpoint("mqtts://mqtt-cn-sh2.iot.ucloud.cn"),
      { ca, alpn: ["mqtt"] },
      f.net,
    );
    expect(f.tlsSeen.length).toBe(1);
    const secure = f.tlsSeen[0].secure;
    expect(new Uint8Array(secure.certificate!)).toEqual(pemToDer(UIOT_ROOT_CA_PEM)[0]);
    expect(secure).toMatchObject({
      verify: true,
      applicationLayerProtocolNegotiation: ["mqtt"],
      tls_max_fragment_length: 2048,
    });
    expect(f.tlsSeen[0].serverName).toBe("mqtt-cn-sh2.iot.ucloud.cn");
    connect(h);
    expect(f.lookups.length).toBe(0);
    f.sntp[0].cb(1, 1767225600);
    expect(f.lookups.length).toBe(1);
    f.lookups[0].cb("106.75.1.1");
    f.sockets[0].open();
    expect(events).toEqual(["connect"]);
  });

  it("under TLS never writes a piece larger than the room or the record limit, and a failed TLS write is fatal", () => {
    const f = setup({ room: 5000, maxFragment: 2048 });
    const { h, errors } = handlers();
    const t = moddableConnector(parseEndpoint("mqtts://10.0.0.1"), { ca }, f.net)(h);
    const s = f.sockets[0];
    s.open();
    t.write(new Uint8Array(6000));
    expect(s.written.map((w) => w.length)).toEqual([2048, 2048, 904]);
    expect(t.write(new Uint8Array(10))).toBe(false); // 1000 bytes still queued
    s.throwOnWrite = new Error("would block");
    s.room = 5000;
    s.cb.onWritable(5000);
    expect(errors[0].code).toBe("CLOSED"); // a record may be lost: the stream cannot go on
  });

  it("maps exceptions of the TLS engine through onException", () => {
    const f = setup();
    const { h, errors } = handlers();
    moddableConnector(parseEndpoint("mqtts://10.0.0.1"), { ca }, f.net)(h);
    f.sockets[0].probe.opened = true;
    f.sockets[0].cb.onException(new Error("certificate: auth err"));
    expect(errors[0].code).toBe("TLS_UNKNOWN_CA");
    expect(f.sockets[0].closed).toBe(true);
  });

  it("a TLS port that hangs up during the handshake is NOT_TLS; a refused TCP connection is CONNECTION_REFUSED", () => {
    for (const [opened, expected] of [
      [true, "NOT_TLS"],
      [false, "CONNECTION_REFUSED"],
    ] as const) {
      const f = setup();
      const { h, errors } = handlers();
      moddableConnector(parseEndpoint("mqtts://10.0.0.1"), { ca }, f.net)(h);
      f.sockets[0].probe.opened = opened;
      f.sockets[0].cb.onError();
      expect(errors[0].code).toBe(expected);
    }
  });

  it("logs the insecure switch on every connect", () => {
    const f = setup();
    const connect = moddableConnector(parseEndpoint("mqtts://10.0.0.1"), { insecure: true }, f.net);
    expect(f.tlsSeen[0].secure.verify).toBe(false);
    connect(handlers().h);
    connect(handlers().h);
    expect(f.logs.filter((l) => /^warn TLS CERTIFICATE VERIFICATION IS OFF/.test(l)).length).toBe(2);
  });

  it("runs MQTT over WebSocket on the same sockets", () => {
    const f = setup();
    const { h } = handlers();
    moddableConnector(parseEndpoint("wss://10.0.0.1/mqtt"), { ca }, f.net)(h);
    f.sockets[0].open();
    expect(f.sockets[0].written.length).toBe(0); // written from inside a socket callback: sent on the next turn
    for (const g of f.deferred.splice(0)) g();
    const upgrade = new TextDecoder().decode(f.sockets[0].written[0]);
    expect(upgrade).toMatch(/^GET \/mqtt HTTP\/1\.1\r\n/);
    expect(upgrade).toMatch(/Sec-WebSocket-Protocol: mqtt/);
  });
});

describe("TLS options for the Moddable TLS socket", () => {
  const ep = parseEndpoint("mqtts://broker.example.com");
  const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const pkcs8 = rsa.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  const bad = (tls: TlsOptions) => {
    try {
      moddableTls(ep, tls, 0);
    } catch (e) {
      return `${(e as NetError).code}: ${(e as Error).message}`;
    }
    return "accepted";
  };

  it("accepts one CA and an RSA PKCS#8 key with its certificate (PEM or DER)", () => {
    const t = moddableTls(ep, { ca, cert: UIOT_ROOT_CA_PEM, key: pkcs8, serverName: "other.example.com" }, 0)!;
    expect(t.serverName).toBe("other.example.com");
    expect(t.secure.clientCertificates!.length).toBe(1);
    expect(new Uint8Array(t.secure.clientKey!)).toEqual(pemToDer(pkcs8)[0]);
    expect(moddableTls(ep, { ca: [pemToDer(UIOT_ROOT_CA_PEM)[0]] }, 0)!.secure.certificate!.byteLength).toBeGreaterThan(
      500,
    );
    expect(moddableTls(parseEndpoint("mqtt://broker"), undefined, 0)).toBeUndefined();
  });

  it("refuses what this TLS stack cannot do, saying what to do instead", () => {
    expect(bad({})).toMatch(/^INVALID_TLS_OPTIONS: tls\.ca is required/);
    expect(bad({ ca: [UIOT_ROOT_CA_PEM + UIOT_ROOT_CA_PEM] })).toMatch(/exactly one CA/);
    expect(
      bad({ ca, cert: UIOT_ROOT_CA_PEM, key: rsa.privateKey.export({ type: "pkcs1", format: "pem" }) as string }),
    ).toMatch(/PKCS#1.*openssl pkcs8 -topk8 -nocrypt/);
    expect(
      bad({
        ca,
        cert: UIOT_ROOT_CA_PEM,
        key: rsa.privateKey.export({ type: "pkcs1", format: "der" }) as unknown as Uint8Array,
      }),
    ).toMatch(/PKCS#1/);
    expect(
      bad({ ca, cert: UIOT_ROOT_CA_PEM, key: ec.privateKey.export({ type: "pkcs8", format: "pem" }) as string }),
    ).toMatch(/RSA keys only/);
    expect(
      bad({ ca, cert: UIOT_ROOT_CA_PEM, key: ec.privateKey.export({ type: "sec1", format: "pem" }) as string }),
    ).toMatch(/EC key/);
    expect(() => checkPrivateKey(new Uint8Array([0x04, 0x00]))).toThrow(/not a DER private key/);
  });
});

describe("describeTlsException", () => {
  const f = {
    endpoint: parseEndpoint("mqtts://b.example.com"),
    serverName: "b.example.com",
    open: false,
    clientCert: false,
    now: VALID_AFTER + 1,
    clockValid: true,
  };
  const cases: [string, Partial<typeof f>, string][] = [
    ["certificate: auth err", {}, "TLS_UNKNOWN_CA"],
    ["certificate: auth err", { clockValid: false }, "TLS_EXPIRED"],
    ["date validation failed", {}, "TLS_EXPIRED"],
    ["alert: 2, 40", {}, "TLS_HANDSHAKE_FAILED"],
    ["alert: 2, 42", { clientCert: true }, "TLS_CLIENT_CERT_REJECTED"],
    ["alert: 2, 48", { clientCert: true }, "TLS_CLIENT_CERT_REJECTED"],
    ["alert: 2, 116", {}, "TLS_CLIENT_CERT_REQUIRED"],
    ["alert: 2, 70", {}, "TLS_HANDSHAKE_FAILED"],
    ["alert: 2, 20", { open: true }, "CLOSED"],
    ["handshake: unsuppoorted cipher", {}, "TLS_HANDSHAKE_FAILED"],
    ["something else", {}, "TLS_HANDSHAKE_FAILED"],
    ["something else", { open: true }, "CLOSED"],
  ];
  for (const [message, over, expected] of cases)
    it(`"${message}" ${JSON.stringify(over)} -> ${expected}`, () => {
      const e = describeTlsException(new Error(message), { ...f, ...over });
      expect(e).toBeInstanceOf(NetError);
      expect(e.code).toBe(expected);
    });
  it("names the alert it parsed, and the cause it recognised, in the message", () => {
    expect(describeTlsException(new Error("alert: 2, 40"), f).message).toMatch(/\(alert 40\b/);
    expect(describeTlsException(new Error("alert: 2, 112"), f).message).toMatch(/does not serve the name.*alert 112/);
    expect(describeTlsException(new Error("alert: x, y"), f).message).toMatch(
      /^TLS with b\.example\.com:8883 failed: alert: x, y: /,
    );
    for (const m of [
      "handshake: unsuppoorted cipher",
      "handshake: unsupported cipher",
      "unsuported cipher 0x1301",
      "unsupported compression",
    ])
      expect(describeTlsException(new Error(m), f).message, m).toMatch(
        /chose a cipher suite this build does not offer/,
      );
    for (const m of ["unsupported curve", "invalid curve", "unsupported algorithm: sha3", "unimplemented"])
      expect(describeTlsException(new Error(m), f).message, m).toMatch(
        /uses an algorithm the device's TLS stack lacks/,
      );
  });
});
