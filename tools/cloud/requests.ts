// The emulated UIoT Core's requests to a device (tools/cloud/cloud.ts): a property set or a command, each waiting for
// the device's reply (matched by RequestID, kind and device) or for the platform's timeout.
import type { Reply } from "./types";
import type { Device } from "./registry";
import { isObject, parse } from "./shadow";
import { TMODEL_BAD_REQUEST } from "./thing-model";

export type RequestKind = "set" | "command";

interface Pending {
  productSN: string;
  deviceSN: string;
  kind: RequestKind;
  timer: NodeJS.Timeout;
  /** undefined: no reply in time. */
  settle(reply: Reply | undefined): void;
}

export class Requests {
  private readonly pending = new Map<string, Pending>();
  private seq = 0;

  /** `send` publishes to the device's system topic `suffix`. */
  constructor(
    private readonly timeoutMs: number,
    private readonly send: (device: Device, suffix: string, payload: string) => void,
  ) {}

  /** The next RequestID. */
  nextId(): string {
    return String(++this.seq);
  }

  /** Sends a request and resolves with the device's reply, or undefined when none came within the timeout. */
  request(device: Device, kind: RequestKind, id: string, suffix: string, payload: string): Promise<Reply | undefined> {
    return new Promise((resolve) => {
      const pending: Pending = {
        productSN: device.productSN,
        deviceSN: device.deviceSN,
        kind,
        timer: setTimeout(() => pending.settle(undefined), this.timeoutMs),
        settle: (reply) => {
          clearTimeout(pending.timer);
          this.pending.delete(id);
          resolve(reply);
        },
      };
      this.pending.set(id, pending);
      this.send(device, suffix, payload);
    });
  }

  /** A reply from the device to a request of ours; a late or stray one is only logged. */
  settle(device: Device, kind: RequestKind, id: string, payload: string): void {
    const p = this.pending.get(id);
    if (!p || p.kind !== kind || p.productSN !== device.productSN || p.deviceSN !== device.deviceSN) return;
    const msg = parse(payload);
    p.settle(
      isObject(msg) && typeof msg.RetCode === "number"
        ? ({ ...msg, RequestID: id } as Reply)
        : {
            RequestID: id,
            RetCode: TMODEL_BAD_REQUEST,
            Message: "the device's reply is not a JSON object with a numeric RetCode",
          },
    );
  }

  /** Every waiting request resolves as timed out. */
  close(): void {
    for (const p of this.pending.values()) p.settle(undefined);
  }
}
