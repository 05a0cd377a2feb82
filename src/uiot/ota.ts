/**
 * Firmware updates over the air, as UIoT Core defines them (docs/uiot-platform.md, "Firmware updates (OTA)"): the
 * device reports the version it runs on ota/upstream after every login, the platform sends update_firmware (Version,
 * URL, MD5, Size) on ota/downstream, the device downloads the image with ranged HTTP GETs, streams it into the host's
 * image writer, checks its size and MD5, reports progress, reboots into it and, once the new image has logged in,
 * reports report_success with the new version.
 *
 * What the device sends (ota/upstream):
 *   report_version   {Module, Version: running}          after every login (QoS 1)
 *   request_firmware {Module, Version: running}          after a login when a restart cut a download (QoS 1)
 *   report_progress  {State: downloading|burning, Percent, Module, Version: target}   (QoS 0, at most one a
 *                    second and every 5 % or more, plus each change of state)
 *   report_success   {Module, Version: target}           after the new image's first login (QoS 1)
 *   report_fail      {ErrCode, Module, Version: target}  (QoS 1)
 *
 * Failure codes (the platform's): -1 URL unreachable (no connection, HTTP errors but 403, a URL or answer this
 * client cannot use), -2 URL signature expired (HTTP 403), -3 download timeout (no byte for `timeout` ms, or the
 * link kept failing past `retries` attempts without progress), -4 MD5 mismatch (also: the server's file is not
 * Size bytes), -5 flash write failed (the writer refused: begin, write or complete; also a Size the update
 * partition cannot hold, and a device that cannot be updated at all). Every failure cancels the writer, so the
 * running image stays the one that boots.
 *
 * Defined answers:
 * - update_firmware for the version already running: report_success at once, nothing downloaded.
 * - update_firmware while an update runs: for the same Version, MD5 and Size it is the same update (a new signed
 *   URL is taken for the next ranged GET, a retry waiting is made at once); for another one, the running update is
 *   cancelled (no report for it) and the new one starts: the platform's last word wins. While the verified image
 *   is being made bootable and the device restarts, it is ignored.
 * - cancel_update (for the update running, or without a Version): the download stops, the writer is cancelled,
 *   nothing is reported; otherwise it is ignored.
 * - A link that drops mid-download: the next GET asks for `Range: bytes=<received>-` (after a backoff, or at once
 *   when the device logs in again meanwhile); a server that ignores the range (200) has its first bytes skipped. A restart mid-download starts over (request_firmware asks for it).
 */
import type { Clock, Connector, Firmware, ImageWriter, KeyValueStore, LogLevel } from "../host";
import { HttpGet, HttpError, describeUrl, parseHttpUrl, type HttpResponse, type HttpUrl } from "../net/http";
import { Md5, md5Hex } from "../net/md5";
import { isObject } from "./json";

const OTA_ERROR = Object.freeze({ UNREACHABLE: -1, EXPIRED: -2, TIMEOUT: -3, MD5: -4, WRITE: -5 } as const);
const MEANING: { readonly [code: number]: string } = Object.freeze({
  [-1]: "URL unreachable",
  [-2]: "URL signature expired",
  [-3]: "download timeout",
  [-4]: "MD5 mismatch",
  [-5]: "flash write failed",
});

/** The config-store key that holds an update's state across a restart. */
export const OTA_STATE_KEY = "uiot_ota";

export interface OtaOptions {
  firmware: Firmware;
  /** Where the state of an update survives the restart (the device's config store). */
  store: KeyValueStore;
  /** A connector for the byte stream to a download URL, TLS verified for https (the host's connector). */
  open(url: HttpUrl): Connector;
  /** The platform's module name (default "default"). */
  module?: string;
  /** ms without a byte before an attempt fails (default 30000). */
  timeout?: number;
  /** Attempts in a row without a byte of progress before the update fails (default 6). */
  retries?: number;
  /** First wait before a new attempt, ms, doubled each time up to 30 s (default 1000). */
  retryDelay?: number;
  /** Least ms between two downloading reports (default 1000). */
  progressInterval?: number;
  /** ms between the last report and the restart (default 1000: lets the reports go out). */
  rebootDelay?: number;
  /** Allow plain http:// download URLs (default false: the image would travel unauthenticated). */
  allowHttp?: boolean;
}

/** What the agent needs of its thing. */
export interface OtaPort {
  readonly upstream: string;
  readonly clock: Clock;
  publish(topic: string, payload: string, qos: 0 | 1): void;
  log(level: LogLevel, message: string): void;
}

const IDLE = 0,
  DOWNLOADING = 1,
  WAITING = 2,
  BURNING = 3,
  RESTARTING = 4;

interface Job {
  module: string;
  version: string;
  url: HttpUrl;
  md5: string;
  size: number;
  writer: ImageWriter;
  hash: Md5;
  received: number;
  /** Bytes still to drop from a 200 answer to a ranged GET (a server that ignored Range). */
  skip: number;
  /** Attempts in a row that brought nothing. */
  tries: number;
  lastError: HttpError | undefined;
  progressAt: number;
  percent: number;
}

export class OtaAgent {
  private readonly firmware: Firmware;
  private readonly store: KeyValueStore;
  private readonly open: (url: HttpUrl) => Connector;
  private readonly module: string;
  private readonly timeout: number;
  private readonly retries: number;
  private readonly retryDelay: number;
  private readonly progressInterval: number;
  private readonly rebootDelay: number;
  private readonly allowHttp: boolean;
  private state = IDLE;
  private job: Job | null = null;
  private get: HttpGet | null = null;
  private timer: unknown = undefined;
  private logins = 0;
  private stopped = false;

  constructor(
    private readonly port: OtaPort,
    options: OtaOptions,
  ) {
    this.firmware = options.firmware;
    this.store = options.store;
    this.open = options.open;
    this.module = options.module ?? "default";
    this.timeout = options.timeout ?? 30000;
    this.retries = options.retries ?? 6;
    this.retryDelay = options.retryDelay ?? 1000;
    this.progressInterval = options.progressInterval ?? 1000;
    this.rebootDelay = options.rebootDelay ?? 1000;
    this.allowHttp = options.allowHttp ?? false;
  }

  /** The running version. */
  get version(): string {
    return this.firmware.version;
  }

  /** The update running: its version and bytes so far, or undefined. */
  get running(): { version: string; received: number; size: number } | undefined {
    const j = this.job;
    return j ? { version: j.version, received: j.received, size: j.size } : undefined;
  }

  /** Called after every login (CONNACK): the outcome of an update that restarted the device, then the running version. */
  loggedIn(): void {
    if (this.stopped) return;
    if (++this.logins === 1) this.resume();
    this.send("report_version", this.firmware.version, "", 1);
    if (this.state === WAITING && this.job) {
      // the network is back: the download goes on now rather than at the end of its backoff
      this.clear();
      this.attempt();
    }
  }

  /** A message on ota/downstream. */
  downstream(msg: { [key: string]: unknown }): void {
    if (this.stopped) return;
    const method = msg.Method;
    const payload = isObject(msg.Payload) ? msg.Payload : {};
    if (method === "update_firmware") return this.update(payload);
    if (method === "cancel_update") return this.cancel(payload);
    this.port.log(
      "warn",
      `OTA: ignored a message with Method ${JSON.stringify(String(method).slice(0, 40))} on ota/downstream (update_firmware and cancel_update are the platform's)`,
    );
  }

  /**
   * Stops whatever runs (the thing stops): the download ends and the writer is cancelled, nothing is reported; the
   * saved state stays, so the next start asks for the firmware again (request_firmware) as after a power cut.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.state === DOWNLOADING || this.state === WAITING) this.drop(true);
    this.clear();
  }

  // ---- the outcome of the update before the restart ----

  private resume(): void {
    let saved: unknown;
    try {
      const text = this.store.get(OTA_STATE_KEY);
      if (text === undefined || text === "") return;
      saved = JSON.parse(text);
    } catch (e) {
      this.port.log(
        "warn",
        `OTA: the saved update state (${OTA_STATE_KEY}) cannot be read: ${errorText(e)}; it is dropped`,
      );
      this.forget();
      return;
    }
    this.forget();
    if (!isObject(saved) || typeof saved.v !== "string") return;
    const target = saved.v,
      module = typeof saved.m === "string" ? saved.m : this.module;
    const running = this.firmware.version;
    if (saved.s === "boot") {
      if (running === target) {
        if (this.firmware.confirm) {
          try {
            this.firmware.confirm();
          } catch (e) {
            this.port.log("error", `OTA: could not confirm the new image ${target}: ${errorText(e)}`);
          }
        }
        this.port.log(
          "info",
          `OTA: updated to ${target} (from ${typeof saved.f === "string" ? saved.f : "?"}): reporting success`,
        );
        this.send("report_success", target, module, 1);
      } else {
        this.port.log(
          "error",
          `OTA: the device restarted into ${running}, not into the new image ${target}: the new image did not start (the bootloader went back to the previous one); reporting failure -5`,
        );
        this.send("report_fail", target, module, 1, OTA_ERROR.WRITE);
      }
    } else if (saved.s === "dl") {
      this.port.log(
        "warn",
        `OTA: a restart cut the download of ${target}: asking the platform for the firmware again (request_firmware)`,
      );
      this.send("request_firmware", running, module, 1);
    }
  }

  // ---- update_firmware ----

  private update(p: { [key: string]: unknown }): void {
    const version = typeof p.Version === "string" ? p.Version : "";
    const module = typeof p.Module === "string" && p.Module !== "" ? p.Module : this.module;
    const md5 = typeof p.MD5 === "string" ? p.MD5.toLowerCase() : "";
    const size = p.Size;
    const bad =
      version === ""
        ? "it has no Version"
        : typeof p.URL !== "string" || p.URL === ""
          ? "it has no URL"
          : !/^[0-9a-f]{32}$/.test(md5)
            ? "its MD5 is not 32 hex digits"
            : typeof size !== "number" || !Number.isInteger(size) || size <= 0
              ? "its Size is not a positive whole number of bytes"
              : undefined;
    if (bad) {
      this.port.log(
        "error",
        `OTA: update_firmware refused: ${bad}${version ? `; reporting failure -1 for ${version}` : ""}`,
      );
      if (version) this.send("report_fail", version, module, 1, OTA_ERROR.UNREACHABLE);
      return;
    }
    const j = this.job;
    if (j && j.version === version && j.md5 === md5 && j.size === size) {
      if (this.state === BURNING || this.state === RESTARTING) {
        this.port.log("info", `OTA: update_firmware for ${version} again while the device restarts into it: ignored`);
        return;
      }
      try {
        j.url = this.checkUrl(p.URL as string);
      } catch (e) {
        this.port.log(
          "warn",
          `OTA: update_firmware for ${version} again, with a URL that cannot be used (${errorText(e)}): the download goes on with the one before`,
        );
        return;
      }
      this.port.log(
        "info",
        `OTA: update_firmware for ${version} again: the same update, going on at byte ${j.received} of ${j.size} with the new URL`,
      );
      if (this.state === WAITING) {
        this.clear();
        j.tries = 0;
        this.attempt();
      }
      return;
    }
    if (j) {
      if (this.state === BURNING || this.state === RESTARTING) {
        this.port.log(
          "warn",
          `OTA: update_firmware for ${version} while the device restarts into ${j.version}: ignored (send it again after the restart)`,
        );
        return;
      }
      this.port.log(
        "warn",
        `OTA: update_firmware for ${version} replaces the update to ${j.version} that was running (at byte ${j.received} of ${j.size}): that one is cancelled`,
      );
      this.drop();
    }
    const running = this.firmware.version;
    if (version === running) {
      this.port.log(
        "info",
        `OTA: update_firmware for ${version}, the version already running: nothing to download; reporting success`,
      );
      this.send("report_success", version, module, 1);
      return;
    }
    const fw = this.firmware;
    if (fw.unsupported !== undefined || !fw.writer) {
      return this.refuse(
        version,
        module,
        OTA_ERROR.WRITE,
        `this device cannot be updated over the air: ${fw.unsupported ?? "its host has no image writer"}`,
      );
    }
    if (fw.capacity !== undefined && (size as number) > fw.capacity) {
      return this.refuse(
        version,
        module,
        OTA_ERROR.WRITE,
        `the image is ${size} bytes and the update partition holds ${fw.capacity}: it cannot fit`,
      );
    }
    let url: HttpUrl;
    try {
      url = this.checkUrl(p.URL as string);
    } catch (e) {
      return this.refuse(version, module, OTA_ERROR.UNREACHABLE, errorText(e));
    }
    let writer: ImageWriter;
    try {
      writer = fw.writer(version);
      writer.begin(size as number);
    } catch (e) {
      return this.refuse(
        version,
        module,
        OTA_ERROR.WRITE,
        `the image writer could not begin an image of ${size} bytes: ${errorText(e)}`,
      );
    }
    this.job = {
      module,
      version,
      url,
      md5,
      size: size as number,
      writer,
      hash: new Md5(),
      received: 0,
      skip: 0,
      tries: 0,
      lastError: undefined,
      progressAt: this.port.clock.now(),
      percent: 0,
    };
    this.save({ s: "dl", v: version, m: module });
    this.port.log("info", `OTA: updating ${running} -> ${version}: ${size} bytes from ${describeUrl(url)}`);
    this.send("report_progress", version, module, 0, 0, "downloading", 0);
    this.attempt();
  }

  private checkUrl(text: string): HttpUrl {
    const url = parseHttpUrl(text);
    if (!url.secure && !this.allowHttp)
      throw new HttpError(
        "INVALID_URL",
        `the URL is plain http:// (${describeUrl(url)}): the image would travel unauthenticated; only https:// is accepted`,
      );
    return url;
  }

  private refuse(version: string, module: string, code: number, why: string): void {
    this.port.log(
      "error",
      `OTA: update to ${version} refused (ErrCode ${code}, ${MEANING[code]}): ${why}; the running image (${this.firmware.version}) is untouched`,
    );
    this.send("report_fail", version, module, 1, code);
  }

  // ---- cancel_update ----

  private cancel(p: { [key: string]: unknown }): void {
    const j = this.job;
    const version = typeof p.Version === "string" ? p.Version : "";
    if (!j || (version !== "" && version !== j.version)) {
      this.port.log("info", `OTA: cancel_update${version ? ` for ${version}` : ""}: no such update runs; ignored`);
      return;
    }
    if (this.state === BURNING || this.state === RESTARTING) {
      this.port.log(
        "warn",
        `OTA: cancel_update for ${j.version} came after the image was verified and made bootable: too late, the device restarts into it`,
      );
      return;
    }
    this.port.log(
      "info",
      `OTA: update to ${j.version} cancelled by the platform at byte ${j.received} of ${j.size}; the running image (${this.firmware.version}) is untouched`,
    );
    this.drop();
  }

  // ---- the download ----

  private attempt(): void {
    const j = this.job as Job;
    this.state = DOWNLOADING;
    j.skip = 0;
    try {
      this.get = new HttpGet(
        {
          url: j.url,
          open: this.open,
          clock: this.port.clock,
          from: j.received,
          timeout: this.timeout,
          httpsOnly: !this.allowHttp,
        },
        this,
      );
    } catch (e) {
      this.get = null;
      this.fail(OTA_ERROR.UNREACHABLE, errorText(e));
    }
  }

  /** @internal HttpHandlers */
  onResponse(r: HttpResponse): void {
    const j = this.job as Job;
    if (r.total >= 0 && r.total !== j.size) {
      return this.fail(
        OTA_ERROR.MD5,
        `the server's file is ${r.total} bytes, update_firmware said Size ${j.size}: it is not the image announced`,
      );
    }
    if (r.start !== j.received) {
      // a 200: the server ignored the Range; the bytes the device already has are dropped as they come again
      j.skip = j.received - r.start;
      this.port.log(
        "info",
        `OTA: the server ignored the range (answered ${r.status}): skipping the first ${j.skip} bytes again`,
      );
    }
  }

  /** @internal */
  onData(chunk: Uint8Array): void {
    const j = this.job as Job;
    let c = chunk;
    if (j.skip > 0) {
      if (c.length <= j.skip) {
        j.skip -= c.length;
        return;
      }
      c = c.subarray(j.skip);
      j.skip = 0;
    }
    if (j.received + c.length > j.size) c = c.subarray(0, j.size - j.received);
    try {
      j.writer.write(c);
    } catch (e) {
      return this.fail(
        OTA_ERROR.WRITE,
        `writing bytes ${j.received}..${j.received + c.length - 1} of the image failed: ${errorText(e)}`,
      );
    }
    j.hash.update(c);
    j.received += c.length;
    j.tries = 0;
    const percent = Math.floor((j.received * 100) / j.size);
    const now = this.port.clock.now();
    if (percent < 100 && percent >= j.percent + 5 && now - j.progressAt >= this.progressInterval) {
      j.percent = percent;
      j.progressAt = now;
      this.send("report_progress", j.version, j.module, 0, 0, "downloading", percent);
    }
  }

  /** @internal */
  onEnd(): void {
    this.get = null;
    const j = this.job as Job;
    if (j.received < j.size) {
      // the server's answer ended short of the image (it said a shorter length): try the rest
      this.retry(new HttpError("CLOSED", `${describeUrl(j.url)}: the answer ended at byte ${j.received} of ${j.size}`));
      return;
    }
    this.finish();
  }

  /** @internal */
  onError(e: HttpError): void {
    this.get = null;
    if (!this.job) return;
    if (e.code === "STATUS" && e.status === 403)
      return this.fail(OTA_ERROR.EXPIRED, `${e.message}; the platform must send a new URL`);
    if (e.code === "UNREACHABLE" || e.code === "CLOSED" || e.code === "TIMEOUT") return this.retry(e);
    this.fail(OTA_ERROR.UNREACHABLE, e.message);
  }

  private retry(e: HttpError): void {
    const j = this.job as Job;
    j.lastError = e;
    if (++j.tries > this.retries) {
      const timeout =
        e.code === "TIMEOUT" || e.code === "CLOSED" || (e.cause as { code?: unknown } | undefined)?.code === "TIMEOUT";
      return this.fail(
        timeout ? OTA_ERROR.TIMEOUT : OTA_ERROR.UNREACHABLE,
        `${e.message} (${this.retries + 1} attempts in a row without progress, at byte ${j.received} of ${j.size})`,
      );
    }
    let wait = this.retryDelay;
    for (let i = 1; i < j.tries && wait < 30000; i++) wait *= 2;
    if (wait > 30000) wait = 30000;
    this.port.log(
      "warn",
      `OTA: download of ${j.version} interrupted at byte ${j.received} of ${j.size} (${e.message}); resuming from there in ${wait} ms`,
    );
    this.state = WAITING;
    this.clear();
    this.timer = this.port.clock.setTimer(this.again, wait);
  }

  private again = (): void => {
    this.timer = undefined;
    if (this.state === WAITING && this.job) this.attempt();
  };

  private finish(): void {
    const j = this.job as Job;
    const digest = md5Hex(j.hash.digest());
    if (digest !== j.md5)
      return this.fail(OTA_ERROR.MD5, `the image's MD5 is ${digest}, update_firmware said ${j.md5}`);
    this.state = BURNING;
    this.send("report_progress", j.version, j.module, 0, 0, "downloading", 100);
    this.send("report_progress", j.version, j.module, 0, 0, "burning", 0);
    try {
      j.writer.complete();
    } catch (e) {
      return this.fail(OTA_ERROR.WRITE, `the image could not be made bootable: ${errorText(e)}`);
    }
    this.save({ s: "boot", v: j.version, m: j.module, f: this.firmware.version });
    this.send("report_progress", j.version, j.module, 0, 0, "burning", 100);
    this.state = RESTARTING;
    this.port.log(
      "info",
      `OTA: ${j.version} downloaded (${j.size} bytes, MD5 ${digest}) and made bootable: restarting into it in ${this.rebootDelay} ms`,
    );
    this.clear();
    this.timer = this.port.clock.setTimer(this.restart, this.rebootDelay);
  }

  private restart = (): void => {
    this.timer = undefined;
    if (this.stopped) return;
    const restart = this.firmware.restart;
    if (!restart) {
      this.port.log("warn", "OTA: this host cannot restart itself: the new image runs from the next start");
      return;
    }
    try {
      restart.call(this.firmware);
    } catch (e) {
      this.port.log("error", `OTA: the restart failed: ${errorText(e)}; the new image runs from the next start`);
    }
  };

  private fail(code: number, why: string): void {
    const j = this.job;
    if (!j) return;
    this.port.log(
      "error",
      `OTA: update to ${j.version} failed (ErrCode ${code}, ${MEANING[code]}): ${why}; the running image (${this.firmware.version}) is untouched`,
    );
    this.drop();
    this.send("report_fail", j.version, j.module, 1, code);
  }

  /** Ends the job: the download stops, the writer is cancelled, the saved state is removed (unless `keep`). */
  private drop(keep = false): void {
    const j = this.job;
    this.job = null;
    this.state = IDLE;
    this.clear();
    const get = this.get;
    this.get = null;
    if (get) get.abort();
    if (j) {
      try {
        j.writer.cancel();
      } catch (e) {
        this.port.log("warn", `OTA: the image writer's cancel threw: ${errorText(e)}`);
      }
    }
    if (!keep) this.forget();
  }

  private clear(): void {
    if (this.timer !== undefined) this.port.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  private save(state: { [key: string]: string }): void {
    try {
      this.store.set(OTA_STATE_KEY, JSON.stringify(state));
    } catch (e) {
      this.port.log(
        "warn",
        `OTA: could not save the update's state (${OTA_STATE_KEY}): ${errorText(e)}; after the restart the device cannot tell the platform how the update ended`,
      );
    }
  }

  private forget(): void {
    try {
      if (this.store.get(OTA_STATE_KEY) !== undefined) this.store.delete(OTA_STATE_KEY);
    } catch (e) {
      this.port.log("warn", `OTA: could not remove the update's state (${OTA_STATE_KEY}): ${errorText(e)}`);
    }
  }

  private send(
    method: string,
    version: string,
    module: string,
    qos: 0 | 1,
    errCode = 0,
    state = "",
    percent = 0,
  ): void {
    let p = '{"Method":"' + method + '","Payload":{';
    if (method === "report_progress") p += '"State":"' + state + '","Percent":' + String(percent) + ",";
    if (method === "report_fail") p += '"ErrCode":' + String(errCode) + ",";
    p += '"Module":' + JSON.stringify(module || this.module) + ',"Version":' + JSON.stringify(version) + "}}";
    this.port.publish(this.port.upstream, p, qos);
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
