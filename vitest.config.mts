import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    globalSetup: ["tests/globalSetup.ts"],
    // Each test file gets its own process: the Pulumi mock runtime is global state.
    pool: "forks",
    testTimeout: 20_000,
    hookTimeout: 60_000,
  },
});
