export { canonicalJson, resumeKey, resumeKeyOfJson, isResumeKey } from './canonical.js';
export {
  Checkpoints, CheckpointMovedError, checkpoints,
  type AdvanceResult, type CallOptions, type CheckpointsOptions, type Cursor, type ListedCursor,
} from './checkpoints.js';
export { follow, type FollowContext, type FollowHandler, type FollowOptions } from './follow.js';
