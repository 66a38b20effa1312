import { configDefaults, defineConfig } from "vitest/config";

const ENGINE_TESTS = "tests/**/*.engine.test.ts";

/** Settings both projects share (not inherited with `extends`, which would run the global setup once per project). */
const shared = {
  // Each test file gets its own process: the Pulumi mock runtime is global state.
  pool: "forks" as const,
  // Generous: a busy 2-core machine must never fail a test by its clock (a hung test still ends).
  testTimeout: 300_000,
  hookTimeout: 600_000,
};

export default defineConfig({
  test: {
    // Once per run: builds the pinned Caddy and the local images when missing or out of date.
    globalSetup: ["tests/globalSetup.ts"],
    // Engine tests mostly wait on containers: let unit files run beside them (two cores).
    maxWorkers: 3,
    projects: [
      {
        test: { ...shared, name: "unit", include: ["tests/**/*.test.ts"], exclude: [...configDefaults.exclude, ENGINE_TESTS] },
      },
      {
        // Real-engine tests share one Docker engine: one file at a time (each also holds the
        // engine lock against other processes on the machine).
        test: { ...shared, name: "engine", include: [ENGINE_TESTS], fileParallelism: false, maxWorkers: 1 },
      },
    ],
  },
});
