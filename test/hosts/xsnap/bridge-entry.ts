// A bundle for test/hosts/xsnap/bridge.test.ts: the bridge's XS side (hosts/xsnap/device.ts, the real src/device/main.ts entry)
// with an application that reports what the firmware sees, so the tests can check it from the Node side:
// - every lost connection is logged with its cause's type and code ("cause NetError CONNECTION_REFUSED");
// - app.throwAfter = ms: a timer callback throws then (an uncaught exception in XS).
import { serveDevice } from "../../../hosts/xsnap/device";
import { NetError } from "../../../src/net/errors";

serveDevice((options) => {
  const o = options.app ?? {};
  return {
    name: "bridge-probe",
    start(d) {
      d.onDisconnect((error) => {
        const cause = error.cause;
        d.host.log(
          "info",
          `lost: ${error.code}; cause ${cause instanceof NetError ? `NetError ${cause.code}` : cause instanceof Error ? `${cause.name}` : String(cause)}`,
        );
      });
      if (typeof o.throwAfter === "number")
        d.host.clock.setTimer(() => {
          throw new Error("boom from a timer callback");
        }, o.throwAfter);
    },
  };
});
