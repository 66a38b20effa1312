/**
 * One real-engine test file's hold on the shared Docker Engine: fails (never skips) when no engine
 * answers, and holds an exclusive flock on `<tmpdir>/mai-hosting-engine.lock` from `beforeAll` to
 * `afterAll`, so test files (and other runs on this machine) never use the engine at the same time.
 */
import { acquireEngineLock, requireEngine } from "./engine";

export { ENGINE_LOCK } from "./engine";

/** Longest wait for the engine lock: other test files and other runs on the machine hold it in turn. */
export const LOCK_WAIT_MS = 10 * 60_000;

/** Time a file's setup may take once it holds the lock (evaluate, apply, wait for health). */
export const SETUP_MS = 3 * 60_000;

/** Throws, saying how to start one, when no Docker Engine answers (see engine.ts). */
export const requireDockerEngine = requireEngine;

/** Waits for the exclusive engine lock and returns the function that releases it. */
export async function lockEngine(timeoutMs = LOCK_WAIT_MS): Promise<() => void> {
  const lock = await acquireEngineLock(timeoutMs);
  return () => void lock.release();
}
