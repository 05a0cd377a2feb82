/**
 * Our own declaration of the SDK's ECMA-419 Wi-Fi module for `npm test`'s type check: @moddable/typings 5.6.0 (the
 * npm package) has none. A Moddable build uses the SDK's own (typings/embedded_network/interface/wifi.d.ts); this
 * file is never part of it. Written from modules/io/wifi/esp32/wifi-esp32.c and modules/io/wifi/esp/wifi-esp.c.
 */
declare module "embedded:network/interface/wifi" {
  export default class WiFi {
    /** onChanged("connection" | "address"): read `connection` and `address` again. */
    constructor(options: { onChanged?: (this: WiFi, property: "connection" | "address") => void });
    /** 200 disconnected, 300 connecting, 400 associated (no address yet), 500 has an address. */
    readonly connection: number;
    readonly address: string | undefined;
    readonly SSID: string | undefined;
    readonly RSSI: number | undefined;
    /** Throws "already connecting" while an attempt runs. */
    connect(options: { SSID: string; password?: string; channel?: number }): void;
    disconnect(): void;
    close(): void;
  }
}
