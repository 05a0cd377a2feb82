// The emulated UIoT Core's message log (tools/cloud/cloud.ts): both directions, secrets masked, long payloads cut,
// the newest `size` kept.
import type { LogEntry } from "./types";

const MAX_LOG_PAYLOAD = 4096;
const SECRET_FIELD = /("(?:Password|DeviceSecret|ProductSecret)"\s*:\s*")((?:\\.|[^"\\])*)"/g;

/** Masks secrets in a payload for the log. */
export function maskSecrets(text: string): string {
  return text.replace(SECRET_FIELD, (_m, head: string) => `${head}****"`);
}

export class MessageLog {
  private readonly entries: LogEntry[] = [];
  private seq = 0;

  /** `onEntry` hears every entry as it is recorded. */
  constructor(
    private readonly size: number,
    private readonly now: () => number,
    private readonly onEntry: (entry: LogEntry) => void,
  ) {}

  record(
    direction: "in" | "out",
    topic: string,
    payload: string,
    qos: 0 | 1,
    productSN: string,
    deviceSN: string | undefined,
  ): void {
    let text = maskSecrets(payload);
    if (text.length > MAX_LOG_PAYLOAD) text = `${text.slice(0, MAX_LOG_PAYLOAD)}… (${payload.length} characters)`;
    const entry: LogEntry = { seq: ++this.seq, time: this.now(), direction, productSN, topic, qos, payload: text };
    if (deviceSN !== undefined) entry.deviceSN = deviceSN;
    this.entries.push(entry);
    if (this.entries.length > this.size) this.entries.shift();
    this.onEntry(entry);
  }

  /** Oldest first (a copy). */
  list(): LogEntry[] {
    return this.entries.slice();
  }
}
