/**
 * Runs the real Caddy binary (the pinned release, built by `npm run caddy:install`) on loopback
 * ports with its own data, config and admin address (`host:port`, or `unix/<socket path>` as the
 * stack's proxies use), and applies configurations through the production script
 * `host/caddy-apply.sh`.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { CADDY_VERSION } from "../../policy/caddyRelease";

const execFileAsync = promisify(execFile);
const REPO_DIR = path.resolve(__dirname, "..", "..");

/** Path of the Caddy binary: `$CADDY_BIN`, else the install script's cache; throws when missing. */
export function caddyBinary(): string {
  const fromEnv = process.env.CADDY_BIN;
  const cacheHome = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  const candidate = fromEnv || path.join(cacheHome, "mai-hosting", `caddy-${CADDY_VERSION}`, "caddy");
  if (!existsSync(candidate)) {
    throw new Error(
      `Caddy ${CADDY_VERSION} not found at ${candidate}. Run \`npm run caddy:install\` ` +
        "(or set CADDY_BIN to a Caddy binary of that release).",
    );
  }
  return candidate;
}

/** Ports this process handed out: the kernel may offer a just-closed port again, to a second caller. */
const handedOut = new Set<number>();

/** A free TCP port on 127.0.0.1 (also used for Caddy's HTTP/3 UDP listener), never one this process gave out before. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.unref();
      server.on("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

/** A Caddy process under test. */
export interface CaddyInstance {
  /** Directory holding the Caddyfile (host dir and config dir at once in tests). */
  configDir: string;
  /** Admin API address (host:port or unix/<path>). */
  adminAddress: string;
  /** GET on the admin API (`/config/` is the loaded configuration as JSON). */
  admin(path: string): Promise<{ status: number; body: string }>;
  /** Root certificate of Caddy's internal CA, to trust in clients. */
  rootCa: Buffer;
  /** Writes `Caddyfile.next` and runs the production apply script; returns its result. */
  apply(caddyfile: string): Promise<{ code: number; output: string }>;
  /** Everything Caddy logged so far. */
  logs(): string;
  /** Kills Caddy and removes its directories. */
  stop(): Promise<void>;
}

/**
 * Installs `caddyfile` with the apply script (proxy not running: install only), then starts
 * Caddy on it and waits until its admin API answers and its internal CA exists.
 */
export async function startCaddy(caddyfile: string, adminAddress: string): Promise<CaddyInstance> {
  const binary = caddyBinary();
  const root = mkdtempSync(path.join(os.tmpdir(), "mai-caddy-"));
  const configDir = path.join(root, "config");
  const env = {
    ...process.env,
    XDG_DATA_HOME: path.join(root, "data"),
    XDG_CONFIG_HOME: path.join(root, "xdg-config"),
    HOME: root,
  };
  mkdirSync(configDir);
  const scriptEnv: NodeJS.ProcessEnv = {
    ...env,
    CADDY_HOST_DIR: configDir,
    CADDY_CONFIG_DIR: configDir,
    CADDY: binary,
    CADDY_OFFLINE: binary,
    // Like the production check (is the proxy container running?): is the process alive?
    CADDY_PROXY_RUNNING: "false",
  };
  const apply = async (content: string): Promise<{ code: number; output: string }> => {
    writeFileSync(path.join(configDir, "Caddyfile.next"), content);
    try {
      const { stdout, stderr } = await execFileAsync(
        "bash",
        [path.join(REPO_DIR, "host", "caddy-apply.sh")],
        { env: scriptEnv },
      );
      return { code: 0, output: stdout + stderr };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      return { code: failed.code ?? 1, output: `${failed.stdout ?? ""}${failed.stderr ?? ""}` };
    }
  };

  const installed = await apply(caddyfile);
  if (installed.code !== 0) throw new Error(`initial Caddyfile refused:\n${installed.output}`);

  let log = "";
  const child: ChildProcess = spawn(
    binary,
    ["run", "--config", path.join(configDir, "Caddyfile"), "--adapter", "caddyfile"],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  scriptEnv.CADDY_PROXY_RUNNING = `kill -0 ${child.pid}`;
  child.stdout?.on("data", (chunk: Buffer) => (log += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
    rmSync(root, { recursive: true, force: true });
  };

  const rootCaPath = path.join(env.XDG_DATA_HOME, "caddy", "pki", "authorities", "local", "root.crt");
  const deadline = Date.now() + 15_000;
  while ((await adminGet(adminAddress, "/config/").catch(() => undefined))?.status !== 200 || !existsSync(rootCaPath)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`Caddy did not start:\n${log.slice(-4000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    configDir,
    adminAddress,
    admin: (requestPath) => adminGet(adminAddress, requestPath),
    rootCa: readFileSync(rootCaPath),
    apply,
    logs: () => log,
    stop,
  };
}

/** The socket path of a `unix/<path>` admin address, else undefined. */
function adminSocketPath(adminAddress: string): string | undefined {
  return adminAddress.startsWith("unix/") ? adminAddress.slice("unix/".length) : undefined;
}

/**
 * A GET on Caddy's admin API at `adminAddress`. Plain node http: fetch() adds Sec-Fetch-Mode,
 * which the admin API's origin check refuses; over a unix socket Caddy expects an empty Host.
 */
export function adminGet(adminAddress: string, requestPath: string): Promise<{ status: number; body: string }> {
  const socketPath = adminSocketPath(adminAddress);
  const [host, port] = adminAddress.split(":");
  const target = socketPath ? { socketPath, headers: { Host: "" } } : { host, port: Number(port) };
  return new Promise((resolve, reject) => {
    const probe = http.get({ ...target, path: requestPath, timeout: 5_000 }, (response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => (body += chunk.toString()));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
    });
    probe.on("timeout", () => probe.destroy(new Error("admin API timed out")));
    probe.on("error", reject);
  });
}
