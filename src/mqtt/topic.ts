/** Topic names (what is published to) and topic filters (what is subscribed to), per MQTT 3.1.1 section 4.7. */
import { fail } from "./errors";

const PLUS = 0x2b; // '+'
const HASH = 0x23; // '#'
const SLASH = 0x2f; // '/'

/**
 * String methods called with .call: on XS, reading a property of a primitive string (t.charCodeAt, t.indexOf)
 * makes a String wrapper object, two heap slots (32 bytes on a device) of garbage each time, once per character in
 * these loops; calling through .call makes none. V8 allocates nothing either way.
 */
const charCodeAt = String.prototype.charCodeAt;
const indexOf = String.prototype.indexOf;

/** Throws INVALID_TOPIC unless `t` is a non-empty topic name without wildcards. */
export function checkTopicName(t: string): void {
  if (!t) fail("INVALID_TOPIC", "topic name is empty");
  if (indexOf.call(t, "+") >= 0 || indexOf.call(t, "#") >= 0)
    fail("INVALID_TOPIC", `topic name "${t}" contains a wildcard (+ or #); wildcards are for subscriptions only`);
}

/** Throws INVALID_FILTER unless `f` is a valid topic filter: + fills a whole level, # is last and fills it. */
export function checkTopicFilter(f: string): void {
  const n = f.length;
  if (n === 0) fail("INVALID_FILTER", "topic filter is empty");
  for (let i = 0; i < n; i++) {
    const c = charCodeAt.call(f, i);
    if (c !== PLUS && c !== HASH) continue;
    const alone =
      (i === 0 || charCodeAt.call(f, i - 1) === SLASH) && (i === n - 1 || charCodeAt.call(f, i + 1) === SLASH);
    if (!alone || (c === HASH && i !== n - 1))
      fail(
        "INVALID_FILTER",
        `topic filter "${f}" is invalid: + must fill a whole level and # must be the whole last level`,
      );
  }
}

/**
 * Whether topic name `t` matches filter `f`. Topics starting with '$' are not matched by a leading wildcard.
 * Walks both strings in place: no split, no allocation.
 */
export function topicMatches(f: string, t: string): boolean {
  const fn = f.length,
    tn = t.length;
  if (
    tn > 0 &&
    charCodeAt.call(t, 0) === 0x24 &&
    fn > 0 &&
    (charCodeAt.call(f, 0) === PLUS || charCodeAt.call(f, 0) === HASH)
  )
    return false;
  let i = 0,
    j = 0;
  while (i < fn) {
    const c = charCodeAt.call(f, i);
    if (c === HASH) return true; // '#' matches the parent level too: "a/#" matches "a"
    if (c === PLUS) {
      if (j > tn) return false;
      while (j < tn && charCodeAt.call(t, j) !== SLASH) j++;
      i++;
      continue;
    }
    if (j >= tn) {
      // "a/#" against "a": the filter has "/#" left
      return c === SLASH && i + 2 === fn && charCodeAt.call(f, i + 1) === HASH;
    }
    if (c !== charCodeAt.call(t, j)) return false;
    i++;
    j++;
  }
  return j === tn;
}
