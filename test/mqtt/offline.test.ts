// Client.setOffline / retryNow: the firmware entry holds dials while the host's link is down and dials at once
// when it is back, without resetting the backoff.
import { describe, expect, it } from "vitest";
import { Client } from "../../src/mqtt/client";
import type { Connector, Transport } from "../../src/host";
import { FakeClock } from "../helpers/fake-clock";

/** A connector whose every dial fails at once, counting the dials. */
function failing(): { connect: Connector; dials: () => number } {
  let n = 0;
  const connect: Connector = (h) => {
    n++;
    h.onError(new Error("refused"));
    return { read: () => undefined, write: () => false, close: () => {} } as Transport;
  };
  return { connect, dials: () => n };
}

describe("Client offline hold", () => {
  it("does not dial while offline, not even from start(), and dials at once when back online", () => {
    const clock = new FakeClock();
    const { connect, dials } = failing();
    const client = new Client({ clientId: "c", connect, clock, random: () => 0.999 });
    client.setOffline(true);
    client.start();
    clock.advance(10 * 60_000);
    expect(dials()).toBe(0);
    expect(client.state).toBe("waiting");
    client.setOffline(false);
    clock.advance(0);
    expect(dials()).toBe(1);
    client.close();
  });

  it("holds the retries that fall due while offline; back online, one dial now, then the backoff goes on", () => {
    const clock = new FakeClock();
    const { connect, dials } = failing();
    const client = new Client({ clientId: "c", connect, clock, random: () => 0.999 });
    client.start();
    expect(dials()).toBe(1);
    clock.advance(5000); // retries at ~1 s and ~2 s
    const before = dials();
    expect(before).toBeGreaterThan(1);
    client.setOffline(true);
    clock.advance(10 * 60_000);
    expect(dials()).toBe(before);
    client.setOffline(false);
    clock.advance(0);
    expect(dials()).toBe(before + 1);
    clock.advance(1000); // the backoff was not reset to 1 s
    expect(dials()).toBe(before + 1);
    client.close();
  });

  it("retryNow dials at once only when waiting to retry", () => {
    const clock = new FakeClock();
    const { connect, dials } = failing();
    const client = new Client({ clientId: "c", connect, clock, random: () => 0.999 });
    client.retryNow(); // not started: nothing
    expect(dials()).toBe(0);
    client.start();
    expect(dials()).toBe(1);
    client.retryNow();
    clock.advance(0);
    expect(dials()).toBe(2);
    client.close();
    client.retryNow();
    clock.advance(60_000);
    expect(dials()).toBe(2);
  });
});
