/**
 * The example application: a thermostat on UIoT Core's thing model and device shadow.
 *
 * Thing model (identifiers as in the product's template):
 * - properties `temperature` (°C, one decimal) and `humidity` (%RH), read-only, posted every `postInterval`;
 * - property `target_temperature` (°C, TARGET_RANGE), settable from the cloud (tmodel/property/set): a value out
 *   of range or a read-only property is answered RET_OUT_OF_RANGE / RET_READ_ONLY and nothing changes;
 * - event `high_temp` { temperature, threshold } when the temperature rises above `highTemp` (again only after it
 *   fell half a degree below);
 * - command `set_temp_correction` { correction } (°C, CORRECTION_RANGE), added to the sensor's reading: answered
 *   RetCode 0 with Output { correction, temperature }, or RET_OUT_OF_RANGE with the correction kept.
 * Device shadow: Reported { target_temperature, temp_correction }. A Desired target_temperature from the console is
 * applied and reported (clearing Desired); one out of range is answered by reporting the current target instead.
 *
 * The sensor is simulated on the host clock: the room drifts towards the target (a heater/cooler with a time
 * constant of `timeConstant` ms), with a slow ambient swing and a little noise; humidity swings slowly.
 */
import type { Params } from "../uiot/json";
import type { App, Device } from "./app";

export const TARGET_RANGE: readonly [number, number] = Object.freeze([10, 30] as const);
export const CORRECTION_RANGE: readonly [number, number] = Object.freeze([-5, 5] as const);
/** RetCodes of this product's set and command answers (0 is success). */
const RET_OUT_OF_RANGE = 1;
const RET_READ_ONLY = 2;

export interface ThermostatOptions {
  /** ms between property posts (default 10 s). */
  postInterval?: number;
  /** °C above which `high_temp` is raised (default 28). */
  highTemp?: number;
  /** ms for the room to get about 63% of the way to the target (default 120 s). */
  timeConstant?: number;
  /** Starting values. */
  temperature?: number;
  target?: number;
}

/** What the thermostat shows (read by a simulator's display). */
export interface ThermostatState {
  temperature: number;
  humidity: number;
  target: number;
  correction: number;
  /** How many property posts the platform confirmed, and events it confirmed. */
  posts: number;
  events: number;
  /** Whether the temperature is above the threshold now. */
  hot: boolean;
}

export interface Thermostat extends App {
  readonly state: Readonly<ThermostatState>;
}

const round1 = (x: number): number => Math.round(x * 10) / 10;
const inRange = (x: unknown, r: readonly [number, number]): x is number =>
  typeof x === "number" && Number.isFinite(x) && x >= r[0] && x <= r[1];

export function thermostat(options: ThermostatOptions = {}): Thermostat {
  const postInterval = options.postInterval ?? 10000;
  const highTemp = options.highTemp ?? 28;
  const tau = options.timeConstant ?? 120000;
  const state: ThermostatState = {
    temperature: 0,
    humidity: 0,
    target: options.target ?? 21,
    correction: 0,
    posts: 0,
    events: 0,
    hot: false,
  };
  let device: Device | undefined;
  let timer: unknown;
  let room = options.temperature ?? 19; // the true air temperature; the reading adds the correction
  let last = 0;
  let t0 = 0;

  const log = (level: "info" | "warn", message: string): void => {
    if (device) device.host.log(level, message);
  };

  /** Advances the simulated room to now and takes a reading. */
  const sample = (): void => {
    const d = device as Device;
    const now = d.host.clock.now();
    const dt = Math.max(0, now - last);
    last = now;
    room = state.target + (room - state.target) * Math.exp(-dt / tau) + (d.host.random() - 0.5) * 0.1;
    const minutes = (now - t0) / 60000;
    const ambient = 0.3 * Math.sin(minutes / 7);
    state.temperature = round1(room + ambient + state.correction);
    state.humidity = round1(
      Math.min(95, Math.max(15, 45 + 8 * Math.sin(minutes / 11) - (room - 20) + (d.host.random() - 0.5))),
    );
  };

  const connected = (): boolean => device !== undefined && device.client.state === "connected";

  const post = (values: Params, what: string): void => {
    if (!device || !connected()) return; // offline readings are not queued: the next one goes out on reconnect
    device.thing.post(values).then(
      () => void state.posts++,
      (e: Error) => log("warn", `${what} not confirmed: ${e.message}`),
    );
  };

  const checkHot = (): void => {
    if (!device) return;
    if (!state.hot && state.temperature > highTemp) {
      state.hot = true;
      log("warn", `temperature ${state.temperature} °C is above ${highTemp} °C: raising high_temp`);
      if (connected())
        device.thing.event("high_temp", { temperature: state.temperature, threshold: highTemp }).then(
          () => void state.events++,
          (e: Error) => log("warn", `the high_temp event was not confirmed: ${e.message}`),
        );
    } else if (state.hot && state.temperature < highTemp - 0.5) state.hot = false;
  };

  const tick = (): void => {
    timer = undefined;
    if (!device) return;
    sample();
    post({ temperature: state.temperature, humidity: state.humidity }, "the reading");
    checkHot();
    timer = device.host.clock.setTimer(tick, postInterval);
  };

  const report = (): void => {
    if (!device || !connected()) return;
    device.thing.shadow
      .report({ target_temperature: state.target, temp_correction: state.correction })
      .then(undefined, (e: Error) => log("warn", `the shadow report failed: ${e.message}`));
  };

  const setTarget = (value: number, by: string): void => {
    const changed = value !== state.target;
    state.target = value;
    log("info", `target temperature ${value} °C (${by})${changed ? "" : ", unchanged"}`);
  };

  return {
    name: "thermostat",
    state,
    start(d: Device): void {
      device = d;
      t0 = last = d.host.clock.now();
      sample();

      d.thing.onSet((properties) => {
        for (const key of Object.keys(properties))
          if (key !== "target_temperature") {
            log("warn", `the platform tried to set ${key}, which is read-only: answered RetCode ${RET_READ_ONLY}`);
            return RET_READ_ONLY;
          }
        const value = properties.target_temperature;
        if (!inRange(value, TARGET_RANGE)) {
          log(
            "warn",
            `the platform asked for a target of ${String(value)} °C, outside ${TARGET_RANGE[0]}..${TARGET_RANGE[1]}: answered RetCode ${RET_OUT_OF_RANGE}`,
          );
          return RET_OUT_OF_RANGE;
        }
        setTarget(value, "set by the platform");
        post({ target_temperature: state.target }, "the new target");
        report();
        return 0;
      });

      d.thing.onCommand("set_temp_correction", (input) => {
        const c = input.correction;
        if (!inRange(c, CORRECTION_RANGE)) {
          log(
            "warn",
            `set_temp_correction ${String(c)} refused: the correction must be ${CORRECTION_RANGE[0]}..${CORRECTION_RANGE[1]} °C`,
          );
          return {
            retCode: RET_OUT_OF_RANGE,
            output: { correction: state.correction, temperature: state.temperature },
          };
        }
        state.correction = round1(c);
        sample();
        log("info", `temperature correction ${state.correction} °C (command): reading ${state.temperature} °C`);
        report();
        return { output: { correction: state.correction, temperature: state.temperature } };
      });

      d.thing.shadow.onDesired((desired): Params => {
        if (!("target_temperature" in desired))
          return { target_temperature: state.target, temp_correction: state.correction };
        const value = desired.target_temperature;
        if (!inRange(value, TARGET_RANGE)) {
          log(
            "warn",
            `the shadow asked for a target of ${String(value)} °C, outside ${TARGET_RANGE[0]}..${TARGET_RANGE[1]}: reporting ${state.target} °C instead`,
          );
          return { target_temperature: state.target, temp_correction: state.correction };
        }
        setTarget(value, "desired in the shadow");
        post({ target_temperature: state.target }, "the new target");
        return { target_temperature: state.target, temp_correction: state.correction };
      });

      d.onConnect(() => {
        // What the platform should know at once: the current reading, the target and the shadow's Reported.
        sample();
        post(
          { temperature: state.temperature, humidity: state.humidity, target_temperature: state.target },
          "the reading",
        );
        report();
        checkHot();
      });
      timer = d.host.clock.setTimer(tick, postInterval);
    },
    stop(): void {
      if (device && timer !== undefined) device.host.clock.clearTimer(timer);
      timer = undefined;
      device = undefined;
    },
  };
}
