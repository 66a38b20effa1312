/**
 * Real engine, real `pulumi up`: mai-export and mai-import as the stack installs them on the server
 * (`<stateDir>/bin`, run through the server's exported shell prefix), on two client containers it
 * deployed. The source workspace writes to its WAL database all the time and is exported while it
 * runs; the archive is imported into the other running client, which must come back healthy with
 * the same users, chats and files. The nightly backup's usage snapshot is checked on the imported
 * database too.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { LOCAL_WORKSPACE_IMAGE } from "../policy/localImages";
import { localHostPaths } from "../policy/localHost";
import { answering, runHostTool } from "./support/deployedHost";
import { docker, newRunId } from "./support/engine";
import { useRealEngineSuite } from "./support/testEngine";

const suite = useRealEngineSuite({
  runId: newRunId(),
  clients: [
    // A heartbeat every 50 ms: the export always meets a database being written to.
    { key: "src", yaml: 'name: Source GmbH\nenv:\n  STANDIN_HEARTBEAT_SECONDS: "0.05"\n' },
    { key: "dst", yaml: "name: Target AG\n" },
  ],
  ready: async ({ stack }) => {
    await Promise.all([answering(stack, "src"), answering(stack, "dst")]);
  },
});
const stack = () => suite.stack;
const source = () => stack().slug("src");
const target = () => stack().slug("dst");

/** Calls the stand-in's API from inside its container. */
async function api(key: string, method: "GET" | "POST", pathAndQuery: string, input = ""): Promise<any> {
  const body = input ? `${input} | curl -fsS -X ${method} --data-binary @- ` : `curl -fsS -X ${method} `;
  return JSON.parse(await docker(["exec", stack().container(key), "sh", "-c", `${body}'http://127.0.0.1:8080${pathAndQuery}'`]));
}

const volumeDir = (slug: string) => docker(["volume", "inspect", "-f", "{{.Mountpoint}}", `mai-${slug}-data`]);
const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

function sql(db: string, statement: string): string {
  const r = spawnSync("sqlite3", ["-init", "/dev/null", "-bail", "-cmd", ".timeout 20000", db, statement], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`sqlite3 ${db}: ${r.stderr}`);
  return r.stdout.trim();
}

describe("export and import against the deployed containers", () => {
  it("exports a running workspace that keeps writing and imports it into another running workspace", async () => {
    const paths = localHostPaths(stack().stateDir());
    expect((await api("src", "POST", "/api/signup?email=ada@source.test")).role).toBe("admin");
    expect((await api("src", "POST", "/api/signup?email=bo@source.test")).role).toBe("pending");
    for (const title of ["q3 plan", "hiring", "budget"]) await api("src", "POST", "/api/write", `printf '${title}'`);
    expect((await api("src", "POST", "/api/upload?name=report.bin", "head -c 300000 /dev/urandom")).bytes).toBe(300000);
    await api("dst", "POST", "/api/signup?email=someone@target.test");
    const sourceBefore = await docker(["inspect", "-f", "{{.Id}} {{.State.StartedAt}}", stack().container("src")]);
    const targetId = await docker(["inspect", "-f", "{{.Id}}", stack().container("dst")]);

    const beatsBefore = (await api("src", "GET", "/api/stats")).heartbeats;
    // No archive path: the stack's export directory on the server (MAI_EXPORT_ROOT of its shell).
    const exported = await runHostTool(stack(), "mai-export", [source()]);
    expect(exported.stderr).toBe("");
    expect(exported.code, exported.output).toBe(0);
    const exportsDir = path.join(paths.stateDir, "exports");
    const archives = fs.readdirSync(exportsDir).filter((f) => f.startsWith(`${source()}-`) && f.endsWith(".tar.zst"));
    expect(archives).toHaveLength(1);
    const archive = path.join(exportsDir, archives[0]);
    await new Promise((r) => setTimeout(r, 300));
    expect((await api("src", "GET", "/api/stats")).heartbeats).toBeGreaterThan(beatsBefore); // it kept writing, and still does
    // The running workspace was only read: same container, same start time, still answering.
    expect(await docker(["inspect", "-f", "{{.Id}} {{.State.StartedAt}}", stack().container("src")])).toBe(sourceBefore);
    await answering(stack(), "src", 5_000);

    const manifest = JSON.parse(spawnSync("bash", ["-c", 'zstd -q -d -c "$1" | tar -x -O -f - manifest.json', "-", archive], { encoding: "utf8" }).stdout);
    expect(manifest).toMatchObject({ slug: source(), name: "Source GmbH", image: LOCAL_WORKSPACE_IMAGE });
    expect(manifest.files.map((f: { path: string }) => f.path)).toEqual(["data/uploads/report.bin", "data/webui.db"]);
    const exportedDb = path.join(stack().dir, "exported.db");
    expect(spawnSync("bash", ["-c", 'zstd -q -d -c "$1" | tar -x -O -f - data/webui.db > "$2"', "-", archive, exportedDb]).status).toBe(0);
    const exportedBeats = Number(sql(exportedDb, "SELECT count(*) FROM heartbeat;"));
    expect(exportedBeats).toBeGreaterThanOrEqual(beatsBefore);

    const imported = await runHostTool(stack(), "mai-import", ["--yes", "--from", source(), target(), archive]);
    expect(imported.stderr).toBe("");
    expect(imported.code, imported.output).toBe(0);
    expect(imported.stdout).toContain(`stopping ${stack().container("dst")}`);
    expect(imported.stdout).toContain(`${stack().container("dst")} is healthy`);
    // The stack's own target container, started again on the imported data.
    expect(await docker(["inspect", "-f", "{{.Id}} {{.State.Running}}", stack().container("dst")])).toBe(`${targetId} true`);

    // The target serves the source's data: same users and chats (through its own API), same file.
    const stats = await api("dst", "GET", "/api/stats");
    expect(stats).toMatchObject({ users: 2, chats: 3, journal_mode: "wal" });
    expect(stats.heartbeats).toBeGreaterThanOrEqual(exportedBeats);
    const targetDir = await volumeDir(target());
    expect(sha256(path.join(targetDir, "uploads", "report.bin"))).toBe(sha256(path.join(await volumeDir(source()), "uploads", "report.bin")));
    const db = path.join(targetDir, "webui.db");
    expect(sql(db, "PRAGMA integrity_check;")).toBe("ok");
    expect(sql(db, "SELECT email || ':' || role FROM user ORDER BY email;")).toBe("ada@source.test:admin\nbo@source.test:pending");
    expect(sql(db, "SELECT group_concat(title, ',') FROM (SELECT title FROM chat ORDER BY title);")).toBe("budget,hiring,q3 plan");
    // The target's own data is kept aside.
    const aside = fs.readdirSync(targetDir).filter((f) => f.startsWith("mai-pre-import-"));
    expect(aside).toHaveLength(1);
    expect(sql(path.join(targetDir, aside[0], "webui.db"), "SELECT email FROM user;")).toBe("someone@target.test");

    // The nightly backup of the imported client counts its active users for the invoice: the pending one is not.
    const backup = await runHostTool(stack(), "mai-backup", [target()]);
    expect(backup.stderr).toBe("");
    expect(backup.code, backup.output).toBe(0);
    const backups = path.join(paths.backupsDir, target());
    const snapshotFile = fs.readdirSync(backups).find((f) => f.startsWith("usage-"));
    expect(snapshotFile, `no usage snapshot in ${backups}`).toBeDefined();
    expect(JSON.parse(fs.readFileSync(path.join(backups, snapshotFile!), "utf8")).activeUsers).toBe(1);
  }, 300_000);
});
