import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Backends share real servers; files run in parallel processes but each
    // file isolates itself by database file, table prefix or bucket name.
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default'],
  },
});
