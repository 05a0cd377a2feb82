// Which topics a connection of the emulated UIoT Core may use, per docs/uiot-platform.md "Topics".
//
// A device owns `/${PSN}/${DSN}/...` (custom topics; `upload` is publish-only and `set` subscribe-only, as the
// spec gives them), the system topics of the table under `/$system/${PSN}/${DSN}/` in the direction the table
// gives, and may subscribe to its product's broadcast topics `/${PSN}/$broadcast/...`. An authmode-2 (dynamic
// registration) connection may only publish `password` and subscribe `password_reply`; those two belong to that
// connection alone. Everything else is refused: the caller answers SUBACK 0x80 or closes the connection.

export type Direction = "publish" | "subscribe";

export interface TopicOwner {
  productSN: string;
  deviceSN: string;
  authmode: 1 | 2;
}

export interface TopicLimits {
  /** Longest topic in UTF-8 bytes (128). */
  topicBytes: number;
  /** Most '/' in a topic (7). */
  topicSlashes: number;
}

const P = "publish",
  S = "subscribe";

/** The system topic table: suffix after `/$system/${PSN}/${DSN}/` -> what the device may do with it. */
export const SYSTEM_TOPICS: Readonly<Record<string, Direction>> = {
  "device/status": S,
  "shadow/upstream": P,
  "shadow/downstream": S,
  "shadow/get": P,
  "shadow/get_reply": S,
  "tmodel/template/get": P,
  "tmodel/template/get_reply": S,
  "tmodel/property/post": P,
  "tmodel/property/post_reply": S,
  "tmodel/property/set": S,
  "tmodel/property/set_reply": P,
  "tmodel/property/restore": P,
  "tmodel/property/restore_reply": S,
  "tmodel/property/desired/get": P,
  "tmodel/property/desired/get_reply": S,
  "tmodel/property/desired/delete": P,
  "tmodel/property/desired/delete_reply": S,
  "tmodel/event/post": P,
  "tmodel/event/post_reply": S,
  "tmodel/command": S,
  "ota/upstream": P,
  "ota/downstream": S,
  password: P,
  password_reply: S,
};

/** Only for the platform's rule engine. */
const RULE_ENGINE_ONLY = new Set(["shadow/document", "tmodel/property/document"]);
const REGISTRATION = new Set(["password", "password_reply"]);
const COMMAND_REPLY = "tmodel/command_reply/";
const LEVEL = /^[A-Za-z0-9\-_@:]{1,64}$/;
const MAX_CUSTOM_LEVELS = 5;

/** Why `owner` may not `direction` `topic` (a filter when subscribing), or undefined when it may. */
export function topicDenied(
  owner: TopicOwner,
  topic: string,
  direction: Direction,
  limits: TopicLimits,
): string | undefined {
  const bytes = Buffer.byteLength(topic, "utf8");
  if (bytes > limits.topicBytes) return `topic is ${bytes} bytes, more than ${limits.topicBytes}`;
  const slashes = topic.split("/").length - 1;
  if (slashes > limits.topicSlashes) return `topic has ${slashes} '/', more than ${limits.topicSlashes}`;

  const { productSN: psn, deviceSN: dsn } = owner;
  const system = `/$system/${psn}/${dsn}/`;
  if (topic.startsWith(system)) return systemDenied(owner, topic.slice(system.length), direction);
  if (owner.authmode === 2)
    return "a dynamic-registration (authmode 2) connection may only use password and password_reply";
  const broadcast = `/${psn}/$broadcast/`;
  if (topic.startsWith(broadcast)) {
    if (direction === P) return "broadcast topics are subscribe-only";
    return levelsDenied(topic.slice(broadcast.length), direction);
  }
  const own = `/${psn}/${dsn}/`;
  if (topic.startsWith(own)) {
    const rest = topic.slice(own.length);
    if (rest === "upload" && direction === S) return `/${psn}/${dsn}/upload is publish-only`;
    if (rest === "set" && direction === P) return `/${psn}/${dsn}/set is subscribe-only`;
    return levelsDenied(rest, direction);
  }
  return `not a topic of device ${psn}/${dsn}`;
}

function systemDenied(owner: TopicOwner, suffix: string, direction: Direction): string | undefined {
  if (RULE_ENGINE_ONLY.has(suffix)) return `${suffix} is for the platform's rule engine only`;
  if (owner.authmode === 2 && !REGISTRATION.has(suffix)) {
    return "a dynamic-registration (authmode 2) connection may only use password and password_reply";
  }
  if (owner.authmode === 1 && REGISTRATION.has(suffix)) {
    return `${suffix} belongs to the dynamic-registration (authmode 2) connection`;
  }
  if (suffix.startsWith(COMMAND_REPLY)) {
    if (direction === S) return "command replies are publish-only";
    return LEVEL.test(suffix.slice(COMMAND_REPLY.length)) ? undefined : "command_reply needs one RequestID level";
  }
  const allowed = SYSTEM_TOPICS[suffix];
  if (allowed === undefined) return `no system topic ${suffix}`;
  return allowed === direction ? undefined : `the device may only ${allowed} ${suffix}`;
}

/** Custom (and broadcast) levels: [A-Za-z0-9-_@:], ≤ 64 chars, ≤ 5 levels; `+`/`#` only in filters, `#` last. */
function levelsDenied(rest: string, direction: Direction): string | undefined {
  const levels = rest.split("/");
  if (levels.length > MAX_CUSTOM_LEVELS) return `more than ${MAX_CUSTOM_LEVELS} custom topic levels`;
  for (const [i, level] of levels.entries()) {
    if (LEVEL.test(level)) continue;
    if (direction === S && (level === "+" || (level === "#" && i === levels.length - 1))) continue;
    return `custom topic level ${JSON.stringify(level)} is not 1..64 of [A-Za-z0-9-_@:]${direction === S ? " nor a wildcard level" : ""}`;
  }
  return undefined;
}
