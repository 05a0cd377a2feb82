/**
 * UIoT Core's TLS trust anchor: UCloud's self-signed root (C=CN, O=UCloud, OU=UCloud IoT-Core, CN=www.ucloud.cn,
 * RSA-2048, valid 2019-07-29..2039-07-24, SHA-256 fingerprint
 * 27:4A:C9:13:A8:91:7B:F0:1A:D7:05:EA:0A:51:77:33:0C:47:56:01:E0:82:DA:5B:38:F9:51:12:B7:91:33:8B).
 * A public certificate. The official C SDK does not verify the server at all; we do, with this as the default CA.
 */
import { isSecure, type Endpoint, type Scheme, type TlsOptions } from "./endpoint";

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
