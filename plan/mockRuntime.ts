/**
 * Runs the real Pulumi program under the SDK's mock runtime and records every resource it
 * registers: type, name, parent, inputs and the options that matter for a deployment. No engine,
 * no provider plugins, no credentials, no network. The result is the program's *declared*
 * desired state, not the cloud's actual state.
 */
import { createHash } from "crypto";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { RuntimeConfig } from "./stackConfig";
import type { DeclaredResource } from "./types";
import { canonicalJson } from "./diff";

// Internal SDK modules: the monitor the mocks install, and the wait for outstanding registrations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const settings = require("@pulumi/pulumi/runtime/settings") as {
  getMonitor(): { registerResource(req: RegisterRequest, cb: (err: unknown, res: unknown) => void): unknown } | undefined;
  waitForRPCs(): Promise<void>;
};

/** The parts of a RegisterResourceRequest (protobuf) the plan reads. */
interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getObject(): { toJavaScript(): Record<string, unknown> } | undefined;
  getProtect?(): boolean | undefined;
  getRetainondelete?(): boolean | undefined;
  getDeletebeforereplace(): boolean;
  getReplaceonchangesList(): string[];
  getIgnorechangesList(): string[];
  getProvider(): string;
  getAliasesList?(): AliasMessage[];
  getReplacementTrigger?(): { toJavaScript(): unknown } | undefined;
  getReplaceWithList?(): string[];
}

/** One alias of a RegisterResourceRequest: a URN, or a spec relative to the resource itself. */
interface AliasMessage {
  getUrn(): string;
  getSpec():
    | { getName(): string; getType(): string; getStack(): string; getProject(): string; getParenturn(): string; getNoparent(): boolean }
    | undefined;
}

/** The `<parent types$type>` part of a URN. */
function qualifiedType(urn: string): string {
  return urn.split("::")[2] ?? "";
}

/** A resource's URN as the engine forms it: its parent's qualified type chain, then its own type. */
export function engineUrn(stack: string, project: string, parent: string | undefined, type: string, name: string): string {
  const parentChain = parent ? qualifiedType(parent) : "";
  const qualified = parentChain && parentChain !== "pulumi:pulumi:Stack" ? `${parentChain}$${type}` : type;
  return `urn:pulumi:${stack}::${project}::${qualified}::${name}`;
}

/** The `replacementTrigger` option of a registration, when it has one. */
function replacementTriggerOf(req: RegisterRequest): { replacementTrigger?: unknown } {
  const value = req.getReplacementTrigger?.()?.toJavaScript();
  return value === undefined || value === null ? {} : { replacementTrigger: value };
}

/** The `replaceWith` option of a registration (URNs), when it has one. */
function replaceWithOf(req: RegisterRequest): { replaceWith?: string[] } {
  const urns = req.getReplaceWithList?.() ?? [];
  return urns.length > 0 ? { replaceWith: [...urns].sort() } : {};
}

/**
 * The provider the engine itself adds for dynamic resources (`pulumi:providers:pulumi-nodejs`,
 * named `default`): the program never registers it, so the mocks do not see it. Its inputs are
 * the stack's config of the project's namespace (the engine hands dynamic providers the project
 * config), so any change of that config updates it, as the real preview shows.
 */
function defaultDynamicProvider(
  resources: readonly DeclaredResource[],
  input: EvaluationInput,
): { resource: DeclaredResource; fingerprints: Record<string, string> } | undefined {
  if (!resources.some((r) => r.type.startsWith("pulumi-nodejs:dynamic") && r.provider === undefined)) return undefined;
  const own = Object.keys(input.config.values)
    .filter((key) => key.startsWith(`${input.project}:`))
    .sort();
  const secret = new Set(input.config.secretKeys);
  const inputs: Record<string, unknown> = {};
  const prints: Record<string, string> = {};
  for (const key of own) {
    inputs[key] = secret.has(key) ? SECRET_MASK : input.config.values[key];
    prints[key] = digest(input.config.values[key]);
  }
  const resource: DeclaredResource = {
    urn: engineUrn(input.stack, input.project, undefined, "pulumi:providers:pulumi-nodejs", "default"),
    type: "pulumi:providers:pulumi-nodejs",
    name: "default",
    custom: true,
    inputs,
    options: { protect: false, retainOnDelete: false, deleteBeforeReplace: false, replaceOnChanges: [], ignoreChanges: [] },
  };
  return { resource, fingerprints: prints };
}

/** The URNs a resource's aliases stand for (the URNs it had before a rename or re-parenting). */
export function aliasUrns(aliases: readonly AliasMessage[], own: { urn: string; type: string; name: string; parent: string }): string[] {
  const [stackPart, project] = own.urn.split("::");
  const stack = stackPart.replace(/^urn:pulumi:/, "");
  return aliases.map((alias) => {
    if (alias.getUrn()) return alias.getUrn();
    const spec = alias.getSpec();
    if (!spec) return own.urn;
    const parent = spec.getNoparent() ? "" : spec.getParenturn() || own.parent;
    const type = spec.getType() || own.type;
    const qualified = parent && !parent.endsWith("::") ? `${qualifiedType(parent)}$${type}` : type;
    return `urn:pulumi:${spec.getStack() || stack}::${spec.getProject() || project}::${qualified}::${spec.getName() || own.name}`;
  });
}

/** Marker keys of the Pulumi wire format (see @pulumi/pulumi/runtime/rpc.js). */
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SIG_SECRET = "1b47061264138c4ac30d75fd1eb44270";
const SIG_ASSET = "c44067f5952c0a294b673a41bacd8c17";
const SIG_ARCHIVE = "0def7320c3a5731c473e5ecbe6d01bc7";
const SIG_RESOURCE = "5cf8f73096256a8f31e491e813e4eb8e";
const SIG_OUTPUT = "d0e6a833031e9bbcd3f4e8bde6ca49a4";
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** Shown instead of every secret value. */
export const SECRET_MASK = "[secret]";

/** Converts a wire-format value to plain JSON, masking secrets. */
export function toDeclaredValue(value: unknown): unknown {
  if (value === UNKNOWN) return "[unknown]";
  if (Array.isArray(value)) return value.map(toDeclaredValue);
  if (value && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    switch (obj[SIG_KEY]) {
      case SIG_SECRET:
        return SECRET_MASK;
      case SIG_ASSET:
      case SIG_ARCHIVE: {
        const { [SIG_KEY]: _sig, ...rest } = obj;
        return { [obj[SIG_KEY] === SIG_ASSET ? "asset" : "archive"]: toDeclaredValue(rest) };
      }
      case SIG_RESOURCE:
        return obj.urn;
      case SIG_OUTPUT:
        return obj.secret ? SECRET_MASK : "value" in obj ? toDeclaredValue(obj.value) : "[unknown]";
      default: {
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(obj)) out[k] = toDeclaredValue(v);
        return out;
      }
    }
  }
  return value;
}

/** A short digest of a raw (unmasked) value, so masked values can still be compared. */
function digest(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value)).digest("base64url").slice(0, 16);
}

/** Inputs that are SDK plumbing, not declared state (a dynamic provider's serialized code). */
const hiddenInputs = new Set(["__provider"]);

/** The URN of a provider reference (`<urn>::<id>`); the id is not part of the identity. */
export function providerUrn(reference: string): string | undefined {
  if (!reference) return undefined;
  const cut = reference.lastIndexOf("::");
  return cut > "urn:pulumi:".length ? reference.slice(0, cut) : reference;
}

/** Deterministic small integer for ids that providers return as numbers (Hetzner). */
function stableNumber(seed: string): number {
  return 1000 + (parseInt(createHash("sha256").update(seed).digest("hex").slice(0, 6), 16) % 9_000_000);
}

/** Deterministic documentation-range address (RFC 5737 / RFC 3849). */
function stableIpv4(seed: string): string {
  return `203.0.113.${1 + (stableNumber(seed) % 250)}`;
}

/**
 * Outputs a provider would compute, made up deterministically from the inputs so that two
 * evaluations of the same declaration agree and a changed input propagates to dependants.
 */
export function mockOutputs(type: string, name: string, inputs: Record<string, unknown>): { id: string; state: Record<string, unknown> } {
  const seed = `${type}::${name}`;
  const id = String(stableNumber(seed));
  const state: Record<string, unknown> = { ...inputs };
  switch (type) {
    case "hcloud:index/server:Server":
      state.ipv4Address = stableIpv4(seed);
      state.ipv6Address = "2001:db8::1";
      state.ipv6Network = "2001:db8::/64";
      state.status = "running";
      break;
    case "hcloud:index/primaryIp:PrimaryIp":
      state.ipAddress = inputs.type === "ipv6" ? "2001:db8::/64" : stableIpv4(seed);
      state.ipNetwork = inputs.type === "ipv6" ? "2001:db8::/64" : undefined;
      break;
    case "hcloud:index/sshKey:SshKey":
      state.fingerprint = digest(inputs.publicKey);
      break;
    case "docker:index/remoteImage:RemoteImage":
      state.imageId = `sha256:${createHash("sha256").update(String(inputs.name)).digest("hex")}`;
      state.repoDigest = `${String(inputs.name).split(":")[0]}@${state.imageId as string}`;
      break;
    case "docker:index/network:Network":
    case "docker:index/volume:Volume":
    case "docker:index/container:Container":
      state.name = inputs.name ?? name;
      break;
    case "random:index/randomPassword:RandomPassword":
      // Marked secret like the real provider's `additionalSecretOutputs`.
      state.result = pulumi.secret(`placeholder-password-${digest(seed)}`);
      state.bcryptHash = pulumi.secret(`placeholder-hash-${digest(seed)}`);
      break;
    case "pulumi-nodejs:dynamic/openrouter:Key":
      // The key value exists only at OpenRouter and in state, as a secret.
      state.hash = `mock-${digest(seed)}`;
      state.key = pulumi.secret(`placeholder-key-${digest(seed)}`);
      break;
    case "command:remote:Command":
      state.stdout = "";
      state.stderr = "";
      break;
    default:
      break;
  }
  // Hetzner ids are integers the program passes on as numbers (server publicNets, firewallIds).
  const numericId = type.startsWith("hcloud:") || type.startsWith("pulumi:providers:");
  return { id: numericId ? id : `${name}-${id}`, state };
}

/** The SDK's mocks: computed outputs as above; any provider function call is a program error here. */
const mocks: pulumi.runtime.Mocks = {
  newResource(args: pulumi.runtime.MockResourceArgs) {
    return mockOutputs(args.type, args.name, args.inputs as Record<string, unknown>);
  },
  call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
    throw new Error(`the plan does not mock provider function ${args.token}; the program must not need cloud look-ups`);
  },
};

/** What one evaluation of the program produced. */
export interface Evaluation {
  /** Every registered resource, sorted by URN. */
  resources: DeclaredResource[];
  /** Resources the engine adds on its own (the dynamic resources' default provider): diffed, not listed. */
  engineResources: DeclaredResource[];
  /** Per resource URN, per top-level input, a digest of the unmasked value (for diffs only). */
  fingerprints: Map<string, Record<string, string>>;
  /** Warnings the program logged. */
  warnings: string[];
}

/** The program failed while running under the mocks; `message` is meant for the user. */
export class EvaluationError extends Error {}

/** Everything one evaluation needs. */
export interface EvaluationInput {
  /** Absolute path of the program's entry module (index.ts). */
  programPath: string;
  /** Pulumi project name (namespace of the program's config). */
  project: string;
  /** Stack name. */
  stack: string;
  /** Runtime config, secrets already replaced by placeholders. */
  config: RuntimeConfig;
  /** Directory with the client files, passed to the program as `MAI_CLIENTS_DIR`. */
  clientsDir: string;
}

/** Drops the program's own modules from the require cache so the next evaluation starts fresh. */
function forgetProgramModules(projectRoot: string): void {
  const keep = [path.join(projectRoot, "node_modules") + path.sep, path.join(projectRoot, "plan") + path.sep];
  for (const id of Object.keys(require.cache)) {
    if (id.startsWith(projectRoot + path.sep) && !keep.some((prefix) => id.startsWith(prefix))) delete require.cache[id];
  }
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * Runs the program once and returns what it declares. Evaluations may run one after another in
 * the same process (each resets the mocks, the config and the program's modules), never
 * concurrently: the Pulumi runtime is process-global.
 */
export async function evaluateProgram(input: EvaluationInput): Promise<Evaluation> {
  const projectRoot = path.dirname(input.programPath);
  forgetProgramModules(projectRoot);
  await pulumi.runtime.setMocks(mocks, input.project, input.stack, false);
  pulumi.runtime.setAllConfig(input.config.values, input.config.secretKeys);

  const resources: DeclaredResource[] = [];
  const fingerprints = new Map<string, Record<string, string>>();
  const monitor = settings.getMonitor();
  if (!monitor) throw new Error("the Pulumi mock monitor is not installed");
  // The SDK's mock monitor qualifies a child's type with its parent's type only; the engine
  // qualifies it with the parent's whole chain (`A$B$C`), so grandchildren's URNs would differ
  // from the real ones (a dynamic provider's sub-resource under a client, say).
  (monitor as unknown as { newUrn(parent: string, type: string, name: string): string }).newUrn = (parent, type, name) =>
    engineUrn(pulumi.getStack(), input.project, parent, type, name);
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, callback) =>
    register(req, (err, res) => {
      if (!err && res) record(req, (res as { getUrn(): string }).getUrn());
      callback(err, res);
    });

  function record(req: RegisterRequest, urn: string): void {
    const raw = req.getObject()?.toJavaScript() ?? {};
    const inputs: Record<string, unknown> = {};
    const prints: Record<string, string> = {};
    for (const key of Object.keys(raw).sort()) {
      if (hiddenInputs.has(key)) continue;
      inputs[key] = toDeclaredValue(raw[key]);
      prints[key] = digest(raw[key]);
    }
    const parent = req.getParent();
    const provider = providerUrn(req.getProvider());
    const aliases = aliasUrns(req.getAliasesList?.() ?? [], { urn, type: req.getType(), name: req.getName(), parent });
    resources.push({
      urn,
      type: req.getType(),
      name: req.getName(),
      ...(parent ? { parent } : {}),
      custom: req.getCustom(),
      inputs,
      options: {
        protect: req.getProtect?.() === true,
        retainOnDelete: req.getRetainondelete?.() === true,
        deleteBeforeReplace: req.getDeletebeforereplace(),
        replaceOnChanges: req.getReplaceonchangesList(),
        ignoreChanges: req.getIgnorechangesList(),
        ...replacementTriggerOf(req),
        ...replaceWithOf(req),
      },
      ...(provider ? { provider } : {}),
      ...(aliases.length > 0 ? { aliases } : {}),
    });
    fingerprints.set(urn, prints);
  }

  const warnings: string[] = [];
  const failures: unknown[] = [];
  const onRejection = (reason: unknown) => failures.push(reason);
  const originalWarn = console.warn;
  const previousClientsDir = process.env.MAI_CLIENTS_DIR;
  console.warn = (...args: unknown[]) => warnings.push(args.map(String).join(" ").replace(/^warning: \[runtime\] /, ""));
  process.on("unhandledRejection", onRejection);
  process.env.MAI_CLIENTS_DIR = input.clientsDir;
  try {
    try {
      require(input.programPath);
    } catch (err) {
      throw new EvaluationError(errorMessage(err));
    }
    await settings.waitForRPCs();
    // Let rejections raised by the last registrations reach the listener.
    await new Promise((resolve) => setImmediate(resolve));
    if (failures.length > 0) throw new EvaluationError(failures.map(errorMessage).join("\n"));
  } finally {
    console.warn = originalWarn;
    process.off("unhandledRejection", onRejection);
    if (previousClientsDir === undefined) delete process.env.MAI_CLIENTS_DIR;
    else process.env.MAI_CLIENTS_DIR = previousClientsDir;
  }
  const dynamicProvider = defaultDynamicProvider(resources, input);
  if (dynamicProvider) fingerprints.set(dynamicProvider.resource.urn, dynamicProvider.fingerprints);
  resources.sort((a, b) => (a.urn < b.urn ? -1 : a.urn > b.urn ? 1 : 0));
  return { resources, engineResources: dynamicProvider ? [dynamicProvider.resource] : [], fingerprints, warnings };
}
