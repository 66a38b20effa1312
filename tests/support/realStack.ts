/**
 * A real Pulumi stack of the program for the real-engine tests: the Pulumi CLI (`pulumi` on PATH,
 * see ../shared/toolchain or pulumi.com/docs/install) driven through the Automation API, a file
 * backend and a throw-away passphrase in a temporary directory, and the committed local stack's
 * configuration (`Pulumi.local.yaml`) with what must be the test's own: its servers' engines
 * (private daemons, testEngine.ts), state directories and Caddy ports, and its client files
 * (slugs unique per run, free loopback ports).
 *
 * The program is the checkout's own `index.ts` (the work directory's Pulumi.yaml points `main` at
 * it), so nothing is written into the checkout: no `Pulumi.<stack>.yaml`, no state.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LocalWorkspace, type EngineEvent, type Stack } from "@pulumi/pulumi/automation";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { LOCAL_WORKSPACE_IMAGE } from "../../policy/localImages";
import { freePort } from "./caddyProcess";

export const REPO_DIR = path.resolve(__dirname, "..", "..");
const LOCAL_STACK_FILE = path.join(REPO_DIR, "Pulumi.local.yaml");
const PROJECT = "mai-hosting";

/** What the engine did (or, for a preview, would do) to each resource, keyed `type::name`. */
export interface Changes {
  created: string[];
  updated: string[];
  replaced: string[];
  deleted: string[];
  same: string[];
  /** (The lists above leave out the program's component resources; `steps` has them.) */
  /** One entry per resource with its operation and the inputs that differ. */
  steps: Step[];
}

/** One resource's operation, folded as the plan reports it (a replacement's three steps are one `replace`). */
export interface Step {
  urn: string;
  /** `type::name`, the type being the resource's own (not its parents'). */
  key: string;
  op: "create" | "update" | "replace" | "delete" | "same" | "read" | "refresh";
  /** Input names whose change the provider reported (`diffs`), empty for create/delete/same. */
  diffs: string[];
  /** Input names that force the replacement, for replaces. */
  replaceReasons: string[];
}

/** `type::name` of a URN (`urn:pulumi:stack::project::parent$type::name`). */
export function keyOfUrn(urn: string): string {
  const [, , typeChain, ...name] = urn.split("::");
  return `${typeChain.split("$").pop()}::${name.join("::")}`;
}

/** Folds the engine's step events into one operation per resource. */
export function foldSteps(events: EngineEvent[]): Step[] {
  const byUrn = new Map<string, Step>();
  for (const event of events) {
    const metadata = event.resourcePreEvent?.metadata;
    if (!metadata || metadata.type === "pulumi:pulumi:Stack") continue;
    const rawOp = metadata.op as string;
    const op: Step["op"] =
      rawOp === "replace" || rawOp === "create-replacement" || rawOp === "delete-replaced"
        ? "replace"
        : rawOp === "discard" || rawOp === "discard-replaced"
          ? "delete"
          : (rawOp as Step["op"]);
    const previous = byUrn.get(metadata.urn);
    const step: Step = previous ?? { urn: metadata.urn, key: keyOfUrn(metadata.urn), op, diffs: [], replaceReasons: [] };
    if (op === "replace") step.op = "replace";
    step.diffs = [...new Set([...step.diffs, ...(metadata.diffs ?? [])])].sort();
    const keys = Object.entries(metadata.detailedDiff ?? {})
      .filter(([, d]) => String(d.diffKind).endsWith("-replace"))
      .map(([p]) => p.split(/[.[]/)[0]);
    step.replaceReasons = [...new Set([...step.replaceReasons, ...keys])].sort();
    byUrn.set(metadata.urn, step);
  }
  return [...byUrn.values()];
}

/** The program's own component types (`mai:index:*`): grouping only, nothing on an engine. */
export const isComponentKey = (key: string) => key.startsWith("mai:");

function changesOf(steps: Step[]): Changes {
  const of = (op: Step["op"]) => steps.filter((s) => s.op === op && !isComponentKey(s.key)).map((s) => s.key).sort();
  return { created: of("create"), updated: of("update"), replaced: of("replace"), deleted: of("delete"), same: of("same"), steps };
}

/** A local server of a test stack. */
export interface TestServer {
  /** DOCKER_HOST of its engine. */
  dockerHost: string;
}

/** One client file of a test stack. */
export interface TestClient {
  /** Slug suffix; the slug is `t<run>-<key>`. */
  key: string;
  /** Client file body without `port` (added here). */
  yaml?: string;
}

export interface RealStackOptions {
  /** The run's id: slugs are `<runId>-<key>`. */
  runId: string;
  /** The client files the stack starts with. */
  clients?: TestClient[];
  /** The stack's local servers by name; the first is where clients without `server:` run. */
  servers: Record<string, TestServer>;
  /** Extra stack config (`mai-hosting:` keys without the namespace), merged over the local stack's. */
  config?: Record<string, unknown>;
}

/** The committed local stack's config, `mai-hosting:` namespace stripped. */
export function localStackConfig(): Record<string, unknown> {
  const file = parseYaml(fs.readFileSync(LOCAL_STACK_FILE, "utf8")) as { config?: Record<string, unknown> };
  return Object.fromEntries(Object.entries(file.config ?? {}).map(([k, v]) => [k.replace(/^mai-hosting:/, ""), v]));
}

export class RealStack {
  readonly runId: string;
  /** Temporary directory holding the work directory, backend, client files and servers' state. */
  readonly dir: string;
  readonly workDir: string;
  readonly clientsDir: string;
  readonly stack: Stack;
  /** Caddy's loopback ports per server. */
  readonly proxyPorts: Record<string, { httpPort: number; httpsPort: number }>;
  private readonly ports = new Map<string, number>();
  private servers: Record<string, TestServer>;
  private extraConfig: Record<string, unknown>;

  private constructor(init: { runId: string; dir: string; stack: Stack; servers: Record<string, TestServer>; proxyPorts: RealStack["proxyPorts"]; config: Record<string, unknown> }) {
    this.runId = init.runId;
    this.dir = init.dir;
    this.workDir = path.join(init.dir, "work");
    this.clientsDir = path.join(init.dir, "clients");
    this.stack = init.stack;
    this.servers = init.servers;
    this.proxyPorts = init.proxyPorts;
    this.extraConfig = init.config;
  }

  /** Creates the stack's directories, files and a new stack on a file backend (nothing deployed yet). */
  static async create(options: RealStackOptions): Promise<RealStack> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mai-${options.runId}-`));
    for (const sub of ["work", "clients", "backend", "servers"]) fs.mkdirSync(path.join(dir, sub));
    fs.writeFileSync(
      path.join(dir, "work", "Pulumi.yaml"),
      stringifyYaml({ name: PROJECT, runtime: { name: "nodejs", options: { typescript: true, packagemanager: "npm" } }, main: REPO_DIR }),
    );
    const proxyPorts: RealStack["proxyPorts"] = {};
    for (const name of Object.keys(options.servers)) proxyPorts[name] = { httpPort: await freePort(), httpsPort: await freePort() };
    const stack = await LocalWorkspace.createOrSelectStack(
      { stackName: "test", workDir: path.join(dir, "work") },
      {
        envVars: {
          PULUMI_BACKEND_URL: `file://${path.join(dir, "backend")}`,
          PULUMI_CONFIG_PASSPHRASE: "throw-away test passphrase",
          PULUMI_SKIP_UPDATE_CHECK: "true",
          PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
          // Type-checking is the CI's `tsc --noEmit`; the engine only needs the program's JavaScript.
          PULUMI_NODEJS_TRANSPILE_ONLY: "true",
          MAI_CLIENTS_DIR: path.join(dir, "clients"),
        },
      },
    );
    const realStack = new RealStack({ runId: options.runId, dir, stack, servers: options.servers, proxyPorts, config: options.config ?? {} });
    realStack.writeConfig();
    for (const client of options.clients ?? []) await realStack.writeClient(client);
    return realStack;
  }

  /** Slug of a client key. */
  slug(key: string): string {
    return `${this.runId}-${key}`;
  }
  /** Loopback port of a client key. */
  port(key: string): number {
    const port = this.ports.get(key);
    if (port === undefined) throw new Error(`no client ${key} in this stack`);
    return port;
  }
  /** Hostname a client is served at. */
  hostname(key: string): string {
    return `${this.slug(key)}.localhost`;
  }
  /** Container name of a client key. */
  container(key: string): string {
    return `mai-${this.slug(key)}`;
  }
  /** A server's state directory (Caddyfile, scripts, backups). */
  stateDir(server = this.defaultServer): string {
    return path.join(this.dir, "servers", server);
  }
  /** DOCKER_HOST of a server's engine. */
  dockerHost(server = this.defaultServer): string {
    return this.servers[server].dockerHost;
  }
  get defaultServer(): string {
    return Object.keys(this.servers)[0];
  }
  /** Caddy's HTTPS port on a server. */
  httpsPort(server = this.defaultServer): number {
    return this.proxyPorts[server].httpsPort;
  }
  httpPort(server = this.defaultServer): number {
    return this.proxyPorts[server].httpPort;
  }

  /** Writes (or rewrites) a client file; a new key gets a free port. */
  async writeClient(client: TestClient): Promise<void> {
    if (!this.ports.has(client.key)) this.ports.set(client.key, await freePort());
    fs.writeFileSync(path.join(this.clientsDir, `${this.slug(client.key)}.yaml`), `port: ${this.ports.get(client.key)}\n${client.yaml ?? `name: Test ${client.key}\n`}`);
  }
  /** Deletes a client file. */
  removeClient(key: string): void {
    fs.rmSync(path.join(this.clientsDir, `${this.slug(key)}.yaml`));
  }

  /** Adds or replaces a server (e.g. a second engine), then rewrites the stack config. */
  setServer(name: string, server: TestServer, ports?: { httpPort: number; httpsPort: number }): void {
    this.servers = { ...this.servers, [name]: server };
    if (ports) this.proxyPorts[name] = ports;
    this.writeConfig();
  }
  /** Drops a server from the stack config. */
  removeServer(name: string): void {
    const { [name]: _dropped, ...rest } = this.servers;
    this.servers = rest;
    this.writeConfig();
  }
  /** Sets extra stack config (`mai-hosting:` keys without the namespace; undefined removes). */
  setConfig(values: Record<string, unknown>): void {
    this.extraConfig = Object.fromEntries(Object.entries({ ...this.extraConfig, ...values }).filter(([, v]) => v !== undefined));
    this.writeConfig();
  }

  /** Needs free ports for a server added later: allocates them. */
  static async proxyPortsFor(): Promise<{ httpPort: number; httpsPort: number }> {
    return { httpPort: await freePort(), httpsPort: await freePort() };
  }

  /** Writes `Pulumi.test.yaml`: the local stack's config with the test's servers and overrides. */
  private writeConfig(): void {
    const base = localStackConfig();
    const template = Object.values(base.servers as Record<string, Record<string, unknown>>).find((s) => s.kind === "local") ?? {};
    const servers = Object.fromEntries(
      Object.entries(this.servers).map(([name, server]) => {
        this.proxyPorts[name] ??= { httpPort: 0, httpsPort: 0 };
        return [name, { ...template, ...this.proxyPorts[name], stateDir: this.stateDir(name), dockerHost: server.dockerHost }];
      }),
    );
    // Several local servers: the first given is where clients without `server:` run.
    const defaultServer = Object.keys(servers).length > 1 ? { defaultServer: Object.keys(this.servers)[0] } : {};
    // The fast stand-in by default (starts in a second, 20 MB); tests of the real app set
    // `defaultImage: LOCAL_OPEN_WEBUI_IMAGE` (or a client's `image:`).
    const config = { ...base, servers, ...defaultServer, defaultImage: LOCAL_WORKSPACE_IMAGE, ...this.extraConfig };
    const namespaced = Object.fromEntries(Object.entries(config).map(([k, v]) => [k.includes(":") ? k : `${PROJECT}:${k}`, v]));
    const file = path.join(this.workDir, "Pulumi.test.yaml");
    const previous = fs.existsSync(file) ? (parseYaml(fs.readFileSync(file, "utf8")) as Record<string, unknown>) : {};
    // Keep what `pulumi stack init` wrote (the passphrase's salt) and secrets set through the CLI.
    const secure = Object.fromEntries(
      Object.entries((previous.config ?? {}) as Record<string, unknown>).filter(([, v]) => typeof v === "object" && v !== null && "secure" in v),
    );
    fs.writeFileSync(file, stringifyYaml({ ...previous, config: { ...namespaced, ...secure } }));
  }

  /** Sets a secret config value through the CLI (encrypted with the stack's passphrase). */
  async setSecret(key: string, value: string): Promise<void> {
    await this.stack.setConfig(key.includes(":") ? key : `${PROJECT}:${key}`, { value, secret: true }, true);
  }

  /**
   * `pulumi up` (with `replace`: `--replace` of those URNs): what it did to each resource. Throws
   * with the engine's output when it fails.
   */
  async up(options: { replace?: string[] } = {}): Promise<Changes> {
    const events: EngineEvent[] = [];
    let output = "";
    try {
      await this.stack.up({ onEvent: (e) => events.push(e), onOutput: (o) => (output += o), color: "never", ...(options.replace ? { replace: options.replace } : {}) });
    } catch (error) {
      throw new Error(`pulumi up failed:\n${tail(output)}\n${errorText(error)}`);
    }
    return changesOf(foldSteps(events));
  }

  /** `pulumi preview --diff`: what `up` would do. */
  async preview(): Promise<Changes> {
    const events: EngineEvent[] = [];
    let output = "";
    try {
      await this.stack.preview({ diff: true, onEvent: (e) => events.push(e), onOutput: (o) => (output += o), color: "never" });
    } catch (error) {
      throw new Error(`pulumi preview failed:\n${tail(output)}\n${errorText(error)}`);
    }
    return changesOf(foldSteps(events));
  }

  /** `pulumi refresh`. */
  async refresh(): Promise<Changes> {
    const events: EngineEvent[] = [];
    await this.stack.refresh({ onEvent: (e) => events.push(e), color: "never" });
    return changesOf(foldSteps(events));
  }

  /** The URN of the deployed resource `type::name` (a key as in Changes). */
  async urnOf(key: string): Promise<string> {
    const state = await this.stack.exportStack();
    const resources = (state.deployment as { resources?: { urn: string }[] }).resources ?? [];
    const found = resources.find((r) => keyOfUrn(r.urn) === key);
    if (!found) throw new Error(`no resource ${key} in the stack's state`);
    return found.urn;
  }

  /** The stack's outputs, secrets decrypted. */
  async outputs(): Promise<Record<string, unknown>> {
    const outputs = await this.stack.outputs();
    return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.value]));
  }

  /** Environment for the Pulumi CLI on this stack (for tests that run `pulumi` themselves). */
  cliEnv(): NodeJS.ProcessEnv {
    return { ...process.env, ...this.stack.workspace.envVars, PULUMI_STACK: "test" };
  }

  /** Removes the stack's temporary directory (the engines' objects are the engines' owners' to remove). */
  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function tail(text: string, lines = 40): string {
  return text.split("\n").slice(-lines).join("\n");
}

function errorText(error: unknown): string {
  const e = error as { stderr?: string; message?: string };
  return (e.stderr ?? e.message ?? String(error)).split("\n").slice(-20).join("\n");
}

/** The root certificate of a local server's Caddy internal CA (Caddy makes it on first start). */
export async function proxyRootCa(dockerHost: string, timeoutMs = 60_000): Promise<Buffer> {
  const { spawnSync } = await import("node:child_process");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = spawnSync("docker", ["exec", "mai-proxy", "cat", "/data/caddy/pki/authorities/local/root.crt"], { env: { ...process.env, DOCKER_HOST: dockerHost } });
    if (r.status === 0) return r.stdout;
    if (Date.now() > deadline) throw new Error(`the proxy's internal CA did not appear: ${r.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
