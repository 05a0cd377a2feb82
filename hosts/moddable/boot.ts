/**
 * Stand-in for the firmware entry. Each target's main.ts builds its host and calls `start(host)` once; when the
 * real entry exists (src/device), main.ts imports `start` from there instead of from here, and nothing else
 * changes.
 */
import type { Host } from "../../src/device/host";

export function start(host: Host): void {
  host.log("info", "no firmware entry yet (src/device): the host is ready and waits; nothing connects to a broker");
}
