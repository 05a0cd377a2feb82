// The doctor's report as text for a person or as one JSON object for a script.
import type { Report, Step, Verdict } from "./doctor";

const MARK: Record<Verdict, string> = { ok: "  ok  ", warn: " warn ", fail: " FAIL ", skipped: " skip " };

/** One JSON object: { ok, insecure?, url, profile, steps: [{ name, title, verdict, ms, detail, fix?, code? }] }. */
export function reportJson(report: Report): string {
  return JSON.stringify(report);
}

function indent(text: string, pad: string): string {
  return text
    .split("\n")
    .map((l) => pad + l)
    .join("\n");
}

/** The report as lines of text, one block per step, then a summary line. */
export function reportText(report: Report): string {
  const lines: string[] = [
    `Connection doctor: ${report.url} (${report.profile === "generic" ? "generic MQTT broker" : "UIoT Core device"})`,
    "",
  ];
  report.steps.forEach((s: Step, i: number) => {
    lines.push(`[${MARK[s.verdict]}] ${i + 1}. ${s.title}${s.verdict === "skipped" ? "" : ` (${s.ms} ms)`}`);
    lines.push(indent(s.detail, "         "));
    if (s.fix) lines.push(indent(`fix: ${s.fix}`, "         "));
  });
  lines.push("");
  const failed = report.steps.filter((s) => s.verdict === "fail");
  const warned = report.steps.filter((s) => s.verdict === "warn");
  if (failed.length) {
    const first = failed[0];
    lines.push(
      `Result: FAILED at step ${report.steps.indexOf(first) + 1} (${first.name}${first.code ? `, ${first.code}` : ""})${failed.length > 1 ? ` and ${failed.length - 1} more` : ""}.`,
    );
    lines.push(
      "For a support request, include this output (secrets are masked), the client type and version, and the broker's log.",
    );
  } else if (report.insecure) {
    lines.push(
      "Result: NOT PROVEN: TLS certificate verification was off (--insecure). A device verifies the broker's certificate,",
    );
    lines.push("so this run does not show that one can connect; run again without --insecure.");
  } else {
    lines.push(
      `Result: OK${warned.length ? ` with ${warned.length} warning${warned.length > 1 ? "s" : ""} (${warned.map((w) => w.name).join(", ")})` : ""}.`,
    );
  }
  return lines.join("\n") + "\n";
}
