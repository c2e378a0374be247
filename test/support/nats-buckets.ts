/**
 * Buckets a test file makes on the machine's nats-server (REVKIT_NATS_PORT,
 * default 4222), deleted when the file is done:
 *
 *   const made = natsBucketsThisFileMakes();   // at the top of the file
 *   made.push(bucket);                         // for each bucket a test makes
 */
import { afterAll } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

export const NATS_PORT = Number(process.env.REVKIT_NATS_PORT ?? 4222);

/** A list to push bucket names on; an afterAll of the calling file deletes each one's stream (KV_<bucket>). */
export function natsBucketsThisFileMakes(): string[] {
  const made: string[] = [];
  afterAll(async () => {
    const nc = await connect({ servers: `127.0.0.1:${NATS_PORT}` });
    const jsm = await jetstreamManager(nc);
    for (const bucket of made) await jsm.streams.delete(`KV_${bucket}`).catch(() => undefined);
    await nc.close();
  }, 60_000);
  return made;
}
