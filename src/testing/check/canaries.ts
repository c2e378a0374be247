import { canaryKinds, type CanaryKind } from '../api-canaries.js';
import { watchCanaryKinds, type WatchCanaryKind } from '../watch-canaries.js';

/** Every deliberately broken layer `revkit check --canary` can run: the store-level and API-level ones, and the watch canaries. */
export type CheckCanaryKind = CanaryKind | WatchCanaryKind;
export const checkCanaryKinds: readonly CheckCanaryKind[] = [...canaryKinds, ...watchCanaryKinds];
