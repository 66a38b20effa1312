/**
 * Benchmark of the operator's view on the local Docker Engine: wall time of `npm run status`
 * (the whole CLI process: Node start, config load, mai-status, report) and of `mai-status` alone,
 * over 20 and 100 running client containers (goal <= 2 s and <= 5 s), and the sampler's cost per
 * run over the same containers (CPU time of mai-sample and what it starts: docker CLI, jq,
 * sqlite3; the daemon's own work for `docker stats` is not in that figure, its wall time is).
 *
 * The containers are lightweight, not the workspace stand-in: busybox httpd (imported from
 * Debian's busybox-static as `mai-bench/busybox:1` when missing) with the production label,
 * memory and CPU limits, a health check and a data volume each. What mai-status does per
 * container does not depend on what runs inside. Holds the engine lock; removes everything it
 * created. Figures only, never a verdict that fails.
 */
import { execFile, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const REPO = path.join(__dirname, "..");
const IMAGE = "mai-bench/busybox:1";
const LOCK = path.join(os.tmpdir(), "mai-hosting-engine.lock");
const SIZES = [20, 100];
const REPEATS = 3;

function docker(args: string[]): string {
  const r = spawnSync("docker", args, { encoding: "utf8", timeout: 300_000, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`docker ${args.slice(0, 3).join(" ")}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

function ensureImage(): void {
  if (spawnSync("docker", ["image", "inspect", IMAGE]).status === 0) return;
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((file) => fs.existsSync(file));
  if (!busybox) throw new Error("busybox-static is needed for the benchmark image (apt-get install busybox-static)");
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "mai-bench-image-"));
  try {
    fs.mkdirSync(path.join(root, "bin"));
    fs.mkdirSync(path.join(root, "www"));
    fs.mkdirSync(path.join(root, "tmp"));
    fs.copyFileSync(busybox, path.join(root, "bin", "busybox"));
    fs.chmodSync(path.join(root, "bin", "busybox"), 0o755);
    for (const applet of ["sh", "httpd", "wget"]) fs.symlinkSync("busybox", path.join(root, "bin", applet));
    fs.writeFileSync(path.join(root, "www", "health"), "ok\n");
    const tar = spawnSync("tar", ["-C", root, "-c", "."], { maxBuffer: 1 << 26 });
    const imported = spawnSync("docker", ["import", "--change", 'CMD ["/bin/httpd","-f","-p","8080","-h","/www"]', "-", IMAGE], { input: tar.stdout });
    if (imported.status !== 0) throw new Error(`docker import: ${imported.stderr}`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function time(file: string, args: string[], options: { cwd?: string; env: NodeJS.ProcessEnv }): Promise<number> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) =>
    execFile(file, args, { ...options, maxBuffer: 1 << 26, timeout: 300_000 }, (error, _stdout, stderr) => {
      // status exits 1 when something is unhealthy; only a crash is an error here.
      if (error && typeof error.code !== "number") reject(new Error(stderr));
      else resolve(Number(process.hrtime.bigint() - started) / 1e9);
    }),
  );
}

/** CPU seconds (user + system) of a bash script and its children, and its wall time. */
function cpuOf(script: string, env: NodeJS.ProcessEnv): { cpu: number; wall: number } {
  const r = spawnSync("bash", ["-c", `TIMEFORMAT='%R %U %S'; time bash ${JSON.stringify(script)} >/dev/null`], { env, encoding: "utf8" });
  const [wall, user, sys] = r.stderr.trim().split("\n").pop()!.split(" ").map(Number);
  return { cpu: user + sys, wall };
}

/** `mai-sample --summary` (what --advice reads) over a full store: 20 clients x 14 days x 1/min. */
function summaryBench(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-bench-samples-"));
  try {
    const env = { ...process.env, MAI_STATE_DIR: dir, MAI_LABEL_FILTER: "mai.bench=none" };
    if (spawnSync("bash", [path.join(REPO, "host", "mai-sample.sh")], { env }).status !== 0) throw new Error("mai-sample failed");
    const now = Math.floor(Date.now() / 1000);
    const fill = spawnSync("sqlite3", [path.join(dir, "samples.db"),
      `WITH RECURSIVE m(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM m WHERE i < 20159), c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < 20)
       INSERT INTO samples SELECT ${now} - i * 60, 'client' || k, abs(random() % 20000) / 100.0, abs(random() % 4000000000), 4294967296 FROM m, c;`]);
    if (fill.status !== 0) throw new Error(`sqlite3: ${fill.stderr}`);
    const size = fs.statSync(path.join(dir, "samples.db")).size;
    const times = Array.from({ length: REPEATS }, () => {
      const started = process.hrtime.bigint();
      if (spawnSync("bash", [path.join(REPO, "host", "mai-sample.sh"), "--summary"], { env, maxBuffer: 1 << 24 }).status !== 0) throw new Error("summary failed");
      return Number(process.hrtime.bigint() - started) / 1e9;
    });
    const insert = cpuOf(path.join(REPO, "host", "mai-sample.sh"), env);
    return (
      `mai-sample --summary over a full store (20 clients x 14 days = ${20 * 20160} rows, ${(size / 1048576).toFixed(0)} MB): ${Math.min(...times).toFixed(2)} s; ` +
      `a sampler run's store work on it (insert + prune, no containers): ${insert.wall.toFixed(2)} s`
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function runStatusBench(): Promise<string[]> {
  if (spawnSync("docker", ["info"]).status !== 0) return ["status benchmark: skipped, no Docker engine answers `docker info`"];
  const lock = spawn("flock", ["-x", LOCK, "sh", "-c", "echo locked; cat >/dev/null"], { stdio: ["pipe", "pipe", "inherit"] });
  await new Promise((resolve) => lock.stdout.once("data", resolve));
  const run = `bench${crypto.randomBytes(3).toString("hex")}`;
  const label = `mai.test-run=${run}`;
  const lines = [
    `status benchmark (local engine, lightweight busybox containers; best of ${REPEATS}; ${os.cpus().length} CPUs; load ${os.loadavg()[0].toFixed(2)} at start):`,
  ];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-bench-status-"));
  try {
    ensureImage();
    docker(["network", "create", "--label", label, `mai-${run}`]);
    fs.mkdirSync(path.join(dir, "clients"));
    fs.mkdirSync(path.join(dir, "state"));
    fs.copyFileSync(path.join(REPO, "Pulumi.prod.yaml"), path.join(dir, "Pulumi.prod.yaml"));
    const env = { ...process.env, MAI_LABEL_FILTER: label, MAI_STATE_DIR: path.join(dir, "state"), MAI_BACKUP_ROOT: path.join(dir, "backups"), MAI_EXPECT_PROXY: "no" };
    let created = 0;
    for (const size of SIZES) {
      for (; created < size; created++) {
        const slug = `${run}-c${String(created).padStart(3, "0")}`;
        fs.writeFileSync(path.join(dir, "clients", `${slug}.yaml`), `name: Bench ${created}\nport: ${42000 + created}\nresources:\n  cpus: 0.1\n  memory: 512M\n  reservations:\n    cpus: 0.1\n    memory: 64M\n`);
        docker(["volume", "create", "--label", label, `mai-${slug}-data`]);
        docker([
          "run", "-d", "--name", `mai-${slug}`, "--label", `mai.client=${slug}`, "--label", label, "--network", `mai-${run}`,
          "--memory", "32m", "--cpus", "0.1", "--restart", "unless-stopped",
          "--health-cmd", "wget -qO- http://127.0.0.1:8080/health", "--health-interval", "30s",
          "-v", `mai-${slug}-data:/data`, IMAGE,
        ]);
      }
      // As on a host where the sampler's timer runs: a reading of the last minute exists.
      if (spawnSync("bash", [path.join(REPO, "host", "mai-sample.sh")], { env }).status !== 0) throw new Error("mai-sample failed");
      const statusTimes: number[] = [];
      const scriptTimes: number[] = [];
      const dockerStatsTimes: number[] = [];
      for (let i = 0; i < REPEATS; i++) {
        statusTimes.push(await time(path.join(REPO, "node_modules", ".bin", "tsx"), [path.join(REPO, "scripts", "status.ts"), "--local", "--json"], { cwd: dir, env }));
        scriptTimes.push(await time("bash", [path.join(REPO, "host", "mai-status.sh")], { env }));
        dockerStatsTimes.push(await time("bash", [path.join(REPO, "host", "mai-status.sh")], { env: { ...env, MAI_USAGE_SOURCE: "docker" } }));
      }
      const fmt = (times: number[]) => `${Math.min(...times).toFixed(2)} s (${times.map((t) => t.toFixed(2)).join(", ")})`;
      lines.push(
        `  ${String(size).padStart(3)} clients: npm run status ${fmt(statusTimes)} (goal <= ${size === 20 ? 2 : 5} s); ` +
          `mai-status alone ${fmt(scriptTimes)} with the sampler's reading, ${fmt(dockerStatsTimes)} with docker stats`,
      );
    }
    const sampler = Array.from({ length: REPEATS }, () => cpuOf(path.join(REPO, "host", "mai-sample.sh"), env));
    const best = sampler.reduce((a, b) => (a.cpu <= b.cpu ? a : b));
    lines.push(
      `  mai-sample over ${created} clients: ${best.cpu.toFixed(2)} CPU s per run (user+sys of the script, docker CLI, jq, sqlite3), ${best.wall.toFixed(2)} s wall; ` +
        `at one run a minute that is ${((best.cpu / 60) * 100).toFixed(2)} % of one vCPU`,
    );
    lines.push(`  ${summaryBench()}`);
  } finally {
    const ids = (kind: string[]) => spawnSync("docker", [...kind, "--filter", `label=${label}`], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);
    const containers = ids(["ps", "-aq"]);
    if (containers.length > 0) spawnSync("docker", ["rm", "-f", "-v", ...containers]);
    const volumes = ids(["volume", "ls", "-q"]);
    if (volumes.length > 0) spawnSync("docker", ["volume", "rm", "-f", ...volumes]);
    const networks = ids(["network", "ls", "-q"]);
    if (networks.length > 0) spawnSync("docker", ["network", "rm", ...networks]);
    fs.rmSync(dir, { recursive: true, force: true });
    lock.stdin.end();
  }
  return lines;
}

if (require.main === module) {
  runStatusBench().then(
    (lines) => console.log(lines.join("\n")),
    (error: unknown) => {
      console.error(`bench-status: ${error instanceof Error ? error.message : String(error)}`);
      process.exitCode = 1;
    },
  );
}
