import { defineConfig } from 'vitest/config';

// Tests that kill processes or restart private PostgreSQL / nats-server / redis-server: one file at a time,
// beside the main pass (scripts/test.mjs runs both).
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    maxWorkers: 1,
  },
});
