// npm run doctor -- <broker URL> [options]: see cli.ts (USAGE) and docs/connecting.md, "Connection doctor".
import { doctorCli } from "./cli";

doctorCli(process.argv.slice(2), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`doctor: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
