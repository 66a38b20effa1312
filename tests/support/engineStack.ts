/**
 * A stack for the real-engine tests: client files written for one test run (slugs unique per run,
 * ports free on 127.0.0.1), the program evaluated under the mock runtime for them, and the part of
 * it that runs on a Docker Engine handed to the applier.
 *
 * With the local stack in the checkout (`Pulumi.local.yaml`), its committed config is used as is,
 * except for what must be unique per run: the proxy's ports, the state directory and the engine.
 * Without it (a checkout where the program only targets Hetzner), the prod-like fixture config is
 * used: its hcloud, cloudflare, SSH-command and OpenRouter resources have no local engine to go to
 * and are left out by type (`OUT_OF_SCOPE`), and so are the proxy's resources: that proxy publishes
 * 80/443 on every address, which a test on a shared machine must not do.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { FIXTURE_CONFIG, FIXTURE_SECRET_KEYS } from "../fixtures/stack/config";
import { freePort } from "./caddyProcess";
import * as pulumi from "@pulumi/pulumi";
import { type DeclaredResource, installMocks, runProgram } from "./programHarness";

const REPO_DIR = path.resolve(__dirname, "..", "..");
const LOCAL_STACK_FILE = path.join(REPO_DIR, "Pulumi.local.yaml");

/** Resource types of the prod-like program that do not run on the local Docker Engine. */
export const OUT_OF_SCOPE = [/^hcloud:/, /^cloudflare:/, /^command:remote:/, /^pulumi-nodejs:dynamic\//, /^pulumi:providers:/];

/** The workspace image the tests run: the project's local stand-in, else `$MAI_TEST_WORKSPACE_IMAGE`. */
export function workspaceImage(): string {
  const candidates = [process.env.MAI_TEST_WORKSPACE_IMAGE, "mai-local/workspace:1"].filter(Boolean) as string[];
  for (const image of candidates) {
    if (spawnSync("docker", ["image", "inspect", image], { stdio: "ignore" }).status === 0) return image;
  }
  throw new Error(`No workspace image on the engine (tried ${candidates.join(", ")}): build it with \`npm run local:images\`.`);
}

/** One client file of a test stack. */
export interface TestClient {
  /** Slug suffix; the slug is `t<run>-<key>`. */
  key: string;
  /** Client file body without `port` (added here). */
  yaml?: string;
}

export interface EngineStackOptions {
  /** DOCKER_HOST of the engine the local stack targets; default the machine's engine. */
  dockerHost?: string;
}

export interface EngineStack {
  /** Whether the program runs as the local stack (Caddy included) or prod-like without proxy. */
  local: boolean;
  /** Directory with the client files (edit and call `evaluate()` again for a diff). */
  clientsDir: string;
  /** The local stack's state directory (Caddyfile, backups, scripts) for this run. */
  stateDir: string;
  /** Caddy's loopback ports (local stack). */
  httpPort: number;
  httpsPort: number;
  /** slug of each client key. */
  slug(key: string): string;
  /** Port of each client key. */
  port(key: string): number;
  /** Hostname a client is served at by default. */
  hostname(key: string): string;
  /** Writes (or rewrites) a client file; a new key gets a free port. */
  writeClient(client: TestClient): Promise<void>;
  /** Deletes a client file. */
  removeClient(key: string): void;
  /** Runs the program for the current files; returns the resources to apply to the engine. */
  evaluate(): Promise<DeclaredResource[]>;
  /** Throws unless the local stack (with its Caddy) is what runs. */
  requireLocal(): void;
  /** Removes the temp directories and the host backup directories the engine made for the run. */
  dispose(): void;
}

/** The committed local stack's config as Pulumi hands it to the program (objects as JSON). */
function localStackConfig(): Record<string, string> {
  const file = parseYaml(fs.readFileSync(LOCAL_STACK_FILE, "utf8")) as { config?: Record<string, unknown> };
  return Object.fromEntries(Object.entries(file.config ?? {}).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
}

/**
 * Creates the stack's files. `evaluate()` may be called several times: each call runs the program
 * in a fresh module registry.
 */
export async function createEngineStack(runId: string, clients: TestClient[], options: EngineStackOptions = {}): Promise<EngineStack> {
  const local = fs.existsSync(LOCAL_STACK_FILE);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mai-engine-${runId}-`));
  const clientsDir = path.join(dir, "clients");
  const stateDir = path.join(dir, "state");
  fs.mkdirSync(clientsDir);
  const ports = new Map<string, number>();
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  const slug = (key: string) => `t${runId}-${key}`;
  const backupDirsBefore = new Set(listBackupDirs());
  const createdRoots = ["/srv/mai", BACKUPS_ROOT].filter((d) => !fs.existsSync(d));

  const configFor = (slugs: string[]): { config: Record<string, string>; secretKeys: string[] } => {
    if (local) {
      const config = localStackConfig();
      const servers = JSON.parse(config["mai-hosting:servers"]) as Record<string, Record<string, unknown>>;
      const [name, server] = Object.entries(servers).find(([, s]) => s.kind === "local")!;
      servers[name] = { ...server, httpPort, httpsPort, stateDir, ...(options.dockerHost ? { dockerHost: options.dockerHost } : {}) };
      return { config: { ...config, "mai-hosting:servers": JSON.stringify(servers) }, secretKeys: [] };
    }
    const config: Record<string, string> = {
      ...FIXTURE_CONFIG,
      "mai-hosting:defaultImage": workspaceImage(),
      "mai-hosting:serverType": "ccx63",
      "mai-hosting:openrouterApiKeys": JSON.stringify(Object.fromEntries(slugs.map((s) => [s, `sk-or-v1-test-${s}`]))),
      // Small defaults: 2 cores shared with other work.
      "mai-hosting:defaultResources": JSON.stringify({ cpus: 0.5, memory: "512M", reservations: { cpus: 0.25, memory: "64M" } }),
    };
    delete config["mai-hosting:openrouterProvisioningKey"];
    return { config, secretKeys: FIXTURE_SECRET_KEYS.filter((k) => k in config) };
  };

  const stack: EngineStack = {
    local,
    clientsDir,
    stateDir,
    httpPort,
    httpsPort,
    slug,
    port: (key) => ports.get(key)!,
    hostname: (key) => (local ? `${slug(key)}.localhost` : `${slug(key)}.mai.example.net`),
    async writeClient(client) {
      if (!ports.has(client.key)) ports.set(client.key, await freePort());
      const port = ports.get(client.key)!;
      fs.writeFileSync(path.join(clientsDir, `${slug(client.key)}.yaml`), `port: ${port}\n${client.yaml ?? `name: Test ${client.key}\n`}`);
    },
    removeClient(key) {
      fs.rmSync(path.join(clientsDir, `${slug(key)}.yaml`));
    },
    async evaluate() {
      const slugs = fs.readdirSync(clientsDir).map((f) => f.replace(/\.ya?ml$/, ""));
      const { config, secretKeys } = configFor(slugs);
      const resources = process.env.VITEST ? await evaluateInVitest(config, secretKeys, clientsDir) : await evaluateInNode(config, secretKeys, clientsDir);
      return local ? resources : withoutProxy(resources);
    },
    requireLocal() {
      if (!local) throw new Error("this test needs the local stack (Pulumi.local.yaml: Caddy on the host network, bound to 127.0.0.1)");
    },
    dispose() {
      fs.rmSync(dir, { recursive: true, force: true });
      // The prod-like program bind-mounts /srv/mai/backups/<slug>; Docker created those for this run.
      for (const d of listBackupDirs()) {
        if (!backupDirsBefore.has(d) && d.startsWith(`t${runId}-`)) fs.rmSync(path.join(BACKUPS_ROOT, d), { recursive: true, force: true });
      }
      for (const root of [...createdRoots].reverse()) {
        if (fs.existsSync(root) && fs.readdirSync(root).length === 0) fs.rmdirSync(root);
      }
    },
  };
  for (const client of clients) await stack.writeClient(client);
  return stack;
}

/** Under vitest: a fresh module registry, then the harness. */
async function evaluateInVitest(config: Record<string, string>, secretKeys: string[], clientsDir: string): Promise<DeclaredResource[]> {
  (await import("vitest")).vi.resetModules();
  return (await runProgram({ config, secretKeys, clientsDir })).resources;
}

/**
 * In a plain Node process (the benchmark): the program's own modules are dropped from the require
 * cache and the program is required again, as the plan's evaluator does; the harness's mocks
 * record what it registers.
 */
async function evaluateInNode(config: Record<string, string>, secretKeys: string[], clientsDir: string): Promise<DeclaredResource[]> {
  const keep = [`${path.sep}node_modules${path.sep}`, `${path.sep}tests${path.sep}`, `${path.sep}scripts${path.sep}`];
  for (const id of Object.keys(require.cache)) {
    if (id.startsWith(REPO_DIR + path.sep) && !keep.some((part) => id.includes(part))) delete require.cache[id];
  }
  const resources = await installMocks();
  pulumi.runtime.setAllConfig(config, secretKeys);
  process.env.MAI_CLIENTS_DIR = clientsDir;
  require(path.join(REPO_DIR, "index"));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  await (require("@pulumi/pulumi/runtime/settings") as { waitForRPCs(): Promise<void> }).waitForRPCs();
  await new Promise((resolve) => setTimeout(resolve, 50));
  return resources;
}

const BACKUPS_ROOT = "/srv/mai/backups";
function listBackupDirs(): string[] {
  return fs.existsSync(BACKUPS_ROOT) ? fs.readdirSync(BACKUPS_ROOT) : [];
}

/** Drops the proxy's resources (see the file header); throws if there were none to drop. */
function withoutProxy(resources: DeclaredResource[]): DeclaredResource[] {
  const isProxy = (r: DeclaredResource) => r.name === "proxy" || r.name.startsWith("proxy-") || r.options.parent.endsWith("::proxy");
  if (!resources.some(isProxy)) throw new Error("withoutProxy: the program declares no proxy resources any more; update the engine tests");
  return resources.filter((r) => !isProxy(r));
}

/** The root certificate of the local stack's Caddy internal CA (Caddy makes it on first start). */
export async function proxyRootCa(dockerHost?: string, timeoutMs = 30_000): Promise<Buffer> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = spawnSync("docker", ["exec", "mai-proxy", "cat", "/data/caddy/pki/authorities/local/root.crt"], {
      env: { ...process.env, ...(dockerHost ? { DOCKER_HOST: dockerHost } : {}) },
    });
    if (r.status === 0) return r.stdout;
    if (Date.now() > deadline) throw new Error(`the proxy's internal CA did not appear: ${r.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
