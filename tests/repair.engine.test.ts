/**
 * Real engine, real `pulumi up` killed on purpose: adding two clients, the deployment is killed
 * with SIGKILL (the CLI and every process it started, as power loss or a killed CI runner do) at
 * points the engine itself shows — a network of the new clients exists, a container of theirs
 * exists, the deployment has only just begun — then `pulumi cancel`, `npm run repair` (the CLI,
 * run for real) and `pulumi up` settle the stack: the preview after is clean, every client answers
 * /health, the existing client keeps its container and its data (a marker row), and repair removed
 * no volume. Interrupted with SIGINT instead (Ctrl-C), a plain `pulumi up` suffices.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import type { PendingOperation, StackExport } from "../policy/repair";
import { docker, newRunId } from "./support/engine";
import { request } from "./support/httpClient";
import { REPO_DIR } from "./support/realStack";
import { useRealEngineSuite } from "./support/testEngine";

const id = newRunId();
const MARKER = `kept-${id}`;
const suite = useRealEngineSuite({
  runId: id,
  clients: [{ key: "a" }],
  ready: async () => {
    await answering("a");
    await sql("a", `CREATE TABLE IF NOT EXISTS repair_marker (v TEXT); INSERT INTO repair_marker VALUES ('${MARKER}');`);
  },
  teardown: () => reapLeftovers(),
});
const stack = () => suite.stack;
/** Every client the stack should be serving (grows as the tests add clients). */
const clients = ["a"];

const CONTAINER = "docker:index/container:Container";
const NETWORK = "docker:index/network:Network";
const CYCLE_MS = 300_000;

function sql(key: string, statement: string): Promise<string> {
  return docker(["exec", stack().container(key), "sqlite3", "-cmd", ".timeout 10000", "/app/backend/data/webui.db", statement]);
}

async function answering(key: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await request({ port: stack().port(key), hostname: "localhost" }, "/health", { timeoutMs: 2000 }).then((r) => r.status === 200, () => false))) {
    if (Date.now() > deadline) throw new Error(`${stack().container(key)} does not answer /health`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (async: the test keeps polling other things meanwhile). */
function run(command: string, args: string[], cwd: string, timeoutMs = 240_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: stack().cliEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const pulumi = (...args: string[]) => run("pulumi", [...args, "--stack", "test", "--non-interactive"], stack().workDir);
/** `npm run repair` for real, from the checkout, on the test stack's project directory. */
const repair = (...args: string[]) => run("npm", ["run", "-s", "repair", "--", "--stack", "test", "--cwd", stack().workDir, ...args], REPO_DIR);

async function pendingOperations(): Promise<PendingOperation[]> {
  const exported = await pulumi("stack", "export");
  if (exported.code !== 0) throw new Error(`pulumi stack export failed: ${exported.stderr}`);
  return (JSON.parse(exported.stdout) as StackExport).deployment.pending_operations ?? [];
}

function lockFiles(): string[] {
  const dir = path.join(stack().dir, "backend", ".pulumi", "locks", "organization", "mai-hosting", "test");
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".json")) : [];
}

/** Every process of the machine with its parent, from /proc. */
function parentsOfAll(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // gone meanwhile
    }
  }
  return parents;
}

/** A process and all its descendants. */
function processTree(root: number): number[] {
  const parents = parentsOfAll();
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, parent] of parents) if (parent === tree[i]) tree.push(pid);
  return tree;
}

/**
 * Processes started for this test's stack that outlived their deployment: the CLI runs its providers
 * in process groups of their own, so after its death they are orphans (seen: they do not exit by
 * themselves). Ended after every kill and at the end, so nothing of this file keeps running.
 */
function reapLeftovers(): void {
  let clientsDir: string;
  try {
    clientsDir = suite.stack.clientsDir;
  } catch {
    return; // the setup never got as far as a stack
  }
  const mark = `MAI_CLIENTS_DIR=${clientsDir}`;
  for (const [pid] of parentsOfAll()) {
    if (pid === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(mark)) process.kill(pid, "SIGKILL");
    } catch {
      // gone, or not ours to read
    }
  }
}

/** A `pulumi up` in a process group of its own: SIGINT goes to it as Ctrl-C sends it to a terminal's foreground group. */
interface RunningUp {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startUp(): RunningUp {
  const child = spawn("pulumi", ["up", "--yes", "--skip-preview", "--stack", "test"], { cwd: stack().workDir, env: stack().cliEnv(), detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  return { child, output: () => output, exited };
}

const signalGroup = (up: RunningUp, signal: NodeJS.Signals) => process.kill(-up.child.pid!, signal);

/** SIGKILL to the CLI and everything it started, providers included, at once: power loss, a killed runner. */
function killAll(up: RunningUp): void {
  for (const pid of processTree(up.child.pid!)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** Polls the engine until `seen` holds; fails if the deployment ended first (the kill point was missed). */
async function until(up: RunningUp, seen: () => Promise<boolean>, what: string, timeoutMs = 150_000): Promise<void> {
  let ended = false;
  void up.exited.then(() => (ended = true));
  const deadline = Date.now() + timeoutMs;
  while (!(await seen())) {
    if (ended) throw new Error(`pulumi up ended before ${what}:\n${up.output().slice(-3000)}`);
    if (Date.now() > deadline) {
      killAll(up);
      throw new Error(`no ${what} within ${timeoutMs / 1000} s:\n${up.output().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Names of the engine's objects of one kind carrying `mai.client=<slug>` of one of `slugs`. */
async function objectsOf(kind: "network" | "container" | "volume", slugs: string[]): Promise<string[]> {
  const list = kind === "container" ? ["ps", "-a", "--format", "{{.Names}}"] : [kind, "ls", "--format", "{{.Name}}"];
  const names = (await docker(list)).split("\n").filter(Boolean);
  const wanted = new Set(slugs.flatMap((slug) => [`mai-${slug}`, `mai-${slug}-data`]));
  return names.filter((name) => wanted.has(name)).sort();
}

/**
 * Puts a marker file into every volume on the engine (the test engine's data root is on this
 * machine); returns the volume names. With `volumesKept` it shows that no volume was removed or
 * emptied: Docker's CreatedAt is no evidence (it moved by 2 s for a volume nobody recreated).
 */
async function markVolumes(): Promise<string[]> {
  const names = (await docker(["volume", "ls", "-q"])).split("\n").filter(Boolean).sort();
  for (const name of names) fs.writeFileSync(path.join(await docker(["volume", "inspect", "-f", "{{.Mountpoint}}", name]), `.repair-test-${id}`), name);
  return names;
}

async function volumesKept(names: string[]): Promise<void> {
  expect((await docker(["volume", "ls", "-q"])).split("\n").filter(Boolean).sort()).toEqual(expect.arrayContaining(names));
  for (const name of names) {
    const marker = path.join(await docker(["volume", "inspect", "-f", "{{.Mountpoint}}", name]), `.repair-test-${id}`);
    expect(fs.existsSync(marker) ? fs.readFileSync(marker, "utf8") : `no marker in ${name}`).toBe(name);
  }
}

const identity = (key: string) => docker(["inspect", "-f", "{{.Id}} {{.State.StartedAt}}", stack().container(key)]);

/** When an earlier test died half-way: unlock, repair and deploy, so each test starts settled. */
async function settle(): Promise<void> {
  if (lockFiles().length > 0) await pulumi("cancel", "--yes");
  if ((await pendingOperations()).length > 0) {
    const repaired = await repair();
    if (repaired.code !== 0) throw new Error(`repair before the test failed:\n${repaired.stdout}\n${repaired.stderr}`);
    await stack().up();
  }
}

/** The end of every cycle: the next deployment is clean and every client serves, the first with its data. */
async function expectSettled(): Promise<void> {
  expect(await pendingOperations()).toEqual([]);
  expect(await stack().preview()).toMatchObject({ created: [], updated: [], replaced: [], deleted: [] });
  await Promise.all(clients.map((key) => answering(key)));
  expect(await sql("a", "SELECT v FROM repair_marker;")).toBe(MARKER);
}

/** Adds two clients with a `pulumi up` that is killed (SIGKILL) once `killWhen` holds. */
async function addClientsKilled(keys: string[], killWhen: (slugs: string[]) => Promise<boolean>, what: string) {
  await settle();
  for (const key of keys) await stack().writeClient({ key });
  const slugs = keys.map((key) => stack().slug(key));
  const started = Date.now();
  const up = startUp();
  await until(up, () => killWhen(slugs), what);
  killAll(up);
  await up.exited;
  reapLeftovers();
  const killedAfter = Date.now() - started;
  clients.push(...keys);
  return { slugs, killedAfter, up };
}

/** `pulumi cancel` (the stale lock), then `npm run repair`; returns its output and timings. */
async function cancelAndRepair() {
  const cancelStarted = Date.now();
  const cancelled = await pulumi("cancel", "--yes");
  expect(cancelled.code, cancelled.stderr).toBe(0);
  const cancelMs = Date.now() - cancelStarted;
  const marked = await markVolumes();
  const repairStarted = Date.now();
  const repaired = await repair();
  const repairMs = Date.now() - repairStarted;
  expect(repaired.stderr).toBe("");
  expect(repaired.code).toBe(0);
  // Repair never removes a volume nor anything in it.
  await volumesKept(marked);
  return { repaired, cancelMs, repairMs };
}

/** One line of figures per cycle, with what the kill left and what repair said (for the record). */
function report(point: string, figures: Record<string, number>, pending: PendingOperation[] = [], repairOutput = ""): void {
  const text = Object.entries(figures)
    .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
    .join(", ");
  const left = pending.map((op) => `${op.type} ${op.resource.type.split(":").pop()} ${op.resource.urn.split("::").pop()}`).join("; ");
  console.log(`repair cycle (${point}): ${text}\n  pending after the kill: ${left || "none"}\n${repairOutput.trimEnd()}`);
}

describe("a pulumi up killed while adding clients: cancel, repair, up", () => {
  it("killed once a network of the new clients exists: repair adopts or removes it; before cancel it refuses and changes nothing", async () => {
    const before = await identity("a");
    const { slugs, killedAfter } = await addClientsKilled(["n1", "n2"], async (s) => (await objectsOf("network", s)).length > 0, "a network of the new clients");
    const halfMade = await objectsOf("network", slugs);
    const pending = await pendingOperations();
    // The kill hit mid-create: the engine has the network, the state only a pending create of it.
    const pendingNetworks = pending.filter((op) => op.type === "creating" && op.resource.type === NETWORK).map((op) => op.resource.inputs!.name);
    expect(pendingNetworks.filter((name) => halfMade.includes(name as string))).not.toEqual([]);
    expect(lockFiles()).toHaveLength(1);

    // While the stack is locked, repair refuses and touches nothing.
    const refused = await repair();
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("pulumi cancel --stack test");
    expect(await pendingOperations()).toEqual(pending);
    expect(await objectsOf("network", slugs)).toEqual(halfMade);

    // What the issue saw: after `pulumi cancel` alone, the next up fails on the half-made network.
    expect((await pulumi("cancel", "--yes")).code).toBe(0);
    const stuck = await pulumi("up", "--yes", "--skip-preview");
    expect(stuck.code).not.toBe(0);
    expect(stuck.stdout + stuck.stderr).toMatch(/network with name mai-\S+ already exists/);

    const { repaired, cancelMs, repairMs } = await cancelAndRepair();
    for (const name of pendingNetworks.filter((n) => halfMade.includes(n as string))) {
      expect(repaired.stdout).toMatch(new RegExp(`(adopted|removed) +network ${name} \\(server local\\)`));
    }
    const upStarted = Date.now();
    await stack().up();
    const upMs = Date.now() - upStarted;
    await expectSettled();
    expect(await identity("a")).toBe(before);
    report("network made", { "kill after": killedAfter, cancel: cancelMs, repair: repairMs, "up after": upMs }, pending, repaired.stdout);
  }, CYCLE_MS);

  it("killed once a container of the new clients exists: repair removes it (its volume stays), up recreates it", async () => {
    const before = await identity("a");
    const { slugs, killedAfter } = await addClientsKilled(["c1", "c2"], async (s) => (await objectsOf("container", s)).length > 0, "a container of the new clients");
    const halfMade = await objectsOf("container", slugs);
    const pending = await pendingOperations();
    const pendingContainers = pending.filter((op) => op.type === "creating" && op.resource.type === CONTAINER).map((op) => op.resource.inputs!.name as string);
    expect(pendingContainers.filter((name) => halfMade.includes(name))).not.toEqual([]);

    const { repaired, cancelMs, repairMs } = await cancelAndRepair();
    for (const name of pendingContainers.filter((n) => halfMade.includes(n))) {
      expect(repaired.stdout).toMatch(new RegExp(`removed +container ${name} \\(server local\\)`));
    }
    expect(repaired.stdout).toContain("Now run: pulumi up --stack test");
    const upStarted = Date.now();
    await stack().up();
    const upMs = Date.now() - upStarted;
    await expectSettled();
    expect(await identity("a")).toBe(before);
    report("container made", { "kill after": killedAfter, cancel: cancelMs, repair: repairMs, "up after": upMs }, pending, repaired.stdout);
  }, CYCLE_MS);

  it("killed as soon as the deployment began: only the lock is left, repair finds nothing to do and says so", async () => {
    const { killedAfter } = await addClientsKilled(["e1", "e2"], async () => lockFiles().length > 0, "the stack's lock");
    const pending = await pendingOperations();
    const { repaired, cancelMs, repairMs } = await cancelAndRepair();
    // The lock is taken before the program runs: no resource operation had begun.
    expect(pending).toEqual([]);
    expect(repaired.stdout).toContain("Nothing to repair; nothing was changed.");
    const upStarted = Date.now();
    await stack().up();
    const upMs = Date.now() - upStarted;
    await expectSettled();
    report("at the start", { "kill after": killedAfter, cancel: cancelMs, repair: repairMs, "up after": upMs }, pending, repaired.stdout);
  }, CYCLE_MS);
});

describe("a pulumi up interrupted with SIGINT (Ctrl-C)", () => {
  it("finishes what is in flight, leaves no lock and no pending operation: a plain pulumi up completes it", async () => {
    await settle();
    const keys = ["i1", "i2"];
    for (const key of keys) await stack().writeClient({ key });
    const slugs = keys.map((key) => stack().slug(key));
    const up = startUp();
    await until(up, async () => (await objectsOf("network", slugs)).length > 0, "a network of the new clients");
    const interrupted = Date.now();
    signalGroup(up, "SIGINT");
    const timer = setTimeout(() => killAll(up), 120_000);
    const { code } = await up.exited;
    clearTimeout(timer);
    reapLeftovers();
    const stopMs = Date.now() - interrupted;
    clients.push(...keys);
    expect(up.output()).toContain("cancel");
    expect(code).not.toBe(0);
    expect(lockFiles()).toEqual([]);
    expect(await pendingOperations()).toEqual([]);

    const upStarted = Date.now();
    await stack().up();
    const upMs = Date.now() - upStarted;
    await expectSettled();
    report("SIGINT", { "stopped after": stopMs, "up after": upMs });
  }, CYCLE_MS);
});
