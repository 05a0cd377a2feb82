// The bundle that `npm start -- --engine xs` loads into XS (tools/simulator/xs-device.ts bundles it with tools/xsnap/bundle.ts):
// the real firmware entry with the thermostat application, served by the Node bridge.
import { thermostat } from "../../src/device/thermostat";
import { serveDevice } from "./device";

serveDevice((options) => thermostat(options.thermostat));
