// Counting TCP connections on loopback, to prove that a failed connection leaves nothing open (Linux /proc).
import { readFileSync } from "node:fs";

// /proc/net/tcp states that hold a connection open: ESTABLISHED, SYN_SENT, SYN_RECV, CLOSE_WAIT.
const OPEN = new Set(["01", "02", "03", "08"]);

/** TCP sockets (either end, IPv4 and IPv6) that are open on local or remote port `port`. */
export function openConnections(port: number): number {
  let n = 0;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4) continue;
      const local = parseInt(f[1].split(":")[1], 16);
      const remote = parseInt(f[2].split(":")[1], 16);
      if ((local === port || remote === port) && OPEN.has(f[3])) n++;
    }
  }
  return n;
}
