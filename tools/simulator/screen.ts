// The simulator's screen on a terminal (tools/simulator/simulator.ts): a function of what the simulator knows and the
// terminal's size. Every line fits the width (cut with "…"), and the screen never has more lines than the terminal
// has rows, so the title stays on top: Recent gets the rows that are left.
import type { LogLevel } from "../../src/host";
import type { ThermostatState } from "../../src/device/thermostat";

export interface Traced {
  at: number;
  topic: string;
  text: string;
}

export interface LogLine {
  at: number;
  level: LogLevel | "console";
  text: string;
}

/** A firmware update to the device, as its OTA messages tell it. */
export interface FirmwareUpdate {
  /** The version it updates to. */
  target: string;
  state: "sent" | "downloading" | "burning" | "restarting" | "success" | "failed" | "cancelled";
  percent: number;
  /** report_fail's ErrCode. */
  errCode?: number;
}

const OTA_ERRORS: Record<number, string> = {
  [-1]: "URL unreachable",
  [-2]: "URL signature expired",
  [-3]: "download timeout",
  [-4]: "MD5 mismatch",
  [-5]: "flash write failed",
};

export interface ScreenState {
  /** ProductSN.DeviceSN. */
  device: string;
  brokerUrl: string;
  /** The emulated cloud runs here: the console's keys work. Undefined against a real broker (--broker). */
  brokerRunning?: boolean;
  engine: "node" | "xs";
  linkUp: boolean;
  /** The client's state. */
  connection: string;
  connects: number;
  drops: number;
  failedDials: number;
  /** Why the last connection was lost or the last attempt failed (empty when connected). */
  problem: string;
  outbox: number;
  thermostat: Readonly<ThermostatState>;
  shadow: { version: number | undefined; reported: unknown; desired: unknown };
  /** The version the device runs and its last update, when the host has a firmware slot. */
  firmware?: { version: string; update?: FirmwareUpdate };
  lastIn?: Traced;
  lastOut?: Traced;
  /** Oldest first; the newest that fit are shown. */
  logs: readonly LogLine[];
  /** What is being typed after ':' (undefined when not typing). */
  typing?: string;
}

export interface TerminalSize {
  columns: number;
  rows: number;
}

const ESC = "\x1b[";
const COLOR: Record<string, string> = { error: "31", warn: "33", console: "36", info: "0", debug: "2" };

/** The commands typed after ':' (or read from a script) that work with the emulated cloud, and without it. */
export const CONSOLE_COMMANDS = "desired N, set N, command N, update [V], link down|up, restart, status, quit";
export const DEVICE_COMMANDS = "link down|up, status, quit";

export function clock(at: number): string {
  const d = new Date(at);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Text from outside (payloads, log messages) on one line, with no control characters a terminal would obey. */
export function oneLine(text: string): string {
  return text.replace(/[\t\n\r]/g, " ").replace(/[\x00-\x1f\x7f-\x9f]/g, "\ufffd");
}

/** Columns a code point takes on a terminal: 2 for East Asian wide and fullwidth characters and emoji, else 1. */
function columnsOf(cp: number): number {
  if (cp < 0x1100) return 1;
  return cp <= 0x115f ||
    (cp >= 0x2e80 && cp <= 0xa4cf && cp !== 0x303f) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1faff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
    ? 2
    : 1;
}

/** How many columns `text` takes on a terminal (its SGR escapes take none). */
export function visibleWidth(text: string): number {
  let width = 0;
  for (let i = 0; i < text.length; ) {
    if (text.startsWith(ESC, i)) {
      const end = text.slice(i + 2).search(/[@-~]/);
      i += end < 0 ? text.length : end + 3;
      continue;
    }
    const cp = text.codePointAt(i)!;
    width += columnsOf(cp);
    i += cp > 0xffff ? 2 : 1;
  }
  return width;
}

/** `text` cut to at most `width` columns, ending in "…" when cut; its escapes kept (and the style reset if cut). */
export function fitWidth(text: string, width: number): string {
  if (visibleWidth(text) <= width) return text;
  let out = "";
  let used = 0;
  let styled = false;
  for (let i = 0; i < text.length; ) {
    if (text.startsWith(ESC, i)) {
      const end = text.slice(i + 2).search(/[@-~]/);
      const next = end < 0 ? text.length : i + end + 3;
      out += text.slice(i, next);
      styled = true;
      i = next;
      continue;
    }
    const cp = text.codePointAt(i)!;
    const w = columnsOf(cp);
    if (used + w > width - 1) break;
    out += String.fromCodePoint(cp);
    used += w;
    i += cp > 0xffff ? 2 : 1;
  }
  return `${out}${width > 0 ? "…" : ""}${styled ? `${ESC}0m` : ""}`;
}

function json(value: unknown): string {
  return JSON.stringify(value) ?? "";
}

/** The key legend: only the keys that work here. */
function legend(s: ScreenState): string {
  if (s.typing !== undefined)
    return `: ${oneLine(s.typing)}█   (Enter runs it, Esc cancels: ${s.brokerRunning === undefined ? DEVICE_COMMANDS : CONSOLE_COMMANDS})`;
  return s.brokerRunning === undefined
    ? `${ESC}2mKeys: l link down/up   : type a command (${DEVICE_COMMANDS})   q quit${ESC}0m`
    : `${ESC}2mKeys: +/- desired  s set  c command  u update  l link  r broker  : type  q quit${ESC}0m`;
}

/** The firmware line: the version running and how its last update goes. */
function firmwareLine(f: NonNullable<ScreenState["firmware"]>): string {
  const u = f.update;
  if (!u) return `Firmware     ${oneLine(f.version)}`;
  const how =
    u.state === "downloading" || u.state === "burning"
      ? `${u.state} ${u.percent} %`
      : u.state === "success"
        ? `${ESC}32mdone${ESC}0m`
        : u.state === "failed"
          ? `${ESC}31mfailed, ErrCode ${u.errCode} (${OTA_ERRORS[u.errCode ?? 0] ?? "unknown"})${ESC}0m`
          : u.state;
  return `Firmware     ${oneLine(f.version)}   update to ${oneLine(u.target)}: ${how}`;
}

/**
 * The screen's lines for a terminal of `size`: at most `size.rows` lines, none wider than `size.columns - 1`
 * (the last column is left free, so no terminal wraps or scrolls).
 */
export function renderScreen(s: ScreenState, size: TerminalSize): string[] {
  const width = Math.max(10, size.columns - 1);
  const rows = Math.max(1, size.rows);
  const st = s.thermostat;
  const cloud = s.brokerRunning !== undefined;
  const link = s.linkUp ? `${ESC}32mup${ESC}0m` : `${ESC}31mDOWN${ESC}0m`;
  const conn = s.connection === "connected" ? `${ESC}32m${s.connection}${ESC}0m` : `${ESC}33m${s.connection}${ESC}0m`;
  const broker =
    s.brokerRunning === undefined ? "" : `   broker ${s.brokerRunning ? "running" : `${ESC}31mSTOPPED${ESC}0m`}`;
  const traced = (t: Traced | undefined) => (t ? oneLine(`${clock(t.at)} ${t.topic} ${t.text}`) : "-");
  const head = [
    `${ESC}1mUIoT thermostat simulator${ESC}0m  ${cloud ? "emulated UIoT Core" : "real broker"}${s.engine === "xs" ? ", engine XS" : ""}`,
    `Device       ${s.device} → ${s.brokerUrl}`,
    ...(s.firmware ? [firmwareLine(s.firmware)] : []),
    `Wi-Fi link   ${link}   Connection ${conn}   outbox ${s.outbox}${broker}`,
    `Connections  ${s.connects} made, ${s.drops} dropped${s.failedDials ? `, ${s.failedDials} failed dial${s.failedDials === 1 ? "" : "s"}` : ""}`,
    s.problem ? `${ESC}33m             ${oneLine(s.problem)}${ESC}0m` : "",
    `Thermostat   ${st.temperature.toFixed(1)} °C   ${st.humidity.toFixed(1)} %RH   target ${st.target} °C   correction ${st.correction} °C${st.hot ? `   ${ESC}31mHIGH TEMP${ESC}0m` : ""}`,
    `             ${st.posts} posts confirmed, ${st.events} events`,
    `Shadow       version ${s.shadow.version ?? "-"}   desired ${oneLine(json(s.shadow.desired))}`,
    `             reported ${oneLine(json(s.shadow.reported))}`,
    `Last in      ${traced(s.lastIn)}`,
    `Last out     ${traced(s.lastOut)}`,
    "",
    `${ESC}1mRecent${ESC}0m`,
  ];
  const tail = ["", legend(s)];
  let lines: string[];
  const room = rows - head.length - tail.length;
  if (room >= 0) {
    const logs = room === 0 ? [] : s.logs.slice(-room);
    const shown = logs.map(
      (l) =>
        `${ESC}${COLOR[l.level] ?? "0"}m${clock(l.at)} ${l.level === "info" ? "" : `${l.level}: `}${oneLine(l.text)}${ESC}0m`,
    );
    lines = [...head, ...shown, ...tail];
  } else {
    // A very small terminal: the top of the state, then the keys.
    lines = rows === 1 ? [head[0]] : [...head.slice(0, rows - 1), tail[1]];
  }
  return lines.map((line) => fitWidth(line, width));
}

/** What the terminal is sent for one frame: home, clear, the lines (no newline after the last: nothing scrolls). */
export function screenFrame(lines: string[]): string {
  return `${ESC}H${ESC}2J${lines.join("\n")}`;
}
