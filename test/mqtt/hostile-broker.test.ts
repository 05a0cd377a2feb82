// The client against a broker that misbehaves, on real sockets on loopback: each scenario scripts the first
// connection(s) of a hostile broker (test/helpers/hostile-broker.ts); later connections go to a real Mosquitto. Each
// asserts the typed error, the handling, a bound on memory and on the bytes any one callback handles, and that the
// client reconnects (with backoff) and delivers every QoS 1 message it was given to the sane broker.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { Client, type ClientOptions } from "../../src/mqtt/client";
import type { MqttError } from "../../src/mqtt/codec";
import type { Transport, TransportHandlers } from "../../src/host";
import { parseEndpoint } from "../../src/net/endpoint";
import { nodeClock } from "../../hosts/node/clock";
import { nodeConnector } from "../../hosts/node/connect";
import { startMosquitto, type MosquittoBroker } from "../helpers/mosquitto";
import { startHostileBroker, type HostileConnection, type Script } from "../helpers/hostile-broker";
import { waitFor } from "../helpers/wait";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

let sane: MosquittoBroker;
let watcher: Client;
const seen = new Set<string>();
beforeAll(async () => {
  sane = await startMosquitto({ stopAfterTest: false });
  watcher = new Client({
    clientId: "watcher",
    connect: nodeConnector(parseEndpoint(`mqtt://127.0.0.1:${sane.port}`)),
    clock: nodeClock,
    onMessage: (_t, p) => void seen.add(new TextDecoder().decode(p)),
  });
  watcher.start();
  await new Promise<void>((resolve, reject) => watcher.subscribe("hostile/#", 1, (e) => (e ? reject(e) : resolve())));
});
afterAll(async () => {
  watcher?.close();
  await sane?.close();
});

const devices: Client[] = [];
afterEach(() => {
  for (const c of devices.splice(0)) c.close();
});

interface Device {
  client: Client;
  downs: MqttError[];
  errors: MqttError[];
  /** The first 1,000 messages received, and how many in all. */
  received: string[];
  count: number;
  /**
   * The most bytes any one transport callback read and wrote: the work a broker can make one turn of the event loop
   * do (the codec's cost is linear in bytes). Counted, not timed, so a loaded machine does not change it.
   */
  worstCallbackBytes: number;
  /** Publishes `n` QoS 1 messages tagged `tag`; resolves when all are acknowledged. */
  post(tag: string, n?: number): Promise<void>;
}

/**
 * The most bytes one callback may handle: the Node transport holds at most 8 chunks of up to 64 KiB for a client
 * that is not reading before it pauses the socket (a chunk or two may still arrive), and takes at most 64 KiB of
 * writes before it says "would block", so a client that reads and answers in bounded steps stays under ten chunks
 * per turn however long a broker floods (the QoS 1 flood's worst turn is about three).
 */
const TURN_BYTES = 10 * 64 * 1024;

function device(port: number, options: Partial<ClientOptions> = {}): Device {
  const d: Device = {
    client: undefined as unknown as Client,
    downs: [],
    errors: [],
    received: [],
    count: 0,
    worstCallbackBytes: 0,
    post: (tag, n = 5) =>
      Promise.all(
        Array.from(
          { length: n },
          (_, i) =>
            new Promise<void>((resolve, reject) =>
              d.client.publish(`hostile/${tag}`, `${tag}-${i}`, { qos: 1 }, (e) => (e ? reject(e) : resolve())),
            ),
        ),
      ).then(() => undefined),
  };
  const inner = nodeConnector(parseEndpoint(`mqtt://127.0.0.1:${port}`));
  let turn = 0; // bytes read and written in the running callback
  const counted =
    <A extends unknown[]>(f: (...a: A) => void) =>
    (...a: A) => {
      turn = 0;
      f(...a);
      d.worstCallbackBytes = Math.max(d.worstCallbackBytes, turn);
    };
  d.client = new Client({
    clientId: `hostile-${Math.random().toString(36).slice(2, 10)}`,
    connect: (h: TransportHandlers): Transport => {
      const t = inner({
        onConnect: counted(() => h.onConnect()),
        onReadable: counted((n: number) => h.onReadable(n)),
        onWritable: counted((n: number) => h.onWritable(n)),
        onError: counted((e: Error) => h.onError(e)),
      });
      return {
        read: () => {
          const c = t.read();
          if (c) turn += c.length;
          return c;
        },
        write: (data) => {
          const taken = t.write(data);
          if (taken) turn += data.length;
          return taken;
        },
        close: () => t.close(),
      };
    },
    clock: nodeClock,
    keepalive: 5,
    connectTimeout: 2000,
    maxPacketSize: 32 * 1024, // an ESP32's
    backoff: { min: 50, max: 200 },
    onDisconnect: (e) => void d.downs.push(e),
    onError: (e) => void d.errors.push(e),
    onMessage: (t, p) => {
      if (d.count++ < 1000) d.received.push(`${t} ${new TextDecoder().decode(p)}`);
    },
    ...options,
  });
  devices.push(d.client);
  return d;
}

/**
 * Runs `scripts` as the broker's first connections: the device starts with five QoS 1 messages queued, `check`
 * asserts the misbehaviour's outcome, and then every message must reach the sane broker.
 */
async function attack(
  tag: string,
  scripts: Script[],
  check: (d: Device, c: HostileConnection[]) => Promise<void>,
  options: Partial<ClientOptions> = {},
): Promise<Device> {
  const hostile = await startHostileBroker({ scripts, sanePort: sane.port });
  const d = device(hostile.port, options);
  current = d;
  d.client.start();
  const posted = d.post(tag);
  await check(d, hostile.connections);
  await posted;
  await waitFor(() => Array.from({ length: 5 }, (_, i) => `${tag}-${i}`).every((m) => seen.has(m)), {
    message: `the watcher got every ${tag} message`,
  });
  expect(hostile.connections.length).toBeGreaterThan(scripts.length); // it came back, to the sane broker
  expect(d.worstCallbackBytes).toBeLessThan(TURN_BYTES);
  return d;
}

/** The device of the running attack (a script may look at it). */
let current: Device;
const d0 = () => current;
const downCodes = (d: Device) => d.downs.map((e) => e.code);
const afterConnect =
  (then: (c: HostileConnection) => unknown): Script =>
  async (c) => {
    await c.next("connect");
    c.connack();
    await then(c);
  };

describe("a broker that does not answer CONNECT as it should", () => {
  it("no CONNACK: CONNECT_TIMEOUT, then it reconnects", async () => {
    await attack("no-connack", [async (c) => void (await c.next("connect"))], async (d) => {
      await waitFor(() => d.downs.length > 0, { timeoutMs: 15000 });
      expect(d.downs[0].code).toBe("CONNECT_TIMEOUT");
      expect(d.downs[0].message).toMatch(/no CONNACK within 2000 ms/);
    });
  });

  for (const code of [1, 2, 3, 4, 5]) {
    it(`CONNACK refusal ${code}: CONNECT_REFUSED with the code and what to check`, async () => {
      await attack(`refused-${code}`, [async (c) => (await c.next("connect"), c.connack(code))], async (d) => {
        await waitFor(() => d.downs.length > 0);
        expect(d.downs[0]).toMatchObject({ code: "CONNECT_REFUSED", returnCode: code });
        expect(d.downs[0].message).toMatch(new RegExp(`^connection refused \\(code ${code}\\): `));
      });
    });
  }

  it("a CONNACK code no protocol level has (6): BAD_RETURN_CODE", async () => {
    await attack("connack-6", [async (c) => (await c.next("connect"), c.send([0x20, 2, 0, 6]))], async (d) => {
      await waitFor(() => d.downs.length > 0);
      expect(d.downs[0].code).toBe("BAD_RETURN_CODE");
    });
  });

  it("PINGRESP in place of CONNACK: not an MQTT broker", async () => {
    await attack("pingresp-first", [async (c) => (await c.next("connect"), c.send([0xd0, 0]))], async (d) => {
      await waitFor(() => d.downs.length > 0);
      expect(d.downs[0].code).toBe("CONNECTION_LOST");
      expect(d.downs[0].message).toMatch(/instead of a CONNACK/);
    });
  });

  it("a second CONNACK: PROTOCOL_ERROR", async () => {
    await attack("second-connack", [afterConnect((c) => void c.connack())], async (d) => {
      await waitFor(() => d.downs.length > 0);
      expect(d.downs[0].code).toBe("PROTOCOL_ERROR");
      expect(d.downs[0].message).toMatch(/CONNACK when already connected/);
    });
  });

  it("a CONNACK that claims a kept session for a clean-session CONNECT: PROTOCOL_ERROR", async () => {
    await attack("session-present", [async (c) => (await c.next("connect"), c.connack(0, true))], async (d) => {
      await waitFor(() => d.downs.length > 0);
      expect(d.downs[0].code).toBe("PROTOCOL_ERROR");
      expect(d.downs[0].message).toMatch(/asked for a clean one/);
    });
  });

  it("a PUBLISH before CONNACK: PROTOCOL_ERROR", async () => {
    await attack(
      "publish-first",
      [async (c) => (await c.next("connect"), c.send([0x30, 3, 0, 1, 0x61]), c.connack())],
      async (d) => {
        await waitFor(() => d.downs.length > 0);
        expect(d.downs[0].code).toBe("CONNECTION_LOST"); // its first byte is not a CONNACK's
      },
    );
  });
});

describe("malformed packets", () => {
  const cases: [string, number[], string][] = [
    ["a 5-byte remaining length", [0x30, 0xff, 0xff, 0xff, 0xff, 0x01], "MALFORMED_LENGTH"],
    ["a QoS 2 PUBLISH", [0x34, 6, 0, 1, 0x61, 0, 1, 0x78], "QOS2_UNSUPPORTED"],
    ["a QoS 3 PUBLISH", [0x36, 6, 0, 1, 0x61, 0, 1, 0x78], "INVALID_QOS"],
    ["PUBREL (QoS 2)", [0x62, 2, 0, 1], "QOS2_UNSUPPORTED"],
    ["a topic of invalid UTF-8", [0x30, 5, 0, 2, 0xc3, 0x28, 0x78], "INVALID_STRING"],
    ["a topic holding U+0000", [0x30, 5, 0, 2, 0x61, 0x00, 0x78], "INVALID_STRING"],
    ["a topic with a wildcard", [0x30, 6, 0, 3, 0x61, 0x2f, 0x2b, 0x78], "INVALID_TOPIC"],
    ["a topic holding '#'", [0x30, 4, 0, 1, 0x23, 0x78], "INVALID_TOPIC"],
    ["an empty topic", [0x30, 3, 0, 0, 0x78], "INVALID_TOPIC"],
    ["PUBACK for packet id 0", [0x40, 2, 0, 0], "INVALID_PACKET"],
    ["a PUBACK with a byte too many", [0x40, 3, 0, 1, 0], "TRAILING_BYTES"],
    ["packet type 0", [0x00, 0], "UNKNOWN_PACKET"],
    ["a PINGREQ (only clients send it)", [0xc0, 0], "PROTOCOL_ERROR"],
    ["a SUBSCRIBE (only clients send it)", [0x82, 6, 0, 1, 0, 1, 0x61, 0], "PROTOCOL_ERROR"],
    ["a SUBACK code outside 0, 1, 2, 128", [0x90, 3, 0, 9, 7], "BAD_RETURN_CODE"],
  ];
  for (const [what, bytes, code] of cases) {
    it(`${what}: ${code}, and it reconnects`, async () => {
      await attack(
        `malformed-${code}-${bytes[0]}-${bytes.length}`,
        [afterConnect((c) => void c.send(bytes))],
        async (d) => {
          await waitFor(() => d.downs.length > 0);
          expect(d.downs[0].code).toBe(code);
        },
      );
    });
  }

  it("a PUBACK for an id never used is ignored: the connection and the messages go on", async () => {
    const d = await attack(
      "unknown-puback",
      [afterConnect((c) => (c.send([0x40, 2, 0x7f, 0x7f]), setTimeout(() => c.close(), 200)))],
      async (d) => {
        await waitFor(() => d.downs.length > 0);
        expect(d.downs[0].code).toBe("CONNECTION_LOST"); // the close, not the PUBACK
      },
    );
    expect(d.errors).toEqual([]);
  });

  it("close and reset in the middle of a packet: CONNECTION_LOST, nothing delivered from the half packet", async () => {
    const half = [0x30, 20, 0, 4, 0x61, 0x62];
    const d = await attack(
      "mid-packet",
      [
        afterConnect((c) => (c.send(half), setTimeout(() => c.close(), 100))),
        afterConnect((c) => (c.send(half), setTimeout(() => c.reset(), 100))),
      ],
      async (d) => {
        await waitFor(() => d.downs.length >= 2);
        expect(downCodes(d).slice(0, 2)).toEqual(["CONNECTION_LOST", "CONNECTION_LOST"]);
        expect(d.downs[1].message).toMatch(/reset|closed/);
      },
    );
    expect(d.received).toEqual([]);
  });
});

describe("SUBACK", () => {
  const subscribeThen = (answer: (c: HostileConnection, id: number) => void): Script =>
    afterConnect(async (c) => {
      const s = (await c.next("subscribe")) as { messageId: number };
      answer(c, s.messageId);
    });

  it("with fewer return codes than filters: PROTOCOL_ERROR, not a refusal", async () => {
    await attack("suback-few", [subscribeThen((c, id) => c.send([0x90, 3, id >> 8, id & 255, 1]))], async (d) => {
      d.client.subscribe(["a/1", "a/2"], 1);
      await waitFor(() => d.downs.length > 0);
      expect(d.downs[0].code).toBe("PROTOCOL_ERROR");
      expect(d.downs[0].message).toMatch(/SUBACK with 1 return code for a SUBSCRIBE of 2 filters/);
    });
  });

  it("with more return codes than filters: PROTOCOL_ERROR, not a success", async () => {
    await attack("suback-many", [subscribeThen((c, id) => c.send([0x90, 4, id >> 8, id & 255, 1, 1]))], async (d) => {
      d.client.subscribe("a/1", 1);
      await waitFor(() => d.downs.length > 0);
      expect(d.downs[0].message).toMatch(/SUBACK with 2 return codes for a SUBSCRIBE of 1 filter/);
    });
  });

  it("0x80: SUBSCRIBE_REFUSED to the caller, and the connection lives on", async () => {
    let refused: MqttError | undefined;
    await attack(
      "suback-80",
      [subscribeThen((c, id) => (c.send([0x90, 3, id >> 8, id & 255, 0x80]), setTimeout(() => c.close(), 200)))],
      async (d) => {
        d.client.subscribe("a/1", 1, (e) => (refused = e));
        await waitFor(() => refused);
        expect(refused?.code).toBe("SUBSCRIBE_REFUSED");
        expect(d.client.state).toBe("connected");
      },
    );
  });

  it("for an id never used: ignored", async () => {
    const d = await attack(
      "suback-unknown",
      [afterConnect((c) => (c.send([0x90, 3, 0x7f, 0x7e, 1]), setTimeout(() => c.close(), 200)))],
      async (d) => {
        await waitFor(() => d.downs.length > 0);
        expect(d.downs[0].code).toBe("CONNECTION_LOST");
      },
    );
    expect(d.errors).toEqual([]);
  });
});

describe("size and time", () => {
  it("a PUBLISH announced larger than the chip takes, sent fast: skipped with PACKET_TOO_LARGE, the next one delivered", async () => {
    const big = new Uint8Array(4 + 40967);
    big.set([0x30, 0x87, 0xc0, 0x02, 0, 1, 0x62]); // 40,967-byte remaining length, topic "b"
    const d = await attack(
      "oversize",
      [afterConnect((c) => (c.send(big), c.send([0x30, 4, 0, 1, 0x73, 0x21]), setTimeout(() => c.close(), 300)))],
      async (d) => {
        await waitFor(() => d.received.length > 0 && d.downs.length > 0);
        expect(d.errors.map((e) => e.code)).toEqual(["PACKET_TOO_LARGE"]);
        expect(d.errors[0].message).toMatch(/a 40971-byte PUBLISH exceeds the 32768-byte maximum packet size/);
        expect(d.received).toEqual(["s !"]);
      },
    );
    expect(d.downs[0].code).toBe("CONNECTION_LOST");
  });

  it("a huge announced PUBLISH trickled: PACKET_TIMEOUT once the largest packet's allowance is spent, not the announced one's", async () => {
    let sent = 0;
    await attack(
      "trickled-huge",
      [
        afterConnect(async (c) => {
          c.send([0x30, 0xff, 0xff, 0xff, 0x7f]); // 256 MB announced
          sent = await c.trickle(new Uint8Array(100000), 100);
        }),
      ],
      async (d) => {
        await waitFor(() => d.downs.length > 0, { timeoutMs: 15000 });
        expect(d.downs[0].code).toBe("PACKET_TIMEOUT");
        expect(d.errors[0].code).toBe("PACKET_TOO_LARGE");
      },
      { maxPacketSize: 2048, packetTimeout: 1000 },
    ); // an ESP8266's: 1 s + 2,048 ms at most
    expect(sent).toBeLessThan(60);
  });

  it("slowloris: a packet trickled a byte at a time is dropped after packetTimeout plus 1 ms a byte (PACKET_TIMEOUT)", async () => {
    let sent = 0;
    const publish = new Uint8Array([0x30, 100, 0, 1, 0x74, ...new Array(97).fill(0x78)]);
    await attack(
      "slowloris",
      [afterConnect(async (c) => void (sent = await c.trickle(publish, 100)))],
      async (d) => {
        await waitFor(() => d.downs.length > 0, { timeoutMs: 15000 });
        expect(d.downs[0].code).toBe("PACKET_TIMEOUT");
        expect(d.downs[0].message).toMatch(/a 102-byte packet began to arrive [\d.]+ s ago and is still incomplete/);
      },
      { packetTimeout: 1000 },
    );
    expect(sent).toBeLessThan(100);
  });

  it("a large message on a slow link gets through: 16 KB at 8 KB a second, longer than the keepalive's 1.5x", async () => {
    const payload = "z".repeat(16 * 1024);
    const bytes = new Uint8Array([0x30, 0x83, 0x80, 0x01, 0, 1, 0x6c, ...new TextEncoder().encode(payload)]);
    await attack(
      "slow-link",
      [
        afterConnect(async (c) => {
          for (let i = 0; i < bytes.length; i += 800) {
            c.send(bytes.subarray(i, i + 800));
            await new Promise((r) => setTimeout(r, 100));
          }
          setTimeout(() => c.close(), 100);
        }),
      ],
      async (d) => {
        await waitFor(() => d.received.length > 0, { timeoutMs: 15000 });
        expect(d.received[0]).toBe(`l ${payload}`);
        expect(d.downs).toEqual([]);
      },
      { keepalive: 1 },
    );
  });
});

describe("floods from a broker that does not read", () => {
  /**
   * Writes `packet`s as fast as the socket takes them (the broker's own memory stays bounded) until told to stop:
   * 8,000 at a time from one buffer made once, so the broker's side costs next to nothing. `count.n` says how many
   * were handed to the socket (Node delivers them all, however long the client takes to read).
   */
  async function flood(
    c: HostileConnection,
    packet: (i: number) => number[],
    until: () => boolean,
    count = { n: 0 },
  ): Promise<void> {
    const parts = Array.from({ length: 8000 }, (_, i) => packet(i + 1));
    const batch = Uint8Array.from(parts.flat());
    while (!until() && !c.ended) {
      c.written += batch.length;
      count.n += parts.length;
      if (!c.socket.write(batch)) await new Promise((r) => c.socket.once("drain", r).once("close", r));
    }
  }
  const qos1 = (id: number) => [0x32, 6, 0, 1, 0x66, id >> 8, id & 255, 0x21];
  const qos0 = () => [0x30, 4, 0, 1, 0x66, 0x21];

  it("QoS 1: the client stops reading instead of queueing PUBACKs, memory stays bounded, and everything is answered once the broker reads", async () => {
    let heapBefore = 0,
      heapDuring = 0,
      flooded = 0,
      acked = 0,
      backlog = 0;
    const d = await attack(
      "flood-1",
      [
        afterConnect(async (c) => {
          for (let i = 0; i < 5; i++) await c.next("publish"); // the device's own, never acknowledged here
          c.stopReading();
          gc();
          heapBefore = process.memoryUsage().heapUsed;
          let stuck = false;
          const count = { n: 0 };
          void flood(c, qos1, () => stuck, count);
          // the client stops reading: the broker's writes stop being taken
          await waitFor(
            async () => {
              const before = c.written;
              await new Promise((r) => setTimeout(r, 300));
              return c.written === before && c.written > 100000;
            },
            { timeoutMs: 150000, intervalMs: 0, message: "the broker's flood stalls" },
          );
          stuck = true;
          flooded = count.n;
          backlog = d0().client.session.backlog;
          gc();
          heapDuring = process.memoryUsage().heapUsed;
          // The broker reads again: all that comes now is PUBACKs (4 bytes each), one for every message.
          let bytes = 0;
          c.socket.on("data", (b: Buffer) => void (bytes += b.length));
          c.socket.resume();
          await waitFor(() => bytes >= flooded * 4, { timeoutMs: 150000, message: "a PUBACK for every message" });
          acked = bytes / 4;
          c.close();
        }),
      ],
      async (d) => {
        await waitFor(() => d.downs.length > 0, { timeoutMs: 300000 });
      },
      { keepalive: 600 },
    );
    console.log(
      `flood: ${flooded} QoS 1 messages, ${(heapDuring - heapBefore) >> 10} KB heap, ${backlog} B of PUBACKs waiting when it stalled`,
    );
    expect(flooded).toBeGreaterThan(10000);
    expect(acked).toBe(flooded);
    expect(d.count).toBe(flooded);
    expect(d.client.session.backlog).toBe(0);
    // The bytes the broker wrote stayed in TCP's buffers: the client's heap grew by far less than what came.
    expect(heapDuring - heapBefore).toBeLessThan(8 * 1024 * 1024);
    // 64 PUBACKs, plus those of the one chunk being read when the limit was passed (Node reads up to 64 KB at once)
    expect(backlog).toBeLessThanOrEqual(64 * 4 + ((64 * 1024) / 8) * 4);
  }, 600000);

  for (const [what, packet] of [
    ["QoS 0", qos0],
    ["QoS 1", qos1],
  ] as const) {
    it(`${what} flood from a broker that never reads: the connection ends (PING_TIMEOUT or WRITE_STALLED) within keepalive + max(keepalive, pingTimeout), then it reconnects`, async () => {
      let stop = false;
      const started = Date.now();
      await attack(
        `never-reads-${what[4]}`,
        [
          afterConnect(async (c) => {
            c.stopReading();
            await flood(c, packet, () => stop);
          }),
        ],
        async (d) => {
          await waitFor(() => d.downs.length > 0, { timeoutMs: 20000 });
          stop = true;
          expect(["PING_TIMEOUT", "WRITE_STALLED"]).toContain(d.downs[0].code);
          expect(Date.now() - started).toBeLessThan(15000);
        },
        { keepalive: 2 },
      );
    }, 60000);
  }
});

describe("KICKED", () => {
  it("is reported once, for a broker that accepts and then closes three times in a row", async () => {
    const kick = afterConnect((c) => void setTimeout(() => c.close(), 50));
    const d = await attack("kicked", [kick, kick, kick, kick], async (d) => {
      await waitFor(() => d.downs.length >= 4);
    });
    expect(d.errors.map((e) => e.code)).toEqual(["KICKED"]);
  });

  it("is not reported for losses the client caused (protocol errors)", async () => {
    const broken = afterConnect((c) => void c.send([0x00, 0]));
    const d = await attack("not-kicked", [broken, broken, broken, broken], async (d) => {
      await waitFor(() => d.downs.length >= 4);
    });
    expect(d.errors).toEqual([]);
  });
});
