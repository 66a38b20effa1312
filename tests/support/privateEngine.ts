/**
 * A Docker daemon of the tests' own: own socket, data root, exec root, pid file and address pool,
 * so that nothing a test does reaches the machine's engine or a user's stack on it, and a test
 * may stop, restart or wipe it freely.
 *
 * It runs with `--iptables=false --ip-masq=false --bridge=none`: two daemons in one network
 * namespace would otherwise manage the same iptables chains (DOCKER, DOCKER-ISOLATION-*,
 * DOCKER-USER) and the second would rewrite rules the machine engine's containers rely on. Without
 * iptables, published loopback ports go through docker-proxy, and containers have no NAT to the
 * outside. `--dns=127.0.0.1`: Docker's embedded DNS forwards a name it does not know (another
 * network's container, say) to the daemon's upstream servers, by default the machine's own
 * resolvers, dialled from the container's network namespace; with the loopback as the only
 * upstream such a query never leaves the container (seen: without it, a lookup of an unknown name
 * sent two packets toward the machine's resolver, dropped only by the machine engine's FORWARD
 * policy).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { LOCAL_IMAGES } from "../../policy/localImages";
import { requireEngine, requireImages, requirePulumi } from "./engine";
import { localStackConfig } from "./realStack";

export interface PrivateEngineOptions {
  /** Directory for the socket, exec root and log; short (unix socket paths are limited to 108 bytes). */
  dir: string;
  /** Data root; default `<dir>/data`. A persistent one keeps loaded images between runs. */
  dataRoot?: string;
  /** `--default-address-pool` of its networks (must not overlap the machine engine's pools). */
  addressPool: string;
}

export interface PrivateEngine {
  /** DOCKER_HOST of the daemon. */
  host: string;
  /** Environment for a docker CLI talking to it. */
  env: NodeJS.ProcessEnv;
  /** Copies images from another engine (no registry here); skips those it already has. */
  loadImages(images: readonly string[], fromHost: string): void;
  /** Removes every container, volume and user-defined network on it (all of them are the tests'). */
  wipe(): void;
  /** Stops the daemon (SIGTERM, as a service stop does) and starts it again with the same flags. */
  restart(): Promise<void>;
  /** Stops it (SIGTERM), keeping its directories. */
  stop(): Promise<void>;
  /** Wipes it, stops it and deletes its socket and exec directory; the data root keeps the images. */
  close(): Promise<void>;
  /** Wipes it, stops it and deletes its directories (the data root too). */
  remove(): Promise<void>;
}

function answers(host: string): boolean {
  return spawnSync("docker", ["info"], { env: { ...process.env, DOCKER_HOST: host }, stdio: "ignore", timeout: 10_000 }).status === 0;
}

function dockerOn(host: string, args: string[]): string {
  const r = spawnSync("docker", args, { env: { ...process.env, DOCKER_HOST: host }, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`docker ${args.join(" ")} (${host}): ${r.stderr.trim()}`);
  return r.stdout.trim();
}

const lines = (text: string) => text.split("\n").filter(Boolean);

/** Image id on an engine, or undefined when it lacks the image. */
function imageId(host: string, image: string): string | undefined {
  const r = spawnSync("docker", ["image", "inspect", "-f", "{{.Id}}", image], { env: { ...process.env, DOCKER_HOST: host }, encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Kills a daemon left running from a run that died (its pid file is in our exec root). */
async function killLeftover(pidFile: string): Promise<void> {
  if (!fs.existsSync(pidFile)) return;
  const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!pid || !alive()) return;
  process.kill(pid, "SIGTERM");
  for (let i = 0; i < 120 && alive(); i++) await new Promise((r) => setTimeout(r, 250));
  if (alive()) process.kill(pid, "SIGKILL");
}

export async function startPrivateEngine(options: PrivateEngineOptions): Promise<PrivateEngine> {
  const { dir } = options;
  const dataRoot = options.dataRoot ?? path.join(dir, "data");
  fs.mkdirSync(dir, { recursive: true });
  const host = `unix://${dir}/docker.sock`;
  const pidFile = path.join(dir, "docker.pid");
  const logFile = path.join(dir, "dockerd.log");
  let child: ChildProcess | undefined;

  const start = async () => {
    await killLeftover(pidFile);
    const log = fs.openSync(logFile, "a");
    child = spawn(
      "dockerd",
      [
        `--host=${host}`,
        `--data-root=${dataRoot}`,
        `--exec-root=${dir}/exec`,
        `--pidfile=${pidFile}`,
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
        "--dns=127.0.0.1",
        `--default-address-pool=${options.addressPool}`,
      ],
      { stdio: ["ignore", log, log] },
    );
    fs.closeSync(log);
    for (let i = 0; i < 240; i++) {
      if (child.exitCode !== null) break;
      if (answers(host)) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    const tail = fs.readFileSync(logFile, "utf8").split("\n").slice(-10).join("\n");
    throw new Error(`a private dockerd (${host}) did not come up:\n${tail}`);
  };

  const stop = async () => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child!.once("exit", r));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child!.kill("SIGKILL"), 30_000);
    await exited;
    clearTimeout(timer);
  };

  const wipe = () => {
    const containers = lines(dockerOn(host, ["ps", "-aq"]));
    if (containers.length) dockerOn(host, ["rm", "-f", "-v", ...containers]);
    const networks = lines(dockerOn(host, ["network", "ls", "-q", "--filter", "type=custom"]));
    if (networks.length) dockerOn(host, ["network", "rm", ...networks]);
    const volumes = lines(dockerOn(host, ["volume", "ls", "-q"]));
    if (volumes.length) dockerOn(host, ["volume", "rm", "-f", ...volumes]);
  };

  // Wipes and stops the daemon and deletes its socket/exec directory, the data root too when asked.
  const shutDown = async (dataToo: boolean) => {
    if (answers(host)) wipe();
    await stop();
    // dockerd unmounts on shutdown; unmount leftovers so the directories can go.
    const mounts = fs.readFileSync("/proc/mounts", "utf8").split("\n").filter((line) => line.includes(dir) || (dataToo && line.includes(dataRoot)));
    for (const line of mounts.reverse()) spawnSync("umount", ["-l", line.split(" ")[1]]);
    if (dataToo) fs.rmSync(dataRoot, { recursive: true, force: true });
    if (!dataRoot.startsWith(`${dir}/`) || dataToo) fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    await start();
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    host,
    env: { ...process.env, DOCKER_HOST: host },
    loadImages(images, fromHost) {
      for (const image of images) {
        const wanted = imageId(fromHost, image);
        if (!wanted) throw new Error(`image ${image} is not on ${fromHost}: build it with \`npm run local:images\``);
        if (imageId(host, image) === wanted) continue;
        // bash for pipefail: a failed save must fail the copy.
        const copy = 'set -o pipefail; DOCKER_HOST="$FROM" docker save "$IMAGE" | DOCKER_HOST="$TO" docker load -q';
        const loaded = spawnSync("bash", ["-c", copy], { env: { ...process.env, FROM: fromHost, TO: host, IMAGE: image }, encoding: "utf8" });
        if (loaded.status !== 0) throw new Error(`docker load ${image}: ${loaded.stderr}`);
      }
    },
    wipe,
    async restart() {
      await stop();
      await start();
    },
    stop,
    async close() {
      await shutDown(false);
    },
    async remove() {
      await shutDown(true);
    },
  };
}

// --- The tests' engines -------------------------------------------------------------------------
// Why a daemon of the tests' own rather than the machine's engine under unusual names: the local
// stack owns fixed names (`mai-proxy`, `mai-caddy-data`, `mai-shared`) that a user's own stack on
// this machine holds (running, or destroyed with its volumes retained), and tests restart and wipe
// their engine. The data root is kept between runs (only images stay), so the local images are
// copied from the machine's engine once per image version. One test file holds it at a time.

/** Where the test engine keeps its images between runs. */
export const TEST_ENGINE_DATA = "/var/tmp/mai-hosting-tests/engine";
/** Its socket and exec root (short: unix socket paths are limited to 108 bytes). */
const TEST_ENGINE_DIR = "/tmp/mai-hosting-test-engine";
/** Its networks' addresses: apart from the machine engine's 172.17/16+ and 192.168/16 pools. */
const TEST_ENGINE_POOL = "base=10.213.0.0/16,size=24";
/** A second private engine's (a second server in move and restart tests). */
export const SECOND_ENGINE_POOL = "base=10.214.0.0/16,size=24";
/** Where the second engine keeps its images between runs (copying them takes a minute or more). */
const SECOND_ENGINE_DATA = "/var/tmp/mai-hosting-tests/engine-2";

/** DOCKER_HOST of the machine's own engine (where `npm run local:images` builds the images). */
export const MACHINE_DOCKER_HOST = process.env.MAI_MACHINE_DOCKER_HOST || process.env.DOCKER_HOST || "unix:///var/run/docker.sock";

/** Starts the test engine with the local images on it, nothing else. Call while holding the engine lock. */
export async function startTestEngine(): Promise<PrivateEngine> {
  requirePulumi();
  requireEngine();
  requireImages();
  const engine = await startPrivateEngine({ dir: TEST_ENGINE_DIR, dataRoot: TEST_ENGINE_DATA, addressPool: TEST_ENGINE_POOL });
  engine.wipe();
  engine.loadImages(LOCAL_IMAGES, MACHINE_DOCKER_HOST);
  return engine;
}

/**
 * A second private engine for one test file, wiped at the start; `close()` it afterwards (its
 * images stay for the next file). Call while holding the engine lock.
 */
export async function startSecondTestEngine(dir: string): Promise<PrivateEngine> {
  const engine = await startPrivateEngine({ dir, dataRoot: SECOND_ENGINE_DATA, addressPool: SECOND_ENGINE_POOL });
  engine.wipe();
  engine.loadImages(LOCAL_IMAGES, MACHINE_DOCKER_HOST);
  return engine;
}

/** The name of the committed local stack's local server (clients run there by default). */
export function localServerName(): string {
  const servers = localStackConfig().servers as Record<string, { kind: string }>;
  return Object.entries(servers).find(([, s]) => s.kind === "local")![0];
}

