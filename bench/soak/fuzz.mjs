#!/usr/bin/env node
// Soak of the HTTP fuzz test (test/server-fuzz.test.ts): CI sends 4,000 random requests, this sends
// 50,000 from the same seed, every answer checked the same way.
//   node bench/soak/fuzz.mjs [requests]
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const [requests = '50000'] = process.argv.slice(2);
const run = spawnSync(process.execPath, [join(root, 'node_modules/vitest/vitest.mjs'), 'run', 'test/server-fuzz.test.ts'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, REVKIT_FUZZ_RUNS: requests },
});
process.exit(run.status ?? 1);
