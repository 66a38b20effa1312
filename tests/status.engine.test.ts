/**
 * The operator's view against the real local Docker Engine: client containers of the workspace
 * stand-in (one healthy, one OOM-killed, one unhealthy, one no file knows), a suspended client
 * (data volume, no container) and a missing one (file, no container). `npm run status` must
 * match `docker inspect`; mai-alert must reach a webhook receiver on 127.0.0.1 exactly once per
 * condition and once on resolve (a backup made older by hand included); the sampler's store must
 * stay within its retention. Holds the engine lock for the whole file; removes everything it
 * labelled, also on failure. Fails (never skips) without an engine or the stand-in image.
 */
import { execFile, spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const REPO = path.join(__dirname, "..");
const HOST_DIR = path.join(REPO, "host");
const TSX = path.join(REPO, "node_modules", ".bin", "tsx");
const IMAGE = "mai-local/workspace:1";
const LOCK = path.join(os.tmpdir(), "mai-hosting-engine.lock");
const RUN = `st${crypto.randomBytes(3).toString("hex")}`;
const LABEL = `mai.test-run=${RUN}`;
const slug = (name: string) => `${RUN}-${name}`;
const MEMORY = "256m";
/** The run's own bridge network: containers use only the project's networks. */
const NETWORK = `mai-${RUN}`;

function docker(args: string[], allowFailure = false): string {
  const r = spawnSync("docker", args, { encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0 && !allowFailure) throw new Error(`docker ${args.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}
function inspect(name: string): any {
  return JSON.parse(docker(["inspect", name]))[0];
}
async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 90_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

let lock: ChildProcessWithoutNullStreams | undefined;
let dir: string;
let env: NodeJS.ProcessEnv;
let receiver: http.Server;
let webhook = "";
const received: any[] = [];

/** The production shape of a client container, with a 1 s health check for the test. */
function runClient(name: string, health = "curl -fsS http://localhost:8080/health || exit 1"): void {
  const s = slug(name);
  docker(["volume", "create", "--label", LABEL, "--label", `mai.client=${s}`, `mai-${s}-data`]);
  docker([
    "run", "-d", "--name", `mai-${s}`, "--label", `mai.client=${s}`, "--label", LABEL, "--network", NETWORK,
    "--memory", MEMORY, "--memory-swap", MEMORY, "--memory-reservation", "128m", "--cpus", "0.5", "--cpu-shares", "512",
    "--restart", "unless-stopped",
    "--health-cmd", health, "--health-interval", "1s", "--health-timeout", "5s", "--health-retries", "2",
    "-v", `mai-${s}-data:/app/backend/data`, IMAGE,
  ]);
}

async function takeEngineLock(): Promise<ChildProcessWithoutNullStreams> {
  const child = spawn("flock", ["-x", LOCK, "sh", "-c", "echo locked; cat >/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once("data", () => resolve());
    child.once("exit", (code) => reject(new Error(`flock exited with ${code}`)));
  });
  return child;
}

function statusCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(TSX, [path.join(REPO, "scripts", "status.ts"), "--local", ...args], { cwd: dir, env, timeout: 120_000, maxBuffer: 1 << 24 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
    );
  });
}
function hostScript(script: string, args: string[] = [], extra: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("bash", [path.join(HOST_DIR, script), ...args], { env: { ...env, ...extra }, timeout: 120_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  const info = spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], { encoding: "utf8" });
  if (info.status !== 0) {
    throw new Error("No Docker engine answers `docker info`. Start one (as root: `dockerd >/var/log/dockerd.log 2>&1 &`) and run the tests again.");
  }
  if (spawnSync("docker", ["image", "inspect", IMAGE]).status !== 0) {
    throw new Error(`The workspace stand-in image ${IMAGE} is missing: build it with \`npm run local:images\`.`);
  }
  lock = await takeEngineLock();

  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-status-engine-"));
  for (const sub of ["clients", "state", "backups", "timers", "config"]) fs.mkdirSync(path.join(dir, sub));
  fs.copyFileSync(path.join(REPO, "Pulumi.prod.yaml"), path.join(dir, "Pulumi.prod.yaml"));
  const clientFile = (name: string, port: number, extra = "") =>
    fs.writeFileSync(path.join(dir, "clients", `${slug(name)}.yaml`), `name: Test ${name}\nport: ${port}\n${extra}`);
  clientFile("ok", 41001);
  clientFile("oom", 41002);
  clientFile("sick", 41003);
  clientFile("susp", 41004, "status: suspended\n");
  clientFile("miss", 41005);

  receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      received.push(JSON.parse(body));
      res.end("ok");
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  webhook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  fs.writeFileSync(path.join(dir, "config", "alerts.env"), `ALERT_WEBHOOK_URL='${webhook}'\n`, { mode: 0o600 });

  env = {
    ...process.env,
    MAI_LABEL_FILTER: LABEL,
    MAI_STATE_DIR: path.join(dir, "state"),
    MAI_BACKUP_ROOT: path.join(dir, "backups"),
    MAI_TIMERS_DIR: path.join(dir, "timers"),
    MAI_CONFIG_DIR: path.join(dir, "config"),
    MAI_LOCK_DIR: path.join(dir, "state"),
    MAI_CADDY_CERT_DIR: path.join(dir, "certificates"),
  };

  // The proxy stand-in (healthy), the clients, a suspended client's kept volume, a stray container.
  docker(["network", "create", "--label", LABEL, NETWORK]);
  docker(["run", "-d", "--name", `mai-${RUN}-proxy`, "--label", "mai.role=proxy", "--label", LABEL, "--network", NETWORK, "--health-cmd", "curl -fsS http://localhost:8080/health", "--health-interval", "1s", IMAGE]);
  runClient("ok");
  runClient("oom");
  runClient("sick", "test -f /tmp/healthy && curl -fsS http://localhost:8080/health || exit 1");
  runClient("stray");
  docker(["volume", "create", "--label", LABEL, `mai-${slug("susp")}-data`]);

  await waitFor("healthy containers", () =>
    [`mai-${slug("ok")}`, `mai-${slug("oom")}`, `mai-${RUN}-proxy`].every((n) => inspect(n).State.Health?.Status === "healthy") ? true : undefined,
  );
  await waitFor("the unhealthy client", () => (inspect(`mai-${slug("sick")}`).State.Health?.Status === "unhealthy" ? true : undefined));
  // Allocate past the limit in the main process: the kernel kills it, Docker restarts it.
  docker(["exec", `mai-${slug("oom")}`, "curl", "-s", "-m", "20", "-X", "POST", "http://localhost:8080/api/allocate?mb=400"], true);
  await waitFor("the OOM kill", () => (inspect(`mai-${slug("oom")}`).State.OOMKilled === true ? true : undefined));
  // Settled: running and healthy again, so status and inspect see the same thing.
  await waitFor("the restart after the OOM kill", () => (inspect(`mai-${slug("oom")}`).State.Health?.Status === "healthy" ? true : undefined));
}, 300_000);

afterAll(async () => {
  try {
    const containers = docker(["ps", "-aq", "--filter", `label=${LABEL}`], true).split("\n").filter(Boolean);
    if (containers.length > 0) docker(["rm", "-f", "-v", ...containers], true);
    const volumes = docker(["volume", "ls", "-q", "--filter", `label=${LABEL}`], true).split("\n").filter(Boolean);
    if (volumes.length > 0) docker(["volume", "rm", "-f", ...volumes], true);
    const networks = docker(["network", "ls", "-q", "--filter", `label=${LABEL}`], true).split("\n").filter(Boolean);
    if (networks.length > 0) docker(["network", "rm", ...networks], true);
    const left = ["ps -aq", "volume ls -q", "network ls -q"].map((list) => docker([...list.split(" "), "--filter", `label=${LABEL}`], true)).join("");
    if (left !== "") throw new Error(`objects of run ${RUN} left behind: ${left}`);
  } finally {
    if (receiver) await new Promise((resolve) => receiver.close(resolve));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    lock?.stdin.end();
  }
}, 120_000);

describe("npm run status on the real engine", () => {
  it("matches docker inspect for every client and lists what differs from the files", async () => {
    const run = await statusCli(["--json"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout);
    const bySlug = Object.fromEntries(report.clients.map((c: any) => [c.slug.slice(RUN.length + 1), c]));
    expect(Object.keys(bySlug).sort()).toEqual(["miss", "ok", "oom", "sick", "stray", "susp"]);

    for (const name of ["ok", "oom", "sick"]) {
      const live = inspect(`mai-${slug(name)}`);
      const row = bySlug[name];
      expect(row.state).toBe(live.State.Status);
      expect(row.expected).toBe("active");
      expect(row.health).toBe(live.State.Health.Status);
      expect(row.restarts).toBe(live.RestartCount);
      expect(row.oomKilled).toBe(live.State.OOMKilled);
      expect(row.memoryLimitBytes).toBe(live.HostConfig.Memory);
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
    expect(bySlug.oom.problems).toEqual([expect.stringMatching(/hit its memory limit of 256 MiB: its main process was OOM-killed/)]);
    expect(bySlug.sick.problems).toEqual([`mai-${slug("sick")} fails its health check`]);
    expect(bySlug.susp).toMatchObject({ state: "suspended", expected: "suspended", problems: [] });
    expect(bySlug.miss).toMatchObject({ state: "missing", expected: "active" });
    expect(bySlug.stray).toMatchObject({ state: "unknown", expected: "not in files" });
    // Shown, never touched.
    expect(inspect(`mai-${slug("stray")}`).State.Running).toBe(true);
    expect(report.differences).toEqual([
      `${slug("miss")} is active in its file but has no container on host; run pulumi up`,
      `host: container mai-${slug("stray")} exists but no client file names "${slug("stray")}" (shown, not touched)`,
    ]);
    expect(report.servers[0]).toMatchObject({ reachable: true, proxy: { state: "running", health: "healthy" } });
    expect(report.servers[0].dockerVersion).toBe(docker(["version", "--format", "{{.Server.Version}}"]));

    const text = await statusCli([]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(new RegExp(`^${slug("ok")}\\s+host\\s+running\\s+healthy\\s+0\\s+0\\s`, "m"));
    expect(text.stdout).toMatch(new RegExp(`^${slug("susp")}\\s+host\\s+suspended\\s`, "m"));
  }, 180_000);
});

describe("mai-alert on the real engine", () => {
  const events = () => received.map((m) => `${m.state} ${m.key.replace(`${RUN}-`, "")}`).sort();

  it("posts each condition once when it starts and once when it resolves, a backup made older by hand included", async () => {
    // The ok client has a nightly timer and a backup, made 30 h old by hand.
    fs.writeFileSync(path.join(dir, "timers", `mai-backup@${slug("ok")}.timer`), "");
    const backups = path.join(dir, "backups", slug("ok"));
    fs.mkdirSync(backups);
    const old = new Date(Date.now() - 30 * 3_600_000).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    fs.writeFileSync(path.join(backups, `${slug("ok")}-${old}.db.zst`), "x");

    let r = await hostScript("mai-alert.sh");
    expect(r.code).toBe(0);
    expect(events()).toEqual(["firing backup-stale:ok", "firing oom-killed:oom", "firing unhealthy:sick"]);
    expect(received.every((m) => m.host === os.hostname() && typeof m.text === "string" && m.text.startsWith(`[${os.hostname()}]`))).toBe(true);

    r = await hostScript("mai-alert.sh");
    expect(r.code).toBe(0);
    expect(received).toHaveLength(3);

    // Fix two of them: the health check passes again, and a fresh backup arrives.
    docker(["exec", `mai-${slug("sick")}`, "touch", "/tmp/healthy"]);
    await waitFor("the client to recover", () => (inspect(`mai-${slug("sick")}`).State.Health.Status === "healthy" ? true : undefined));
    const fresh = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    fs.writeFileSync(path.join(backups, `${slug("ok")}-${fresh}.db.zst`), "x");
    await hostScript("mai-alert.sh");
    await hostScript("mai-alert.sh");
    expect(events()).toEqual([
      "firing backup-stale:ok",
      "firing oom-killed:oom",
      "firing unhealthy:sick",
      "resolved backup-stale:ok",
      "resolved unhealthy:sick",
    ]);
    const state = JSON.parse(fs.readFileSync(path.join(dir, "state", "alerts", "state.json"), "utf8"));
    expect(Object.keys(state).map((k) => k.replace(`${RUN}-`, ""))).toEqual(["oom-killed:oom"]);
  }, 180_000);
});

describe("mai-sample on the real engine", () => {
  it("stores each running client's CPU and memory and keeps only its retention window", async () => {
    const now = Math.floor(Date.now() / 1000);
    const day = 86_400;
    for (const at of [now - 20 * day, now - 15 * day, now - day, now]) {
      const r = await hostScript("mai-sample.sh", [], { MAI_NOW: String(at) });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
    }
    const db = path.join(dir, "state", "samples.db");
    const rows = spawnSync("sqlite3", [db, "SELECT ts, slug, memory_bytes, memory_limit_bytes FROM samples ORDER BY ts, slug"], { encoding: "utf8" })
      .stdout.trim()
      .split("\n")
      .map((line) => line.split("|"));
    // The 20- and 15-day-old runs were pruned by the later ones.
    expect([...new Set(rows.map((row) => Number(row[0])))]).toEqual([now - day, now]);
    const slugs = [...new Set(rows.map((row) => row[1].replace(`${RUN}-`, "")))].sort();
    expect(slugs).toEqual(["ok", "oom", "sick", "stray"]);
    for (const row of rows) {
      expect(Number(row[2])).toBeGreaterThan(1 << 20);
      expect(Number(row[3])).toBe(256 * 1048576);
    }

    // The advice reads the same store through the same runner.
    const advice = await statusCli(["--json", "--advice"]);
    const parsed = JSON.parse(advice.stdout);
    expect(parsed.adviceErrors).toEqual([]);
    expect(parsed.advice.clients.map((c: any) => c.slug.replace(`${RUN}-`, ""))).toEqual(["ok", "oom", "sick"]);
    expect(parsed.advice.clients[0]).toMatchObject({ samples: 2, suggested: null });
  }, 180_000);
});
