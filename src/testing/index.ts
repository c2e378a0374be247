// No test runner here: the vitest-bound conformance suite is `revkit/testing/vitest`.
export { raceChecks } from './race-checks.js';
export { callerChecks } from './caller-checks.js';
export * from './checker/index.js';
export { CanaryStore, InWriteCanaryStore, canary } from './canary.js';
export { openTarget } from './open-target.js';
export { CI_MULTI_PROCESS_INCREMENTS, runMultiProcessCounters, type CounterRunOptions, type CounterRunReport } from './multiprocess.js';
export { FaultStore, type FaultKind, type FaultOperation, type FaultRule, type InjectedFault } from './fault-store.js';
export { SharedResultStore, DoubleApplyStore, canaryKinds, type CanaryKind } from './api-canaries.js';
export { ApiRecorder, RecordingStore } from './check/recording-store.js';
