/**
 * What the real-engine benchmarks share: the private test engine under the engine lock (never the
 * machine's engine: a user's local stack there is never touched), a real `pulumi up` / preview of
 * a RealStack timed with the moment the engine ran the proxy's reload, docker commands aimed at
 * one engine, and health waits. Plain Node (no vitest), like the test support files it builds on.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import net from "node:net";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import type { HeldLock } from "./fileLock";
import { caddyfileOptionsFor } from "../../policy/proxyPolicy";
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

/** Caddy's default admin address, which every Caddy without an `admin` option of its own binds. */
const DEFAULT_CADDY_ADMIN = { host: "127.0.0.1", port: 2019 };

/** Whether the program's proxies keep Caddy's default admin address (no `admin` in their Caddyfile). */
export function proxiesShareDefaultAdmin(): boolean {
  // Not an object literal: versions of the settings with more fields (an admin socket) take it too.
  const listeners = { bindAddress: "127.0.0.1", httpPort: 8080, httpsPort: 8443, issuer: "internal" as const, adminSocket: "/run/mai-caddy/admin.sock" };
  return caddyfileOptionsFor(listeners, undefined).adminAddress === undefined;
}

function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Who listens on the default admin address, as `ss` names it (best effort). */
function adminListeners(): string {
  const ss = spawnSync("ss", ["-Hltnp", `sport = :${DEFAULT_CADDY_ADMIN.port}`], { encoding: "utf8" });
  const users = (ss.stdout ?? "").match(/users:\(\(.*?\)\)/g) ?? [];
  return users.join(", ") || "a process";
}

/**
 * Why a stack must not be deployed now, or undefined. Caddy's listeners use SO_REUSEPORT: while
 * the program's proxies (host network) keep the default admin address, a `caddy reload` of this
 * bench's proxy can land in any other Caddy on the machine that binds it too (a user's local
 * stack, another run's proxy) and load this bench's sites into it, and theirs into ours. Waits up
 * to `waitMs` for such a Caddy to go away.
 */
export async function sharedAdminHazard(waitMs = 10 * 60_000, onWait?: (who: string) => void): Promise<string | undefined> {
  if (!proxiesShareDefaultAdmin()) return undefined;
  const deadline = Date.now() + waitMs;
  let warned = false;
  while (await listening(DEFAULT_CADDY_ADMIN.host, DEFAULT_CADDY_ADMIN.port)) {
    const who = adminListeners();
    if (Date.now() > deadline) {
      return (
        `another Caddy on this machine (${who}) listens on Caddy's default admin address ${DEFAULT_CADDY_ADMIN.host}:${DEFAULT_CADDY_ADMIN.port}, ` +
        "which the stack's proxy would share (it has no admin address of its own): a reload could load this bench's sites into it"
      );
    }
    if (!warned) onWait?.(who);
    warned = true;
    await sleep(10_000);
  }
  return undefined;
}

/** Set in a benchmark process that already runs in a network namespace of its own. */
const OWN_NETNS = "MAI_BENCH_OWN_NETNS";

/** Whether this process is a benchmark re-run in a network namespace of its own. */
export const runsInOwnNetworkNamespace = () => process.env[OWN_NETNS] === "1";

/**
 * Runs a benchmark script again in a network namespace of its own (`unshare --net`, loopback up):
 * its private dockerd, the stack's host-network Caddy, its loopback ports and its load are then
 * out of reach of every other process on the machine, and theirs out of its reach (a `caddy
 * reload` to the default admin address cannot land in another Caddy). Resolves with the lines the
 * script printed, or undefined when no namespace can be made here (not root, no unshare) or when
 * this process already is the one in the namespace: then the caller measures in-process.
 */
export async function inOwnNetworkNamespace(script: string, args: string[] = []): Promise<string[] | undefined> {
  if (runsInOwnNetworkNamespace()) return undefined;
  if (spawnSync("unshare", ["--net", "true"]).status !== 0) return undefined;
  const child = spawn("unshare", ["--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", process.execPath, "--import", "tsx", script, ...args], {
    env: { ...process.env, [OWN_NETNS]: "1" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  const lines = stdout.split("\n").filter((line) => line.length > 0);
  if (code !== 0 && lines.length === 0) throw new Error(`${script} in its own network namespace exited with ${code} (its errors are above)`);
  return lines;
}
