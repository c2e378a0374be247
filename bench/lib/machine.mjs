import os from 'node:os';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';

export function machineInfo() {
  const require = createRequire(import.meta.url);
  let revkit = '?';
  let commit = '?';
  try {
    revkit = require('../../package.json').version;
  } catch {}
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {}
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} (${os.arch()})`,
    node: process.version,
    revkit,
    commit,
    loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}
