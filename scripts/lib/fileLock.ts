/**
 * Exclusive locks shared by every process on the machine, through `flock(1)` on a lock file: a
 * child `flock` holds the lock for as long as its stdin stays open. Releasing closes stdin; if
 * this process dies, the kernel closes it too, so a crashed holder never leaves a stale lock.
 * Other tools take the same lock with `flock <file> <command>`.
 */
import { spawn } from "child_process";

/** A held lock. */
export interface HeldLock {
  /** The lock file. */
  path: string;
  /** Releases the lock (idempotent); resolves once it is free for others. */
  release(): Promise<void>;
}

/** Waits for the exclusive lock on `path` (created if missing), at most `timeoutMs`. */
export function acquireFileLock(path: string, timeoutMs: number, holderDescription = "another process"): Promise<HeldLock> {
  return new Promise((resolve, reject) => {
    const waitSeconds = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
    // `exec cat`: the lock lives until stdin closes, whoever closes it.
    const child = spawn("flock", ["--exclusive", "--wait", waitSeconds, path, "sh", "-c", "echo locked; exec cat >/dev/null"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    let locked = false;
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on("data", (chunk: Buffer) => {
      if (locked || !chunk.toString().includes("locked")) return;
      locked = true;
      const exited = new Promise<void>((done) => child.once("exit", () => done()));
      let released = false;
      resolve({
        path,
        release: () => {
          if (!released) {
            released = true;
            child.stdin.end();
          }
          return exited;
        },
      });
    });
    child.on("error", (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          error.code === "ENOENT"
            ? "`flock` is not installed (Debian package util-linux); it guards the shared Docker engine and image builds"
            : `flock failed to start: ${error.message}`,
        ),
      ),
    );
    child.on("exit", (code) => {
      if (locked) return;
      reject(
        new Error(
          code === 1
            ? `${path} stayed locked by ${holderDescription} for ${waitSeconds} s; try again when it is done`
            : `flock on ${path} failed (exit ${code}): ${stderr.trim()}`,
        ),
      );
    });
  });
}

/** Runs `fn` while holding the lock on `path`; the lock is released whatever `fn` does. */
export async function withFileLock<T>(path: string, timeoutMs: number, fn: () => Promise<T> | T, holderDescription?: string): Promise<T> {
  const lock = await acquireFileLock(path, timeoutMs, holderDescription);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
