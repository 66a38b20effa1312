/**
 * Real engine, real `pulumi up`: the backup tools the stack installs on the server
 * (`<stateDir>/bin`, run through the server's exported shell prefix) against the client container
 * it deployed. `mai-backup` takes a consistent backup of a workspace that keeps writing;
 * `mai-restore` stops and starts that very container, which is healthy on the restored data; a
 * corrupt backup is refused before anything stops.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { localHostPaths } from "../policy/localHost";
import { answering, runHostTool } from "./support/deployedHost";
import { docker, newRunId } from "./support/engine";
import { useRealEngineSuite } from "./support/testEngine";

const suite = useRealEngineSuite({
  runId: newRunId(),
  clients: [{ key: "a" }],
  ready: async ({ stack }) => {
    await answering(stack, "a");
    await sql("CREATE TABLE IF NOT EXISTS backup_probe (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO backup_probe (v) VALUES ('before-backup');");
    // A second writer inside the container, on top of the workspace's own: rows keep arriving
    // during the backup. It ends with the container.
    await docker(["exec", "-d", container(), "sh", "-c", "while :; do sqlite3 -cmd '.timeout 20000' /app/backend/data/webui.db \"INSERT INTO backup_probe (v) VALUES ('busy')\"; sleep 0.02; done"]);
  },
});
const stack = () => suite.stack;

const slug = () => stack().slug("a");
const container = () => stack().container("a");
const paths = () => localHostPaths(stack().stateDir());
const backupsOf = () => path.join(paths().backupsDir, slug());
const state = () => docker(["inspect", "-f", "{{.Id}} {{.State.Running}} {{.State.StartedAt}}", container()]);
const sql = (statement: string) => docker(["exec", container(), "sqlite3", "-cmd", ".timeout 20000", "/app/backend/data/webui.db", statement]);

describe("backup and restore against the deployed container", () => {
  let backupFile: string;

  it("mai-backup takes a verified backup while the workspace keeps writing", async () => {
    const rowsBefore = Number(await sql("SELECT count(*) FROM backup_probe;"));
    const run = await runHostTool(stack(), "mai-backup", [slug()]);
    expect(run.code, run.output).toBe(0);
    const rowsAfter = Number(await sql("SELECT count(*) FROM backup_probe;"));
    expect(rowsAfter).toBeGreaterThan(rowsBefore); // the writer really was writing
    const files = fs.readdirSync(backupsOf()).filter((f) => f.endsWith(".db.zst"));
    expect(files).toHaveLength(1);
    backupFile = path.join(backupsOf(), files[0]);
    const copy = path.join(stack().dir, "check.db");
    expect(spawnSync("zstd", ["-q", "-d", "-f", backupFile, "-o", copy]).status).toBe(0);
    const check = spawnSync("sqlite3", ["-init", "/dev/null", copy, "PRAGMA integrity_check; SELECT v FROM backup_probe ORDER BY id LIMIT 1;"], { encoding: "utf8" });
    expect(check.stdout.trim().split("\n")).toEqual(["ok", "before-backup"]);
    // The run's record, where the status tools read it.
    const record = JSON.parse(fs.readFileSync(path.join(paths().stateDir, "backup", `${slug()}.json`), "utf8"));
    expect(record).toMatchObject({ result: "ok", exitCode: 0, file: files[0] });
    // The container sees its own backups where the stack mounts them.
    expect((await docker(["exec", container(), "ls", "/app/backups"])).split("\n")).toContain(files[0]);
  }, 180_000);

  it("a corrupt backup is refused before the container is stopped", async () => {
    const before = await state();
    const corrupt = path.join(backupsOf(), `${slug()}-20990101T000000Z.db.zst`);
    fs.writeFileSync(corrupt, spawnSync("zstd", ["-q", "-c"], { input: Buffer.from("not a database ".repeat(1000)) }).stdout);
    try {
      const run = await runHostTool(stack(), "mai-restore", ["--yes", slug(), corrupt]);
      expect(run.code, run.output).toBe(5);
    } finally {
      fs.rmSync(corrupt, { force: true });
    }
    expect(await state()).toBe(before);
  }, 180_000);

  it("mai-restore stops and starts the deployed container, which is healthy on the restored data", async () => {
    expect(backupFile, "the backup test above produced no backup").toBeDefined();
    await sql("INSERT INTO backup_probe (v) VALUES ('after-backup');");
    const [id, , started] = (await state()).split(" ");
    const run = await runHostTool(stack(), "mai-restore", ["--yes", slug(), backupFile]);
    expect(run.code, run.output).toBe(0);
    const [idAfter, running, startedAfter] = (await state()).split(" ");
    // The stack's own container, stopped and started again: same id, a new start time.
    expect({ id: idAfter, running, restarted: startedAfter !== started }).toEqual({ id, running: "true", restarted: true });
    await answering(stack(), "a");
    expect(await sql("PRAGMA integrity_check;")).toBe("ok");
    expect(await sql("SELECT count(*) FROM backup_probe WHERE v = 'before-backup';")).toBe("1");
    expect(await sql("SELECT count(*) FROM backup_probe WHERE v = 'after-backup';")).toBe("0");
  }, 180_000);
});
