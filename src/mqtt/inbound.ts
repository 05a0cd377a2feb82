/**
 * Received QoS 1 messages: the ids still with the application (an async handler: their PUBACK follows when it
 * settles) and the last RECENT ids acknowledged, so a redelivery (DUP) of one already handled is acknowledged again
 * without reaching the application twice. A session makes one at its first QoS 1 message: an idle client holds none.
 */

/** Inbound QoS 1 ids remembered to drop redeliveries: covers a broker's in-flight window (Mosquitto's default is 20). */
export const RECENT = 32;

export class Inbound {
  /**
   * Ids being handled: a property only once an async handler has made it (a field that an idle or synchronous
   * client would carry for nothing: a heap slot on XS).
   */
  declare private handling: Set<number> | undefined;
  /** A ring of the ids acknowledged last, at 1..RECENT (0 = empty: never a packet id), and where the next goes at 0. */
  private recent = new Uint16Array(RECENT + 1);

  /** `id` is still with the application. */
  busy(id: number): boolean {
    const handling = this.handling;
    return handling === undefined ? false : handling.has(id);
  }

  /** `id` was acknowledged lately. */
  seen(id: number): boolean {
    return this.recent.indexOf(id, 1) > 0;
  }

  /** The application handles `id` until end(id). */
  start(id: number): void {
    (this.handling ??= new Set()).add(id);
  }

  end(id: number): void {
    if (this.handling) this.handling.delete(id);
  }

  /** `id` is acknowledged: remembered among the last RECENT. */
  acked(id: number): void {
    const recent = this.recent;
    if (recent.indexOf(id, 1) < 0) {
      const at = recent[0];
      recent[at + 1] = id;
      recent[0] = at + 1 === RECENT ? 0 : at + 1;
    }
  }

  /** The broker kept no session: the ids it had sent mean nothing any more. */
  forget(): void {
    this.recent.fill(0);
  }
}
