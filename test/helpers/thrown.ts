// The error `f` throws, when it is of class `type`; anything else thrown is rethrown, and nothing thrown fails.
export function thrown<E extends Error>(f: () => unknown, type: abstract new (...args: never[]) => E): E {
  try {
    f();
  } catch (e) {
    if (e instanceof type) return e;
    throw e;
  }
  throw new Error(`did not throw (a ${type.name} was expected)`);
}
