// Several `revkit serve` replicas over one shared store, for the failover
// tests, the soak and the bench (issue 25): HttpStore's several-server URL
// (full URLs, comma-separated) is the cluster's URL; the first replica is the
// one every client uses while it answers, so failover() SIGKILLs it, waits
// until a write through the cluster URL is acknowledged by another replica,
// then starts it again on its port (the clients go back to it once it
// answers /readyz). The store is a SQLite file in a temp dir of its own
// unless `store` names another (a PostgreSQL schema of the caller's, say).
// Only processes started here are ever signalled. Needs `npm run build`.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpStore } from '../../../dist/http/index.js';

const MAIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const TOKEN = 'cluster-admin-token-0123456789abcdef';

const children = new Set();
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One `revkit serve` process on a fixed port, started again on that port after a kill. */
class Replica {
  constructor(index, store, port, log) {
    Object.assign(this, { index, store, port, log, child: undefined, stderr: '' });
    this.url = `http://127.0.0.1:${port}`;
  }

  async start() {
    for (let tries = 1; ; tries++) {
      try {
        return await this.spawnOnce();
      } catch (err) {
        // The port of a process killed a moment ago can be held briefly.
        if (tries >= 40) throw err;
        this.log(`replica ${this.index} did not start (try ${tries}): ${err.message.slice(0, 200)}`);
        await sleep(250);
      }
    }
  }

  spawnOnce() {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [MAIN, 'serve', '--store', this.store, '--port', String(this.port), '--admin-token', TOKEN], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(child);
      let out = '';
      child.stderr.on('data', (d) => (this.stderr = (this.stderr + d).slice(-4000)));
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes(' at http://')) resolve(this.url);
      });
      child.on('exit', (code, signal) => {
        children.delete(child);
        reject(new Error(`replica ${this.index} exited (${code ?? signal}) before serving: ${this.stderr.slice(-500)}`));
      });
      this.child = child;
    });
  }

  /** SIGKILL; resolves once the process is gone. `mark` is called at the instant of the signal. */
  kill(mark = () => undefined) {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    const exited = new Promise((r) => child.once('exit', r));
    mark();
    child.kill('SIGKILL');
    return exited;
  }
}

/**
 * Starts `replicas` (default 3) `revkit serve` over one store (`store`, a
 * store URL; default a SQLite file in a temp dir). Returns
 * { url, singleUrl, urls, token, failover({ log, mark }), stop() }.
 */
export async function startHttpCluster({ replicas: count = 3, store, splitBrain = false, log = () => undefined } = {}) {
  const dir = store === undefined ? mkdtempSync(join(tmpdir(), 'revkit-http-cluster-')) : undefined;
  const storeUrl = store ?? `sqlite:${join(dir, 'store.db')}`;
  // `splitBrain` (a canary, SQLite only): each replica over a store of its own — the misconfiguration a failover
  // must never hide: the next replica serves other data.
  const storeOf = (i) => (splitBrain && dir ? `sqlite:${join(dir, `store-${i}.db`)}` : storeUrl);
  const ports = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  const replicas = ports.map((port, i) => new Replica(i, storeOf(i), port, log));
  const stop = async () => {
    await Promise.all(replicas.map((r) => r.kill()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
  try {
    // One at a time: the first creates the store (its migrations), the others open it.
    for (const r of replicas) await r.start();
  } catch (err) {
    await stop();
    throw err;
  }
  const urls = replicas.map((r) => r.url);
  const url = `${urls.join(',')}?token=${TOKEN}`;
  log(`http cluster: ${urls.join(' ')} over ${storeUrl.replace(/:[^:@/]*@/, ':****@')}`);

  /** SIGKILLs the first replica (the one clients use), waits for a write acknowledged by another, starts it again. */
  async function failover({ log: say = log, mark = () => undefined } = {}) {
    const [old, next] = replicas;
    await old.kill(() => mark('kill'));
    say(`SIGKILL replica 0 (${old.url})`);
    const client = new HttpStore({ url: urls, token: TOKEN, probeIntervalMs: 60_000 });
    try {
      const until = Date.now() + 60_000;
      for (;;) {
        try {
          await client.put('__revkit-cluster/failover', { at: Date.now() });
          break;
        } catch (err) {
          if (Date.now() > until) throw new Error(`no replica took the writes within 60 s: ${err.message}`);
          await sleep(100);
        }
      }
    } finally {
      await client.close();
    }
    await old.start();
    say(`replica 0 back at ${old.url}`);
    return { old: old.url, new: next?.url ?? old.url };
  }

  return { url, singleUrl: `${urls[0]}?token=${TOKEN}`, urls, token: TOKEN, store: storeUrl, failover, stop };
}
