/**
 * Runs the stack's host tools (`mai-status`, `mai-sample`) on a server the way the stack reaches
 * it: over SSH as root for a Hetzner server, or on this machine for the local engine. Read-only
 * callers (npm run status) use this; tests use the local runner.
 */
import { spawn } from "child_process";
import * as path from "path";

/** What a run printed and how it ended. */
export interface HostRunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A server the tools can run on. */
export interface HostRunner {
  /** Server name (stack config). */
  readonly server: string;
  /** How it is reached, for messages (`local`, `ssh root@203.0.113.7`). */
  readonly via: string;
  /** Runs one host tool with arguments; never throws for a non-zero exit. */
  run(tool: HostTool, args?: readonly string[]): Promise<HostRunResult>;
}

/** The tools `npm run status` may run: both only read. */
export type HostTool = "mai-status" | "mai-sample";

const REPO_HOST_DIR = path.join(__dirname, "..", "..", "host");

function spawnCollect(file: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<HostRunResult> {
  return new Promise((resolve) => {
    const child = spawn(file, [...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      resolve({ code: null, stdout: "", stderr: error.message });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(stdout).toString("utf8"), stderr: Buffer.concat(stderr).toString("utf8") });
    });
  });
}

/**
 * The local engine: runs the tool from `binDir` when given (where the local stack installed it),
 * otherwise the repository's copy, with this process's environment (MAI_* overrides apply).
 */
export function localRunner(server: string, options: { binDir?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): HostRunner {
  return {
    server,
    via: "local",
    run: (tool, args = []) => {
      const file = options.binDir ? path.join(options.binDir, tool) : path.join(REPO_HOST_DIR, `${tool}.sh`);
      return spawnCollect("bash", [file, ...args], options.env ?? process.env, options.timeoutMs ?? 120_000);
    },
  };
}

/** A Hetzner server: `ssh root@<address> /usr/local/sbin/<tool>` with the operator's SSH agent or keys, no prompts. */
export function sshRunner(server: string, address: string, options: { user?: string; binDir?: string; timeoutMs?: number } = {}): HostRunner {
  const user = options.user ?? "root";
  // Absolute path: a non-interactive SSH session's PATH need not include sbin directories.
  const binDir = options.binDir ?? "/usr/local/sbin";
  const sshArgs = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "StrictHostKeyChecking=accept-new", `${user}@${address}`];
  return {
    server,
    via: `ssh ${user}@${address}`,
    run: (tool, args = []) => {
      // Arguments are fixed words (--summary); quote anyway so nothing is re-split remotely.
      const remote = [`${binDir}/${tool}`, ...args].map((word) => `'${word.replace(/'/g, `'\\''`)}'`).join(" ");
      return spawnCollect("ssh", [...sshArgs, remote], process.env, options.timeoutMs ?? 120_000);
    },
  };
}
