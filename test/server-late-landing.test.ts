/**
 * Issue 27.1 over HTTP: `revkit serve` processes over one PostgreSQL. A client's
 * PUT waits on a row lock inside PostgreSQL when its server is SIGKILLed (or
 * SIGSTOPped); PostgreSQL commits that orphaned write once the lock is
 * released — after the client has re-read the old revision through a server
 * that answers (the same one restarted on its port, or another replica
 * behind a load balancer) and written again. update() over HttpStore must
 * recognise the orphan by its writer token, not apply the mutation twice.
 * Deterministic: the lock is released only once both the orphan and the
 * retry wait behind it. Needs `npm run build` (servers run dist/).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { dropPostgresStore } from '../src/postgres/index.js';
import { HttpStore } from '../src/server/index.js';
import { startCutProxy } from './support/cut-proxy.js';
import { lockWaiters } from './support/lock-waiters.js';
import { PG_URL } from './support/postgres-pool.js';

const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const TOKEN = 'late-landing-admin-token-0123456789';
const made: string[] = [];
const children = new Set<ChildProcess>();

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
  for (const prefix of made) await dropPostgresStore(pool, { prefix }).catch(() => undefined);
  await pool.end();
}, 60_000);

interface Served {
  port: number;
  child: ChildProcess;
  stop(signal: NodeJS.Signals): Promise<void>;
}

/** `revkit serve` on `port` (0: any free one); resolves once it prints its address. */
async function serve(storeUrl: string, port = 0): Promise<Served> {
  for (let tries = 1; ; tries++) {
    try {
      return await serveOnce(storeUrl, port);
    } catch (err) {
      // The port of a process killed a moment ago can still be held briefly.
      if (tries >= 20) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

function serveOnce(storeUrl: string, port: number): Promise<Served> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, 'serve', '--store', storeUrl, '--port', String(port), '--admin-token', TOKEN], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      out += d;
      const url = / at (http:\/\/\S+)/.exec(out)?.[1];
      if (url) resolve({
        port: Number(new URL(url).port),
        child,
        stop: (signal) => new Promise((done) => {
          if (signal === 'SIGSTOP') return child.kill('SIGSTOP') && done();
          child.once('exit', () => done());
          child.kill(signal);
        }),
      });
    });
    child.on('exit', (code, signal) => {
      children.delete(child);
      reject(new Error(`revkit serve exited (${code ?? signal}) before serving: ${err.slice(-500)}`));
    });
  });
}


type Fault = 'kill, restart on the same port' | 'kill, fail over to another replica' | 'pause (SIGSTOP), fail over to another replica';
const cases: Array<{ fault: Fault; combine: boolean }> = [
  { fault: 'kill, restart on the same port', combine: true },
  { fault: 'kill, restart on the same port', combine: false },
  { fault: 'kill, fail over to another replica', combine: false },
  { fault: 'pause (SIGSTOP), fail over to another replica', combine: true },
];

describe('HTTP: a PUT orphaned inside PostgreSQL by its server\'s death commits after the client retried', () => {
  for (const { fault, combine } of cases) {
    it(`${fault} — update() (combine: ${combine}) applies its mutation once`, async () => {
      const prefix = `rk_hll_${process.pid.toString(36)}_${Date.now().toString(36)}_${made.length}_`;
      made.push(prefix);
      const storeUrl = `${PG_URL}?prefix=${prefix}`;
      const first = await serve(storeUrl);
      const other = fault === 'kill, restart on the same port' ? undefined : await serve(storeUrl);
      // A load balancer in front: the client never learns which server it talks to.
      const balancer = await startCutProxy(first.port);
      const client = new HttpStore({ url: `http://127.0.0.1:${balancer.port}`, token: TOKEN, timeoutMs: 1_000 });
      const locker = new pg.Client(PG_URL);
      await locker.connect();
      try {
        await client.put('counter', 0);
        await locker.query('BEGIN');
        await locker.query(`SELECT 1 FROM "public"."${prefix}kv" WHERE key = 'counter' FOR UPDATE`);

        const outcome = client.update<number>('counter', (n) => (n ?? 0) + 1, { combine, deadlineMs: 120_000 }).then((e) => e, (err: unknown) => err);
        await lockWaiters(1, prefix, { tries: 3000 });
        if (fault === 'kill, restart on the same port') {
          await first.stop('SIGKILL');
          await serve(storeUrl, first.port);
        } else {
          await first.stop(fault.startsWith('pause') ? 'SIGSTOP' : 'SIGKILL');
          balancer.retarget((other as Served).port);
        }
        await lockWaiters(2, prefix, { tries: 3000 }); // the orphan, and the client's retry through a live server
        await locker.query('COMMIT');

        const answer = await outcome;
        const history = await client.history<number>('counter');
        expect(history.map((r) => ('value' in r ? r.value : null)), 'the increment was applied twice').toEqual([1, 0]);
        expect(answer).toMatchObject({ value: 1, revision: history[0]?.revision });
      } finally {
        await locker.query('ROLLBACK').catch(() => undefined);
        await locker.end();
        await client.close();
        await balancer.close();
        for (const child of children) child.kill('SIGKILL');
      }
    }, 150_000);
  }
});
