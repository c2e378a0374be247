// A client process of bench/growth-watchers.mjs: holds its share of the watchers, each on a
// connection of its own (node:http, one keep-alive agent per process, no socket limit), and
// measures, for every event it is delivered, the time from the writer's stamp in the value
// (`"t"`: microseconds of CLOCK_MONOTONIC, process.hrtime, which every process of the machine
// shares) to the moment the chunk carrying it was read here.
//   revkit: GET /v1/watch?key=… | ?prefix=…   (Server-Sent Events)
//   etcd:   POST /v3/watch {"create_request": …} on its JSON gateway (one JSON message a line)
// Driven over IPC by the parent: open, counts, stats, cpu, close.
import http from 'node:http';
import { fileURLToPath } from 'node:url';

const LOG_BASE = Math.log(1.02); // delay histogram: 2 % wide buckets, in microseconds
export const BUCKETS = 1200; // 1.02^1200 µs ≈ 2e10 µs: anything

export const bucketOf = (us) => (us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(us) / LOG_BASE)));
/** Upper edge of a bucket, in microseconds. */
export const bucketUs = (i) => Math.pow(1.02, i);

const KINDS = ['key', 'prefix', 'broad'];
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

if (process.send && process.argv[1] === fileURLToPath(import.meta.url)) runClient();

function runClient() {
  const watchers = []; // { spec, req, res, buf, count, kind, open }
  /** phase -> kind index -> Uint32Array(BUCKETS) */
  const hist = new Map();
  const ends = {}; // unexpected ends of streams, by reason
  let closing = false;
  let agent;

  // Deliveries of the phase the parent names in `open` (joinPhase) are also kept one by one,
  // as (revision, writer's stamp, arrival), for exact percentiles and for the parent to set
  // against the time each write was acknowledged.
  let joinPhase = -1;
  const joined = KINDS.map(() => ({ rev: [], t: [], at: [] }));
  const record = (phase, kind, at, t, rev) => {
    let byKind = hist.get(phase);
    if (!byKind) hist.set(phase, (byKind = KINDS.map(() => new Uint32Array(BUCKETS))));
    byKind[kind][bucketOf(at - t)]++;
    if (phase === joinPhase) {
      joined[kind].rev.push(rev);
      joined[kind].t.push(t);
      joined[kind].at.push(at);
    }
  };
  const ended = (w, reason) => {
    if (!w.open) return;
    w.open = false;
    if (!closing) ends[reason] = (ends[reason] ?? 0) + 1;
  };

  // revkit: SSE blocks separated by a blank line; a put carries the value, with "t" and "p" in it.
  const onRevkitData = (w, chunk) => {
    const at = nowUs();
    const buf = w.buf + chunk;
    let start = 0;
    for (;;) {
      const end = buf.indexOf('\n\n', start);
      if (end < 0) break;
      const block = buf.slice(start, end);
      start = end + 2;
      if (block.includes('\nevent: put\n')) {
        w.count++;
        const t = /"t":(\d+)/.exec(block);
        const p = /"p":(\d+)/.exec(block);
        const rev = /^id: (\d+)/.exec(block);
        if (t && p && rev) record(Number(p[1]), w.kind, at, Number(t[1]), Number(rev[1]));
      } else if (block.includes('event: overflow') || block.includes('event: error')) {
        ends[block.includes('overflow') ? 'overflow' : 'error-event'] = (ends[block.includes('overflow') ? 'overflow' : 'error-event'] ?? 0) + 1;
      }
    }
    w.buf = buf.slice(start);
  };
  // etcd: one JSON message a line; a message may carry several events, each with its base64 value.
  const onEtcdData = (w, chunk) => {
    const at = nowUs();
    const buf = w.buf + chunk;
    let start = 0;
    for (;;) {
      const end = buf.indexOf('\n', start);
      if (end < 0) break;
      const line = buf.slice(start, end);
      start = end + 1;
      if (line.includes('"events"')) {
        // kv fields come as key, create_revision, mod_revision, version, value
        for (const m of line.matchAll(/"mod_revision":"(\d+)"[^}]*?"value":"([A-Za-z0-9+/=]*)"/g)) {
          w.count++;
          const v = Buffer.from(m[2], 'base64').toString('utf8');
          const t = /"t":(\d+)/.exec(v);
          const p = /"p":(\d+)/.exec(v);
          if (t && p) record(Number(p[1]), w.kind, at, Number(t[1]), Number(m[1]));
        }
      } else if (line.includes('"canceled":true')) ends.canceled = (ends.canceled ?? 0) + 1;
      else if (!w.open && line.includes('"created":true')) w.created?.();
    }
    w.buf = buf.slice(start);
  };

  const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');
  const prefixEnd = (p) => {
    const b = Buffer.from(p, 'utf8');
    b[b.length - 1]++;
    return b.toString('base64');
  };

  function openOne(msg, w) {
    const url = new URL(msg.origin);
    return new Promise((resolve, reject) => {
      const common = { host: url.hostname, port: url.port, agent, ...(msg.localAddress ? { localAddress: msg.localAddress } : {}) };
      let req;
      const fail = (err) => {
        req?.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error('opening the watch took more than 60 s')), 60_000);
      const established = () => {
        clearTimeout(timer);
        w.open = true;
        resolve();
      };
      if (msg.system === 'revkit') {
        const q = w.spec.key !== undefined ? `key=${encodeURIComponent(w.spec.key)}` : `prefix=${encodeURIComponent(w.spec.prefix)}`;
        req = http.request({ ...common, method: 'GET', path: `/v1/watch?${q}`, headers: { authorization: `Bearer ${msg.token}`, accept: 'text/event-stream' } });
        req.end();
      } else {
        const body = JSON.stringify({ create_request: w.spec.key !== undefined ? { key: b64(w.spec.key) } : { key: b64(w.spec.prefix), range_end: prefixEnd(w.spec.prefix) } });
        req = http.request({ ...common, method: 'POST', path: '/v3/watch', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
        req.end(body);
      }
      w.req = req;
      req.on('error', (err) => {
        if (w.open) ended(w, err.code ?? 'error');
        else fail(err);
      });
      req.on('response', (res) => {
        w.res = res;
        res.setEncoding('utf8');
        if (res.statusCode !== 200) {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => fail(new Error(`status ${res.statusCode}: ${text.slice(0, 200)}`)));
          return;
        }
        res.on('close', () => ended(w, 'closed by the server'));
        if (msg.system === 'revkit') {
          // The stream opens with `: watching` (and the id of where it starts): the watch is pinned.
          res.on('data', (d) => {
            if (!w.open && (w.buf + d).includes(': watching')) established();
            onRevkitData(w, d);
          });
        } else {
          w.created = established;
          res.on('data', (d) => onEtcdData(w, d));
        }
      });
    });
  }

  const handlers = {
    async open(msg) {
      joinPhase = msg.joinPhase ?? -1;
      agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 16 });
      const t0 = performance.now();
      for (const spec of msg.watchers) watchers.push({ spec, kind: KINDS.indexOf(spec.kind), buf: '', count: 0, open: false });
      const errors = {};
      let next = 0;
      let failed = 0;
      // A bounded number of opens in flight: a burst of thousands of SYNs overflows a listen backlog.
      await Promise.all(Array.from({ length: Math.min(msg.concurrency, watchers.length) }, async () => {
        while (next < watchers.length) {
          const w = watchers[next++];
          try {
            await openOne(msg, w);
          } catch (err) {
            failed++;
            const k = String(err.code ?? err.message).slice(0, 120);
            errors[k] = (errors[k] ?? 0) + 1;
          }
        }
      }));
      return { opened: watchers.filter((w) => w.open).length, failed, errors, ms: performance.now() - t0 };
    },
    counts() {
      return { counts: watchers.map((w) => w.count), open: watchers.filter((w) => w.open).length, ends };
    },
    cpu() {
      const u = process.cpuUsage();
      return { cpuUs: u.user + u.system, rss: process.memoryUsage().rss };
    },
    stats() {
      const out = {};
      for (const [phase, byKind] of hist) {
        out[phase] = {};
        byKind.forEach((h, k) => {
          const pairs = [];
          for (let i = 0; i < h.length; i++) if (h[i] > 0) pairs.push([i, h[i]]);
          out[phase][KINDS[k]] = pairs;
        });
      }
      return { hist: out, ends, joined: Object.fromEntries(KINDS.map((k, i) => [k, joined[i]])) };
    },
    async close() {
      closing = true;
      for (const w of watchers) {
        w.open = false;
        w.req?.destroy();
      }
      agent?.destroy();
      return {};
    },
  };

  process.on('message', async (msg) => {
    try {
      const reply = await handlers[msg.cmd](msg);
      process.send({ id: msg.id, ok: true, ...reply });
    } catch (err) {
      process.send({ id: msg.id, ok: false, error: String(err?.stack ?? err) });
    }
  });
  process.on('disconnect', () => process.exit(0));
}
