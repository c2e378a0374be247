// The conditional-write workload against etcd over gRPC (the etcd3 client: one gRPC channel,
// HTTP/2, shared by every writer, as etcd's own clientv3 shares one), beside the JSON gateway.
// Writer i owns key `<prefix>/<i>` and puts the next value only if the key's mod_revision is
// still the one its previous write returned (0: the key does not exist yet).
import { Etcd3 } from 'etcd3';
import { driveLoad } from './http-client.mjs';

export function etcdGrpcConditionalPut({ endpoint, prefix, connections, padding = 100 }) {
  const pad = 'x'.repeat(padding);
  const client = new Etcd3({ hosts: endpoint });
  const contexts = Array.from({ length: connections }, (_, i) => ({ key: `${prefix}/${i}`, revision: 0, acked: 0 }));
  const statuses = {};
  const count = (label) => (statuses[label] = (statuses[label] ?? 0) + 1);
  return {
    contexts,
    run({ seconds, serverPid }) {
      return driveLoad({
        contexts, seconds, serverPid,
        step: async (ctx) => {
          const value = `{"n":${ctx.acked + 1},"payload":"${pad}"}`;
          const r = await client.if(ctx.key, 'Mod', '==', ctx.revision).then(client.put(ctx.key).value(value)).commit();
          count(r.succeeded ? 'succeeded' : 'compare failed');
          if (!r.succeeded) return false;
          ctx.revision = Number(r.header.revision);
          ctx.acked++;
          return true;
        },
      });
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
