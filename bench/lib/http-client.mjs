// The load generator of the HTTP figures (bench/server-figures.mjs, bench/etcd-figures.mjs):
// `connections` undici keep-alive clients, one request in flight on each, every
// connection driving its own key through a user-supplied conditional-write cycle.
// Every target is measured with this same client, from this process, while the
// servers run in processes of their own.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { Client } from 'undici';
import { percentile } from './stats.mjs';

/**
 * Runs `cycle` on every connection until `seconds` are up; requests in flight then
 * finish, so every acknowledged write is counted.
 *   contexts: one object per connection (its key, last revision, acknowledged writes),
 *             kept by the caller across runs;
 *   request(ctx): { method, path, headers, body };
 *   response(ctx, status, headers, text): true when the write was acknowledged;
 *   serverPid: the server's process, to report its CPU time per acknowledged request.
 */
export async function runLoad({ origin, contexts, seconds, request, response, serverPid }) {
  const clients = contexts.map(() => new Client(origin, { pipelining: 1, keepAliveTimeout: 60_000 }));
  try {
    return await driveLoad({
      contexts, seconds, serverPid,
      step: async (ctx, i) => {
        const res = await clients[i].request(request(ctx));
        const text = await res.body.text();
        return response(ctx, res.statusCode, res.headers, text);
      },
    });
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/**
 * The load loop of any client: `step(ctx, i)` runs again and again for each context until
 * `seconds` pass; it resolves true for an acknowledged write, false for a refused one, or
 * throws (counted by the error's code).
 */
export async function driveLoad({ contexts, seconds, serverPid, step }) {
  const latencies = [];
  let acked = 0;
  let refused = 0;
  const errors = {};
  const cpuBefore = serverPid !== undefined ? cpuSeconds(serverPid) : undefined;
  const clientBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(contexts.map(async (ctx, i) => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        if (await step(ctx, i)) {
          acked++;
          latencies.push(performance.now() - t0);
        } else refused++;
      } catch (err) {
        const code = err?.code ?? err?.name ?? 'error';
        errors[code] = (errors[code] ?? 0) + 1;
      }
    }
  }));
  return loadResult({ acked, refused, errors, latencies, started, cpuBefore, clientBefore, serverPid });
}

/** What a load run reports, from its counts and latencies; call it as soon as the run's last request is answered. */
export function loadResult({ acked, refused, errors, latencies, started, cpuBefore, clientBefore, serverPid }) {
  const elapsedMs = performance.now() - started;
  const cpuAfter = serverPid !== undefined ? cpuSeconds(serverPid) : undefined;
  const client = process.cpuUsage(clientBefore);
  const sorted = Float64Array.from(latencies).sort();
  return {
    acked, refused, errors, elapsedMs,
    perSec: acked / (elapsedMs / 1000),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    // server CPU per acknowledged request: less sensitive than the rate to what else the machine runs
    serverCpuUs: cpuBefore !== undefined && cpuAfter !== undefined && acked > 0 ? ((cpuAfter - cpuBefore) * 1e6) / acked : undefined,
    // share of one core this client process used: near 1, the client, not the server, sets the pace
    clientCoreShare: (client.user + client.system) / 1000 / elapsedMs,
  };
}

/** One request on a fresh connection: { status, headers, text }. */
export async function fetchOnce(origin, { method = 'GET', path, headers = {}, body }) {
  const client = new Client(origin);
  try {
    const res = await client.request({ method, path, headers, body });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  } finally {
    await client.close();
  }
}

/** A TCP port nobody listens on right now (for servers that cannot take port 0). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Spawns a server process and resolves once `ready` matches its stdout or stderr
 * (the first capture group, if any, is returned as `match`).
 */
export function spawnServer(command, args, ready, { timeoutMs = 30_000, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} did not start within ${timeoutMs} ms:\n${output.slice(-2000)}`));
    }, timeoutMs);
    const onData = (d) => {
      output += d;
      const m = ready.exec(output);
      if (m) {
        clearTimeout(timer);
        child.stdout.removeAllListeners('data');
        child.stderr.removeAllListeners('data');
        child.stdout.resume();
        child.stderr.resume();
        child.removeListener('exit', onExit);
        resolve({ child, match: m[1] ?? m[0], stop: () => stopChild(child) });
      }
    };
    const onExit = (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited (${code ?? signal}) before it was ready:\n${output.slice(-2000)}`));
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', onExit);
  });
}

/** SIGTERM, then SIGKILL after 5 s; resolves once the process is gone. */
export function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Text table, first column left-aligned. */
export function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ')).join('\n');
}

/**
 * The conditional-PUT cycle of revkit's HTTP API (and of the bare fastify route
 * that answers the same requests): connection i owns key `<prefix>/<i>`, creates
 * it with If-None-Match: *, then sends If-Match: <the ETag its previous PUT
 * returned>. The value carries the number of the write, so the final value of
 * each key tells whether any acknowledged write was lost or applied twice.
 */
export function conditionalPut({ prefix, token, connections, padding = 100 }) {
  const pad = 'x'.repeat(padding);
  const contexts = Array.from({ length: connections }, (_, i) => ({
    path: `/v1/kv/${encodeURIComponent(`${prefix}/${i}`)}`, etag: undefined, acked: 0, statuses: {},
  }));
  return {
    contexts,
    request(ctx) {
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      if (ctx.etag === undefined) headers['if-none-match'] = '*';
      else headers['if-match'] = ctx.etag;
      return { method: 'PUT', path: ctx.path, headers, body: `{"n":${ctx.acked + 1},"payload":"${pad}"}` };
    },
    response(ctx, status, headers) {
      ctx.statuses[status] = (ctx.statuses[status] ?? 0) + 1;
      if (status !== 200 && status !== 201) return false;
      ctx.etag = headers.etag;
      ctx.acked++;
      return true;
    },
    /** Every key holds its last acknowledged write under its last ETag: { keys, acked, mismatches }. */
    async verify(origin) {
      const mismatches = [];
      for (const ctx of contexts) {
        if (ctx.acked === 0) continue;
        const r = await fetchOnce(origin, { path: ctx.path, headers: { authorization: `Bearer ${token}` } });
        const n = r.status === 200 ? JSON.parse(r.text).n : undefined;
        if (n !== ctx.acked || r.headers.etag !== ctx.etag) mismatches.push({ path: ctx.path, acked: ctx.acked, stored: n, etag: r.headers.etag, expectedEtag: ctx.etag });
      }
      return { keys: contexts.length, acked: contexts.reduce((s, c) => s + c.acked, 0), mismatches };
    },
    statuses() {
      const all = {};
      for (const c of contexts) for (const [s, n] of Object.entries(c.statuses)) all[s] = (all[s] ?? 0) + n;
      return all;
    },
  };
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); undefined elsewhere. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}
const CLOCK_TICKS = 100; // USER_HZ on Linux
