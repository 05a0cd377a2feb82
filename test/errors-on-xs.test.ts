// On XS (a Moddable build) Error.prototype is frozen, so `this.name = ...` in a constructor throws ("set name: not
// writable"). Every error class of the device code must define `name` on the instance instead. This runs the
// constructors in a child process with a frozen Error.prototype, as on the device.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");

describe("error classes survive a frozen Error.prototype (as on XS)", () => {
  it("constructs every src/ error type", () => {
    const script = `
      Object.freeze(Error.prototype);
      const { MqttError } = await import("./src/mqtt/errors.ts");
      const { NetError } = await import("./src/net/errors.ts");
      const { UiotError } = await import("./src/uiot/errors.ts");
      const { ConfigError } = await import("./src/device/config.ts");
      const names = [new MqttError("CLOSED", "x"), new NetError("CLOSED", "x"), new UiotError("CLOSED", "x"), new ConfigError("url", "x")]
        .map((e) => e.name + ":" + (e instanceof Error));
      console.log(names.join(","));
    `;
    const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: root,
      encoding: "utf8",
    });
    expect(out.trim()).toBe("MqttError:true,NetError:true,UiotError:true,ConfigError:true");
  });
});
