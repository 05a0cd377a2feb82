/** The UIoT Core thing layer: identity, profile and client, dynamic registration, thing model and shadow. */
export { UiotError, retCodeText } from "./errors";
export type { UiotErrorCode } from "./errors";
export { Identity, CONFIG_KEYS, loadIdentity, storeDeviceSecret, redact } from "./identity";
export type { AuthMode, IdentityInit } from "./identity";
export { uiotProfile, uiotClient, UIOT_HOSTS, UIOT_KEEPALIVE, UIOT_DEFAULT_KEEPALIVE, UIOT_PUBLISH_WINDOW } from "./profile";
export type { UiotClientOptions } from "./profile";
export { TopicGuard, SYSTEM_TOPICS } from "./topics";
export { register } from "./register";
export type { RegisterOptions } from "./register";
export { Thing, FAILED, COMMAND_WINDOW } from "./thing";
export type { ThingOptions, RequestOptions, PostOptions, RetCode, SetHandler, CommandHandler, CommandResult, Restored, DesiredValues } from "./thing";
export { Shadow } from "./shadow";
export type { ShadowDocument, DesiredHandler, DesiredAnswer, ShadowRequestOptions } from "./shadow";
export { LIMITS } from "./json";
export type { Value, Params } from "./json";
export { OtaAgent, OTA_ERROR, OTA_STATE_KEY } from "./ota";
export type { Firmware, ImageWriter, OtaOptions } from "./ota";
