// The emulated UIoT Core for the simulator and the tests: see cloud.ts and docs/simulator.md, "The emulated cloud".
export { Cloud, maskSecrets, startCloud } from "./cloud";
export { UIOT_LIMITS } from "./types";
export type {
  CloudEvents,
  CloudLimits,
  CloudOptions,
  CloudTls,
  CommandEvent,
  DeniedEvent,
  DeviceInfo,
  LogEntry,
  OfflineEvent,
  OnlineDevice,
  RefusedEvent,
  Reply,
} from "./types";
export { CloudOta, OTA_ERRORS, URL_TTL_MS } from "./ota";
export type { DownloadFault, FirmwareRelease, OtaEvent, OtaState, OtaStatus } from "./ota";
export type { DeviceOptions, ProductOptions } from "./registry";
export type { InitialShadow, Json, JsonObject, ShadowDocument } from "./shadow";
export type { DesiredValue, PropertyValue, ThingEvent } from "./thing-model";
