// The test files that run inside XS unchanged: they use only src/, portable test helpers and vitest's API.
import "../../mqtt/decoder.test";
import "../../mqtt/errors.test";
import "../../mqtt/session.test";
import "../../mqtt/outbox.test";
import "../../mqtt/rate-limit.test";
import "../../mqtt/inbound.test";
import "../../uiot/payloads.test";
import "../../uiot/shadow.test";
import "../../uiot/thing.test";
import "../../uiot/profile.test";
import "../../net/endpoint.test";
import "../../net/websocket.test";
import "../../net/md5.test";
import "../../uiot/ota.test";

export const TEST_FILES = [
  "test/mqtt/decoder.test.ts",
  "test/mqtt/errors.test.ts",
  "test/mqtt/session.test.ts",
  "test/mqtt/outbox.test.ts",
  "test/mqtt/rate-limit.test.ts",
  "test/mqtt/inbound.test.ts",
  "test/uiot/payloads.test.ts",
  "test/uiot/shadow.test.ts",
  "test/uiot/thing.test.ts",
  "test/uiot/profile.test.ts",
  "test/net/endpoint.test.ts",
  "test/net/websocket.test.ts",
  "test/net/md5.test.ts",
  "test/uiot/ota.test.ts",
];
