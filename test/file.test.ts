import { join } from 'node:path';
import { describe } from 'vitest';
import { FileStore } from '../src/file/index.js';
import { describeConformance } from '../src/testing/index.js';
import { tempDir, uniqueName } from './helpers.js';

const dir = tempDir('file');
const freshPath = () => join(dir, `${uniqueName('state')}.json`);

describeConformance({
  name: 'file (fsync, group commit)',
  create: async () => new FileStore(freshPath(), { sweepIntervalMs: 50 }),
  url: async () => `file:${freshPath()}`,
  multiProcess: { increments: 4000 },
  timeoutMs: 60_000,
});

describe.skip('file specifics', () => undefined);
