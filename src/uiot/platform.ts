/**
 * UIoT Core's platform facts, in one place: where the platform is (its regions' MQTT hosts, its WebSocket ports,
 * its TLS trust anchor) and the limits it sets a device's MQTT connection. The rest of src/ takes them from here;
 * the topic and payload rules live with the code that checks them (topics.ts, json.ts).
 *
 * The trust anchor is UCloud's self-signed root (C=CN, O=UCloud, OU=UCloud IoT-Core, CN=www.ucloud.cn, RSA-2048,
 * valid 2019-07-29..2039-07-24, SHA-256 fingerprint
 * 27:4A:C9:13:A8:91:7B:F0:1A:D7:05:EA:0A:51:77:33:0C:47:56:01:E0:82:DA:5B:38:F9:51:12:B7:91:33:8B).
 * A public certificate. The official C SDK does not verify the server at all; we do, with this as the default CA.
 */
import type { Endpoint, Scheme, TlsOptions } from "../host";
import { isSecure } from "../net/endpoint";

export const UIOT_ROOT_CA_PEM = `\
-----BEGIN CERTIFICATE-----
MIIDsjCCApoCCQCudOie27G3QDANBgkqhkiG9w0BAQsFADCBmjELMAkGA1UEBhMC
Q04xETAPBgNVBAgMCFNoYW5naGFpMREwDwYDVQQHDAhTaGFuZ2hhaTEPMA0GA1UE
CgwGVUNsb3VkMRgwFgYDVQQLDA9VQ2xvdWQgSW9ULUNvcmUxFjAUBgNVBAMMDXd3
dy51Y2xvdWQuY24xIjAgBgkqhkiG9w0BCQEWE3Vpb3QtY29yZUB1Y2xvdWQuY24w
HhcNMTkwNzI5MTIyMDQxWhcNMzkwNzI0MTIyMDQxWjCBmjELMAkGA1UEBhMCQ04x
ETAPBgNVBAgMCFNoYW5naGFpMREwDwYDVQQHDAhTaGFuZ2hhaTEPMA0GA1UECgwG
VUNsb3VkMRgwFgYDVQQLDA9VQ2xvdWQgSW9ULUNvcmUxFjAUBgNVBAMMDXd3dy51
Y2xvdWQuY24xIjAgBgkqhkiG9w0BCQEWE3Vpb3QtY29yZUB1Y2xvdWQuY24wggEi
MA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQC0g9bzkQBipln/nRsUKeQcwAkU
ZUk/VMWrg5AzBislYW9hujCGZHWXUknVHPSQM2Pk30tPeIdmupSkOJllYtFplI6U
6kqHpVsyPn925H5zz4uP5Ty0hkkNK+rIR/YjbEjGn8loTqWk++/o6qST5QOrZLUR
vxaWvshpce0QUcYU9xMfUPzLa6/ZfmaNHgn1aWExYMJAWDyBCyw4OxeSMUyH+ydh
egW7VHNQuVHOYdnXiC+VYImNJ8+QAyCIZ88lP0nqVPSKTt1XXmGW6vXrWSl+/XhO
GaHNMzlwb1kqlFx/ZagTQoQ0hpmqSUKtqPgKSqGPxY9go1Rda1m2rYc8k3gJAgMB
AAEwDQYJKoZIhvcNAQELBQADggEBAHU0KKqEbR7uoY1tlE+MDsfx/2zXNk9gYw44
O+xGVdbvTC298Ko4uUEwc1C+l9FaMmN/2qUPSXWsSrAYDGMS63rzaxqNuADTgmo9
QY0ITtTf0lZTkUahVSqAxzMFaaPzSfFeP9/EaUu14T5RPQbUZMVOAEPKDNmfK4rD
06R6dnO12be4Qlha14o67+ojaNtyZ7/ESePXA/RjO9YMkeQAoa4BdnsJCZgCFmXf
iKvGM+50+L/qSbH5F//byLGTO1t3TWCCdBE5/Mc/QLYEXDmZM6LMHyEAw4VuinIa
I8m1P/ceVO0RjNNBG0pDH9PH4OA7ikY81c63PBCQaYMKaiksCzs=
-----END CERTIFICATE-----
`;

/**
 * Whether `host` is one of UIoT Core's (*.iot.ucloud.cn), whose CA is the bundled platform root. The MQTT hosts
 * are mqtt-<region>.iot.ucloud.cn (regions cn-sh2 and cn-gd), TLS on 8883 and TCP on 1883.
 */
export function isUiotHost(host: string): boolean {
  return host === "iot.ucloud.cn" || host.endsWith(".iot.ucloud.cn");
}

/** UIoT Core serves MQTT over WebSocket on 80 (ws) and 443 (wss); pass as parseEndpoint's `ports`. */
export const UIOT_PORTS: Readonly<Partial<Record<Scheme, number>>> = Object.freeze({ ws: 80, wss: 443 });

/**
 * TLS options for a UIoT Core endpoint: the caller's, with the platform root as the CA when none is given.
 * Undefined for plain mqtt:// and ws://, which have no TLS.
 */
export function uiotTls(endpoint: Endpoint, tls?: TlsOptions): TlsOptions | undefined {
  if (!isSecure(endpoint.scheme)) return undefined;
  return tls?.ca !== undefined ? tls : { ...tls, ca: [UIOT_ROOT_CA_PEM] };
}

/** The keepalive range the platform accepts, seconds. */
export const UIOT_KEEPALIVE: readonly [number, number] = Object.freeze([30, 1200] as const);
/** Seconds; the platform recommends 300 or more. */
export const UIOT_DEFAULT_KEEPALIVE = 300;
/** PUBLISH packets a device may send per second. */
export const UIOT_PUBLISH_RATE = 30;
/** The device sends at most UIOT_PUBLISH_RATE PUBLISH packets in any window of this many ms. */
export const UIOT_PUBLISH_WINDOW = 1250;
/** Subscriptions a connection may hold. */
export const UIOT_MAX_SUBSCRIPTIONS = 100;
/** The largest MQTT packet the platform takes, bytes. */
export const UIOT_MAX_PACKET_SIZE = 256 * 1024;
/** How long the platform waits for the answer to a synchronous command, ms (then it tells the caller "Command timeout"). */
export const UIOT_COMMAND_WINDOW = 5000;
