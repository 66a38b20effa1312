/**
 * The Docker engine the real-engine tests deploy to: a private daemon (privateEngine.ts), never the
 * machine's. Why not the machine's engine under unusual names: the local stack owns fixed names
 * (`mai-proxy`, `mai-caddy-data`, `mai-shared`) that a user's own stack on this machine holds —
 * running or destroyed with its volumes retained —, and tests restart and wipe their engine; on a
 * daemon of their own they can, and a user's objects are out of their reach by construction.
 *
 * The daemon's data root is kept between runs (only images stay: every container, network and
 * volume is wiped at start and at the end), so the local images are copied from the machine's
 * engine once per image version, not per run. One test file holds it at a time (engine lock).
 */
import { afterAll, beforeAll } from "vitest";
import type { HeldLock } from "../../scripts/lib/fileLock";
import { acquireEngineLock } from "./engine";
import { localServerName, startTestEngine, type PrivateEngine } from "./privateEngine";
import { RealStack, type RealStackOptions } from "./realStack";

export { MACHINE_DOCKER_HOST, SECOND_ENGINE_POOL, startSecondTestEngine, startTestEngine, TEST_ENGINE_DATA, localServerName } from "./privateEngine";

/** Longest wait for the engine lock: other test files and other runs on the machine hold it in turn. */
export const LOCK_WAIT_MS = 10 * 60_000;
/** Time a file's setup may take once it holds the lock (start the engine, `pulumi up`, wait for health). */
export const SETUP_MS = 4 * 60_000;

export interface RealEngineSuite {
  /** The deployed stack. */
  readonly stack: RealStack;
  /** The private engine it runs on. */
  readonly engine: PrivateEngine;
}

export interface RealEngineSuiteOptions extends Omit<RealStackOptions, "servers"> {
  /** Called once the first `pulumi up` succeeded (wait for what the file needs). */
  ready?: (suite: RealEngineSuite) => Promise<void> | void;
  /** Extra teardown before the engine is wiped. */
  teardown?: () => Promise<void> | void;
}

/**
 * The hooks of a real-engine test file: takes the engine lock, starts the test engine, deploys the
 * stack with a real `pulumi up`, and hands it over; afterwards wipes the engine, removes the
 * stack's files and releases the lock. A failed setup fails every test of the file (never a skip).
 * `DOCKER_HOST` points at the test engine meanwhile, so the file's own docker commands go there.
 */
export function useRealEngineSuite(options: RealEngineSuiteOptions): RealEngineSuite {
  let lock: HeldLock | undefined;
  let engine: PrivateEngine | undefined;
  let stack: RealStack | undefined;
  const previousDockerHost = process.env.DOCKER_HOST;
  const suite: RealEngineSuite = {
    get stack() {
      if (!stack) throw new Error("the real-engine suite's setup did not complete (see the beforeAll error)");
      return stack;
    },
    get engine() {
      if (!engine) throw new Error("the real-engine suite's setup did not complete (see the beforeAll error)");
      return engine;
    },
  };

  beforeAll(async () => {
    lock = await acquireEngineLock(LOCK_WAIT_MS);
    engine = await startTestEngine();
    process.env.DOCKER_HOST = engine.host;
    stack = await RealStack.create({ ...options, servers: { [localServerName()]: { dockerHost: engine.host } } });
    await stack.up();
    await options.ready?.(suite);
  }, LOCK_WAIT_MS + SETUP_MS);

  afterAll(async () => {
    try {
      await options.teardown?.();
    } finally {
      if (engine) {
        engine.wipe();
        await engine.stop();
      }
      stack?.dispose();
      if (previousDockerHost === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = previousDockerHost;
      await lock?.release();
    }
  }, 120_000);

  return suite;
}

