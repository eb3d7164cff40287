import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // The native kernels use every core already; two test files at a time is enough on 2 cores.
    maxWorkers: 2,
  },
});
