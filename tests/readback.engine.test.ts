/**
 * Real engine, real providers: what the program declares must be what the providers read back.
 * After every create the docker provider reads the object back from the engine and stores what it
 * read; a declared input spelled differently (cpus "1" for "1.0", a health check interval "90s"
 * for "1m30s", see policy/dockerCanonical.ts) is a diff on every later `pulumi up`, a replacement
 * for replace-on-change inputs. So: on a stack that declares every resource type the local program
 * can declare (the types are found in the program's source, so a new one cannot slip by), with
 * clients whose settings exercise the canonical spellings, a no-op preview right after `up`, and a
 * preview after `pulumi refresh`, show every resource `same`.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { docker, newRunId } from "./support/engine";
import { openRouterKeyName } from "../components/openrouter/key";
import { startOpenRouterStandIn, type OpenRouterStandIn } from "./support/openrouterStandIn";
import { keyOfUrn, REPO_DIR, type Changes } from "./support/realStack";
import { useRealEngineSuite } from "./support/testEngine";

const id = newRunId();
let openRouter: OpenRouterStandIn | undefined;

/**
 * Clients whose declared inputs take each canonical spelling: the stack defaults (cpus 1 -> "1.0",
 * reservation 0.25), fractional limits (0.25, 1.5), whole ones (2 -> "2.0", the local server's
 * cap), explicit reservations (cpu shares 256, 512, 1024), own memory sizes, an env entry of the
 * client file, a custom hostname (its default name redirects), stack-managed OpenRouter keys (the
 * dynamic provider's read-back) and a suspended client (no container, a disabled key).
 */
const CLIENTS = [
  { key: "defaults" },
  { key: "quarter", yaml: "name: Quarter\nresources:\n  cpus: 0.25\n  memory: 640M\n  reservations:\n    cpus: 0.25\n    memory: 64M\n" },
  {
    key: "custom",
    yaml:
      `name: Custom GmbH\nhostname: chat-${id}-custom.example.test\nresources:\n  cpus: 1.5\n  memory: 768M\n  reservations:\n    cpus: 0.5\n    memory: 96M\n` +
      "env:\n  DEFAULT_LOCALE: de-DE\nopenrouter:\n  monthlyLimitUsd: 25\n",
  },
  { key: "whole", yaml: "name: Whole\nresources:\n  cpus: 2\n  memory: 512M\n  reservations:\n    cpus: 1\n    memory: 64M\n" },
  { key: "paused", yaml: "name: Paused\nstatus: suspended\nopenrouter:\n  monthlyLimitUsd: 10\n" },
];

const suite = useRealEngineSuite({
  runId: id,
  clients: CLIENTS,
  // The provisioning key is a secret: set through the CLI (encrypted), so only once the stack
  // exists; the second `up` creates the managed keys (at the OpenRouter stand-in on 127.0.0.1)
  // and gives them to the containers.
  ready: async ({ stack }) => {
    openRouter = await startOpenRouterStandIn();
    stack.setConfig({ openrouterApiBaseUrl: openRouter.baseUrl });
    await stack.setSecret("openrouterProvisioningKey", openRouter.provisioningKey);
    await stack.up();
  },
  teardown: () => openRouter?.close(),
});
const stack = () => suite.stack;

/** Types only a Hetzner server declares: a local server has no cloud server, DNS zone or SSH. */
const HETZNER_ONLY = [/^hcloud:/, /^cloudflare:/, /^command:remote:/];

/** `require` as the program resolves its packages. */
const requireFromProgram = createRequire(path.join(REPO_DIR, "index.ts"));

/** Source files of the program: index.ts and everything under components/. */
function programSources(): string[] {
  const walk = (dir: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
      const file = path.join(dir, entry.name);
      return entry.isDirectory() ? walk(file) : entry.name.endsWith(".ts") ? [file] : [];
    });
  return [path.join(REPO_DIR, "index.ts"), ...walk(path.join(REPO_DIR, "components"))];
}

/** The arguments of the call whose `(` is at `open`, split at top-level commas. */
function callArguments(text: string, open: number): string[] {
  const args: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let current = "";
  for (let i = open + 1; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      current += c;
      if (c === "\\") current += text[++i];
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '"' || c === "'" || c === "`") quote = c;
    if ("([{".includes(c)) depth++;
    if (")]}".includes(c)) {
      if (depth === 0) return [...args, current.trim()].filter(Boolean);
      depth--;
    }
    if (c === "," && depth === 0) {
      args.push(current.trim());
      current = "";
    } else current += c;
  }
  throw new Error(`unbalanced call at offset ${open}`);
}

/**
 * Every resource type the program's source constructs: `new <package alias>.<Class>(` of the
 * Pulumi packages it imports (the class's own type token; `pulumi:providers:<pkg>` for providers),
 * and its dynamic resources (`extends pulumi.dynamic.Resource`, typed by the module and type
 * names given to `super`). Throws on what it cannot resolve, so the scan cannot silently miss one.
 */
function programResourceTypes(): Map<string, string[]> {
  const types = new Map<string, string[]>();
  const add = (type: string, file: string) => types.set(type, [...new Set([...(types.get(type) ?? []), path.relative(REPO_DIR, file)])]);
  for (const file of programSources()) {
    const text = fs.readFileSync(file, "utf8");
    const aliases = new Map([...text.matchAll(/^import \* as (\w+) from "(@pulumi\/[\w-]+)";/gm)].map((m) => [m[1], m[2]]));
    for (const m of text.matchAll(/\bnew (\w+)((?:\.\w+)+)\s*\(/g)) {
      const pkg = aliases.get(m[1]);
      if (!pkg || pkg === "@pulumi/pulumi") continue;
      let target: any = requireFromProgram(pkg);
      for (const part of m[2].slice(1).split(".")) target = target?.[part];
      const token = target?.__pulumiType as string | undefined;
      if (!token) throw new Error(`${path.relative(REPO_DIR, file)}: cannot tell the resource type of new ${m[1]}${m[2]}`);
      add(target.prototype instanceof requireFromProgram("@pulumi/pulumi").ProviderResource ? `pulumi:providers:${token}` : token, file);
    }
    for (const m of text.matchAll(/class (\w+) extends pulumi\.dynamic\.Resource\b/g)) {
      const call = text.indexOf("super(", m.index);
      const literals = call < 0 ? [] : callArguments(text, call + "super".length).filter((a) => /^"[\w-]+"$/.test(a));
      if (literals.length !== 2) throw new Error(`${path.relative(REPO_DIR, file)}: cannot tell the type of dynamic resource ${m[1]} (module and type names given to super)`);
      add(`pulumi-nodejs:dynamic/${JSON.parse(literals[0])}:${JSON.parse(literals[1])}`, file);
    }
  }
  return types;
}

interface StateResource {
  urn: string;
  type: string;
  custom?: boolean;
  id?: string;
  inputs?: Record<string, unknown>;
}

async function stateResources(): Promise<StateResource[]> {
  const exported = await stack().stack.exportStack();
  return (exported.deployment as { resources?: StateResource[] }).resources ?? [];
}

const isDefaultProvider = (r: StateResource) => r.type.startsWith("pulumi:providers:") && r.urn.split("::").pop()!.startsWith("default");
/** Resources that only group (the stack, the program's components): nothing on an engine to read back. */
const isGrouping = (r: StateResource) => r.type === "pulumi:pulumi:Stack" || r.type.startsWith("mai:");

/** Every resource of the state as a preview reports it (`type::name`); providers included. */
const stateKeys = (resources: StateResource[]) => resources.filter((r) => r.type !== "pulumi:pulumi:Stack").map((r) => keyOfUrn(r.urn)).sort();

/** What a preview would change, with the reasons, for a failure message (no values: they may be secret). */
const changesOf = (preview: Changes) =>
  preview.steps.filter((s) => s.op !== "same").map((s) => `${s.op} ${s.key}${s.diffs.length ? ` (${s.diffs.join(", ")})` : ""}`);

describe("what the providers read back equals what the program declares", () => {
  it("the stack holds every resource type the local program can declare", async () => {
    const scanned = programResourceTypes();
    const local = [...scanned.keys()].filter((type) => !HETZNER_ONLY.some((p) => p.test(type))).sort();
    // The scan finds the program's types (a scan that found nothing would prove nothing).
    expect(local).toEqual(expect.arrayContaining(["docker:index/container:Container", "command:local:Command", "pulumi:providers:docker"]));
    const resources = await stateResources();
    const deployed = [...new Set(resources.filter((r) => !isGrouping(r) && !isDefaultProvider(r)).map((r) => r.type))].sort();
    expect(deployed).toEqual(local);
    // Docker objects are always on their server's engine: no docker resource falls back to a default provider.
    expect(resources.filter(isDefaultProvider).map((r) => r.type)).not.toContain("pulumi:providers:docker");
  }, 180_000);

  it("one container per active client and the proxy, on the engine as in the state", async () => {
    const resources = await stateResources();
    const declared = resources.filter((r) => r.type === "docker:index/container:Container").map((r) => r.inputs?.name as string).sort();
    const active = CLIENTS.filter((c) => !c.yaml?.includes("status: suspended")).map((c) => stack().container(c.key));
    expect(declared).toEqual([...active, "mai-proxy"].sort());
    const running = (await docker(["ps", "--format", "{{.Names}}"])).split("\n").filter(Boolean).sort();
    expect(running).toEqual(declared);
    // The managed keys exist at the (stand-in) provisioning API: the dynamic resources ran for real.
    const keys = [...openRouter!.keys.values()].map((k) => ({ name: k.name, limit: k.limit, disabled: k.disabled }));
    expect(keys.sort((a, b) => a.name.localeCompare(b.name))).toEqual(
      [
        { name: openRouterKeyName(stack().slug("custom"), "test"), limit: 25, disabled: false },
        { name: openRouterKeyName(stack().slug("paused"), "test"), limit: 10, disabled: true },
      ].sort((a, b) => a.name.localeCompare(b.name)),
    );
  }, 180_000);

  it("a no-op preview right after up shows every resource the same", async () => {
    const preview = await stack().preview();
    expect(changesOf(preview)).toEqual([]);
    expect(preview.steps.map((s) => s.key).sort()).toEqual(stateKeys(await stateResources()));
  }, 180_000);

  it("after pulumi refresh (the providers read everything back), a preview shows every resource the same", async () => {
    const before = stateKeys(await stateResources());
    await stack().refresh();
    const preview = await stack().preview();
    expect(changesOf(preview)).toEqual([]);
    expect(preview.steps.map((s) => s.key).sort()).toEqual(before);
    // The refresh found every object: nothing dropped from the state as gone from the engine.
    expect(stateKeys(await stateResources())).toEqual(before);
  }, 180_000);
});
