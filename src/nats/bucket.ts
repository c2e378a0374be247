/**
 * How a store's bucket is found or made: the KV bucket `<bucket>` is the
 * stream `KV_<bucket>` with the subjects `$KV.<bucket>.>`, a normal NATS KV
 * bucket that `nats kv` and `@nats-io/kv` can read too (see README.md).
 * An existing bucket is used as it is (its history and storage win), except
 * that a `replicas` asked for explicitly must be the bucket's: a store opened
 * with `replicas=3` on a bucket of one replica would report a durability the
 * bucket does not have, so that is refused, naming both counts.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type StreamConfig, type StreamInfo } from '@nats-io/jetstream';
import { BackendError, InvalidArgumentError } from '../core/index.js';
import { jsCode, STREAM_NOT_FOUND, toBackendError } from './errors.js';
import { DEFAULT_TIMEOUT_MS, type NatsStoreOptions } from './options.js';

const BUCKET_RE = /^[-\w]+$/;

export interface OpenedBucket {
  bucket: string;
  js: JetStreamClient;
  jsm: JetStreamManager;
  info: StreamInfo;
}

export async function openBucket(nc: NatsConnection, options: NatsStoreOptions): Promise<OpenedBucket> {
  const bucket = options.bucket ?? 'revkit';
  if (!BUCKET_RE.test(bucket) || bucket.length > 64) throw new InvalidArgumentError(`invalid bucket name ${JSON.stringify(bucket)}: use [A-Za-z0-9_-], at most 64 characters`);
  const history = options.history ?? 64;
  if (!Number.isInteger(history) || history < 1 || history > 64) throw new InvalidArgumentError('history must be an integer from 1 to 64');
  const replicas = options.replicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new InvalidArgumentError('replicas must be an integer from 1 to 5');
  if (nc.info && nc.info.headers === false) throw new BackendError('the NATS server does not support headers', { transient: false });
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const jsm = await jetstreamManager(nc, { timeout }).catch((cause) => {
    throw toBackendError(cause, false, 'JetStream is not available on this NATS server');
  });
  const js = jetstream(nc, { timeout });
  const stream = `KV_${bucket}`;
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(stream);
  } catch (err) {
    if (jsCode(err) !== STREAM_NOT_FOUND) throw toBackendError(err, false);
    if (options.create === false) throw new BackendError(`the bucket ${bucket} does not exist`, { transient: false, cause: err });
    const cfg: Partial<StreamConfig> & { name: string } = {
      name: stream,
      subjects: [`$KV.${bucket}.>`],
      retention: 'limits' as StreamConfig['retention'],
      max_msgs_per_subject: history,
      max_msgs: -1,
      max_bytes: -1,
      max_age: 0,
      max_msg_size: -1,
      storage: (options.storage ?? 'file') as StreamConfig['storage'],
      num_replicas: replicas,
      discard: 'new' as StreamConfig['discard'],
      duplicate_window: 120_000_000_000,
      allow_direct: true,
      allow_rollup_hdrs: true,
      deny_delete: true,
    };
    try {
      info = await jsm.streams.add(cfg);
    } catch (addErr) {
      // Another process created it first (with another config): use what is there.
      try {
        info = await jsm.streams.info(stream);
      } catch {
        throw toBackendError(addErr, false);
      }
    }
  }
  assertReplicas(info, options.replicas);
  return { bucket, js, jsm, info };
}

function assertReplicas(info: StreamInfo, asked: number | undefined): void {
  const has = info.config.num_replicas ?? 1;
  if (asked === undefined || asked === has) return;
  throw new InvalidArgumentError(
    `the bucket's stream ${info.config.name} exists with replicas=${has}, not the replicas=${asked} asked for: `
    + `leave replicas out to use it as it is, or change the stream (nats stream edit ${info.config.name} --replicas ${asked})`,
  );
}
