/**
 * Move benchmark (part of `npm run bench`): wall time of moving one client with a 200 MB volume
 * between two Docker engines on this machine (the machine's engine and a second dockerd, see
 * tests/support/secondEngine.ts), with the same script and environment the ClientMove component
 * declares: stop on the source, `mai-export - | mai-import -` through this machine, check. The
 * volume holds a database and incompressible files, so zstd gains nothing: a worst case for the
 * transfer. A benchmark, not a test: it prints figures and never fails on them.
 */
import { spawnSync } from "child_process";
import { createHash, randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { readMoveScript } from "../components/clientMove";
import { moveEnvironment } from "../policy/move";
import { LOCAL_WORKSPACE_IMAGE } from "../policy/localImages";
import { acquireEngineLock } from "../tests/support/engine";
import { dockerOkOn, dockerOn, installMoveScripts } from "../tests/support/moveHosts";
import { startSecondEngine, type SecondEngine } from "../tests/support/secondEngine";

const ROOT = path.join(__dirname, "..");
const IMAGE = LOCAL_WORKSPACE_IMAGE;
const VOLUME_MB = 200;

function sha256(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** Fills a client volume with a database and `megabytes` of incompressible files; returns a checksum. */
function fillVolume(dir: string, megabytes: number): string {
  const db = path.join(dir, "webui.db");
  const sql = ["PRAGMA journal_mode=WAL;", "CREATE TABLE IF NOT EXISTS bench (id INTEGER PRIMARY KEY, body TEXT);", "BEGIN;"];
  for (let i = 0; i < 20_000; i++) sql.push(`INSERT INTO bench (body) VALUES ('chat message ${i} ${"lorem ipsum ".repeat(8)}');`);
  sql.push("COMMIT;");
  spawnSync("sqlite3", ["-batch", "-init", "/dev/null", db], { input: sql.join("\n") });
  fs.mkdirSync(path.join(dir, "uploads"), { recursive: true });
  const hash = createHash("sha256");
  for (let i = 0; i < megabytes / 10; i++) {
    const file = path.join(dir, "uploads", `file-${i}.bin`);
    fs.writeFileSync(file, randomBytes(10 * 1024 * 1024));
    hash.update(sha256(file));
  }
  return hash.digest("hex");
}

function uploadsChecksum(dir: string): string {
  const hash = createHash("sha256");
  for (let i = 0; i < VOLUME_MB / 10; i++) hash.update(sha256(path.join(dir, "uploads", `file-${i}.bin`)));
  return hash.digest("hex");
}

/** Runs the move benchmark; returns the lines to print. */
export async function runMoveBench(): Promise<string[]> {
  const title = `move benchmark: one client with a ${VOLUME_MB} MB volume between two local Docker engines (stop, mai-export | mai-import through this machine, check)`;
  if (!dockerOkOn(undefined, ["info"])) return [title, "  not run: no Docker engine answers (start dockerd)"];
  if (!dockerOkOn(undefined, ["image", "inspect", IMAGE])) return [title, `  not run: image ${IMAGE} is missing (npm run local:images)`];
  const lock = await acquireEngineLock();
  const slug = `bench${randomBytes(3).toString("hex")}`;
  const label = `mai.test-run=${slug}`;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "mai-move-bench-"));
  let engine: SecondEngine | undefined;
  try {
    engine = await startSecondEngine();
    engine.loadImages([IMAGE]);
    const side = (name: string, host: string | undefined) => {
      const binDir = path.join(work, name, "bin");
      installMoveScripts(ROOT, binDir);
      const env = host ? `DOCKER_HOST=${host}` : "-u DOCKER_HOST";
      return {
        name,
        shell: `env ${env} MAI_LOCK_DIR=${path.join(work, name, "lock")} MAI_EXPORT_ROOT=${path.join(work, name, "exports")} bash -c`,
        binDir,
        stateDir: path.join(work, name, "state"),
      };
    };
    const source = side("engine-a", undefined);
    const target = side("engine-b", engine.host);

    dockerOn(undefined, ["network", "create", "--label", label, `mai-${slug}`]);
    dockerOn(undefined, ["volume", "create", "--label", label, `mai-${slug}-data`]);
    const expected = fillVolume(dockerOn(undefined, ["volume", "inspect", "-f", "{{.Mountpoint}}", `mai-${slug}-data`]), VOLUME_MB);
    dockerOn(undefined, ["run", "-d", "--name", `mai-${slug}`, "--label", label, "--network", `mai-${slug}`, "-v", `mai-${slug}-data:/app/backend/data`, IMAGE]);
    dockerOn(engine.host, ["volume", "create", `mai-${slug}-data`]);

    const environment = moveEnvironment({ slug, from: source.name, to: target.name, suspended: false }, source, target);
    const started = process.hrtime.bigint();
    const result = spawnSync("/bin/bash", ["-c", readMoveScript(ROOT)], { env: { ...process.env, ...environment }, encoding: "utf8" });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (result.status !== 0) return [title, `  move failed (exit ${result.status}): ${result.stderr.trim()}`];
    const arrived = uploadsChecksum(dockerOn(engine.host, ["volume", "inspect", "-f", "{{.Mountpoint}}", `mai-${slug}-data`]));
    return [
      title,
      `  ${seconds.toFixed(1)} s wall (${(VOLUME_MB / seconds).toFixed(0)} MB/s), data ${arrived === expected ? "intact" : "DIFFERENT"} on the target, ${os.cpus().length} CPUs`,
      "  downtime of a real move adds the start on the target, DNS caching (TTL 300 s) and the target's first certificate",
    ];
  } finally {
    spawnSync("docker", ["rm", "-f", `mai-${slug}`], { stdio: "ignore" });
    spawnSync("docker", ["network", "rm", `mai-${slug}`], { stdio: "ignore" });
    spawnSync("docker", ["volume", "rm", `mai-${slug}-data`], { stdio: "ignore" });
    if (engine) await engine.remove();
    fs.rmSync(work, { recursive: true, force: true });
    await lock.release();
  }
}

if (require.main === module) {
  runMoveBench().then(
    (lines) => console.log(lines.join("\n")),
    (err: unknown) => {
      console.error(`bench-move: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
