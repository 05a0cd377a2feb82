/**
 * Figures of the real firmware image: built with the Moddable SDK's mcconfig for the desktop (lin) under each chip's
 * XS creation settings and limits, run headless in the SDK's mcsim against the emulated UIoT Core (the harness of
 * test/helpers/moddable-firmware.ts), through boot, login, the first posts and a property set, a command and a shadow desired
 * value. Skipped without a built SDK ($MODDABLE, or the one tools/moddable/sdk.sh builds).
 *
 * Per chip: our modules' bytecode (the .xsb of everything under src/ and hosts/ in the image), the instances and
 * keys xsl preloads, the XS heaps taken after boot and once connected and busy (what XS grew its heaps to: slots
 * counted at 16 bytes, as on the 32-bit chips; the chunk heap as measured on the 64-bit desktop, an upper bound for
 * a board), for the ESP8266 what is left of its 32 KB with the stack, and the deepest XS stack of the run. There is
 * no peer: these are absolute figures.
 */
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { DESKTOP, ESP32, ESP8266, type ChipProfile } from "../hosts/moddable/chips";
import { cloudWith, DEVICE_SECRET, DSN, PSN, tmpDir, type Cleanups } from "../test/helpers/device-rig";
import { waitFor } from "../test/helpers/wait";
import { buildFirmware, runFirmware, startXvfb, type Chip, type Sample } from "../test/helpers/moddable-firmware";
import { provisionLin } from "../test/helpers/lin-preferences";
import { moddableSdk } from "../test/helpers/moddable-sdk";
import { Skip, type Benchmark, type Line } from "./harness";

const CHIPS: [Chip, ChipProfile][] = [
  ["desktop", DESKTOP],
  ["esp32", ESP32],
  ["esp8266", ESP8266],
];
const FIGURES = [
  "our bytecode",
  "preloaded instances",
  "preloaded keys",
  "XS heap after boot",
  "XS heap connected",
  "deepest XS stack",
];
const SLOT = 16; // bytes of an XS slot on the 32-bit chips

function bytecode(dir: string): number {
  let total = 0;
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith(".xsb")) total += statSync(join(d, e.name)).size;
    }
  };
  for (const top of ["src", "hosts"]) if (existsSync(join(dir, top))) walk(join(dir, top));
  return total;
}

/** What XS has taken for its heaps: slots at the chips' 16 bytes, chunks as measured (64-bit: an upper bound). */
function heapBytes(s: Sample): number {
  return s.slotsReserved * SLOT + s.chunksReserved;
}

async function measure(
  sdk: string,
  chip: Chip,
  profile: ChipProfile,
  log: (m: string) => void,
): Promise<Record<string, Line>> {
  // xsl reports what it preloads only when it runs: make it link again
  const tmp = join(process.cwd(), "build", "moddable-test", chip, "out", "tmp", "lin", "mc", "instrument", chip);
  rmSync(join(tmp, "mc.xs.c"), { force: true });
  const build = buildFirmware(sdk, chip);
  const link = /### (\d+) instances, (\d+) keys/.exec(build.log);
  if (!link) throw new Error(`no xsl report in the ${chip} build's log`);
  const cleanups: Cleanups = [];
  const display = await startXvfb();
  const dir = tmpDir(cleanups, `uiot-bench-${chip}-`);
  try {
    const cloud = await cloudWith(cleanups, { deviceSecret: DEVICE_SECRET });
    provisionLin(join(dir, "modpreferences.json"), profile, {
      productSN: PSN,
      deviceSN: DSN,
      deviceSecret: DEVICE_SECRET,
      url: cloud.url,
    });
    const run = runFirmware(build, dir, display);
    cleanups.push(() => run.stop());
    await run.waitFor(/uiot-thing-firmware on/, 60_000);
    await run.nextSample();
    const boot = run.samples[run.samples.length - 1];
    await run.waitFor(/connected to/, 60_000);
    const connectedAt = run.samples.length;
    await waitFor(() => cloud.shadow(PSN, DSN).State.Reported.target_temperature === 21, {
      message: "the first shadow report",
      timeoutMs: 20_000,
    });
    await cloud.setProperties(PSN, DSN, { target_temperature: 25 });
    await cloud.sendCommand(PSN, DSN, "set_temp_correction", { correction: -1.5 });
    cloud.setShadowDesired(PSN, DSN, { target_temperature: 18 });
    await run.waitFor(/desired in the shadow/);
    await run.nextSample();
    await run.nextSample();
    const busy = run.samples[run.samples.length - 1];
    // the least in use at any sample once connected: the live heap plus what was made since the last collection
    const least = run.samples
      .slice(connectedAt)
      .reduce((m, x) => (x.slots * SLOT + x.chunks < m.slots * SLOT + m.chunks ? x : m), busy);
    if (run.aborted()) throw new Error(`${chip}: ${run.aborted()}`);
    const stack = build.creation.stack;
    log(
      `  ${chip}: stack ${stack} slots, deepest ${run.deepest()}; heaps taken after boot ${boot.slotsReserved} slots + ${boot.chunksReserved} chunk bytes, connected ${busy.slotsReserved} slots + ${busy.chunksReserved} chunk bytes (in use at least ${least.slots} slots + ${least.chunks} chunk bytes)`,
    );
    const out: Record<string, Line> = {
      [`real image ${chip}: our bytecode`]: {
        what: "the .xsb bytes of every module of src/ and hosts/ in the image mcconfig built",
        ours: bytecode(join(tmp, "modules")),
        unit: "bytes",
        better: "lower",
      },
      [`real image ${chip}: preloaded instances`]: {
        what: "the instances xsl preloads into the image (from its link report)",
        ours: Number(link[1]),
        unit: "instances",
        better: "lower",
      },
      [`real image ${chip}: preloaded keys`]: {
        what: "the keys xsl preloads into the image (from its link report)",
        ours: Number(link[2]),
        unit: "keys",
        better: "lower",
      },
      [`real image ${chip}: XS heap after boot`]: {
        what: "XS slot (16 B each) and chunk heaps taken once the firmware has booted in mcsim",
        ours: heapBytes(boot),
        unit: "bytes",
        better: "lower",
        slots: boot.slotsReserved,
        chunks: boot.chunksReserved,
      },
      [`real image ${chip}: XS heap connected`]: {
        what: "XS heaps taken once connected to the emulated cloud and through a property set, a command and a shadow update",
        ours: heapBytes(busy),
        unit: "bytes",
        better: "lower",
        slots: busy.slotsReserved,
        chunks: busy.chunksReserved,
        leastInUse: least.slots * SLOT + least.chunks,
      },
      [`real image ${chip}: deepest XS stack`]: {
        what: "the deepest XS stack of the whole run, in slots",
        ours: run.deepest(),
        unit: "slots",
        better: "lower",
        stack,
      },
    };
    if (build.creation.static) {
      // all the memory XS gets on the chip: the stack comes out of it too
      const free = build.creation.static - stack * SLOT - heapBytes(busy);
      out[`real image ${chip}: XS heap connected`].freeOfStatic = free;
    }
    return out;
  } finally {
    while (cleanups.length) await cleanups.pop()!();
    await display.stop();
  }
}

export const benchmarks: Benchmark[] = [
  {
    names: CHIPS.flatMap(([chip]) => FIGURES.map((f) => `real image ${chip}: ${f}`)),
    slow: true,
    async run(ctx) {
      const sdk = moddableSdk();
      if (!sdk) throw new Skip("no built Moddable SDK: bash tools/moddable/sdk.sh, or set $MODDABLE");
      const out: Record<string, Line> = {};
      for (const [chip, profile] of CHIPS) Object.assign(out, await measure(sdk, chip, profile, ctx.log));
      return out;
    },
  },
];
