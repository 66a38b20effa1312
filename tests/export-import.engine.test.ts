/**
 * mai-export and mai-import on the real Docker Engine: a running workspace stand-in
 * (`mai-local/workspace:1`, writing to its WAL database all the time) is exported while it runs
 * and imported into another running stand-in, which must come back healthy with the same users,
 * chats and files. The nightly backup's usage snapshot is checked on the imported database too.
 * Holds the shared engine lock for the whole file; everything it creates carries the label
 * mai.test-run=<run id> and is removed at the end, also on failure.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const HOST_DIR = path.resolve(__dirname, "..", "host");
const IMAGE = "mai-local/workspace:1";
const ENGINE_LOCK = path.join(os.tmpdir(), "mai-hosting-engine.lock");
const RUN_ID = randomBytes(4).toString("hex");
const LABEL = `mai.test-run=${RUN_ID}`;
const SOURCE = `xt${RUN_ID}-src`;
const TARGET = `xt${RUN_ID}-dst`;

function docker(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync("docker", args, { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

function dockerOk(args: string[]): string {
  const r = docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/** Fails (never skips) when the engine or the image is missing, saying how to get them. */
function requireEngineAndImage(): void {
  if (docker(["info", "--format", "{{.ServerVersion}}"]).code !== 0) {
    throw new Error("No Docker Engine answers: start it (dockerd >/var/log/dockerd.log 2>&1 &) and wait for `docker info`.");
  }
  if (docker(["image", "inspect", IMAGE]).code !== 0) {
    throw new Error(`The workspace stand-in image ${IMAGE} is missing: build it with \`npm run local:images\`.`);
  }
}

/** Exclusive flock on the shared engine lock, held until released. */
async function acquireEngineLock(): Promise<() => void> {
  const holder: ChildProcessWithoutNullStreams = spawn("flock", ["-x", ENGINE_LOCK, "sh", "-c", "echo locked; exec cat >/dev/null"]);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`engine lock ${ENGINE_LOCK} not free within 10 minutes`)), 600_000);
    holder.stdout.on("data", (d) => String(d).includes("locked") && (clearTimeout(timer), resolve()));
    holder.on("exit", (code) => reject(new Error(`flock exited with ${code}`)));
  });
  return () => holder.stdin.end();
}

function cleanUp(): void {
  const containers = dockerOk(["ps", "-aq", "--filter", `label=${LABEL}`]).split("\n").filter(Boolean);
  if (containers.length > 0) docker(["rm", "-f", ...containers]);
  const volumes = dockerOk(["volume", "ls", "-q", "--filter", `label=${LABEL}`]).split("\n").filter(Boolean);
  if (volumes.length > 0) docker(["volume", "rm", "-f", ...volumes]);
}

function startWorkspace(slug: string, name: string): void {
  dockerOk(["volume", "create", "--label", LABEL, "--label", `mai.client=${slug}`, `mai-${slug}-data`]);
  dockerOk([
    "run", "-d", "--name", `mai-${slug}`, "--label", LABEL, "--network", "none",
    "-e", `ORGANIZATION_NAME=${name}`, "-e", "STANDIN_HEARTBEAT_SECONDS=0.05",
    // The stack's health check (CLIENT_HEALTHCHECK), with a short interval for the test.
    "--health-cmd", "curl -fsS http://localhost:8080/health || exit 1", "--health-interval", "1s", "--health-retries", "3",
    "-v", `mai-${slug}-data:/app/backend/data`, IMAGE,
  ]);
}

async function waitHealthy(slug: string): Promise<void> {
  for (let i = 0; i < 120; i++) {
    if (docker(["inspect", "-f", "{{.State.Health.Status}}", `mai-${slug}`]).stdout === "healthy") return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`mai-${slug} did not become healthy: ${docker(["logs", "--tail", "20", `mai-${slug}`]).stderr}`);
}

/** Calls the stand-in's API from inside its container (no published ports). */
function api(slug: string, method: "GET" | "POST", pathAndQuery: string, extra = ""): any {
  const out = dockerOk(["exec", `mai-${slug}`, "sh", "-c", `${extra}curl -fsS -X ${method} ${extra ? "--data-binary @- " : ""}'http://127.0.0.1:8080${pathAndQuery}'`]);
  return JSON.parse(out);
}

const volumeDir = (slug: string) => dockerOk(["volume", "inspect", "-f", "{{.Mountpoint}}", `mai-${slug}-data`]);
const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

function sql(db: string, statement: string): string {
  const r = spawnSync("sqlite3", ["-init", "/dev/null", "-bail", "-cmd", ".timeout 20000", db, statement], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`sqlite3 ${db}: ${r.stderr}`);
  return r.stdout.trim();
}

let work: string;
let env: NodeJS.ProcessEnv;
let release: (() => void) | undefined;

beforeAll(async () => {
  requireEngineAndImage();
  release = await acquireEngineLock();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "mai-export-engine-"));
  env = { ...process.env, MAI_EXPORT_ROOT: path.join(work, "exports"), MAI_LOCK_DIR: path.join(work, "lock"), MAI_BACKUP_ROOT: path.join(work, "backups"), MAI_CONFIG_DIR: path.join(work, "etc") };
}, 660_000);

afterAll(() => {
  try {
    cleanUp();
  } finally {
    release?.();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  }
});

describe("export and import on the real engine", () => {
  it("exports a running workspace that keeps writing and imports it into another running workspace", async () => {
    startWorkspace(SOURCE, "Source GmbH");
    startWorkspace(TARGET, "Target AG");
    await Promise.all([waitHealthy(SOURCE), waitHealthy(TARGET)]);

    expect(api(SOURCE, "POST", "/api/signup?email=ada@source.test").role).toBe("admin");
    expect(api(SOURCE, "POST", "/api/signup?email=bo@source.test").role).toBe("pending");
    for (const title of ["q3 plan", "hiring", "budget"]) api(SOURCE, "POST", "/api/write", `printf '${title}' | `);
    expect(api(SOURCE, "POST", "/api/upload?name=report.bin", "head -c 300000 /dev/urandom | ").bytes).toBe(300000);
    api(TARGET, "POST", "/api/signup?email=someone@target.test");
    const sourceStarted = dockerOk(["inspect", "-f", "{{.State.StartedAt}}", `mai-${SOURCE}`]);

    const beatsBefore = api(SOURCE, "GET", "/api/stats").heartbeats;
    const archive = path.join(work, "exports", `${SOURCE}.tar.zst`);
    fs.mkdirSync(path.dirname(archive), { recursive: true });
    const exported = spawnSync("bash", [path.join(HOST_DIR, "mai-export.sh"), SOURCE, archive], { env, encoding: "utf8" });
    expect(exported.stderr).toBe("");
    expect(exported.status).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(api(SOURCE, "GET", "/api/stats").heartbeats).toBeGreaterThan(beatsBefore); // it kept writing, and still does
    // The running workspace was only read: same start time, still healthy.
    expect(dockerOk(["inspect", "-f", "{{.State.StartedAt}} {{.State.Health.Status}}", `mai-${SOURCE}`])).toBe(`${sourceStarted} healthy`);

    const manifest = JSON.parse(spawnSync("bash", ["-c", `zstd -q -d -c "${archive}" | tar -x -O -f - manifest.json`], { encoding: "utf8" }).stdout);
    expect(manifest).toMatchObject({ slug: SOURCE, name: "Source GmbH", image: IMAGE });
    expect(manifest.files.map((f: { path: string }) => f.path)).toEqual(["data/uploads/report.bin", "data/webui.db"]);
    const exportedDb = path.join(work, "exported.db");
    expect(spawnSync("bash", ["-c", `zstd -q -d -c "${archive}" | tar -x -O -f - data/webui.db > "${exportedDb}"`]).status).toBe(0);
    const exportedBeats = Number(sql(exportedDb, "SELECT count(*) FROM heartbeat;"));
    expect(exportedBeats).toBeGreaterThanOrEqual(beatsBefore);

    const imported = spawnSync("bash", [path.join(HOST_DIR, "mai-import.sh"), "--yes", "--from", SOURCE, TARGET, archive], { env, encoding: "utf8" });
    expect(imported.stderr).toBe("");
    expect(imported.status).toBe(0);
    expect(imported.stdout).toContain(`stopping mai-${TARGET}`);
    expect(imported.stdout).toContain(`mai-${TARGET} is healthy`);

    // The target serves the source's data: same users and chats (through its own API), same file.
    const stats = api(TARGET, "GET", "/api/stats");
    expect(stats).toMatchObject({ users: 2, chats: 3, journal_mode: "wal" });
    expect(stats.heartbeats).toBeGreaterThanOrEqual(exportedBeats);
    const targetDir = volumeDir(TARGET);
    expect(sha256(path.join(targetDir, "uploads", "report.bin"))).toBe(sha256(path.join(volumeDir(SOURCE), "uploads", "report.bin")));
    const db = path.join(targetDir, "webui.db");
    expect(sql(db, "PRAGMA integrity_check;")).toBe("ok");
    expect(sql(db, "SELECT email || ':' || role FROM user ORDER BY email;")).toBe("ada@source.test:admin\nbo@source.test:pending");
    expect(sql(db, "SELECT group_concat(title, ',') FROM (SELECT title FROM chat ORDER BY title);")).toBe("budget,hiring,q3 plan");
    // The target's own data is kept aside.
    const aside = fs.readdirSync(targetDir).filter((f) => f.startsWith("mai-pre-import-"));
    expect(aside).toHaveLength(1);
    expect(sql(path.join(targetDir, aside[0], "webui.db"), "SELECT email FROM user;")).toBe("someone@target.test");

    // The nightly backup of the imported client counts its active users for the invoice: the pending one is not.
    const backup = spawnSync("bash", [path.join(HOST_DIR, "mai-backup.sh"), TARGET], { env, encoding: "utf8" });
    expect(backup.stderr).toBe("");
    expect(backup.status).toBe(0);
    const snapshotFile = fs.readdirSync(path.join(work, "backups", TARGET)).find((f) => f.startsWith("usage-"))!;
    expect(JSON.parse(fs.readFileSync(path.join(work, "backups", TARGET, snapshotFile), "utf8")).activeUsers).toBe(1);
  }, 300_000);
});
