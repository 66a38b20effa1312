/**
 * The hooks of a real-engine test file that applies one engine stack (engineStack.ts) while it
 * holds the engine lock (engineSession.ts).
 */
import { afterAll, beforeAll } from "vitest";
import { EngineApplier } from "./applier";
import { LOCK_WAIT_MS, lockEngine, requireDockerEngine, SETUP_MS } from "./engineSession";
import { createEngineStack, type EngineStack, OUT_OF_SCOPE, type TestClient } from "./engineStack";

/** The applied stack of one real-engine test file (see `useAppliedEngineStack`). */
export interface AppliedEngineStackOptions {
  /** The run's id: the stack's slugs and object names carry it. */
  runId: string;
  /** The client files the stack starts with. */
  clients: TestClient[];
  /** Fail setup unless the checkout has the local stack (Caddy on the host network). */
  localOnly?: boolean;
  /** Called with the stack once it is applied: the file keeps it and waits for what it needs. */
  applied: (stack: EngineStack) => Promise<void> | void;
}

/**
 * Registers the hooks of a test file that applies one engine stack: requires the engine, takes the
 * engine lock, creates the stack and applies it, then hands it to `applied`. Afterwards removes what
 * the applier created and the stack's files, releases the lock, and fails on anything left behind.
 * Returns the applier, for the file's own applies and checks.
 */
export function useAppliedEngineStack(options: AppliedEngineStackOptions): EngineApplier {
  const applier = new EngineApplier({ outOfScope: OUT_OF_SCOPE });
  let stack: EngineStack | undefined;
  let release: (() => void) | undefined;

  beforeAll(async () => {
    requireDockerEngine();
    release = await lockEngine();
    stack = await createEngineStack(options.runId, options.clients);
    if (options.localOnly) stack.requireLocal();
    await applier.up(await stack.evaluate());
    await options.applied(stack);
  }, LOCK_WAIT_MS + SETUP_MS);

  afterAll(() => {
    const problems = applier.cleanup();
    stack?.dispose();
    release?.();
    if (problems.length) throw new Error(problems.join("\n"));
  });

  return applier;
}
