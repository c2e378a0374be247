#!/usr/bin/env node
// `npm run soak`: the fault and kill tests at the sizes the issues name (CI runs them smaller).
// Runs every script in bench/soak/ one after another, or only those named on the command line.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'soak');
const wanted = process.argv.slice(2);
const scripts = readdirSync(dir).filter((f) => f.endsWith('.mjs') && (wanted.length === 0 || wanted.some((w) => f.includes(w)))).sort();
let failed = 0;
for (const script of scripts) {
  console.log(`\n== soak: ${script}`);
  const run = spawnSync(process.execPath, [join(dir, script)], { stdio: 'inherit' });
  if (run.status !== 0) failed++;
}
console.log(`\nsoak: ${scripts.length - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
