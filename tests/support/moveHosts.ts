/**
 * Helpers for the move benchmark (scripts/bench-move.ts), which runs the move script between two
 * engines on one machine without Pulumi: the docker CLI against either engine, and the host
 * scripts a move runs, installed as the stack's host tooling installs them. The second engine
 * itself is tests/support/secondEngine.ts. (The move test deploys with a real `pulumi up`,
 * tests/move.engine.test.ts.)
 */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

/** Environment for the docker CLI: the machine's engine (host undefined) or the given one. */
export function engineEnv(host: string | undefined): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (host) env.DOCKER_HOST = host;
  else delete env.DOCKER_HOST;
  return env;
}

/** Runs the docker CLI against an engine; returns trimmed stdout, throws with stderr. */
export function dockerOn(host: string | undefined, args: string[], input?: Buffer | string): string {
  return execFileSync("docker", args, { env: engineEnv(host), input, encoding: "utf8", maxBuffer: 64 * 1024 * 1024, stdio: ["pipe", "pipe", "pipe"] }).trim();
}

/** Whether a docker command succeeds against an engine. */
export function dockerOkOn(host: string | undefined, args: string[]): boolean {
  return spawnSync("docker", args, { env: engineEnv(host), stdio: "ignore" }).status === 0;
}

/** The host scripts a move runs, installed into a server's bin directory as the stack deploys them. */
export function installMoveScripts(repoRoot: string, binDir: string): void {
  fs.mkdirSync(binDir, { recursive: true });
  for (const name of ["mai-export", "mai-import"]) {
    fs.copyFileSync(path.join(repoRoot, "host", `${name}.sh`), path.join(binDir, name));
    fs.chmodSync(path.join(binDir, name), 0o755);
  }
  // The scripts source their shared library from their own directory.
  fs.copyFileSync(path.join(repoRoot, "host", "mai-lib.sh"), path.join(binDir, "mai-lib.sh"));
}
