/**
 * Repairing a stack after a `pulumi up` that died (SIGKILL, OOM, power loss, a killed CI runner):
 * what each interrupted operation in the state means, what is done about it, and the state edit
 * that records the result. Pure: no Pulumi imports, no I/O; `scripts/repair.ts` reads the state
 * and the engines and carries the steps out.
 *
 * ## What a dead `pulumi up` leaves
 * The lock (`pulumi cancel` removes it) and `pending_operations` in the state: every resource
 * operation that had begun and not ended. A pending *create* may or may not have reached the
 * server. If it did, the next `up` creates it again and Docker refuses the name
 * (`network with name mai-x already exists`); the engine keeps a pending create until someone
 * resolves it, so every later `up` fails the same way.
 *
 * ## What repair does, per pending create
 * - Docker network: looked up by the name the stack gave it on its server's engine. Missing: the
 *   create never got there; cleared. Present with the stack's labels and driver: adopted into the
 *   state with its id (the provider then reads it like any created network; the next `up` plans it
 *   `same`). Present with the stack's labels but another driver: removed (empty; the next `up`
 *   creates it). Without the stack's labels: not the stack's; left alone and reported.
 * - Docker container: removed when it carries the stack's labels (`mai.client`, `mai.managed-by`,
 *   or the proxy's `mai.role`), never adopted. Why: the Docker provider's read of a container it
 *   did not create itself (the import path) returns no labels, ports, volumes or networks, so the
 *   next `up` would replace an adopted container anyway (seen with pulumi-docker 5.2 and the
 *   Pulumi CLI 3.248). Removing it is the same outcome with one step less; a container holds no
 *   data (the client's data is in its volume, which `docker rm -f` without `-v` never touches).
 * - Docker volume: never touched. The pending create is cleared: `docker volume create` of an
 *   existing name returns that volume, so the next `up` adopts it with everything in it.
 * - Random passwords, command resources, remote images, providers: cleared. Nothing outside the
 *   state would collide: the next `up` makes a new password (no container used the old one: a
 *   container is created only after its password) or runs the command again (the stack's commands
 *   are written to be re-run: file copies, reloads, timer switches, the move's own checks).
 * - Anything else (Hetzner servers and IPs, Cloudflare records, OpenRouter keys): repair cannot see
 *   those objects, so it changes nothing and names them; check them at the provider, then clear
 *   each with `--forget <urn>` (or import it with `pulumi import`).
 *
 * ## Other pending operations
 * A pending update, delete, read or import concerns a resource the state still holds with its
 * previous values. Pulumi's own advice is a refresh: repair refreshes exactly those resources
 * (`pulumi refresh --target`), which reads what the engine has now (a deleted container drops out,
 * an updated one gets its new values); the next `up` then does what is still needed. (Any state
 * write drops these operations anyway; the next `up` alone would redo the step from the previous
 * values, which also works for the stack's idempotent updates and deletes.)
 *
 * ## Why not `pulumi refresh --import-pending-creates` / `--clear-pending-creates`
 * Seen with the Pulumi CLI 3.248: `--import-pending-creates <urn> --import-pending-creates <id>`
 * (one value per flag) turns the pending create into a pending import, and the refresh that
 * follows drops it without importing anything (also with `--run-program`, and with journaling
 * off): the object is then neither pending nor in the state. `--clear-pending-creates` drops every
 * pending create from the state but leaves the objects on the engine, and both run a refresh of
 * the whole stack. So repair writes the result itself, the way Pulumi's troubleshooting guide
 * describes: `pulumi stack export`, the edit below, `pulumi stack import` (which takes the stack's
 * lock and drops the pending operations), then a refresh of only the adopted and interrupted
 * resources.
 */
import { shellQuote } from "./localHost";

/** One resource as `pulumi stack export` writes it (the fields repair reads; the rest is kept as is). */
export interface StateResource {
  urn: string;
  type: string;
  id?: string;
  custom?: boolean;
  delete?: boolean;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
  parent?: string;
  provider?: string;
  dependencies?: string[];
  [field: string]: unknown;
}

/** An operation that had begun and not ended when the deployment died. */
export interface PendingOperation {
  resource: StateResource;
  /** `creating`, `updating`, `deleting`, `reading` or `importing`. */
  type: string;
}

/** The `deployment` of a stack export. */
export interface Deployment {
  resources?: StateResource[] | null;
  pending_operations?: PendingOperation[] | null;
  [field: string]: unknown;
}

/** `pulumi stack export` output. */
export interface StackExport {
  version: number;
  deployment: Deployment;
}

export const DOCKER_CONTAINER = "docker:index/container:Container";
export const DOCKER_NETWORK = "docker:index/network:Network";
export const DOCKER_VOLUME = "docker:index/volume:Volume";

/** Resource types whose pending create leaves nothing outside the state that the next `up` would collide with. */
const STATE_ONLY_TYPES = [/^random:/, /^command:local:Command$/, /^command:remote:(Command|CopyToRemote|CopyFile)$/, /^docker:index\/remoteImage:RemoteImage$/, /^pulumi:providers:/];

/** A server's Docker engine as the stack's provider reaches it. */
export interface EngineRef {
  /** The stack's name for the server (the provider's host component). */
  server: string;
  /** DOCKER_HOST of the provider: `unix://…`, `tcp://…` or `ssh://user@host`. */
  host: string;
  /** The provider's extra SSH options (`sshOpts`) for an `ssh://` host. */
  sshOptions: string[];
}

/** A Docker object as the stack declared it in the interrupted create. */
export interface DeclaredObject {
  kind: "container" | "network";
  name: string;
  labels: Record<string, string>;
  /** Network driver (Docker's default: bridge). */
  driver?: string;
}

/** What one pending operation is, before anything is looked at. */
export type PendingWork =
  | { op: PendingOperation; kind: "docker"; declared: DeclaredObject; engine: EngineRef }
  | { op: PendingOperation; kind: "volume" }
  | { op: PendingOperation; kind: "stateOnly" }
  | { op: PendingOperation; kind: "unknown" }
  | { op: PendingOperation; kind: "interrupted" }
  | { op: PendingOperation; kind: "unresolved"; problem: string };

/** What `docker inspect` shows of an object (undefined: no object of that name). */
export interface ObservedObject {
  id: string;
  labels: Record<string, string>;
  /** Network driver. */
  driver?: string;
}

export type RepairAction =
  /** Put into the state with the engine's id. */
  | "adopt"
  /** Removed from the engine, its pending create cleared. */
  | "remove"
  /** Pending operation dropped; nothing on any engine touched. */
  | "clear"
  /** The resource is re-read from its provider (`pulumi refresh --target`). */
  | "refresh"
  /** Repair cannot resolve it safely: nothing is changed until the operator decides. */
  | "blocked";

/** One line of the repair: what was interrupted and what is done about it. */
export interface RepairStep {
  urn: string;
  /** The resource's name in the program (the URN's last part). */
  name: string;
  type: string;
  /** The interrupted operation (`creating`, `updating`, …). */
  operation: string;
  action: RepairAction;
  /** The Docker object concerned, when there is one on an engine. */
  object?: { kind: "container" | "network"; name: string; id: string; engine: EngineRef };
  /** Why, in a few words, for the operator. */
  reason: string;
}

/** Name part of a URN (`urn:pulumi:stack::project::type::name`). */
export function urnName(urn: string): string {
  return urn.split("::").slice(3).join("::");
}

/** Project name of a URN. */
export function urnProject(urn: string): string {
  return urn.split("::")[1] ?? "";
}

function labelsOf(value: unknown): Record<string, string> {
  if (!Array.isArray(value)) return {};
  return Object.fromEntries(
    value
      .filter((entry): entry is { label: string; value: unknown } => typeof entry === "object" && entry !== null && typeof (entry as { label?: unknown }).label === "string")
      .map((entry) => [entry.label, String(entry.value ?? "")]),
  );
}

/** The provider's `sshOpts`: a list in the inputs, or the JSON text of one (how bridged providers keep list config). */
function sshOptionsOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  if (typeof value !== "string" || value.trim() === "") return [];
  if (value.trim().startsWith("[")) {
    try {
      const parsed: unknown = JSON.parse(value);
      if (Array.isArray(parsed)) return parsed.map(String);
    } catch {
      // fall through: treat as words
    }
  }
  return value.trim().split(/\s+/);
}

/** Provider reference `urn::id` split into its URN and id. */
function splitProviderRef(ref: string): { urn: string; id: string } {
  const at = ref.lastIndexOf("::");
  return { urn: ref.slice(0, at), id: ref.slice(at + 2) };
}

/**
 * The engine a resource's Docker provider talks to, from the provider's own state (or its pending
 * create): exactly the endpoint the interrupted deployment used, for local (`unix://`) and Hetzner
 * (`ssh://root@<ip>`) servers alike. The server name is the provider's parent, the server's host
 * component (`mai:index:Host::<server>`).
 */
export function engineOf(resource: StateResource, deployment: Deployment): EngineRef | { problem: string } {
  if (!resource.provider) return { problem: "it has no explicit Docker provider, so repair cannot tell which engine it is on" };
  const ref = splitProviderRef(resource.provider);
  const candidates = [...(deployment.resources ?? []), ...(deployment.pending_operations ?? []).map((op) => op.resource)];
  const provider = candidates.find((r) => r.urn === ref.urn && (r.id === ref.id || r.id === undefined || r.id === ""));
  if (!provider) return { problem: `its Docker provider ${ref.urn} is not in the state` };
  const host = provider.inputs?.host ?? provider.outputs?.host;
  if (typeof host !== "string" || host === "") return { problem: `its Docker provider ${urnName(ref.urn)} has no host in the state` };
  const server = provider.parent ? urnName(provider.parent) : urnName(ref.urn);
  return { server, host, sshOptions: sshOptionsOf(provider.inputs?.sshOpts ?? provider.outputs?.sshOpts) };
}

/** The Docker object a pending create declared (name, labels, driver), from its inputs. */
export function declaredObject(resource: StateResource): DeclaredObject | undefined {
  const inputs = resource.inputs ?? {};
  if (typeof inputs.name !== "string" || inputs.name === "") return undefined;
  if (resource.type === DOCKER_CONTAINER) return { kind: "container", name: inputs.name, labels: labelsOf(inputs.labels) };
  if (resource.type === DOCKER_NETWORK) {
    return { kind: "network", name: inputs.name, labels: labelsOf(inputs.labels), driver: typeof inputs.driver === "string" && inputs.driver ? inputs.driver : "bridge" };
  }
  return undefined;
}

/** Sorts every pending operation of a deployment into what kind of work it is. */
export function pendingWork(deployment: Deployment): PendingWork[] {
  return (deployment.pending_operations ?? []).map((op): PendingWork => {
    const { resource } = op;
    if (op.type !== "creating") return { op, kind: "interrupted" };
    if (resource.type === DOCKER_VOLUME) return { op, kind: "volume" };
    if (resource.type === DOCKER_CONTAINER || resource.type === DOCKER_NETWORK) {
      const declared = declaredObject(resource);
      if (!declared) return { op, kind: "unresolved", problem: "its inputs hold no object name" };
      const engine = engineOf(resource, deployment);
      if ("problem" in engine) return { op, kind: "unresolved", problem: engine.problem };
      return { op, kind: "docker", declared, engine };
    }
    if (STATE_ONLY_TYPES.some((pattern) => pattern.test(resource.type))) return { op, kind: "stateOnly" };
    return { op, kind: "unknown" };
  });
}

/** Whether `observed` carries every label the stack gave the object (and the stack gave it some). */
function carriesStackLabels(declared: DeclaredObject, observed: ObservedObject): boolean {
  const wanted = Object.entries(declared.labels);
  return wanted.length > 0 && wanted.every(([label, value]) => observed.labels[label] === value);
}

function sameLabels(declared: DeclaredObject, observed: ObservedObject): boolean {
  return Object.entries(declared.labels).every(([label, value]) => observed.labels[label] === value);
}

/** Whether the state already holds an entry with this URN (e.g. the old container of a replacement). */
function inState(urn: string, deployment: Deployment): boolean {
  return (deployment.resources ?? []).some((r) => r.urn === urn);
}

/** What to do with one pending operation, given what its engine shows (`observed` by URN). */
export function decideStep(
  work: PendingWork,
  deployment: Deployment,
  observed: ReadonlyMap<string, ObservedObject | undefined>,
  forget: ReadonlySet<string> = new Set(),
): RepairStep {
  const { op } = work;
  const base = { urn: op.resource.urn, name: urnName(op.resource.urn), type: op.resource.type, operation: op.type };
  switch (work.kind) {
    case "interrupted":
      return inState(op.resource.urn, deployment)
        ? { ...base, action: "refresh", reason: `interrupted while ${op.type}: re-read from its provider, the next pulumi up does what is left` }
        : { ...base, action: "clear", reason: `interrupted while ${op.type}, and no longer in the state: nothing to re-read` };
    case "volume":
      return { ...base, action: "clear", reason: inState(op.resource.urn, deployment) ? "never touched; the state holds it already (made by a later pulumi up, or the one this create replaces)" : "never touched: docker volume create is idempotent, the next pulumi up adopts the volume with its data" };
    case "stateOnly":
      return { ...base, action: "clear", reason: inState(op.resource.urn, deployment) ? "the state holds it already (made by a later pulumi up, or the one this create replaces): only the pending create is dropped, the next pulumi up runs it again if it is still due" : "nothing outside the state: the next pulumi up creates it again" };
    case "unknown":
      return forget.has(op.resource.urn)
        ? { ...base, action: "clear", reason: "cleared as you asked (--forget): the next pulumi up creates it again" }
        : { ...base, action: "blocked", reason: "repair cannot see this provider's objects: check whether it exists there, then run repair with --forget <urn> (or adopt it with pulumi import)" };
    case "unresolved":
      return { ...base, action: "blocked", reason: `cannot be checked: ${work.problem}` };
    case "docker":
      return decideDocker(work, base, deployment, observed.get(op.resource.urn));
  }
}

function decideDocker(
  work: Extract<PendingWork, { kind: "docker" }>,
  base: Pick<RepairStep, "urn" | "name" | "type" | "operation">,
  deployment: Deployment,
  found: ObservedObject | undefined,
): RepairStep {
  const { declared, engine } = work;
  if (!found) return { ...base, action: "clear", reason: `no ${declared.kind} ${declared.name} on server ${engine.server}: the create never got there` };
  // A pending create outlives later deployments: when a later `up` made the object, the state holds
  // it with this very id, and it is the stack's live object, not a half-made one.
  if ((deployment.resources ?? []).some((r) => r.urn === base.urn && r.id === found.id)) {
    return { ...base, action: "clear", reason: `${declared.kind} ${declared.name} is the one the state already holds (a later pulumi up made it): untouched, only the stale pending create is dropped` };
  }
  const object = { kind: declared.kind, name: declared.name, id: found.id, engine };
  if (declared.kind === "network") {
    const matches = sameLabels(declared, found) && found.driver === declared.driver;
    if (matches && !inState(base.urn, deployment)) return { ...base, action: "adopt", object, reason: "made by this deployment and as declared: taken into the state" };
    if (carriesStackLabels(declared, found)) {
      return { ...base, action: "remove", object, reason: matches ? "made by this deployment but the state holds another copy: removed, the next pulumi up settles it" : `made by this deployment with driver ${found.driver}, not ${declared.driver}: removed, the next pulumi up creates it` };
    }
    return { ...base, action: "blocked", object, reason: "a network of this name without the stack's labels: not made by this stack, left alone (rename or remove it yourself)" };
  }
  if (carriesStackLabels(declared, found)) {
    return { ...base, action: "remove", object, reason: "half-made by this deployment: removed (its data volume is kept), the next pulumi up creates it as declared" };
  }
  return { ...base, action: "blocked", object, reason: "a container of this name without the stack's labels: not made by this stack, left alone (rename or remove it yourself)" };
}

/** The whole repair: one step per pending operation, in the state's order. */
export function planRepair(
  deployment: Deployment,
  observed: ReadonlyMap<string, ObservedObject | undefined>,
  forget: ReadonlySet<string> = new Set(),
): RepairStep[] {
  return pendingWork(deployment).map((work) => decideStep(work, deployment, observed, forget));
}

/**
 * The deployment to import: each adopted resource added to the state with its engine id (after
 * everything it refers to), and no pending operations (`pulumi stack import` drops them anyway).
 * Throws when an adopted resource refers to something the state lacks (the import would be refused).
 */
export function repairedDeployment(deployment: Deployment, steps: readonly RepairStep[]): Deployment {
  const resources = [...(deployment.resources ?? [])];
  const known = new Set(resources.map((r) => r.urn));
  const pending = new Map((deployment.pending_operations ?? []).map((op) => [op.resource.urn, op] as const));
  for (const step of steps) {
    if (step.action !== "adopt" || !step.object) continue;
    const op = pending.get(step.urn);
    if (!op) throw new Error(`${step.urn} has no pending create to adopt`);
    const refersTo = [op.resource.parent, op.resource.provider && splitProviderRef(op.resource.provider).urn, ...(op.resource.dependencies ?? [])].filter(
      (urn): urn is string => typeof urn === "string" && urn !== "",
    );
    const missing = refersTo.filter((urn) => !known.has(urn));
    if (missing.length > 0) throw new Error(`${step.urn} refers to ${missing.join(", ")}, which the state lacks`);
    resources.push({ ...op.resource, id: step.object.id, outputs: op.resource.outputs ?? {} });
    known.add(step.urn);
  }
  return { ...deployment, resources, pending_operations: [] };
}

/** URNs the refresh after the import re-reads: the adopted objects and the resources of interrupted updates/deletes. */
export function refreshTargets(steps: readonly RepairStep[]): string[] {
  return [...new Set(steps.filter((s) => s.action === "adopt" || s.action === "refresh").map((s) => s.urn))];
}

/** Steps that change an engine (containers before networks: a network with a container attached cannot go). */
export function removals(steps: readonly RepairStep[]): RepairStep[] {
  const order = { container: 0, network: 1 } as const;
  return steps.filter((s) => s.action === "remove" && s.object).sort((a, b) => order[a.object!.kind] - order[b.object!.kind]);
}

/** The engines a repair has to reach (to look objects up, and to remove them), one per server. */
export function enginesOf(work: readonly PendingWork[]): EngineRef[] {
  const byHost = new Map<string, EngineRef>();
  for (const item of work) if (item.kind === "docker") byHost.set(`${item.engine.server}\u0000${item.engine.host}`, item.engine);
  return [...byHost.values()];
}

/** A command line: the program, its arguments, and environment additions. */
export interface Invocation {
  command: string;
  args: string[];
  env: Record<string, string>;
}

/**
 * How to run `docker <args>` against an engine: the local `docker` CLI with DOCKER_HOST for a
 * `unix://`/`tcp://` host; for an `ssh://user@host[:port]` host, `docker` on the server itself over
 * `ssh` with the provider's SSH options and BatchMode (as the stack's own `servers.<name>.shell`
 * does), so a missing key fails at once instead of prompting.
 */
export function dockerInvocation(engine: EngineRef, args: readonly string[]): Invocation {
  const ssh = /^ssh:\/\/(?:([^@/]+)@)?([^:/]+|\[[^\]]+\])(?::(\d+))?\/?$/.exec(engine.host);
  if (!ssh) return { command: "docker", args: [...args], env: { DOCKER_HOST: engine.host } };
  const [, user, host, port] = ssh;
  const destination = user ? `${user}@${host.replace(/^\[|\]$/g, "")}` : host.replace(/^\[|\]$/g, "");
  return {
    command: "ssh",
    args: ["-o", "BatchMode=yes", ...engine.sshOptions, ...(port ? ["-p", port] : []), destination, "--", ["docker", ...args].map(shellQuote).join(" ")],
    env: {},
  };
}

/** Parses `docker inspect` output of one object (undefined when it is not a one-object JSON array). */
export function parseInspect(json: string): ObservedObject | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed) || parsed.length !== 1) return undefined;
  const object = parsed[0] as { Id?: string; Driver?: string; Labels?: Record<string, string> | null; Config?: { Labels?: Record<string, string> | null } };
  if (typeof object.Id !== "string") return undefined;
  const labels = object.Config ? (object.Config.Labels ?? {}) : (object.Labels ?? {});
  return { id: object.Id, labels, ...(object.Driver ? { driver: object.Driver } : {}) };
}

/** Where a `file://` backend keeps a stack's lock files (both layouts: project-scoped and legacy). */
export function lockDirectories(backendUrl: string, project: string, stack: string, home: string): string[] {
  if (!backendUrl.startsWith("file://")) return [];
  let root = backendUrl.slice("file://".length).replace(/\?.*$/, "");
  if (root === "~" || root.startsWith("~/")) root = home + root.slice(1);
  root = root.replace(/\/+$/, "");
  const name = stack.split("/").pop()!;
  return [`${root}/.pulumi/locks/organization/${project}/${name}`, `${root}/.pulumi/locks/${name}`];
}

/** What a `file://` backend's lock file says about the process that took it. */
export interface LockHolder {
  pid?: number;
  username?: string;
  hostname?: string;
  timestamp?: string;
}

/**
 * The refusal for a locked stack. A process on this machine that still runs is a live deployment
 * (never repair under it); anything else is a lock to remove with `pulumi cancel` once the
 * operator knows the deployment is dead.
 */
export function lockedMessage(stack: string, holder: LockHolder, running: boolean | undefined): string {
  const who = [holder.username && holder.hostname ? `${holder.username}@${holder.hostname}` : holder.hostname, holder.pid ? `pid ${holder.pid}` : undefined, holder.timestamp ? `since ${holder.timestamp}` : undefined]
    .filter(Boolean)
    .join(", ");
  if (running) {
    return `The stack ${stack} is locked by a Pulumi process that is still running (${who}): a deployment is in progress. Wait for it to finish; repair changes nothing while it runs.`;
  }
  const known = running === false ? "That process no longer runs on this machine:" : "If that deployment is no longer running,";
  return `The stack ${stack} is locked (${who}). ${known} run \`pulumi cancel --stack ${stack}\` to remove the stale lock, then \`npm run repair -- --stack ${stack}\` again. Nothing was changed.`;
}

const VERB: Record<RepairAction, { done: string; planned: string }> = {
  adopt: { done: "adopted", planned: "would adopt" },
  remove: { done: "removed", planned: "would remove" },
  clear: { done: "cleared", planned: "would clear" },
  refresh: { done: "refreshed", planned: "would refresh" },
  blocked: { done: "left alone", planned: "left alone" },
};

const KIND_OF_TYPE: [RegExp, string][] = [
  [/container:Container$/, "container"],
  [/network:Network$/, "network"],
  [/volume:Volume$/, "volume"],
  [/^random:/, "secret"],
  [/^command:/, "command"],
];

function kindWord(type: string): string {
  return KIND_OF_TYPE.find(([pattern]) => pattern.test(type))?.[1] ?? type;
}

/** The report, one line per interrupted operation, e.g. `removed container mai-acme (server local): …`. */
export function renderSteps(steps: readonly RepairStep[], planned: boolean): string {
  return steps
    .map((step) => {
      const verb = planned ? VERB[step.action].planned : VERB[step.action].done;
      const what = step.object ? `${step.object.kind} ${step.object.name} (server ${step.object.engine.server})` : `${kindWord(step.type)} ${step.name}`;
      return `  ${verb.padEnd(13)} ${what}: ${step.reason}\n`;
    })
    .join("");
}
