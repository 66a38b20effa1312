/**
 * The credential-free plan says what the real engine says. On a real local stack (a real
 * `pulumi up` on the private test engine), each change of the list below is made to the files,
 * then the plan's per-resource operation (create, update, replace, delete, same; scripts/lib/
 * planRun.ts `planChangesBetween`) is compared with the real `pulumi preview`, resource by
 * resource. Any mismatch fails and names the resources. Changes that later ones build on
 * (suspend, a second server) are deployed with `pulumi up`; the others are reverted.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { PlanSide } from "../scripts/lib/planRun";
import type { ResourceChange } from "../plan/types";
import { docker, newRunId } from "./support/engine";
import { startOpenRouterStandIn, type OpenRouterStandIn } from "./support/openrouterStandIn";
import { REPO_DIR, RealStack, type Step } from "./support/realStack";
import { startSecondTestEngine, useRealEngineSuite } from "./support/testEngine";
import type { PrivateEngine } from "./support/privateEngine";

const id = newRunId();
let openrouter: OpenRouterStandIn;
let second: PrivateEngine | undefined;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), `mai-conformance-${id}-`));

const MANAGED = "name: Test m\nopenrouter:\n  monthlyLimitUsd: 5\n";
const suite = useRealEngineSuite({
  runId: id,
  clients: [{ key: "a" }, { key: "b" }, { key: "m", yaml: MANAGED }],
  config: {},
  ready: async () => {},
  teardown: async () => {
    await second?.close();
    await openrouter?.close();
    fs.rmSync(scratch, { recursive: true, force: true });
  },
});
const stack = () => suite.stack;

/** What the plan and the engine each say of one resource, where they differ. */
interface Mismatch {
  urn: string;
  plan: string;
  engine: string;
}

/** The plan's operation for every resource of either side (unlisted ones are `same`). */
function planOps(changes: ResourceChange[], engineSteps: Step[]): Map<string, string> {
  const ops = new Map<string, string>(engineSteps.map((s) => [s.urn, "same"]));
  for (const change of changes) ops.set(change.urn, change.op);
  return ops;
}

function mismatches(changes: ResourceChange[], steps: Step[]): Mismatch[] {
  const plan = planOps(changes, steps);
  const engine = new Map(steps.map((s) => [s.urn, s.op]));
  const urns = [...new Set([...plan.keys(), ...engine.keys()])].sort();
  return urns
    .map((urn) => ({ urn, plan: plan.get(urn) ?? "(absent)", engine: engine.get(urn) ?? "(absent)" }))
    .filter((m) => m.plan !== m.engine);
}

/** A copy of the deployed side (stack file, client files, program) to compare against. */
function snapshot(label: string, programPath?: string): PlanSide {
  const dir = fs.mkdtempSync(path.join(scratch, `${label}-`));
  fs.cpSync(stack().clientsDir, path.join(dir, "clients"), { recursive: true });
  fs.copyFileSync(path.join(stack().workDir, "Pulumi.test.yaml"), path.join(dir, "Pulumi.test.yaml"));
  return { stackFile: path.join(dir, "Pulumi.test.yaml"), clientsDir: path.join(dir, "clients"), ...(programPath ? { programPath } : {}) };
}

/** The current files (and program) as the plan's head. */
function head(programPath?: string): PlanSide {
  return { stackFile: path.join(stack().workDir, "Pulumi.test.yaml"), clientsDir: stack().clientsDir, ...(programPath ? { programPath } : {}) };
}

/** Puts the client files and stack file of a snapshot back. */
function restore(side: PlanSide): void {
  fs.rmSync(stack().clientsDir, { recursive: true, force: true });
  fs.cpSync(side.clientsDir, stack().clientsDir, { recursive: true });
  fs.copyFileSync(side.stackFile, path.join(stack().workDir, "Pulumi.test.yaml"));
}

/**
 * Makes `change`, previews it for real and plans it; returns the differences and both views.
 * `keep` deploys the change afterwards (`pulumi up`), otherwise the files are put back.
 */
async function compare(change: () => Promise<void> | void, options: { keep?: boolean; programPath?: string; baseProgramPath?: string } = {}) {
  const base = snapshot("base", options.baseProgramPath);
  await change();
  const preview = await stack().preview();
  const changes = plan(base, head(options.programPath));
  const differences = mismatches(changes, preview.steps);
  if (options.keep) await stack().up();
  else restore(base);
  const changed = preview.steps.filter((s) => s.op !== "same").map((s) => `${s.op} ${s.key}`);
  return { differences, changed };
}

/** The plan's changes from `base` to `headSide`, computed as the plan CLI does (its own process). */
function plan(base: PlanSide, headSide: PlanSide): ResourceChange[] {
  const args = JSON.stringify({ projectRoot: REPO_DIR, stack: "test", base, head: headSide });
  const out = execFileSync("node", ["--import", "tsx", path.join(REPO_DIR, "tests", "support", "planBetween.ts"), args], {
    cwd: REPO_DIR,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(out) as ResourceChange[];
}

const LIMITS = (memory: string, reservation = "64M", cpus = "0.5") =>
  `name: Test a\nresources:\n  cpus: ${cpus}\n  memory: ${memory}\n  reservations:\n    cpus: 0.25\n    memory: ${reservation}\n`;

describe("the plan equals the real engine's preview", () => {
  it("deploys a stack with managed keys against the OpenRouter stand-in", async () => {
    openrouter = await startOpenRouterStandIn();
    stack().setConfig({ openrouterApiBaseUrl: openrouter.baseUrl });
    await stack().setSecret("openrouterProvisioningKey", openrouter.provisioningKey);
    await stack().writeClient({ key: "a", yaml: LIMITS("640M") });
    const result = await stack().up();
    expect(result.created.some((k) => k.includes(`${stack().slug("m")}`))).toBe(true);
    const clean = await stack().preview();
    expect(clean.steps.filter((s) => s.op !== "same")).toEqual([]);
  }, 300_000);

  const cases: Array<[string, () => Promise<void> | void, { keep?: boolean }?]> = [
    ["add a client", () => stack().writeClient({ key: "d" })],
    ["remove a client", () => stack().removeClient("b")],
    ["an env change", () => stack().writeClient({ key: "b", yaml: "name: Test b\nenv:\n  DEFAULT_LOCALE: de-DE\n" })],
    ["a memory limit", () => stack().writeClient({ key: "a", yaml: LIMITS("768M") })],
    ["a memory reservation", () => stack().writeClient({ key: "a", yaml: LIMITS("640M", "128M") })],
    ["a CPU limit", () => stack().writeClient({ key: "a", yaml: LIMITS("640M", "64M", "0.75") })],
    ["a hostname", () => stack().writeClient({ key: "b", yaml: `name: Test b\nhostname: chat-${id}.example.org\n` })],
    ["a display name", () => stack().writeClient({ key: "b", yaml: "name: Test b renamed\n" })],
    ["suspend a client", () => stack().writeClient({ key: "b", yaml: "name: Test b\nstatus: suspended\n" }), { keep: true }],
    ["resume it", () => stack().writeClient({ key: "b", yaml: "name: Test b\n" }), { keep: true }],
  ];
  for (const [label, change, options] of cases) {
    it(`${label}: every resource's operation`, async () => {
      const { differences, changed } = await compare(change, options);
      expect(changed.length, `the engine saw no change for "${label}"`).toBeGreaterThan(0);
      expect(differences).toEqual([]);
    }, 300_000);
  }

  it("a port: every resource's operation", async () => {
    const file = path.join(stack().clientsDir, `${stack().slug("b")}.yaml`);
    const { differences, changed } = await compare(async () => {
      const { freePort } = await import("./support/caddyProcess");
      fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace(/^port: \d+$/m, `port: ${await freePort()}`));
    });
    expect(changed.length).toBeGreaterThan(0);
    expect(differences).toEqual([]);
  }, 300_000);

  it("an image: every resource's operation", async () => {
    const image = `mai-local/workspace:conformance-${id}`;
    await docker(["tag", "mai-local/workspace:1", image]);
    const { differences, changed } = await compare(() => stack().writeClient({ key: "b", yaml: `name: Test b\nimage: ${image}\n` }));
    expect(changed.length).toBeGreaterThan(0);
    expect(differences).toEqual([]);
  }, 300_000);

  it("a stack-managed environment change (a code change): every resource's operation", async () => {
    const program = copyOfProgram((source) => {
      const marker = "const managed: Record<string, string> = {";
      if (!source.includes(marker)) throw new Error("policy/clientContainer.ts no longer declares the managed environment as expected; update this test");
      return source.replace(marker, `${marker}\n    MAI_CONFORMANCE_PROBE: "1",`);
    });
    const withCopy = await compareWithProgram(program);
    expect(withCopy.changed.length).toBeGreaterThan(0);
    expect(withCopy.differences).toEqual([]);
  }, 300_000);

  it("a provisioning-key rotation: every resource's operation", async () => {
    const rotated = openrouter.issueProvisioningKey();
    const { differences, changed } = await compare(() => stack().setSecret("openrouterProvisioningKey", rotated), { keep: true });
    expect(differences).toEqual([]);
    // A rotation reaches the stack's settings, never a client's key (or container).
    expect(changed.filter((c) => /Container::|key::/.test(c) && c.includes(stack().slug("m")) && c.startsWith("replace"))).toEqual([]);
  }, 300_000);

  it("a server added to the stack: every resource's operation", async () => {
    second = await startSecondTestEngine(fs.mkdtempSync("/tmp/mai-e2-"));
    const ports = await RealStack.proxyPortsFor();
    const { differences, changed } = await compare(() => stack().setServer("b", { dockerHost: second!.host }, ports), { keep: true });
    expect(changed.length).toBeGreaterThan(0);
    expect(differences).toEqual([]);
  }, 300_000);

  it("a move between two local servers: every resource's operation", async () => {
    const { differences, changed } = await compare(() => stack().writeClient({ key: "b", yaml: `name: Test b\nserver: b\nmoveFrom: ${stack().defaultServer}\n` }));
    expect(changed.length).toBeGreaterThan(0);
    expect(differences).toEqual([]);
  }, 300_000);
});

/**
 * A copy of the program with one file changed (policy/clientContainer.ts through `edit`), its
 * node_modules the checkout's; returns the copy's index.ts.
 */
function copyOfProgram(edit: (source: string) => string): string {
  const dir = fs.mkdtempSync(path.join(scratch, "program-"));
  const files = execFileSync("git", ["ls-files", "-z"], { cwd: REPO_DIR, encoding: "utf8" }).split("\0").filter(Boolean);
  for (const file of files) {
    if (!fs.existsSync(path.join(REPO_DIR, file))) continue;
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.copyFileSync(path.join(REPO_DIR, file), path.join(dir, file));
  }
  // Files not committed yet (a working tree under change) belong to the program too.
  const untracked = execFileSync("git", ["ls-files", "-z", "--others", "--exclude-standard"], { cwd: REPO_DIR, encoding: "utf8" }).split("\0").filter(Boolean);
  for (const file of untracked) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.copyFileSync(path.join(REPO_DIR, file), path.join(dir, file));
  }
  fs.symlinkSync(path.join(REPO_DIR, "node_modules"), path.join(dir, "node_modules"));
  const target = path.join(dir, "policy", "clientContainer.ts");
  fs.writeFileSync(target, edit(fs.readFileSync(target, "utf8")));
  return path.join(dir, "index.ts");
}

/** Previews with the engine running `programPath`'s project (Pulumi.yaml `main`), then points it back. */
async function compareWithProgram(programPath: string) {
  const projectFile = path.join(stack().workDir, "Pulumi.yaml");
  const original = fs.readFileSync(projectFile, "utf8");
  try {
    return await compare(() => fs.writeFileSync(projectFile, original.replace(/^main: .*$/m, `main: ${path.dirname(programPath)}`)), {
      programPath,
    });
  } finally {
    fs.writeFileSync(projectFile, original);
  }
}

afterAll(() => {
  fs.rmSync(scratch, { recursive: true, force: true });
});
