export { describeConformance, type ConformanceTarget } from './conformance.js';
export { CanaryStore, canary } from './canary.js';
export { openTarget } from './open-target.js';
export { runMultiProcessCounters, type CounterRunOptions, type CounterRunReport } from './multiprocess.js';
