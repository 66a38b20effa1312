/**
 * The operator's view of a deployed stack (real engine, real `pulumi up`): client containers as the
 * program declares them (one healthy, one OOM-killed, one whose health check fails), a suspended
 * client (data volume, no container), a client whose file was added after the deploy (file, no
 * container), and a container no client file knows. `npm run status` on the stack must match
 * `docker inspect`; the stack's installed mai-alert, with the webhook URL set as the stack's secret
 * config, must reach a receiver on 127.0.0.1 exactly once per condition and once on resolve (a
 * backup made older by hand included); the installed sampler's store must stay within its
 * retention.
 *
 * The local server has no systemd, so no backup timers: the one backup-age alert needs a timer, and
 * mai-status reads enabled timers from MAI_TIMERS_DIR, which the test points at a directory of its
 * own. The failing health check is the stack's own check against a workspace process frozen with
 * SIGSTOP from the host (the container's root file system is read-only: nothing can be moved away).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { LOCAL_WORKSPACE_IMAGE } from "../policy/localImages";
import { localHostPaths } from "../policy/localHost";
import { answering, runHostTool, runStatus, until } from "./support/deployedHost";
import { docker, newRunId } from "./support/engine";
import { localServerName, useRealEngineSuite } from "./support/testEngine";

/** The smallest memory limit a client file may give (config/clientFile.ts). */
const MEMORY_MB = 512;
const resources = `resources:\n  cpus: 0.5\n  memory: ${MEMORY_MB}M\n  reservations:\n    cpus: 0.25\n    memory: 128M\n`;
/** Docker's health checks of the stack run every 30 s, three failures make "unhealthy". */
const HEALTH_WAIT_MS = 240_000;

const received: any[] = [];
/** Host PIDs of the sick client's workspace program (frozen to fail the stack's health check). */
async function workspacePids(): Promise<number[]> {
  const top = await docker(["top", container("sick"), "-eo", "pid,args"]);
  const pids = top.split("\n").slice(1).filter((line) => line.includes("workspace.py")).map((line) => Number(line.trim().split(/\s+/)[0]));
  if (pids.length === 0) throw new Error(`no workspace process in ${container("sick")}:\n${top}`);
  return pids;
}
let receiver: http.Server | undefined;

const suite = useRealEngineSuite({
  runId: newRunId(),
  clients: ["ok", "oom", "sick"].map((key) => ({ key, yaml: `name: Test ${key}\n${resources}` })).concat({ key: "susp", yaml: `name: Test susp\nstatus: suspended\n${resources}` }),
  ready: async ({ stack }) => {
    receiver = http.createServer((req, res) => {
      let body = "";
      req.on("data", (chunk) => (body += chunk));
      req.on("end", () => {
        received.push(JSON.parse(body));
        res.end("ok");
      });
    });
    await new Promise<void>((resolve) => receiver!.listen(0, "127.0.0.1", resolve));
    // The stack writes the URL into the server's alerts.env (a secret: stdin of a command only).
    await stack.setSecret("alertWebhookUrl", `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`);
    await stack.up();
    // After the last deploy: a file without a container.
    await stack.writeClient({ key: "miss", yaml: `name: Test miss\n${resources}` });
    fs.mkdirSync(timersDir(), { recursive: true });
    // A container no client file names, shaped like a client's.
    await docker([
      "run", "-d", "--name", `mai-${slug("stray")}`, "--label", `mai.client=${slug("stray")}`, "--network", "none",
      "--memory", `${MEMORY_MB}m`, "--memory-swap", `${MEMORY_MB}m`, "--restart", "unless-stopped", LOCAL_WORKSPACE_IMAGE,
    ]);

    await Promise.all(["ok", "oom", "sick"].map((key) => answering(stack, key)));
    await until("the clients and the proxy to be healthy", async () => (await Promise.all([...["ok", "oom", "sick"].map(container), "mai-proxy"].map(health))).every((h) => h === "healthy"), HEALTH_WAIT_MS, 1000);
    await Promise.all([
      (async () => {
        // The stack's health check asks the workspace: frozen, it never answers.
        for (const pid of await workspacePids()) process.kill(pid, "SIGSTOP");
        await until("the frozen client to be unhealthy", async () => (await health(container("sick"))) === "unhealthy", HEALTH_WAIT_MS, 1000);
      })(),
      (async () => {
        // Allocate past the limit in the main process: the kernel kills it, Docker restarts it.
        await docker(["exec", container("oom"), "curl", "-s", "-m", "30", "-X", "POST", `http://localhost:8080/api/allocate?mb=${MEMORY_MB * 1.5}`]).catch(() => undefined);
        await until("the OOM kill", async () => (await state(container("oom"))).OOMKilled === true, 90_000, 500);
        // Settled: running and healthy again, so status and inspect see the same thing.
        await until("the restart after the OOM kill", async () => (await health(container("oom"))) === "healthy", HEALTH_WAIT_MS, 1000);
      })(),
    ]);
  },
  teardown: async () => {
    if (receiver) await new Promise((resolve) => receiver!.close(resolve));
  },
});
const stack = () => suite.stack;
const slug = (key: string) => stack().slug(key);
const container = (key: string) => stack().container(key);
const server = () => localServerName();
const timersDir = () => path.join(stack().dir, "timers");
const paths = () => localHostPaths(stack().stateDir());
/** The local server has no systemd: enabled timers are the files in the test's own directory. */
const timersEnv = () => ({ MAI_TIMERS_DIR: timersDir() });

async function inspectContainer(name: string): Promise<any> {
  return JSON.parse(await docker(["container", "inspect", name]))[0];
}
const state = async (name: string) => (await inspectContainer(name)).State;
const health = async (name: string) => (await state(name)).Health?.Status as string | undefined;

const statusCli = (args: string[]) => runStatus(stack(), args, timersEnv());

describe("npm run status on the deployed stack", () => {
  it("matches docker inspect for every client and lists what differs from the files", async () => {
    const run = await statusCli(["--json"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout);
    const bySlug = Object.fromEntries(report.clients.map((c: any) => [c.slug.slice(stack().runId.length + 1), c]));
    expect(Object.keys(bySlug).sort()).toEqual(["miss", "ok", "oom", "sick", "stray", "susp"]);

    for (const key of ["ok", "oom", "sick"]) {
      const live = await inspectContainer(container(key));
      const row = bySlug[key];
      expect(row.server).toBe(server());
      expect(row.state).toBe(live.State.Status);
      expect(row.expected).toBe("active");
      expect(row.health).toBe(live.State.Health.Status);
      expect(row.restarts).toBe(live.RestartCount);
      expect(row.oomKilled).toBe(live.State.OOMKilled);
      expect(row.memoryLimitBytes).toBe(live.HostConfig.Memory);
      expect(row.memoryLimitBytes).toBe(MEMORY_MB * 1048576);
      expect(row.memoryBytes).toBeGreaterThan(1 << 20);
      expect(row.memoryBytes).toBeLessThan(live.HostConfig.Memory);
      expect(row.cpuPercent).toBeGreaterThanOrEqual(0);
      expect(row.volumeBytes).toBeGreaterThan(0);
      const started = Date.parse(live.State.StartedAt);
      expect(row.uptimeSeconds).toBeGreaterThanOrEqual(Math.floor((Date.now() - started) / 1000) - 120);
      expect(row.uptimeSeconds).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / 1000));
    }
    expect(bySlug.ok).toMatchObject({ health: "healthy", oomKilled: false, problems: [] });
    expect(bySlug.oom.oomKilled).toBe(true);
    expect(bySlug.oom.restarts).toBeGreaterThanOrEqual(1);
    expect(bySlug.oom.problems).toEqual([expect.stringMatching(new RegExp(`hit its memory limit of ${MEMORY_MB} MiB: its main process was OOM-killed`))]);
    expect(bySlug.sick.problems).toEqual([`${container("sick")} fails its health check`]);
    expect(bySlug.susp).toMatchObject({ state: "suspended", expected: "suspended", problems: [] });
    expect(bySlug.miss).toMatchObject({ state: "missing", expected: "active" });
    expect(bySlug.stray).toMatchObject({ state: "unknown", expected: "not in files" });
    // Shown, never touched.
    expect((await state(`mai-${slug("stray")}`)).Running).toBe(true);
    expect(report.differences).toEqual([
      `${slug("miss")} is active in its file but has no container on ${server()}; run pulumi up`,
      `${server()}: container mai-${slug("stray")} exists but no client file names "${slug("stray")}" (shown, not touched)`,
    ]);
    expect(report.servers[0]).toMatchObject({ server: server(), reachable: true, proxy: { state: "running", health: "healthy" } });
    expect(report.servers[0].dockerVersion).toBe(await docker(["version", "--format", "{{.Server.Version}}"]));

    const text = await statusCli([]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(new RegExp(`^${slug("ok")}\\s+${server()}\\s+running\\s+healthy\\s+0\\s+0\\s`, "m"));
    expect(text.stdout).toMatch(new RegExp(`^${slug("susp")}\\s+${server()}\\s+suspended\\s`, "m"));
  }, 180_000);
});

describe("the stack's mai-alert", () => {
  const events = () => received.map((m) => `${m.state} ${m.key.replace(`${stack().runId}-`, "")}`).sort();

  it("posts each condition once when it starts and once when it resolves, a backup made older by hand included", async () => {
    // The ok client has a nightly timer and a backup, made 30 h old by hand.
    fs.writeFileSync(path.join(timersDir(), `mai-backup@${slug("ok")}.timer`), "");
    const backups = path.join(paths().backupsDir, slug("ok"));
    fs.mkdirSync(backups, { recursive: true });
    const stamp = (at: number) => new Date(at).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    fs.writeFileSync(path.join(backups, `${slug("ok")}-${stamp(Date.now() - 30 * 3_600_000)}.db.zst`), "x");

    let r = await runHostTool(stack(), "mai-alert", [], { env: timersEnv() });
    expect(r.code, r.output).toBe(0);
    expect(events()).toEqual(["firing backup-stale:ok", "firing oom-killed:oom", "firing unhealthy:sick"]);
    expect(received.every((m) => m.host === os.hostname() && typeof m.text === "string" && m.text.startsWith(`[${os.hostname()}]`))).toBe(true);

    r = await runHostTool(stack(), "mai-alert", [], { env: timersEnv() });
    expect(r.code, r.output).toBe(0);
    expect(received).toHaveLength(3);

    // Fix two of them: the health check passes again, and a fresh backup arrives.
    for (const pid of await workspacePids()) process.kill(pid, "SIGCONT");
    await until("the client to recover", async () => (await health(container("sick"))) === "healthy", HEALTH_WAIT_MS, 1000);
    fs.writeFileSync(path.join(backups, `${slug("ok")}-${stamp(Date.now())}.db.zst`), "x");
    for (let i = 0; i < 2; i++) {
      r = await runHostTool(stack(), "mai-alert", [], { env: timersEnv() });
      expect(r.code, r.output).toBe(0);
    }
    expect(events()).toEqual([
      "firing backup-stale:ok",
      "firing oom-killed:oom",
      "firing unhealthy:sick",
      "resolved backup-stale:ok",
      "resolved unhealthy:sick",
    ]);
    const alertState = JSON.parse(fs.readFileSync(path.join(paths().stateDir, "alerts", "state.json"), "utf8"));
    expect(Object.keys(alertState).map((k) => k.replace(`${stack().runId}-`, ""))).toEqual(["oom-killed:oom"]);
  }, 360_000);
});

describe("the stack's mai-sample", () => {
  it("stores each running client's CPU and memory and keeps only its retention window", async () => {
    const now = Math.floor(Date.now() / 1000);
    const day = 86_400;
    for (const at of [now - 20 * day, now - 15 * day, now - day, now]) {
      const r = await runHostTool(stack(), "mai-sample", [], { env: { MAI_NOW: String(at) } });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
    }
    const db = path.join(paths().stateDir, "samples.db");
    const rows = spawnSync("sqlite3", [db, "SELECT ts, slug, memory_bytes, memory_limit_bytes FROM samples ORDER BY ts, slug"], { encoding: "utf8" })
      .stdout.trim()
      .split("\n")
      .map((line) => line.split("|"));
    // The 20- and 15-day-old runs were pruned by the later ones.
    expect([...new Set(rows.map((row) => Number(row[0])))]).toEqual([now - day, now]);
    const slugs = [...new Set(rows.map((row) => row[1].replace(`${stack().runId}-`, "")))].sort();
    expect(slugs).toEqual(["ok", "oom", "sick", "stray"]);
    for (const row of rows) {
      expect(Number(row[2])).toBeGreaterThan(1 << 20);
      expect(Number(row[3])).toBe(MEMORY_MB * 1048576);
    }

    // The advice reads the same store through the same runner.
    const advice = await statusCli(["--json", "--advice"]);
    const parsed = JSON.parse(advice.stdout);
    expect(parsed.adviceErrors).toEqual([]);
    expect(parsed.advice.clients.map((c: any) => c.slug.replace(`${stack().runId}-`, ""))).toEqual(["ok", "oom", "sick"]);
    expect(parsed.advice.clients[0]).toMatchObject({ samples: 2, suggested: null });
  }, 180_000);
});
