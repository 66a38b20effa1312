/**
 * The vitest hooks of a real-engine suite, built on engine.ts: a failed setup fails every test of
 * the suite (never a skip), and the run's objects and the engine lock are released afterwards.
 */
import { afterAll, beforeAll, beforeEach } from "vitest";
import type { HeldLock } from "../../scripts/lib/fileLock";
import { acquireEngineLock, cleanupByLabel, requireEngine, requireImages, runLabel } from "./engine";

/** Hooks of one real-engine suite. */
export interface EngineSuiteOptions {
  /** The run's id: everything labelled `runLabel(runId)` is removed after the suite. */
  runId: string;
  /** Images the suite needs; default: every local image. */
  images?: readonly string[];
  /** Creates the suite's objects, after the engine lock is held. */
  setup?: () => Promise<void>;
  /** Extra teardown before the labelled objects are removed. */
  teardown?: () => Promise<void>;
}

/**
 * Registers the hooks of a real-engine suite (call inside `describe`): requires the engine and
 * the images, takes the engine lock, runs `setup`; afterwards tears down, removes everything
 * labelled with the run id, and releases the lock. A failed setup (no engine, say) fails every
 * test of the suite with its message: none is reported as skipped.
 */
export function useEngineSuite(options: EngineSuiteOptions): void {
  let lock: HeldLock | undefined;
  let setupError: unknown;
  beforeAll(async () => {
    try {
      requireEngine();
      requireImages(options.images);
      lock = await acquireEngineLock();
      await options.setup?.();
    } catch (error) {
      setupError = error;
    }
  }, 11 * 60_000);
  beforeEach(() => {
    if (setupError) throw setupError;
  });
  afterAll(async () => {
    if (!lock) return; // never reached the engine: nothing of ours is on it
    try {
      await options.teardown?.();
    } finally {
      try {
        await cleanupByLabel(runLabel(options.runId));
      } finally {
        await lock.release();
      }
    }
  }, 120_000);
}
