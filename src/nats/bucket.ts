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
/** The longest one question at open waits (then it is asked again, within timeoutMs). */
const OPEN_QUESTION_MS = 2000;

export interface OpenedBucket {
  bucket: string;
  js: JetStreamClient;
  jsm: JetStreamManager;
  info: StreamInfo;
}

/**
 * The bucket found or made, asked again while the server answers with a transient refusal (JetStream
 * "temporarily unavailable" while the cluster has no meta or stream leader, just after a pause or a
 * restart; no responders while JetStream starts) for up to timeoutMs; then that transient error.
 */
export async function openBucket(nc: NatsConnection, options: NatsStoreOptions): Promise<OpenedBucket> {
  const budget = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await openBucketOnce(nc, options);
    } catch (err) {
      const transient = BackendError.is(err) && err.transient && !err.ambiguous;
      if (!transient || nc.isClosed() || Date.now() - started >= budget) throw err;
      await new Promise((r) => setTimeout(r, Math.min(500, 25 * 2 ** attempt)));
    }
  }
}

async function openBucketOnce(nc: NatsConnection, options: NatsStoreOptions): Promise<OpenedBucket> {
  const bucket = options.bucket ?? 'revkit';
  if (!BUCKET_RE.test(bucket) || bucket.length > 64) throw new InvalidArgumentError(`invalid bucket name ${JSON.stringify(bucket)}: use [A-Za-z0-9_-], at most 64 characters`);
  const history = options.history ?? 64;
  if (!Number.isInteger(history) || history < 1 || history > 64) throw new InvalidArgumentError('history must be an integer from 1 to 64');
  const replicas = options.replicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new InvalidArgumentError('replicas must be an integer from 1 to 5');
  if (nc.info && nc.info.headers === false) throw new BackendError('the NATS server does not support headers', { transient: false });
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // Questions at open get a shorter timeout than the store's, so that a server that does not answer
  // (JetStream electing leaders) leaves time to ask again within timeoutMs (openBucket).
  const probe = await jetstreamManager(nc, { timeout: Math.min(timeout, OPEN_QUESTION_MS) }).catch((cause) => {
    throw toBackendError(cause, false, 'JetStream is not available on this NATS server');
  });
  const jsm = await jetstreamManager(nc, { timeout, checkAPI: false });
  const js = jetstream(nc, { timeout });
  const stream = `KV_${bucket}`;
  let info: StreamInfo;
  try {
    info = await probe.streams.info(stream);
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
        info = await probe.streams.info(stream);
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
