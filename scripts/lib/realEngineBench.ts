/**
 * What the real-engine benchmarks share: the private test engine under the engine lock (never the
 * machine's engine: a user's local stack there is never touched), a real `pulumi up` / preview of
 * a RealStack timed with the moment the engine ran the proxy's reload, docker commands aimed at
 * one engine, and health waits. Plain Node (no vitest), like the test support files it builds on.
 */
import { execFile } from "node:child_process";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import type { HeldLock } from "./fileLock";
import { acquireEngineLock } from "../../tests/support/engine";
import { request } from "../../tests/support/httpClient";
import { startTestEngine, type PrivateEngine } from "../../tests/support/privateEngine";
import { foldSteps, isComponentKey, type RealStack, type Step } from "../../tests/support/realStack";

const run = promisify(execFile);

/** Longest wait for the engine lock: other engineers' engine test files hold it in turn. */
export const BENCH_LOCK_WAIT_MS = 45 * 60_000;

/** Runs a docker command on the engine at `host`; resolves with its trimmed stdout. */
export async function dockerOn(host: string, args: string[], timeoutMs = 120_000): Promise<string> {
  try {
    const { stdout } = await run("docker", args, { env: { ...process.env, DOCKER_HOST: host }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return stdout.trim();
  } catch (error) {
    const failure = error as Error & { stderr?: string };
    throw new Error(`docker ${args.join(" ")}: ${failure.stderr?.trim() || failure.message}`);
  }
}

/** The test engine, held under the engine lock until `release`. */
export interface BenchEngine {
  engine: PrivateEngine;
  /** Wipes the engine, stops it and releases the lock. */
  release(): Promise<void>;
}

/** Takes the engine lock and starts the private test engine with the local images on it. */
export async function holdTestEngine(onWait?: () => void): Promise<BenchEngine> {
  const waiting = setTimeout(() => onWait?.(), 2000);
  let lock: HeldLock;
  try {
    lock = await acquireEngineLock(BENCH_LOCK_WAIT_MS);
  } finally {
    clearTimeout(waiting);
  }
  let engine: PrivateEngine;
  try {
    engine = await startTestEngine();
  } catch (error) {
    await lock.release();
    throw error;
  }
  return {
    engine,
    async release() {
      try {
        engine.wipe();
        await engine.stop();
      } finally {
        await lock.release();
      }
    },
  };
}

/** One timed engine operation. */
export interface Timed {
  /** Wall time of the whole operation (program evaluation included). */
  ms: number;
  created: string[];
  updated: string[];
  replaced: string[];
  deleted: string[];
  steps: Step[];
  /** When the engine began and finished the proxy's reload command (performance clock), if it ran. */
  reload?: { start: number; end: number | undefined };
  /** performance.now() at the start and end. */
  started: number;
  ended: number;
}

const isReload = (urn?: string) => urn !== undefined && /::[\w-]*proxy-reload$/.test(urn);

/** A real `pulumi up` (or `preview`) of the stack, timed. Throws with the engine's output tail. */
export async function timed(stack: RealStack, operation: "up" | "preview", onEvent?: (event: EngineEvent) => void): Promise<Timed> {
  const events: EngineEvent[] = [];
  let output = "";
  let reload: Timed["reload"];
  const options = {
    color: "never" as const,
    onOutput: (text: string) => (output += text),
    onEvent: (event: EngineEvent) => {
      events.push(event);
      if (isReload(event.resourcePreEvent?.metadata.urn)) reload ??= { start: performance.now(), end: undefined };
      if (reload && isReload(event.resOutputsEvent?.metadata.urn)) reload.end = performance.now();
      onEvent?.(event);
    },
  };
  const started = performance.now();
  try {
    if (operation === "up") await stack.stack.up(options);
    else await stack.stack.preview({ ...options, diff: true });
  } catch (error) {
    const e = error as { stderr?: string; message?: string };
    throw new Error(`pulumi ${operation} failed:\n${output.split("\n").slice(-40).join("\n")}\n${e.stderr ?? e.message ?? String(error)}`);
  }
  const ended = performance.now();
  const steps = foldSteps(events);
  const of = (op: Step["op"]) => steps.filter((s) => s.op === op && !isComponentKey(s.key)).map((s) => s.key).sort();
  return { ms: ended - started, created: of("create"), updated: of("update"), replaced: of("replace"), deleted: of("delete"), steps, reload, started, ended };
}

/** Waits until every loopback port answers /health with 200; resolves with the wall time. */
export async function untilAnswering(ports: readonly number[], timeoutMs = 180_000): Promise<number> {
  const started = performance.now();
  const pending = new Set(ports);
  while (pending.size > 0) {
    for (const port of [...pending]) {
      const ok = await request({ port, hostname: "localhost" }, "/health", { timeoutMs: 2000 }).then((r) => r.status === 200, () => false);
      if (ok) pending.delete(port);
    }
    if (pending.size === 0) break;
    if (performance.now() - started > timeoutMs) throw new Error(`${pending.size} of ${ports.length} clients never answered /health within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
  return performance.now() - started;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A client file with explicit limits (small enough that many fit this machine). */
export function clientYaml(name: string, resources: { cpus: number; memory: string; reservedCpus: number; reservedMemory: string }, extra = ""): string {
  return [
    `name: ${name}`,
    "resources:",
    `  cpus: ${resources.cpus}`,
    `  memory: ${resources.memory}`,
    "  reservations:",
    `    cpus: ${resources.reservedCpus}`,
    `    memory: ${resources.reservedMemory}`,
    extra,
  ].join("\n");
}
