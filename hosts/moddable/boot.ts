/**
 * The firmware entry for the Moddable targets: each target's main.ts builds its host and calls `start(host)` once.
 * It is src/device/main.ts's: load the provisioned configuration, register dynamically if needed, connect, and run
 * the thermostat application (src/device/thermostat.ts).
 */
export { start } from "../../src/device/main";
