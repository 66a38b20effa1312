/**
 * Real engine: the host scripts against a client container the program declares. `mai-backup`
 * takes a consistent backup of a workspace that keeps writing; `mai-restore` stops and starts the
 * real container, which is healthy on the restored data; a corrupt backup is refused before
 * anything stops. Paths are the scripts' own environment overrides, on a temp directory.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { docker, EngineApplier, runId } from "./support/applier";
import { createEngineStack, type EngineStack, OUT_OF_SCOPE } from "./support/engineStack";
import { LOCK_WAIT_MS, lockEngine, requireDockerEngine, SETUP_MS } from "./support/engineSession";
import { request } from "./support/httpClient";

const HOST_DIR = path.resolve(__dirname, "..", "host");
const id = runId();
const applier = new EngineApplier({ outOfScope: OUT_OF_SCOPE });
let stack: EngineStack;
let release: (() => void) | undefined;
let root: string;

const container = () => `mai-${stack.slug("a")}`;
const state = () => docker(["inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", container()]);
const sql = (statement: string) => docker(["exec", container(), "sqlite3", "-cmd", ".timeout 20000", "/app/backend/data/webui.db", statement]);

function script(name: string, args: string[]): { code: number | null; output: string } {
  const r = spawnSync("bash", [path.join(HOST_DIR, name), ...args], {
    encoding: "utf8",
    env: {
      ...process.env,
      MAI_BACKUP_ROOT: path.join(root, "backups"),
      MAI_LOCK_DIR: path.join(root, "lock"),
      MAI_CONFIG_DIR: path.join(root, "etc"),
    },
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 120_000,
  });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

async function answering(timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await request({ port: stack.port("a"), hostname: "localhost" }, "/health", { timeoutMs: 2000 }).then((r) => r.status === 200, () => false))) {
    if (Date.now() > deadline) throw new Error(`${container()} does not answer /health`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  requireDockerEngine();
  release = await lockEngine();
  root = fs.mkdtempSync(path.join(os.tmpdir(), `mai-engine-backup-${id}-`));
  stack = await createEngineStack(id, [{ key: "a" }]);
  await applier.up(await stack.evaluate());
  await answering();
  sql("CREATE TABLE IF NOT EXISTS backup_probe (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO backup_probe (v) VALUES ('before-backup');");
  // A second writer inside the container, on top of the workspace's own: rows keep arriving
  // during the backup. It ends with the container.
  docker(["exec", "-d", container(), "sh", "-c", "while :; do sqlite3 -cmd '.timeout 20000' /app/backend/data/webui.db \"INSERT INTO backup_probe (v) VALUES ('busy')\"; sleep 0.02; done"]);
}, LOCK_WAIT_MS + SETUP_MS);

afterAll(() => {
  const problems = applier.cleanup();
  stack?.dispose();
  if (root) fs.rmSync(root, { recursive: true, force: true });
  release?.();
  if (problems.length) throw new Error(problems.join("\n"));
});

describe("backup and restore against the real container", () => {
  let backupFile: string;

  it("mai-backup takes a verified backup while the workspace keeps writing", () => {
    const rowsBefore = Number(sql("SELECT count(*) FROM backup_probe;"));
    const run = script("mai-backup.sh", [stack.slug("a")]);
    expect(run.code, run.output).toBe(0);
    const rowsAfter = Number(sql("SELECT count(*) FROM backup_probe;"));
    expect(rowsAfter).toBeGreaterThan(rowsBefore); // the writer really was writing
    const dir = path.join(root, "backups", stack.slug("a"));
    const files = fs.readdirSync(dir).filter((f) => f.endsWith(".db.zst"));
    expect(files).toHaveLength(1);
    backupFile = path.join(dir, files[0]);
    const copy = path.join(root, "check.db");
    expect(spawnSync("zstd", ["-q", "-d", "-f", backupFile, "-o", copy]).status).toBe(0);
    const check = spawnSync("sqlite3", ["-init", "/dev/null", copy, "PRAGMA integrity_check; SELECT v FROM backup_probe ORDER BY id LIMIT 1;"], { encoding: "utf8" });
    expect(check.stdout.trim().split("\n")).toEqual(["ok", "before-backup"]);
  }, 60_000);

  it("a corrupt backup is refused before the container is stopped", () => {
    const before = state();
    const corrupt = path.join(root, "backups", stack.slug("a"), `${stack.slug("a")}-20990101T000000Z.db.zst`);
    fs.writeFileSync(corrupt, spawnSync("zstd", ["-q", "-c"], { input: Buffer.from("not a database ".repeat(1000)) }).stdout);
    const run = script("mai-restore.sh", ["--yes", stack.slug("a"), corrupt]);
    fs.rmSync(corrupt);
    expect(run.code, run.output).toBe(5);
    expect(state()).toBe(before);
  }, 60_000);

  it("mai-restore stops and starts the real container, which is healthy on the restored data", async () => {
    sql("INSERT INTO backup_probe (v) VALUES ('after-backup');");
    const before = state();
    const run = script("mai-restore.sh", ["--yes", stack.slug("a"), backupFile]);
    expect(run.code, run.output).toBe(0);
    const after = state();
    expect(after.split(" ")[0]).toBe("true");
    expect(after).not.toBe(before); // stopped and started again: a new start time
    await answering();
    expect(sql("PRAGMA integrity_check;")).toBe("ok");
    expect(sql("SELECT count(*) FROM backup_probe WHERE v = 'before-backup';")).toBe("1");
    expect(sql("SELECT count(*) FROM backup_probe WHERE v = 'after-backup';")).toBe("0");
  }, 120_000);
});
