// The simulator's screen (tools/simulator/screen.ts) as a function of the state and the terminal's size, and the
// simulator on a terminal in this process (runSimulator with tty: the `status` command shows on the screen).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import {
  renderScreen,
  screenFrame,
  visibleWidth,
  type LogLine,
  type ScreenState,
} from "../../../tools/simulator/screen";
import { DEMO_DEVICE_SN, DEMO_PRODUCT_SN, runSimulator } from "../../../tools/simulator/simulator";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const AT = new Date(2024, 0, 1, 10, 32, 56).getTime();

function state(over: Partial<ScreenState> = {}): ScreenState {
  const logs: LogLine[] = Array.from({ length: 200 }, (_, i) => ({
    at: AT,
    level: i % 3 ? "info" : "warn",
    text: `log line ${i} ${"x".repeat(i % 150)}`,
  }));
  return {
    device: "SIMDEMO000000001.thermostat-01",
    brokerUrl: "mqtt://127.0.0.1:40899",
    brokerRunning: true,
    engine: "node",
    linkUp: true,
    connection: "connected",
    connects: 3,
    drops: 2,
    failedDials: 5,
    problem: "",
    outbox: 0,
    thermostat: { temperature: 19.5, humidity: 46.3, target: 22, correction: 0.3, posts: 8, events: 0, hot: true },
    shadow: {
      version: 6,
      reported: { target_temperature: 22, temp_correction: 0.3, note: "y".repeat(300) },
      desired: {},
    },
    lastIn: {
      at: AT,
      topic: "tmodel/property/post_reply",
      text: JSON.stringify({ RequestID: "8", RetCode: 0, Message: "z".repeat(200) }),
    },
    lastOut: { at: AT, topic: "tmodel/property/post", text: "{}" },
    logs,
    ...over,
  };
}

/** The lines as a person reads them: escapes removed. */
const plain = (lines: string[]) => lines.map((l) => l.replace(/\x1b\[[0-9;?]*[@-~]/g, ""));

describe("the simulator's screen", () => {
  it("at 80×24 fits the terminal: 24 lines at most, none wider than 79 columns, the title on top, the keys at the bottom", () => {
    const lines = renderScreen(state(), { columns: 80, rows: 24 });
    expect(lines.length).toBeLessThanOrEqual(24);
    for (const l of lines) expect(visibleWidth(l), l).toBeLessThanOrEqual(79);
    const text = plain(lines);
    expect(text[0]).toMatch(/^UIoT thermostat simulator {2}emulated UIoT Core/);
    expect(text[1]).toBe("Device       SIMDEMO000000001.thermostat-01 → mqtt://127.0.0.1:40899");
    expect(text.at(-1)).toMatch(/^Keys: /);
    // Recent shows the newest lines that fit, the last one last.
    expect(text.at(-3)).toMatch(/^10:32:56 log line 199/);
    // Long lines are cut with "…", not wrapped.
    expect(text.find((l) => l.startsWith("             reported"))).toMatch(/…$/);
    expect(text).toContain("Shadow       version 6   desired {}");
    // The frame does not end in a newline (the bottom line would scroll the title away).
    expect(screenFrame(lines).endsWith("\n")).toBe(false);
  });

  it("fits any size: narrow, short and tall terminals", () => {
    for (const [columns, rows] of [
      [40, 24],
      [80, 10],
      [80, 3],
      [80, 1],
      [200, 60],
      [20, 5],
    ]) {
      const lines = renderScreen(state(), { columns, rows });
      expect(lines.length, `${columns}×${rows}`).toBeLessThanOrEqual(rows);
      for (const l of lines) expect(visibleWidth(l), `${columns}×${rows}: ${l}`).toBeLessThanOrEqual(columns - 1);
      expect(plain(lines)[0], `${columns}×${rows}`).toMatch(/^UIoT/);
    }
    // A tall terminal shows more of Recent.
    expect(renderScreen(state(), { columns: 200, rows: 60 }).length).toBe(60);
  });

  it("counts the drops (connections that were up and then lost) apart from the failed dials", () => {
    expect(plain(renderScreen(state(), { columns: 80, rows: 24 }))).toContain(
      "Connections  3 made, 2 dropped, 5 failed dials",
    );
    expect(plain(renderScreen(state({ connects: 1, drops: 0, failedDials: 0 }), { columns: 80, rows: 24 }))).toContain(
      "Connections  1 made, 0 dropped",
    );
  });

  it("offers only the keys that work: the console's with the emulated cloud, the link and quit against a real broker", () => {
    const cloud = plain(renderScreen(state(), { columns: 100, rows: 24 })).at(-1)!;
    expect(cloud).toMatch(/\+\/- desired/);
    expect(cloud).toBe("Keys: +/- desired  s set  c command  u update  l link  r broker  : type  q quit");
    expect(plain(renderScreen(state(), { columns: 80, rows: 24 })).at(-1)).toBe(cloud); // whole at 80 columns
    const broker = plain(renderScreen(state({ brokerRunning: undefined }), { columns: 100, rows: 24 }));
    expect(broker[0]).toMatch(/real broker/);
    expect(broker.at(-1)).toBe("Keys: l link down/up   : type a command (link down|up, status, quit)   q quit");
    expect(broker.join("\n")).not.toMatch(/broker (running|STOPPED)/);
    // Typing after ':' lists the commands that work here.
    expect(
      plain(renderScreen(state({ brokerRunning: undefined, typing: "li" }), { columns: 120, rows: 24 })).at(-1),
    ).toBe(": li█   (Enter runs it, Esc cancels: link down|up, status, quit)");
    expect(plain(renderScreen(state({ typing: "" }), { columns: 120, rows: 24 })).at(-1)).toMatch(
      /desired N, set N, command N, update \[V\], link down\|up, restart, status, quit/,
    );
  });

  it("shows the firmware the device runs and how its update goes, under the device", () => {
    const firmwareLine = (firmware: ScreenState["firmware"]) =>
      plain(renderScreen(state({ firmware }), { columns: 100, rows: 24 }))[2];
    expect(plain(renderScreen(state(), { columns: 100, rows: 24 }))[2]).toMatch(/^Wi-Fi link/); // no firmware slot: no line
    expect(firmwareLine({ version: "0.1.0" })).toBe("Firmware     0.1.0");
    expect(firmwareLine({ version: "0.1.0", update: { target: "0.1.1", state: "sent", percent: 0 } })).toBe(
      "Firmware     0.1.0   update to 0.1.1: sent",
    );
    expect(firmwareLine({ version: "0.1.0", update: { target: "0.1.1", state: "downloading", percent: 45 } })).toBe(
      "Firmware     0.1.0   update to 0.1.1: downloading 45 %",
    );
    expect(firmwareLine({ version: "0.1.0", update: { target: "0.1.1", state: "burning", percent: 100 } })).toBe(
      "Firmware     0.1.0   update to 0.1.1: burning 100 %",
    );
    expect(firmwareLine({ version: "0.1.0", update: { target: "0.1.1", state: "restarting", percent: 100 } })).toBe(
      "Firmware     0.1.0   update to 0.1.1: restarting",
    );
    expect(firmwareLine({ version: "0.1.1", update: { target: "0.1.1", state: "success", percent: 100 } })).toBe(
      "Firmware     0.1.1   update to 0.1.1: done",
    );
    expect(
      firmwareLine({ version: "0.1.0", update: { target: "0.1.1", state: "failed", percent: 100, errCode: -4 } }),
    ).toBe("Firmware     0.1.0   update to 0.1.1: failed, ErrCode -4 (MD5 mismatch)");
    // the line is one more under the device: at 80×24 it still fits, Recent gives up a row
    const lines = renderScreen(state({ firmware: { version: "0.1.0" } }), { columns: 80, rows: 24 });
    expect(lines.length).toBeLessThanOrEqual(24);
    expect(plain(lines).at(-1)).toMatch(/^Keys: /);
  });

  it("shows what came from outside on one line, without control characters the terminal would obey", () => {
    const lines = renderScreen(
      state({
        lastIn: { at: AT, topic: "t", text: "a\nb\x1b[2Jc\x07" },
        logs: [{ at: AT, level: "error", text: "line one\nline two" }],
        problem: "lost\r\nagain",
      }),
      { columns: 100, rows: 24 },
    );
    const text = plain(lines);
    expect(text.find((l) => l.startsWith("Last in"))).toBe("Last in      10:32:56 t a b\ufffd[2Jc\ufffd");
    expect(text).toContain("10:32:56 error: line one line two");
    expect(text).toContain("             lost  again");
    for (const l of lines) expect(l).not.toMatch(/[\n\r\x07]|\x1b(?!\[[0-9;]*m)/);
  });

  it("counts wide characters as two columns", () => {
    expect(visibleWidth("温度 ok")).toBe(7);
    const lines = renderScreen(state({ lastIn: { at: AT, topic: "t", text: "温".repeat(100) } }), {
      columns: 80,
      rows: 24,
    });
    for (const l of lines) expect(visibleWidth(l)).toBeLessThanOrEqual(79);
  });
});

describe("the simulator on a terminal (in this process)", () => {
  it("`status` typed after ':' shows the status line under Recent", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "uiot-screen-"));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const out = new PassThrough();
    let screen = "";
    out.on("data", (b: Buffer) => (screen += b.toString()));
    const sim = await runSimulator(
      { dir, interval: 300 },
      { stdout: out, tty: true, columns: () => 120, rows: () => 30 },
    );
    cleanups.push(() => sim.stop());
    expect(await sim.device).toBeDefined();
    const until = async (re: RegExp, what: string) => {
      const end = Date.now() + 15000;
      while (!re.test(screen.slice(screen.lastIndexOf("\x1b[H")))) {
        if (Date.now() > end)
          throw new Error(`timed out waiting for ${what}:\n${screen.slice(screen.lastIndexOf("\x1b[H"))}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await until(/Connection \x1b\[32mconnected/, "the connection");
    await sim.command("status");
    await until(
      /console: status: link up, connected, connections 1, drops 0, failed dials 0/,
      "the status line on the screen",
    );
    await sim.stop();
  }, 30000);

  it("key u pushes the next firmware: the Firmware line shows the download, the restart and the new version; one update at a time", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "uiot-screen-"));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const out = new PassThrough();
    let screen = "";
    out.on("data", (b: Buffer) => (screen += b.toString()));
    // a terminal's stdin: keys one at a time (raw mode)
    const stdin = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => undefined });
    const sim = await runSimulator(
      { dir, interval: 300 },
      { stdout: out, stdin, tty: true, columns: () => 120, rows: () => 30 },
    );
    cleanups.push(() => sim.stop());
    expect(await sim.device).toBeDefined();
    const frames: string[] = [];
    out.on("data", (b: Buffer) => frames.push(plain([b.toString()])[0]));
    const until = async (re: RegExp, what: string) => {
      const end = Date.now() + 30000;
      while (!re.test(plain([screen.slice(screen.lastIndexOf("\x1b[H"))])[0])) {
        if (Date.now() > end)
          throw new Error(`timed out waiting for ${what}:\n${screen.slice(screen.lastIndexOf("\x1b[H"))}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await until(/Connection connected/, "the connection");
    await until(/\nFirmware {5}0\.1\.0\n/, "the firmware line");
    // the device's report_version has reached the cloud: its subscription to ota/downstream is in place
    const end = Date.now() + 15000;
    while (sim.cloud!.ota.status(DEMO_PRODUCT_SN, DEMO_DEVICE_SN).version !== "0.1.0") {
      if (Date.now() > end) throw new Error("no report_version from the device");
      await new Promise((r) => setTimeout(r, 20));
    }
    stdin.write("uu"); // the second while the first waits: refused, one update at a time
    await until(/\nFirmware {5}0\.1\.1 {3}update to 0\.1\.1: done\n/, "the new version on the screen");
    // on the way (a frame at most every 100 ms: the 320 KB download on loopback may be over between two, and the
    // restarted device logs in within one): the image made bootable, waiting its restart delay; then the restart
    expect(
      frames.some((f) => /Firmware {5}0\.1\.0 {3}update to 0\.1\.1: burning 100 %/.test(f)),
      frames.join("\n----\n"),
    ).toBe(true);
    expect(screen).toMatch(/console: the device restarts into its new firmware/);
    await until(/console: firmware update to 0\.1\.1: done, the device runs 0\.1\.1/, "the update's end under Recent");
    expect(screen).toMatch(/error: the update to 0\.1\.1 is under way: wait for it to end/);
    expect(sim.cloud!.ota.releasesOf(DEMO_PRODUCT_SN).map((r) => r.version)).toEqual(["0.1.1"]);
    await sim.stop();
  }, 60000);
});
