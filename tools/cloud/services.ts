// The emulated UIoT Core's services behind a device's system topics (tools/cloud/cloud.ts): dynamic registration,
// the shadow, the thing model (and the replies to the console's requests), OTA's upstream reports.
import type { CloudOta } from "./ota";
import type { Device, Registry } from "./registry";
import type { Requests } from "./requests";
import { isObject, parse, SHADOW_DISABLED } from "./shadow";
import { echoId, TMODEL_BAD_REQUEST, TMODEL_REPLIES } from "./thing-model";

/** What the services use of the cloud. */
export interface ServiceContext {
  readonly registry: Registry;
  readonly ota: CloudOta;
  readonly requests: Requests;
  now(): number;
  /** Publishes to the device's system topic `suffix`. */
  send(device: Device, suffix: string, payload: string): void;
  /** Publishes to any topic of the device's. */
  deliver(topic: string, payload: string, productSN: string, deviceSN: string): void;
  /** A device got its first DeviceSecret by dynamic registration. */
  registered(productSN: string, deviceSN: string): void;
}

/** A device's publish (already logged and allowed by the ACL), handed to the service its system topic names. */
export function serveDevicePublish(
  ctx: ServiceContext,
  productSN: string,
  deviceSN: string,
  topic: string,
  payload: string,
): void {
  const prefix = `/$system/${productSN}/${deviceSN}/`;
  if (!topic.startsWith(prefix)) return; // custom topics: only logged
  const suffix = topic.slice(prefix.length);
  if (suffix === "password") return registration(ctx, productSN, deviceSN, payload);
  if (suffix === "ota/upstream") return ctx.ota.upstream(productSN, deviceSN, payload);
  const device = ctx.registry.device(productSN, deviceSN);
  if (!device) return;
  const now = ctx.now();
  if (suffix === "shadow/get" || suffix === "shadow/upstream") return shadow(ctx, device, suffix, payload, now);
  if (suffix === "tmodel/property/set_reply") {
    const msg = parse(payload);
    if (isObject(msg) && typeof msg.RequestID === "string") ctx.requests.settle(device, "set", msg.RequestID, payload);
    return;
  }
  if (suffix.startsWith("tmodel/command_reply/"))
    return ctx.requests.settle(device, "command", suffix.slice("tmodel/command_reply/".length), payload);
  const replySuffix = TMODEL_REPLIES[suffix];
  if (replySuffix) {
    const template = ctx.registry.product(productSN)?.template ?? {};
    ctx.send(device, replySuffix, device.thing.handle(suffix, payload, now, template));
  }
}

/** shadow/get and shadow/upstream, answered on get_reply and downstream (an error when the product has no shadow). */
function shadow(
  ctx: ServiceContext,
  device: Device,
  suffix: "shadow/get" | "shadow/upstream",
  payload: string,
  now: number,
): void {
  const enabled = ctx.registry.product(device.productSN)?.shadow;
  const replyTopic = suffix === "shadow/get" ? "shadow/get_reply" : "shadow/downstream";
  const reply = !enabled
    ? device.shadow.reply(SHADOW_DISABLED, now)
    : suffix === "shadow/get"
      ? device.shadow.get(payload, now)
      : device.shadow.upstream(payload, now);
  ctx.send(device, replyTopic, reply);
}

/** Dynamic registration: the connection was accepted, so the device may have its secret (once-only is checked at CONNECT). */
function registration(ctx: ServiceContext, productSN: string, deviceSN: string, payload: string): void {
  const msg = parse(payload);
  const topic = `/$system/${productSN}/${deviceSN}/password_reply`;
  if (!isObject(msg) || typeof msg.RequestID !== "string") {
    return ctx.deliver(
      topic,
      JSON.stringify({ RetCode: String(TMODEL_BAD_REQUEST), RequestID: echoId(msg) }),
      productSN,
      deviceSN,
    );
  }
  const fresh = ctx.registry.device(productSN, deviceSN)?.deviceSecret === undefined;
  const device = ctx.registry.register(productSN, deviceSN);
  if (fresh) ctx.registered(productSN, deviceSN);
  ctx.deliver(
    topic,
    JSON.stringify({ RetCode: "0", RequestID: msg.RequestID, Password: device.deviceSecret ?? "" }),
    productSN,
    deviceSN,
  );
}
