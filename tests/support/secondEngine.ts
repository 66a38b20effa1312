/**
 * A second Docker daemon that a test starts, restarts and removes: own socket, data root, exec
 * root, pid file and address pool, so restarting it never touches the machine's shared engine.
 *
 * It runs with `--iptables=false --ip-masq=false --bridge=none`: two daemons would otherwise
 * manage the same iptables chains (DOCKER, DOCKER-ISOLATION-*, DOCKER-USER), and the second would
 * rewrite rules the first engine's containers rely on. Without iptables, published loopback ports
 * go through docker-proxy, and networks are not isolated from each other by iptables (isolation is
 * tested on the machine's engine, not here).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

const ADDRESS_POOL = "base=10.214.0.0/16,size=24";

export interface SecondEngine {
  /** DOCKER_HOST of the daemon. */
  host: string;
  /** Copies images from the machine's engine (no registry here). */
  loadImages(images: string[]): void;
  /** Stops the daemon (SIGTERM, as a service stop does) and starts it again with the same flags. */
  restart(): Promise<void>;
  /** Removes its containers, stops it and deletes its directories. */
  remove(): Promise<void>;
}

function answers(host: string): boolean {
  return spawnSync("docker", ["info"], { env: { ...process.env, DOCKER_HOST: host }, stdio: "ignore", timeout: 10_000 }).status === 0;
}

export async function startSecondEngine(): Promise<SecondEngine> {
  // Short path: the exec root holds unix sockets, whose paths are limited to 108 bytes.
  const dir = fs.mkdtempSync("/tmp/mai-e2-");
  const host = `unix://${dir}/docker.sock`;
  let child: ChildProcess | undefined;

  const start = async () => {
    const log = fs.openSync(path.join(dir, "dockerd.log"), "a");
    child = spawn(
      "dockerd",
      [
        `--host=${host}`,
        `--data-root=${dir}/data`,
        `--exec-root=${dir}/exec`,
        `--pidfile=${dir}/docker.pid`,
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
        `--default-address-pool=${ADDRESS_POOL}`,
      ],
      { stdio: ["ignore", log, log] },
    );
    fs.closeSync(log);
    for (let i = 0; i < 160; i++) {
      if (child.exitCode !== null) break;
      if (answers(host)) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    const tail = fs.readFileSync(path.join(dir, "dockerd.log"), "utf8").split("\n").slice(-10).join("\n");
    throw new Error(`the second dockerd did not come up:\n${tail}`);
  };

  const stop = async () => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child!.once("exit", r));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child!.kill("SIGKILL"), 30_000);
    await exited;
    clearTimeout(timer);
  };

  try {
    await start();
  } catch (error) {
    await stop();
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  return {
    host,
    loadImages(images) {
      for (const image of images) {
        const saved = spawnSync("docker", ["save", image], { maxBuffer: 2 * 1024 * 1024 * 1024 });
        if (saved.status !== 0) throw new Error(`docker save ${image}: ${saved.stderr}`);
        const loaded = spawnSync("docker", ["load", "-q"], { input: saved.stdout, env: { ...process.env, DOCKER_HOST: host }, maxBuffer: 64 * 1024 * 1024 });
        if (loaded.status !== 0) throw new Error(`docker load ${image}: ${loaded.stderr}`);
      }
    },
    async restart() {
      await stop();
      await start();
    },
    async remove() {
      if (answers(host)) {
        const env = { ...process.env, DOCKER_HOST: host };
        const ids = spawnSync("docker", ["ps", "-aq"], { env, encoding: "utf8" }).stdout.split("\n").filter(Boolean);
        if (ids.length) spawnSync("docker", ["rm", "-f", ...ids], { env });
      }
      await stop();
      // dockerd unmounts on shutdown; unmount leftovers so the directory can go.
      const mounts = fs.readFileSync("/proc/mounts", "utf8").split("\n").filter((line) => line.includes(dir));
      for (const line of mounts.reverse()) spawnSync("umount", ["-l", line.split(" ")[1]]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
