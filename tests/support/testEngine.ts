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
import { LOCAL_IMAGES } from "../../policy/localImages";
import type { HeldLock } from "../../scripts/lib/fileLock";
import { acquireEngineLock, requireEngine, requireImages } from "./engine";
import { startPrivateEngine, type PrivateEngine } from "./privateEngine";
import { localStackConfig, RealStack, type RealStackOptions } from "./realStack";

/** Where the test engine keeps its images between runs. */
export const TEST_ENGINE_DATA = "/var/tmp/mai-hosting-tests/engine";
/** Its socket and exec root (short: unix socket paths are limited to 108 bytes). */
const TEST_ENGINE_DIR = "/tmp/mai-hosting-test-engine";
/** Its networks' addresses: apart from the machine engine's 172.17/16+ and 192.168/16 pools. */
const TEST_ENGINE_POOL = "base=10.213.0.0/16,size=24";
/** A second private engine's (a second server in move and restart tests). */
export const SECOND_ENGINE_POOL = "base=10.214.0.0/16,size=24";

/** DOCKER_HOST of the machine's own engine (where `npm run local:images` builds the images). */
export const MACHINE_DOCKER_HOST = process.env.MAI_MACHINE_DOCKER_HOST || process.env.DOCKER_HOST || "unix:///var/run/docker.sock";

/** Longest wait for the engine lock: other test files and other runs on the machine hold it in turn. */
export const LOCK_WAIT_MS = 10 * 60_000;
/** Time a file's setup may take once it holds the lock (start the engine, `pulumi up`, wait for health). */
export const SETUP_MS = 4 * 60_000;

/** Starts the test engine with the local images on it, nothing else. Call while holding the engine lock. */
export async function startTestEngine(): Promise<PrivateEngine> {
  requireEngine();
  requireImages();
  const engine = await startPrivateEngine({ dir: TEST_ENGINE_DIR, dataRoot: TEST_ENGINE_DATA, addressPool: TEST_ENGINE_POOL });
  engine.wipe();
  engine.loadImages(LOCAL_IMAGES, MACHINE_DOCKER_HOST);
  return engine;
}

/** A second private engine for one test file (removed with its data afterwards). */
export async function startSecondTestEngine(dir: string): Promise<PrivateEngine> {
  const engine = await startPrivateEngine({ dir, addressPool: SECOND_ENGINE_POOL });
  engine.loadImages(LOCAL_IMAGES, MACHINE_DOCKER_HOST);
  return engine;
}

/** The name of the committed local stack's local server (clients run there by default). */
export function localServerName(): string {
  const servers = localStackConfig().servers as Record<string, { kind: string }>;
  return Object.entries(servers).find(([, s]) => s.kind === "local")![0];
}

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

