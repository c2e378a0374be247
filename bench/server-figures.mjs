// The request path of `revkit serve` against a bare fastify route (issue #15, point 3):
// 64 undici keep-alive connections, each on its own key, each PUT guarded by
// If-Match: <the ETag its previous PUT returned>, against
//   - `revkit serve --store memory:` (its own process, auth on, every documented check), and
//   - a bare fastify route of the same fastify version in its own process, answering the
//     same requests (JSON body, If-Match / If-None-Match against a Map, ETag, JSON reply)
// in alternating rounds of one run, from this one client process. Goal: revkit ≥ 0.8× bare.
// A third, reference row — the bare route keeping its values in revkit's MemoryStore and
// sending revkit's entry headers — splits the gap into the store and documented headers
// on one side and revkit's request path (auth, metrics, keys, preconditions) on the other.
// Every key's final value is checked against the writes acknowledged on it.
// Usage: npm run build && node bench/server-figures.mjs [--seconds 3] [--rounds 5] [--connections 64]
//          [--store memory:] [--cpu-prof DIR (profile both servers)] [--json out.json]
//          [--no-decompose (leave out the reference row: the bare route over revkit's MemoryStore with revkit's entry headers)]
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { flagArgs, median } from './lib/figures.mjs';
import { conditionalPut, runLoad, spawnServer, table } from './lib/http-client.mjs';

const TOKEN = 'bench-admin-token-0123456789';
const GOAL = 0.8;

if (process.argv.includes('--bare-server')) await bareServer();
else await main();

/**
 * The bare route: what a conditional PUT costs in fastify with nothing of revkit around it.
 * With --with-store (the reference row) it keeps its values in revkit's
 * MemoryStore (put guarded by ifRevision / ifAbsent) and sends revkit's entry headers, so
 * the rest of the gap to revkit serve is revkit's request path itself.
 */
async function bareServer() {
  const { default: Fastify } = await import('fastify');
  const withStore = process.argv.includes('--with-store');
  const store = withStore ? await (await import('../dist/index.js')).open('memory:') : undefined;
  const app = Fastify({ logger: false });
  const values = new Map();
  let revision = 0;
  const tagOf = (e) => `"${e.revision}"`;
  const conflict = (reply) => reply.code(412).send({ code: 'ERR_CONFLICT' });
  app.put('/v1/kv/*', async (req, reply) => {
    const key = req.params['*'];
    const ifMatch = req.headers['if-match'];
    const ifNoneMatch = req.headers['if-none-match'];
    let entry;
    if (store) {
      const m = ifMatch === undefined ? null : /^"([0-9]+)"$/.exec(ifMatch);
      try {
        entry = await store.put(key, req.body, m ? { ifRevision: Number(m[1]) } : { ifAbsent: true });
      } catch {
        return conflict(reply);
      }
      reply.header('revkit-created-revision', String(entry.createdRevision));
      reply.header('revkit-updated-at', String(entry.updatedAt));
      reply.header('last-modified', new Date(entry.updatedAt).toUTCString());
      reply.header('cache-control', 'no-cache');
    } else {
      const current = values.get(key);
      if ((ifMatch !== undefined && (current === undefined || ifMatch !== tagOf(current))) || (ifNoneMatch === '*' && current !== undefined)) return conflict(reply);
      entry = { key, value: req.body, revision: ++revision, createdRevision: current?.createdRevision ?? revision, updatedAt: Date.now() };
      values.set(key, entry);
    }
    reply.header('etag', tagOf(entry));
    return reply.code(entry.createdRevision === entry.revision ? 201 : 200).send({ key, revision: entry.revision, createdRevision: entry.createdRevision, updatedAt: entry.updatedAt });
  });
  app.get('/v1/kv/*', async (req, reply) => {
    const entry = store ? await store.get(req.params['*']) : values.get(req.params['*']);
    if (!entry) return reply.code(404).send({ code: 'ERR_NOT_FOUND' });
    reply.header('etag', tagOf(entry));
    return entry.value;
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  process.stdout.write(`bare fastify listening at ${url}\n`);
  process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
}

async function main() {
  const args = flagArgs();
  const seconds = Number(args.seconds ?? 3);
  const rounds = Number(args.rounds ?? 5);
  const connections = Number(args.connections ?? 64);
  const store = args.store ?? 'memory:';
  const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
  const self = fileURLToPath(import.meta.url);
  const profile = args['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', args['cpu-prof']] : [];

  const revkit = await spawnServer(process.execPath, [...profile, cli, 'serve', '--store', store, '--port', '0', '--admin-token', TOKEN], /at (http:\/\/\S+)/);
  const bare = await spawnServer(process.execPath, [...profile, self, '--bare-server'], /at (http:\/\/\S+)/);
  const decompose = !process.argv.includes('--no-decompose');
  const withStore = decompose ? await spawnServer(process.execPath, [self, '--bare-server', '--with-store'], /at (http:\/\/\S+)/) : undefined;
  if (profile.length) console.log(`CPU profiles in ${args['cpu-prof']}: revkit pid ${revkit.child.pid}, bare fastify pid ${bare.child.pid}`);
  const targets = [
    { name: 'bare fastify route', origin: bare.match, serverPid: bare.child.pid, load: conditionalPut({ prefix: 'bench', token: TOKEN, connections }), runs: [] },
    { name: `revkit serve (${store})`, origin: revkit.match, serverPid: revkit.child.pid, load: conditionalPut({ prefix: 'bench', token: TOKEN, connections }), runs: [] },
  ];
  // reference row, not part of the ratio: the bare route plus revkit's store and entry headers
  if (withStore) targets.push({ name: 'bare route + MemoryStore.put + entry headers', origin: withStore.match, serverPid: withStore.child.pid, load: conditionalPut({ prefix: 'bench', token: TOKEN, connections }), runs: [] });
  const servers = [revkit, bare, ...(withStore ? [withStore] : [])];
  const ratios = [];
  process.once('SIGINT', () => {
    for (const s of servers) s.child.kill('SIGKILL');
    process.exit(130);
  });
  try {
    for (const t of targets) await runLoad({ origin: t.origin, seconds: 2, ...t.load }); // warm-up
    for (let round = 0; round < rounds; round++) {
      // alternate the order so drift on a shared machine hits both alike
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const t of order) t.runs.push(await runLoad({ origin: t.origin, serverPid: t.serverPid, seconds, ...t.load }));
      ratios.push(targets[1].runs[round].perSec / targets[0].runs[round].perSec);
    }
    for (const t of targets) t.verify = await t.load.verify(t.origin);
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }

  const summary = targets.map((t) => ({
    name: t.name,
    perSec: median(t.runs.map((r) => r.perSec)),
    p50Ms: median(t.runs.map((r) => r.p50Ms)),
    p99Ms: median(t.runs.map((r) => r.p99Ms)),
    serverCpuUs: median(t.runs.map((r) => r.serverCpuUs ?? Number.NaN)),
    clientCoreShare: median(t.runs.map((r) => r.clientCoreShare)),
    refused: t.runs.reduce((s, r) => s + r.refused, 0),
    errors: t.runs.reduce((s, r) => s + Object.values(r.errors).reduce((a, b) => a + b, 0), 0),
    statuses: t.load.statuses(),
    verify: { keys: t.verify.keys, acked: t.verify.acked, mismatches: t.verify.mismatches.length },
    rounds: t.runs.map((r) => Math.round(r.perSec)),
  }));
  const ratio = median(ratios);
  console.log(`conditional PUT, ${connections} keep-alive connections (undici), each on its own key; ${rounds} alternating rounds of ${seconds} s; node ${process.version}`);
  console.log(table([
    ['target', 'PUT/s (median)', 'rounds', 'p50 ms', 'p99 ms', 'server CPU µs/PUT', 'client core', 'refused', 'errors', 'lost/duplicated'],
    ...summary.map((s) => [s.name, s.perSec.toFixed(0), s.rounds.join(' / '), s.p50Ms.toFixed(2), s.p99Ms.toFixed(2), s.serverCpuUs.toFixed(0), s.clientCoreShare.toFixed(2), s.refused, s.errors, `${s.verify.mismatches} of ${s.verify.keys} keys`]),
  ]));
  console.log(`revkit / bare fastify: ${ratio.toFixed(2)} (rounds ${ratios.map((r) => r.toFixed(2)).join(', ')}); goal ≥ ${GOAL}: ${ratio >= GOAL ? 'met' : 'NOT met'}`);
  console.log(`server CPU per PUT, bare / revkit: ${(summary[0].serverCpuUs / summary[1].serverCpuUs).toFixed(2)}`);
  if (withStore) {
    const storeRatio = median(targets[1].runs.map((r, i) => r.perSec / targets[2].runs[i].perSec));
    console.log(`revkit / (bare route + MemoryStore.put + entry headers): ${storeRatio.toFixed(2)}; server CPU per PUT, that route / revkit: ${(summary[2].serverCpuUs / summary[1].serverCpuUs).toFixed(2)}`
      + ' (the part of the gap that is revkit\'s request path rather than its store and documented headers)');
  }
  if (args.json) writeFileSync(args.json, `${JSON.stringify({ at: new Date().toISOString(), node: process.version, connections, seconds, rounds, store, summary, ratios, ratio, goal: GOAL }, null, 2)}\n`);
  const bad = summary.filter((s) => s.refused > 0 || s.errors > 0 || s.verify.mismatches > 0);
  if (bad.length > 0) {
    console.error(`unexpected refusals, errors or lost writes: ${JSON.stringify(bad.map((s) => ({ name: s.name, statuses: s.statuses, errors: s.errors, mismatches: s.verify.mismatches })))}`);
    process.exitCode = 1;
  }
}
