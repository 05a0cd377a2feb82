// MQTT over WebSocket framing (src/net/websocket.ts) against a scripted server: the test plays the server's bytes
// on the inner transport and reads back what the client wrote.
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseEndpoint } from "../../src/net/endpoint";
import { NetError } from "../../src/net/errors";
import type { Transport, TransportHandlers } from "../../src/host";
import { webSocketConnector } from "../../src/net/websocket";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const enc = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

/** The inner byte transport, played by the test. */
class Server implements Transport {
  h!: TransportHandlers;
  written: Uint8Array[] = [];
  blocked = false;
  closed = false;
  private inbox: Uint8Array[] = [];

  read(): Uint8Array | undefined {
    return this.inbox.shift();
  }
  write(data: Uint8Array): boolean {
    if (this.closed) throw new Error("write after close");
    if (this.blocked) return false;
    this.written.push(data.slice());
    return true;
  }
  close(): void {
    this.closed = true;
  }

  open(): void {
    this.h.onConnect();
  }
  send(...chunks: Uint8Array[]): void {
    for (const c of chunks) this.inbox.push(c);
    this.h.onReadable(chunks.reduce((n, c) => n + c.length, 0));
  }
  unblock(): void {
    this.blocked = false;
    this.h.onWritable(65536);
  }
  all(): Buffer {
    return Buffer.concat(this.written);
  }
  /** The upgrade request: request line and headers (lower-case names). */
  request(): { line: string; headers: Record<string, string>; length: number } {
    const text = this.all().toString("latin1");
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) throw new Error("no complete request yet");
    const [line, ...rest] = text.slice(0, end).split("\r\n");
    const headers: Record<string, string> = {};
    for (const l of rest) headers[l.slice(0, l.indexOf(":")).toLowerCase()] = l.slice(l.indexOf(":") + 1).trim();
    return { line, headers, length: end + 4 };
  }
  acceptKey(): string {
    return createHash("sha1")
      .update(this.request().headers["sec-websocket-key"] + GUID)
      .digest("base64");
  }
  /** A correct 101 answer, with headers replaced or removed (null). */
  answer(over: Record<string, string | null> = {}, status = "HTTP/1.1 101 Switching Protocols"): Uint8Array {
    const headers: Record<string, string | null> = {
      Upgrade: "websocket",
      Connection: "Upgrade",
      "Sec-WebSocket-Accept": this.acceptKey(),
      "Sec-WebSocket-Protocol": "mqtt",
      ...over,
    };
    const lines = Object.entries(headers)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => `${k}: ${v}`);
    return enc(`${status}\r\n${lines.join("\r\n")}\r\n\r\n`);
  }
  /** The frames the client wrote after its request, checked for masking and unmasked. */
  frames(): ClientFrame[] {
    const b = this.all().subarray(this.request().length);
    const out: ClientFrame[] = [];
    let i = 0;
    while (i < b.length) {
      const fin = (b[i] & 0x80) !== 0;
      const op = b[i] & 0x0f;
      const masked = (b[i + 1] & 0x80) !== 0;
      let len = b[i + 1] & 0x7f;
      let p = i + 2;
      let lengthBytes = 0;
      if (len === 126) {
        len = b.readUInt16BE(p);
        p += 2;
        lengthBytes = 2;
      } else if (len === 127) {
        len = Number(b.readBigUInt64BE(p));
        p += 8;
        lengthBytes = 8;
      }
      const mask = b.subarray(p, p + 4);
      p += 4;
      const payload = Buffer.from(b.subarray(p, p + len)).map((x, k) => x ^ mask[k & 3]);
      out.push({
        fin,
        op,
        masked,
        mask: Buffer.from(mask).toString("hex"),
        lengthBytes,
        payload: new Uint8Array(payload),
      });
      i = p + len;
    }
    return out;
  }
}

interface ClientFrame {
  fin: boolean;
  op: number;
  masked: boolean;
  mask: string;
  lengthBytes: number;
  payload: Uint8Array;
}

/** A frame as a server sends it. */
function frame(
  op: number,
  payload: Uint8Array | number[] = [],
  o: { fin?: boolean; ext?: 16 | 64; mask?: boolean; rsv?: number; len?: number } = {},
): Uint8Array {
  const data = Uint8Array.from(payload);
  const n = o.len ?? data.length;
  const head: number[] = [(o.fin === false ? 0 : 0x80) | ((o.rsv ?? 0) << 4) | op];
  const m = o.mask ? 0x80 : 0;
  if (o.ext === 64 || (o.ext === undefined && n > 0xffff)) {
    head.push(m | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(n));
    head.push(...b);
  } else if (o.ext === 16 || n >= 126) {
    head.push(m | 126, n >> 8, n & 0xff);
  } else head.push(m | n);
  if (o.mask) head.push(0, 0, 0, 0);
  return cat(Uint8Array.from(head), data);
}

/** What the owner of the WebSocket transport (the MQTT client) sees. */
interface Probe {
  server: Server;
  ws: Transport;
  events: string[];
  data: Buffer;
  errors: Error[];
  views: Uint8Array[];
}

function dial(
  url = "ws://broker.example.com:8083/mqtt",
  options: { maxFrameSize?: number; random?: () => number } = {},
): Probe {
  const server = new Server();
  const p = { server, events: [], data: Buffer.alloc(0), errors: [], views: [] } as unknown as Probe;
  const connect = webSocketConnector(
    (h) => {
      server.h = h;
      return server;
    },
    parseEndpoint(url),
    { random: options.random ?? Math.random, maxFrameSize: options.maxFrameSize },
  );
  p.ws = connect({
    onConnect: () => p.events.push("connect"),
    onReadable: (n) => {
      p.events.push(`readable ${n}`);
      for (let c = p.ws.read(); c; c = p.ws.read()) {
        p.views.push(c);
        p.data = Buffer.concat([p.data, c]);
      }
    },
    onWritable: () => p.events.push("writable"),
    onError: (e) => {
      p.events.push(`error ${(e as NetError).code}`);
      p.errors.push(e);
    },
  });
  return p;
}

/** Dialled, upgraded and open. */
function opened(url?: string, options?: Parameters<typeof dial>[1]): Probe {
  const p = dial(url, options);
  p.server.open();
  p.server.send(p.server.answer());
  expect(p.events).toEqual(["connect"]);
  return p;
}

function failed(p: Probe, code: string, message: RegExp): void {
  expect(p.errors).toHaveLength(1);
  expect(p.errors[0]).toBeInstanceOf(NetError);
  expect((p.errors[0] as NetError).code).toBe(code);
  expect(p.errors[0].message).toMatch(message);
  expect(p.server.closed).toBe(true);
  expect(p.events.filter((e) => e.startsWith("error"))).toHaveLength(1);
}

describe("the upgrade", () => {
  it("asks for the mqtt subprotocol with a fresh random key, the path and the Host header", () => {
    const p = dial("ws://broker.example.com:8083/mqtt?x=1");
    expect(p.server.written).toEqual([]);
    p.server.open();
    const r = p.server.request();
    expect(r.line).toBe("GET /mqtt?x=1 HTTP/1.1");
    expect(r.headers).toMatchObject({
      host: "broker.example.com:8083",
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-version": "13",
      "sec-websocket-protocol": "mqtt",
    });
    expect(Buffer.from(r.headers["sec-websocket-key"], "base64")).toHaveLength(16);
    const q = dial("ws://broker.example.com:8083/mqtt");
    q.server.open();
    expect(q.server.request().headers["sec-websocket-key"]).not.toBe(r.headers["sec-websocket-key"]);
    expect(p.events).toEqual([]); // not connected until the 101
  });

  it("leaves the default port out of Host and brackets IPv6", () => {
    const host = (url: string) => {
      const p = dial(url);
      p.server.open();
      return p.server.request().headers.host;
    };
    expect(host("ws://h:80/mqtt")).toBe("h");
    expect(host("wss://h:443/mqtt")).toBe("h");
    expect(host("wss://h:80/mqtt")).toBe("h:80");
    expect(host("ws://[::1]:8083/mqtt")).toBe("[::1]:8083");
    expect(host("ws://[::1]:80/mqtt")).toBe("[::1]");
  });

  it("sends the request when the inner transport becomes writable if it would block at first", () => {
    const p = dial();
    p.server.blocked = true;
    p.server.open();
    expect(p.server.written).toEqual([]);
    p.server.unblock();
    expect(p.server.request().line).toBe("GET /mqtt HTTP/1.1");
    expect(p.events).toEqual([]); // no writable upward before the upgrade
  });

  it("opens on a correct 101 in any chunking, and frames after the head in the same chunk are data", () => {
    const p = dial();
    p.server.open();
    const answer = cat(p.server.answer(), frame(2, [0x20, 2, 0, 0]));
    for (let i = 0; i < answer.length; i++) p.server.send(answer.subarray(i, i + 1));
    expect(p.events[0]).toBe("connect");
    expect([...p.data]).toEqual([0x20, 2, 0, 0]);
  });

  const refusals: [string, (s: Server) => Uint8Array, string, RegExp][] = [
    [
      "HTTP 404",
      (s) => s.answer({}, "HTTP/1.1 404 Not Found"),
      "WS_HANDSHAKE_FAILED",
      /refused the WebSocket upgrade with HTTP 404 Not Found; the path is wrong.*\/mqtt/,
    ],
    [
      "HTTP 200 (a web page)",
      (s) => s.answer({}, "HTTP/1.1 200 OK"),
      "WS_HANDSHAKE_FAILED",
      /HTTP 200 OK; that is a web page/,
    ],
    ["HTTP 401", (s) => s.answer({}, "HTTP/1.1 401 Unauthorized"), "WS_HANDSHAKE_FAILED", /wants authentication/],
    ["a garbled status line", () => enc("HTTP/9 what\r\n\r\n"), "WS_HANDSHAKE_FAILED", /not an HTTP status line/],
    [
      "a wrong Sec-WebSocket-Accept",
      (s) => s.answer({ "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" }),
      "WS_HANDSHAKE_FAILED",
      /Sec-WebSocket-Accept does not match our key/,
    ],
    [
      "no Sec-WebSocket-Accept",
      (s) => s.answer({ "Sec-WebSocket-Accept": null }),
      "WS_HANDSHAKE_FAILED",
      /Sec-WebSocket-Accept is missing/,
    ],
    [
      "no subprotocol",
      (s) => s.answer({ "Sec-WebSocket-Protocol": null }),
      "WS_HANDSHAKE_FAILED",
      /did not agree to the "mqtt" subprotocol/,
    ],
    [
      "another subprotocol",
      (s) => s.answer({ "Sec-WebSocket-Protocol": "mqttv5" }),
      "WS_HANDSHAKE_FAILED",
      /chose the subprotocol "mqttv5"/,
    ],
    ["no Upgrade header", (s) => s.answer({ Upgrade: null }), "WS_HANDSHAKE_FAILED", /lacks "Upgrade: websocket"/],
    [
      "no Connection: Upgrade",
      (s) => s.answer({ Connection: "keep-alive" }),
      "WS_HANDSHAKE_FAILED",
      /lacks "Connection: Upgrade"/,
    ],
    [
      "an extension nobody asked for",
      (s) => s.answer({ "Sec-WebSocket-Extensions": "permessage-deflate" }),
      "WS_HANDSHAKE_FAILED",
      /extension "permessage-deflate"/,
    ],
    [
      "a CONNACK (a plain MQTT port)",
      () => Uint8Array.from([0x20, 2, 0, 0]),
      "WS_HANDSHAKE_FAILED",
      /plain MQTT port, use mqtt:\/\//,
    ],
    [
      "a TLS alert (a TLS port)",
      () => Uint8Array.from([0x15, 3, 1, 0, 2, 2, 0x46]),
      "TLS_REQUIRED",
      /TLS record: this port expects TLS: use mqtts:\/\/ \(8883\) or wss:\/\//,
    ],
    [
      "something else",
      () => enc("SSH-2.0-OpenSSH_9.2\r\n"),
      "WS_HANDSHAKE_FAILED",
      /answered the WebSocket upgrade with "SSH-2\.0-OpenSSH_9\.2", not HTTP/,
    ],
    [
      "endless headers",
      () => enc(`HTTP/1.1 101 OK\r\n${"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(200)}`),
      "WS_HANDSHAKE_FAILED",
      /no end of headers within 4096 bytes/,
    ],
  ];
  for (const [what, answer, code, message] of refusals) {
    it(`fails on ${what}, closing the connection`, () => {
      const p = dial();
      p.server.open();
      p.server.send(answer(p.server));
      failed(p, code, message);
      expect(p.events).toEqual([`error ${code}`]);
      expect(p.ws.write(new Uint8Array([1]))).toBe(false);
    });
  }

  it("turns a close in the middle of the upgrade into WS_HANDSHAKE_FAILED, and passes other inner errors on as they are", () => {
    const p = dial();
    p.server.open();
    p.server.send(enc("HTTP/1.1 101 Switching"));
    p.server.h.onError(new NetError("CLOSED", "the broker closed the connection"));
    expect((p.errors[0] as NetError).code).toBe("WS_HANDSHAKE_FAILED");
    expect(p.errors[0].message).toMatch(/closed the connection in the middle of the WebSocket upgrade/);
    const q = dial();
    const refused = new NetError("CONNECTION_REFUSED", "refused");
    q.server.h.onError(refused);
    expect(q.errors).toEqual([refused]);
  });
});

describe("frames from the client", () => {
  it("are binary, final and masked with a fresh key each, and leave the caller's bytes alone", () => {
    let seed = 1;
    const p = opened(undefined, { random: () => (seed = (seed * 48271) % 2147483647) / 2147483647 });
    const data = Uint8Array.from([0x10, 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const copy = data.slice();
    expect(p.ws.write(data)).toBe(true);
    expect(p.ws.write(data)).toBe(true);
    expect(data).toEqual(copy);
    const [a, b] = p.server.frames();
    for (const f of [a, b]) expect(f).toMatchObject({ fin: true, op: 2, masked: true, payload: copy });
    expect(a.mask).not.toBe(b.mask);
    // The masked bytes on the wire are not the plain bytes.
    expect(p.server.all().includes(Buffer.from(copy))).toBe(false);
  });

  it("use 7-bit, 16-bit and 64-bit lengths exactly where RFC 6455 says", () => {
    const p = opened();
    const sizes = [0, 1, 125, 126, 65535, 65536, 300000];
    for (const n of sizes) expect(p.ws.write(Uint8Array.from({ length: n }, (_, i) => i & 0xff))).toBe(true);
    const frames = p.server.frames();
    expect(frames.map((f) => f.payload.length)).toEqual(sizes);
    expect(frames.map((f) => f.lengthBytes)).toEqual([0, 0, 0, 2, 2, 8, 8]);
    for (const f of frames) {
      expect(f.masked).toBe(true);
      expect(f.payload.every((x, i) => x === (i & 0xff))).toBe(true);
    }
  });

  it("pass would-block up, and writable down the same way", () => {
    const p = opened();
    p.server.blocked = true;
    expect(p.ws.write(Uint8Array.from([0xc0, 0]))).toBe(false);
    p.server.unblock();
    expect(p.events).toEqual(["connect", "writable"]);
    expect(p.ws.write(Uint8Array.from([0xc0, 0]))).toBe(true);
    expect(p.server.frames()).toHaveLength(1);
  });

  it("refuse to write before the upgrade is done", () => {
    const p = dial();
    p.server.open();
    expect(p.ws.write(Uint8Array.from([1]))).toBe(false);
  });

  it("close(): a close frame 1000, the inner transport closed, no callback after", () => {
    const p = opened();
    p.ws.close();
    expect(p.server.closed).toBe(true);
    expect(p.server.frames()).toEqual([
      expect.objectContaining({ op: 8, masked: true, payload: Uint8Array.from([0x03, 0xe8]) }),
    ]);
    p.server.h.onError(new Error("late"));
    expect(p.events).toEqual(["connect"]);
    p.ws.close();
    const q = dial();
    q.ws.close(); // while dialling: no frame, closed
    expect(q.server.closed).toBe(true);
    expect(q.server.written).toEqual([]);
  });
});

describe("frames from the server", () => {
  it("binary payloads reach read() as views of the received chunk, without copies", () => {
    const p = opened();
    const chunk = cat(frame(2, [0x20, 2, 0, 0]), frame(2, [0x90, 3, 0, 1, 1]));
    p.server.send(chunk);
    expect([...p.data]).toEqual([0x20, 2, 0, 0, 0x90, 3, 0, 1, 1]);
    expect(p.views.every((v) => v.buffer === chunk.buffer)).toBe(true);
  });

  it("16-bit and 64-bit lengths, also in their non-minimal forms", () => {
    const p = opened();
    const big = Uint8Array.from({ length: 70000 }, (_, i) => (i * 7) & 0xff);
    p.server.send(
      frame(2, big.subarray(0, 200)),
      frame(2, big),
      frame(2, [1, 2, 3], { ext: 16 }),
      frame(2, [4], { ext: 64 }),
    );
    expect(p.data.equals(Buffer.concat([big.subarray(0, 200), big, Buffer.from([1, 2, 3, 4])]))).toBe(true);
  });

  it("fragmented messages are reassembled in order, with control frames between fragments", () => {
    const p = opened();
    p.server.send(
      frame(2, [1, 2], { fin: false }),
      frame(0, [3], { fin: false }),
      frame(9, [7, 7]),
      frame(0, [], { fin: false }),
      frame(0, [4, 5]),
    );
    expect([...p.data]).toEqual([1, 2, 3, 4, 5]);
    expect(p.server.frames()).toEqual([expect.objectContaining({ op: 0xa, payload: Uint8Array.from([7, 7]) })]);
    p.server.send(frame(2, [6])); // a new message after the fragmented one ended
    expect([...p.data]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(p.errors).toEqual([]);
  });

  it("ping is answered with a masked pong carrying its payload; pong is ignored", () => {
    const p = opened();
    p.server.send(frame(9, [1, 2, 3]), frame(9), frame(0xa, [9]));
    expect(p.server.frames()).toEqual([
      expect.objectContaining({ op: 0xa, fin: true, masked: true, payload: Uint8Array.from([1, 2, 3]) }),
      expect.objectContaining({ op: 0xa, payload: new Uint8Array(0) }),
    ]);
    expect(p.data.length).toBe(0);
    expect(p.events).toEqual(["connect"]);
  });

  it("a pong that would block waits, and goes before the owner is told it may write again", () => {
    const p = opened();
    p.server.blocked = true;
    p.server.send(frame(9, [1]), frame(9, [2]));
    expect(p.ws.write(Uint8Array.from([0xc0, 0]))).toBe(false);
    p.server.unblock();
    expect(p.server.frames().map((f) => [f.op, ...f.payload])).toEqual([[0xa, 2]]); // only the latest ping's
    expect(p.events).toEqual(["connect", "writable"]);
  });

  it("close: answered with the same code, the inner transport closed, then CLOSED reported after the data before it", () => {
    const p = opened();
    p.server.send(cat(frame(2, [0x30, 0]), frame(8, [0x03, 0xe9, ...enc("going away")])));
    expect([...p.data]).toEqual([0x30, 0]);
    expect(p.events).toEqual(["connect", "readable 2", "error CLOSED"]);
    failed(p, "CLOSED", /the server closed the WebSocket \(code 1001: going away\)/);
    expect(p.server.frames()).toEqual([
      expect.objectContaining({ op: 8, masked: true, payload: Uint8Array.from([0x03, 0xe9]) }),
    ]);
    const q = opened();
    q.server.send(frame(8));
    failed(q, "CLOSED", /the server closed the WebSocket:/);
    expect(q.server.frames()).toEqual([expect.objectContaining({ op: 8, payload: new Uint8Array(0) })]);
  });

  const violations: [string, () => Uint8Array, string, RegExp, number][] = [
    [
      "a text frame",
      () => frame(1, enc("{}")),
      "WS_PROTOCOL_ERROR",
      /text frame; MQTT over WebSocket uses binary frames only/,
      1003,
    ],
    ["a masked frame", () => frame(2, [1], { mask: true }), "WS_PROTOCOL_ERROR", /masked a frame/, 1002],
    ["reserved bits", () => frame(2, [1], { rsv: 4 }), "WS_PROTOCOL_ERROR", /reserved bits/, 1002],
    ["an unknown opcode", () => frame(3, [1]), "WS_PROTOCOL_ERROR", /unknown opcode 0x3/, 1002],
    [
      "a continuation with nothing to continue",
      () => frame(0, [1]),
      "WS_PROTOCOL_ERROR",
      /continuation frame with no fragmented message/,
      1002,
    ],
    [
      "a new message inside a fragmented one",
      () => cat(frame(2, [1], { fin: false }), frame(2, [2])),
      "WS_PROTOCOL_ERROR",
      /new message before finishing/,
      1002,
    ],
    [
      "a fragmented control frame",
      () => frame(9, [1], { fin: false }),
      "WS_PROTOCOL_ERROR",
      /fragmented a control frame/,
      1002,
    ],
    [
      "a control frame over 125 bytes",
      () => frame(9, new Uint8Array(126)),
      "WS_PROTOCOL_ERROR",
      /control frame of 126 bytes/,
      1002,
    ],
    [
      "a close frame with a 1-byte body",
      () => frame(8, [3]),
      "WS_PROTOCOL_ERROR",
      /close frame with a 1-byte body/,
      1002,
    ],
    [
      "a 64-bit length with its top bit set",
      () => Uint8Array.from([0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1]),
      "WS_PROTOCOL_ERROR",
      /top bit set/,
      1002,
    ],
  ];
  for (const [what, bytes, code, message, closeCode] of violations) {
    it(`${what} is ${code}: a close frame ${closeCode}, the connection closed`, () => {
      const p = opened();
      p.server.send(bytes());
      failed(p, code, message);
      const close = p.server.frames().find((f) => f.op === 8)!;
      expect((close.payload[0] << 8) | close.payload[1]).toBe(closeCode);
      expect(p.ws.write(Uint8Array.from([1]))).toBe(false);
    });
  }

  it("data before a violation in the same chunk still reaches the owner first", () => {
    const p = opened();
    p.server.send(cat(frame(2, [0x20, 2, 0, 0]), frame(1, enc("x"))));
    expect(p.events).toEqual(["connect", "readable 4", "error WS_PROTOCOL_ERROR"]);
  });

  it("an oversize frame is refused from its header, before any payload arrives", () => {
    const p = opened(undefined, { maxFrameSize: 1000 });
    p.server.send(frame(2, new Uint8Array(1000)));
    expect(p.data.length).toBe(1000);
    p.server.send(frame(2, [], { len: 1001 })); // the header alone, announcing 1001 bytes
    failed(p, "FRAME_TOO_LARGE", /frame of 1001 bytes, over the limit of 1000: raise maxFrameSize/);
    const close = p.server.frames().find((f) => f.op === 8)!;
    expect([...close.payload]).toEqual([0x03, 0xf1]); // 1009 message too big
  });

  it("an oversize fragmented message is refused at the fragment that crosses the limit", () => {
    const p = opened(undefined, { maxFrameSize: 1000 });
    p.server.send(frame(2, new Uint8Array(600), { fin: false }));
    p.server.send(frame(0, [], { len: 401, fin: true }));
    failed(p, "FRAME_TOO_LARGE", /fragmented WebSocket message of more than 1000 bytes/);
  });

  it("a 64-bit length beyond 4 GB is refused from its header; the default limit is the codec's 256 KB", () => {
    const p = opened();
    p.server.send(Uint8Array.from([0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]));
    failed(p, "FRAME_TOO_LARGE", /frame of 4294967296 bytes, over the limit of 262144/);
    const q = opened();
    q.server.send(frame(2, [], { len: 256 * 1024 + 1 }));
    failed(q, "FRAME_TOO_LARGE", /over the limit of 262144/);
  });

  it("refuses a nonsense maxFrameSize when the connector is made", () => {
    expect(() => dial(undefined, { maxFrameSize: 0 })).toThrow(/maxFrameSize must be an integer/);
  });
});

describe("random chunking of the server's bytes", () => {
  it("changes nothing: the same MQTT bytes, the same pongs, the same close", () => {
    const part = fc.uint8Array({ minLength: 0, maxLength: 300 });
    const item = fc.oneof(
      part.map((d) => ({ kind: "binary" as const, parts: [d] })),
      fc.array(part, { minLength: 2, maxLength: 4 }).map((parts) => ({ kind: "binary" as const, parts })),
      fc.uint8Array({ maxLength: 125 }).map((d) => ({ kind: "ping" as const, parts: [d] })),
      fc.uint8Array({ maxLength: 125 }).map((d) => ({ kind: "pong" as const, parts: [d] })),
      fc.uint8Array({ minLength: 70000, maxLength: 70010 }).map((d) => ({ kind: "binary" as const, parts: [d] })),
    );
    fc.assert(
      fc.property(
        fc.array(item, { maxLength: 12 }),
        fc.boolean(),
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 50 }),
        (items, closeAtEnd, cuts) => {
          const p = dial();
          p.server.open();
          const stream: Uint8Array[] = [p.server.answer()];
          const expectedData: number[] = [];
          const expectedPongs: number[][] = [];
          for (const it of items) {
            if (it.kind === "ping") {
              stream.push(frame(9, it.parts[0]));
              expectedPongs.push([...it.parts[0]]);
            } else if (it.kind === "pong") stream.push(frame(0xa, it.parts[0]));
            else {
              // Fragments, with a ping slipped between the first two when there are several.
              it.parts.forEach((d, i) => {
                if (i === 1) {
                  stream.push(frame(9, [0xab, i]));
                  expectedPongs.push([0xab, i]);
                }
                stream.push(frame(i === 0 ? 2 : 0, d, { fin: i === it.parts.length - 1 }));
                for (const x of d) expectedData.push(x); // not push(...d): 70,000 arguments overflow XS's stack
              });
            }
          }
          if (closeAtEnd) stream.push(frame(8, [0x03, 0xe8]));
          const all = cat(...stream);
          // Cut `all` at the drawn sizes, cycling through them.
          for (let at = 0, k = 0; at < all.length; k++) {
            const n = cuts[k % cuts.length];
            p.server.send(all.slice(at, at + n));
            at += n;
          }
          expect(p.events[0]).toBe("connect");
          expect(Buffer.compare(p.data, Buffer.from(expectedData))).toBe(0);
          const frames = p.server.frames();
          expect(frames.every((f) => f.masked && f.fin)).toBe(true);
          expect(frames.filter((f) => f.op === 0xa).map((f) => [...f.payload])).toEqual(expectedPongs);
          if (closeAtEnd) {
            expect(p.events[p.events.length - 1]).toBe("error CLOSED");
            expect(frames[frames.length - 1].op).toBe(8);
          } else expect(p.errors).toEqual([]);
        },
      ),
      { numRuns: 200 },
    );
    // 200 runs with 70 KB frames: about 14 s of CPU on an idle machine, several times that on a loaded one
  }, 180000);
});
