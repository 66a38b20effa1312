/**
 * A stack for the real-engine tests: client files written for one test run (slugs unique per run,
 * ports free on 127.0.0.1), the program evaluated under the mock runtime for them, and the part of
 * it that runs on a Docker Engine handed to the applier.
 *
 * Today's program targets a Hetzner server: its hcloud, cloudflare, SSH-command and OpenRouter
 * resources have no local engine to go to and are left out by type (`OUT_OF_SCOPE`), and so are the
 * proxy's resources (`withoutProxy`): its container publishes 80/443 on every address, which a
 * test on a shared machine must not do (the local stack's Caddy binds 127.0.0.1 only).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FIXTURE_CONFIG, FIXTURE_SECRET_KEYS } from "../fixtures/stack/config";
import { freePort } from "./caddyProcess";
import { type DeclaredResource, runProgram } from "./programHarness";

/** Resource types of today's program that do not run on the local Docker Engine. */
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

export interface EngineStack {
  /** Directory with the client files (edit and call `evaluate()` again for a diff). */
  clientsDir: string;
  /** slug of each client key. */
  slug(key: string): string;
  /** Port of each client key. */
  port(key: string): number;
  /** Writes (or rewrites) a client file; a new key gets a free port. */
  writeClient(client: TestClient): Promise<void>;
  /** Deletes a client file. */
  removeClient(key: string): void;
  /** Runs the program for the current files; returns its engine-side resources. */
  evaluate(): Promise<DeclaredResource[]>;
  /** Removes the temp directory and the host backup directories the engine made for the run. */
  dispose(): void;
}

/**
 * Creates the stack's files. `evaluate()` may be called several times: each call runs the program
 * in a fresh module registry (vitest: `vi.resetModules()` is done here through a unique import).
 */
export async function createEngineStack(runId: string, clients: TestClient[]): Promise<EngineStack> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mai-engine-${runId}-`));
  const clientsDir = path.join(dir, "clients");
  fs.mkdirSync(clientsDir);
  const ports = new Map<string, number>();
  const slug = (key: string) => `t${runId}-${key}`;
  const backupDirsBefore = new Set(listBackupDirs());
  const stack: EngineStack = {
    clientsDir,
    slug,
    port: (key) => ports.get(key)!,
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
      const config = {
        ...FIXTURE_CONFIG,
        "mai-hosting:defaultImage": workspaceImage(),
        "mai-hosting:serverType": "ccx63",
        "mai-hosting:openrouterApiKeys": JSON.stringify(Object.fromEntries(slugs.map((s) => [s, `sk-or-v1-test-${s}`]))),
        // Small defaults: 2 cores shared with other work.
        "mai-hosting:defaultResources": JSON.stringify({ cpus: 0.5, memory: "512M", reservations: { cpus: 0.25, memory: "64M" } }),
      };
      delete (config as Record<string, string>)["mai-hosting:openrouterProvisioningKey"];
      const { vi } = await import("vitest");
      vi.resetModules();
      const run = await runProgram({ config, secretKeys: FIXTURE_SECRET_KEYS.filter((k) => k in config), clientsDir });
      return run.resources;
    },
    dispose() {
      fs.rmSync(dir, { recursive: true, force: true });
      // The program bind-mounts /srv/mai/backups/<slug>; Docker created those for this run's slugs.
      for (const d of listBackupDirs()) {
        if (!backupDirsBefore.has(d) && d.startsWith(`t${runId}-`)) fs.rmSync(path.join(BACKUPS_ROOT, d), { recursive: true, force: true });
      }
    },
  };
  for (const client of clients) await stack.writeClient(client);
  return stack;
}

const BACKUPS_ROOT = "/srv/mai/backups";
function listBackupDirs(): string[] {
  return fs.existsSync(BACKUPS_ROOT) ? fs.readdirSync(BACKUPS_ROOT) : [];
}

/** Drops the proxy's resources (see the file header); throws if there were none to drop. */
export function withoutProxy(resources: DeclaredResource[]): DeclaredResource[] {
  const isProxy = (r: DeclaredResource) => r.name === "proxy" || r.name.startsWith("proxy-") || r.options.parent.endsWith("::proxy");
  if (!resources.some(isProxy)) throw new Error("withoutProxy: the program declares no proxy resources any more; update the engine tests");
  return resources.filter((r) => !isProxy(r));
}
