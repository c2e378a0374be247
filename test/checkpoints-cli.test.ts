import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/sqlite/index.js';
import { checkpoints, resumeKey } from '../src/checkpoints/index.js';
import { tempDir, uniqueName } from './helpers.js';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const dir = tempDir('checkpoints-cli');

function revkit(store: string, args: string[]) {
  const run = spawnSync(process.execPath, [cli, '--store', store, 'checkpoints', ...args], { encoding: 'utf8' });
  return { code: run.status, out: run.stdout.trim(), err: run.stderr.trim() };
}

/** The same, without waiting for each process in turn (the CLI takes a while to start on a busy machine). */
function revkitAsync(store: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [cli, '--store', store, 'checkpoints', ...args], { encoding: 'utf8' }, (_error, stdout, stderr) => {
      resolve({ code: child.exitCode, out: stdout.trim(), err: stderr.trim() });
    });
  });
}

const lines = (text: string) => (text === '' ? [] : text.split('\n').map((l) => JSON.parse(l)));

describe('revkit checkpoints list|get|reset', { timeout: 120_000 }, () => {
  const path = join(dir, `${uniqueName('cli')}.db`);
  const store = `sqlite:${path}`;
  const billing = resumeKey({ stream: 'orders', consumer: 'billing' });
  const audit = resumeKey({ stream: 'orders', consumer: 'audit' });
  let seed: SqliteStore;

  beforeAll(async () => {
    seed = new SqliteStore(path);
    const cps = checkpoints(seed, { prefix: 'cp/' });
    await cps.advance(billing, { sequence: 42, eventId: 'evt-42' });
    await cps.advance(audit, { sequence: 7 });
  });
  afterAll(() => seed.close());

  it('list prints every cursor under the prefix as JSON lines; an empty prefix prints nothing', () => {
    const listed = revkit(store, ['list', '--prefix', 'cp/']);
    expect(listed.code).toBe(0);
    expect(lines(listed.out)).toEqual([
      { key: billing, sequence: 42, eventId: 'evt-42' },
      { key: audit, sequence: 7 },
    ].sort((a, b) => (a.key < b.key ? -1 : 1)));
    expect(revkit(store, ['list', '--prefix', 'other/'])).toMatchObject({ code: 0, out: '' });
  });

  it('get by resume key or by identity (key order and number formatting do not matter); exit 4 when there is none', () => {
    expect(lines(revkit(store, ['get', billing, '--prefix', 'cp/']).out)).toEqual([{ key: billing, sequence: 42, eventId: 'evt-42' }]);
    const byIdentity = revkit(store, ['get', '--identity', '{"consumer":"billing","stream":"orders"}', '--prefix', 'cp/']);
    expect(lines(byIdentity.out)).toEqual([{ key: billing, sequence: 42, eventId: 'evt-42' }]);
    const missing = revkit(store, ['get', '--identity', '{"consumer":"nobody"}', '--prefix', 'cp/']);
    expect(missing.code).toBe(4);
    expect(missing.err).toBe(`revkit: not found: no checkpoint ${resumeKey({ consumer: 'nobody' })}`);
    expect(revkit(store, ['get', billing, '--prefix', 'elsewhere/']).code).toBe(4);
  });

  it('reset moves a cursor back to --sequence, or removes it; exit 4 when there is nothing to remove', async () => {
    const back = revkit(store, ['reset', audit, '--prefix', 'cp/', '--sequence', '3', '--event-id', 'e3']);
    expect(back.code).toBe(0);
    expect(JSON.parse(back.out)).toEqual({ key: audit, cursor: { sequence: 3, eventId: 'e3' } });
    expect(await checkpoints(seed, { prefix: 'cp/' }).get(audit)).toEqual({ sequence: 3, eventId: 'e3' });
    const removed = revkit(store, ['reset', '--identity', '{"stream":"orders","consumer":"audit"}', '--prefix', 'cp/']);
    expect(removed.code).toBe(0);
    expect(JSON.parse(removed.out)).toEqual({ key: audit, cursor: null });
    expect(await checkpoints(seed, { prefix: 'cp/' }).get(audit)).toBeNull();
    expect(revkit(store, ['reset', audit, '--prefix', 'cp/']).code).toBe(4);
    expect(revkit(store, ['get', billing, '--prefix', 'cp/']).code).toBe(0);
  });

  it('bad usage exits 2 with one line and changes nothing', async () => {
    const cases = [
      ['list'],
      ['get', billing],
      ['get', '--prefix', 'cp/'],
      ['get', 'billing', '--prefix', 'cp/'],
      ['get', billing, '--identity', '{}', '--prefix', 'cp/'],
      ['get', '--identity', '{not json', '--prefix', 'cp/'],
      ['reset', billing, '--prefix', 'cp/', '--sequence', '-1'],
      ['reset', billing, '--prefix', 'cp/', '--sequence', '1.5'],
      ['reset', billing, '--prefix', 'cp/', '--event-id', 'e1'],
      ['frobnicate', '--prefix', 'cp/'],
    ];
    const runs = await Promise.all(cases.map((args) => revkitAsync(store, args)));
    for (const [i, args] of cases.entries()) {
      const r = runs[i] as Awaited<ReturnType<typeof revkitAsync>>;
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err.split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.err, args.join(' ')).toMatch(/^revkit: /);
    }
    expect(lines(revkit(store, ['get', billing, '--prefix', 'cp/']).out)).toEqual([{ key: billing, sequence: 42, eventId: 'evt-42' }]);
  });

  it('a store that cannot be opened, or a value that is not a cursor, exits 1 with one line', async () => {
    const broken = revkit('sqlite:/dev/null/x/y.db', ['list', '--prefix', 'cp/']);
    expect(broken.code).toBe(1);
    expect(broken.err).toMatch(/^revkit: ERR_BACKEND: [^\n]+$/);
    await seed.put(`cp/${audit}`, 'not a cursor');
    const damaged = revkit(store, ['get', audit, '--prefix', 'cp/']);
    expect(damaged.code).toBe(1);
    expect(damaged.err).toMatch(/^revkit: ERR_BACKEND: the value under "cp\/[0-9a-f]{64}" is not a checkpoint cursor$/);
  });
});
