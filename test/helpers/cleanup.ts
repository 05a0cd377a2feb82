// Cleanup of things the helpers start (broker processes, servers), so no test leaves one running.
//
// Three layers:
// 1. inside a running vitest test, `onCurrentTestEnd` ties a resource to that test (onTestFinished);
// 2. resources started in beforeAll are the caller's to stop in afterAll (`stop()` / `close()` are idempotent);
// 3. child processes are killed when this process exits (`exit` handler) and, through `setpriv --pdeathsig`, by
//    the kernel when this process dies any other way (SIGKILL of the vitest worker included).

import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";

/** The helpers are vitest-free at import time, so scripts outside vitest (bench, fuzz) can use them too. */
export async function onCurrentTestEnd(fn: () => unknown): Promise<boolean> {
  if (!process.env.VITEST) return false;
  const { TestRunner, onTestFinished } = await import("vitest");
  if (!TestRunner.getCurrentTest()) return false;
  onTestFinished(async () => {
    await fn();
  });
  return true;
}

interface Registry {
  children: Set<ChildProcess>;
  dirs: Set<string>;
}

// One registry per process even if vitest evaluates this module once per test file.
const KEY = Symbol.for("uiot.test.helpers.children");
const holder = globalThis as unknown as Record<symbol, Registry | undefined>;

function registry(): Registry {
  let reg = holder[KEY];
  if (!reg) {
    const created: Registry = { children: new Set(), dirs: new Set() };
    reg = created;
    holder[KEY] = created;
    process.on("exit", () => {
      for (const child of created.children) {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }
      for (const dir of created.dirs) rmSync(dir, { recursive: true, force: true });
    });
  }
  return reg;
}

/** Tracks a child process until it exits; it is SIGKILLed if this process exits first. */
export function trackChild(child: ChildProcess): void {
  const reg = registry();
  reg.children.add(child);
  child.once("exit", () => reg.children.delete(child));
}

/** Child processes started by the helpers that are still running. */
export function liveChildren(): number {
  return registry().children.size;
}

/** Removes `dir` (recursively) when this process exits. */
export function removeOnExit(dir: string): void {
  registry().dirs.add(dir);
}
