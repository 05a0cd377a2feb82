/**
 * UIoT Core topics: the device's own topic space, the system topics with the direction the device may use them
 * in, and the client-side guard that refuses anything else before it reaches the platform (which would refuse it
 * and, for some brokers, drop the connection).
 */
import { MqttError } from "../mqtt/errors";
import { utf8Length } from "../mqtt/utf8";
import { isSnChar } from "./identity";

const PUB = 1;
const SUB = 2;
const NEVER = 0;

/** The system topics' suffixes (after `/$system/${PSN}/${DSN}/`): the one place they are written. */
export const SYSTEM = Object.freeze({
  deviceStatus: "device/status",
  shadowUpstream: "shadow/upstream",
  shadowDownstream: "shadow/downstream",
  shadowGet: "shadow/get",
  shadowGetReply: "shadow/get_reply",
  shadowDocument: "shadow/document",
  template: "tmodel/template/get",
  templateReply: "tmodel/template/get_reply",
  post: "tmodel/property/post",
  postReply: "tmodel/property/post_reply",
  set: "tmodel/property/set",
  setReply: "tmodel/property/set_reply",
  restore: "tmodel/property/restore",
  restoreReply: "tmodel/property/restore_reply",
  desiredGet: "tmodel/property/desired/get",
  desiredGetReply: "tmodel/property/desired/get_reply",
  desiredDelete: "tmodel/property/desired/delete",
  desiredDeleteReply: "tmodel/property/desired/delete_reply",
  propertyDocument: "tmodel/property/document",
  event: "tmodel/event/post",
  eventReply: "tmodel/event/post_reply",
  command: "tmodel/command",
  /** Followed by the command's RequestID. */
  commandReply: "tmodel/command_reply/",
  otaUpstream: "ota/upstream",
  otaDownstream: "ota/downstream",
  password: "password",
  passwordReply: "password_reply",
} as const);

const S = SYSTEM;

/** System topic suffixes and what the device may do with each. */
export const SYSTEM_TOPICS: ReadonlyMap<string, number> = new Map([
  [S.deviceStatus, SUB],
  [S.shadowUpstream, PUB],
  [S.shadowDownstream, SUB],
  [S.shadowGet, PUB],
  [S.shadowGetReply, SUB],
  [S.shadowDocument, NEVER],
  [S.template, PUB],
  [S.templateReply, SUB],
  [S.post, PUB],
  [S.postReply, SUB],
  [S.set, SUB],
  [S.setReply, PUB],
  [S.restore, PUB],
  [S.restoreReply, SUB],
  [S.desiredGet, PUB],
  [S.desiredGetReply, SUB],
  [S.desiredDelete, PUB],
  [S.desiredDeleteReply, SUB],
  [S.propertyDocument, NEVER],
  [S.event, PUB],
  [S.eventReply, SUB],
  [S.command, SUB],
  [S.otaUpstream, PUB],
  [S.otaDownstream, SUB],
  [S.password, PUB],
  [S.passwordReply, SUB],
]);

const COMMAND_REPLY = S.commandReply;
const MAX_TOPIC_BYTES = 128;
const MAX_SLASHES = 7;
const MAX_LEVELS = 5;
const MAX_LEVEL = 64;

function refuse(message: string): never {
  throw new MqttError("NOT_ALLOWED", `UIoT Core: ${message}`);
}

/** The device's topic names, and the rules a topic must follow on UIoT Core. */
export class TopicGuard {
  /** `/$system/${PSN}/${DSN}/` */
  readonly system: string;
  /** `/${PSN}/${DSN}/` */
  readonly custom: string;
  /** `/${PSN}/$broadcast/` */
  readonly broadcast: string;

  constructor(productSN: string, deviceSN: string) {
    this.system = `/$system/${productSN}/${deviceSN}/`;
    this.custom = `/${productSN}/${deviceSN}/`;
    this.broadcast = `/${productSN}/$broadcast/`;
  }

  /** Throws MqttError NOT_ALLOWED, naming the rule, unless the device may publish (or subscribe to) `topic`. */
  check(topic: string, subscribe: boolean): void {
    const bytes = utf8Length(topic);
    if (bytes > MAX_TOPIC_BYTES) refuse(`topic "${topic}" has ${bytes} bytes; at most ${MAX_TOPIC_BYTES} are allowed`);
    let slashes = 0;
    for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 0x2f) slashes++;
    if (slashes > MAX_SLASHES) refuse(`topic "${topic}" has ${slashes} '/'; at most ${MAX_SLASHES} are allowed`);
    if (topic.startsWith(this.system)) return this.checkSystem(topic, subscribe);
    if (topic.startsWith(this.custom)) {
      this.checkLevels(topic, this.custom.length, subscribe);
      const rest = topic.length - this.custom.length;
      if (subscribe && rest === 6 && topic.endsWith("upload"))
        refuse(`${topic} is for publishing (device to cloud): the device may not subscribe to it`);
      if (!subscribe && rest === 3 && topic.endsWith("set"))
        refuse(`${topic} is for subscribing (cloud to device): the device may not publish to it`);
      return;
    }
    if (topic.startsWith(this.broadcast)) {
      if (!subscribe)
        refuse(`broadcast topics (${this.broadcast}...) are subscribe-only: the device may not publish to ${topic}`);
      return this.checkLevels(topic, this.broadcast.length, subscribe);
    }
    refuse(
      `"${topic}" is outside this device's topics: a device may use only ${this.custom}..., ${this.system}... and (subscribe only) ${this.broadcast}...`,
    );
  }

  private checkSystem(topic: string, subscribe: boolean): void {
    if (topic.indexOf("+") >= 0 || topic.indexOf("#") >= 0)
      refuse(`system topics take no wildcards: subscribe to each by name (not "${topic}")`);
    const suffix = topic.substring(this.system.length);
    let dir = SYSTEM_TOPICS.get(suffix);
    if (dir === undefined && suffix.startsWith(COMMAND_REPLY)) {
      const id = suffix.length - COMMAND_REPLY.length;
      if (id === 0 || suffix.indexOf("/", COMMAND_REPLY.length) >= 0)
        refuse(`a command reply topic ends with exactly one RequestID level, not "${topic}"`);
      dir = PUB;
    }
    if (dir === undefined) return; // a system topic this table does not know: the platform decides
    if (dir === NEVER) refuse(`${suffix} is for the platform's rule engine only: a device may not use ${topic}`);
    if (subscribe && dir !== SUB)
      refuse(`${topic} is publish-only for the device (device to cloud): it may not subscribe to it`);
    if (!subscribe && dir !== PUB)
      refuse(`${topic} is subscribe-only for the device (cloud to device): it may not publish to it`);
  }

  /** Custom topic levels after the prefix: 1..5 levels of 1..64 [A-Za-z0-9-_@:], + and # when subscribing. */
  private checkLevels(topic: string, start: number, subscribe: boolean): void {
    const n = topic.length;
    if (start >= n) refuse(`"${topic}" names no topic level after ${topic.substring(0, start)}`);
    let levels = 1,
      len = 0;
    for (let i = start; i <= n; i++) {
      const c = i < n ? topic.charCodeAt(i) : 0x2f;
      if (c === 0x2f) {
        if (len === 0) refuse(`"${topic}" has an empty topic level`);
        if (i < n && ++levels > MAX_LEVELS)
          refuse(`"${topic}" has more than ${MAX_LEVELS} levels after ${topic.substring(0, start)}`);
        len = 0;
        continue;
      }
      if (++len > MAX_LEVEL) refuse(`a topic level of "${topic}" is longer than ${MAX_LEVEL} characters`);
      if (c === 0x2b || c === 0x23) {
        if (!subscribe) refuse(`"${topic}" contains a wildcard (+ or #): wildcards are for subscribing only`);
        continue; // placement checked by the MQTT filter rules
      }
      if (!isSnChar(c))
        refuse(
          `"${topic}" has a character a custom topic level may not contain: allowed are letters, digits and - _ @ : (+ and # when subscribing)`,
        );
    }
  }
}
