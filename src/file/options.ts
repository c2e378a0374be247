import { InvalidArgumentError, type StoreOptions } from '../core/index.js';
import { assertKnownUrlOptions } from '../core/redact.js';

export interface FileStoreOptions extends StoreOptions {
  /** Changes kept in the file for watch({ fromRevision }) and history(); default 4096. */
  changeLogSize?: number;
  /** How long a write waits for another process's lock before a transient BackendError; default 10 s. */
  lockTimeoutMs?: number;
  /** Commit every write queued while the lock was busy in one rewrite (default true); false: one write per rewrite. */
  groupCommit?: boolean;
  /** fsync the file and its folder on every commit (default true). */
  fsync?: boolean;
  /** How often watchers look for other processes' writes when no file event came; default 100 ms. */
  pollIntervalMs?: number;
  /** How often expired keys are turned into tombstones; default 1000 ms. */
  sweepIntervalMs?: number;
  /**
   * The longest file a commit may leave, as the length of its text (UTF-16
   * code units: bytes, for ASCII). A write that would make the file longer
   * is refused with TooLargeError and nothing is written. Default and maximum:
   * the longest string the JavaScript engine can hold (MAX_FILE_LENGTH,
   * 536,870,888 on 64-bit Node), since the file is read back as one string.
   */
  maxFileLength?: number;
}

/** Options a file: URL may carry; any other is refused. */
const URL_OPTIONS = ['changeLog', 'lockTimeoutMs', 'groupCommit', 'fsync'] as const;

/** `file:./state.json?changeLog=4096&lockTimeoutMs=10000&groupCommit=false&fsync=false`: the path and the options. */
export function parseFileUrl(url: string, options: FileStoreOptions): { path: string; options: FileStoreOptions } {
  const rest = url.replace(/^file:(\/\/)?/i, '');
  const [path = '', query = ''] = rest.split('?', 2);
  if (path === '') throw new InvalidArgumentError('a file URL needs a path, e.g. file:./state.json');
  const params = new URLSearchParams(query);
  assertKnownUrlOptions(url, 'file', params.keys(), URL_OPTIONS);
  const merged: FileStoreOptions = { ...options };
  const number = (name: string) => {
    const v = params.get(name);
    if (v === null) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got ${v}`);
    return n;
  };
  const flag = (name: string) => {
    const v = params.get(name);
    if (v === null) return undefined;
    if (v !== 'true' && v !== 'false') throw new InvalidArgumentError(`${name} must be true or false, got ${v}`);
    return v === 'true';
  };
  const changeLog = number('changeLog');
  if (changeLog !== undefined) merged.changeLogSize = changeLog;
  const lockTimeoutMs = number('lockTimeoutMs');
  if (lockTimeoutMs !== undefined) merged.lockTimeoutMs = lockTimeoutMs;
  const group = flag('groupCommit');
  if (group !== undefined) merged.groupCommit = group;
  const fsync = flag('fsync');
  if (fsync !== undefined) merged.fsync = fsync;
  return { path: decodeURIComponent(path), options: merged };
}
