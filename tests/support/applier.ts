/**
 * Applies what the program declares (captured under the mock runtime by `programHarness.ts`:
 * type, name, inputs, options) to the real Docker Engine with the docker CLI, the way `pulumi up`
 * with the docker and command providers would: networks, volumes, containers, images that must
 * already exist locally, and `command.local.Command`s. It also applies the difference between two
 * captured programs (create new, update in place, replace, delete removed honouring
 * `retainOnDelete`), so lifecycle tests can edit a client file and apply again.
 *
 * Inputs are never re-typed in tests: they come from the program. Every resource type and every
 * input key the applier does not know throws, so a new input can never be silently dropped.
 * The applier records every Docker object it creates; `cleanup()` removes exactly those (and
 * refuses to create anything whose name is already taken, so it never adopts a foreign object).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mockOutputs } from "../../plan/mockRuntime";
import { isSecretValue, type DeclaredResource } from "./programHarness";

const CONTAINER = "docker:index/container:Container";
const NETWORK = "docker:index/network:Network";
const VOLUME = "docker:index/volume:Volume";
const REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage";
const LOCAL_COMMAND = "command:local:Command";

/**
 * Types with nothing to apply on the engine: component resources and the docker provider itself
 * (the applier always talks to the engine it was given).
 */
const NO_ENGINE_EFFECT = [/^mai:index:/, /^pulumi:providers:docker$/];

/**
 * Generated values: nothing to apply, but their lifetime matters. Under mocks a RandomPassword's
 * value is the same on every evaluation; a real one is new whenever the resource is created
 * again (deleted and re-created, or replaced). The applier keeps them in its state and reports
 * every such regeneration (`UpResult.regenerated`).
 */
const RANDOM = /^random:index\/random\w+:Random\w+$/;

/**
 * Container inputs the provider updates in place (`docker update`); any other changed input
 * replaces the container. The provider's Update handles exactly these attributes
 * (kreuzwerker/terraform-provider-docker, resourceDockerContainerUpdate: restart,
 * max_retry_count, cpu_shares, memory, cpu_set, memory_swap). `healthcheck` and
 * `memoryReservation` are not ForceNew either, but that Update never sends them to Docker: a
 * change to them is recorded in state and does nothing to the running container.
 */
const CONTAINER_UPDATED_IN_PLACE = ["restart", "maxRetryCount", "cpuShares", "memory", "cpuSet", "memorySwap"];
const CONTAINER_STATE_ONLY = ["healthcheck", "memoryReservation"];

/** One applied resource: what was declared (secrets unwrapped) and what exists for it. */
interface Applied {
  resource: DeclaredResource;
  inputs: Record<string, any>;
  /** Docker object name (containers, networks, volumes), or the command's stdout. */
  engineName?: string;
  stdout?: string;
}

/** What one `up` did, per resource key (`type::name`), for assertions and logs. */
export interface UpResult {
  created: string[];
  updated: string[];
  replaced: string[];
  deleted: string[];
  /** Removed from the program but kept on the engine (`retainOnDelete`). */
  retained: string[];
  /** Generated values (random) created again after an earlier one existed: a real run makes a new value. */
  regenerated: string[];
  unchanged: string[];
}

export interface ApplierOptions {
  /**
   * Types the caller knowingly leaves out (e.g. cloud resources of a stack that is not local).
   * Anything else the applier cannot map throws.
   */
  outOfScope?: RegExp[];
  /** Extra environment for host commands (added to this process's environment). */
  commandEnv?: NodeJS.ProcessEnv;
  /** DOCKER_HOST of the engine to apply to; default the machine's engine. */
  dockerHost?: string;
}

const keyOf = (r: { type: string; name: string }) => `${r.type}::${r.name}`;

/** The inputs as the provider receives them: secrets unwrapped, assets' text resolved. */
async function unwrap(value: unknown): Promise<any> {
  if (isSecretValue(value)) return unwrap(value.value);
  if (value instanceof Promise) return unwrap(await value);
  if (Array.isArray(value)) return Promise.all(value.map(unwrap));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = await unwrap(v);
    return out;
  }
  return value;
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]])) : v,
  );
}

/** Environment of the docker CLI for an engine: `host` (a DOCKER_HOST value) or the default one. */
function engineEnv(host: string | undefined): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (host) env.DOCKER_HOST = host;
  return env;
}

/** Runs the docker CLI (against `host`, default the machine's engine); throws with its stderr. */
export function docker(args: string[], host?: string): string {
  const r = spawnSync("docker", args, { encoding: "utf8", env: engineEnv(host), maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`docker ${args.join(" ")}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout.trim();
}

function exists(kind: "container" | "network" | "volume" | "image", name: string, host?: string): boolean {
  return spawnSync("docker", [kind, "inspect", name], { stdio: "ignore", env: engineEnv(host) }).status === 0;
}

/** Throws for every key of `inputs` not in `known`, naming the resource. */
function requireKnown(resource: DeclaredResource, inputs: Record<string, unknown>, known: string[]): void {
  const unknown = Object.keys(inputs).filter((k) => !known.includes(k) && inputs[k] !== undefined);
  if (unknown.length > 0) {
    throw new Error(`applier: ${keyOf(resource)} declares input(s) the applier does not map: ${unknown.join(", ")}`);
  }
}

/** `[{label, value}]` as `--label k=v` arguments. */
function labelArgs(labels: { label: string; value: string }[] | undefined): string[] {
  return (labels ?? []).flatMap((l) => ["--label", `${l.label}=${l.value}`]);
}

/** Order in which Pulumi may create the resources: every resource after the ones it depends on. */
function dependencyOrder(resources: DeclaredResource[]): DeclaredResource[] {
  const byUrnSuffix = new Map(resources.map((r) => [`${r.type}::${r.name}`, r]));
  const fromUrn = (urn: string) => {
    const parts = urn.split("::");
    const name = parts[parts.length - 1];
    const typeChain = parts[parts.length - 2];
    return byUrnSuffix.get(`${typeChain.split("$").pop()}::${name}`);
  };
  const done = new Set<DeclaredResource>();
  const out: DeclaredResource[] = [];
  const visit = (r: DeclaredResource, path: Set<DeclaredResource>) => {
    if (done.has(r)) return;
    if (path.has(r)) throw new Error(`applier: dependency cycle at ${keyOf(r)}`);
    path.add(r);
    for (const urn of r.options.dependsOn) {
      const dep = fromUrn(urn);
      if (dep) visit(dep, path);
    }
    path.delete(r);
    done.add(r);
    out.push(r);
  };
  for (const r of resources) visit(r, new Set());
  return out;
}

export class EngineApplier {
  private state = new Map<string, Applied>();
  /** Every Docker object this applier created, in creation order (for cleanup). */
  private created: { kind: "container" | "network" | "volume"; name: string }[] = [];
  /** Every generated value (random) created so far, by resource key. */
  private generated = new Set<string>();
  /** Mocked image ids of RemoteImages → the image reference they stand for. */
  private imageIds = new Map<string, string>();

  constructor(private readonly options: ApplierOptions = {}) {}

  /** The applied inputs of a resource (secrets unwrapped). */
  inputsOf(type: string, name: string): Record<string, any> | undefined {
    return this.state.get(`${type}::${name}`)?.inputs;
  }

  /** Applied resources of a type. */
  appliedOf(type: string): { name: string; inputs: Record<string, any>; resource: DeclaredResource }[] {
    return [...this.state.values()].filter((a) => a.resource.type === type).map((a) => ({ name: a.resource.name, inputs: a.inputs, resource: a.resource }));
  }

  /** The image a declared `image` input stands for (a RemoteImage's mocked id becomes its name). */
  imageReference(declared: string): string {
    return this.imageIds.get(declared) ?? declared;
  }

  /** Stdout of an applied host command. */
  stdoutOf(name: string): string | undefined {
    return this.state.get(`${LOCAL_COMMAND}::${name}`)?.stdout;
  }

  /**
   * Brings the engine to what `resources` declares, as `pulumi up` would from the current state:
   * creates, updates in place, replaces (delete first when the resource asks for it), then
   * deletes what is gone (keeping `retainOnDelete` objects on the engine).
   */
  async up(resources: DeclaredResource[]): Promise<UpResult> {
    const result: UpResult = { created: [], updated: [], replaced: [], deleted: [], retained: [], unchanged: [], regenerated: [] };
    const inScope = resources.filter((r) => this.inScope(r));
    for (const r of inScope) {
      if (r.type === REMOTE_IMAGE) this.imageIds.set(mockOutputs(r.type, r.name, r.inputs).state.imageId as string, String(r.inputs.name));
    }
    // Mock ids are stable across evaluations; a real replacement makes a new id. Inputs that
    // carry a replaced resource's id (e.g. command triggers) therefore change too.
    const replacedIds = new Set<string>();
    for (const resource of dependencyOrder(inScope)) {
      const key = keyOf(resource);
      const inputs = await unwrap(resource.inputs);
      const previous = this.state.get(key);
      if (!previous) {
        await this.create(resource, inputs);
        result.created.push(key);
        if (RANDOM.test(resource.type) && this.generated.has(key)) result.regenerated.push(key);
        if (RANDOM.test(resource.type)) this.generated.add(key);
        continue;
      }
      const carriesNewId = [...replacedIds].some((id) => canonical(inputs).includes(JSON.stringify(id)));
      const changed = Object.keys({ ...inputs, ...previous.inputs }).filter((k) => canonical(inputs[k]) !== canonical(previous.inputs[k]));
      if (changed.length === 0 && !carriesNewId) {
        this.state.set(key, { ...previous, resource });
        result.unchanged.push(key);
        continue;
      }
      if (this.replaces(resource, changed, carriesNewId)) {
        await this.replace(previous, resource, inputs);
        replacedIds.add(mockOutputs(resource.type, resource.name, {}).id);
        result.replaced.push(key);
        if (RANDOM.test(resource.type)) result.regenerated.push(key);
      } else {
        await this.update(previous, resource, inputs, changed);
        result.updated.push(key);
      }
    }
    const wanted = new Set(inScope.map(keyOf));
    const gone = [...this.state.values()].filter((a) => !wanted.has(keyOf(a.resource)));
    for (const applied of dependencyOrder(gone.map((a) => a.resource)).reverse()) {
      const key = keyOf(applied);
      const entry = this.state.get(key)!;
      if (entry.resource.options.retainOnDelete) result.retained.push(key);
      else {
        await this.remove(entry);
        result.deleted.push(key);
      }
      this.state.delete(key);
    }
    return result;
  }

  /** `pulumi destroy`: deletes everything applied, in reverse dependency order, honouring retainOnDelete. */
  async destroy(): Promise<void> {
    await this.up([]);
  }

  /**
   * Removes every Docker object this applier created (retained volumes included), newest first.
   * Never touches objects it did not create. Safe to call more than once and after failures.
   */
  cleanup(): string[] {
    const problems: string[] = [];
    const order = { container: 0, network: 1, volume: 2 } as const;
    const objects = [...this.created].reverse().sort((a, b) => order[a.kind] - order[b.kind]);
    for (const { kind, name } of objects) {
      const args = kind === "container" ? ["rm", "-f", "-v", name] : [kind, "rm", name];
      const r = spawnSync("docker", args, { encoding: "utf8", env: engineEnv(this.options.dockerHost) });
      if (r.status !== 0 && !/No such|not found/i.test(r.stderr)) problems.push(`docker ${args.join(" ")}: ${r.stderr.trim()}`);
    }
    this.created = [];
    this.state.clear();
    return problems;
  }

  private inScope(resource: DeclaredResource): boolean {
    if (NO_ENGINE_EFFECT.some((p) => p.test(resource.type))) return false;
    if ([CONTAINER, NETWORK, VOLUME, REMOTE_IMAGE, LOCAL_COMMAND].includes(resource.type) || RANDOM.test(resource.type)) return true;
    if (this.options.outOfScope?.some((p) => p.test(resource.type))) return false;
    throw new Error(`applier: resource type ${resource.type} (${resource.name}) is not mapped to the engine`);
  }

  private replaces(resource: DeclaredResource, changed: string[], carriesNewId: boolean): boolean {
    switch (resource.type) {
      case CONTAINER:
        return (
          carriesNewId ||
          changed.some((k) => resource.options.replaceOnChanges?.includes(k)) ||
          changed.some((k) => !CONTAINER_UPDATED_IN_PLACE.includes(k) && !CONTAINER_STATE_ONLY.includes(k))
        );
      case LOCAL_COMMAND:
        // command.local.Command: a change of `triggers` replaces; other inputs update (re-run).
        return carriesNewId || changed.includes("triggers");
      default:
        // Networks, volumes and images: every declared input of these is ForceNew.
        return true;
    }
  }

  private async create(resource: DeclaredResource, inputs: Record<string, any>): Promise<void> {
    const entry: Applied = { resource, inputs };
    switch (resource.type) {
      case NETWORK:
        entry.engineName = this.createNetwork(resource, inputs);
        break;
      case VOLUME:
        entry.engineName = this.createVolume(resource, inputs);
        break;
      case CONTAINER:
        entry.engineName = this.createContainer(resource, inputs);
        break;
      case REMOTE_IMAGE:
        requireKnown(resource, inputs, ["name", "keepLocally"]);
        // No registry here: the image must have been built locally. Nothing is pulled or removed.
        if (!exists("image", inputs.name, this.options.dockerHost)) throw new Error(`applier: image ${inputs.name} (${resource.name}) is not available locally; build it first`);
        break;
      case LOCAL_COMMAND:
        // `logging` only decides what Pulumi prints of the output; the command runs the same.
        requireKnown(resource, inputs, ["create", "update", "delete", "environment", "stdin", "triggers", "dir", "interpreter", "logging"]);
        entry.stdout = this.runCommand(resource, inputs, inputs.create);
        break;
    }
    this.state.set(keyOf(resource), entry);
  }

  private async update(previous: Applied, resource: DeclaredResource, inputs: Record<string, any>, changed: string[]): Promise<void> {
    const entry: Applied = { ...previous, resource, inputs };
    if (resource.type === CONTAINER) {
      const args: string[] = [];
      if (changed.includes("restart")) args.push("--restart", inputs.restart);
      if (changed.includes("cpuShares")) args.push("--cpu-shares", String(inputs.cpuShares));
      if (changed.includes("memory") || changed.includes("memorySwap")) {
        args.push("--memory", `${inputs.memory}m`, "--memory-swap", inputs.memorySwap > 0 ? `${inputs.memorySwap}m` : String(inputs.memorySwap));
      }
      if (changed.includes("cpuSet")) args.push("--cpuset-cpus", inputs.cpuSet);
      if (args.length > 0) docker(["update", ...args, previous.engineName!], this.options.dockerHost);
    } else if (resource.type === LOCAL_COMMAND) {
      entry.stdout = this.runCommand(resource, inputs, inputs.update ?? inputs.create, previous.stdout);
    }
    this.state.set(keyOf(resource), entry);
  }

  private async replace(previous: Applied, resource: DeclaredResource, inputs: Record<string, any>): Promise<void> {
    if (resource.options.deleteBeforeReplace) {
      await this.remove(previous);
      await this.create(resource, inputs);
      return;
    }
    if (resource.type !== LOCAL_COMMAND) {
      // Pulumi would create the replacement first and collide on the fixed Docker name.
      throw new Error(`applier: ${keyOf(resource)} is replaced create-before-delete and would collide on its name (set deleteBeforeReplace)`);
    }
    await this.create(resource, inputs);
    await this.remove(previous);
  }

  private async remove(entry: Applied): Promise<void> {
    const { resource, inputs } = entry;
    switch (resource.type) {
      case CONTAINER:
        docker(["rm", "-f", entry.engineName!], this.options.dockerHost);
        break;
      case NETWORK:
        docker(["network", "rm", entry.engineName!], this.options.dockerHost);
        break;
      case VOLUME:
        docker(["volume", "rm", entry.engineName!], this.options.dockerHost);
        break;
      case LOCAL_COMMAND:
        if (inputs.delete) this.runCommand(resource, inputs, inputs.delete, entry.stdout);
        break;
      case REMOTE_IMAGE:
        break; // images built locally are kept (and keepLocally is what the program declares)
    }
  }

  private createNetwork(resource: DeclaredResource, inputs: Record<string, any>): string {
    requireKnown(resource, inputs, ["name", "driver", "labels", "internal", "options"]);
    const name = inputs.name ?? resource.name;
    this.claim("network", name, resource);
    const args = ["network", "create", ...(inputs.driver ? ["--driver", inputs.driver] : []), ...labelArgs(inputs.labels)];
    if (inputs.internal) args.push("--internal");
    for (const [k, v] of Object.entries(inputs.options ?? {})) args.push("--opt", `${k}=${v}`);
    docker([...args, name], this.options.dockerHost);
    this.created.push({ kind: "network", name });
    return name;
  }

  private createVolume(resource: DeclaredResource, inputs: Record<string, any>): string {
    requireKnown(resource, inputs, ["name", "driver", "labels", "driverOpts"]);
    const name = inputs.name ?? resource.name;
    if (this.claim("volume", name, resource)) return name;
    const args = ["volume", "create", ...(inputs.driver ? ["--driver", inputs.driver] : []), ...labelArgs(inputs.labels)];
    for (const [k, v] of Object.entries(inputs.driverOpts ?? {})) args.push("--opt", `${k}=${v}`);
    docker([...args, name], this.options.dockerHost);
    this.created.push({ kind: "volume", name });
    return name;
  }

  /** Every container input the program may declare, as `docker create` flags (provider: resourceDockerContainerCreate). */
  private createContainer(resource: DeclaredResource, inputs: Record<string, any>): string {
    requireKnown(resource, inputs, [
      "name", "image", "restart", "envs", "cpus", "cpuShares", "memory", "memorySwap", "memoryReservation",
      "ports", "networksAdvanced", "networkMode", "volumes", "healthcheck", "logDriver", "logOpts", "labels",
      "sysctls", "command", "user", "workingDir", "init", "stopSignal", "stopTimeout",
    ]);
    const name = inputs.name ?? resource.name;
    this.claim("container", name, resource);
    const image = this.imageReference(inputs.image);
    if (!exists("image", image, this.options.dockerHost)) throw new Error(`applier: image ${image} of ${resource.name} is not available locally; build it first`);
    const args = ["create", "--name", name];
    if (inputs.restart) args.push("--restart", inputs.restart);
    for (const env of inputs.envs ?? []) args.push("--env", env);
    if (inputs.cpus !== undefined) args.push("--cpus", inputs.cpus);
    if (inputs.cpuShares !== undefined) args.push("--cpu-shares", String(inputs.cpuShares));
    // The provider's memory inputs are in MB (HostConfig.Memory = memory * 1024 * 1024).
    if (inputs.memory !== undefined) args.push("--memory", `${inputs.memory}m`);
    if (inputs.memorySwap !== undefined) args.push("--memory-swap", inputs.memorySwap > 0 ? `${inputs.memorySwap}m` : String(inputs.memorySwap));
    if (inputs.memoryReservation !== undefined) args.push("--memory-reservation", `${inputs.memoryReservation}m`);
    for (const p of inputs.ports ?? []) {
      const unknown = Object.keys(p).filter((k) => !["internal", "external", "ip", "protocol"].includes(k));
      if (unknown.length) throw new Error(`applier: ${resource.name} ports: unmapped ${unknown.join(", ")}`);
      args.push("--publish", `${p.ip ? `${p.ip.includes(":") ? `[${p.ip}]` : p.ip}:` : ""}${p.external ?? ""}:${p.internal}/${p.protocol ?? "tcp"}`);
    }
    const networks: { name: string; aliases?: string[]; ipv4Address?: string }[] = inputs.networksAdvanced ?? [];
    for (const n of networks) {
      const unknown = Object.keys(n).filter((k) => !["name", "aliases", "ipv4Address"].includes(k));
      if (unknown.length) throw new Error(`applier: ${resource.name} networksAdvanced: unmapped ${unknown.join(", ")}`);
    }
    if (inputs.networkMode !== undefined) args.push("--network", inputs.networkMode);
    else if (networks.length > 0) {
      args.push("--network", networks[0].name);
      for (const alias of networks[0].aliases ?? []) args.push("--network-alias", alias);
      if (networks[0].ipv4Address) args.push("--ip", networks[0].ipv4Address);
    }
    for (const v of inputs.volumes ?? []) {
      const unknown = Object.keys(v).filter((k) => !["volumeName", "hostPath", "containerPath", "readOnly"].includes(k));
      if (unknown.length) throw new Error(`applier: ${resource.name} volumes: unmapped ${unknown.join(", ")}`);
      // Provider: volumeSetToDockerVolumes → Binds "<volume_name or host_path>:<container_path>:rw|ro".
      args.push("--volume", `${v.volumeName ?? v.hostPath}:${v.containerPath}:${v.readOnly ? "ro" : "rw"}`);
    }
    if (inputs.healthcheck) {
      const h = inputs.healthcheck;
      const unknown = Object.keys(h).filter((k) => !["tests", "interval", "timeout", "startPeriod", "retries"].includes(k));
      if (unknown.length) throw new Error(`applier: ${resource.name} healthcheck: unmapped ${unknown.join(", ")}`);
      if (h.tests?.[0] !== "CMD-SHELL" || h.tests.length !== 2) throw new Error(`applier: ${resource.name} healthcheck: only ["CMD-SHELL", cmd] is mapped`);
      args.push("--health-cmd", h.tests[1]);
      if (h.interval) args.push("--health-interval", h.interval);
      if (h.timeout) args.push("--health-timeout", h.timeout);
      if (h.startPeriod) args.push("--health-start-period", h.startPeriod);
      if (h.retries !== undefined) args.push("--health-retries", String(h.retries));
    }
    if (inputs.logDriver) args.push("--log-driver", inputs.logDriver);
    for (const [k, v] of Object.entries(inputs.logOpts ?? {})) args.push("--log-opt", `${k}=${v}`);
    args.push(...labelArgs(inputs.labels));
    for (const [k, v] of Object.entries(inputs.sysctls ?? {})) args.push("--sysctl", `${k}=${v}`);
    if (inputs.user) args.push("--user", inputs.user);
    if (inputs.workingDir) args.push("--workdir", inputs.workingDir);
    if (inputs.init) args.push("--init");
    if (inputs.stopSignal) args.push("--stop-signal", inputs.stopSignal);
    if (inputs.stopTimeout !== undefined) args.push("--stop-timeout", String(inputs.stopTimeout));
    docker([...args, image, ...(inputs.command ?? [])], this.options.dockerHost);
    this.created.push({ kind: "container", name });
    for (const n of networks.slice(inputs.networkMode !== undefined ? 0 : 1)) {
      docker(["network", "connect", ...(n.aliases ?? []).flatMap((a) => ["--alias", a]), ...(n.ipv4Address ? ["--ip", n.ipv4Address] : []), n.name, name], this.options.dockerHost);
    }
    docker(["start", name], this.options.dockerHost);
    // The provider waits for the container to run (must_run) and fails when it exits at once.
    const deadline = Date.now() + 5000;
    while (docker(["inspect", "-f", "{{.State.Running}}", name], this.options.dockerHost) !== "true") {
      if (Date.now() > deadline) throw new Error(`applier: container ${name} is not running:\n${spawnSync("docker", ["logs", "--tail", "20", name], { encoding: "utf8", env: engineEnv(this.options.dockerHost) }).stderr}`);
      execFileSync("sleep", ["0.1"]);
    }
    return name;
  }

  /** Runs a host command as command.local.Command does: `/bin/sh -c`, environment and stdin. */
  private runCommand(resource: DeclaredResource, inputs: Record<string, any>, script: string, previousStdout?: string): string {
    const [shell, ...shellArgs] = inputs.interpreter ?? ["/bin/sh", "-c"];
    const r = spawnSync(shell, [...shellArgs, script], {
      cwd: inputs.dir,
      input: inputs.stdin,
      encoding: "utf8",
      env: {
        ...process.env,
        ...this.options.commandEnv,
        ...inputs.environment,
        ...(previousStdout !== undefined ? { PULUMI_COMMAND_STDOUT: previousStdout } : {}),
      },
      maxBuffer: 64 * 1024 * 1024,
    });
    if (r.status !== 0) {
      throw new Error(`applier: command ${resource.name} failed (exit ${r.status}):\n${r.stderr.trim() || r.stdout.trim()}`);
    }
    return r.stdout.trim();
  }

  /** Refuses a name that already exists: the applier never adopts (or later removes) a foreign object. */
  private claim(kind: "container" | "network" | "volume", name: string, resource: DeclaredResource): boolean {
    const ours = this.created.some((o) => o.kind === kind && o.name === name);
    // Docker's volume create is idempotent: a volume kept by retainOnDelete is taken over again,
    // with its data, when the program declares it anew (a client added back).
    if (kind === "volume" && ours && exists(kind, name, this.options.dockerHost)) return true;
    if (exists(kind, name, this.options.dockerHost)) {
      throw new Error(`applier: ${kind} ${name} (${resource.name}) already exists on the engine and was not created by this run`);
    }
    return false;
  }
}

/** Short random id for one test run's names and labels. */
export function runId(): string {
  return createHash("sha256").update(`${process.pid}-${Date.now()}-${Math.random()}`).digest("hex").slice(0, 8);
}
