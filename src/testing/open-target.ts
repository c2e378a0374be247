import { open } from '../open.js';
import type { Store } from '../core/index.js';
import { CanaryStore, InWriteCanaryStore } from './canary.js';

/** `open()` that also understands `canary:<url>` and `canary-in-write:<url>`, for test workers. */
export async function openTarget(url: string): Promise<Store> {
  if (url.startsWith('canary-in-write:')) return new InWriteCanaryStore(await open(url.slice('canary-in-write:'.length)));
  if (url.startsWith('canary:')) return new CanaryStore(await open(url.slice('canary:'.length)));
  return open(url);
}
