/**
 * The server's user data, checked by the real cloud-init schema validator and by executing
 * the pieces that can run here (the JSON Docker reads, the shell the runcmd entries form).
 */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import {
  DOCKER_DAEMON_CONFIG,
  HOST_PACKAGES,
  HOST_PATHS,
  SYSCTL_DROP_IN,
  cloudInitWaitCommand,
  renderCloudInit,
  sysctlApplyCommand,
} from "../policy/cloudInit";

const userData = renderCloudInit();
const doc = parse(userData) as Record<string, any>;
const file = (p: string) => (doc.write_files as { path: string; content: string; permissions: string }[]).find((f) => f.path === p);

describe("cloud-init user data", () => {
  it("passes cloud-init's own schema validation", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-cloud-init-"));
    const target = path.join(dir, "user-data.yaml");
    fs.writeFileSync(target, userData);
    const result = spawnSync("cloud-init", ["schema", "--config-file", target], { encoding: "utf8" });
    if (result.error) throw new Error("cloud-init is not installed; run .ci/run's install step (apt-get install cloud-init)");
    expect(result.stderr + result.stdout).toContain("Valid");
    expect(result.status).toBe(0);
  });

  it("a broken document is refused by the same validator (the check can fail)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-cloud-init-"));
    const target = path.join(dir, "user-data.yaml");
    fs.writeFileSync(target, userData.replace("package_update: true", "package_update: sometimes"));
    const result = spawnSync("cloud-init", ["schema", "--config-file", target], { encoding: "utf8" });
    expect(result.status).not.toBe(0);
  });

  it("is deterministic, so an unchanged stack shows no user-data diff", () => {
    expect(renderCloudInit()).toBe(userData);
  });

  it("installs Docker, unattended upgrades and the tools the host scripts use", () => {
    expect(doc.packages).toEqual([...HOST_PACKAGES]);
    for (const pkg of ["docker.io", "unattended-upgrades", "sqlite3", "zstd"]) expect(doc.packages).toContain(pkg);
    expect(doc.package_update).toBe(true);
  });

  it("configures Docker log rotation and enough address pools for one network per client", () => {
    const daemon = JSON.parse(file("/etc/docker/daemon.json")!.content);
    expect(daemon).toEqual(DOCKER_DAEMON_CONFIG);
    expect(daemon["log-opts"]).toEqual({ "max-size": "10m", "max-file": "5" });
    const [pool] = daemon["default-address-pools"];
    const prefix = Number(pool.base.split("/")[1]);
    expect(2 ** (pool.size - prefix)).toBeGreaterThanOrEqual(200);
  });

  it("enables unattended security upgrades without automatic reboots", () => {
    expect(file("/etc/apt/apt.conf.d/20auto-upgrades")!.content).toContain('APT::Periodic::Unattended-Upgrade "1";');
    const policy = file("/etc/apt/apt.conf.d/52mai-unattended-upgrades")!.content;
    expect(policy).toContain("-security");
    expect(policy).toContain('Unattended-Upgrade::Automatic-Reboot "false";');
  });

  it("creates the directories the stack writes to", () => {
    const script = (doc.runcmd as string[][]).map((argv) => argv.join(" ")).join("\n");
    for (const dir of Object.values(HOST_PATHS)) expect(script).toContain(dir);
  });

  it("creates those directories for real when its install commands run against a scratch root", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "mai-root-"));
    for (const argv of doc.runcmd as string[][]) {
      if (argv[0] !== "install") continue;
      const args = argv.slice(1).map((a) => (a.startsWith("/") ? path.join(root, a) : a));
      execFileSync("install", args);
    }
    for (const dir of Object.values(HOST_PATHS)) expect(fs.statSync(path.join(root, dir)).isDirectory()).toBe(true);
    expect(fs.statSync(path.join(root, HOST_PATHS.backupsDir)).mode & 0o777).toBe(0o750);
  });

  it("turns SSH password logins off", () => {
    expect(doc.ssh_pwauth).toBe(false);
    expect(file("/etc/ssh/sshd_config.d/10-mai.conf")!.content).toMatch(/^PasswordAuthentication no$/m);
  });
});

/** Runs `script` with bash, with fake `cloud-init`, `docker` and `sysctl` first on PATH. */
function runWithFakes(script: string, fakes: Record<string, string>, extraEnv: Record<string, string> = {}) {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), "mai-fake-bin-"));
  try {
    for (const [name, body] of Object.entries(fakes)) {
      fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    }
    return spawnSync("bash", ["-c", script], { encoding: "utf8", env: { ...process.env, ...extraEnv, PATH: `${bin}:${process.env.PATH}` } });
  } finally {
    fs.rmSync(bin, { recursive: true, force: true });
  }
}

describe("waiting for cloud-init before the first deployment", () => {
  const docker = 'echo 20.10.24';
  const cloudInit = (rc: number) => `[ "$2" = "--long" ] && { echo "status: error"; exit ${rc}; }; exit ${rc}`;

  it("fails with cloud-init's status when cloud-init failed, and says where to look", () => {
    const result = runWithFakes(cloudInitWaitCommand(), { "cloud-init": cloudInit(1), docker });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("cloud-init failed (exit 1)");
    expect(result.stdout).not.toContain("20.10.24");
  });

  it("accepts done (0) and done with recoverable warnings (2), and prints the Docker version", () => {
    for (const rc of [0, 2]) {
      const result = runWithFakes(cloudInitWaitCommand(), { "cloud-init": cloudInit(rc), docker });
      expect({ rc, status: result.status, stdout: result.stdout.trim() }).toEqual({ rc, status: 0, stdout: "20.10.24" });
    }
  });

  it("fails when Docker does not answer after cloud-init", () => {
    const result = runWithFakes(cloudInitWaitCommand(), { "cloud-init": cloudInit(0), docker: "exit 1" });
    expect(result.status).not.toBe(0);
  });
});

describe("host sysctls (Caddy shares the host's network namespace)", () => {
  it("are written at first boot and loaded right away", () => {
    expect(file(SYSCTL_DROP_IN)!.content).toMatch(/^net\.ipv4\.tcp_migrate_req = 1$/m);
    expect(doc.runcmd).toContainEqual(["sysctl", "-p", SYSCTL_DROP_IN]);
  });

  it("are applied to a running server by a command that writes the same drop-in and loads it", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "mai-sysctl-"));
    try {
      fs.mkdirSync(path.join(root, "etc", "sysctl.d"), { recursive: true });
      const script = sysctlApplyCommand().split(SYSCTL_DROP_IN).join(path.join(root, SYSCTL_DROP_IN));
      const result = runWithFakes(script, { sysctl: 'echo "loaded $2"' });
      expect(result.status).toBe(0);
      expect(fs.readFileSync(path.join(root, SYSCTL_DROP_IN), "utf8")).toBe(file(SYSCTL_DROP_IN)!.content);
      expect(result.stdout.trim()).toBe(`loaded ${path.join(root, SYSCTL_DROP_IN)}`);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

