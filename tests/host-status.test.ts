/**
 * The host's operator tools run for real: bash, jq, sqlite3, openssl, curl, on temp directories,
 * with a stand-in `docker` on PATH that answers from files. mai-backup's run record, what
 * mai-status makes of backup files, timers and certificates, the sampler's store and summary, and
 * mai-alert's once-per-change delivery to a webhook receiver on 127.0.0.1.
 * (tests/status.engine.test.ts runs the same scripts against the real Docker Engine.)
 */
import { execFile, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";

const HOST_DIR = path.resolve(__dirname, "..", "host");
const STATUS = path.join(HOST_DIR, "mai-status.sh");
const SAMPLE = path.join(HOST_DIR, "mai-sample.sh");
const ALERT = path.join(HOST_DIR, "mai-alert.sh");
const BACKUP = path.join(HOST_DIR, "mai-backup.sh");

/**
 * Answers the docker calls of the scripts from $FAKE (ps.txt, inspect.json, stats.jsonl,
 * volumes/<name>/ with a created file holding CreatedAt); $FAKE/down makes the daemon "down".
 */
const FAKE_DOCKER = `#!/usr/bin/env bash
echo "$1" >> "$FAKE/calls"
[[ -e $FAKE/down ]] && { echo "Cannot connect to the Docker daemon" >&2; exit 1; }
case "$1" in
  version) echo 24.0.7 ;;
  info) echo /nonexistent-docker-root ;;
  ps) cat "$FAKE/ps.txt" 2>/dev/null ;;
  inspect)
    if [[ $2 == --format ]]; then jq -r '.[] | "\\(.Id) \\(.Config.Labels["mai.client"])"' "$FAKE/inspect.json"
    else cat "$FAKE/inspect.json"; fi ;;
  stats) cat "$FAKE/stats.jsonl" 2>/dev/null ;;
  cp) exit 1 ;;
  volume)
    case "$2" in
      ls) ls "$FAKE/volumes" 2>/dev/null ;;
      inspect)
        if [[ $3 == -f ]]; then
          [[ -d $FAKE/volumes/$5 ]] || { echo "Error: No such volume: $5" >&2; exit 1; }
          echo "$FAKE/volumes/$5"; exit 0
        fi
        shift 2
        printf '['; sep=
        for v in "$@"; do
          printf '%s{"Name":"%s","Mountpoint":"%s","CreatedAt":"%s"}' "$sep" "$v" "$FAKE/volumes/$v" "$(cat "$FAKE/volumes/$v/.created")"
          sep=,
        done
        printf ']\\n' ;;
    esac ;;
  *) echo "fake docker: unexpected call: $*" >&2; exit 1 ;;
esac
`;

let root: string;
let env: NodeJS.ProcessEnv;
const fake = (...parts: string[]) => path.join(root, "fake", ...parts);

function iso(msAgo: number): string {
  return new Date(Date.now() - msAgo).toISOString().replace(/\.\d+Z$/, "Z");
}
function stamp(msAgo: number): string {
  return iso(msAgo).replace(/[-:]/g, "");
}
const HOUR = 3_600_000;

function run(file: string, args: string[] = [], extra: NodeJS.ProcessEnv = {}) {
  const r = spawnSync("bash", [file, ...args], { env: { ...env, ...extra }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
function status(extra: NodeJS.ProcessEnv = {}) {
  const r = run(STATUS, [], extra);
  if (r.code !== 0) throw new Error(`mai-status exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** A client data volume created `hoursAgo`, optionally with a SQLite database. */
function volume(slug: string, hoursAgo: number, withDb = false): string {
  const dir = fake("volumes", `mai-${slug}-data`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, ".created"), iso(hoursAgo * HOUR));
  if (withDb) {
    const r = spawnSync("sqlite3", [path.join(dir, "webui.db"), "CREATE TABLE t(x); INSERT INTO t VALUES (1);"]);
    if (r.status !== 0) throw new Error("sqlite3 failed");
  }
  return dir;
}
function backupFile(slug: string, hoursAgo: number, bytes = 100): string {
  const dir = path.join(root, "backups", slug);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${slug}-${stamp(hoursAgo * HOUR)}.db.zst`);
  fs.writeFileSync(file, Buffer.alloc(bytes));
  return file;
}
function enableTimer(slug: string): void {
  fs.writeFileSync(path.join(root, "timers", `mai-backup@${slug}.timer`), "");
}
function conditionKeys(doc: { conditions: { key: string }[] }): string[] {
  return doc.conditions.map((c) => c.key).sort();
}

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "mai-status-test-"));
  for (const dir of ["bin", "fake/volumes", "backups", "state", "config", "timers", "lock"]) fs.mkdirSync(path.join(root, dir), { recursive: true });
  fs.writeFileSync(path.join(root, "bin", "docker"), FAKE_DOCKER, { mode: 0o755 });
  fs.writeFileSync(fake("inspect.json"), "[]");
  env = {
    ...process.env,
    PATH: `${path.join(root, "bin")}:${process.env.PATH}`,
    FAKE: fake(),
    MAI_BACKUP_ROOT: path.join(root, "backups"),
    MAI_STATE_DIR: path.join(root, "state"),
    MAI_CONFIG_DIR: path.join(root, "config"),
    MAI_TIMERS_DIR: path.join(root, "timers"),
    MAI_LOCK_DIR: path.join(root, "lock"),
    MAI_CADDY_CERT_DIR: path.join(root, "certificates"),
    MAI_EXPECT_PROXY: "no",
  };
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe("mai-backup's run record", () => {
  it("records success with file and size, a failure with its exit code and message, and leaves it alone when busy", () => {
    volume("acme", 48, true);
    const ok = run(BACKUP, ["acme"]);
    expect(ok.code).toBe(0);
    const record = JSON.parse(fs.readFileSync(path.join(root, "state", "backup", "acme.json"), "utf8"));
    const [file] = fs.readdirSync(path.join(root, "backups", "acme")).filter((f) => f.endsWith(".db.zst"));
    expect(record).toMatchObject({ result: "ok", exitCode: 0, file, sizeBytes: fs.statSync(path.join(root, "backups", "acme", file)).size, message: "" });
    expect(Date.now() - Date.parse(record.time)).toBeLessThan(10 * 60_000);

    // Busy: another run holds the client's lock; the record of the last real run stays.
    const locked = spawnSync("flock", [path.join(root, "lock", "mai-backup-acme.lock"), "-c", `bash ${BACKUP} acme; echo "exit=$?"`], { env, encoding: "utf8" });
    expect(locked.stdout).toContain("exit=7");
    expect(JSON.parse(fs.readFileSync(path.join(root, "state", "backup", "acme.json"), "utf8")).result).toBe("ok");

    fs.rmSync(path.join(fake("volumes", "mai-acme-data"), "webui.db"));
    expect(run(BACKUP, ["acme"]).code).toBe(4);
    const failed = JSON.parse(fs.readFileSync(path.join(root, "state", "backup", "acme.json"), "utf8"));
    expect(failed).toMatchObject({ result: "failed", exitCode: 4, file: null, sizeBytes: null });
    expect(failed.message).toMatch(/^no database at .*webui\.db \(volume mai-acme-data\)$/);

    // mai-status shows both: the failed run and the last good file.
    enableTimer("acme");
    const doc = status();
    const acme = doc.clients.find((c: { slug: string }) => c.slug === "acme");
    expect(acme.backup.lastRun).toMatchObject({ result: "failed", exitCode: 4 });
    expect(acme.backup.lastGood.file).toBe(file);
    expect(conditionKeys(doc)).toEqual(["backup-failed:acme"]);
  });
});

describe("mai-status on files", () => {
  it("takes the newest backup by its time-stamped name and alerts once it is older than 26 h", () => {
    volume("acme", 24 * 10);
    enableTimer("acme");
    backupFile("acme", 80);
    const stale = backupFile("acme", 30, 4321);
    let doc = status();
    const backup = doc.clients[0].backup;
    expect(backup.lastGood).toMatchObject({ file: path.basename(stale), sizeBytes: 4321 });
    expect(backup.ageHours).toBeGreaterThanOrEqual(29.9);
    expect(backup.ageHours).toBeLessThan(30.2);
    expect(doc.conditions).toEqual([
      expect.objectContaining({ key: "backup-stale:acme", condition: "backup-stale", subject: "acme", message: expect.stringMatching(/^last good backup of acme is 30(\.\d)? h old/) }),
    ]);
    expect(doc.healthy).toBe(false);

    backupFile("acme", 1);
    doc = status();
    expect(doc.conditions).toEqual([]);
    expect(doc.healthy).toBe(true);

    // The threshold is the operator's to change.
    fs.writeFileSync(path.join(root, "config", "status.local.env"), "ALERT_BACKUP_MAX_AGE_HOURS=0\n");
    expect(conditionKeys(status())).toEqual(["backup-stale:acme"]);
    fs.writeFileSync(path.join(root, "config", "status.local.env"), "ALERT_BACKUP_MAX_AGE_HOURS=soon\n");
    const bad = run(STATUS);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("ALERT_BACKUP_MAX_AGE_HOURS must be a whole number (got 'soon')");
  });

  it("expects a first backup only after 26 h, and none from a client whose timer is off (removed)", () => {
    volume("fresh", 2);
    volume("old", 30);
    volume("gone", 24 * 40);
    enableTimer("fresh");
    enableTimer("old");
    const doc = status();
    expect(doc.clients.map((c: { slug: string }) => c.slug)).toEqual(["fresh", "gone", "old"]);
    expect(conditionKeys(doc)).toEqual(["backup-stale:old"]);
    expect(doc.conditions[0].message).toMatch(/^old has no backup yet \(data volume created /);
    // Data volume sizes from du, unless skipped (mai-alert does not need them).
    expect(doc.clients[0].volume.sizeBytes).toBeGreaterThan(0);
    expect(status({ MAI_VOLUME_SIZES: "no" }).clients[0].volume.sizeBytes).toBeNull();
  });

  it("reads certificate expiry from Caddy's storage, alerting under 14 days for public certificates only", () => {
    const cert = (issuer: string, host: string, days: number) => {
      const dir = path.join(root, "certificates", issuer, host);
      fs.mkdirSync(dir, { recursive: true });
      const r = spawnSync(
        "openssl",
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", String(days), "-subj", `/CN=${host}`,
          "-keyout", path.join(dir, `${host}.key`), "-out", path.join(dir, `${host}.crt`)],
        { encoding: "utf8" },
      );
      if (r.status !== 0) throw new Error(r.stderr);
    };
    cert("acme-v02.api.letsencrypt.org-directory", "acme.mai-hosting.eu", 10);
    cert("acme-v02.api.letsencrypt.org-directory", "globex.mai-hosting.eu", 60);
    cert("local", "acme.localhost", 1);
    const doc = status();
    expect(doc.certificates.source).toBe("caddy");
    const list = doc.certificates.list.map((c: { hostname: string; daysLeft: number; internal: boolean }) => [c.hostname, Math.round(c.daysLeft), c.internal]);
    expect(list).toEqual([
      ["acme.localhost", 1, true],
      ["acme.mai-hosting.eu", 10, false],
      ["globex.mai-hosting.eu", 60, false],
    ]);
    expect(conditionKeys(doc)).toEqual(["certificate:acme.mai-hosting.eu"]);
    expect(doc.conditions[0].message).toMatch(/^certificate of acme\.mai-hosting\.eu expires in (9\.9|10) days/);
  });

  it("reports Docker down as a condition and still prints the host", () => {
    fs.writeFileSync(fake("down"), "");
    const doc = status({ MAI_EXPECT_PROXY: "yes" });
    expect(doc.host.docker).toEqual({ running: false, version: null });
    expect(doc.host.disks.length).toBeGreaterThan(0);
    expect(doc.host.memory.totalBytes).toBeGreaterThan(1 << 20);
    // Only the daemon: the proxy cannot be judged without it.
    expect(conditionKeys(doc)).toEqual(["docker-down"]);
  });

  it("takes CPU and memory from the sampler's last minute when it covers every running client, else from docker stats", () => {
    const id = "c".repeat(64);
    fs.writeFileSync(fake("ps.txt"), `${id}\n`);
    fs.writeFileSync(fake("inspect.json"), JSON.stringify([{
      Id: id, Name: "/mai-acme", RestartCount: 0,
      Config: { Image: "img:1", Labels: { "mai.client": "acme" } },
      State: { Status: "running", Running: true, OOMKilled: false, ExitCode: 0, StartedAt: iso(HOUR), FinishedAt: "0001-01-01T00:00:00Z", Health: { Status: "healthy" } },
      HostConfig: { Memory: 512 * 1048576, MemoryReservation: 0, NanoCpus: 1e9, CpuShares: 0 },
    }]));
    fs.writeFileSync(fake("stats.jsonl"), JSON.stringify({ ID: id, CPUPerc: "7.50%", MemUsage: "100MiB / 512MiB" }) + "\n");
    const calls = () => fs.readFileSync(fake("calls"), "utf8").split("\n");

    let doc = status();
    expect(doc.usage).toEqual({ source: "docker-stats", sampledAt: null });
    expect(doc.clients[0].container).toMatchObject({ cpuPercent: 7.5, memoryBytes: 100 * 1048576, memoryLimitBytes: 512 * 1048576, cpuLimit: 1, uptimeSeconds: expect.any(Number) });
    expect(calls()).toContain("stats");

    // A reading of the last minute covering acme: no docker stats call.
    const now = Math.floor(Date.now() / 1000);
    expect(run(SAMPLE, [], { MAI_NOW: String(now - 30) }).code).toBe(0);
    fs.rmSync(fake("calls"));
    doc = status();
    expect(doc.usage.source).toBe("sampler");
    expect(Date.parse(doc.usage.sampledAt) / 1000).toBe(now - 30);
    expect(doc.clients[0].container).toMatchObject({ cpuPercent: 7.5, memoryBytes: 100 * 1048576, memoryLimitBytes: 512 * 1048576 });
    expect(calls()).not.toContain("stats");

    // Too old a reading, or the operator's choice: docker stats again.
    expect(status({ MAI_USAGE_SOURCE: "docker" }).usage.source).toBe("docker-stats");
    spawnSync("sqlite3", [path.join(root, "state", "samples.db"), `UPDATE samples SET ts = ${now - 600};`]);
    expect(status().usage.source).toBe("docker-stats");
  });

  it("counts Docker's OOM flag as a condition until the container has run 15 minutes since", () => {
    const id = "d".repeat(64);
    const inspectWith = (startedMsAgo: number, oomKills: number | null) => {
      fs.writeFileSync(fake("ps.txt"), `${id}\n`);
      fs.writeFileSync(fake("inspect.json"), JSON.stringify([{
        Id: id, Name: "/mai-acme", RestartCount: 1,
        Config: { Image: "img:1", Labels: { "mai.client": "acme" } },
        State: { Status: "running", Running: true, OOMKilled: true, ExitCode: 0, StartedAt: iso(startedMsAgo), FinishedAt: iso(startedMsAgo + 1000), Health: { Status: "healthy" } },
        HostConfig: { Memory: 512 * 1048576, MemoryReservation: 0, NanoCpus: 0, CpuShares: 0 },
      }]));
      // The kernel's counter of the container's memory cgroup (v2 layout).
      const cgroup = path.join(root, "cgroup", "system.slice", `docker-${id}.scope`);
      fs.rmSync(path.join(root, "cgroup"), { recursive: true, force: true });
      if (oomKills !== null) {
        fs.mkdirSync(cgroup, { recursive: true });
        fs.writeFileSync(path.join(cgroup, "memory.events"), `low 0\nhigh 0\nmax 12\noom 3\noom_kill ${oomKills}\n`);
      }
      fs.writeFileSync(fake("stats.jsonl"), JSON.stringify({ ID: id, CPUPerc: "1.00%", MemUsage: "100MiB / 512MiB" }) + "\n");
      return status({ MAI_CGROUP_ROOT: path.join(root, "cgroup"), MAI_USAGE_SOURCE: "docker" });
    };
    let doc = inspectWith(2 * 60_000, null);
    expect(doc.clients[0].container).toMatchObject({ oomKilled: true, oomKills: null, restartCount: 1 });
    expect(conditionKeys(doc)).toEqual(["oom-killed:acme"]);
    expect(doc.conditions[0].message).toBe("mai-acme hit its memory limit of 512 MiB: its main process was OOM-killed");
    doc = inspectWith(60 * 60_000, 0);
    expect(doc.clients[0].container.oomKills).toBe(0);
    expect(conditionKeys(doc)).toEqual([]);
    doc = inspectWith(60 * 60_000, 2);
    expect(conditionKeys(doc)).toEqual(["oom-killed:acme"]);
  });

  it("flags a disk above the threshold", () => {
    fs.writeFileSync(path.join(root, "config", "status.env"), "ALERT_DISK_PERCENT=0\n");
    const doc = status();
    expect(doc.thresholds.diskPercent).toBe(0);
    expect(doc.conditions.some((c: { condition: string; subject: string }) => c.condition === "disk-full" && c.subject === "/")).toBe(true);
  });
});

describe("mai-sample", () => {
  const ID_A = "a".repeat(64);
  const ID_B = "b".repeat(64);
  function containers(): void {
    fs.writeFileSync(fake("ps.txt"), `${ID_A}\n${ID_B}\n`);
    fs.writeFileSync(fake("inspect.json"), JSON.stringify([
      { Id: ID_A, Config: { Labels: { "mai.client": "acme" } } },
      { Id: ID_B, Config: { Labels: { "mai.client": "globex" } } },
    ]));
    fs.writeFileSync(fake("stats.jsonl"), [
      JSON.stringify({ ID: ID_A, CPUPerc: "150.25%", MemUsage: "1.5GiB / 4GiB" }),
      JSON.stringify({ ID: ID_B, CPUPerc: "0.00%", MemUsage: "300MiB / 512MiB" }),
    ].join("\n") + "\n");
  }
  const db = () => path.join(root, "state", "samples.db");
  const rows = (sql: string) => spawnSync("sqlite3", [db(), sql], { encoding: "utf8" }).stdout.trim();

  it("stores one row per client per run with CPU % and memory in bytes", () => {
    containers();
    const r = run(SAMPLE, [], { MAI_NOW: "1800000000" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(rows("SELECT ts, slug, cpu_percent, memory_bytes, memory_limit_bytes FROM samples ORDER BY slug")).toBe(
      [`1800000000|acme|150.25|${1.5 * 1024 ** 3}|${4 * 1024 ** 3}`, `1800000000|globex|0.0|${300 * 1024 ** 2}|${512 * 1024 ** 2}`].join("\n"),
    );
  });

  it("keeps only the retention window, pruning on every run", () => {
    containers();
    const day = 86_400;
    const start = 1_800_000_000;
    for (let d = 0; d <= 20; d++) expect(run(SAMPLE, [], { MAI_NOW: String(start + d * day) }).code).toBe(0);
    // 14 days back from the last run, inclusive of the cut-off: days 6..20.
    expect(rows("SELECT COUNT(DISTINCT ts), MIN(ts), MAX(ts) FROM samples")).toBe(`15|${start + 6 * day}|${start + 20 * day}`);
    // Another retention, e.g. shortened by the operator, applies at the next run.
    expect(run(SAMPLE, [], { MAI_NOW: String(start + 20 * day + 60), MAI_SAMPLE_RETENTION_DAYS: "2" }).code).toBe(0);
    // Cut-off 2 days before the run: days 19 and 20 and this run remain.
    expect(rows("SELECT COUNT(DISTINCT ts) FROM samples")).toBe("3");
  });

  it("summarises p95 (nearest rank) and max per client over the window", () => {
    fs.writeFileSync(fake("ps.txt"), "");
    expect(run(SAMPLE, [], { MAI_NOW: "1800000000" }).code).toBe(0);
    // acme: CPU 1..100 %, memory 1..100 MiB; globex: one sample.
    const inserts = Array.from({ length: 100 }, (_, i) => `(${1_800_000_000 - i * 60}, 'acme', ${100 - i}, ${(100 - i) * 1048576}, 4294967296)`);
    spawnSync("sqlite3", [db(), `INSERT INTO samples VALUES ${inserts.join(",")}, (1800000000, 'globex', 3.5, 1000, 2000);`]);
    const r = run(SAMPLE, ["--summary"], { MAI_NOW: "1800000000" });
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ retentionDays: 14, percentile: 95 });
    expect(summary.clients).toEqual([
      {
        slug: "acme",
        samples: 100,
        first: "2027-01-15T06:21:00Z",
        last: "2027-01-15T08:00:00Z",
        cpuPercent: { p95: 95, max: 100 },
        memoryBytes: { p95: 95 * 1048576, max: 100 * 1048576 },
        memoryLimitBytes: 4294967296,
      },
      expect.objectContaining({ slug: "globex", samples: 1, cpuPercent: { p95: 3.5, max: 3.5 }, memoryBytes: { p95: 1000, max: 1000 } }),
    ]);
  });

  it("prints an empty summary before the first sample", () => {
    const r = run(SAMPLE, ["--summary"]);
    expect(JSON.parse(r.stdout)).toEqual({ retentionDays: 14, clients: [] });
  });
});

// ---------------------------------------------------------------------------------------------

describe("mai-alert", () => {
  let server: http.Server;
  let received: { path: string; body: any }[] = [];
  let answer = 200;
  let url = "";
  const SECRET_PATH = "/hooks/T0SECRET/B0SECRET/xyzzy";

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let data = "";
      req.on("data", (chunk) => (data += chunk));
      req.on("end", () => {
        if (answer === 200) received.push({ path: req.url ?? "", body: JSON.parse(data) });
        res.statusCode = answer;
        res.end(answer === 200 ? "ok" : "nope");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${SECRET_PATH}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => {
    received = [];
    answer = 200;
  });

  /** mai-status stand-in: prints $FAKE/status.json. */
  function conditions(...keys: string[]): void {
    const list = keys.map((key) => {
      const [condition, subject = "host"] = key.split(":");
      return { key, condition, subject, message: `${condition} on ${subject}` };
    });
    fs.writeFileSync(fake("status.json"), JSON.stringify({ host: { hostname: "nbg1-a" }, conditions: list }));
  }
  /** Runs mai-alert without blocking this process (the receiver lives here). */
  function alert(extra: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    fs.writeFileSync(path.join(root, "bin", "fake-status"), `#!/usr/bin/env bash\ncat "$FAKE/status.json"\n`, { mode: 0o755 });
    return new Promise((resolve) => {
      execFile("bash", [ALERT], { env: { ...env, MAI_STATUS: path.join(root, "bin", "fake-status"), ...extra } }, (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
      );
    });
  }
  function configure(): void {
    fs.writeFileSync(path.join(root, "config", "alerts.env"), `ALERT_WEBHOOK_URL='${url}'\n`, { mode: 0o600 });
  }
  const sent = () => received.map((r) => `${r.body.state} ${r.body.key}`);

  it("sends each condition once when it starts and once when it ends", async () => {
    configure();
    conditions("unhealthy:acme", "disk-full:/");
    expect((await alert()).code).toBe(0);
    expect(sent().sort()).toEqual(["firing disk-full:/", "firing unhealthy:acme"]);

    received = [];
    expect((await alert()).code).toBe(0);
    expect(sent()).toEqual([]);

    conditions("disk-full:/");
    await alert();
    expect(sent()).toEqual(["resolved unhealthy:acme"]);
    await alert();
    expect(sent()).toEqual(["resolved unhealthy:acme"]);

    // It may start again later: a new firing.
    conditions("disk-full:/", "unhealthy:acme");
    await alert();
    expect(sent()).toEqual(["resolved unhealthy:acme", "firing unhealthy:acme"]);
    expect(received.every((r) => r.path === SECRET_PATH)).toBe(true);
  });

  it("posts one body that ntfy, Slack-compatible and generic webhooks accept", async () => {
    configure();
    conditions("oom-killed:acme");
    await alert({ MAI_NOW: "1800000000" });
    const body = received[0].body;
    expect(body).toEqual({
      text: "[nbg1-a] oom-killed: acme\noom-killed on acme",
      title: "[nbg1-a] oom-killed: acme",
      message: "oom-killed on acme",
      priority: 4,
      tags: ["warning"],
      source: "mai-hosting",
      host: "nbg1-a",
      key: "oom-killed:acme",
      condition: "oom-killed",
      subject: "acme",
      state: "firing",
      since: "2027-01-15T08:00:00Z",
      at: "2027-01-15T08:00:00Z",
    });
    conditions();
    await alert({ MAI_NOW: "1800000600" });
    expect(received[1].body).toMatchObject({ state: "resolved", title: "[nbg1-a] resolved: oom-killed: acme", priority: 3, since: body.since });
    expect(received[1].body.message).toBe(`oom-killed on acme (resolved; since ${body.since})`);
  });

  it("keeps an ntfy template URL intact (braces are not a curl pattern)", async () => {
    const base = url.slice(0, url.indexOf(SECRET_PATH));
    fs.writeFileSync(path.join(root, "config", "alerts.env"), `ALERT_WEBHOOK_URL='${base}/mytopic?tpl=1&t={{.title}}&m={{.message}}'\n`);
    conditions("disk-full:/");
    await alert();
    expect(received.map((r) => r.path)).toEqual(["/mytopic?tpl=1&t={{.title}}&m={{.message}}"]);
  });

  it("retries a failed delivery on the next run, logs it without the URL, and never blocks", async () => {
    configure();
    answer = 500;
    conditions("backup-stale:acme");
    const failed = await alert();
    expect(failed.code).toBe(0);
    expect(failed.stdout).toContain("could not deliver firing backup-stale:acme (HTTP 500); will retry next run");
    for (const text of [failed.stdout, failed.stderr]) {
      expect(text).not.toContain("SECRET");
      expect(text).not.toContain("127.0.0.1");
    }

    answer = 200;
    await alert();
    expect(sent()).toEqual(["firing backup-stale:acme"]);
    await alert();
    expect(sent()).toEqual(["firing backup-stale:acme"]);

    // A receiver that does not answer at all: bounded by curl's timeouts, logged, retried.
    fs.writeFileSync(path.join(root, "config", "alerts.env"), "ALERT_WEBHOOK_URL='http://127.0.0.1:9/hook'\n");
    conditions("backup-stale:acme", "disk-full:/", "unhealthy:acme", "unhealthy:globex");
    const unreachable = await alert();
    expect(unreachable.code).toBe(0);
    // One attempt, not one timeout per message.
    expect(unreachable.stdout.match(/could not deliver/g)).toHaveLength(1);
    expect(unreachable.stdout).toContain("receiver unreachable; 2 more message(s) left for the next run");
    configure();
    await alert();
    expect(sent().slice(1).sort()).toEqual(["firing disk-full:/", "firing unhealthy:acme", "firing unhealthy:globex"]);
    expect(sent()[0]).toBe("firing backup-stale:acme");
  });

  it("sends nothing for a condition that ended before its firing was delivered", async () => {
    configure();
    answer = 503;
    conditions("restarting:acme");
    await alert();
    conditions();
    answer = 200;
    await alert();
    await alert();
    expect(sent()).toEqual([]);
  });

  it("alerts when mai-status itself fails, without resolving what was firing", async () => {
    configure();
    conditions("unhealthy:acme");
    await alert();
    fs.writeFileSync(fake("status.json"), "garbage");
    await alert();
    expect(sent()).toEqual(["firing unhealthy:acme", "firing status-failed"]);
    conditions("unhealthy:acme");
    await alert();
    expect(sent()).toEqual(["firing unhealthy:acme", "firing status-failed", "resolved status-failed"]);
  });

  it("does nothing without a webhook", async () => {
    conditions("unhealthy:acme");
    const r = await alert();
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("no webhook configured");
    expect(fs.existsSync(path.join(root, "state", "alerts", "state.json"))).toBe(false);
  });
});
