#!/usr/bin/env node
// Soak of the lost-update check every backend runs (src/testing/conformance.ts "multi-process", and
// test/server-multiprocess.test.ts through the HTTP server): CI runs 2,000 increments per backend
// (600 through the server); this runs them at 20,000 (4,000 through the server).
//   node bench/soak/counters.mjs [increments] [http-increments]
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const [increments = '20000', httpIncrements = '4000'] = process.argv.slice(2);
const files = ['sqlite', 'postgres', 'redis', 'nats', 'file', 'memory'].map((b) => `test/${b}.test.ts`).concat('test/server-multiprocess.test.ts');
const run = spawnSync(process.execPath, [join(root, 'node_modules/vitest/vitest.mjs'), 'run', ...files, '-t', 'multi-process|increment loops'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, REVKIT_MP_INCREMENTS: increments, REVKIT_HTTP_MP_INCREMENTS: httpIncrements },
});
process.exit(run.status ?? 1);
