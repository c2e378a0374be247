import { afterEach, describe, expect, it } from 'vitest';
import { DataLostError, UnsupportedError, type ReplicationState } from '../src/core/index.js';
import { MemoryStore } from '../src/memory/index.js';
import { HttpStore, type RevkitServer } from '../src/server/index.js';
import { tempDir } from './helpers.js';
import { ADMIN, problemIssue, req, startServer } from './server-helpers.js';
import { inProcess } from './support/revkit-process.js';
import { freePort } from './support/servers.js';

// What the server shows of its store's replication (issue 25): /readyz and /v1/info carry the state
// the store reports, /readyz refuses while a loss is unaccepted, POST /v1/admin/accept-loss (admin on
// every key) calls store.acceptLoss(), and the CLI's status / accept-loss. The replicated engines'
// real states are tested by their own suites; here a memory store is given a replication() to render.

const WRITER = 'writer-token-0123456789abcdef';
const PARTIAL_ADMIN = 'partial-admin-0123456789abcdef';
const TOKENS = [
  { name: 'admin', token: ADMIN, scopes: [{ prefix: '', access: 'admin' as const }] },
  { name: 'writer', token: WRITER, scopes: [{ prefix: '', access: 'write' as const }] },
  { name: 'app-admin', token: PARTIAL_ADMIN, scopes: [{ prefix: 'app/', access: 'admin' as const }] },
];

const servers: RevkitServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

const LOSS = { after: 41, upTo: 57, detectedAt: '2026-12-05T10:00:00.000Z', message: 'the new primary lacks revisions 42..57' };

/** A memory store that reports a replicated engine's state, and accepts a loss as such a store does. */
function replicatedMemory(lost = false): MemoryStore & { state: ReplicationState; accepted: number } {
  const store = new MemoryStore() as MemoryStore & { state: ReplicationState; accepted: number };
  store.state = {
    serving: '10.0.0.2:6379',
    members: [{ address: '10.0.0.2:6379', role: 'master' }, { address: '10.0.0.1:6379', role: 'replica', state: 'online' }],
    durability: 'replicated', note: 'WAIT 1 after every write', failovers: 1,
    ...(lost ? { lost: LOSS } : {}),
  };
  store.accepted = 0;
  store.replication = async () => structuredClone(store.state);
  store.acceptLoss = async () => {
    store.accepted++;
    delete store.state.lost;
  };
  return store;
}

async function serverOver(store: MemoryStore | string): Promise<string> {
  const { server, url } = await startServer({ store, tokens: TOKENS, adminToken: undefined });
  servers.push(server);
  return url;
}

describe('/readyz and /v1/info show the replication state the store reports', () => {
  it('a store without replication: replication null', async () => {
    const url = await serverOver('memory:');
    const ready = await req(url, 'GET', '/readyz', { token: null });
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ status: 'ready', backend: 'memory', serving: null, replication: null });
    expect((await req(url, 'GET', '/v1/info')).json.replication).toBeNull();
  });

  it('a replicated store: the serving member, members and roles, durability, failovers', async () => {
    const store = replicatedMemory();
    const url = await serverOver(store);
    const ready = await req(url, 'GET', '/readyz', { token: null });
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ status: 'ready', backend: 'memory', serving: '10.0.0.2:6379', replication: store.state });
    expect((await req(url, 'GET', '/v1/info')).json.replication).toEqual(store.state);
  });

  it('an unaccepted loss: /readyz answers 503 ERR_DATA_LOST with its details, /v1/info shows it', async () => {
    const store = replicatedMemory(true);
    const url = await serverOver(store);
    const ready = await req(url, 'GET', '/readyz', { token: null });
    expect(ready.status).toBe(503);
    expect(problemIssue(503, ready.headers.get('content-type'), ready.text)).toBeNull();
    expect(ready.json).toMatchObject({ code: 'ERR_DATA_LOST', details: { store: 'memory', after: 41, upTo: 57, detectedAt: LOSS.detectedAt }, replication: { lost: LOSS } });
    expect((await req(url, 'GET', '/v1/info')).json.replication.lost).toEqual(LOSS);
  });

  it('a store whose reads fail with DataLostError: /readyz answers 503 ERR_DATA_LOST, not a generic unavailable', async () => {
    const store = replicatedMemory();
    store.get = async () => {
      throw new DataLostError('lost acknowledged writes', { store: 'redis 10.0.0.2:6379', after: 3, upTo: 9 });
    };
    const url = await serverOver(store);
    const ready = await req(url, 'GET', '/readyz', { token: null });
    expect(ready.status).toBe(503);
    expect(ready.json).toMatchObject({ code: 'ERR_DATA_LOST', details: { after: 3, upTo: 9 } });
  });
});

describe('POST /v1/admin/accept-loss', () => {
  it('needs admin on every key; calls acceptLoss() once; answers what was accepted; the server is ready again', async () => {
    const store = replicatedMemory(true);
    const url = await serverOver(store);
    expect((await req(url, 'POST', '/v1/admin/accept-loss', { token: null, body: {} })).status).toBe(401);
    const writer = await req(url, 'POST', '/v1/admin/accept-loss', { token: WRITER, body: {} });
    expect(writer.status).toBe(403);
    expect(writer.json.code).toBe('ERR_FORBIDDEN');
    expect((await req(url, 'POST', '/v1/admin/accept-loss', { token: PARTIAL_ADMIN, body: {} })).status).toBe(403);
    expect(store.accepted).toBe(0);

    const accepted = await req(url, 'POST', '/v1/admin/accept-loss', { body: {} });
    expect(accepted.status).toBe(200);
    expect(store.accepted).toBe(1);
    expect(accepted.json.accepted).toEqual(LOSS);
    expect(accepted.json.replication.lost).toBeUndefined();
    expect((await req(url, 'GET', '/readyz', { token: null })).status).toBe(200);
  });

  it('a store with nothing to accept a loss with (SQLite): 501 ERR_UNSUPPORTED; HttpStore.acceptLoss() throws UnsupportedError', async () => {
    const url = await serverOver(`sqlite:${tempDir('accept-loss')}/s.db`);
    const res = await req(url, 'POST', '/v1/admin/accept-loss', { body: {} });
    expect(res.status).toBe(501);
    expect(res.json.code).toBe('ERR_UNSUPPORTED');
    const http = new HttpStore({ url, token: ADMIN });
    try {
      const err = await http.acceptLoss().catch((e: unknown) => e);
      expect(UnsupportedError.is(err), String(err)).toBe(true);
    } finally {
      await http.close();
    }
  });
});

describe('CLI: revkit status, revkit accept-loss, --server with several URLs', () => {
  it('accept-loss --server prints what was accepted; status prints the replication state; a dead first server is skipped', async () => {
    const store = replicatedMemory(true);
    const url = await serverOver(store);
    const dead = `http://127.0.0.1:${await freePort()}`;
    const servers = `${dead},${url}`;

    const status = await inProcess(['status', '--server', servers, '--token', ADMIN]);
    expect(status.code, status.stderr).toBe(0);
    const state = JSON.parse(status.stdout) as ReplicationState;
    expect(state.serving).toBe(url);
    expect(state.members.map((m) => m.role)).toEqual(['revkit server', 'revkit server', 'master', 'replica']);
    expect(state.lost).toEqual(LOSS);

    const denied = await inProcess(['accept-loss', '--server', servers, '--token', WRITER]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('ERR_FORBIDDEN');
    expect(store.accepted).toBe(0);

    const accepted = await inProcess(['accept-loss', '--server', servers, '--token', ADMIN]);
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(JSON.parse(accepted.stdout)).toMatchObject({ accepted: LOSS });
    expect(store.accepted).toBe(1);
    expect(accepted.stderr).not.toContain(ADMIN);
  });

  it('accept-loss on a store without it (SQLite) fails with ERR_UNSUPPORTED, exit 1; status prints null', async () => {
    const db = `sqlite:${tempDir('accept-loss-cli')}/s.db`;
    const refused = await inProcess(['accept-loss', '--store', db]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('ERR_UNSUPPORTED');
    const status = await inProcess(['status', '--store', db]);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toBeNull();
  });
});
