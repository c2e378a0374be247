import { defineConfig } from 'vitest/config';

// Tests that kill or restart PostgreSQL / nats-server: one file at a time, after the main pass.
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    maxWorkers: 1,
  },
});
