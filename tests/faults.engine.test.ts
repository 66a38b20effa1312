/**
 * Real engine, real `pulumi up`: the fault matrix (docs/runbook.md, "Reliability"). Each test provokes one
 * fault on the deployed local stack — the Docker daemon restarted during a `pulumi up`, the proxy
 * killed during its reload (its process, and `docker kill`), the backup directory full during a
 * backup, `mai-backup` and `mai-export` killed with SIGKILL mid-run, a client in an OOM loop while
 * another is deployed — and shows that nothing is lost and that the stack comes back by itself or
 * with one documented command. The other clients are watched on their loopback ports all along.
 * With FAULT_FIGURES set, each test prints the figures the runbook's table quotes.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { afterEach, describe, expect, it } from "vitest";
import { localHostPaths, shellQuote } from "../policy/localHost";
import { answering, answersHealth, runHostTool, serverShell, until } from "./support/deployedHost";
import { docker, newRunId } from "./support/engine";
import { request } from "./support/httpClient";
import { foldSteps, proxyRootCa, type Changes } from "./support/realStack";
import { useRealEngineSuite } from "./support/testEngine";

const id = newRunId();
const PROXY = "mai-proxy";
/** Health waits: generous, the machine is shared and busy. */
const WAIT_MS = 120_000;
/** Clients deployed from the start: bystanders `a` and `b`, `tools` for the host tools, `oom` for the OOM loop. */
const BYSTANDERS = ["a", "b"];
const OOM_LIMIT_MB = 512;
let rootCa: Buffer;
/** Mount points to unmount at the end, whatever happened. */
const mounts = new Set<string>();
/** Child processes to end at the end, whatever happened. */
const children = new Set<ChildProcess>();

const suite = useRealEngineSuite({
  runId: id,
  clients: [
    { key: "a" },
    { key: "b" },
    { key: "tools" },
    { key: "oom", yaml: `name: Test oom\nresources:\n  cpus: 0.5\n  memory: ${OOM_LIMIT_MB}M\n  reservations:\n    cpus: 0.25\n    memory: 64M\n` },
  ],
  ready: async ({ stack }) => {
    rootCa = await proxyRootCa(stack.dockerHost(), WAIT_MS);
    for (const key of ["a", "b", "tools", "oom"]) {
      await answering(stack, key, WAIT_MS);
      await sql(key, `CREATE TABLE fault_marker (v TEXT); INSERT INTO fault_marker VALUES ('kept-${id}-${key}');`);
    }
  },
  teardown: () => {
    for (const child of children) killGroup(child);
    for (const mount of mounts) spawnSync("umount", ["-l", mount]);
  },
});
const stack = () => suite.stack;
const container = (key: string) => stack().container(key);
const slug = (key: string) => stack().slug(key);
const paths = () => localHostPaths(stack().stateDir());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs sqlite3 inside a client's container on its live database. */
function sql(key: string, statement: string): Promise<string> {
  return docker(["exec", container(key), "sqlite3", "-cmd", ".timeout 20000", "/app/backend/data/webui.db", statement], 120_000);
}

/** The marker row each client got at setup is still there. */
async function markerKept(key: string): Promise<boolean> {
  return (await sql(key, "SELECT v FROM fault_marker;")) === `kept-${id}-${key}`;
}

const exists = (kind: "container" | "network" | "volume", name: string) => spawnSync("docker", [kind, "inspect", name], { stdio: "ignore" }).status === 0;

interface Inspected {
  Id: string;
  RestartCount: number;
  State: { Status: string; Running: boolean; Pid: number; StartedAt: string; OOMKilled: boolean };
}
const inspectContainer = async (name: string) => (JSON.parse(await docker(["container", "inspect", name])) as Inspected[])[0];

/** GET through Caddy over HTTPS (its internal CA) for a client's hostname. */
const viaCaddy = (key: string, urlPath: string) =>
  request({ port: stack().httpsPort(), hostname: stack().hostname(key), ca: rootCa }, urlPath, { timeoutMs: 5000 });

/** Each client answers through Caddy from its own workspace (the stand-in's name). */
async function servedByCaddy(keys: string[], timeoutMs = WAIT_MS): Promise<void> {
  for (const key of keys) {
    let last = "no answer yet";
    try {
      await until(
        `${stack().hostname(key)} to be served through Caddy`,
        async () => {
          const reply = await viaCaddy(key, "/api/config").catch((error: Error) => ({ status: 0, body: error.message }));
          last = `${reply.status} ${reply.body.slice(0, 120)}`;
          return reply.status === 200 && JSON.parse(reply.body).name === `mAI - Test ${key}`;
        },
        timeoutMs,
        250,
      );
    } catch (error) {
      const proxy = await inspectContainer(PROXY).then((p) => `${p.State.Status} since ${p.State.StartedAt}, ${p.RestartCount} restarts`, (e: Error) => e.message);
      const logs = spawnSync("docker", ["logs", "--tail", "60", PROXY], { encoding: "utf8" });
      const lines = `${logs.stdout}${logs.stderr}`.split("\n").filter((l) => l.includes(stack().hostname(key)) || /"level":"(error|warn)"/.test(l)).slice(-12);
      throw new Error(`${(error as Error).message}; last answer: ${last}; proxy: ${proxy}; its log:\n${lines.join("\n")}`);
    }
  }
}

/** Polls clients' /health on their loopback ports in the background, counting misses. */
function watchHealth(keys: string[]) {
  let watching = true;
  const misses: Record<string, number> = Object.fromEntries(keys.map((k) => [k, 0]));
  const answers: Record<string, number> = Object.fromEntries(keys.map((k) => [k, 0]));
  const loops = keys.map(async (key) => {
    while (watching) {
      // 5 s per answer: slow on a busy machine is still answering.
      if (await answersHealth(stack(), key, 5000)) answers[key]++;
      else misses[key]++;
      await sleep(100);
    }
  });
  return {
    async stop() {
      watching = false;
      await Promise.all(loops);
      return { misses, answered: Object.fromEntries(keys.map((k) => [k, answers[k] > 0])) };
    },
  };
}

const changedBy = (result: Changes) => [...result.created, ...result.updated, ...result.replaced, ...result.deleted];

/** Kills a child's whole process group (it was spawned detached: its own group). */
function killGroup(child: ChildProcess, signal: NodeJS.Signals = "SIGKILL"): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Starts a process in its own process group; `finished` resolves when it has exited. */
function startGroup(command: string, args: string[], options: { cwd?: string; env: NodeJS.ProcessEnv }): { child: ChildProcess; finished: Promise<Finished>; exited: () => boolean } {
  const child = spawn(command, args, { ...options, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  let done = false;
  const finished = new Promise<Finished>((resolve) =>
    child.on("close", (code, signal) => {
      done = true;
      children.delete(child);
      resolve({ code, signal, output });
    }),
  );
  return { child, finished, exited: () => done };
}

/** `pulumi up` as a user runs it, in a process of its own. */
function startCliUp() {
  return startGroup("pulumi", ["up", "--yes", "--skip-preview", "--non-interactive", "--color", "never", "--stack", "test"], { cwd: stack().workDir, env: stack().cliEnv() });
}

/** A host tool as the stack installed it, through the server's shell prefix, in a process group of its own. */
async function startHostTool(tool: string, args: string[]) {
  const command = [`${paths().binDir}/${tool}`, ...args].map(shellQuote).join(" ");
  return startGroup("bash", ["-c", `${await serverShell(stack())} ${shellQuote(command)}`], { env: { ...process.env, MAI_STATE_DIR: paths().stateDir } });
}

/** The pending operations the stack's state records (what an interrupted deploy leaves). */
async function pendingOperations(): Promise<unknown[]> {
  const state = await stack().stack.exportStack();
  return ((state.deployment as { pending_operations?: unknown[] }).pending_operations ?? []) as unknown[];
}

afterEach(() => {
  for (const child of children) killGroup(child);
});

/** Figures for the runbook's table, printed when FAULT_FIGURES is set. */
const figure = (what: string, value: unknown) => {
  if (process.env.FAULT_FIGURES) console.log(`FIGURE ${what}: ${typeof value === "string" ? value : JSON.stringify(value)}`);
};

/** Container ids by name (a container recreated instead of restarted gets a new one). */
async function identities(names: string[]) {
  return Object.fromEntries(await Promise.all(names.map(async (name) => [name, (await inspectContainer(name)).Id] as const)));
}

describe("the Docker daemon restarted during a pulumi up that adds a client", () => {
  it("the up ends with nothing pending (failed or done); the running clients and the proxy come back by themselves; a second pulumi up completes the deploy; nothing is lost", async () => {
    const running = [...BYSTANDERS.map(container), PROXY];
    const before = await identities(running);
    await stack().writeClient({ key: "c" });
    const up = startCliUp();
    // The moment: the engine is creating the new client's container (its network and volume exist).
    await until(`the pulumi up to create ${container("c")}`, () => up.exited() || exists("container", container("c")), WAIT_MS, 20);
    expect(up.exited(), "the up ended before the restart").toBe(false);
    const restartAt = Date.now();
    await suite.engine.restart();
    figure("dockerd restart took ms", Date.now() - restartAt);
    const first = await up.finished;
    figure("first up", { code: first.code, errors: first.output.split("\n").filter((l) => /error/i.test(l)).slice(0, 12) });
    // The interrupted up ended by itself, with its state written: nothing pending, no lock left.
    expect(await pendingOperations()).toEqual([]);
    figure("container c after the restart", exists("container", container("c")) ? (await inspectContainer(container("c"))).State : "absent");
    // By themselves: the clients that ran before, and the proxy, are back (restart policies).
    await servedByCaddy(BYSTANDERS);
    figure("bystanders served again after the restart, ms", Date.now() - restartAt);
    expect(await identities(running)).toEqual(before);
    // The one command: pulumi up again. Only the new client and the proxy's routes change.
    const secondAt = Date.now();
    const second = await stack().up();
    figure("second up", { ms: Date.now() - secondAt, created: second.created, replaced: second.replaced, updated: second.updated });
    const others = changedBy(second).filter((k) => !k.split("::")[1].startsWith(slug("c")) && !/::[\w-]*proxy-(caddyfile|reload)$/.test(k));
    expect(others).toEqual([]);
    await servedByCaddy([...BYSTANDERS, "c"]);
    expect(await identities(running)).toEqual(before);
    for (const key of BYSTANDERS) expect(await markerKept(key)).toBe(true);
    expect(changedBy(await stack().preview())).toEqual([]);
  }, 300_000);
});

/** The host's `docker exec mai-proxy caddy reload` of this stack's engine (its DOCKER_HOST in the environment), if running. */
function reloadProcess(dockerHost: string): string | undefined {
  const ours = `DOCKER_HOST=${dockerHost}`;
  for (const pid of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (!(cmdline.includes(PROXY) && cmdline.includes("caddy") && cmdline.includes("reload"))) continue;
      if (fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(ours)) return cmdline.join(" ").trim();
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/**
 * `pulumi up` adding client `key`, with `kill` run the moment the reload step's `caddy reload`
 * runs on the host (watched from the step's start, which the engine reports as an event).
 */
async function upKillingTheProxyDuringItsReload(key: string, kill: () => void) {
  await stack().writeClient({ key });
  let watching = false;
  let killed: { cmdline: string; at: number } | undefined;
  const watchAndKill = async () => {
    watching = true;
    while (watching && !killed) {
      const cmdline = reloadProcess(stack().dockerHost());
      if (cmdline) {
        kill();
        killed = { cmdline, at: Date.now() };
        break;
      }
      await sleep(5);
    }
  };
  const isReload = (urn?: string) => urn !== undefined && /::[\w-]*proxy-reload$/.test(urn);
  const events: EngineEvent[] = [];
  let output = "";
  let watcher: Promise<void> | undefined;
  let upError: unknown;
  const startedAt = Date.now();
  try {
    await stack().stack.up({
      color: "never",
      onOutput: (o) => (output += o),
      onEvent: (event) => {
        events.push(event);
        // From the reload step's start: its `caddy validate`, then the `caddy reload` to kill.
        if (isReload(event.resourcePreEvent?.metadata.urn)) watcher ??= watchAndKill();
        if (isReload(event.resOutputsEvent?.metadata.urn) || isReload(event.resOpFailedEvent?.metadata.urn)) watching = false;
      },
    });
  } catch (error) {
    upError = error;
  } finally {
    watching = false;
    await watcher;
  }
  const reloadOps = foldSteps(events).filter((s) => isReload(s.urn)).map((s) => s.op);
  return { killed, upError, output, reloadOps, upMs: Date.now() - startedAt };
}

describe("the proxy killed during its reload", () => {
  for (const [how, restartedBy, key, kill] of [
    // What the kernel's OOM killer or a crash does: the process dies; the restart policy applies.
    ["its process killed (SIGKILL, as an OOM kill or a crash)", "its restart policy", "d1", (pid: number) => process.kill(pid, "SIGKILL")],
    // Docker takes this for a deliberate stop: no restart policy restarts it; the reload step does.
    ["the container killed (docker kill)", "the reload step", "d2", () => void spawnSync("docker", ["kill", PROXY], { stdio: "ignore" })],
  ] as const) {
    it(`${how}: back by ${restartedBy} with the new configuration; the deploy succeeds, every client is served, its certificates are kept`, async () => {
      const before = await inspectContainer(PROXY);
      // Caddy's process id, looked up before the reload so that the kill is immediate.
      const result = await upKillingTheProxyDuringItsReload(key, () => kill(before.State.Pid));
      figure(`proxy: ${how}`, { killed: result.killed, upMs: result.upMs, upFailed: result.upError !== undefined });
      expect(result.killed, "the reload's `caddy reload` never showed up to be killed").toBeDefined();
      expect(result.upError, `pulumi up failed:\n${result.output.split("\n").slice(-30).join("\n")}`).toBeUndefined();
      expect(result.reloadOps).toEqual(["replace"]);
      // The same container, started again.
      const after = await inspectContainer(PROXY);
      expect({ id: after.Id, running: after.State.Running, restarted: after.State.StartedAt !== before.State.StartedAt }).toEqual({ id: before.Id, running: true, restarted: true });
      if (restartedBy === "its restart policy") expect(after.RestartCount).toBe(before.RestartCount + 1);
      // With the new configuration, on disk and served; every client, the new one too.
      expect(fs.readFileSync(path.join(paths().caddyDir, "Caddyfile"), "utf8")).toContain(stack().hostname(key));
      await servedByCaddy([...BYSTANDERS, key]);
      figure(`proxy: ${how}: served again after the kill, ms`, Date.now() - result.killed!.at);
      // Its certificate storage kept: the same internal CA.
      expect((await proxyRootCa(stack().dockerHost())).equals(rootCa)).toBe(true);
      expect(changedBy(await stack().preview())).toEqual([]);
    }, 300_000);
  }
});

// --- the host tools ---------------------------------------------------------------------------------

const MiB = 1024 * 1024;
const TOOLS = "tools";
const backupsDir = () => path.join(paths().backupsDir, slug(TOOLS));
const exportsDir = () => path.join(paths().stateDir, "exports");
const record = () => JSON.parse(fs.readFileSync(path.join(paths().stateDir, "backup", `${slug(TOOLS)}.json`), "utf8")) as { result: string; exitCode: number; file: string | null; message: string };

/** The backups `mai-restore` offers (and takes `latest` from), oldest first. */
async function restorable(): Promise<string[]> {
  const listing = await runHostTool(stack(), "mai-restore", [slug(TOOLS)]);
  const pattern = new RegExp(`^${slug(TOOLS)}-\\d{8}T\\d{6}Z\\.db\\.(zst|gz)$`);
  return listing.stdout.split("\n").filter((line) => pattern.test(line));
}

/** Adds incompressible rows to the tools client's database until it holds about `mb` MiB of them. */
async function growDatabase(mb: number): Promise<void> {
  await sql(TOOLS, "CREATE TABLE IF NOT EXISTS filler (b BLOB);");
  const have = Number(await sql(TOOLS, "SELECT count(*) FROM filler;"));
  if (have >= mb) return;
  await sql(TOOLS, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${mb - have}) INSERT INTO filler SELECT randomblob(${MiB}) FROM n;`);
}

/** The database's size as a copy of it (VACUUM INTO) takes it: pages times page size. */
async function databaseBytes(): Promise<number> {
  const [pages, size] = (await sql(TOOLS, "PRAGMA page_count; PRAGMA page_size;")).split("\n").map(Number);
  return pages * size;
}

const availableBytes = (dir: string) => Number(spawnSync("df", ["-B1", "--output=avail", dir], { encoding: "utf8" }).stdout.trim().split("\n").pop());
const sha256 = (file: string) => spawnSync("sha256sum", [file], { encoding: "utf8" }).stdout.split(" ")[0];

describe("the backup directory full during a backup", () => {
  it("fails cleanly (exit 5, the cause in its message and status record), leaves no partial file, keeps the older backup; the next run after freeing space succeeds", async () => {
    const health = watchHealth([TOOLS]);
    const identity = (await inspectContainer(container(TOOLS))).Id;
    fs.mkdirSync(backupsDir(), { recursive: true });
    await growDatabase(4);
    const dbBytes = await databaseBytes();
    // A small disk of its own for this client's backups: room for two backups and a bit.
    const size = Math.ceil((2 * dbBytes + 4 * MiB) / MiB);
    const mount = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}m,mode=0750`, "tmpfs", backupsDir()], { encoding: "utf8" });
    expect(mount.status, mount.stderr).toBe(0);
    mounts.add(backupsDir());
    try {
      const first = await runHostTool(stack(), "mai-backup", [slug(TOOLS)]);
      expect(first.code, first.output).toBe(0);
      const older = await restorable();
      expect(older).toHaveLength(1);
      const olderSum = sha256(path.join(backupsDir(), older[0]));
      const filler = path.join(backupsDir(), "something-else-filling-the-disk");
      // Full when the snapshot is written, and full when the compressed file is (the snapshot fits).
      for (const [stage, leaveFree, cause] of [
        ["snapshot", MiB, /database or disk is full/],
        ["compression", dbBytes + MiB, /No space left on device/],
      ] as const) {
        fs.rmSync(filler, { force: true });
        fs.writeFileSync(filler, Buffer.alloc(availableBytes(backupsDir()) - leaveFree));
        const run = await runHostTool(stack(), "mai-backup", [slug(TOOLS)]);
        figure(`backup full at the ${stage}`, { code: run.code, stderr: run.stderr.trim(), record: record() });
        expect({ stage, code: run.code }).toEqual({ stage, code: 5 });
        expect(run.stderr).toMatch(cause);
        expect(run.stderr).toContain("nothing kept");
        expect(record()).toMatchObject({ result: "failed", exitCode: 5, file: null, message: expect.stringMatching(cause) });
        // No partial file, no work directory: only what was there before.
        expect(fs.readdirSync(backupsDir()).filter((f) => !/^usage-\d{4}-\d{2}-\d{2}\.json$/.test(f)).sort()).toEqual([older[0], path.basename(filler)].sort());
        expect(await restorable()).toEqual(older);
        expect(sha256(path.join(backupsDir(), older[0]))).toBe(olderSum);
      }
      // Space freed: the next run succeeds, the older backup still there.
      fs.rmSync(filler);
      const next = await runHostTool(stack(), "mai-backup", [slug(TOOLS)]);
      expect(next.code, next.output).toBe(0);
      const now = await restorable();
      expect(now.slice(0, 1)).toEqual(older);
      expect(now).toHaveLength(2);
      expect(spawnSync("zstd", ["-q", "-t", path.join(backupsDir(), now[1])]).status).toBe(0);
      expect(record()).toMatchObject({ result: "ok", exitCode: 0, file: now[1] });
    } finally {
      const umount = spawnSync("umount", [backupsDir()], { encoding: "utf8" });
      if (umount.status === 0) mounts.delete(backupsDir());
    }
    const { misses } = await health.stop();
    expect(misses).toEqual({ [TOOLS]: 0 });
    expect((await inspectContainer(container(TOOLS))).Id).toBe(identity);
    expect(await markerKept(TOOLS)).toBe(true);
  }, 300_000);
});

/** Files (and directories) directly in `dir`, or [] when it does not exist. */
const entries = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);

describe("SIGKILL of mai-backup and mai-export mid-run", () => {
  it("mai-backup killed while writing the snapshot and while compressing: nothing a restore or the next run would take; the next run succeeds; the client keeps serving", async () => {
    const health = watchHealth([TOOLS]);
    const { Id: identity, State: state } = await inspectContainer(container(TOOLS));
    // Big enough that each step takes a moment on disk.
    await growDatabase(64);
    // A finished backup first: what a restore offers before the kills.
    const finished = await runHostTool(stack(), "mai-backup", [slug(TOOLS)]);
    expect(finished.code, finished.output).toBe(0);
    const before = await restorable();
    const workDirs = () => entries(backupsDir()).filter((f) => f.startsWith(".mai-backup-tmp."));
    const inWork = (pattern: RegExp) =>
      workDirs().some((dir) => entries(path.join(backupsDir(), dir)).some((f) => pattern.test(f) && fs.statSync(path.join(backupsDir(), dir, f)).size > 0));
    const killPoints = {
      // VACUUM INTO is writing the copy; no compressed file yet.
      snapshot: () => inWork(/^webui\.db$/) && !inWork(/\.db\.zst$/),
      // zstd is writing the compressed file in the work directory.
      compression: () => inWork(/\.db\.zst$/),
    };
    for (const [stage, reached] of Object.entries(killPoints)) {
      const run = await startHostTool("mai-backup", [slug(TOOLS)]);
      await until(`mai-backup to reach its ${stage}`, () => run.exited() || reached(), WAIT_MS, 5);
      expect({ stage, endedBeforeTheKill: run.exited() }).toEqual({ stage, endedBeforeTheKill: false });
      killGroup(run.child);
      const ended = await run.finished;
      figure(`mai-backup killed at the ${stage}`, { signal: ended.signal, left: entries(backupsDir()) });
      expect(ended.signal).toBe("SIGKILL");
      // What a restore offers (and `latest` takes) is unchanged; nothing new has a backup's name.
      expect(await restorable()).toEqual(before);
      expect(entries(backupsDir()).filter((f) => f.endsWith(".db.zst") && !before.includes(f))).toEqual([]);
      // The status record still tells of the last finished run (a killed run writes none), whose file is there.
      expect(record()).toMatchObject({ result: "ok", file: before[before.length - 1] });
    }
    // The next run: not refused as busy (the lock died with the killed run), leftovers removed.
    const next = await runHostTool(stack(), "mai-backup", [slug(TOOLS)]);
    expect(next.code, next.output).toBe(0);
    expect(workDirs()).toEqual([]);
    const after = await restorable();
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after).toHaveLength(before.length + 1);
    expect(spawnSync("zstd", ["-q", "-t", path.join(backupsDir(), after[after.length - 1])]).status).toBe(0);
    const { misses } = await health.stop();
    expect(misses).toEqual({ [TOOLS]: 0 });
    // mai-backup never stops the workspace: the same container, never restarted.
    const now = await inspectContainer(container(TOOLS));
    expect({ id: now.Id, startedAt: now.State.StartedAt, running: now.State.Running }).toEqual({ id: identity, startedAt: state.StartedAt, running: true });
  }, 300_000);

  it("mai-export killed while writing the archive: no file with an archive's name; the next export removes the leftovers and succeeds; the client keeps serving", async () => {
    const health = watchHealth([TOOLS]);
    const { Id: identity, State: state } = await inspectContainer(container(TOOLS));
    await growDatabase(64);
    const archives = () => entries(exportsDir()).filter((f) => f.endsWith(".tar.zst"));
    const before = archives();
    const part = new RegExp(`^${slug(TOOLS)}-\\d{8}T\\d{6}Z\\.tar\\.zst\\.part-`);
    const partWritten = () => entries(exportsDir()).some((f) => part.test(f) && fs.statSync(path.join(exportsDir(), f)).size > 0);
    const run = await startHostTool("mai-export", [slug(TOOLS)]);
    await until("mai-export to write its archive", () => run.exited() || partWritten(), WAIT_MS, 5);
    expect(run.exited(), "mai-export ended before the kill").toBe(false);
    killGroup(run.child);
    const ended = await run.finished;
    const left = entries(exportsDir()).filter((f) => !before.includes(f));
    figure("mai-export killed", { signal: ended.signal, left });
    expect(ended.signal).toBe("SIGKILL");
    // Nothing an import (or an operator picking the newest archive) would take.
    expect(archives()).toEqual(before);
    // What is left is marked as unfinished and as this client's: its hidden work directory and the .part file.
    expect(left.map((f) => (f.startsWith(".mai-export-tmp.") ? "work" : part.test(f) ? "part" : f)).sort()).toEqual(["part", "work"]);
    const next = await runHostTool(stack(), "mai-export", [slug(TOOLS)]);
    expect(next.code, next.output).toBe(0);
    const made = entries(exportsDir()).filter((f) => !before.includes(f));
    expect(made).toEqual([expect.stringMatching(new RegExp(`^${slug(TOOLS)}-\\d{8}T\\d{6}Z\\.tar\\.zst$`))]);
    const manifest = JSON.parse(spawnSync("bash", ["-c", `zstd -q -d -c ${shellQuote(path.join(exportsDir(), made[0]))} | tar -x -O -f - manifest.json`], { encoding: "utf8", maxBuffer: 64 * MiB }).stdout);
    expect(manifest).toMatchObject({ format: "mai-export", slug: slug(TOOLS), database: "data/webui.db" });
    const { misses } = await health.stop();
    expect(misses).toEqual({ [TOOLS]: 0 });
    const now = await inspectContainer(container(TOOLS));
    expect({ id: now.Id, startedAt: now.State.StartedAt, running: now.State.Running }).toEqual({ id: identity, startedAt: state.StartedAt, running: true });
    expect(await markerKept(TOOLS)).toBe(true);
  }, 300_000);
});

describe("a client in an OOM loop while another client is deployed", () => {
  it("the deploy succeeds, the other clients keep answering, the looping client comes back with its data when the loop stops", async () => {
    const OOM = "oom";
    const before = await inspectContainer(container(OOM));
    const health = watchHealth(BYSTANDERS);
    const restarts = async () => (await inspectContainer(container(OOM))).RestartCount;
    let looping = true;
    // Whenever the workspace answers, it is made to allocate twice its limit (no swap): killed again.
    const loop = (async () => {
      while (looping) {
        if (await answersHealth(stack(), OOM, 2000)) {
          await request({ port: stack().port(OOM), hostname: "localhost" }, `/api/allocate?mb=${2 * OOM_LIMIT_MB}`, { method: "POST", timeoutMs: 60_000 }).catch(() => undefined);
        } else {
          await sleep(100);
        }
      }
    })();
    let result: Changes;
    let killsDuringUp: number;
    try {
      await until("the client to be OOM-killed twice", async () => (await restarts()) >= before.RestartCount + 2, WAIT_MS);
      const atUp = await restarts();
      await stack().writeClient({ key: "e" });
      result = await stack().up();
      killsDuringUp = (await restarts()) - atUp;
    } finally {
      looping = false;
      await loop;
    }
    const stoppedAt = Date.now();
    figure("OOM loop", { restartsBefore: before.RestartCount, killsDuringUp, totalRestarts: await restarts() });
    // It really looped while the engine deployed.
    expect(killsDuringUp).toBeGreaterThan(0);
    expect(result.created).toContain(`docker:index/container:Container::${slug("e")}-container`);
    expect(changedBy(result).filter((k) => !k.split("::")[1].startsWith(slug("e")) && !/::[\w-]*proxy-(caddyfile|reload)$/.test(k))).toEqual([]);
    await answering(stack(), "e", WAIT_MS);
    const { misses, answered } = await health.stop();
    expect({ misses, answered }).toEqual({ misses: { a: 0, b: 0 }, answered: { a: true, b: true } });
    // Back by itself once the loop stops (Docker's restart back-off is at most a minute).
    await answering(stack(), OOM, 180_000);
    figure("OOM client answering again after the loop stopped, ms", Date.now() - stoppedAt);
    const after = await inspectContainer(container(OOM));
    expect({ id: after.Id, running: after.State.Running, restarted: after.RestartCount >= before.RestartCount + 2 }).toEqual({ id: before.Id, running: true, restarted: true });
    expect(await markerKept(OOM)).toBe(true);
    await servedByCaddy([...BYSTANDERS, "e", OOM]);
    expect(changedBy(await stack().preview())).toEqual([]);
  }, 420_000);
});
