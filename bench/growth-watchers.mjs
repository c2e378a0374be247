// Issue 26, "Growth", watchers: how one `revkit serve` (SQLite, synchronous=FULL, its default
// store) copes with 1, 100, 1,000 and 10,000 concurrent SSE watchers, against a private etcd 3.4
// holding the same watchers, measured the same way in the same run, size by size, the two
// servers back to back (the order alternates from one size to the next).
//
// Per size and server (each on a fresh server, data in a temp folder under /tmp):
//   1. the writer creates every key once (warm-up), then 16 closed-loop conditional writers
//      run for --tput-seconds with no watcher: writes/s without watchers (again at the end,
//      once the watchers have gone; the two are averaged);
//   2. the server's memory (RSS; live heap after a forced GC — revkit: process.memoryUsage()
//      through a SIGUSR2 probe loaded with --import, bench/lib/growth-watchers-probe.mjs;
//      etcd: go_memstats_heap_alloc_bytes of /metrics right after /debug/pprof/heap?gc=1);
//   3. --clients node processes (bench/lib/growth-watchers-client.mjs) open the watchers,
//      each on its own connection, and the server is asked how many it holds;
//   4. memory again, 2 s later: (after − before) / watchers = memory per idle watcher;
//   5. delay: the 16 writers, paced to --rate writes/s in all, for --delay-seconds; every value
//      carries the writer's clock (CLOCK_MONOTONIC, shared by every process of the machine)
//      read just before its request is sent; each client takes, per delivered event, its
//      arrival time minus that stamp (so the delay includes the write's own commit: the
//      writers' own p50/p99 are reported beside it). Then every watcher is checked to have
//      received exactly the acknowledged writes it should;
//   6. writes/s with the watchers: the 16 writers unpaced for --tput-seconds (the delays of
//      this phase are kept too: delivery with the server saturated).
// Writes: keys app/gNNNN/kD (--keys, groups of 10); writer c owns keys c, c+16, …, and every
// write is a compare-and-swap on the revision its previous write of that key returned
// (revkit: PUT /v1/kv/<key> with If-Match; etcd: POST /v3/kv/txn on its JSON gateway,
// compare mod_revision, then put).
// Watchers (the mix): 1 % (at least one) on the broad prefix app/ (every write), 9 % on a
// group prefix app/gNNNN/ (10 keys), 90 % on one key each, spread over the key space; a
// single watcher is a broad one.
// etcd's watchers go through its HTTP/JSON gateway (POST /v3/watch, one HTTP connection and
// one gRPC watch stream each — clientv3 would share one gRPC stream per client), because no
// etcd npm client is installed here.
// Usage: npm run build && node bench/growth-watchers.mjs [--sizes 1,100,1000,10000] [--quick]
//          [--clients 4] [--writers 16] [--rate 100] [--delay-seconds 12] [--tput-seconds 8]
//          [--keys 10000] [--no-etcd] [--cpu-prof DIR (profile the revkit server)] [--publish]
// Writes bench/out/growth-watchers.json and .svg charts (--publish: bench/results/).
import { fork, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Client } from 'undici';
import { topSelfTime } from './lib/cpu-profile.mjs';
import { flagArgs } from './lib/figures.mjs';
import { bucketUs, BUCKETS } from './lib/growth-watchers-client.mjs';
import { lineChart } from './lib/growth-watchers-svg.mjs';
import { cpuSeconds, freePort, spawnServer, table } from './lib/http-client.mjs';
import { machineInfo } from './lib/machine.mjs';
import { output } from './lib/out.mjs';
import { percentile } from './lib/stats.mjs';

const args = flagArgs();
const QUICK = process.argv.includes('--quick');
const SIZES = (args.sizes ?? (QUICK ? '1,100' : '1,100,1000,10000')).split(',').map(Number);
const CLIENTS = Number(args.clients ?? 4);
const WRITERS = Number(args.writers ?? 16);
const RATE = Number(args.rate ?? 100);
const DELAY_S = Number(args['delay-seconds'] ?? (QUICK ? 3 : 12));
const TPUT_S = Number(args['tput-seconds'] ?? (QUICK ? 2 : 8));
const KEYS = Number(args.keys ?? (QUICK ? 1000 : 10000));
const DRAIN_TIMEOUT_S = Number(args['drain-timeout'] ?? 60);
const OPEN_CONCURRENCY = 32; // opens in flight per client process
const PAD = 'x'.repeat(64);
const TOKEN = 'bench-admin-token-0123456789';
const WITH_ETCD = !process.argv.includes('--no-etcd');
const OUT_DIR = output({ publish: process.argv.includes('--publish') }).dir;
const PROF_DIR = args['cpu-prof'];
const CLIENT_SCRIPT = fileURLToPath(new URL('./lib/growth-watchers-client.mjs', import.meta.url));
const PROBE = pathToFileURL(fileURLToPath(new URL('./lib/growth-watchers-probe.mjs', import.meta.url))).href;
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (KEYS % 10 !== 0 || KEYS < WRITERS) throw new Error('--keys must be a multiple of 10, at least --writers');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');
const round = (x, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? x ?? null : Math.round(x * 10 ** d) / 10 ** d);
const groupName = (g) => `g${String(g).padStart(4, '0')}`;
const keyName = (i) => `app/${groupName(Math.floor(i / 10))}/k${i % 10}`;
const GROUPS = KEYS / 10;

const fdLimit = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim());
if (Number.isFinite(fdLimit) && fdLimit < Math.max(...SIZES) + 1024) {
  console.error(`ulimit -n is ${fdLimit}: too low for ${Math.max(...SIZES)} watchers on one server (raise it: ulimit -n ${Math.max(...SIZES) + 4096})`);
  process.exit(1);
}
const etcdBinary = WITH_ETCD ? findOnPath('etcd') : undefined;
if (WITH_ETCD && etcdBinary === undefined) console.log('no etcd binary on PATH (Debian: etcd-server): etcd is skipped');
function findOnPath(name) {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : undefined;
}

/** The watchers of one size: 1 % broad (at least one), 9 % on a group of 10 keys, the rest on one key each. */
function watcherSpecs(n) {
  const broad = Math.max(1, Math.round(n * 0.01));
  const prefix = Math.min(n - broad, Math.round(n * 0.09));
  const key = n - broad - prefix;
  const specs = [];
  for (let j = 0; j < broad; j++) specs.push({ kind: 'broad', prefix: 'app/' });
  for (let j = 0; j < prefix; j++) {
    const g = Math.floor((j * GROUPS) / prefix);
    specs.push({ kind: 'prefix', prefix: `app/${groupName(g)}/`, group: g });
  }
  for (let j = 0; j < key; j++) {
    const k = Math.floor((j * KEYS) / key);
    specs.push({ kind: 'key', key: keyName(k), keyIdx: k });
  }
  return { specs, mix: { broad, prefix, key } };
}

// ---------------------------------------------------------------- servers

async function startRevkit(dir) {
  mkdirSync(join(dir, 'revkit'));
  mkdirSync(join(dir, 'probe'));
  const probeFile = join(dir, 'probe', 'memory.json');
  const profDir = PROF_DIR ? join(PROF_DIR, `revkit-${Date.now()}`) : undefined;
  const prof = profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
  const server = await spawnServer(process.execPath, [
    '--expose-gc', '--import', PROBE, ...prof,
    CLI, 'serve', '--store', `sqlite:${join(dir, 'revkit', 'revkit.db')}`, '--port', '0', '--admin-token', TOKEN,
  ], /at (http:\/\/\S+)/, { env: { ...process.env, REVKIT_GROWTH_PROBE: probeFile } });
  const origin = server.match;
  const auth = { authorization: `Bearer ${TOKEN}` };
  const paths = Array.from({ length: KEYS }, (_, i) => `/v1/kv/${encodeURIComponent(keyName(i))}`);
  const etags = new Array(KEYS).fill(undefined);
  return {
    name: 'revkit', server, origin, profDir, pid: server.child.pid,
    async write(client, i, phase, c, n) {
      const body = `{"t":${nowUs()},"p":${phase},"w":${c},"n":${n},"pad":"${PAD}"}`;
      const headers = { ...auth, 'content-type': 'application/json', ...(etags[i] === undefined ? { 'if-none-match': '*' } : { 'if-match': etags[i] }) };
      const res = await client.request({ method: 'PUT', path: paths[i], headers, body });
      await res.body.dump();
      if (res.statusCode !== 200 && res.statusCode !== 201) return res.statusCode;
      etags[i] = res.headers.etag;
      return { rev: Number(/\d+/.exec(res.headers.etag)[0]) };
    },
    async memory() {
      rmSync(probeFile, { force: true });
      process.kill(server.child.pid, 'SIGUSR2');
      const end = performance.now() + 30_000;
      while (!existsSync(probeFile)) {
        if (performance.now() > end) throw new Error('the memory probe of revkit serve did not answer');
        await sleep(20);
      }
      const m = JSON.parse(readFileSync(probeFile, 'utf8'));
      if (!m.gc) throw new Error('the revkit server runs without --expose-gc');
      return { rss: m.rss, heap: m.heapUsed, external: m.external };
    },
    async watcherCount() {
      const text = await get(origin, '/metrics', auth);
      return Number(/^revkit_watch_streams(?:\{\})?\s+(\d+)/m.exec(text)?.[1] ?? Number.NaN);
    },
  };
}

async function startEtcd(dir) {
  const [client, peer] = [await freePort(), await freePort()];
  const server = await spawnServer(etcdBinary, [
    '--name', 'growth', '--data-dir', join(dir, 'etcd'),
    '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `growth=http://127.0.0.1:${peer}`, '--initial-cluster-state', 'new',
    '--enable-pprof', // only for /debug/pprof/heap?gc=1: a forced GC before the heap is read
  ], /ready to serve client requests/);
  const origin = `http://127.0.0.1:${client}`;
  const keys = Array.from({ length: KEYS }, (_, i) => b64(keyName(i)));
  const revs = new Array(KEYS).fill(0);
  return {
    name: 'etcd', server, origin, pid: server.child.pid,
    async write(client, i, phase, c, n) {
      const value = b64(`{"t":${nowUs()},"p":${phase},"w":${c},"n":${n},"pad":"${PAD}"}`);
      const body = `{"compare":[{"key":"${keys[i]}","target":"MOD","result":"EQUAL","mod_revision":"${revs[i]}"}],"success":[{"request_put":{"key":"${keys[i]}","value":"${value}"}}]}`;
      const res = await client.request({ method: 'POST', path: '/v3/kv/txn', headers: { 'content-type': 'application/json' }, body });
      const text = await res.body.text();
      if (res.statusCode !== 200) return res.statusCode;
      const out = JSON.parse(text);
      if (!out.succeeded) return 'compare failed';
      revs[i] = Number(out.header.revision);
      return { rev: revs[i] };
    },
    async memory() {
      await get(origin, '/debug/pprof/heap?gc=1');
      const text = await get(origin, '/metrics');
      const heap = Number(/^go_memstats_heap_alloc_bytes\s+(\S+)/m.exec(text)?.[1]);
      return { rss: rssOf(server.child.pid), heap };
    },
    async watcherCount() {
      const text = await get(origin, '/metrics');
      return Number(/^etcd_debugging_mvcc_watcher_total\s+(\S+)/m.exec(text)?.[1] ?? Number.NaN);
    },
  };
}

function rssOf(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

async function get(origin, path, headers = {}) {
  const client = new Client(origin);
  try {
    const res = await client.request({ method: 'GET', path, headers });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`GET ${path}: ${res.statusCode} ${text.slice(0, 200)}`);
    return text;
  } finally {
    await client.close();
  }
}

// ---------------------------------------------------------------- writers

/**
 * WRITERS callers, one keep-alive connection each; caller c owns keys c, c + WRITERS, …
 * seed: every key written once; rate: paced to `rate` writes/s in all; otherwise closed loop.
 * counts: acknowledged writes per key (what the watchers must have been told);
 * acks: revision → when its write was acknowledged (µs, CLOCK_MONOTONIC).
 */
async function runWriters(sys, { phase, seconds = 0, rate, counts, acks, seed = false }) {
  const latencies = [];
  let acked = 0;
  const refused = {};
  const errors = {};
  const cpu0 = cpuSeconds(sys.pid);
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(sys.writerClients.map(async (client, c) => {
    const mine = sys.owned[c];
    for (let n = 0; ; n++) {
      if (seed ? n >= mine.length : performance.now() >= deadline) break;
      if (rate) {
        const due = t0 + ((n * WRITERS + c) / rate) * 1000;
        if (due >= deadline) break;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
      }
      const i = seed ? mine[n] : mine[sys.cursor[c]++ % mine.length];
      const ts = performance.now();
      try {
        const r = await sys.write(client, i, phase, c, n);
        if (typeof r === 'object') {
          if (acks) acks.set(r.rev, nowUs());
          acked++;
          latencies.push(performance.now() - ts);
          if (counts) counts[i]++;
        } else refused[r] = (refused[r] ?? 0) + 1;
      } catch (err) {
        const k = err?.code ?? err?.name ?? 'error';
        errors[k] = (errors[k] ?? 0) + 1;
      }
    }
  }));
  const elapsedMs = performance.now() - t0;
  const cpu1 = cpuSeconds(sys.pid);
  const sorted = Float64Array.from(latencies).sort();
  return {
    acked, elapsedMs: round(elapsedMs, 0), perSec: round(acked / (elapsedMs / 1000), 1),
    writeP50Ms: round(percentile(sorted, 50), 3), writeP99Ms: round(percentile(sorted, 99), 3),
    serverCpuShare: round((cpu1 - cpu0) / (elapsedMs / 1000), 3),
    serverCpuMsPerWrite: acked > 0 ? round(((cpu1 - cpu0) * 1000) / acked, 3) : null,
    refused, errors,
  };
}

// ---------------------------------------------------------------- client processes

function spawnClient(index) {
  const child = fork(CLIENT_SCRIPT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const pending = new Map();
  let nextId = 0;
  child.on('message', (m) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m);
    else p.reject(new Error(`client ${index}: ${m.error}`));
  });
  child.on('exit', (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`client ${index} exited (${code ?? signal})`));
    pending.clear();
  });
  return {
    child,
    ask(msg) {
      return new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        child.send({ ...msg, id });
      });
    },
  };
}

const clientsCpuUs = async (clients) => Promise.all(clients.map(async (c) => (await c.ask({ cmd: 'cpu' })).cpuUs));

/** Waits until every watcher holds exactly what was acknowledged on its keys (or the timeout). */
async function drain(clients, shares, counts, timeoutS) {
  const t0 = performance.now();
  const groupSums = () => {
    const g = new Float64Array(GROUPS);
    for (let i = 0; i < KEYS; i++) g[Math.floor(i / 10)] += counts[i];
    return g;
  };
  const groups = groupSums();
  const total = counts.reduce((a, b) => a + b, 0);
  const expected = (s) => (s.kind === 'broad' ? total : s.kind === 'prefix' ? groups[s.group] : counts[s.keyIdx]);
  for (;;) {
    const replies = await Promise.all(clients.map((c) => c.ask({ cmd: 'counts' })));
    let missing = 0;
    let extra = 0;
    let behind = 0;
    let open = 0;
    const ends = {};
    replies.forEach((r, ci) => {
      open += r.open;
      for (const [k, v] of Object.entries(r.ends)) ends[k] = (ends[k] ?? 0) + v;
      r.counts.forEach((got, wi) => {
        const want = expected(shares[ci][wi]);
        if (got < want) {
          missing += want - got;
          behind++;
        } else extra += got - want;
      });
    });
    const ms = performance.now() - t0;
    if (missing === 0 || ms > timeoutS * 1000) {
      return { ms: round(ms, 0), expectedDeliveries: shares.flat().reduce((s, w) => s + expected(w), 0), missing, watchersBehind: behind, extra, streamsOpen: open, streamEnds: ends };
    }
    await sleep(100);
  }
}

/** Merges the clients' delay histograms of one phase: p50/p99/max (ms) overall and per kind of watcher. */
function delays(stats, phase) {
  const byKind = { key: new Float64Array(BUCKETS), prefix: new Float64Array(BUCKETS), broad: new Float64Array(BUCKETS) };
  for (const s of stats) {
    for (const [kind, pairs] of Object.entries(s.hist[phase] ?? {})) for (const [i, n] of pairs) byKind[kind][i] += n;
  }
  const all = new Float64Array(BUCKETS);
  for (const h of Object.values(byKind)) h.forEach((n, i) => (all[i] += n));
  const summary = (h) => {
    const n = h.reduce((a, b) => a + b, 0);
    if (n === 0) return { samples: 0, p50Ms: null, p99Ms: null, maxMs: null };
    const at = (q) => {
      let acc = 0;
      for (let i = 0; i < h.length; i++) if ((acc += h[i]) >= Math.ceil(q * n)) return bucketUs(i) / 1000;
      return null;
    };
    let max = 0;
    h.forEach((c, i) => c > 0 && (max = i));
    return { samples: n, p50Ms: round(at(0.5), 3), p99Ms: round(at(0.99), 3), maxMs: round(bucketUs(max) / 1000, 3) };
  };
  return { ...summary(all), byKind: Object.fromEntries(Object.entries(byKind).map(([k, h]) => [k, summary(h)])) };
}

/**
 * The deliveries of the paced phase, one by one (ms): arrival at the client minus the writer's
 * stamp (sent → delivered), and minus the moment the writer had the answer to that revision's
 * write (acknowledged → delivered; negative: the watcher heard first).
 */
function pacedDelays(stats, acks) {
  const sent = { key: [], prefix: [], broad: [] };
  const acked = { key: [], prefix: [], broad: [] };
  let unmatched = 0;
  for (const s of stats) {
    for (const [kind, { rev, t, at }] of Object.entries(s.joined)) {
      for (let i = 0; i < rev.length; i++) {
        sent[kind].push((at[i] - t[i]) / 1000);
        const a = acks.get(rev[i]);
        if (a === undefined) unmatched++;
        else acked[kind].push((at[i] - a) / 1000);
      }
    }
  }
  const summary = (xs) => {
    const sorted = Float64Array.from(xs).sort();
    if (sorted.length === 0) return { samples: 0, p50Ms: null, p99Ms: null, maxMs: null, minMs: null };
    return {
      samples: sorted.length, p50Ms: round(percentile(sorted, 50), 3), p99Ms: round(percentile(sorted, 99), 3),
      maxMs: round(sorted[sorted.length - 1], 3), minMs: round(sorted[0], 3),
    };
  };
  const both = (byKind) => ({ ...summary(Object.values(byKind).flat()), byKind: Object.fromEntries(Object.entries(byKind).map(([k, xs]) => [k, summary(xs)])) });
  const ack = both(acked);
  const all = Object.values(acked).flat();
  return { ...both(sent), ackToDelivery: { ...ack, heardBeforeWriter: all.length ? round(all.filter((x) => x < 0).length / all.length, 3) : null, unmatched } };
}

// ---------------------------------------------------------------- one server, one size

async function runOne(system, n, root) {
  const dir = mkdtempSync(join(root, `${system}-${n}-`));
  const loadStart = os.loadavg().map((x) => round(x));
  const sys = system === 'revkit' ? await startRevkit(dir) : await startEtcd(dir);
  started.add(sys.server);
  const clients = [];
  const step = (s) => process.stdout.write(`  ${system} ${n}: ${s}\n`);
  try {
    sys.writerClients = Array.from({ length: WRITERS }, () => new Client(sys.origin, { pipelining: 1, keepAliveTimeout: 60_000 }));
    sys.owned = Array.from({ length: WRITERS }, (_, c) => Array.from({ length: Math.ceil((KEYS - c) / WRITERS) }, (_, j) => c + j * WRITERS));
    sys.cursor = Array.from({ length: WRITERS }, () => 0);
    const seed = await runWriters(sys, { phase: 9, seed: true });
    if (seed.acked !== KEYS) throw new Error(`${system}: seeding acknowledged ${seed.acked} of ${KEYS} keys (${JSON.stringify({ refused: seed.refused, errors: seed.errors })})`);
    const noneBefore = await runWriters(sys, { phase: 0, seconds: TPUT_S });
    step(`${noneBefore.perSec} writes/s with no watcher`);
    await sleep(500);
    const before = await sys.memory();

    // the watchers
    const { specs, mix } = watcherSpecs(n);
    const shares = Array.from({ length: CLIENTS }, () => []);
    specs.forEach((s, i) => shares[i % CLIENTS].push(s));
    for (let i = 0; i < CLIENTS; i++) if (shares[i].length > 0) clients.push(spawnClient(i));
    const used = shares.filter((s) => s.length > 0);
    const t0 = performance.now();
    const opens = await Promise.all(clients.map((c, i) => c.ask({
      cmd: 'open', joinPhase: 1, system, origin: sys.origin, token: TOKEN, localAddress: `127.0.0.${10 + i}`, watchers: used[i], concurrency: OPEN_CONCURRENCY,
    })));
    const open = {
      seconds: round((performance.now() - t0) / 1000),
      opened: opens.reduce((s, o) => s + o.opened, 0),
      failed: opens.reduce((s, o) => s + o.failed, 0),
      errors: Object.assign({}, ...opens.map((o) => o.errors)),
    };
    await sleep(2000);
    open.serverCount = await sys.watcherCount();
    const afterConnect = await sys.memory();
    step(`${open.opened} watchers open in ${open.seconds} s (server counts ${open.serverCount}; ${open.failed} failed), RSS ${(before.rss / 2 ** 20).toFixed(1)} → ${(afterConnect.rss / 2 ** 20).toFixed(1)} MB`);

    // delay at a steady rate
    const counts = new Float64Array(KEYS);
    let cpu0 = await clientsCpuUs(clients);
    const acks = new Map();
    const paced = await runWriters(sys, { phase: 1, seconds: DELAY_S, rate: RATE, counts, acks });
    let cpu1 = await clientsCpuUs(clients);
    const pacedClientCpu = Math.max(...cpu1.map((c, i) => (c - cpu0[i]) / 1000 / paced.elapsedMs));
    const pacedDrain = await drain(clients, used, counts, DRAIN_TIMEOUT_S);
    const afterLoad = await sys.memory();
    step(`paced ${paced.perSec} writes/s: drained ${pacedDrain.ms} ms after, ${pacedDrain.missing} deliveries missing`);

    // writes/s with the watchers
    cpu0 = await clientsCpuUs(clients);
    const watching = await runWriters(sys, { phase: 2, seconds: TPUT_S, counts });
    cpu1 = await clientsCpuUs(clients);
    const watchingClientCpu = Math.max(...cpu1.map((c, i) => (c - cpu0[i]) / 1000 / watching.elapsedMs));
    const watchingDrain = await drain(clients, used, counts, DRAIN_TIMEOUT_S);
    step(`${watching.perSec} writes/s while watched: drained ${watchingDrain.ms} ms after, ${watchingDrain.missing} deliveries missing`);
    const stats = await Promise.all(clients.map((c) => c.ask({ cmd: 'stats' })));
    await Promise.all(clients.map((c) => c.ask({ cmd: 'close' })));
    for (const c of clients) c.child.disconnect();
    const closeEnd = performance.now() + 30_000;
    let left = await sys.watcherCount();
    while (left > 0 && performance.now() < closeEnd) {
      await sleep(200);
      left = await sys.watcherCount();
    }
    const noneAfter = await runWriters(sys, { phase: 3, seconds: TPUT_S });

    const perWatcher = (m) => ({ rssKB: round((m.rss - before.rss) / n / 1024, 2), heapKB: round((m.heap - before.heap) / n / 1024, 2) });
    const none = (noneBefore.perSec + noneAfter.perSec) / 2;
    return {
      loadAverageStart: loadStart, loadAverageEnd: os.loadavg().map((x) => round(x)),
      mix, open, watchersLeftAfterClose: left,
      memory: {
        before, afterConnect, afterLoad,
        perWatcher: perWatcher(afterConnect), perWatcherAfterLoad: perWatcher(afterLoad),
      },
      delay: {
        targetRate: RATE, writes: paced, clientCoreShareMax: round(pacedClientCpu, 3), drain: pacedDrain,
        ...pacedDelays(stats, acks),
      },
      writesPerSec: {
        none: round(none, 1), watching: watching.perSec, ratio: round(watching.perSec / none, 3),
        noneBefore, noneAfter, watchingRun: watching,
        clientCoreShareMax: round(watchingClientCpu, 3), drain: watchingDrain, delayWhileSaturated: delays(stats, 2),
      },
    };
  } finally {
    for (const c of clients) if (c.child.exitCode === null) c.child.kill('SIGKILL');
    await Promise.all((sys.writerClients ?? []).map((c) => c.close().catch(() => undefined)));
    await sys.server.stop();
    started.delete(sys.server);
    rmSync(dir, { recursive: true, force: true });
    if (sys.profDir && existsSync(sys.profDir)) {
      const file = readdirSync(sys.profDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(sys.profDir, f))[0];
      if (file) {
        console.log(`  revkit ${n}: CPU profile ${file}; top self time:`);
        for (const r of topSelfTime(file, 12)) console.log(`    ${(r.share * 100).toFixed(1).padStart(5)}%  ${r.name}  ${r.where}`);
      }
    }
  }
}

// ---------------------------------------------------------------- main

const started = new Set();
const root = mkdtempSync(join(os.tmpdir(), 'revkit-growth-watchers-'));
process.once('SIGINT', () => {
  for (const s of started) s.child.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
  process.exit(130);
});
const machine = machineInfo();
const etcdVersion = etcdBinary ? spawnSync(etcdBinary, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0].replace(/^etcd Version: /, '') : null;
const systems = etcdBinary ? ['revkit', 'etcd'] : ['revkit'];
const runStart = performance.now();
const results = [];
console.log(`growth, watchers: sizes ${SIZES.join(', ')}; ${CLIENTS} client processes; ${WRITERS} writers; paced ${RATE} writes/s for ${DELAY_S} s; throughput ${TPUT_S} s; ${KEYS} keys; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
try {
  for (const [i, n] of SIZES.entries()) {
    const row = { watchers: n };
    for (const system of i % 2 === 0 ? systems : [...systems].reverse()) row[system] = await runOne(system, n, root);
    results.push(row);
  }
} finally {
  for (const s of started) await s.stop();
  rmSync(root, { recursive: true, force: true });
}

const result = {
  at: new Date().toISOString(),
  machine, etcd: etcdVersion, fdLimit, minutes: round((performance.now() - runStart) / 60000, 1),
  parameters: {
    sizes: SIZES, clientProcesses: CLIENTS, writers: WRITERS, pacedRate: RATE, delaySeconds: DELAY_S, throughputSeconds: TPUT_S, keys: KEYS, valueBytes: 64 + 40,
    mix: 'per size: 1 % (at least one) watch the prefix app/ (every write); 9 % watch a group prefix app/gNNNN/ (10 of the keys); 90 % watch one key each; keys spread evenly',
    revkit: 'revkit serve, sqlite (WAL, synchronous=FULL, group commit), --admin-token; watchers GET /v1/watch (SSE), one connection each; writes PUT /v1/kv/<key> with If-Match',
    etcd: 'etcd single member, default fsync; watchers POST /v3/watch on the JSON gateway (one HTTP connection and one gRPC watch stream each); writes POST /v3/kv/txn compare mod_revision then put',
    delay: 'paced phase, every delivery: arrival of the chunk at the client process minus the writer\'s stamp in the value, read just before the write was sent (CLOCK_MONOTONIC, shared by the processes; includes the commit and its fsync), exact percentiles; ackToDelivery: arrival minus the moment the writer had the answer to that revision\'s write (negative: the watcher heard first); delayWhileSaturated: sent → delivered in the unpaced phase, 2 %-wide histogram buckets, upper edges',
    memory: 'after − before, divided by the watchers; before: after the no-watcher writes; after: 2 s after the last watcher opened, no writes meanwhile; heap = live heap after a forced GC (node heapUsed; Go heap_alloc after /debug/pprof/heap?gc=1)',
    writesPerSec: 'closed loop, every write a CAS on the revision its writer last saw; "none" = mean of the runs before the watchers opened and after they closed',
  },
  sizes: results,
};
mkdirSync(OUT_DIR, { recursive: true });
writeFileSync(join(OUT_DIR, 'growth-watchers.json'), `${JSON.stringify(result, null, 2)}\n`);

// ---------------------------------------------------------------- report
const rows = [['watchers', 'server', 'open', 'KB/watcher RSS', 'KB/watcher heap', 'paced writes/s', 'sent→event p50 ms', 'p99 ms', 'ack→event p50', 'p99', 'write p50', 'p99', 'missing', 'writes/s none', 'watched', 'ratio', 'srv CPU ms/write none→watched', 'client core max']];
for (const r of results) {
  for (const s of systems) {
    const x = r[s];
    rows.push([r.watchers, s, `${x.open.opened}/${r.watchers}`, x.memory.perWatcher.rssKB, x.memory.perWatcher.heapKB, x.delay.writes.perSec, x.delay.p50Ms, x.delay.p99Ms, x.delay.ackToDelivery.p50Ms, x.delay.ackToDelivery.p99Ms, x.delay.writes.writeP50Ms, x.delay.writes.writeP99Ms,
      x.delay.drain.missing + x.writesPerSec.drain.missing, x.writesPerSec.none, x.writesPerSec.watching, x.writesPerSec.ratio,
      `${x.writesPerSec.noneBefore.serverCpuMsPerWrite}→${x.writesPerSec.watchingRun.serverCpuMsPerWrite}`, Math.max(x.delay.clientCoreShareMax, x.writesPerSec.clientCoreShareMax)]);
  }
}
console.log(table(rows));
console.log(`${result.minutes} min; results in ${join(OUT_DIR, 'growth-watchers.json')}`);

const COLORS = { revkit: '#4e79a7', etcd: '#e15759' };
const sub = `${machine.cores} cores, load average at start ${machine.loadAverageAtStart.join(' / ')}; revkit ${machine.commit}, etcd ${etcdVersion ?? '-'}; mix: 1 % broad prefix, 9 % group prefix, 90 % one key`;
const pts = (s, f) => results.map((r) => [r.watchers, r[s] ? f(r[s]) : null]);
writeFileSync(join(OUT_DIR, 'growth-watchers-memory.svg'), lineChart({
  title: 'Server memory per watcher (idle watchers, after − before)', notes: [sub, 'heap: live after a forced GC (node heapUsed, Go heap_alloc); points ≤ 0 (noise at 1 watcher) are left out'],
  xLabel: 'concurrent watchers (log)', yLabel: 'KB per watcher (log)', logY: true, unit: ' KB',
  series: systems.flatMap((s) => [
    { name: `${s} RSS`, color: COLORS[s], points: pts(s, (x) => x.memory.perWatcher.rssKB) },
    { name: `${s} heap`, color: COLORS[s], dash: '6 4', points: pts(s, (x) => x.memory.perWatcher.heapKB) },
  ]),
}));
writeFileSync(join(OUT_DIR, 'growth-watchers-delay.svg'), lineChart({
  title: `Delivery delay: write sent → event at the watcher (writers paced to ${RATE} writes/s)`,
  notes: [sub, 'the writer\'s stamp in the value and the watcher\'s arrival read on one clock (CLOCK_MONOTONIC); includes the write\'s commit (fsync)', 'a server that cannot keep the pace was measured at the rate it reached (see the JSON: delay.writes.perSec)'],
  xLabel: 'concurrent watchers (log)', yLabel: 'ms (log)', logY: true, unit: ' ms',
  series: systems.flatMap((s) => [
    { name: `${s} p99`, color: COLORS[s], points: pts(s, (x) => x.delay.p99Ms) },
    { name: `${s} p50`, color: COLORS[s], dash: '6 4', points: pts(s, (x) => x.delay.p50Ms) },
  ]),
}));
writeFileSync(join(OUT_DIR, 'growth-watchers-writes.svg'), lineChart({
  title: `Writes/s, ${WRITERS} CAS writers, while the watchers watch`, notes: [sub, 'dashed: the same server with no watcher (mean of before and after)'],
  xLabel: 'concurrent watchers (log)', yLabel: 'acknowledged writes/s (log)', logY: true, unit: ' writes/s',
  series: systems.flatMap((s) => [
    { name: `${s} watched`, color: COLORS[s], points: pts(s, (x) => x.writesPerSec.watching) },
    { name: `${s} no watcher`, color: COLORS[s], dash: '6 4', points: pts(s, (x) => x.writesPerSec.none) },
  ]),
}));
const bad = results.flatMap((r) => systems.filter((s) => r[s].open.failed > 0 || r[s].delay.drain.missing > 0 || r[s].writesPerSec.drain.missing > 0).map((s) => `${s} at ${r.watchers}`));
if (bad.length > 0) console.log(`failed opens or undelivered events: ${bad.join(', ')} (see the JSON)`);
