/**
 * The one error type of the UIoT Core thing layer. `code` is stable and meant for programs; `message` is meant
 * for a person and says what to check. Messages never contain a secret nor a payload (a payload may carry one).
 */
export type UiotErrorCode =
  | "INVALID_IDENTITY" // ProductSN, DeviceSN, a secret or the authmode does not have the documented form
  | "INVALID_VALUE" // a value the application gave breaks a thing-model or shadow rule (identifier, size, type)
  | "BAD_PAYLOAD" // a message from the platform is not JSON, or lacks a field it must have
  | "TIMEOUT" // no reply from the platform in time
  | "REFUSED" // the platform answered with a non-zero RetCode (see `retCode`)
  | "VERSION_CONFLICT" // the shadow version still conflicted after re-aligning and retrying once
  | "BUSY" // a bounded queue or table is full: the request was not sent
  | "SEND_FAILED" // the MQTT client did not accept or could not deliver the message (see `cause`)
  | "COMMAND_LATE" // the application answered a command after the platform's 5 s
  | "NO_HANDLER" // the platform sent a request the application has no handler for
  | "CALLBACK_ERROR" // an application handler threw or its promise rejected
  | "SECRET_EXISTS" // a DeviceSecret is already stored: registration would overwrite it
  | "STORE_FAILED" // the DeviceSecret could not be stored (or read back) in the host's config store
  | "REGISTRATION_FAILED" // dynamic registration did not complete (see `retCode` or `cause`)
  | "CLOSED"; // the thing layer was stopped before the request completed

export class UiotError extends Error {
  // A field, defined on the instance: on XS Error.prototype is frozen, so assigning `this.name` would throw.
  override name = "UiotError";
  readonly code: UiotErrorCode;
  /** REFUSED, VERSION_CONFLICT, REGISTRATION_FAILED: the platform's RetCode, when it sent one. */
  declare retCode?: number;
  override cause?: unknown;
  constructor(code: UiotErrorCode, message: string, cause?: unknown) {
    super(message);
    this.code = code;
    if (cause !== undefined) this.cause = cause;
  }
}

/** What the platform's documented return codes mean, in words a person can act on. */
const RET_TEXT: { readonly [code: number]: string } = Object.freeze({
  0: "success",
  130: "server error on the platform: try again later",
  230: "the platform could not parse the request (bad JSON, or Method, State or Desired missing, or a non-numeric Version)",
  100026: "shadow version conflict: the shadow changed on the platform since this device last saw it",
  100027: "the device shadow is disabled for this product: enable it in the UIoT Core console",
  100040: "command timeout: the device did not answer within 5 s",
});

function retCodeText(code: number): string {
  return RET_TEXT[code] ?? "see the UIoT Core documentation for this code";
}

/** A REFUSED error for a non-zero RetCode of `what`. */
export function refused(what: string, code: number): UiotError {
  const e = new UiotError("REFUSED", `${what} refused by the platform (RetCode ${code}): ${retCodeText(code)}`);
  e.retCode = code;
  return e;
}
