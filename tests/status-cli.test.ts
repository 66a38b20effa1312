/**
 * `npm run status` as a command: arguments, servers from the stack file, how a server is reached
 * (a stand-in `ssh` on PATH records the call), and the exit codes with stand-in host runners.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sshRunner, type HostRunner } from "../scripts/lib/hostRunner";
import { DEFAULT_SERVER, localServerEnv, parseStatusArgs, runStatus } from "../scripts/status";

const REPO = path.join(__dirname, "..");
let dir: string;
let cwd: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-status-cli-"));
  fs.mkdirSync(path.join(dir, "clients"));
  fs.copyFileSync(path.join(REPO, "Pulumi.prod.yaml"), path.join(dir, "Pulumi.prod.yaml"));
  fs.writeFileSync(path.join(dir, "clients", "acme.yaml"), "name: Acme\nport: 3001\n");
  cwd = process.cwd();
  process.chdir(dir);
});
afterAll(() => {
  process.chdir(cwd);
  fs.rmSync(dir, { recursive: true, force: true });
});

function document(clients: unknown[]) {
  return JSON.stringify({
    schema: 1,
    generatedAt: "2026-11-24T07:00:00Z",
    host: { hostname: "mai-host", cpus: 32, load: [0.1, 0.1, 0.1], memory: { totalBytes: 1e11, availableBytes: 9e10 }, disks: [{ mount: "/", sizeBytes: 100, usedBytes: 10, usedPercent: 10 }], docker: { running: true, version: "24.0.7" } },
    proxy: null,
    clients,
    certificates: { source: "none", list: [] },
    thresholds: {},
    conditions: [],
    healthy: true,
  });
}
const acmeRunning = {
  slug: "acme",
  containers: 1,
  volume: null,
  backup: { timerEnabled: true, lastRun: null, lastGood: null, ageHours: null },
  container: {
    name: "mai-acme", id: "abc", slug: "acme", role: "client", image: "img:1", state: "running", health: "healthy", restartCount: 0, oomKilled: false,
    oomKills: 0, exitCode: 0, startedAt: "2026-11-24T06:00:00Z", uptimeSeconds: 3600, cpuPercent: 1, memoryBytes: 1e8, memoryLimitBytes: 4e9,
    memoryReservationBytes: null, cpuLimit: 2,
  },
};
function runner(stdout: string, code = 0): HostRunner {
  return { server: DEFAULT_SERVER, via: "stand-in", run: async () => ({ code, stdout, stderr: code === 0 ? "" : "boom" }) };
}
async function status(argv: string[], runners: HostRunner[]) {
  let stdout = "";
  let stderr = "";
  const code = await runStatus(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) }, runners);
  return { code, stdout, stderr };
}

describe("npm run status", () => {
  it("exits 0 only when everything is healthy, 1 otherwise", async () => {
    const healthy = await status(["--json"], [runner(document([acmeRunning]))]);
    expect(healthy.stderr).toBe("");
    expect(healthy.code).toBe(0);
    expect(JSON.parse(healthy.stdout)).toMatchObject({ healthy: true, clients: [{ slug: "acme", state: "running" }] });

    const missing = await status([], [runner(document([]))]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain("acme is active in its file but has no container on host; run pulumi up");

    const failing = await status([], [runner("", 255)]);
    expect(failing.code).toBe(1);
    expect(failing.stdout).toMatch(/host\s+unreachable/);
    expect(failing.stdout).toContain("mai-status failed via stand-in (exit 255): boom");
  });

  it("exits 2 on bad usage and on an invalid configuration", async () => {
    expect((await status(["--bogus"], [])).code).toBe(2);
    expect((await status(["--stack", "../x"], [])).stderr).toContain('invalid stack name "../x"');
    expect((await status(["--host", "nohost"], [])).stderr).toContain("--host expects <server>=<address>");
    const invalid = await status(["--clients", "nowhere"], []);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain("the configuration is invalid");
    expect((await status(["--help"], [])).stdout).toContain("Exit code: 0 everything healthy");
  });

  it("parses its options", () => {
    const options = parseStatusArgs(["--stack=staging", "--json", "--advice", "--host", "nbg1-a=203.0.113.7", "--local"]);
    expect(options).toMatchObject({ stack: "staging", json: true, advice: true, local: true });
    expect([...options.hosts]).toEqual([["nbg1-a", "203.0.113.7"]]);
  });

  it("points the host tools at a local server's own files and engine", () => {
    const env = localServerEnv({ name: "local", kind: "local", httpPort: 8080, httpsPort: 8443, stateDir: "/var/tmp/mai-x", dockerHost: "unix:///run/x.sock" });
    expect(env).toMatchObject({
      DOCKER_HOST: "unix:///run/x.sock",
      MAI_CONFIG_DIR: "/var/tmp/mai-x/etc",
      MAI_BACKUP_ROOT: "/var/tmp/mai-x/backups",
      MAI_STATE_DIR: "/var/tmp/mai-x/state",
    });
  });

  it("reaches a Hetzner server with non-interactive ssh as root, running the installed tool", async () => {
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, "ssh"), `#!/bin/sh\nprintf '%s\\n' "$@" > "${path.join(dir, "ssh-args")}"\necho '{}'\n`, { mode: 0o755 });
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath}`;
    try {
      const result = await sshRunner("nbg1-a", "203.0.113.7").run("mai-sample", ["--summary"]);
      expect(result).toEqual({ code: 0, stdout: "{}\n", stderr: "" });
    } finally {
      process.env.PATH = oldPath;
    }
    expect(fs.readFileSync(path.join(dir, "ssh-args"), "utf8").trim().split("\n")).toEqual([
      "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "StrictHostKeyChecking=accept-new", "root@203.0.113.7",
      "'/usr/local/sbin/mai-sample' '--summary'",
    ]);
  });
});
