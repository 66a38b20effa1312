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
import { DOCKER_DAEMON_CONFIG, HOST_PACKAGES, HOST_PATHS, renderCloudInit } from "../policy/cloudInit";

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
