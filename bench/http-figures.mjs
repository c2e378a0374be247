// The closing figures of issue #5: `revkit serve` on the embedded default (SQLite, WAL,
// synchronous=FULL) under autocannon with 64 connections:
//   1. conditional PUT: each connection updates its own key with If-Match: "<the ETag it got last>"
//      (the first request creates it with If-None-Match: *), so every request is a real CAS that must win;
//   2. unconditional PUT, same keys and bodies, for comparison (ratio conditional / unconditional);
//   3. the server's peak resident memory over the run (VmHWM of the server process, Linux; else sampled RSS).
// The server is its own OS process (`node dist/cli/main.js serve`), so autocannon's memory is not counted.
// Usage: npm run build && node bench/http-figures.mjs [--seconds 10] [--connections 64] [--store sqlite:…] [--json out.json]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { flagArgs } from './lib/figures.mjs';

const args = flagArgs();
const SECONDS = Number(args.seconds ?? 10);
const CONNECTIONS = Number(args.connections ?? 64);
const TOKEN = 'bench-admin-token-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'revkit-http-bench-'));
const STORE = args.store ?? `sqlite:${join(dir, 'bench.db')}`;
const main = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, 'serve', '--store', STORE, '--port', '0', '--admin-token', TOKEN], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
      const url = /at (http:\/\/\S+)/.exec(out)?.[1];
      if (url) resolve({ child, url });
    });
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${err}`)));
  });
}

function procStatus(pid, field) {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Peak RSS of `pid`: VmHWM on Linux, else the highest sample of `ps`. */
function memoryWatcher(pid) {
  let sampledPeak = 0;
  const sample = async () => {
    let rss = procStatus(pid, 'VmRSS');
    if (rss === undefined) {
      rss = await new Promise((resolve) => {
        const ps = spawn('ps', ['-o', 'rss=', '-p', String(pid)]);
        let o = '';
        ps.stdout.on('data', (d) => (o += d));
        ps.on('close', () => resolve(Number(o.trim()) * 1024 || 0));
        ps.on('error', () => resolve(0));
      });
    }
    sampledPeak = Math.max(sampledPeak, rss);
  };
  const timer = setInterval(sample, 100);
  return {
    rss: () => procStatus(pid, 'VmRSS'),
    async stop() {
      clearInterval(timer);
      await sample();
      const hwm = procStatus(pid, 'VmHWM');
      return { peakBytes: hwm ?? sampledPeak, source: hwm !== undefined ? 'VmHWM' : 'ps samples' };
    },
  };
}

function header(headers, name) {
  if (!headers) return undefined;
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) if (String(headers[i]).toLowerCase() === name) return String(headers[i + 1]);
    return undefined;
  }
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return String(v);
  return undefined;
}

async function run(url, kind) {
  let nextId = 0;
  const statuses = {};
  const body = JSON.stringify({ kind, payload: 'x'.repeat(100) });
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    pipelining: 1,
    duration: SECONDS,
    requests: [{
      method: 'PUT',
      setupRequest: (req, context) => {
        if (context.key === undefined) context.key = `bench/${kind}/${nextId++}`;
        const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
        if (kind === 'conditional') {
          if (context.etag === undefined) headers['if-none-match'] = '*';
          else headers['if-match'] = context.etag;
        }
        return { ...req, path: `/v1/kv/${encodeURIComponent(context.key)}`, headers, body };
      },
      onResponse: (status, resBody, context, headers) => {
        statuses[status] = (statuses[status] ?? 0) + 1;
        const etag = header(headers, 'etag');
        if (etag) context.etag = etag;
        else if (status === 412) {
          try {
            context.etag = JSON.parse(resBody).currentEtag ?? undefined;
          } catch { /* keep */ }
        }
      },
    }],
  });
  return {
    kind,
    requestsPerSec: result.requests.average,
    requestsTotal: result.requests.total,
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
    statuses,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

const { child, url } = await startServer();
const mem = memoryWatcher(child.pid);
const idleRss = mem.rss();
let results;
try {
  // warm-up, then alternate so drift (fsync latency, page cache) hits both alike
  await run(url, 'warmup');
  const conditional = await run(url, 'conditional');
  const unconditional = await run(url, 'unconditional');
  results = { conditional, unconditional };
} finally {
  var memory = await mem.stop(); // eslint-disable-line no-var
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  rmSync(dir, { recursive: true, force: true });
}

const mb = (b) => (b / 1024 / 1024).toFixed(1);
const { conditional, unconditional } = results;
const rows = [
  ['workload', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors'],
  ...[conditional, unconditional].map((r) => [
    `${r.kind} PUT`, r.requestsPerSec.toFixed(0), String(r.latencyMs.p50), String(r.latencyMs.p99), String(r.non2xx), String(r.errors + r.timeouts),
  ]),
];
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
console.log(`revkit serve on ${STORE.startsWith('sqlite:') ? 'SQLite (WAL, synchronous=FULL)' : STORE}, ${CONNECTIONS} connections, ${SECONDS} s each, node ${process.version}`);
for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
console.log(`conditional / unconditional: ${(conditional.requestsPerSec / unconditional.requestsPerSec).toFixed(2)}`);
console.log(`server peak RSS: ${mb(memory.peakBytes)} MiB (${memory.source}); at start ${idleRss ? mb(idleRss) : '?'} MiB`);
const out = {
  at: new Date().toISOString(), node: process.version, store: STORE.startsWith('sqlite:') ? 'sqlite' : STORE, connections: CONNECTIONS, seconds: SECONDS,
  conditional, unconditional, ratio: conditional.requestsPerSec / unconditional.requestsPerSec,
  serverPeakRssBytes: memory.peakBytes, serverStartRssBytes: idleRss, rssSource: memory.source,
};
if (args.json) writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
if (conditional.non2xx > 0 || unconditional.non2xx > 0) {
  console.error(`unexpected non-2xx responses: ${JSON.stringify({ conditional: conditional.statuses, unconditional: unconditional.statuses })}`);
  process.exitCode = 1;
}
