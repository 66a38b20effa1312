/**
 * The host side of a deployed real-engine stack (realStack.ts): its host tools as the stack
 * installed them under `<stateDir>/bin`, run through the shell prefix the stack itself exports for
 * the server (`servers.<name>.shell`), and waiting for a client to answer.
 */
import { execFile, spawn } from "node:child_process";
import * as path from "node:path";
import { localHostPaths, shellQuote } from "../../policy/localHost";
import { request } from "./httpClient";
import { REPO_DIR, type RealStack } from "./realStack";

/** How a host tool run ended. */
export interface HostRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr, for assertion messages. */
  output: string;
}

export interface HostToolOptions {
  /** Server name; the stack's default server when omitted. */
  server?: string;
  /** Extra environment (e.g. MAI_NOW, MAI_TIMERS_DIR). */
  env?: NodeJS.ProcessEnv;
  /** Kill the run after this long; default 180 s. */
  timeoutMs?: number;
}

/** The prefix the stack exports for running commands on a server (e.g. `env DOCKER_HOST=… bash -c`). */
export async function serverShell(stack: RealStack, server = stack.defaultServer): Promise<string> {
  const servers = (await stack.outputs()).servers as Record<string, { shell?: string }> | undefined;
  const shell = servers?.[server]?.shell;
  if (!shell) throw new Error(`the stack exports no shell for server ${server} (outputs.servers)`);
  return shell;
}

/**
 * Runs `<stateDir>/bin/<tool> args…` through the server's exported shell prefix, which carries
 * DOCKER_HOST and the state, lock, export, backup and config directories: the tools read and
 * write the same files as `npm run status` and the stack's timers.
 */
export async function runHostTool(stack: RealStack, tool: string, args: string[] = [], options: HostToolOptions = {}): Promise<HostRun> {
  const server = options.server ?? stack.defaultServer;
  const paths = localHostPaths(stack.stateDir(server));
  const shell = await serverShell(stack, server);
  const command = [`${paths.binDir}/${tool}`, ...args].map(shellQuote).join(" ");
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", `${shell} ${shellQuote(command)}`], {
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGTERM"), options.timeoutMs ?? 180_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, output: `${stdout}${stderr}` });
    });
  });
}

/** Polls `check` every `intervalMs` until it returns true; throws naming `what` after `timeoutMs`. */
export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 120_000, intervalMs = 250): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await Promise.resolve().then(check).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Whether a client answers /health on its loopback port right now. */
export function answersHealth(stack: RealStack, key: string, timeoutMs = 2000): Promise<boolean> {
  return request({ port: stack.port(key), hostname: "localhost" }, "/health", { timeoutMs }).then(
    (reply) => reply.status === 200,
    () => false,
  );
}

/** Waits until a client answers /health on its loopback port. */
export function answering(stack: RealStack, key: string, timeoutMs = 90_000): Promise<void> {
  return until(`${stack.container(key)} to answer /health on 127.0.0.1:${stack.port(key)}`, () => answersHealth(stack, key), timeoutMs, 200);
}

/** `npm run status` on a test stack: its stack file and client files, its servers' engines and state directories. */
export function runStatus(stack: RealStack, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      path.join(REPO_DIR, "node_modules", ".bin", "tsx"),
      [path.join(REPO_DIR, "scripts", "status.ts"), "--stack", "test", "--clients", stack.clientsDir, ...args],
      { cwd: stack.workDir, env: { ...process.env, ...env }, timeout: 120_000, maxBuffer: 1 << 24 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
    );
  });
}
