/**
 * update() decides on the key as it is now, read in the attempt: not on what this process last wrote. A
 * version that skipped the read and guarded its write by the revision of its own last write (0d9decb,
 * reverted) failed both cases here: a store whose revisions started over underneath an open store object
 * (dropped and created again) let that guard pass on another writer's value — a lost update (ABA) — and a
 * mutation that builds an oversized value from the stale state was refused although, on the value as it is,
 * it returns a small one. Two store objects on one store stand for two processes.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { open } from '../src/open.js';
import type { Store } from '../src/core/index.js';
import { dropPostgresStore } from '../src/postgres/index.js';
import { PG_URL } from './checkpoints-backends.js';
import { tempDir, uniqueName } from './helpers.js';

const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
const prefixes: string[] = [];
const opened: Store[] = [];
afterAll(async () => {
  for (const s of opened) await s.close().catch(() => undefined);
  for (const prefix of prefixes) await dropPostgresStore(admin, { prefix }).catch(() => undefined);
  await admin.end();
});
const dir = tempDir('reads-first');
const inc = (v: { n: number } | null) => ({ n: (v?.n ?? 0) + 1 });

async function opening(url: string): Promise<Store> {
  const s = await open(url);
  opened.push(s);
  return s;
}

describe('update() builds on the key as it is, whatever this process wrote before', () => {
  it('postgres: the store dropped and created again under an open store object', async () => {
    const prefix = `rk_rf_${randomBytes(4).toString('hex')}_`;
    prefixes.push(prefix);
    const url = `${PG_URL}?prefix=${prefix}`;
    const a = await opening(url);
    await a.update('k', inc);
    await dropPostgresStore(admin, { prefix });
    const b = await opening(url);
    await b.put('k', { n: 100 });
    expect((await a.update('k', inc))?.value).toEqual({ n: 101 });
  });

  it('file: the file removed and the store created again by another process', async () => {
    const file = join(dir, `${uniqueName('rf')}.json`);
    const a = await opening(`file:${file}`);
    await a.update('k', inc);
    rmSync(file, { force: true });
    const b = await opening(`file:${file}`);
    await b.put('k', { n: 100 });
    expect((await a.update('k', inc))?.value).toEqual({ n: 101 });
  });

  it('a mutation that would build an oversized value on the stale state is answered on the value as it is', async () => {
    const prefix = `rk_rf_${randomBytes(4).toString('hex')}_`;
    prefixes.push(prefix);
    const url = `${PG_URL}?prefix=${prefix}`;
    const [a, b] = [await opening(url), await opening(url)];
    await a.update('job', () => ({ state: 'open' }));
    await b.put('job', { state: 'closed' });
    const answered = await a.update<{ state: string; pad?: string }>('job', (job) => (job?.state === 'open' ? { state: 'open', pad: 'x'.repeat(2 << 20) } : { state: 'reopened' }));
    expect(answered?.value).toEqual({ state: 'reopened' });
  });
});
