// `revkit serve` on SQLite (WAL, synchronous=FULL) against etcd (issue #15, "Against etcd"):
// the same conditional-write workload, through the same HTTP client (undici keep-alive,
// bench/lib/http-client.mjs), in alternating rounds of one run:
//   - 64 connections, each on its own key; every write is guarded by the revision its
//     previous write returned (revkit: If-Match: "<ETag>" / If-None-Match: * on a PUT;
//     etcd: a txn over gRPC (the etcd3 client, one HTTP/2 channel shared by all, as clientv3
//     shares one) comparing mod_revision == <revision>, then put — mod_revision 0 for a key
//     that does not exist yet; the same txn through etcd's JSON gateway (POST /v3/kv/txn,
//     64 undici connections) as a reference row;
//   - both servers are private, started here on free ports with data in a temp folder
//     on the same disk, fsync on (etcd's default; SQLite FULL);
//   - after the rounds every key's stored value is compared with the writes acknowledged
//     on it: nothing lost, nothing applied twice.
// Goals (issue 26): revkit ≥ 2.5× etcd's writes/s (the faster of gRPC and the gateway, round by round), and revkit's p99 ≤ etcd's. Without an etcd binary on
// PATH (Debian: etcd-server) the comparison is skipped and says so.
// A reference row, outside the ratio, runs the same server with ?groupCommit=false (one
// transaction and fsync per write, as before group commit); --no-reference leaves it out.
// Usage: npm run build && node bench/etcd-figures.mjs [--seconds 5] [--rounds 3] [--connections 64]
//          [--etcd /usr/bin/etcd] [--cpu-prof DIR (profile the revkit server)] [--json out.json] [--no-reference]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flagArgs, median } from './lib/figures.mjs';
import { conditionalPut, fetchOnce, freePort, runLoad, spawnServer, table } from './lib/http-client.mjs';
import { etcdGrpcConditionalPut } from './lib/etcd-grpc.mjs';

const args = flagArgs();
const SECONDS = Number(args.seconds ?? 5);
const ROUNDS = Number(args.rounds ?? 3);
const CONNECTIONS = Number(args.connections ?? 64);
const TOKEN = 'bench-admin-token-0123456789';
const GOAL = 2.5;

const etcdBinary = args.etcd ?? findOnPath('etcd');
if (etcdBinary === undefined) {
  console.log('etcd: no etcd binary on PATH (Debian: apt-get install etcd-server) — the comparison with etcd is skipped');
  process.exit(0);
}

function findOnPath(name) {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : undefined;
}

const b64 = (text) => Buffer.from(text, 'utf8').toString('base64');

/**
 * The same cycle against etcd's JSON gateway: connection i owns key `<prefix>/<i>`;
 * each write is a transaction that puts the next value only if the key's mod_revision
 * is still the one its previous write returned (0: the key does not exist yet).
 */
function etcdConditionalPut({ prefix, connections, padding = 100 }) {
  const pad = 'x'.repeat(padding);
  const contexts = Array.from({ length: connections }, (_, i) => ({ key: b64(`${prefix}/${i}`), revision: 0, acked: 0, statuses: {} }));
  return {
    contexts,
    request(ctx) {
      const value = b64(`{"n":${ctx.acked + 1},"payload":"${pad}"}`);
      const body = `{"compare":[{"key":"${ctx.key}","target":"MOD","result":"EQUAL","mod_revision":"${ctx.revision}"}],`
        + `"success":[{"request_put":{"key":"${ctx.key}","value":"${value}"}}]}`;
      return { method: 'POST', path: '/v3/kv/txn', headers: { 'content-type': 'application/json' }, body };
    },
    response(ctx, status, _headers, text) {
      const outcome = status === 200 ? JSON.parse(text) : undefined;
      const label = outcome === undefined ? status : outcome.succeeded ? 'succeeded' : 'compare failed';
      ctx.statuses[label] = (ctx.statuses[label] ?? 0) + 1;
      if (!outcome?.succeeded) return false;
      ctx.revision = Number(outcome.header.revision);
      ctx.acked++;
      return true;
    },
    async verify(origin) {
      const mismatches = [];
      for (const ctx of contexts) {
        if (ctx.acked === 0) continue;
        const r = await fetchOnce(origin, { method: 'POST', path: '/v3/kv/range', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: ctx.key }) });
        const kv = JSON.parse(r.text).kvs?.[0];
        const n = kv ? JSON.parse(Buffer.from(kv.value, 'base64').toString('utf8')).n : undefined;
        if (n !== ctx.acked || Number(kv?.mod_revision) !== ctx.revision) mismatches.push({ key: ctx.key, acked: ctx.acked, stored: n });
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

async function startEtcd(dir) {
  const [client, peer] = [await freePort(), await freePort()];
  const version = spawnSync(etcdBinary, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0];
  const server = await spawnServer(etcdBinary, [
    '--name', 'bench', '--data-dir', join(dir, 'etcd'),
    '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `bench=http://127.0.0.1:${peer}`, '--initial-cluster-state', 'new',
  ], /ready to serve client requests/);
  return { ...server, origin: `http://127.0.0.1:${client}`, version };
}

async function startRevkit(dir, { groupCommit = true } = {}) {
  const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
  const profile = args['cpu-prof'] && groupCommit ? ['--cpu-prof', '--cpu-prof-dir', args['cpu-prof']] : [];
  const store = groupCommit ? `sqlite:${join(dir, 'revkit.db')}` : `sqlite:${join(dir, 'revkit-single.db')}?groupCommit=false`;
  const server = await spawnServer(process.execPath, [...profile, cli, 'serve', '--store', store, '--port', '0', '--admin-token', TOKEN], /at (http:\/\/\S+)/);
  return { ...server, origin: server.match };
}

const dir = mkdtempSync(join(tmpdir(), 'revkit-etcd-bench-'));
const started = [];
// Interrupted: take the private servers down too (the finally below does it otherwise).
process.once('SIGINT', () => {
  for (const s of started) s.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  process.exit(130);
});
let targets;
const ratios = [];
try {
  const etcd = await startEtcd(dir);
  started.push(etcd);
  const revkit = await startRevkit(dir);
  started.push(revkit);
  const etcdVersion = etcd.version.replace(/^etcd Version: /, '');
  // etcd's gRPC API (what its clients use) and its JSON gateway; the ratio is against the faster of the two, round by round.
  targets = [
    { name: `etcd ${etcdVersion} (gRPC, etcd3 client, txn)`, server: etcd, load: etcdGrpcConditionalPut({ endpoint: etcd.origin, prefix: 'grpc', connections: CONNECTIONS }), runs: [] },
    { name: 'revkit serve (SQLite FULL)', server: revkit, load: conditionalPut({ prefix: 'bench', token: TOKEN, connections: CONNECTIONS }), runs: [] },
    { name: `etcd ${etcdVersion} (JSON gateway, txn)`, server: etcd, load: etcdConditionalPut({ prefix: 'bench', connections: CONNECTIONS }), runs: [] },
  ];
  if (!process.argv.includes('--no-reference')) {
    // reference row, not part of the ratio: one transaction (one fsync) per write, as before group commit
    const single = await startRevkit(dir, { groupCommit: false });
    started.push(single);
    targets.push({ name: 'revkit serve (SQLite FULL, groupCommit=false)', server: single, load: conditionalPut({ prefix: 'bench', token: TOKEN, connections: CONNECTIONS }), runs: [] });
  }
  const runOnce = (t, options) => (t.load.run ? t.load.run(options) : runLoad({ origin: t.server.origin, ...t.load, ...options }));
  for (const t of targets) await runOnce(t, { seconds: 2 }); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    // alternate the order so drift on a shared machine hits both alike
    for (const t of round % 2 === 0 ? targets : [...targets].reverse()) {
      t.runs.push(await runOnce(t, { serverPid: t.server.child.pid, seconds: SECONDS }));
    }
    // Against the faster of etcd's two ways in: from Node, the gRPC client (grpc-js) can use a whole core
    // before etcd does, so either path alone may understate etcd.
    ratios.push(targets[1].runs[round].perSec / Math.max(targets[0].runs[round].perSec, targets[2].runs[round].perSec));
  }
  for (const t of targets) t.verify = await t.load.verify(t.server.origin);
} finally {
  for (const t of targets ?? []) t.load.close?.();
  await Promise.all(started.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
}

const summary = targets.map((t) => ({
  name: t.name,
  writesPerSec: median(t.runs.map((r) => r.perSec)),
  p50Ms: median(t.runs.map((r) => r.p50Ms)),
  p99Ms: median(t.runs.map((r) => r.p99Ms)),
  serverCpuUs: median(t.runs.map((r) => r.serverCpuUs ?? Number.NaN)),
  clientCoreShare: median(t.runs.map((r) => r.clientCoreShare)),
  rounds: t.runs.map((r) => Math.round(r.perSec)),
  refused: t.runs.reduce((s, r) => s + r.refused, 0),
  errors: t.runs.reduce((s, r) => s + Object.values(r.errors).reduce((a, b) => a + b, 0), 0),
  statuses: t.load.statuses(),
  verify: { keys: t.verify.keys, acked: t.verify.acked, mismatches: t.verify.mismatches.length },
}));
const [etcd, revkit] = summary;
const ratio = median(ratios);
const p99Met = revkit.p99Ms <= etcd.p99Ms;
console.log(`conditional writes, ${CONNECTIONS} keep-alive connections (undici), each on its own key, each guarded by the revision its previous write returned; ${ROUNDS} alternating rounds of ${SECONDS} s; node ${process.version}`);
console.log(table([
  ['target', 'writes/s (median)', 'rounds', 'p50 ms', 'p99 ms', 'server CPU µs/write', 'client core', 'refused', 'errors', 'lost/duplicated'],
  ...summary.map((s) => [s.name, s.writesPerSec.toFixed(0), s.rounds.join(' / '), s.p50Ms.toFixed(2), s.p99Ms.toFixed(2), s.serverCpuUs.toFixed(0), s.clientCoreShare.toFixed(2), s.refused, s.errors, `${s.verify.mismatches} of ${s.verify.keys} keys`]),
]));
console.log(`revkit / etcd writes/s (the faster of gRPC and the gateway, each round): ${ratio.toFixed(2)} (rounds ${ratios.map((r) => r.toFixed(2)).join(', ')}); goal ≥ ${GOAL}: ${ratio >= GOAL ? 'met' : 'NOT met'}`);
console.log(`p99: revkit ${revkit.p99Ms.toFixed(2)} ms, etcd ${etcd.p99Ms.toFixed(2)} ms; goal revkit ≤ etcd: ${p99Met ? 'met' : 'NOT met'}`);
const against = (i) => median(targets[i].runs.map((r, round) => targets[1].runs[round].perSec / r.perSec));
console.log(`revkit / etcd gRPC: ${against(0).toFixed(2)}× (etcd's client used ${summary[0].clientCoreShare.toFixed(2)} of a core); revkit / etcd JSON gateway: ${against(2).toFixed(2)}×`);
if (summary[3]) {
  const single = median(targets[3].runs.map((r, i) => r.perSec / targets[0].runs[i].perSec));
  console.log(`without group commit (reference): ${single.toFixed(2)}× etcd (gRPC); group commit / one transaction per write: ${(revkit.writesPerSec / summary[3].writesPerSec).toFixed(2)}`);
}
if (args.json) {
  writeFileSync(args.json, `${JSON.stringify({ at: new Date().toISOString(), node: process.version, connections: CONNECTIONS, seconds: SECONDS, rounds: ROUNDS, summary, ratios, ratio, goal: GOAL, p99Met }, null, 2)}\n`);
}
const bad = summary.filter((s) => s.refused > 0 || s.errors > 0 || s.verify.mismatches > 0);
if (bad.length > 0) {
  console.error(`unexpected refusals, errors or lost writes: ${JSON.stringify(bad.map((s) => ({ name: s.name, statuses: s.statuses, errors: s.errors, mismatches: s.verify.mismatches })))}`);
  process.exitCode = 1;
}
