// The inbound QoS 1 unit (src/mqtt/inbound.ts): ids still with the application, and the ring of ids acknowledged
// lately that lets a redelivery be acknowledged again without a second delivery. Session-level behaviour ("QoS 1
// in") is in session.test.ts.
import { describe, expect, it } from "vitest";
import { Inbound, RECENT } from "../../src/mqtt/inbound";

describe("inbound QoS 1 ids", () => {
  it("remembers the last RECENT ids acknowledged, each once, and forgets them all when the broker kept no session", () => {
    const inb = new Inbound();
    expect(inb.seen(1)).toBe(false);
    inb.acked(1);
    inb.acked(1); // once: it does not push another out
    for (let id = 2; id <= RECENT; id++) inb.acked(id);
    expect(inb.seen(1) && inb.seen(RECENT)).toBe(true);
    inb.acked(RECENT + 1); // the ring is full: the oldest goes
    expect(inb.seen(1)).toBe(false);
    expect(inb.seen(2) && inb.seen(RECENT + 1)).toBe(true);
    inb.forget();
    expect(inb.seen(2) || inb.seen(RECENT + 1)).toBe(false);
  });

  it("knows which ids are still with the application", () => {
    const inb = new Inbound();
    expect(inb.busy(7)).toBe(false);
    inb.end(7); // nothing to end
    inb.start(7);
    inb.start(9);
    expect(inb.busy(7) && inb.busy(9)).toBe(true);
    inb.end(7);
    expect(inb.busy(7)).toBe(false);
    expect(inb.busy(9)).toBe(true);
  });
});
