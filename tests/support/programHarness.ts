/**
 * Runs the real program (index.ts) under Pulumi's mock runtime and returns what it declared:
 * every resource with its raw inputs (secrets still wrapped, so tests can check both the value
 * and the marking) and the options the SDK sent (protect, retainOnDelete, ...). The plan's
 * evaluator masks secrets instead; both use the same mocked provider outputs.
 * Call once per fresh module registry (vitest: one run per test file, or vi.resetModules()).
 */
import * as pulumi from "@pulumi/pulumi";
import { mockOutputs } from "../../plan/mockRuntime";

export interface DeclaredResource {
  type: string;
  name: string;
  inputs: Record<string, any>;
  options: {
    protect: boolean;
    retainOnDelete?: boolean;
    deleteBeforeReplace: boolean;
    ignoreChanges: string[];
    /** Inputs whose change replaces the resource (`replaceOnChanges`). */
    replaceOnChanges: string[];
    /** URNs of direct dependencies (dependsOn and inputs). */
    dependsOn: string[];
    /** URN of the parent ("" for none). */
    parent: string;
    /** URNs whose replacement replaces this resource too (`replaceWith`). */
    replaceWith: string[];
  };
}

export interface ProgramRun {
  resources: DeclaredResource[];
  outputs: Record<string, unknown>;
}

/** The outputs the mocked providers compute: the plan's own, so tests and plan agree. */
const serverState = mockOutputs("hcloud:index/server:Server", "host-server", {}).state;
export const MOCK_IPV4 = serverState.ipv4Address as string;
export const MOCK_IPV6 = serverState.ipv6Address as string;

export interface ProgramRunOptions {
  /** Stack config, keys with namespace (`mai-hosting:domain`), objects as JSON strings. */
  config: Record<string, string>;
  /** Keys of `config` that are secrets. */
  secretKeys?: string[];
  /** Directory of client files for this run. */
  clientsDir: string;
  /** Module path of the program; default the repository's index.ts. */
  programPath?: string;
}

/**
 * Installs Pulumi's mocks (the plan's provider outputs; an unmocked `call` throws) and returns
 * the list every registration is appended to, with its inputs and options.
 */
export async function installMocks(): Promise<DeclaredResource[]> {
  const resources: DeclaredResource[] = [];
  const pending = new Map<string, DeclaredResource["options"]>();

  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const { id, state } = mockOutputs(args.type, args.name, args.inputs);
        const options = pending.get(`${args.type}::${args.name}`) ?? {
          protect: false,
          deleteBeforeReplace: false,
          ignoreChanges: [],
          replaceOnChanges: [],
          dependsOn: [],
          parent: "",
          replaceWith: [],
        };
        resources.push({ type: args.type, name: args.name, inputs: args.inputs, options });
        return { id, state };
      },
      call(args) {
        throw new Error(`unexpected provider function call: ${args.token}`);
      },
    },
    "mai-hosting",
    "test",
    false,
  );

  // MockResourceArgs carries no resource options (pulumi/pulumi#14421); the request the SDK
  // sends to the monitor does, so read them there before the mock sees the request.
  const monitor = pulumi.runtime.getMonitor() as any;
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: any, callback: any) => {
    pending.set(`${req.getType()}::${req.getName()}`, {
      protect: req.getProtect(),
      retainOnDelete: req.hasRetainondelete?.() ? req.getRetainondelete() : undefined,
      deleteBeforeReplace: req.getDeletebeforereplace(),
      ignoreChanges: req.getIgnorechangesList(),
      replaceOnChanges: req.getReplaceonchangesList(),
      dependsOn: req.getDependenciesList(),
      parent: req.getParent(),
      replaceWith: req.getReplaceWithList(),
    });
    return register(req, callback);
  };
  return resources;
}

export async function runProgram(options: ProgramRunOptions): Promise<ProgramRun> {
  const resources = await installMocks();
  pulumi.runtime.setAllConfig(options.config, options.secretKeys ?? []);
  process.env.MAI_CLIENTS_DIR = options.clientsDir;
  const program = await import(options.programPath ?? "../../index");
  const outputs: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(program)) {
    outputs[key] = pulumi.Output.isInstance(value) ? await promiseOf(value) : value;
  }
  // Outputs resolve before every registration has reached the monitor; let the queue drain.
  await new Promise((resolve) => setTimeout(resolve, 50));
  return { resources, outputs };
}

/** The value of an Output (test helper; secrets included). */
export function promiseOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => resolve(v)));
}

/** Pulumi's wire marker for a secret value inside mock inputs. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

export function isSecretValue(value: unknown): value is { value: unknown } {
  return typeof value === "object" && value !== null && (value as any)[SECRET_SIG] === "1b47061264138c4ac30d75fd1eb44270";
}

/** JSON of a value with every secret replaced by "[secret]": what a reviewer or log could see. */
export function publicJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (isSecretValue(v) ? "[secret]" : v));
}
