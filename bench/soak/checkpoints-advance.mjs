#!/usr/bin/env node
// Soak of checkpoints (issue 12): 8 OS processes advance the same cursors with random sequences;
// every cursor must end at the highest sequence any process asked for, and no process may be told
// of a backwards move. CI runs 150 advances per process; this runs 2,000.
//   node bench/soak/checkpoints-advance.mjs [--processes 8] [--advances 2000] [--backend sqlite|postgres|nats|file ...]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { open } from '../../dist/index.js';
import { checkpoints, resumeKey } from '../../dist/checkpoints/index.js';

const PG_URL = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test`;
const NATS_URL = process.env.REVKIT_NATS_URL ?? 'nats://127.0.0.1:4222';
const worker = fileURLToPath(new URL('../../test/fixtures/checkpoints-advancer.mjs', import.meta.url));
const { values } = parseArgs({ options: { processes: { type: 'string', default: '8' }, advances: { type: 'string', default: '2000' }, backend: { type: 'string', multiple: true } } });
const dir = mkdtempSync(join(tmpdir(), 'revkit-soak-advance-'));
const tag = `rk_cpadv_${process.pid}_${randomBytes(3).toString('hex')}`;
const keys = Array.from({ length: 4 }, (_, i) => resumeKey({ soak: 'advance', consumer: i }));

const namespaces = {
  sqlite: () => ({ url: `sqlite:${join(dir, 'advance.db')}`, drop: async () => undefined }),
  file: () => ({ url: `file:${join(dir, 'advance.json')}`, drop: async () => undefined }),
  postgres: () => ({
    url: `${PG_URL}?prefix=${tag}_`,
    drop: async () => {
      const { default: pg } = await import('pg');
      const { dropPostgresStore } = await import('../../dist/postgres/index.js');
      const pool = new pg.Pool({ connectionString: PG_URL, max: 1 });
      await dropPostgresStore(pool, { prefix: `${tag}_` }).finally(() => pool.end());
    },
  }),
  nats: () => ({
    url: `${NATS_URL}?bucket=${tag}`,
    drop: async () => {
      const { connect } = await import('@nats-io/transport-node');
      const { jetstreamManager } = await import('@nats-io/jetstream');
      const nc = await connect({ servers: NATS_URL.replace(/^nats:\/\//, '') });
      await (await jetstreamManager(nc)).streams.delete(`KV_${tag}`).catch(() => undefined);
      await nc.close();
    },
  }),
};

function advancer(config) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [worker, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`advancer exited with ${code}`))));
  });
}

let failed = 0;
try {
  for (const name of values.backend ?? ['sqlite']) {
    if (!namespaces[name]) throw new Error(`unknown --backend ${name}: use ${Object.keys(namespaces).join(', ')}`);
    const { url, drop } = namespaces[name]();
    const started = performance.now();
    try {
      const startAt = Date.now() + 1500;
      const results = await Promise.all(Array.from({ length: Number(values.processes) }, () =>
        advancer({ url, prefix: 'cp/', keys, loops: 4, advances: Number(values.advances), startAt })));
      const store = await open(url);
      const cps = checkpoints(store, { prefix: 'cp/' });
      let lostMax = 0;
      for (const key of keys) {
        const max = Math.max(...results.map((r) => r.perKey[key].maxSubmitted));
        if ((await cps.get(key))?.sequence !== max) lostMax++;
      }
      await store.close();
      const sum = (f) => results.reduce((n, r) => n + f(r), 0);
      const violations = sum((r) => r.violations.length);
      const errors = sum((r) => r.errors.length);
      const ok = lostMax === 0 && violations === 0 && errors === 0;
      if (!ok) failed++;
      console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${values.processes} processes, ${sum((r) => r.advanced + r.skipped)} advances `
        + `(${sum((r) => r.advanced)} moved a cursor), ${lostMax} lost maxima, ${violations} backwards moves seen, ${errors} errors, `
        + `${((performance.now() - started) / 1000).toFixed(1)} s`);
    } finally {
      await drop();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed === 0 ? 0 : 1);
