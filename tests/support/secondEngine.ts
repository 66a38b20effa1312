/**
 * A second Docker engine on the same machine, standing for a second server in move tests and the
 * move benchmark: its own `dockerd` with its own socket, data root, exec root, pid file and
 * address pool, removed completely afterwards.
 *
 * It runs with `--iptables=false --ip-masq=false --bridge=none`: two daemons would otherwise
 * manage the same iptables chains (DOCKER, DOCKER-ISOLATION-*, DOCKER-USER), and the second one
 * would rewrite the rules the machine's engine (and every other test using it) relies on.
 * Without iptables, its published loopback ports go through docker-proxy, which is all the tests
 * use; none of its containers needs outbound traffic. Its networks come from 10.213.0.0/16, so
 * its bridges never overlap the first engine's.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as path from "path";

/** Address pool of the second engine's networks (distinct from Docker's default pools). */
export const SECOND_ENGINE_POOL = "base=10.213.0.0/16,size=24";

/** A running second engine. */
export interface SecondEngine {
  /** Directory holding everything of the engine (removed by `stopSecondEngine`). */
  dir: string;
  /** `DOCKER_HOST` value that reaches it. */
  host: string;
  /** The dockerd process. */
  process: ChildProcess;
}

/** Environment for the docker CLI: the machine's engine (host undefined) or the given one. */
export function engineEnv(host: string | undefined): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (host) env.DOCKER_HOST = host;
  else delete env.DOCKER_HOST;
  return env;
}

/** Runs the docker CLI against an engine; returns trimmed stdout, throws with stderr. */
export function dockerOn(host: string | undefined, args: string[], input?: Buffer | string): string {
  return execFileSync("docker", args, {
    env: engineEnv(host),
    input,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    stdio: ["pipe", "pipe", "pipe"],
  }).trim();
}

/** Whether a docker command succeeds against an engine. */
export function dockerOkOn(host: string | undefined, args: string[]): boolean {
  return spawnSync("docker", args, { env: engineEnv(host), stdio: "ignore" }).status === 0;
}

/** Starts a second dockerd and waits until it answers. */
export async function startSecondEngine(): Promise<SecondEngine> {
  // A short path: the exec root holds unix sockets, whose paths are limited to 108 bytes.
  const dir = fs.mkdtempSync("/tmp/mai-eb-");
  const host = `unix://${dir}/docker.sock`;
  const log = fs.openSync(path.join(dir, "dockerd.log"), "w");
  const child = spawn(
    "dockerd",
    [
      `--host=${host}`,
      `--data-root=${dir}/data`,
      `--exec-root=${dir}/exec`,
      `--pidfile=${dir}/docker.pid`,
      "--bridge=none",
      "--iptables=false",
      "--ip-masq=false",
      `--default-address-pool=${SECOND_ENGINE_POOL}`,
    ],
    { stdio: ["ignore", log, log] },
  );
  fs.closeSync(log);
  const engine = { dir, host, process: child };
  for (let i = 0; i < 120; i++) {
    if (child.exitCode !== null) break;
    if (dockerOkOn(host, ["info"])) return engine;
    await new Promise((r) => setTimeout(r, 250));
  }
  const tail = fs.readFileSync(path.join(dir, "dockerd.log"), "utf8").split("\n").slice(-10).join("\n");
  await stopSecondEngine(engine);
  throw new Error(`the second dockerd did not come up:\n${tail}`);
}

/** Copies an image from the machine's engine into the second one. */
export function loadImageInto(engine: SecondEngine, image: string): void {
  const archive = execFileSync("docker", ["save", image], { maxBuffer: 4 * 1024 * 1024 * 1024, env: engineEnv(undefined) });
  dockerOn(engine.host, ["load"], archive);
}

/** Removes the engine's containers, stops the daemon and deletes its directory. */
export async function stopSecondEngine(engine: SecondEngine): Promise<void> {
  try {
    const ids = dockerOn(engine.host, ["ps", "-aq"]).split("\n").filter(Boolean);
    if (ids.length > 0) dockerOn(engine.host, ["rm", "-f", ...ids]);
  } catch {
    // The daemon may already be gone.
  }
  if (engine.process.exitCode === null && engine.process.signalCode === null) {
    const exited = new Promise((r) => engine.process.once("exit", r));
    engine.process.kill("SIGTERM");
    const timer = setTimeout(() => engine.process.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(timer);
  }
  // dockerd unmounts on shutdown; anything left mounted would keep the directory.
  const mounts = fs.readFileSync("/proc/mounts", "utf8").split("\n").filter((line) => line.includes(engine.dir));
  for (const line of mounts.reverse()) spawnSync("umount", ["-l", line.split(" ")[1]]);
  fs.rmSync(engine.dir, { recursive: true, force: true });
}

/** The host scripts a move runs, installed into a bin directory as the stack deploys them. */
export function installMoveScripts(repoRoot: string, binDir: string): void {
  fs.mkdirSync(binDir, { recursive: true });
  for (const name of ["mai-export", "mai-import"]) {
    fs.copyFileSync(path.join(repoRoot, "host", `${name}.sh`), path.join(binDir, name));
    fs.chmodSync(path.join(binDir, name), 0o755);
  }
  // The scripts source their shared library from their own directory.
  fs.copyFileSync(path.join(repoRoot, "host", "mai-lib.sh"), path.join(binDir, "mai-lib.sh"));
}

