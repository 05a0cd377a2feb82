#!/usr/bin/env node
// uiot-provision: the provisioning command (`uiot-provision --help`), the same as `npm run provision -- ...`.
// The command is TypeScript; tsx (a dependency of this package) runs it.
import { register } from "tsx/esm/api";

register();
await import("../tools/provision/main.ts");
