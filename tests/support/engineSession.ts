/**
 * One real-engine test file's hold on the shared Docker Engine: fails (never skips) when no engine
 * answers, and holds an exclusive flock on `<tmpdir>/mai-hosting-engine.lock` from `beforeAll` to
 * `afterAll`, so test files (and other runs on this machine) never use the engine at the same time.
 */
import { spawn, spawnSync } from "node:child_process";
import * as os from "node:os";
import * as path from "node:path";

export const ENGINE_LOCK = path.join(os.tmpdir(), "mai-hosting-engine.lock");

/** Longest wait for the engine lock: other test files and other runs on the machine hold it in turn. */
export const LOCK_WAIT_MS = 10 * 60_000;

/** Time a file's setup may take once it holds the lock (evaluate, apply, wait for health). */
export const SETUP_MS = 3 * 60_000;

/** Throws, saying how to start one, when no Docker Engine answers. */
export function requireDockerEngine(): void {
  const r = spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], { encoding: "utf8", timeout: 20_000 });
  if (r.status !== 0) {
    throw new Error(
      "No Docker Engine answers (`docker info` failed). These tests run on a real engine: install docker.io and start " +
        "the daemon (as root: `dockerd >/var/log/dockerd.log 2>&1 &`, then wait for `docker info`).\n" + (r.stderr ?? ""),
    );
  }
}

/**
 * Waits for the exclusive engine lock and returns the function that releases it. The lock is held
 * by a `flock` child process; releasing (or this process dying) ends it.
 */
export async function lockEngine(timeoutMs = LOCK_WAIT_MS): Promise<() => void> {
  const holder = spawn("flock", ["-x", "-w", String(Math.ceil(timeoutMs / 1000)), ENGINE_LOCK, "-c", "echo locked; exec cat"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    holder.stdout.once("data", () => resolve());
    holder.once("exit", (code) => reject(new Error(`could not take the engine lock ${ENGINE_LOCK} (flock exit ${code})`)));
  });
  return () => {
    holder.stdin.end();
    holder.kill();
  };
}
