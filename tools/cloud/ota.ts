// The emulated cloud's firmware service: published firmware per product, an HTTPS file server with expiring signed
// URLs and Range support, update_firmware / cancel_update to a device, and what the device reported on
// ota/upstream (its version, progress, success, failure).
//
//   await cloud.ota.listen({ cert, key });                         // the HTTPS file server (default: the cloud's TLS)
//   cloud.ota.publish(PSN, { version: "2.0.0", data: bytes });     // or file: "path/to/image.bin"
//   cloud.ota.update(PSN, DSN, "2.0.0");                           // sends update_firmware with a signed URL (1 day)
//   cloud.ota.status(PSN, DSN);                                    // { version, state, percent, errCode, ... }
//   cloud.on("ota", (e) => ...);                                   // every ota/upstream message, parsed
//   cloud.ota.faults.push({ dropAfter: 4096 });                    // the next GET breaks after 4096 body bytes
import { createHash, createHmac, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as https from "node:https";
import type * as net from "node:net";

export interface FirmwareRelease {
  version: string;
  size: number;
  md5: string;
  data: Buffer;
}

/** What to do to one GET (each GET takes the next fault in `faults`, if any). */
export interface DownloadFault {
  /** Close the connection after this many body bytes (the body is cut short of its Content-Length). */
  dropAfter?: number;
  /** Send this many body bytes, then nothing (the connection stays open). */
  stallAfter?: number;
  /** Answer with this status and no body. */
  status?: number;
}

export type OtaState = "idle" | "sent" | "downloading" | "burning" | "success" | "failed" | "cancelled";

export interface OtaStatus {
  /** The version the device last reported running (report_version, report_success). */
  version?: string;
  /** The update sent last, and how it went. */
  target?: string;
  state: OtaState;
  percent: number;
  errCode?: number;
  /** Ranged GETs the file server answered for this device's URLs (with the first byte asked for). */
  downloads: { from: number; status: number }[];
}

export interface OtaEvent {
  productSN: string;
  deviceSN: string;
  method: string;
  payload: Record<string, unknown>;
}

export const OTA_ERRORS: Readonly<Record<number, string>> = Object.freeze({
  [-1]: "URL unreachable",
  [-2]: "URL signature expired",
  [-3]: "download timeout",
  [-4]: "MD5 mismatch",
  [-5]: "flash write failed",
});

/** URLs are valid a day, as on the platform. */
export const URL_TTL_MS = 24 * 60 * 60 * 1000;

export interface OtaHooks {
  now(): number;
  /** Publishes on the device's system topic suffix (QoS 1). */
  send(productSN: string, deviceSN: string, suffix: string, payload: string): void;
  emit(event: OtaEvent): void;
  online(productSN: string, deviceSN: string): boolean;
}

export class CloudOta {
  /** Faults for the next GETs, taken one per GET, in order. */
  readonly faults: DownloadFault[] = [];
  /** The host name the URLs carry (the test certificate's: "localhost"). */
  urlHost = "localhost";
  private readonly releases = new Map<string, Map<string, FirmwareRelease>>();
  private readonly devices = new Map<string, OtaStatus>();
  private readonly secret = randomBytes(32);
  private server: https.Server | undefined;
  private port = 0;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    private readonly hooks: OtaHooks,
    private readonly defaultTls?: { cert: string | Buffer; key: string | Buffer },
  ) {}

  /** Starts the HTTPS file server on 127.0.0.1 (default: the cloud's TLS certificate, a free port). */
  async listen(tls?: { cert: string | Buffer; key: string | Buffer; port?: number }): Promise<number> {
    if (this.server) return this.port;
    const t = tls ?? this.defaultTls;
    if (!t)
      throw new Error("the firmware server needs a TLS certificate: pass { cert, key } or start the cloud with tls");
    const server = https.createServer({ cert: t.cert, key: t.key }, (req, res) => this.serve(req, res));
    server.on("connection", (s: net.Socket) => {
      this.sockets.add(s);
      s.once("close", () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(tls?.port ?? 0, "127.0.0.1", () => resolve());
    });
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Publishes a firmware for a product: its bytes or a file, and its version. */
  publish(productSN: string, release: { version: string; data?: Uint8Array; file?: string }): FirmwareRelease {
    if (!release.version) throw new Error("a firmware needs a version");
    const data = release.data ? Buffer.from(release.data) : release.file ? fs.readFileSync(release.file) : undefined;
    if (!data || data.length === 0) throw new Error("a firmware needs its image: data or file");
    const r: FirmwareRelease = {
      version: release.version,
      size: data.length,
      md5: createHash("md5").update(data).digest("hex"),
      data,
    };
    let m = this.releases.get(productSN);
    if (!m) this.releases.set(productSN, (m = new Map()));
    m.set(release.version, r);
    return r;
  }

  releasesOf(productSN: string): FirmwareRelease[] {
    return [...(this.releases.get(productSN)?.values() ?? [])];
  }

  /** A signed URL for a release, valid `ttlMs` from now (negative: already expired). */
  signedUrl(productSN: string, version: string, ttlMs = URL_TTL_MS, deviceSN = ""): string {
    if (!this.server) throw new Error("the firmware server is not listening: call cloud.ota.listen() first");
    const expires = Math.floor((this.hooks.now() + ttlMs) / 1000);
    const p = `/ota/${encodeURIComponent(productSN)}/${encodeURIComponent(version)}/firmware.bin`;
    const q = `Expires=${expires}${deviceSN ? `&Device=${encodeURIComponent(deviceSN)}` : ""}`;
    return `https://${this.urlHost}:${this.port}${p}?${q}&Signature=${this.sign(p, q)}`;
  }

  /**
   * Sends update_firmware for a published release to an online device. `md5` / `size` override what is sent (to
   * test the device's checks); `ttlMs` the URL's validity.
   */
  update(
    productSN: string,
    deviceSN: string,
    version: string,
    options: { ttlMs?: number; md5?: string; size?: number; url?: string } = {},
  ): void {
    const r = this.releases.get(productSN)?.get(version);
    if (!r) throw new Error(`no firmware ${version} is published for product ${productSN}`);
    if (!this.hooks.online(productSN, deviceSN)) throw new Error(`device ${productSN}/${deviceSN} is offline`);
    const url = options.url ?? this.signedUrl(productSN, version, options.ttlMs, deviceSN);
    const s = this.statusOf(productSN, deviceSN);
    s.target = version;
    s.state = "sent";
    s.percent = 0;
    delete s.errCode;
    const payload = {
      Module: "default",
      Version: version,
      URL: url,
      MD5: options.md5 ?? r.md5,
      Size: options.size ?? r.size,
    };
    this.hooks.send(
      productSN,
      deviceSN,
      "ota/downstream",
      JSON.stringify({ Method: "update_firmware", Payload: payload }),
    );
  }

  cancel(productSN: string, deviceSN: string): void {
    const s = this.statusOf(productSN, deviceSN);
    this.hooks.send(
      productSN,
      deviceSN,
      "ota/downstream",
      JSON.stringify({ Method: "cancel_update", Payload: { Module: "default", Version: s.target ?? "" } }),
    );
    s.state = "cancelled";
  }

  /** What the console shows about a device's firmware (a copy). */
  status(productSN: string, deviceSN: string): OtaStatus {
    const s = this.statusOf(productSN, deviceSN);
    return { ...s, downloads: s.downloads.slice() };
  }

  /** A message the device published on ota/upstream. */
  upstream(productSN: string, deviceSN: string, text: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg === null || typeof msg !== "object") return;
    const method = String((msg as { Method?: unknown }).Method);
    const payload = ((msg as { Payload?: unknown }).Payload ?? {}) as Record<string, unknown>;
    const s = this.statusOf(productSN, deviceSN);
    const version = typeof payload.Version === "string" ? payload.Version : undefined;
    switch (method) {
      case "report_version":
        s.version = version;
        break;
      case "request_firmware": {
        s.version = version;
        // the device lost an update to a restart: send the one that was going on again, with a fresh URL
        if (
          s.target &&
          s.target !== version &&
          (s.state === "sent" || s.state === "downloading" || s.state === "burning")
        ) {
          setImmediate(() => {
            try {
              this.update(productSN, deviceSN, s.target as string);
            } catch {
              /* offline again, or unpublished */
            }
          });
        }
        break;
      }
      case "report_progress":
        if (s.state !== "cancelled") {
          s.state = payload.State === "burning" ? "burning" : "downloading";
          s.percent = Number(payload.Percent) || 0;
        }
        break;
      case "report_success":
        s.state = "success";
        s.percent = 100;
        s.version = version;
        break;
      case "report_fail":
        s.state = "failed";
        s.errCode = Number(payload.ErrCode);
        break;
    }
    this.hooks.emit({ productSN, deviceSN, method, payload });
  }

  private statusOf(productSN: string, deviceSN: string): OtaStatus {
    const k = `${productSN}/${deviceSN}`;
    let s = this.devices.get(k);
    if (!s) this.devices.set(k, (s = { state: "idle", percent: 0, downloads: [] }));
    return s;
  }

  private sign(p: string, q: string): string {
    return createHmac("sha256", this.secret).update(`${p}?${q}`).digest("hex");
  }

  private serve(req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse): void {
    const url = new URL(req.url ?? "/", "https://x");
    const end = (status: number, text: string) => {
      res.writeHead(status, { "Content-Type": "text/plain", "Content-Length": Buffer.byteLength(text) });
      res.end(text);
    };
    const m = /^\/ota\/([^/]+)\/([^/]+)\/firmware\.bin$/.exec(url.pathname);
    if (req.method !== "GET" || !m) return end(404, "not found");
    const productSN = decodeURIComponent(m[1]),
      version = decodeURIComponent(m[2]);
    const deviceSN = url.searchParams.get("Device") ?? "";
    const sig = url.searchParams.get("Signature") ?? "";
    const q = (req.url ?? "").split("?")[1]?.replace(/&Signature=[^&]*$/, "") ?? "";
    const expires = Number(url.searchParams.get("Expires"));
    const status = deviceSN ? this.statusOf(productSN, deviceSN) : undefined;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    const from = range ? Number(range[1]) : 0;
    const record = (code: number) => status?.downloads.push({ from, status: code });
    if (sig !== this.sign(url.pathname, q) || !(expires * 1000 >= this.hooks.now())) {
      record(403);
      return end(403, "signature expired or invalid");
    }
    const r = this.releases.get(productSN)?.get(version);
    if (!r) {
      record(404);
      return end(404, "no such firmware");
    }
    const fault = this.faults.shift() ?? {};
    if (fault.status) {
      record(fault.status);
      return end(fault.status, "scripted");
    }
    let last = r.size - 1;
    if (range && range[2] !== "") last = Math.min(last, Number(range[2]));
    if (range && from > last) {
      record(416);
      res.writeHead(416, { "Content-Range": `bytes */${r.size}`, "Content-Length": 0 });
      return void res.end();
    }
    const body = r.data.subarray(from, last + 1);
    const code = range ? 206 : 200;
    record(code);
    const headers: Record<string, string | number> = {
      "Content-Type": "application/octet-stream",
      "Content-Length": body.length,
      "Accept-Ranges": "bytes",
    };
    if (range) headers["Content-Range"] = `bytes ${from}-${last}/${r.size}`;
    res.writeHead(code, headers);
    if (fault.dropAfter !== undefined) {
      res.write(body.subarray(0, fault.dropAfter), () => setTimeout(() => req.socket.destroy(), 20));
      return;
    }
    if (fault.stallAfter !== undefined) {
      res.write(body.subarray(0, fault.stallAfter));
      return; // nothing more; the socket stays open until the client gives up
    }
    res.end(body);
  }
}
