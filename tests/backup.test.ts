/**
 * The host backup and restore scripts, run for real: bash, the real sqlite3, zstd, flock and
 * rsync, on temp directories, with a recording stub in place of `docker` on PATH.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sql, startRowPairWriter } from "./support/liveDatabase";

const HOST_DIR = path.resolve(__dirname, "..", "host");
const BACKUP = path.join(HOST_DIR, "mai-backup.sh");
const RESTORE = path.join(HOST_DIR, "mai-restore.sh");
const HAS_SCRIPT = spawnSync("script", ["--version"]).status === 0;

/** Answers the few docker calls the scripts make from temp dirs, and logs every call. */
const FAKE_DOCKER = `#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$FAKE_DOCKER_LOG"
case "$1" in
  volume)
    name=\${!#}
    dir="$FAKE_DOCKER_VOLUMES/$name"
    [[ -d $dir ]] || { echo "Error: No such volume: $name" >&2; exit 1; }
    echo "$dir" ;;
  inspect)
    state=\${FAKE_DOCKER_RUNNING:-true}
    [[ $state == absent ]] && { echo "Error: No such object: \${!#}" >&2; exit 1; }
    echo "$state" ;;
  stop)
    if [[ -n \${FAKE_DOCKER_ON_STOP:-} ]]; then bash -c "$FAKE_DOCKER_ON_STOP" || exit 1; fi
    echo "\${!#}" ;;
  start) echo "\${!#}" ;;
  *) echo "fake docker: unexpected call: $*" >&2; exit 1 ;;
esac
`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let root: string;
let env: NodeJS.ProcessEnv;

function dataDir(slug: string): string {
  return path.join(root, "volumes", `mai-${slug}-data`);
}
function backupDir(slug: string): string {
  return path.join(root, "backups", slug);
}
function liveDb(slug: string): string {
  return path.join(dataDir(slug), "webui.db");
}

function run(file: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync("bash", [file, ...args], {
    env: { ...env, ...extraEnv },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"], // no terminal, like a timer or a script
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function dockerCalls(): string[] {
  const log = path.join(root, "docker.log");
  return fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n").filter(Boolean) : [];
}
function dockerVerbs(): string[] {
  return dockerCalls().map((line) => line.split(" ")[0]);
}

function sha256(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** A client database with `rows` rows in two tables that every write changes together. */
function makeClientDb(slug: string, rows: number, journalMode: "wal" | "delete" = "delete"): void {
  fs.mkdirSync(dataDir(slug), { recursive: true });
  sql(
    liveDb(slug),
    `PRAGMA journal_mode=${journalMode};
     CREATE TABLE a(id INTEGER PRIMARY KEY, payload BLOB);
     CREATE TABLE b(id INTEGER PRIMARY KEY);
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows})
       INSERT INTO a SELECT i, randomblob(1000) FROM n;
     INSERT INTO b SELECT id FROM a;`,
  );
}

/** The client's backup directory without the daily usage snapshots (`usage-YYYY-MM-DD.json`). */
function backupFiles(slug: string): string[] {
  if (!fs.existsSync(backupDir(slug))) return [];
  return fs.readdirSync(backupDir(slug)).filter((f) => !/^usage-\d{4}-\d{2}-\d{2}\.json$/.test(f)).sort();
}

function usageSnapshots(slug: string): string[] {
  if (!fs.existsSync(backupDir(slug))) return [];
  return fs.readdirSync(backupDir(slug)).filter((f) => /^usage-\d{4}-\d{2}-\d{2}\.json$/.test(f)).sort();
}

function stamp(daysAgo: number): string {
  const d = new Date(Date.now() - daysAgo * 86_400_000);
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z");
}

function writeConfig(name: "backup.env" | "backup.local.env", text: string): void {
  fs.writeFileSync(path.join(root, "config", name), text);
}

function decompressTo(backup: string, target: string): void {
  const r = spawnSync("zstd", ["-q", "-d", "-f", backup, "-o", target]);
  if (r.status !== 0) throw new Error(`zstd: ${r.stderr}`);
}

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "mai-backup-test-"));
  for (const dir of ["bin", "volumes", "backups", "lock", "config"]) fs.mkdirSync(path.join(root, dir));
  fs.writeFileSync(path.join(root, "bin", "docker"), FAKE_DOCKER, { mode: 0o755 });
  env = {
    ...process.env,
    PATH: `${path.join(root, "bin")}:${process.env.PATH}`,
    MAI_BACKUP_ROOT: path.join(root, "backups"),
    MAI_LOCK_DIR: path.join(root, "lock"),
    MAI_CONFIG_DIR: path.join(root, "config"),
    MAI_STATE_DIR: path.join(root, "state"),
    FAKE_DOCKER_LOG: path.join(root, "docker.log"),
    FAKE_DOCKER_VOLUMES: path.join(root, "volumes"),
  };
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe("mai-backup", () => {
  it("writes one compressed, time-named backup that holds the database", () => {
    makeClientDb("acme", 50);
    const r = run(BACKUP, ["acme"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const files = backupFiles("acme");
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^acme-\d{8}T\d{6}Z\.db\.zst$/);
    expect(r.stdout).toContain(`wrote ${path.join(backupDir("acme"), files[0])}`);
    expect(r.stdout).toMatch(/^acme: /m);
    expect(fs.statSync(path.join(backupDir("acme"), files[0])).mode & 0o777).toBe(0o640);
    const copy = path.join(root, "copy.db");
    decompressTo(path.join(backupDir("acme"), files[0]), copy);
    expect(sql(copy, "PRAGMA integrity_check; PRAGMA journal_mode; SELECT count(*) FROM a;")).toBe("ok\ndelete\n50");
    expect(dockerCalls()).toEqual(["volume inspect -f {{.Mountpoint}} mai-acme-data"]);
  });

  it("writes the day's usage snapshot for the invoice: active users (pending excluded), volume and database bytes", () => {
    makeClientDb("acme", 5);
    // Open WebUI's user table: 'pending' is a sign-up the client's admin has not approved yet.
    sql(
      liveDb("acme"),
      `CREATE TABLE user(id TEXT PRIMARY KEY, name TEXT, email TEXT, role TEXT);
       INSERT INTO user VALUES ('1', 'Ada', 'ada@acme.test', 'admin'), ('2', 'Bo', 'bo@acme.test', 'user'),
         ('3', 'Cy', 'cy@acme.test', 'user'), ('4', 'Di', 'di@acme.test', 'pending');`,
    );
    fs.mkdirSync(path.join(dataDir("acme"), "uploads"));
    fs.writeFileSync(path.join(dataDir("acme"), "uploads", "report.pdf"), Buffer.alloc(50_000, 1));
    const r = run(BACKUP, ["acme"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const today = new Date().toISOString().slice(0, 10);
    expect(usageSnapshots("acme")).toEqual([`usage-${today}.json`]);
    const snapshot = JSON.parse(fs.readFileSync(path.join(backupDir("acme"), `usage-${today}.json`), "utf8"));
    expect(snapshot).toMatchObject({ slug: "acme", activeUsers: 3, databaseBytes: fs.statSync(liveDb("acme")).size });
    expect(snapshot.volumeBytes).toBeGreaterThan(50_000 + snapshot.databaseBytes - 1);
    expect(snapshot.takenAt.slice(0, 10)).toBe(today);

    // A second run the same day replaces the day's snapshot; a database without users reports null.
    sql(liveDb("acme"), "DELETE FROM user WHERE id = '3';");
    expect(run(BACKUP, ["acme"]).code).toBe(0);
    expect(usageSnapshots("acme")).toHaveLength(1);
    expect(JSON.parse(fs.readFileSync(path.join(backupDir("acme"), `usage-${today}.json`), "utf8")).activeUsers).toBe(2);
    makeClientDb("beta", 1);
    expect(run(BACKUP, ["beta"]).code).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(backupDir("beta"), `usage-${today}.json`), "utf8")).activeUsers).toBeNull();
  });

  it("names a missing volume, a missing database and a bad slug with distinct exit codes", () => {
    expect(run(BACKUP, ["ghost"])).toMatchObject({ code: 4, stderr: expect.stringContaining("volume mai-ghost-data not found") });
    fs.mkdirSync(dataDir("empty"), { recursive: true });
    expect(run(BACKUP, ["empty"])).toMatchObject({ code: 4, stderr: expect.stringContaining("no database at") });
    expect(run(BACKUP, ["../etc"])).toMatchObject({ code: 2, stderr: expect.stringContaining("not a client slug") });
    expect(run(BACKUP, [])).toMatchObject({ code: 2 });
    expect(backupFiles("ghost")).toEqual([]);
  });

  it("fails cleanly when the backup disk fills up while compressing: the cause in its message and record, nothing kept, older backups intact", () => {
    makeClientDb("acme", 50);
    expect(run(BACKUP, ["acme"]).code).toBe(0);
    const before = backupFiles("acme");
    const sums = before.map((f) => sha256(path.join(backupDir("acme"), f)));
    // zstd as it fails on a full disk: part of the output written, then ENOSPC (its message as
    // seen on a full tmpfs); every other use of zstd is the real one.
    const realZstd = spawnSync("bash", ["-c", "command -v zstd"], { encoding: "utf8" }).stdout.trim();
    fs.writeFileSync(
      path.join(root, "bin", "zstd"),
      `#!/usr/bin/env bash
prev=
for arg in "$@"; do
  if [[ $prev == -o ]]; then
    head -c 4096 /dev/urandom > "$arg"
    echo "zstd: error 70 : Write error : cannot write block : No space left on device " >&2
    exit 70
  fi
  prev=$arg
done
exec ${realZstd} "$@"
`,
      { mode: 0o755 },
    );
    const r = run(BACKUP, ["acme"]);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain("zstd compression failed: zstd: error 70 : Write error : cannot write block : No space left on device");
    expect(r.stderr).toContain("nothing kept");
    // Nothing new in the directory (no partial file, no work directory), the older backup unchanged.
    expect(backupFiles("acme")).toEqual(before);
    expect(before.map((f) => sha256(path.join(backupDir("acme"), f)))).toEqual(sums);
    const record = JSON.parse(fs.readFileSync(path.join(root, "state", "backup", "acme.json"), "utf8"));
    expect(record).toMatchObject({ result: "failed", exitCode: 5, file: null });
    expect(record.message).toContain("No space left on device");
    // What a restore would take: the older backup, nothing else.
    expect(run(RESTORE, ["acme"]).stdout.split("\n").filter((line) => /^acme-\d{8}T\d{6}Z\.db\.zst$/.test(line))).toEqual(before);
  });

  it.each(["wal", "delete"] as const)(
    "takes a consistent, restorable backup while another process keeps writing (%s journal)",
    async (journalMode) => {
      makeClientDb("acme", 20_000, journalMode);
      const db = liveDb("acme");
      const writer = startRowPairWriter({ db, env, stopFile: path.join(root, "stop-writer"), payloadBytes: 1000 });
      const { rowsNow, waitForRows } = writer;
      await waitForRows(20_010);

      const before = rowsNow();
      const backup = await new Promise<Run>((resolve) => {
        const child = spawn("bash", [BACKUP, "acme"], { env });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        child.on("exit", (code) => resolve({ code, stdout, stderr }));
      });
      const after = rowsNow();
      await waitForRows(after + 5); // the writer is still alive and well after the backup
      expect(await writer.stop()).toBe(0);

      expect(backup.stderr).toBe("");
      expect(backup.code).toBe(0);
      expect(after).toBeGreaterThan(before); // writes really happened while the backup ran

      const restored = run(RESTORE, ["--yes", "acme", "latest"]);
      expect(restored.stderr).toBe("");
      expect(restored.code).toBe(0);
      const [integrity, countA, countB, maxA, sameIds] = sql(
        db,
        `PRAGMA integrity_check;
         SELECT count(*) FROM a; SELECT count(*) FROM b; SELECT max(id) FROM a;
         SELECT count(*) FROM a JOIN b USING (id);`,
      ).split("\n");
      expect(integrity).toBe("ok");
      expect(Number(countA)).toBe(Number(maxA)); // ids 1..n without a gap
      expect(countB).toBe(countA);
      expect(sameIds).toBe(countA);
      expect(Number(countA)).toBeGreaterThanOrEqual(before);
      expect(Number(countA)).toBeLessThanOrEqual(after);
    },
  );

  it("prunes only this client's own backups older than the retention", () => {
    makeClientDb("acme", 10);
    fs.mkdirSync(backupDir("acme"), { recursive: true });
    fs.mkdirSync(backupDir("other"), { recursive: true });
    const old = stamp(40);
    const files = {
      oldZst: `acme-${old}.db.zst`,
      oldGz: `acme-${stamp(31)}.db.gz`,
      recent: `acme-${stamp(29)}.db.zst`,
      yesterday: `acme-${stamp(1)}.db.zst`,
      otherSlugHere: `acme-eu-${old}.db.zst`,
      keepSuffix: `acme-${old}.db.zst.keep`,
      manual: "acme-before-migration.db.zst",
      notes: "notes.txt",
    };
    for (const name of Object.values(files)) {
      const file = path.join(backupDir("acme"), name);
      fs.writeFileSync(file, "x");
      const oldTime = new Date(Date.now() - 90 * 86_400_000);
      fs.utimesSync(file, oldTime, oldTime); // retention goes by the name, not the mtime
    }
    const otherClient = path.join(backupDir("other"), `other-${old}.db.zst`);
    fs.writeFileSync(otherClient, "x");
    writeConfig("backup.env", "RETENTION_DAYS=30\n");

    const r = run(BACKUP, ["acme"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const left = backupFiles("acme");
    expect(left).not.toContain(files.oldZst);
    expect(left).not.toContain(files.oldGz);
    for (const kept of [files.recent, files.yesterday, files.otherSlugHere, files.keepSuffix, files.manual, files.notes]) {
      expect(left).toContain(kept);
    }
    expect(left.filter((f) => /^acme-\d{8}T\d{6}Z\.db\.zst$/.test(f))).toHaveLength(3); // 29d, 1d, new
    expect(fs.existsSync(otherClient)).toBe(true);
    expect(r.stdout).toContain(`pruned ${files.oldZst}`);
    expect(r.stdout).toContain("retention 30 days: pruned 2");
  });

  it("refuses a malformed retention before touching anything", () => {
    makeClientDb("acme", 10);
    writeConfig("backup.env", "RETENTION_DAYS=0\n");
    const r = run(BACKUP, ["acme"]);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain("RETENTION_DAYS must be a whole number of days >= 1 (got '0')");
    expect(backupFiles("acme")).toEqual([]);
  });

  it("never overlaps another run for the same client", () => {
    makeClientDb("acme", 10);
    makeClientDb("beta", 10);
    const lockFile = path.join(root, "lock", "mai-backup-acme.lock");
    const holder = spawn("flock", [lockFile, "sleep", "30"], { stdio: "ignore" });
    try {
      for (let i = 0; i < 200 && spawnSync("flock", ["-n", lockFile, "true"]).status === 0; i++) {
        spawnSync("sleep", ["0.01"]);
      }
      const started = Date.now();
      const r = run(BACKUP, ["acme"]);
      expect(r.code).toBe(7);
      expect(r.stderr).toContain("another backup, restore, export or import of 'acme' is running");
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(backupFiles("acme")).toEqual([]);
      const restore = run(RESTORE, ["--yes", "acme", "latest"]);
      expect(restore.code).toBe(4); // no backup yet: refused before the lock
      expect(run(BACKUP, ["beta"]).code).toBe(0); // other clients are not held up
    } finally {
      holder.kill();
    }
  });

  it("copies the client's backups off the host when a target is configured", () => {
    makeClientDb("acme", 10);
    const offsite = path.join(root, "offsite");
    fs.mkdirSync(offsite);
    writeConfig("backup.local.env", `OFFSITE_TARGET=${offsite}\n`);
    fs.mkdirSync(backupDir("acme"), { recursive: true });
    fs.writeFileSync(path.join(backupDir("acme"), "notes.txt"), "not a backup");
    const r = run(BACKUP, ["acme"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const local = backupFiles("acme").filter((f) => f.endsWith(".db.zst"));
    expect(fs.readdirSync(path.join(offsite, "acme")).sort()).toEqual([...local, ...usageSnapshots("acme")].sort());
    expect(r.stdout).toContain(`copied backups of 'acme' to ${offsite}/acme/`);
  });

  it("counts and copies off the host only this client's backups, not those of a client whose slug starts with its own", () => {
    makeClientDb("acme", 10);
    makeClientDb("acme-corp", 10);
    const offsite = path.join(root, "offsite");
    fs.mkdirSync(offsite);
    writeConfig("backup.local.env", `OFFSITE_TARGET=${offsite}\n`);
    for (const slug of ["acme", "acme-corp"]) fs.mkdirSync(backupDir(slug), { recursive: true });
    const yesterday = stamp(1);
    fs.writeFileSync(path.join(backupDir("acme"), `acme-${yesterday}.db.zst`), "acme's");
    fs.writeFileSync(path.join(backupDir("acme-corp"), `acme-corp-${yesterday}.db.zst`), "acme-corp's");
    // A copy of acme-corp's backup left in acme's folder by hand, and a hand-named file.
    fs.writeFileSync(path.join(backupDir("acme"), `acme-corp-${yesterday}.db.zst`), "acme-corp's");
    fs.writeFileSync(path.join(backupDir("acme"), "acme-before-migration.db.zst"), "by hand");

    const r = run(BACKUP, ["acme"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("retention 30 days: pruned 0, kept 2"); // yesterday's and the new one
    const copied = fs.readdirSync(path.join(offsite, "acme")).filter((f) => f.endsWith(".db.zst"));
    expect(copied).toHaveLength(2);
    for (const file of copied) expect(file).toMatch(/^acme-\d{8}T\d{6}Z\.db\.zst$/);

    const corp = run(BACKUP, ["acme-corp"]);
    expect(corp.code).toBe(0);
    expect(corp.stdout).toContain("kept 2");
    for (const file of fs.readdirSync(path.join(offsite, "acme-corp")).filter((f) => f.endsWith(".db.zst"))) {
      expect(file).toMatch(/^acme-corp-\d{8}T\d{6}Z\.db\.zst$/);
    }
    expect(fs.readFileSync(path.join(backupDir("acme"), `acme-${yesterday}.db.zst`), "utf8")).toBe("acme's");
  });

  it("keeps the local backup and exits 3 when the off-host copy fails", () => {
    makeClientDb("acme", 10);
    writeConfig("backup.local.env", `OFFSITE_TARGET=${path.join(root, "missing", "parent")}\n`);
    const r = run(BACKUP, ["acme"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("off-host copy to");
    expect(r.stderr).toContain("the local backup is kept");
    expect(backupFiles("acme")).toHaveLength(1);
  });
});

describe("mai-restore", () => {
  /** acme with a live database of `liveRows` rows and one backup of `backupRows` rows. */
  function clientWithBackup(backupRows: number, liveRows: number): string {
    makeClientDb("acme", backupRows);
    expect(run(BACKUP, ["acme"]).code).toBe(0);
    fs.rmSync(liveDb("acme"));
    makeClientDb("acme", liveRows);
    fs.rmSync(path.join(root, "docker.log"));
    return path.join(backupDir("acme"), backupFiles("acme")[0]);
  }

  function stagedLeftovers(): string[] {
    return fs.readdirSync(dataDir("acme")).filter((f) => f.includes(".restore."));
  }

  it("restores the latest backup, keeping the current database and its WAL aside", async () => {
    clientWithBackup(3, 3);
    // Freeze the live database as a crashed app leaves it: two committed rows only in the -wal.
    const scratch = path.join(root, "scratch");
    fs.mkdirSync(scratch);
    const scratchDb = path.join(scratch, "webui.db");
    fs.copyFileSync(liveDb("acme"), scratchDb);
    const holder = spawn("sqlite3", ["-init", "/dev/null", scratchDb], { stdio: ["pipe", "pipe", "inherit"] });
    let out = "";
    holder.stdout!.on("data", (d) => (out += d));
    holder.stdin!.write(
      "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;\n" +
        "INSERT INTO a VALUES(4, x'00'); INSERT INTO b VALUES(4);\n" +
        "INSERT INTO a VALUES(5, x'00'); INSERT INTO b VALUES(5);\nSELECT 'ready';\n",
    );
    for (let i = 0; i < 500 && !out.includes("ready"); i++) await new Promise((r) => setTimeout(r, 10));
    for (const suffix of ["", "-wal", "-shm"]) fs.copyFileSync(scratchDb + suffix, liveDb("acme") + suffix);
    holder.stdin!.end();
    expect(sql(`file:${liveDb("acme")}?mode=ro`, "SELECT count(*) FROM b;")).toBe("5");

    const r = run(RESTORE, ["--yes", "acme", "latest"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(dockerVerbs()).toEqual(["volume", "inspect", "stop", "start"]);
    expect(dockerCalls()).toContain("stop -t 60 mai-acme");
    expect(dockerCalls()).toContain("start mai-acme");

    // The restored database is the backup, not the backup with the old WAL replayed into it.
    expect(sql(liveDb("acme"), "PRAGMA integrity_check; SELECT count(*) FROM b;")).toBe("ok\n3");
    const aside = fs.readdirSync(dataDir("acme")).filter((f) => f.startsWith("webui.db.pre-restore-"));
    const asideDb = aside.find((f) => /^webui\.db\.pre-restore-\d{8}T\d{6}Z$/.test(f))!;
    expect(aside.sort()).toEqual([asideDb, `${asideDb}-shm`, `${asideDb}-wal`]);
    expect(sql(path.join(dataDir("acme"), asideDb), "SELECT count(*) FROM b;")).toBe("5"); // nothing lost
    expect(stagedLeftovers()).toEqual([]);
    expect(r.stdout).toContain(`kept the current database as ${path.join(dataDir("acme"), asideDb)}`);

    // Undo: the kept-aside file restores like a backup, rows from its -wal included.
    const undo = run(RESTORE, ["--yes", "acme", path.join(dataDir("acme"), asideDb)]);
    expect(undo.stderr).toBe("");
    expect(undo.code).toBe(0);
    expect(sql(liveDb("acme"), "PRAGMA integrity_check; SELECT count(*) FROM b;")).toBe("ok\n5");
  });

  it("restores a gzip backup of the former cron jobs", () => {
    const backup = clientWithBackup(4, 7);
    const raw = path.join(root, "legacy.db");
    decompressTo(backup, raw);
    const legacy = path.join(root, "acme-legacy.db.gz");
    spawnSync("bash", ["-c", `gzip -c "${raw}" > "${legacy}"`]);
    const r = run(RESTORE, ["--yes", "acme", legacy]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(sql(liveDb("acme"), "SELECT count(*) FROM b;")).toBe("4");
  });

  it.each([
    ["a truncated file", (file: string) => fs.truncateSync(file, 20)],
    ["not a database", (file: string) => spawnSync("bash", ["-c", `head -c 8192 /dev/urandom | zstd -q -f -o "${file}"`])],
    [
      "damaged pages",
      (file: string) => {
        const db = path.join(path.dirname(file), "damaged.db");
        decompressTo(file, db);
        const fd = fs.openSync(db, "r+");
        fs.writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 4096 * 3);
        fs.closeSync(fd);
        spawnSync("zstd", ["-q", "-f", db, "-o", file]);
        fs.rmSync(db);
      },
    ],
    [
      "an empty database",
      (file: string) => spawnSync("bash", ["-c", `: > "${file}.raw" && zstd -q -f --rm "${file}.raw" -o "${file}"`]),
    ],
  ])("refuses a corrupt backup (%s) before stopping anything", (_label, corrupt) => {
    const backup = clientWithBackup(200, 7);
    corrupt(backup);
    const before = sha256(liveDb("acme"));
    const r = run(RESTORE, ["--yes", "acme", path.basename(backup)]);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/nothing changed/);
    expect(dockerVerbs()).not.toContain("stop");
    expect(dockerVerbs()).not.toContain("start");
    expect(sha256(liveDb("acme"))).toBe(before);
    expect(fs.readdirSync(dataDir("acme"))).toEqual(["webui.db"]);
  });

  it("puts the previous database back and restarts the container when the swap fails after the stop", () => {
    clientWithBackup(3, 7);
    fs.writeFileSync(liveDb("acme") + "-wal", ""); // an idle WAL travels with its database
    const before = sha256(liveDb("acme"));
    const r = run(RESTORE, ["--yes", "acme", "latest"], {
      // The staged copy gets damaged while the container stops: the check in place must catch it.
      FAKE_DOCKER_ON_STOP: `for f in "${dataDir("acme")}"/.webui.db.restore.*; do : > "$f"; done`,
    });
    expect(r.code).toBe(8);
    expect(r.stderr).toContain("the restored database failed verification in place");
    expect(r.stdout).toContain("rolled back: the previous database is in place again");
    expect(dockerVerbs()).toEqual(["volume", "inspect", "stop", "start"]);
    expect(sha256(liveDb("acme"))).toBe(before);
    expect(sql(liveDb("acme"), "SELECT count(*) FROM b;")).toBe("7");
    expect(fs.readdirSync(dataDir("acme")).sort()).toEqual(["webui.db", "webui.db-wal"]);
  });

  it("starts the container again when stopping it fails, and changes nothing", () => {
    clientWithBackup(3, 7);
    const before = sha256(liveDb("acme"));
    const r = run(RESTORE, ["--yes", "acme", "latest"], { FAKE_DOCKER_ON_STOP: "exit 1" });
    expect(r.code).toBe(8);
    expect(r.stderr).toContain("could not stop mai-acme; nothing changed");
    expect(dockerVerbs()).toEqual(["volume", "inspect", "stop", "start"]);
    expect(sha256(liveDb("acme"))).toBe(before);
    expect(fs.readdirSync(dataDir("acme"))).toEqual(["webui.db"]);
  });

  it("restores a suspended client (no container) without stopping or starting anything", () => {
    clientWithBackup(3, 7);
    const r = run(RESTORE, ["--yes", "acme", "latest"], { FAKE_DOCKER_RUNNING: "absent" });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("is not running (absent)");
    expect(dockerVerbs()).toEqual(["volume", "inspect"]);
    expect(sql(liveDb("acme"), "SELECT count(*) FROM b;")).toBe("3");
  });

  it("does nothing without --yes when there is no terminal", () => {
    clientWithBackup(3, 7);
    const before = sha256(liveDb("acme"));
    const r = run(RESTORE, ["acme", "latest"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("pass --yes when not running on a terminal; nothing changed");
    expect(dockerVerbs()).not.toContain("stop");
    expect(sha256(liveDb("acme"))).toBe(before);
    expect(stagedLeftovers()).toEqual([]);
  });

  it("refuses another client's backup and a missing file", () => {
    clientWithBackup(3, 7);
    fs.mkdirSync(backupDir("beta"), { recursive: true });
    const foreign = path.join(backupDir("beta"), `beta-${stamp(0)}.db.zst`);
    fs.copyFileSync(path.join(backupDir("acme"), backupFiles("acme")[0]), foreign);
    const r = run(RESTORE, ["--yes", "acme", foreign]);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain("is a backup of client 'beta', not 'acme'");
    expect(run(RESTORE, ["--yes", "acme", "acme-19990101T000000Z.db.zst"]).code).toBe(4);
    expect(dockerVerbs()).not.toContain("stop");
  });

  it("keeps every earlier database aside when restoring twice in a row", () => {
    clientWithBackup(3, 7);
    expect(run(RESTORE, ["--yes", "acme", "latest"]).code).toBe(0);
    sql(liveDb("acme"), "INSERT INTO b VALUES(100);"); // work done after the first restore
    expect(run(RESTORE, ["--yes", "acme", "latest"]).code).toBe(0);
    const aside = fs.readdirSync(dataDir("acme")).filter((f) => f.startsWith("webui.db.pre-restore-")).sort();
    expect(aside).toHaveLength(2);
    expect(aside.map((f) => sql(path.join(dataDir("acme"), f), "SELECT count(*) FROM b;"))).toEqual(["7", "4"]);
  });

  it.skipIf(HAS_SCRIPT === false)("works for an operator on a terminal: asks for the slug before stopping", () => {
    clientWithBackup(3, 7);
    // script(1) gives the scripts a real terminal, where sqlite3 would print banners.
    const onTerminal = (commandLine: string, answer: string) =>
      spawnSync("script", ["-qec", commandLine, "/dev/null"], { env, encoding: "utf8", input: `${answer}\n` });
    const backup = onTerminal(`bash ${BACKUP} acme`, "");
    expect(backup.stdout).toContain("integrity ok");
    expect(backup.status).toBe(0);

    const declined = onTerminal(`bash ${RESTORE} acme latest`, "beta");
    expect(declined.stdout).toContain("Type the slug to confirm");
    expect(declined.stdout).toContain("not confirmed; nothing changed");
    expect(declined.status).toBe(2);
    expect(dockerVerbs()).not.toContain("stop");

    const confirmed = onTerminal(`bash ${RESTORE} acme latest`, "acme");
    expect(confirmed.stdout).toContain("restored");
    expect(confirmed.status).toBe(0);
    expect(dockerVerbs()).toContain("stop");
    expect(sql(liveDb("acme"), "SELECT count(*) FROM b;")).toBe("7"); // the newest backup was of the 7-row db
  });

  it("lists the client's backups when no backup is named", () => {
    clientWithBackup(3, 7);
    const r = run(RESTORE, ["acme"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(backupFiles("acme")[0]);
  });
});
