// Free loopback ports for brokers the tests start.
//
// Mosquitto 2.0 cannot be told "listen on any free port" (`listener 0` means a unix socket there), so the helper
// has to pick a port and hand it over. Two rules keep that safe when test files run in parallel:
//
// - Ports come from below the kernel's ephemeral range (ip_local_port_range, 32768.. on Linux). Outgoing client
//   connections take their local port from that range, so a port we hand out can never be taken by one of the
//   tests' own client sockets between "free" and "bound", nor while a broker is down during a restart.
// - Each vitest worker (VITEST_POOL_ID) draws from its own slice of that range, so two workers never pick the same
//   port. Inside one process a port is never handed out twice. The port is also test-bound on 127.0.0.1 first.
//
// A port can still be taken by something else on the machine; callers that bind it (startMosquitto) retry with
// fresh ports when the bind fails.

import { readFileSync } from "node:fs";
import net from "node:net";

const LOW = 10000;
const SLICE = 2000;
const handedOut = new Set<number>();

function ephemeralLow(): number {
  try {
    const [lo] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && lo > LOW + SLICE) return lo;
  } catch {
    // not Linux: fall through to the IANA dynamic range start
  }
  return 49152;
}

/** The [from, to) port slice of this worker. */
export function portSlice(): [number, number] {
  const top = ephemeralLow();
  const slices = Math.max(1, Math.floor((top - LOW) / SLICE));
  const id = Number(process.env.VITEST_POOL_ID ?? process.env.VITEST_WORKER_ID ?? process.pid);
  const index = (Number.isFinite(id) ? Math.abs(Math.trunc(id)) : process.pid) % slices;
  const from = LOW + index * SLICE;
  return [from, Math.min(from + SLICE, top)];
}

/** Whether `port` can be bound on `host` right now. */
export function isPortFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A port on 127.0.0.1 that is free now, outside the ephemeral range, never returned before by this process. */
export async function getFreePort(): Promise<number> {
  const [from, to] = portSlice();
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = from + Math.floor(Math.random() * (to - from));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await isPortFree(port)) return port;
  }
  throw new Error(`getFreePort: no free port found in ${from}..${to - 1} after 200 tries`);
}

/** `count` distinct free ports. */
export async function getFreePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await getFreePort());
  return ports;
}

/** Resolves once a TCP connection to host:port succeeds (the connection is closed at once). */
export function canConnect(port: number, host = "127.0.0.1", timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
