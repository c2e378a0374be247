/**
 * A store on which another process writes a lock session's key between
 * openSession's read and its create: the session key is then held by
 * another writer (the case of a copied session id, or a hostile writer).
 */
import type { Store } from '../../src/core/index.js';

export function sessionKeyTakenOn(inner: Store): Store {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop !== 'put') return Reflect.get(target, prop, receiver);
      return async (key: string, value: unknown, options?: Parameters<Store['put']>[2]) => {
        if (key.startsWith('locks/.sessions/')) await target.put(key, { revkitLock: 1, session: 'other', token: 'other', ttlMs: 60_000 });
        return target.put(key, value, options);
      };
    },
  });
}
