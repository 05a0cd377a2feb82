import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20000,
    hookTimeout: 20000,
    // Real brokers are started per test file; two cores are all CI has.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
