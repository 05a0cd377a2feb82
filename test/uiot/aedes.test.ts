// The thing layer over a real Client and TCP against aedes, with a tiny responder playing the platform per the
// spec's JSON: dynamic registration, then property post, shadow (with a version conflict), property set, command.
import { describe, expect, it } from "vitest";
import type { Client } from "../../src/mqtt/client";
import { CONFIG_KEYS, Identity } from "../../src/uiot/identity";
import { uiotClient } from "../../src/uiot/profile";
import { register } from "../../src/uiot/register";
import { Thing } from "../../src/uiot/thing";
import { nodeClock } from "../../hosts/node/clock";
import { tcpConnector } from "../../hosts/node/tcp";
import { startAedes } from "../helpers/aedes";
import { waitFor } from "../helpers/wait";
import { DSN, MemoryStore, PRODUCT_SECRET, PSN, SECRET, SYS } from "./harness";

describe("the thing layer against aedes with a tiny platform responder", () => {
  it("registers, reconnects with authmode 1, and runs the thing model and the shadow end to end", async () => {
    let registered = false;
    let shadowVersion = 3;
    const seen: { topic: string; json: string }[] = [];
    const aedes = await startAedes({
      authenticate: (client, username, password, done) => {
        const pw = password?.toString();
        const ok =
          client.id === `${PSN}.${DSN}` &&
          ((username === `${PSN}|${DSN}|2` && pw === PRODUCT_SECRET && !registered) ||
            (username === `${PSN}|${DSN}|1` && pw === SECRET));
        done(null, ok);
      },
    });
    const send = (suffix: string, json: string) =>
      aedes.broker.publish(
        { cmd: "publish", topic: SYS + suffix, payload: Buffer.from(json), qos: 1, retain: false, dup: false },
        () => {},
      );
    aedes.broker.on("publish", (packet, client) => {
      if (!client || !packet.topic.startsWith(SYS)) return;
      const suffix = packet.topic.slice(SYS.length),
        json = packet.payload.toString();
      seen.push({ topic: suffix, json });
      const msg = JSON.parse(json);
      switch (suffix) {
        case "password":
          registered = true;
          return send("password_reply", `{"RetCode":"0","RequestID":"${msg.RequestID}","Password":"${SECRET}"}`);
        case "tmodel/property/post":
          return send("tmodel/property/post_reply", `{"RequestID":"${msg.RequestID}","RetCode":0,"Message":"success"}`);
        case "shadow/upstream":
          if (msg.Version !== shadowVersion)
            return send(
              "shadow/downstream",
              `{"Method":"control","Payload":{"RetCode":100026,"State":{"Reported":{},"Desired":{}},"Metadata":{"Reported":{},"Desired":{}}},"Version":${shadowVersion},"Timestamp":1562917504}`,
            );
          shadowVersion++;
          return send(
            "shadow/downstream",
            `{"Method":"reply","Payload":{"RetCode":0},"Version":${shadowVersion},"Timestamp":1562909435}`,
          );
      }
    });
    const connect = tcpConnector({ host: "127.0.0.1", port: aedes.port });
    const backoff = { min: 50, max: 200 };

    // 1. Dynamic registration: the secret is stored, the registration connection is gone.
    const store = new MemoryStore();
    const identity = await register(new Identity({ productSN: PSN, deviceSN: DSN, productSecret: PRODUCT_SECRET }), {
      connect,
      clock: nodeClock,
      store,
      backoff,
    });
    expect(store.map.get(CONFIG_KEYS.deviceSecret)).toBe(SECRET);
    expect(identity.authmode).toBe(1);

    // 2. Authmode 1 with the stored secret.
    let client: Client | undefined;
    try {
      client = uiotClient(identity, { connect, clock: nodeClock, backoff });
      const errors: unknown[] = [];
      const thing = new Thing(client, identity, { clock: nodeClock, onError: (e) => errors.push(e) });
      thing.onSet(() => 0);
      thing.onCommand("cmd", (input) => ({ output: { o1: String(input.input1) } }));
      thing.start();
      client.start();
      await waitFor(() => client!.session.subscriptions.size === 10, { message: "the thing's subscriptions" });

      await thing.post({ temperature: 21.5, on: true });
      expect(seen.find((s) => s.topic === "tmodel/property/post")?.json).toBe(
        '{"RequestID":"1","Property":{"temperature":{"Value":21.5},"on":{"Value":1}}}',
      );

      // The device starts at version 0; the responder is at 3: conflict, re-align, retry once.
      expect(await thing.shadow.report({ temperature: 21.5 })).toBe(4);
      expect(seen.filter((s) => s.topic === "shadow/upstream").map((s) => JSON.parse(s.json).Version)).toEqual([0, 3]);

      send("tmodel/property/set", '{"RequestID":"100","Property":{"p1":"v1","p2":"v2"}}');
      send("tmodel/command", '{"RequestID":"432542341234","Identifier":"cmd","Input":{"input1":"v"}}');
      await waitFor(
        () =>
          seen.some((s) => s.topic === "tmodel/command_reply/432542341234") &&
          seen.some((s) => s.topic === "tmodel/property/set_reply"),
      );
      expect(seen.find((s) => s.topic === "tmodel/property/set_reply")?.json).toBe('{"RequestID":"100","RetCode":0}');
      expect(seen.find((s) => s.topic === "tmodel/command_reply/432542341234")?.json).toBe(
        '{"RetCode":0,"RequestID":"432542341234","Identifier":"cmd","Output":{"o1":"v"}}',
      );
      expect(errors).toEqual([]);
      thing.stop();
    } finally {
      client?.close();
    }
  });
});
