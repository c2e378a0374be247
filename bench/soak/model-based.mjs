#!/usr/bin/env node
// The model-based tests (test/model-based.test.ts) at soak size: more and longer random
// operation sequences on every backend. REVKIT_MODEL_RUNS / REVKIT_MODEL_OPS override.
import { spawnSync } from 'node:child_process';

const env = { ...process.env, REVKIT_MODEL_RUNS: process.env.REVKIT_MODEL_RUNS ?? '300', REVKIT_MODEL_OPS: process.env.REVKIT_MODEL_OPS ?? '80' };
console.log(`model-based: ${env.REVKIT_MODEL_RUNS} sequences of up to ${env.REVKIT_MODEL_OPS} operations per backend`);
const started = Date.now();
const run = spawnSync('npx', ['vitest', 'run', 'test/model-based.test.ts'], { stdio: 'inherit', env });
console.log(`model-based: ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(run.status ?? 1);
