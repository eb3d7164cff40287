import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Generous: the CLI tests train small models, and a loaded 2-core machine is slow.
    testTimeout: 300_000,
    hookTimeout: 120_000,
    // The native kernels use every core already; two test files at a time is enough on 2 cores.
    maxWorkers: 2,
  },
});
