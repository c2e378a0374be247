// The conditional-write workload against etcd over gRPC (the etcd3 client: one gRPC channel,
// HTTP/2, shared by every writer, as etcd's own clientv3 shares one), beside the JSON gateway.
// Writer i owns key `<prefix>/<i>` and puts the next value only if the key's mod_revision is
// still the one its previous write returned (0: the key does not exist yet).
import { Etcd3 } from 'etcd3';
import { percentile } from './stats.mjs';
import { cpuSeconds } from './http-client.mjs';

export function etcdGrpcConditionalPut({ endpoint, prefix, connections, padding = 100 }) {
  const pad = 'x'.repeat(padding);
  const client = new Etcd3({ hosts: endpoint });
  const contexts = Array.from({ length: connections }, (_, i) => ({ key: `${prefix}/${i}`, revision: 0, acked: 0 }));
  const statuses = {};
  const count = (label) => (statuses[label] = (statuses[label] ?? 0) + 1);
  return {
    contexts,
    async run({ seconds, serverPid }) {
      const latencies = [];
      let acked = 0;
      let refused = 0;
      const errors = {};
      const cpuBefore = serverPid !== undefined ? cpuSeconds(serverPid) : undefined;
      const clientBefore = process.cpuUsage();
      const started = performance.now();
      const deadline = started + seconds * 1000;
      await Promise.all(contexts.map(async (ctx) => {
        while (performance.now() < deadline) {
          const t0 = performance.now();
          try {
            const value = `{"n":${ctx.acked + 1},"payload":"${pad}"}`;
            const r = await client.if(ctx.key, 'Mod', '==', ctx.revision).then(client.put(ctx.key).value(value)).commit();
            if (!r.succeeded) {
              count('compare failed');
              refused++;
              continue;
            }
            count('succeeded');
            ctx.revision = Number(r.header.revision);
            ctx.acked++;
            acked++;
            latencies.push(performance.now() - t0);
          } catch (err) {
            const code = err?.name ?? 'error';
            errors[code] = (errors[code] ?? 0) + 1;
          }
        }
      }));
      const elapsedMs = performance.now() - started;
      const cpuAfter = serverPid !== undefined ? cpuSeconds(serverPid) : undefined;
      const used = process.cpuUsage(clientBefore);
      const sorted = Float64Array.from(latencies).sort();
      return {
        acked, refused, errors, elapsedMs,
        perSec: acked / (elapsedMs / 1000),
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        serverCpuUs: cpuBefore !== undefined && cpuAfter !== undefined && acked > 0 ? ((cpuAfter - cpuBefore) * 1e6) / acked : undefined,
        clientCoreShare: (used.user + used.system) / 1000 / elapsedMs,
      };
    },
    async verify() {
      const mismatches = [];
      for (const ctx of contexts) {
        if (ctx.acked === 0) continue;
        const r = await client.get(ctx.key).exec();
        const kv = r.kvs[0];
        const n = kv ? JSON.parse(kv.value.toString('utf8')).n : undefined;
        if (n !== ctx.acked || Number(kv?.mod_revision) !== ctx.revision) mismatches.push({ key: ctx.key, acked: ctx.acked, stored: n });
      }
      return { keys: contexts.length, acked: contexts.reduce((s, c) => s + c.acked, 0), mismatches };
    },
    statuses: () => statuses,
    close: () => client.close(),
  };
}
