/**
 * What every real-engine test (`tests/*.engine.test.ts`) needs: a Docker engine that answers
 * (or a failure that says how to start one — never a silent skip), the locally built images, an
 * exclusive lock on the engine shared by every test process on the machine, unique run ids, and
 * cleanup of everything a run labelled as its own. Plain Node (no vitest import), so scripts
 * such as the benchmarks use it too; the vitest hooks of a suite are in testEngine.ts.
 */
import { execFile, execFileSync } from "child_process";
import { randomBytes } from "crypto";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { LOCAL_IMAGES } from "../../policy/localImages";
import { acquireFileLock, type HeldLock } from "../../scripts/lib/fileLock";

const run = promisify(execFile);

/** The lock every process using the shared engine takes (`flock` on this file works too). */
export const ENGINE_LOCK = path.join(os.tmpdir(), "mai-hosting-engine.lock");

/** Label carried by every container, network and volume a test run creates. */
export const TEST_RUN_LABEL = "mai.test-run";

const HOW_TO_START =
  "The real-engine tests need a Docker Engine. On Debian, as root: `apt-get install docker.io`, " +
  "start the daemon with `dockerd >/var/log/dockerd.log 2>&1 &`, wait until `docker info` answers, " +
  "then build the local images with `npm run local:images` (`bash .ci/run` does all of this).";

/** Throws, saying how to start one, unless a Docker engine answers `docker info`. */
export function requireEngine(): void {
  try {
    execFileSync("docker", ["info", "--format", "{{.ServerVersion}}"], { stdio: ["ignore", "pipe", "pipe"], timeout: 20_000 });
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { stderr?: Buffer };
    const reason =
      failure.code === "ENOENT"
        ? "the docker command is not installed"
        : (failure.stderr?.toString().trim().split("\n").find((line) => line.trim()) ?? failure.message);
    throw new Error(`No Docker engine answers (${reason}). ${HOW_TO_START}`);
  }
}

/** Throws, saying how to install it, unless the Pulumi CLI answers `pulumi version`. */
export function requirePulumi(): string {
  try {
    return execFileSync("pulumi", ["version"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000, env: { ...process.env, PULUMI_SKIP_UPDATE_CHECK: "true" } }).trim();
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    throw new Error(
      `${missing ? "The Pulumi CLI is not on PATH" : `\`pulumi version\` failed (${(error as Error).message.split("\n")[0]})`}: the real-engine tests run real \`pulumi up\`. ` +
        "Install it from pulumi.com/docs/install, or offline with `eval \"$(bash ../shared/toolchain/install.sh)\"` (README, Set up).",
    );
  }
}

/** Throws, saying how to build them, unless every image the local stack uses is on the engine. */
export function requireImages(images: readonly string[] = LOCAL_IMAGES): void {
  const missing = images.filter((image) => {
    try {
      execFileSync("docker", ["image", "inspect", "-f", "{{.Id}}", image], { stdio: "ignore" });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new Error(`Missing local image(s) ${missing.join(", ")}: build them with \`npm run local:images\` (needs root, debootstrap, busybox-static and Go).`);
  }
}

/**
 * Takes the exclusive engine lock, waiting up to `timeoutMs` for other test processes. Use in
 * `beforeAll` (with a hook timeout above `timeoutMs`) and release in `afterAll`.
 */
export function acquireEngineLock(timeoutMs = 10 * 60_000): Promise<HeldLock> {
  return acquireFileLock(ENGINE_LOCK, timeoutMs, "another process using the Docker engine");
}

/** Runs `fn` while holding the exclusive engine lock (not re-entrant: do not nest it in one process). */
export async function withEngineLock<T>(fn: () => Promise<T> | T, timeoutMs?: number): Promise<T> {
  const lock = await acquireEngineLock(timeoutMs);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** A new id for one test run's objects (a valid Docker name part), e.g. `t3f9a01c2`. */
export function newRunId(): string {
  return `t${randomBytes(4).toString("hex")}`;
}

/** `--label` value marking an object as a run's own. */
export function runLabel(runId: string): string {
  return `${TEST_RUN_LABEL}=${runId}`;
}

/** Runs a docker command; resolves with its trimmed stdout, rejects with its stderr. */
export async function docker(args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await run("docker", args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return stdout.trim();
  } catch (error) {
    const failure = error as Error & { stderr?: string };
    throw new Error(`docker ${args.join(" ")}: ${failure.stderr?.trim() || failure.message}`);
  }
}

/** The 127.0.0.1 port Docker published for a container's `internal` port (e.g. "8080/tcp"). */
export async function publishedPort(container: string, internal: string): Promise<number> {
  const bindings = (await docker(["port", container, internal])).split("\n");
  const loopback = bindings.find((binding) => binding.startsWith("127.0.0.1:"));
  if (!loopback) throw new Error(`${container} publishes ${internal} on no loopback address (${bindings.join(", ")})`);
  return Number(loopback.split(":").pop());
}

/** `docker inspect` of one object, parsed. */
export async function inspect<T = Record<string, unknown>>(nameOrId: string): Promise<T> {
  return (JSON.parse(await docker(["inspect", nameOrId])) as T[])[0];
}

/** What a cleanup removed. */
export interface Cleanup {
  /** Containers removed. */
  containers: string[];
  /** Networks removed. */
  networks: string[];
  /** Volumes removed. */
  volumes: string[];
}

/**
 * Removes every container (with its anonymous volumes), network and volume carrying `label`
 * (`key=value`, e.g. `runLabel(runId)`), in that order. Only labelled objects are touched.
 */
export async function cleanupByLabel(label: string): Promise<Cleanup> {
  if (!/^[^=\s]+=[^\s]+$/.test(label)) throw new Error(`cleanupByLabel needs a key=value label, got "${label}"`);
  const list = async (args: string[]): Promise<string[]> => (await docker([...args, "--filter", `label=${label}`])).split("\n").filter(Boolean);
  const containers = await list(["ps", "-aq"]);
  if (containers.length) await docker(["rm", "-f", "-v", ...containers]);
  const networks = await list(["network", "ls", "-q"]);
  if (networks.length) await docker(["network", "rm", ...networks]);
  const volumes = await list(["volume", "ls", "-q"]);
  if (volumes.length) await docker(["volume", "rm", "-f", ...volumes]);
  return { containers, networks, volumes };
}
