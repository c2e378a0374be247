// Bench target for revkit/memory (contract: bench/targets/README.md).
export const name = 'memory';

/** In-process only: the multi-process workload (c) does not apply. */
export const crossProcess = false;

export async function available() {
  return true;
}

/** Every open of memory: is a new, empty store (a memory: URL takes no name or unknown option). */
export async function freshUrl() {
  return 'memory:';
}

/**
 * The raw baseline: a plain Map of { bytes, revision } with a get, compare
 * and set per attempt, one writer. Values are JSON bytes like revkit's codec,
 * and every step is awaited like an async driver call, so the ratio measures
 * what update() adds (key checks, private copy, writer token, history, change
 * log, combiner) and not the cost of JSON itself.
 */
export async function rawLoop({ key, ops }) {
  const map = new Map();
  const get = async (k) => map.get(k);
  const cas = async (k, expected, bytes) => {
    const cur = map.get(k);
    if ((cur?.revision ?? 0) !== expected) return false;
    map.set(k, { bytes, revision: expected + 1 });
    return true;
  };
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  for (let i = 0; i < ops; i++) {
    for (;;) {
      const cur = await get(key);
      const value = cur ? JSON.parse(dec.decode(cur.bytes)) : 0;
      if (await cas(key, cur?.revision ?? 0, enc.encode(JSON.stringify(value + 1)))) break;
    }
  }
}

export async function version() {
  return `node ${process.version}`;
}
