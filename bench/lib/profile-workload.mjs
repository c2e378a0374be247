// One workload of bench/profile-figures.mjs, run in its own process under --cpu-prof;
// prints one JSON line: { ops, ms, cpuUsPerOp }.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from '../../dist/index.js';
import { process as processOnce, registerProducer } from '../../dist/exactly-once/index.js';
import { handler } from '../../test/fixtures/exactly-once/kill-worker.mjs';

const [name, seconds = '3'] = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), 'revkit-profile-'));
const increment = (n) => (n ?? 0) + 1;

async function timed(store, body) {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const deadline = started + Number(seconds) * 1000;
  const ops = await body(deadline);
  const used = process.cpuUsage(cpu);
  return { ops, ms: performance.now() - started, cpuUsPerOp: (used.user + used.system) / ops };
}

const lone = (store, step) => async (deadline) => {
  let ops = 0;
  while (performance.now() < deadline) {
    await step(ops);
    ops++;
  }
  return ops;
};

const WORKLOADS = {
  'sqlite-full-64-update': async () => {
    const store = await open(`sqlite:${join(dir, 'a.db')}`);
    const r = await timed(store, async (deadline) => {
      let ops = 0;
      await Promise.all(Array.from({ length: 64 }, async (_, w) => {
        while (performance.now() < deadline) {
          await store.update(`d/${w}`, increment);
          ops++;
        }
      }));
      return ops;
    });
    await store.close();
    return r;
  },
  'sqlite-full-1-update': async () => {
    const store = await open(`sqlite:${join(dir, 'a.db')}`);
    const r = await timed(store, lone(store, () => store.update('k', increment)));
    await store.close();
    return r;
  },
  'memory-1-update': async () => {
    const store = await open('memory:');
    const r = await timed(store, lone(store, () => store.update('k', increment)));
    await store.close();
    return r;
  },
  'exactly-once-sqlite-full': async () => {
    const store = await open(`sqlite:${join(dir, 'a.db')}`);
    const producer = await registerProducer(store, 'profile');
    const r = await timed(store, lone(store, (i) => processOnce(store, producer.stamp('0'), { index: i }, handler)));
    await store.close();
    return r;
  },
};

/** One writer on one key of a server backend: update() for `<backend>-1-update`, the raw driver's CAS loop for `<backend>-1-raw`. */
for (const backend of ['postgres', 'redis']) {
  const target = () => import(`../targets/${backend}.mjs`);
  WORKLOADS[`${backend}-1-update`] = async () => {
    const t = await target();
    try {
      const store = await open(await t.freshUrl());
      const r = await timed(store, lone(store, () => store.update('k', increment)));
      await store.close();
      return r;
    } finally {
      await t.cleanup();
    }
  };
  WORKLOADS[`${backend}-1-raw`] = async () => {
    const t = await target();
    try {
      const url = await t.freshUrl();
      // The raw loop runs a count, not a deadline: a short first run sizes it to the seconds asked.
      const probeStart = performance.now();
      await t.rawLoop({ url, key: 'probe', ops: 300 });
      const ops = Math.max(300, Math.round((300 * Number(seconds) * 1000) / (performance.now() - probeStart)));
      return await timed(null, async () => {
        await t.rawLoop({ url, key: 'k', ops });
        return ops;
      });
    } finally {
      await t.cleanup();
    }
  };
}

try {
  console.log(JSON.stringify(await WORKLOADS[name]()));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
