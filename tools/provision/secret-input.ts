// Reading secrets without showing them: a prompt on a terminal in raw mode (nothing typed is echoed, not even
// stars), or lines piped to stdin (`--secret-stdin`). Secrets never go to a log from here.
import { ProvisionError } from "./provision";

/** The part of process.stdin this needs (tests hand in a fake). */
export interface SecretInput {
  isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
  // biome-ignore lint/suspicious/noExplicitAny: a stream's listeners take what the event gives
  on(event: "data" | "end" | "error", listener: (...args: any[]) => void): unknown;
  // biome-ignore lint/suspicious/noExplicitAny: a stream's listeners take what the event gives
  off(event: "data" | "end" | "error", listener: (...args: any[]) => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

export interface PromptOutput {
  write(text: string): unknown;
}

/**
 * Prompts on `output` and reads one line from the terminal `input` in raw mode, echoing nothing. Enter ends the
 * line; Backspace deletes; Ctrl-U clears; Ctrl-C (or Ctrl-D on an empty line) cancels with a ProvisionError whose
 * exit code is 130. Escape sequences (arrow keys) are ignored. The terminal's mode is restored in every case.
 */
export function readHidden(prompt: string, input: SecretInput, output: PromptOutput): Promise<string> {
  if (!input.isTTY || typeof input.setRawMode !== "function")
    return Promise.reject(
      new ProvisionError("cannot prompt for a secret: standard input is not a terminal; pipe it with --secret-stdin"),
    );
  input.setRawMode(true); // before the prompt: nothing typed after it can be echoed
  output.write(prompt);
  input.resume();
  return new Promise((resolve, reject) => {
    let value = "";
    let done = false;
    const finish = (error?: ProvisionError) => {
      if (done) return;
      done = true;
      input.off("data", onData);
      input.off("end", onEnd);
      input.setRawMode?.(false);
      input.pause();
      output.write("\n");
      if (error) reject(error);
      else resolve(value);
    };
    const onEnd = () => finish(new ProvisionError("standard input closed before the secret was entered"));
    const onData = (chunk: Buffer | string) => {
      const text = typeof chunk === "string" ? chunk : chunk.toString("utf8");
      for (let i = 0; i < text.length && !done; i++) {
        const c = text[i];
        if (c === "\r" || c === "\n") finish();
        else if (c === "\u0003") finish(new ProvisionError("cancelled", undefined, 130));
        else if (c === "\u0004") {
          if (value === "") finish(new ProvisionError("cancelled", undefined, 130));
          else finish();
        } else if (c === "\u007f" || c === "\b") value = value.slice(0, -1);
        else if (c === "\u0015") value = "";
        else if (c === "\u001b")
          break; // an escape sequence: the rest of this chunk is its tail
        else if (c >= " ") value += c;
      }
    };
    input.on("data", onData);
    input.on("end", onEnd);
  });
}

/** All of `input` as UTF-8 text, at most `limit` bytes (secrets are short; anything longer is a mistake). */
export function readAll(input: SecretInput, limit = 64 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      input.off("data", onData);
      input.off("end", onEnd);
      input.off("error", onError);
    };
    const onData = (chunk: Buffer | string) => {
      const b = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
      size += b.length;
      if (size > limit) {
        cleanup();
        input.pause();
        reject(
          new ProvisionError(
            `standard input has more than ${limit} bytes: --secret-stdin expects the secret on one line (and the Wi-Fi password on the next)`,
            "--secret-stdin",
          ),
        );
        return;
      }
      parts.push(b);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(parts).toString("utf8"));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(new ProvisionError(`cannot read standard input: ${e.message}`, "--secret-stdin"));
    };
    input.on("data", onData);
    input.on("end", onEnd);
    input.on("error", onError);
    input.resume();
  });
}

/** The lines of piped text: split at \n, each without a trailing \r; a final newline ends the last line. */
export function lines(text: string): string[] {
  const out = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  if (out.length > 0 && out[out.length - 1] === "") out.pop();
  return out;
}
