// Workload (a): one writer, one key — update() versus the raw driver's own CAS
// loop, in the same run. Rounds alternate raw / update() / update({ combine:
// false }) / a hand-written getRecord + put(ifRevision) loop so drift on a noisy machine hits every side alike; each side's
// round is sized from a warm-up to last about `roundMs`. The ratio is the
// median update() time per op over the median raw time per op.
import { median, percentile } from '../lib/stats.mjs';

const increment = (n) => (n ?? 0) + 1;

async function timeRaw(target, url, key, ops) {
  const t = performance.now();
  await target.rawLoop({ url, key, ops });
  return { ms: performance.now() - t };
}

// The raw loop that also appends each change to a log (the target's logLoop, where it has one):
// what watch() and history() cost any design that keeps a change log in this engine.
async function timeLogged(target, url, key, ops) {
  const t = performance.now();
  await target.logLoop({ url, key, ops });
  return { ms: performance.now() - t };
}

// Opening is timed on both sides (the raw loop connects inside rawLoop too);
// the store's schema already exists, like the raw loop's table after warm-up.
async function timeRevkit(lib, url, key, ops, opts, latencies) {
  const t = performance.now();
  const store = await lib.open(url);
  try {
    for (let i = 0; i < ops; i++) {
      const s = performance.now();
      await store.update(key, increment, opts);
      if (latencies) latencies.push(performance.now() - s);
    }
  } finally {
    await store.close();
  }
  return { ms: performance.now() - t };
}

// revkit's own primitives in a hand-written loop (getRecord, then put with
// ifRevision / ifAbsent and a writer token, as update() writes): separates what the backend's write costs from what
// the update() loop and the combiner add on top.
async function timePrimitives(lib, url, key, ops) {
  const t = performance.now();
  const store = await lib.open(url);
  try {
    for (let i = 0; i < ops; i++) {
      for (;;) {
        const r = await store.getRecord(key);
        const live = r !== null && !r.deleted;
        const guard = r === null ? { ifAbsent: true } : { ifRevision: r.revision };
        guard.writer = lib.newWriterToken();
        try {
          await store.put(key, (live ? r.value : 0) + 1, guard);
          break;
        } catch (err) {
          if (!lib.ConflictError.is(err)) throw err;
        }
      }
    }
  } finally {
    await store.close();
  }
  return { ms: performance.now() - t };
}

async function calibrate(run, roundMs) {
  let n = 16;
  for (;;) {
    const { ms } = await run(n);
    if (ms >= Math.min(150, roundMs / 3) || n >= 1 << 20) return Math.max(16, Math.round((n / ms) * roundMs));
    n *= 4;
  }
}

export async function singleWriter({ target, lib, url, rounds, roundMs, tick }) {
  const sides = {
    raw: (ops, key) => timeRaw(target, url, key, ops),
    update: (ops, key, lat) => timeRevkit(lib, url, key, ops, {}, lat),
    updateNoCombine: (ops, key, lat) => timeRevkit(lib, url, key, ops, { combine: false }, lat),
    primitives: (ops, key) => timePrimitives(lib, url, key, ops),
  };
  if (target.logLoop) sides.logged = (ops, key) => timeLogged(target, url, key, ops);
  const ops = {};
  let k = 0;
  for (const [side, run] of Object.entries(sides)) {
    tick?.(`warm-up ${side}`);
    ops[side] = await calibrate((n) => run(n, `warm-${side}-${k++}`), roundMs);
  }
  const perOp = Object.fromEntries(Object.keys(sides).map((side) => [side, []]));
  const latencies = { update: [], updateNoCombine: [] };
  for (let r = 0; r < rounds; r++) {
    for (const [side, run] of Object.entries(sides)) {
      tick?.(`round ${r + 1}/${rounds} ${side}`);
      const { ms } = await run(ops[side], `single-${side}-${r}`, latencies[side]);
      perOp[side].push(ms / ops[side]);
    }
  }
  const stats = (side) => {
    const msPerOp = median(perOp[side]);
    const sorted = latencies[side] ? Float64Array.from(latencies[side]).sort() : null;
    return {
      opsPerRound: ops[side], msPerOp, opsPerSec: 1000 / msPerOp, msPerOpPerRound: perOp[side],
      p50Ms: sorted ? percentile(sorted, 50) : null, p99Ms: sorted ? percentile(sorted, 99) : null,
    };
  };
  const raw = stats('raw');
  const update = stats('update');
  const updateNoCombine = stats('updateNoCombine');
  const primitives = stats('primitives');
  const logged = sides.logged ? stats('logged') : null;
  return {
    rounds, raw, update, updateNoCombine, primitives, logged,
    /** The change log's own cost (raw loop with a log / raw loop), and update() over that floor. */
    ratioLogged: logged ? logged.msPerOp / raw.msPerOp : null,
    ratioOverLogged: logged ? update.msPerOp / logged.msPerOp : null,
    ratioPrimitives: primitives.msPerOp / raw.msPerOp,
    ratio: update.msPerOp / raw.msPerOp,
    ratioNoCombine: updateNoCombine.msPerOp / raw.msPerOp,
    ratiosPerRound: perOp.update.map((x, i) => x / perOp.raw[i]),
  };
}
