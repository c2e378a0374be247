import type { StandardSchemaV1 } from '@standard-schema/spec';

export interface Entry<T = unknown> {
  key: string;
  value: T;
  revision: number;
  createdRevision: number;
  /** Milliseconds since the epoch, by the clock of whoever committed the write. */
  updatedAt: number;
  expiresAt?: number;
  /** Token of the writer that committed this revision (used to recognise an ambiguous write). */
  writer?: string;
}

export interface Tombstone {
  key: string;
  revision: number;
  deleted: true;
  writer?: string;
  /** When the key was deleted (ms since epoch), where the backend recorded it; history() always has it. */
  updatedAt?: number;
}

export type StoredRecord<T = unknown> = Entry<T> | Tombstone;

export function isTombstone(record: StoredRecord | null | undefined): record is Tombstone {
  return record != null && (record as Tombstone).deleted === true;
}

/** At most one condition per write. */
export interface Condition {
  /** No live value: never written, deleted or expired. */
  ifAbsent?: true;
  /** The key's current revision, live or tombstone; 0: the key was never written (no record, not even a tombstone). */
  ifRevision?: number;
  /** The current live value deep-equals this. */
  ifValue?: unknown;
}

export interface WriteOptions extends Condition {
  /** Writer token stored with the write, so a lost acknowledgement can be recognised on re-read. */
  writer?: string;
}

export interface PutOptions extends WriteOptions {
  ttlMs?: number;
}

export type DeleteOptions = WriteOptions;

export interface ListOptions {
  prefix?: string;
  /** Return keys strictly after this one (the `cursor` of the previous page). */
  after?: string;
  limit?: number;
}

export interface ListPage<T = unknown> {
  entries: Entry<T>[];
  /** Pass as `after` for the next page; absent on the last page. */
  cursor?: string;
}

export interface WatchOptions {
  key?: string;
  prefix?: string;
  /** Deliver every change with a revision greater than this. Omitted: only changes from now on. */
  fromRevision?: number;
  signal?: AbortSignal;
}

export type WatchEvent<T = unknown> =
  | { type: 'put'; key: string; revision: number; entry: Entry<T> }
  | { type: 'delete'; key: string; revision: number };

export interface HistoryOptions {
  limit?: number;
}

export type Durability = 'fsync' | 'os-buffered' | 'replicated' | 'memory' | 'server-default';

export interface Capabilities {
  atomic: boolean;
  ttl: boolean;
  history: boolean;
  watch: boolean;
  /** Several OS processes may share this store safely. */
  crossProcess: boolean;
  durability: Durability;
}

export const SKIP: unique symbol = Symbol.for('revkit.skip');
export type Skip = typeof SKIP;

export interface RetryInfo {
  key: string;
  attempt: number;
  error: unknown;
  delayMs: number;
}

export interface UpdateOptions<T> {
  /** Used when the key is missing or deleted: a value, or a factory called per attempt. */
  default?: T | (() => T);
  schema?: StandardSchemaV1<unknown, T>;
  validate?: (value: T) => void | string | boolean | Promise<void | string | boolean>;
  maxAttempts?: number;
  deadlineMs?: number;
  signal?: AbortSignal;
  retry?: RetryPolicy;
  ttlMs?: number;
  /** Called before each backoff, for metrics and logs. */
  onRetry?: (info: RetryInfo) => void;
  /** Combine with concurrent updates of the same key in this process (default true where the store allows it). */
  combine?: boolean;
}

export type Mutation<T> = (current: T | undefined) => T | Skip | Promise<T | Skip>;

/** With a `default`, a missing or deleted key reads as that default: the mutation always gets a `T`. */
export type MutationOfDefaulted<T> = (current: T) => T | Skip | Promise<T | Skip>;

export type UpdateOptionsWithDefault<T> = UpdateOptions<T> & { default: T | (() => T) };

export interface RetryPolicy {
  readonly name: string;
  /** Delay before attempt `attempt + 1`, given the previous delay; attempt counts from 1. */
  delay(attempt: number, previousDelayMs: number): number;
}

export interface AtomicBatch {
  /** `revision` null: the key must have no live value. */
  check(key: string, revision: number | null): AtomicBatch;
  set(key: string, value: unknown, options?: { ttlMs?: number }): AtomicBatch;
  delete(key: string): AtomicBatch;
  /** Applies everything or nothing; returns the revision given to the writes. */
  commit(): Promise<{ revision: number }>;
}

export type AtomicOp =
  | { type: 'check'; key: string; revision: number | null }
  | { type: 'set'; key: string; value: unknown; ttlMs?: number }
  | { type: 'delete'; key: string };

export interface Store {
  readonly backend: string;
  readonly capabilities: Capabilities;
  get<T = unknown>(key: string): Promise<Entry<T> | null>;
  /** The read used by read-modify-write: a live entry, a tombstone, or null when never written. */
  getRecord<T = unknown>(key: string): Promise<StoredRecord<T> | null>;
  put<T = unknown>(key: string, value: T, options?: PutOptions): Promise<Entry<T>>;
  delete(key: string, options?: DeleteOptions): Promise<number | null>;
  update<T = unknown>(key: string, fn: MutationOfDefaulted<T>, options: UpdateOptionsWithDefault<T>): Promise<Entry<T> | null>;
  update<T = unknown>(key: string, fn: Mutation<T>, options?: UpdateOptions<T>): Promise<Entry<T> | null>;
  atomic(): AtomicBatch;
  list<T = unknown>(options?: ListOptions): Promise<ListPage<T>>;
  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>>;
  history<T = unknown>(key: string, options?: HistoryOptions): Promise<StoredRecord<T>[]>;
  /**
   * The store's head: every change with a revision at or below it has
   * committed, so a watch from here misses nothing committed after this call.
   * Optional: a store that cannot name it leaves it out.
   */
  headRevision?(): Promise<number>;
  /**
   * Replicated engines (DESIGN §6): which member serves this client, the
   * members' roles as the engine reports them, and what an acknowledgement
   * means. Optional: a single-server store leaves it out.
   */
  replication?(): Promise<ReplicationState>;
  /**
   * An operator accepts a detected loss of acknowledged writes: operations
   * stop failing with DataLostError; revisions go on above every revision
   * handed out before. Optional, as `replication()`.
   */
  acceptLoss?(): Promise<void>;
  close(): Promise<void>;
}

/** One member of a replicated engine as its client sees it. */
export interface ReplicationMember {
  /** host:port, never a password. */
  address: string;
  /** As the engine names it: primary / standby, leader / follower, master / replica, sentinel. */
  role: string;
  /** The engine's own word for its state (streaming, sync, async, current, lag in bytes …), when known. */
  state?: string;
}

/** Store.replication(): the replicated engine as this client sees it now. */
export interface ReplicationState {
  /** The member that serves this client's writes now, or null while none does. */
  serving: string | null;
  members: ReplicationMember[];
  /** What an acknowledged write has survived (equal to `capabilities.durability`). */
  durability: Durability;
  /** How `durability` was found out (settings read from the server). */
  note: string;
  /** Changes of the serving member this client has seen since it opened. */
  failovers: number;
  /** A detected loss of acknowledged writes not yet accepted by an operator (DataLostError's details). */
  lost?: { after?: number; upTo?: number; detectedAt?: string; message: string };
}

export interface Codec {
  readonly name: string;
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

export interface StoreOptions {
  /** Largest encoded value in bytes; default 1 MiB. */
  maxValueBytes?: number;
  codec?: Codec;
}
