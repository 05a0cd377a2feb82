/**
 * Persistence for QoS 1 messages that the broker has not acknowledged yet, so they survive a reboot.
 * The interface lives here; hosts implement it (a file per message on the desktop, `preference` on a board).
 * Entries are whole encoded PUBLISH packets keyed by a sequence number that grows with each message.
 */
export interface OutboxStore {
  /** Every stored entry, in any order; the client sorts by key. */
  load(): { key: number; packet: Uint8Array }[];
  /** Saves one entry; throws when it cannot (full, I/O error): the publish then fails instead of pretending. */
  save(key: number, packet: Uint8Array): void;
  /** Forgets one entry (acknowledged). Removing an absent key is not an error. */
  remove(key: number): void;
}
