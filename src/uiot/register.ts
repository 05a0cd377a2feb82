/**
 * Dynamic registration (一型一密, authmode 2): connect with the ProductSecret, subscribe password_reply, publish
 * `{"RequestID":"1"}` to password, and store the DeviceSecret of the reply in the host's config store before
 * anything else happens (before DISCONNECT, before the promise resolves). The platform hands the DeviceSecret
 * out once: after the first login with it, registration is refused, so a lost secret loses the device's identity.
 * Hence a stored secret is never overwritten unless `replace` says so, and a failed store is a hard error.
 * Once the DeviceSecret is stored and read back, the ProductSecret is deleted from the store (unless
 * `keepProductSecret`): it is the secret of every device of the product, and one board's flash must not yield it.
 *
 *   let identity = loadIdentity(host.config);
 *   if (identity.authmode === 2) identity = await register(identity, { store: host.config, connect, clock });
 *   const client = uiotClient(identity, { connect, clock });   // authmode 1 from here on
 */
import type { KeyValueStore } from "../host";
import type { Client } from "../mqtt/client";
import type { MqttError } from "../mqtt/errors";
import { UiotError } from "./errors";
import { CONFIG_KEYS, checkSecret, type Identity, scrub, storeDeviceSecret } from "./identity";
import { parseObject, requestIdOf, retCodeOf } from "./json";
import { uiotClient, type UiotClientOptions } from "./profile";
import { SYSTEM } from "./topics";

/**
 * A STORE_FAILED error of a registration that succeeded: `identity` is the registered identity (its DeviceSecret
 * could not be stored), so the device can still connect until it restarts. Not enumerable, and redacted in every
 * printed form.
 */
export type UnstoredRegistration = UiotError & { readonly identity?: Identity };

export interface RegisterOptions
  extends Omit<UiotClientOptions, "onConnect" | "onDisconnect" | "onMessage" | "onError"> {
  /** Where the DeviceSecret is kept: the host's config store (key uiot_dsecret). */
  store: KeyValueStore;
  /** Overwrite a DeviceSecret already stored. Default false: registering a device that has one is refused. */
  replace?: boolean;
  /**
   * Keep the ProductSecret (key uiot_psecret) in the store after registering. Default false: it is deleted once
   * the DeviceSecret is stored; a failure to delete it is logged, not fatal.
   */
  keepProductSecret?: boolean;
  /** Milliseconds to wait for password_reply once the request is sent. Default 5000, as the official SDK. */
  timeout?: number;
  log?: (message: string) => void;
}

const REQUEST = '{"RequestID":"1"}';

function refusedText(e: MqttError): string {
  return (
    `the platform refused the registration connection (${e.message}). Check the ProductSecret; that dynamic registration is switched on for the product; ` +
    "with pre-authentication on, that the DeviceSN is on the product's list; and that this DeviceSN has not registered before " +
    "(registration works once: after the first login with the DeviceSecret it is refused)"
  );
}

/** Deletes the ProductSecret from `store` (the DeviceSecret is stored by now); a failure is logged. */
function dropProductSecret(store: KeyValueStore, productSecret: string, log: (message: string) => void): void {
  const key = CONFIG_KEYS.productSecret;
  let left: string | undefined;
  try {
    store.delete(key);
    left = store.get(key);
  } catch (e) {
    return log(
      `registration: WARNING: the ProductSecret could not be deleted from the config store (${key}): ${e instanceof Error ? scrub(e.message, productSecret) : "the store failed"}; it is the secret of every device of the product: provision this device again to remove it`,
    );
  }
  if (left !== undefined && left !== "")
    return log(
      `registration: WARNING: the ProductSecret is still in the config store (${key}) after deleting it; provision this device again to remove it`,
    );
  log(
    `registration: the ProductSecret was deleted from the config store (${key}); the device logs in with its DeviceSecret from now on`,
  );
}

/** Registers `identity` (authmode 2) and resolves with the authmode-1 identity, its DeviceSecret already stored. */
export function register(identity: Identity, options: RegisterOptions): Promise<Identity> {
  return new Promise<Identity>((resolve, reject) => {
    if (identity.authmode !== 2)
      return reject(
        new UiotError(
          "INVALID_IDENTITY",
          `dynamic registration needs the ProductSecret (authmode 2); ${identity.clientId} already has a DeviceSecret`,
        ),
      );
    const store = options.store,
      replace = options.replace === true;
    let existing: string | undefined;
    try {
      existing = store.get(CONFIG_KEYS.deviceSecret);
    } catch (e) {
      return reject(
        new UiotError(
          "STORE_FAILED",
          `could not read ${CONFIG_KEYS.deviceSecret} from the config store: ${String(e)}`,
          e,
        ),
      );
    }
    if (existing !== undefined && existing !== "" && !replace)
      return reject(
        new UiotError(
          "SECRET_EXISTS",
          `a DeviceSecret is already stored in ${CONFIG_KEYS.deviceSecret}: connect with it (loadIdentity gives it) instead of registering again; pass replace: true only to overwrite it on purpose`,
        ),
      );

    const clock = options.clock,
      timeout = options.timeout ?? 5000,
      log = options.log ?? (() => {});
    const base = `/$system/${identity.productSN}/${identity.deviceSN}/`;
    const replyTopic = base + SYSTEM.passwordReply;
    let done = false,
      timer: unknown,
      asked = false;
    const o = {} as RegisterOptions;
    for (const k of Object.keys(options) as (keyof RegisterOptions)[])
      if (k !== "store" && k !== "replace" && k !== "timeout" && k !== "keepProductSecret")
        (o as unknown as Record<string, unknown>)[k] = options[k];

    const finish = (error: UiotError | undefined, result?: Identity): void => {
      if (done) return;
      done = true;
      if (timer !== undefined) clock.clearTimer(timer);
      client.close();
      if (error) reject(error);
      else resolve(result as Identity);
    };

    const client: Client = uiotClient(identity, {
      ...o,
      onConnect: () => {
        if (asked) return;
        client.subscribe(replyTopic, 1, (error) => {
          if (done) return;
          if (error)
            return finish(
              new UiotError("REGISTRATION_FAILED", `could not subscribe to ${replyTopic}: ${error.message}`, error),
            );
          asked = true;
          client.publish(
            base + SYSTEM.password,
            REQUEST,
            { qos: 1 },
            (e) =>
              e &&
              finish(new UiotError("REGISTRATION_FAILED", `could not send the registration request: ${e.message}`, e)),
          );
          timer = clock.setTimer(() => {
            timer = undefined;
            finish(
              new UiotError(
                "TIMEOUT",
                `no password_reply within ${timeout} ms: the platform did not answer the dynamic registration (is it switched on for the product?)`,
              ),
            );
          }, timeout);
        });
      },
      onDisconnect: (error) => {
        if (done) return;
        const text =
          error.code === "CONNECT_REFUSED"
            ? refusedText(error)
            : `the connection ended before the platform sent the DeviceSecret: ${error.message}`;
        finish(new UiotError("REGISTRATION_FAILED", `dynamic registration of ${identity.clientId}: ${text}`, error));
      },
      onMessage: (topic, payload) => {
        if (done || topic !== replyTopic) return;
        let msg: { [key: string]: unknown };
        try {
          msg = parseObject(payload, "password_reply");
        } catch (e) {
          return finish(e as UiotError);
        }
        const id = requestIdOf(msg.RequestID);
        if (id !== undefined && id !== "1")
          return log(`registration: a password_reply for RequestID ${id} was ignored`);
        const code = retCodeOf(msg.RetCode);
        if (code !== 0) {
          // The code only when it is one: nothing else of this reply is quoted (it is where the secret travels).
          const e = new UiotError(
            "REGISTRATION_FAILED",
            `dynamic registration of ${identity.clientId} refused by the platform (${code !== undefined ? `RetCode ${code}` : "no numeric RetCode"}): check that dynamic registration is on, that the DeviceSN may register, and that it has not registered before`,
          );
          if (code !== undefined) e.retCode = code;
          return finish(e);
        }
        let registered: Identity;
        try {
          registered = identity.withDeviceSecret(checkSecret(msg.Password, "DeviceSecret"));
        } catch (e) {
          return finish(
            new UiotError(
              "REGISTRATION_FAILED",
              `the platform's password_reply has no usable Password: ${(e as Error).message}`,
              e,
            ),
          );
        }
        // Persist first: nothing else may happen before the secret is safe.
        try {
          storeDeviceSecret(store, registered.revealSecret(), replace);
        } catch (e) {
          const err = e as UiotError;
          const hard = new UiotError(
            err.code,
            `dynamic registration of ${identity.clientId} succeeded but the DeviceSecret could not be stored: ${err.message}. ` +
              "The platform will not hand it out again: keep the device running (error.identity can still connect) and fix the config store, or the DeviceSN must be re-created in the console",
            err.cause,
          );
          // An UnstoredRegistration: the identity rides on the error, not enumerable.
          Object.defineProperty(hard, "identity", { value: registered, enumerable: false });
          return finish(hard);
        }
        log(`registration: ${registered.clientId} registered; DeviceSecret ${registered.toJSON().secret} stored`);
        if (options.keepProductSecret !== true) dropProductSecret(store, identity.revealSecret(), log);
        finish(undefined, registered);
      },
    });
    client.start();
  });
}
