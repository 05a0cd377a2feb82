// The provisioning command's entry: `npm run provision -- --help`, or the `uiot-provision` bin.
import { runCli } from "./cli";

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  stdin: process.stdin,
  cwd: process.cwd(),
});
