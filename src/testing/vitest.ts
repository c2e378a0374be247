// The conformance suite as vitest tests (`revkit/testing/vitest`); everything
// else of revkit/testing works without a test runner.
export * from './index.js';
export { describeConformance, type ConformanceTarget } from './conformance.js';
