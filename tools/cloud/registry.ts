// Products and devices of the emulated UIoT Core, and the CONNECT decision, per docs/uiot-platform.md
// "Credentials" and "Dynamic registration".
//
// CONNACK return codes (the spec is silent; docs/simulator.md, "The emulated cloud"):
//   2 identifier rejected      ClientID is not `${PSN}.${DSN}` of the UserName; Keep Alive outside 30..1200
//                              (what Mosquitto answers a 3.1.1 client above its max_keepalive)
//   4 bad user name or password UserName not `PSN|DSN|1` or `PSN|DSN|2`, unknown product or device, DeviceSN not
//                              4..64 of [A-Za-z0-9-_@:], wrong secret, authmode 1 before a secret exists
//   5 not authorized           a Will in CONNECT; authmode 2 when the product's dynamic registration is off, when
//                              pre-authentication is on and the DeviceSN is not whitelisted, or when the device has
//                              already logged in with authmode 1 (the once-only rule)

import { randomInt, timingSafeEqual } from "node:crypto";
import { Shadow, type InitialShadow, type Json } from "./shadow";
import { ThingModel } from "./thing-model";

export interface ProductOptions {
  productSN: string;
  productSecret: string;
  /** The product's dynamic-registration switch (default off). */
  dynamicRegistration?: boolean;
  /** Pre-authentication: dynamic registration only for whitelisted DeviceSNs (default off). */
  preAuthentication?: boolean;
  whitelist?: string[];
  /** The device shadow service (default on); off answers every shadow request with RetCode 100027. */
  shadow?: boolean;
  /** What tmodel/template/get answers with (default {}). */
  template?: Json;
}

export interface DeviceOptions {
  productSN: string;
  deviceSN: string;
  /** The DeviceSecret; without one the device exists but cannot log in until it registers dynamically. */
  deviceSecret?: string;
  /** Has logged in with authmode 1 before (default false): dynamic registration is then refused. */
  activated?: boolean;
  /** The shadow it starts with. */
  shadow?: InitialShadow;
}

export interface Product extends Required<Omit<ProductOptions, "whitelist">> {
  whitelist: Set<string>;
}

export interface Device {
  productSN: string;
  deviceSN: string;
  deviceSecret: string | undefined;
  activated: boolean;
  shadow: Shadow;
  thing: ThingModel;
}

export interface ConnectRequest {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  keepalive: number;
  will: boolean;
}

export type ConnectDecision =
  | { ok: true; productSN: string; deviceSN: string; authmode: 1 | 2 }
  | { ok: false; returnCode: 2 | 4 | 5; reason: string };

export const DEVICE_SN = /^[A-Za-z0-9\-_@:]{4,64}$/;
const SECRET_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** A 16-character secret like the platform generates. */
export function generateSecret(): string {
  let s = "";
  for (let i = 0; i < 16; i++) s += SECRET_ALPHABET[randomInt(SECRET_ALPHABET.length)];
  return s;
}

function sameSecret(given: Buffer | undefined, expected: string): boolean {
  if (!given) return false;
  const want = Buffer.from(expected, "utf8");
  return given.length === want.length && timingSafeEqual(given, want);
}

export class Registry {
  private readonly products = new Map<string, Product>();
  private readonly devices = new Map<string, Device>();

  constructor(private readonly now: () => number) {}

  addProduct(options: ProductOptions): Product {
    if (!options.productSN || options.productSN.includes("|") || options.productSN.includes("/")) {
      throw new Error(`not a ProductSN: ${JSON.stringify(options.productSN)}`);
    }
    const product: Product = {
      productSN: options.productSN,
      productSecret: options.productSecret,
      dynamicRegistration: options.dynamicRegistration ?? false,
      preAuthentication: options.preAuthentication ?? false,
      whitelist: new Set(options.whitelist ?? []),
      shadow: options.shadow ?? true,
      template: options.template ?? {},
    };
    this.products.set(product.productSN, product);
    return product;
  }

  addDevice(options: DeviceOptions): Device {
    if (!this.products.has(options.productSN)) throw new Error(`unknown product ${options.productSN}: add it first`);
    if (!DEVICE_SN.test(options.deviceSN))
      throw new Error(`not a DeviceSN (4..64 of [A-Za-z0-9-_@:]): ${JSON.stringify(options.deviceSN)}`);
    const device: Device = {
      productSN: options.productSN,
      deviceSN: options.deviceSN,
      deviceSecret: options.deviceSecret,
      activated: options.activated ?? false,
      shadow: new Shadow(this.now(), options.shadow),
      thing: new ThingModel(),
    };
    this.devices.set(key(device.productSN, device.deviceSN), device);
    return device;
  }

  product(productSN: string): Product | undefined {
    return this.products.get(productSN);
  }

  device(productSN: string, deviceSN: string): Device | undefined {
    return this.devices.get(key(productSN, deviceSN));
  }

  /** The device, or a clear error for the console. */
  need(productSN: string, deviceSN: string): Device {
    const device = this.device(productSN, deviceSN);
    if (!device) throw new Error(`unknown device ${productSN}/${deviceSN}`);
    return device;
  }

  /** Dynamic registration: the device's secret, generated (and the device created) on first use. */
  register(productSN: string, deviceSN: string): Device {
    const device = this.device(productSN, deviceSN) ?? this.addDevice({ productSN, deviceSN });
    device.deviceSecret ??= generateSecret();
    return device;
  }

  /** Whether a CONNECT may log in, and as whom; see the return codes at the top of this file. */
  decide(c: ConnectRequest, keepalive: readonly [number, number]): ConnectDecision {
    const refuse = (returnCode: 2 | 4 | 5, reason: string): ConnectDecision => ({ ok: false, returnCode, reason });
    const parts = (c.username ?? "").split("|");
    if (parts.length !== 3 || (parts[2] !== "1" && parts[2] !== "2")) {
      return refuse(4, "UserName must be ProductSN|DeviceSN|authmode with authmode 1 or 2");
    }
    const [productSN, deviceSN] = parts;
    const authmode = parts[2] === "1" ? 1 : 2;
    if (c.clientId !== `${productSN}.${deviceSN}`) return refuse(2, `ClientID must be ${productSN}.${deviceSN}`);
    if (c.keepalive < keepalive[0] || c.keepalive > keepalive[1]) {
      return refuse(2, `Keep Alive ${c.keepalive} s is outside ${keepalive[0]}..${keepalive[1]} s`);
    }
    if (c.will) return refuse(5, "Will messages are not supported");
    const product = this.products.get(productSN);
    if (!product) return refuse(4, `unknown product ${productSN}`);
    if (!DEVICE_SN.test(deviceSN)) return refuse(4, "DeviceSN must be 4..64 of [A-Za-z0-9-_@:]");
    const device = this.device(productSN, deviceSN);
    if (authmode === 1) {
      if (!device) return refuse(4, `unknown device ${productSN}/${deviceSN}`);
      if (device.deviceSecret === undefined) return refuse(4, "the device has no DeviceSecret yet: register it first");
      if (!sameSecret(c.password, device.deviceSecret)) return refuse(4, "wrong DeviceSecret");
      return { ok: true, productSN, deviceSN, authmode };
    }
    if (!sameSecret(c.password, product.productSecret)) return refuse(4, "wrong ProductSecret");
    if (!product.dynamicRegistration) return refuse(5, "dynamic registration is off for this product");
    if (product.preAuthentication && !product.whitelist.has(deviceSN)) {
      return refuse(5, "pre-authentication is on and this DeviceSN is not whitelisted");
    }
    if (device?.activated)
      return refuse(5, "the device has logged in with its DeviceSecret: dynamic registration works once only");
    return { ok: true, productSN, deviceSN, authmode };
  }
}

function key(productSN: string, deviceSN: string): string {
  return `${productSN}/${deviceSN}`;
}
