/**
 * mai-export and mai-import, run for real: bash, the real sqlite3, tar, zstd, jq and sha256sum on
 * temp directories, with a recording stub in place of `docker` on PATH (volumes are directories,
 * containers are small state files). The same scripts run against the real engine in
 * export-import.engine.test.ts.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sql, startRowPairWriter } from "./support/liveDatabase";

const HOST_DIR = path.resolve(__dirname, "..", "host");
const EXPORT = path.join(HOST_DIR, "mai-export.sh");
const IMPORT = path.join(HOST_DIR, "mai-import.sh");

/**
 * Volumes: directories under $FAKE_DOCKER_VOLUMES. Containers: $FAKE_DOCKER_CONTAINERS/<name>
 * holds "running" or "exited" (absent: no container), <name>.env its environment.
 * `exec ... curl .../health` succeeds unless $FAKE_DOCKER_UNHEALTHY is set.
 */
const FAKE_DOCKER = `#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$FAKE_DOCKER_LOG"
last=\${!#}
state_file="$FAKE_DOCKER_CONTAINERS/$last"
case "$1 \${2:-}" in
  "volume inspect")
    dir="$FAKE_DOCKER_VOLUMES/$last"
    [[ -d $dir ]] || { echo "Error: No such volume: $last" >&2; exit 1; }
    echo "$dir" ;;
  "volume create") mkdir -p "$FAKE_DOCKER_VOLUMES/$last" && echo "$last" ;;
  "volume rm") rmdir "$FAKE_DOCKER_VOLUMES/$last" ;;
  inspect*)
    [[ -f $state_file ]] || { echo "Error: No such object: $last" >&2; exit 1; }
    case "$3" in
      *Config.Env*) cat "$state_file.env" ;;
      *Config.Image*) echo "ghcr.io/mai-hosting/mai:1.4.2" ;;
      *Health*) [[ $(<"$state_file") == running ]] && echo "true " || echo "false " ;;
      *State.Running*) [[ $(<"$state_file") == running ]] && echo true || echo false ;;
      *) echo "fake docker: unexpected inspect: $*" >&2; exit 1 ;;
    esac ;;
  stop*) echo exited > "$state_file"; echo "$last" ;;
  start*) echo running > "$state_file"; echo "$last" ;;
  exec*)
    [[ $(<"$FAKE_DOCKER_CONTAINERS/$2") == running && -z \${FAKE_DOCKER_UNHEALTHY:-} ]] ;;
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

const dataDir = (slug: string) => path.join(root, "volumes", `mai-${slug}-data`);
const liveDb = (slug: string) => path.join(dataDir(slug), "webui.db");
const exportsDir = () => path.join(root, "exports");

function run(file: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync("bash", [file, ...args], { env: { ...env, ...extraEnv }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function runAsync(file: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn("bash", [file, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

function sh(script: string, extraEnv: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync("bash", ["-c", script], { env: { ...env, ...extraEnv }, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function dockerCalls(): string[] {
  const log = path.join(root, "docker.log");
  return fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n").filter(Boolean) : [];
}
const dockerVerbs = () => dockerCalls().map((line) => line.split(" ")[0]);

/** Every file and directory below `dir` with its content hash: compares whole trees. */
function tree(dir: string): Record<string, string> {
  const result: Record<string, string> = {};
  if (!fs.existsSync(dir)) return result;
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const full = path.join(entry.parentPath, entry.name);
    const rel = path.relative(dir, full);
    result[rel] = entry.isFile() ? createHash("sha256").update(fs.readFileSync(full)).digest("hex") : entry.isDirectory() ? "dir" : "other";
  }
  return result;
}

/** A workspace volume: a database whose two tables every write changes together, uploads, a vector store. */
function makeClient(slug: string, rows: number, journalMode: "wal" | "delete" = "wal"): void {
  fs.mkdirSync(path.join(dataDir(slug), "uploads"), { recursive: true });
  fs.mkdirSync(path.join(dataDir(slug), "vector_db", "3f2a"), { recursive: true });
  fs.mkdirSync(path.join(dataDir(slug), "cache", "empty"), { recursive: true });
  sql(
    liveDb(slug),
    `PRAGMA journal_mode=${journalMode};
     CREATE TABLE a(id INTEGER PRIMARY KEY, payload BLOB);
     CREATE TABLE b(id INTEGER PRIMARY KEY);
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows})
       INSERT INTO a SELECT i, randomblob(500) FROM n;
     INSERT INTO b SELECT id FROM a;`,
  );
  fs.writeFileSync(path.join(dataDir(slug), "uploads", `${slug} report (final).pdf`), Buffer.from(`%PDF of ${slug} `.repeat(5000)));
  fs.writeFileSync(path.join(dataDir(slug), "uploads", "notes\twith tab.txt"), `notes of ${slug}\n`);
  fs.writeFileSync(path.join(dataDir(slug), "vector_db", "chroma.sqlite3"), Buffer.alloc(20_000, 7));
  fs.writeFileSync(path.join(dataDir(slug), "vector_db", "3f2a", "data_level0.bin"), Buffer.alloc(40_000, 3));
}

function makeContainer(slug: string, state: "running" | "exited", name = `${slug} GmbH`): void {
  const file = path.join(root, "containers", `mai-${slug}`);
  fs.writeFileSync(file, `${state}\n`);
  fs.writeFileSync(`${file}.env`, `ENV=prod\nORGANIZATION_NAME=${name}\nWEBUI_NAME=mAI - ${name}\n`);
}
const containerState = (slug: string) => fs.readFileSync(path.join(root, "containers", `mai-${slug}`), "utf8").trim();

function exportTo(slug: string, name = `${slug}.tar.zst`): string {
  const archive = path.join(exportsDir(), name);
  const r = run(EXPORT, [slug, archive]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return archive;
}

function manifestOf(archive: string): any {
  return JSON.parse(sh(`zstd -q -d -c "${archive}" | tar -x -O -f - manifest.json`).stdout);
}

/** Unpacks an archive, lets `edit` change the unpacked tree, packs it again in the same member order. */
function repack(archive: string, edit: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(root, "repack-"));
  expect(sh(`zstd -q -d -c "${archive}" | tar -x -f - -C "${dir}"`).code).toBe(0);
  edit(dir);
  const members = sh(`zstd -q -d -c "${archive}" | tar -t --quoting-style=literal -f -`).stdout.trim().split("\n");
  const list = path.join(root, "members.list");
  fs.writeFileSync(list, members.filter((m) => fs.existsSync(path.join(dir, m))).join("\n") + "\n");
  const extra = fs.existsSync(path.join(dir, "data", "extra.txt")) ? "data/extra.txt" : "";
  expect(sh(`tar -c -f - --no-recursion -C "${dir}" -T "${list}" ${extra} | zstd -q -f -o "${archive}"`).code).toBe(0);
  fs.rmSync(dir, { recursive: true });
}

function rewriteManifest(dir: string, change: (manifest: any) => void, resum: boolean): void {
  const file = path.join(dir, "manifest.json");
  const manifest = JSON.parse(fs.readFileSync(file, "utf8"));
  change(manifest);
  fs.writeFileSync(file, JSON.stringify(manifest, null, 2) + "\n");
  if (resum) expect(sh(`cd "${dir}" && sha256sum manifest.json > manifest.sha256`).code).toBe(0);
}

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "mai-export-test-"));
  for (const dir of ["bin", "volumes", "containers", "exports", "lock"]) fs.mkdirSync(path.join(root, dir));
  fs.writeFileSync(path.join(root, "bin", "docker"), FAKE_DOCKER, { mode: 0o755 });
  env = {
    ...process.env,
    PATH: `${path.join(root, "bin")}:${process.env.PATH}`,
    MAI_EXPORT_ROOT: exportsDir(),
    MAI_LOCK_DIR: path.join(root, "lock"),
    MAI_LOCK_WAIT: "0",
    MAI_HEALTH_TIMEOUT: "3",
    FAKE_DOCKER_LOG: path.join(root, "docker.log"),
    FAKE_DOCKER_VOLUMES: path.join(root, "volumes"),
    FAKE_DOCKER_CONTAINERS: path.join(root, "containers"),
  };
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe("mai-export + mai-import", () => {
  it("exports a live workspace that keeps writing and imports it into a new client: same rows, same files", async () => {
    makeClient("acme", 20_000);
    makeContainer("acme", "running", "Acme GmbH");
    const db = liveDb("acme");
    const writer = startRowPairWriter({ db, env, stopFile: path.join(root, "stop-writer"), payloadBytes: 500 });
    const { rowsNow, waitForRows } = writer;
    await waitForRows(20_010);
    const before = rowsNow();
    const archive = path.join(exportsDir(), "acme-offboarding.tar.zst");
    const exported = await runAsync(EXPORT, ["acme", archive]);
    const after = rowsNow();
    await waitForRows(after + 5); // the writer is still alive and well after the export
    expect(await writer.stop()).toBe(0);

    expect(exported.stderr).toBe("");
    expect(exported.code).toBe(0);
    expect(after).toBeGreaterThan(before); // writes really happened while the export ran
    expect(exported.stdout).toMatch(/wrote .*acme-offboarding\.tar\.zst \(5 files, \d+ bytes of data, \d+ bytes compressed, every checksum verified\)/);
    expect(fs.statSync(archive).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(exportsDir())).toEqual(["acme-offboarding.tar.zst"]); // no temp files left
    // The container is only looked at, never stopped.
    expect(dockerVerbs()).not.toContain("stop");

    const manifest = manifestOf(archive);
    expect(manifest).toMatchObject({
      format: "mai-export",
      formatVersion: 1,
      slug: "acme",
      name: "Acme GmbH",
      image: "ghcr.io/mai-hosting/mai:1.4.2",
      database: "data/webui.db",
      fileCount: 5,
    });
    expect(manifest.exportedAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(manifest.files.map((f: any) => f.path)).toEqual([
      "data/uploads/acme report (final).pdf",
      "data/uploads/notes\twith tab.txt",
      "data/vector_db/3f2a/data_level0.bin",
      "data/vector_db/chroma.sqlite3",
      "data/webui.db",
    ]);
    // Anyone can check a hand-over archive with standard tools.
    const unpacked = fs.mkdtempSync(path.join(root, "by-hand-"));
    expect(sh(`cd "${unpacked}" && tar --zstd -xf "${archive}" && sha256sum -c --quiet manifest.sha256`).code).toBe(0);

    // Import into a new client on the same host: volume created, container started and checked.
    makeContainer("beta", "exited");
    fs.rmSync(path.join(root, "docker.log"));
    const imported = run(IMPORT, ["--from", "acme", "beta", archive]);
    expect(imported.stderr).toBe("");
    expect(imported.code).toBe(0);
    expect(dockerCalls()).toContain("volume create --label mai.client=beta mai-beta-data");
    expect(dockerVerbs()).toContain("start");
    expect(dockerVerbs()).toContain("exec");
    expect(containerState("beta")).toBe("running");
    expect(imported.stdout).toContain("mai-beta is healthy");

    const [integrity, countA, countB, maxA, sameIds, mode] = sql(
      liveDb("beta"),
      `PRAGMA integrity_check; SELECT count(*) FROM a; SELECT count(*) FROM b; SELECT max(id) FROM a;
       SELECT count(*) FROM a JOIN b USING (id); PRAGMA journal_mode;`,
    ).split("\n");
    expect(integrity).toBe("ok");
    expect(Number(countA)).toBe(Number(maxA)); // ids 1..n without a gap
    expect(countB).toBe(countA);
    expect(sameIds).toBe(countA);
    expect(Number(countA)).toBeGreaterThanOrEqual(before);
    expect(Number(countA)).toBeLessThanOrEqual(after);
    expect(mode).toBe("delete");

    // Every other file arrives byte for byte, empty directories included; nothing else does.
    const source = tree(dataDir("acme"));
    const target = tree(dataDir("beta"));
    for (const name of ["webui.db", "webui.db-wal", "webui.db-shm"]) delete source[name];
    delete target["webui.db"];
    expect(target).toEqual(source);
    expect(target["cache/empty"]).toBe("dir");
  }, 60_000);

  it("streams between hosts: export to stdout (log on stderr), import from stdin into the same slug", () => {
    makeClient("acme", 300);
    // On the target host: the stack already declared the empty volume and the container.
    const src = path.join(root, "src-volumes");
    fs.mkdirSync(src);
    fs.renameSync(dataDir("acme"), path.join(src, "mai-acme-data"));
    fs.mkdirSync(dataDir("acme"));
    makeContainer("acme", "running");
    const moved = sh(
      `FAKE_DOCKER_VOLUMES="${src}" MAI_LOCK_DIR="${src}" MAI_CLIENT_NAME="Acme GmbH" bash "${EXPORT}" acme - 2>"${root}/export.err" | bash "${IMPORT}" acme -`,
    );
    const exportLog = fs.readFileSync(path.join(root, "export.err"), "utf8");
    expect(exportLog).toMatch(/acme: streamed 5 files \(\d+ bytes of data\)/);
    expect(moved.stderr).toBe("");
    expect(moved.code).toBe(0);
    expect(moved.stdout).toContain("acme: received");
    expect(moved.stdout).toContain("every checksum matches");
    expect(sql(liveDb("acme"), "SELECT count(*) FROM b;")).toBe("300");
    const source = tree(path.join(src, "mai-acme-data"));
    delete source["webui.db"];
    const target = tree(dataDir("acme"));
    delete target["webui.db"];
    expect(target).toEqual(source);
    expect(fs.readdirSync(exportsDir())).toEqual([]); // the spool and work dirs are gone
  });

  it("exports a suspended client (no container) with the name given, and refuses to overwrite an archive", () => {
    makeClient("acme", 10, "delete");
    const archive = path.join(exportsDir(), "acme.tar.zst");
    const r = run(EXPORT, ["acme", archive], { MAI_CLIENT_NAME: "Acme GmbH" });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("no container mai-acme (suspended client?)");
    expect(manifestOf(archive)).toMatchObject({ slug: "acme", name: "Acme GmbH", image: null });
    expect(dockerVerbs()).not.toContain("start");

    const before = fs.readFileSync(archive);
    const again = run(EXPORT, ["acme", archive]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`${archive} already exists; not overwritten`);
    expect(fs.readFileSync(archive).equals(before)).toBe(true);
    expect(fs.readdirSync(exportsDir())).toEqual(["acme.tar.zst"]);

    // The default name is time-stamped in MAI_EXPORT_ROOT.
    const named = run(EXPORT, ["acme"]);
    expect(named.code).toBe(0);
    expect(fs.readdirSync(exportsDir()).filter((f) => /^acme-\d{8}T\d{6}Z\.tar\.zst$/.test(f))).toHaveLength(1);
  });

  it("killed with SIGKILL mid-archive leaves no file with an archive's name; the client's next export removes its leftovers, not another client's", async () => {
    makeClient("acme", 10);
    // Enough data that the archive is still being written when the part file appears.
    fs.writeFileSync(path.join(dataDir("acme"), "uploads", "big.bin"), randomBytes(32 * 1024 * 1024));
    // Another client's killed export, which acme's runs must leave alone (only beta holds its lock).
    fs.mkdirSync(path.join(exportsDir(), ".mai-export-tmp.beta.Xy12Zw", "snapshot"), { recursive: true });
    fs.writeFileSync(path.join(exportsDir(), "beta-20261201T000000Z.tar.zst.part-beta.Xy12Zw"), "half");
    const child = spawn("bash", [EXPORT, "acme"], { env, stdio: "ignore", detached: true });
    const exited = new Promise((resolve) => child.on("exit", resolve));
    const part = () => fs.readdirSync(exportsDir()).find((f) => /^acme-\d{8}T\d{6}Z\.tar\.zst\.part-acme\.\w+$/.test(f));
    for (let i = 0; i < 3000; i++) {
      const name = part();
      if (name && fs.statSync(path.join(exportsDir(), name)).size > 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(part(), "the export wrote no part file").toBeDefined();
    process.kill(-child.pid!, "SIGKILL"); // the whole group: bash, tar, zstd, as a power loss would
    await exited;
    const left = fs.readdirSync(exportsDir()).sort();
    // Nothing an import or an operator would take for an archive; what is left is marked as such.
    expect(left.filter((f) => f.endsWith(".tar.zst"))).toEqual([]);
    expect(left.filter((f) => f.includes("acme"))).toEqual([expect.stringMatching(/^\.mai-export-tmp\.acme\.\w+$/), part()]);

    const again = run(EXPORT, ["acme"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain("removed the leftovers of an interrupted export");
    expect(fs.readdirSync(exportsDir()).sort()).toEqual(
      [".mai-export-tmp.beta.Xy12Zw", "beta-20261201T000000Z.tar.zst.part-beta.Xy12Zw", expect.stringMatching(/^acme-\d{8}T\d{6}Z\.tar\.zst$/)].sort(),
    );
  }, 120_000);

  it("names a missing volume, a missing database, a bad slug and a busy client", () => {
    expect(run(EXPORT, ["ghost"])).toMatchObject({ code: 4, stderr: expect.stringContaining("volume mai-ghost-data not found") });
    fs.mkdirSync(dataDir("empty"));
    expect(run(EXPORT, ["empty"])).toMatchObject({ code: 4, stderr: expect.stringContaining("no database at") });
    expect(run(EXPORT, ["../etc"])).toMatchObject({ code: 2, stderr: expect.stringContaining("not a client slug") });
    expect(run(IMPORT, ["acme", path.join(root, "nope.tar.zst")])).toMatchObject({ code: 4 });
    makeClient("acme", 5);
    const lockFile = path.join(root, "lock", "mai-backup-acme.lock");
    const holder = spawn("flock", [lockFile, "sleep", "30"], { stdio: "ignore" });
    try {
      for (let i = 0; i < 200 && spawnSync("flock", ["-n", lockFile, "true"]).status === 0; i++) spawnSync("sleep", ["0.01"]);
      expect(run(EXPORT, ["acme"])).toMatchObject({ code: 7, stderr: expect.stringContaining("is running; nothing done") });
    } finally {
      holder.kill();
    }
    expect(fs.readdirSync(exportsDir())).toEqual([]);
  });
});

describe("mai-import refuses before touching anything", () => {
  /** acme exported; beta is a running client with its own data. */
  function setUp(): { archive: string; betaBefore: Record<string, string> } {
    makeClient("acme", 200);
    const archive = exportTo("acme");
    makeClient("beta", 7);
    makeContainer("beta", "running");
    fs.rmSync(path.join(root, "docker.log"));
    return { archive, betaBefore: tree(dataDir("beta")) };
  }

  function expectRefused(r: Run, archiveProblem: RegExp, betaBefore: Record<string, string>): void {
    expect(r.stderr).toMatch(archiveProblem);
    expect(r.stderr).toContain("nothing changed");
    expect(r.code).toBe(5);
    expect(tree(dataDir("beta"))).toEqual(betaBefore);
    expect(dockerVerbs()).not.toContain("stop");
    expect(dockerVerbs()).not.toContain("start");
    expect(containerState("beta")).toBe("running");
    expect(fs.readdirSync(exportsDir()).filter((f) => f.startsWith("."))).toEqual([]);
  }

  it("a truncated archive, from a file or cut short on stdin", () => {
    const { archive, betaBefore } = setUp();
    const half = Math.floor(fs.statSync(archive).size / 2);
    const piped = sh(`head -c ${half} "${archive}" | bash "${IMPORT}" --yes --from acme beta -`);
    expectRefused(piped, /refused stdin: damaged or truncated/, betaBefore);
    fs.truncateSync(archive, half);
    expectRefused(run(IMPORT, ["--yes", "--from", "acme", "beta", archive]), /refused .*damaged or truncated/, betaBefore);
  });

  it("a byte changed in a file", () => {
    const { archive, betaBefore } = setUp();
    repack(archive, (dir) => {
      const file = path.join(dir, "data", "uploads", "notes\twith tab.txt");
      const bytes = fs.readFileSync(file);
      bytes[3] ^= 0x20;
      fs.writeFileSync(file, bytes);
    });
    expectRefused(
      run(IMPORT, ["--yes", "--from", "acme", "beta", archive]),
      /other size or content than the manifest says: data\/uploads\/notes\twith tab\.txt/,
      betaBefore,
    );
  });

  it("a byte changed in the compressed file", () => {
    const { archive, betaBefore } = setUp();
    const bytes = fs.readFileSync(archive);
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    fs.writeFileSync(archive, bytes);
    expectRefused(run(IMPORT, ["--yes", "--from", "acme", "beta", archive]), /refused .*(damaged or truncated|cannot read)/, betaBefore);
  });

  it("an edited manifest", () => {
    const { archive, betaBefore } = setUp();
    repack(archive, (dir) => rewriteManifest(dir, (m) => (m.name = "Someone Else"), false));
    expectRefused(run(IMPORT, ["--yes", "--from", "acme", "beta", archive]), /manifest\.json does not match manifest\.sha256/, betaBefore);
  });

  it("a file the manifest does not list, and a listed file that is missing", () => {
    const { archive, betaBefore } = setUp();
    const copy = path.join(exportsDir(), "copy.tar.zst");
    fs.copyFileSync(archive, copy);
    repack(archive, (dir) => fs.writeFileSync(path.join(dir, "data", "extra.txt"), "smuggled"));
    expectRefused(run(IMPORT, ["--yes", "--from", "acme", "beta", archive]), /not in the manifest: data\/extra\.txt/, betaBefore);
    repack(copy, (dir) => fs.rmSync(path.join(dir, "data", "vector_db", "chroma.sqlite3")));
    expectRefused(run(IMPORT, ["--yes", "--from", "acme", "beta", copy]), /missing from the archive: data\/vector_db\/chroma\.sqlite3/, betaBefore);
  });

  it("another format version, even with a consistent manifest checksum", () => {
    const { archive, betaBefore } = setUp();
    repack(archive, (dir) => rewriteManifest(dir, (m) => (m.formatVersion = 2), true));
    expectRefused(run(IMPORT, ["--yes", "--from", "acme", "beta", archive]), /format version 2 is not supported/, betaBefore);
  });

  it("a database that fails its integrity check, listed with matching checksums", () => {
    const { archive, betaBefore } = setUp();
    repack(archive, (dir) => {
      const db = path.join(dir, "data", "webui.db");
      const fd = fs.openSync(db, "r+");
      fs.writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 4096 * 3);
      fs.closeSync(fd);
      rewriteManifest(
        dir,
        (m) => {
          const entry = m.files.find((f: any) => f.path === "data/webui.db");
          entry.sha256 = createHash("sha256").update(fs.readFileSync(db)).digest("hex");
        },
        true,
      );
    });
    const r = run(IMPORT, ["--yes", "--from", "acme", "beta", archive]);
    expect(r.stderr).toContain("the exported database failed verification");
    expect(r.code).toBe(5);
    expect(tree(dataDir("beta"))).toEqual(betaBefore);
    expect(dockerVerbs()).not.toContain("stop");
  });

  it("another client's export without --from, data in place without --yes, and a new volume is never created", () => {
    const { archive, betaBefore } = setUp();
    expectRefused(run(IMPORT, ["--yes", "beta", archive]), /is an export of client 'acme', not 'beta'; to import it into 'beta', add --from acme/, betaBefore);
    expectRefused(run(IMPORT, ["--yes", "--from", "gamma", "beta", archive]), /not of 'gamma'/, betaBefore);
    const unconfirmed = run(IMPORT, ["--from", "acme", "beta", archive]);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toContain("volume mai-beta-data holds data: pass --yes");
    expect(tree(dataDir("beta"))).toEqual(betaBefore);

    fs.truncateSync(archive, 100);
    const fresh = run(IMPORT, ["--from", "acme", "delta", archive]);
    expect(fresh.code).toBe(5);
    expect(fs.existsSync(dataDir("delta"))).toBe(false);
    expect(dockerCalls().filter((c) => c.startsWith("volume create"))).toEqual([]);
  });
});

describe("mai-import swaps, checks and rolls back", () => {
  it("keeps the previous data aside, and puts it back when the workspace is not healthy", () => {
    makeClient("acme", 50);
    const archive = exportTo("acme");
    makeClient("beta", 7);
    makeContainer("beta", "running");
    const betaBefore = tree(dataDir("beta"));

    const failed = run(IMPORT, ["--yes", "--from", "acme", "beta", archive], { FAKE_DOCKER_UNHEALTHY: "1" });
    expect(failed.code).toBe(8);
    expect(failed.stderr).toContain("mai-beta is not healthy on the imported data: no healthy answer from /health within 3s");
    expect(failed.stdout).toContain("rolled back: the previous data is in place again");
    expect(tree(dataDir("beta"))).toEqual(betaBefore);
    expect(containerState("beta")).toBe("running"); // started again on its own data
    expect(dockerVerbs().filter((v) => v === "stop" || v === "start")).toEqual(["stop", "start", "stop", "start"]);

    const ok = run(IMPORT, ["--yes", "--from", "acme", "beta", archive]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(sql(liveDb("beta"), "SELECT count(*) FROM b;")).toBe("50");
    const aside = fs.readdirSync(dataDir("beta")).filter((f) => f.startsWith("mai-pre-import-"));
    expect(aside).toHaveLength(1);
    expect(aside[0]).toMatch(/^mai-pre-import-\d{8}T\d{6}Z$/);
    // Everything beta had is kept aside, byte for byte.
    const kept = tree(path.join(dataDir("beta"), aside[0]));
    expect(kept).toEqual(betaBefore);
    expect(ok.stdout).toContain(`the previous data stays in ${path.join(dataDir("beta"), aside[0])}`);
    expect(fs.readdirSync(dataDir("beta")).filter((f) => f.startsWith(".mai-import."))).toEqual([]);

    // A later export leaves the kept-aside data out.
    const again = exportTo("beta", "beta-again.tar.zst");
    expect(manifestOf(again).files.some((f: any) => f.path.includes("mai-pre-import-"))).toBe(false);
  });
});
