// An in-memory stand-in for Moddable's `preference` module with a chip's limits and behaviour: names and values
// refused over the limits, the old entry erased before the new one is written (modPreference.c does that on both
// chips), an ESP8266-like total capacity, and a "power cut" after a given number of flash steps.
import type { Preferences } from "../../../hosts/moddable/preference-store";

export interface FakeLimits {
  maxName: number;
  maxEntry: number;
  /** Total bytes (ESP8266: 4092, entries rounded to 4 with their names and a type byte); 0 for none. */
  capacity?: number;
}

export class PowerCut extends Error {}

export class FakePreferences implements Preferences {
  readonly map = new Map<string, Uint8Array>();
  /** Flash steps (an erase or a write) left before the power is cut; Infinity for never. */
  stepsLeft = Infinity;
  steps = 0;
  constructor(readonly limits: FakeLimits) {}

  private step(): void {
    this.steps++;
    if (this.stepsLeft-- <= 0) throw new PowerCut("power cut");
  }

  private size(name: string, length: number): number {
    return (name.length + 2 + 1 + length + 2 + 3) & ~3;
  }

  used(): number {
    let n = 0;
    for (const [name, v] of this.map) n += this.size(name, v.length);
    return n;
  }

  get(domain: string, key: string): unknown {
    const v = this.map.get(`${domain}\u0000${key}`);
    return v ? v.slice().buffer : undefined;
  }

  set(domain: string, key: string, value: ArrayBuffer): void {
    if (!(value instanceof ArrayBuffer)) throw new Error("unsupported type");
    if (domain.length > this.limits.maxName || key.length > this.limits.maxName) throw new Error("too long");
    if (value.byteLength > this.limits.maxEntry) throw new Error("can't save prefs");
    const name = `${domain}\u0000${key}`;
    if (this.map.has(name)) {
      this.step();
      this.map.delete(name);
    }
    const cap = this.limits.capacity ?? 0;
    if (cap && this.used() + this.size(name, value.byteLength) > cap) throw new Error("can't save prefs");
    this.step();
    this.map.set(name, new Uint8Array(value.slice(0)));
  }

  delete(domain: string, key: string): void {
    const name = `${domain}\u0000${key}`;
    if (!this.map.has(name)) return;
    this.step();
    this.map.delete(name);
  }

  keys(domain: string): string[] {
    const out: string[] = [];
    for (const name of this.map.keys()) {
      const [d, k] = name.split("\u0000");
      if (d === domain) out.push(k);
    }
    return out;
  }
}

export const ESP32_PREFS: FakeLimits = { maxName: 15, maxEntry: 4000 };
export const ESP8266_PREFS: FakeLimits = { maxName: 31, maxEntry: 63, capacity: 4092 };
