/**
 * BackupTooling and ClientBackup under Pulumi's mock runtime: what they upload, where, which
 * commands run on the host and in which order. The commands themselves are checked in
 * backup-units.test.ts (paths) and backup.test.ts (the scripts, run for real).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { installMocks } from "./support/programHarness";

interface Declared {
  type: string;
  name: string;
  inputs: Record<string, any>;
  /** Names (last URN segment) of the resources it depends on. */
  dependsOn: string[];
  /** Type chain of its parent's URN, e.g. `mai:index:BackupTooling`. */
  parentType: string;
}

const declared: Declared[] = [];
const lastSegment = (urn: string) => urn.split("::").pop() ?? "";
let backups: typeof import("../components/backups");
let plan: typeof import("../policy/backupPlan");

const PRIVATE_KEY = pulumi.secret("-----BEGIN OPENSSH PRIVATE KEY-----x");
const HOST_DIR = path.join(__dirname, "..", "host");

beforeAll(async () => {
  const registered = await installMocks();
  backups = await import("../components/backups");
  plan = await import("../policy/backupPlan");

  const { HetznerHost } = await import("../components/hosts/hetzner");
  const { LocalHost } = await import("../components/hosts/local");
  const host = new HetznerHost("host", {
    server: { name: "host", kind: "hetzner", serverType: "ccx33", location: "nbg1" },
    settings: { serverImage: "ubuntu-24.04", sshPublicKeys: [], adminCidrs: ["198.51.100.0/24"] },
    sshPrivateKey: PRIVATE_KEY,
  });
  const tooling = new backups.BackupTooling("backup-tooling", { host, retentionDays: 14 });
  new backups.ClientBackup("acme-backup", { host, slug: "acme", tooling });
  const local = new LocalHost("local", {
    server: { name: "local", kind: "local", httpPort: 8080, httpsPort: 8443, stateDir: "/var/tmp/mai-test", dockerHost: "unix:///var/run/docker.sock" },
  });
  new backups.BackupTooling("local-tooling", { host: local, retentionDays: 7 });
  expect(() => new backups.ClientBackup("local-acme-backup", { host: local, slug: "acme", tooling })).toThrow(/runs no systemd/);
  await new Promise((resolve) => setTimeout(resolve, 100)); // let the registrations drain
  for (const { type, name, inputs, options } of registered) {
    declared.push({ type, name, inputs, dependsOn: options.dependsOn.map(lastSegment).sort(), parentType: options.parent.split("::")[2] ?? "" });
  }
});

function byName(name: string): Declared {
  const found = declared.find((r) => r.name === name);
  if (!found) throw new Error(`no resource ${name}; declared: ${declared.map((r) => r.name).join(", ")}`);
  return found;
}

async function assetText(source: any): Promise<string> {
  return await (source.text ?? source);
}

describe("BackupTooling", () => {
  it("uploads the repository's scripts and units byte for byte, and the retention, to a staging dir", async () => {
    const copies = declared.filter((r) => r.type === "command:remote:CopyToRemote");
    expect(copies.map((c) => c.name)).toEqual([
      "backup-tooling-mai-lib.sh",
      "backup-tooling-mai-backup.sh",
      "backup-tooling-mai-restore.sh",
      "backup-tooling-mai-export.sh",
      "backup-tooling-mai-import.sh",
      "backup-tooling-mai-backup@.service",
      "backup-tooling-mai-backup@.timer",
      "backup-tooling-backup.env",
    ]);
    for (const file of ["mai-lib.sh", "mai-backup.sh", "mai-restore.sh", "mai-export.sh", "mai-import.sh", "mai-backup@.service", "mai-backup@.timer"]) {
      const copy = byName(`backup-tooling-${file}`);
      expect(await assetText(copy.inputs.source)).toBe(fs.readFileSync(path.join(HOST_DIR, file), "utf8"));
      expect(copy.inputs.remotePath).toBe(`/var/lib/mai/staging/backup/${file}`);
    }
    const env = byName("backup-tooling-backup.env");
    expect(await assetText(env.inputs.source)).toMatch(/^RETENTION_DAYS=14$/m);
    expect(env.inputs.remotePath).toBe("/var/lib/mai/staging/backup/backup.env");
  });

  it("installs every upload and reloads systemd, re-run by the same content hash as the copies", () => {
    const install = byName("backup-tooling-install");
    expect(install.type).toBe("command:remote:Command");
    const create: string = install.inputs.create;
    expect(create).toContain("install -m 0755 -T /var/lib/mai/staging/backup/mai-backup.sh /usr/local/sbin/mai-backup.new");
    expect(create).toContain("install -m 0755 -T /var/lib/mai/staging/backup/mai-restore.sh /usr/local/sbin/mai-restore.new");
    expect(create).toContain("install -m 0755 -T /var/lib/mai/staging/backup/mai-export.sh /usr/local/sbin/mai-export.new");
    expect(create).toContain("install -m 0755 -T /var/lib/mai/staging/backup/mai-import.sh /usr/local/sbin/mai-import.new");
    // The library the scripts source is in place before any script that needs it.
    expect(create).toContain("install -m 0644 -T /var/lib/mai/staging/backup/mai-lib.sh /usr/local/sbin/mai-lib.sh.new");
    expect(create.indexOf("/usr/local/sbin/mai-lib.sh.new")).toBeLessThan(create.indexOf("/usr/local/sbin/mai-backup.new"));
    expect(create).toMatch(/for tool in sqlite3 zstd flock jq tar; do/);
    expect(create).toContain("/etc/systemd/system/mai-backup@.timer.new && mv -f");
    expect(create).toContain("install -m 0644 -T /var/lib/mai/staging/backup/backup.env /etc/mai/backup.env.new");
    expect(create.indexOf("systemctl daemon-reload")).toBeGreaterThan(create.lastIndexOf("install -m"));
    const copies = declared.filter((r) => r.type === "command:remote:CopyToRemote");
    const hash = install.inputs.triggers[0];
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    for (const copy of copies) expect(copy.inputs.triggers).toEqual([hash]);
    // The install waits for every upload.
    expect(install.dependsOn.filter((dep) => dep.startsWith("backup-tooling-"))).toEqual(copies.map((c) => c.name).sort());
  });

  it("are components of types mai:index:BackupTooling and mai:index:ClientBackup that parent their resources", () => {
    expect(byName("backup-tooling").type).toBe("mai:index:BackupTooling");
    expect(byName("acme-backup").type).toBe("mai:index:ClientBackup");
    for (const resource of declared.filter((r) => r.name.startsWith("backup-tooling-"))) {
      expect(resource.parentType).toBe("mai:index:BackupTooling");
    }
    expect(byName("acme-backup-timer").parentType).toBe("mai:index:ClientBackup");
  });

  it("changes its hash with the retention or any file, and not otherwise", () => {
    const sources = backups.readBackupHostFiles();
    const base = plan.planBackupTooling(sources, 30).contentHash;
    expect(plan.planBackupTooling(sources, 30).contentHash).toBe(base);
    expect(plan.planBackupTooling(sources, 31).contentHash).not.toBe(base);
    const edited = { ...sources, "host/mai-backup@.timer": sources["host/mai-backup@.timer"] + "\n" };
    expect(plan.planBackupTooling(edited, 30).contentHash).not.toBe(base);
  });

  it("refuses a retention that is not a whole number of days, naming the config key", () => {
    const sources = backups.readBackupHostFiles();
    for (const bad of [0, -1, 2.5, Number.NaN, 5000]) {
      expect(() => plan.planBackupTooling(sources, bad)).toThrow(/^backupRetentionDays: expected a whole number of days from 1 to 3650/);
    }
    expect(() => plan.planBackupTooling({}, 30)).toThrow("missing repository file(s) host/mai-lib.sh, host/mai-backup.sh");
  });
});

describe("ClientBackup", () => {
  it("enables the client's timer after the tooling is installed", () => {
    const timer = byName("acme-backup-timer");
    expect(timer.inputs.create).toContain("install -d -m 0750 /srv/mai/backups/acme");
    expect(timer.inputs.create).toContain("systemctl enable --now mai-backup@acme.timer");
    expect(timer.dependsOn).toContain("backup-tooling-install");
  });

  it("on delete disables the timer and never removes backups", () => {
    const del: string = byName("acme-backup-timer").inputs.delete;
    expect(del).toContain("systemctl disable --now mai-backup@acme.timer");
    expect(del).toContain("backups in /srv/mai/backups/acme are kept");
    expect(del).not.toMatch(/\brm\b|find .*-delete|rsync/);
  });

  it("refuses a slug that would break unit names and paths", () => {
    expect(() => plan.enableBackupCommand("Acme;rm -rf /")).toThrow(/client slug "Acme;rm -rf \/": expected lowercase/);
  });

  it("keeps the SSH key out of every command and upload", async () => {
    for (const resource of declared) {
      const text = JSON.stringify(resource.inputs, (key, value) => (key === "connection" ? undefined : value));
      expect(text).not.toContain("OPENSSH PRIVATE KEY");
    }
  });
});

describe("BackupTooling on a local engine", () => {
  it("writes the scripts and env file under the state directory with local commands, and no systemd units", async () => {
    const writes = declared.filter((r) => r.name.startsWith("local-tooling-") && r.type === "command:local:Command" && r.inputs.stdin !== undefined);
    expect(writes.map((w) => w.name)).toEqual([
      "local-tooling-mai-lib.sh",
      "local-tooling-mai-backup.sh",
      "local-tooling-mai-restore.sh",
      "local-tooling-mai-export.sh",
      "local-tooling-mai-import.sh",
      "local-tooling-backup.env",
    ]);
    expect(writes[1].inputs.create).toContain("/var/tmp/mai-test/state/staging/backup/mai-backup.sh");
    expect(await writes[1].inputs.stdin).toBe(fs.readFileSync(path.join(HOST_DIR, "mai-backup.sh"), "utf8"));
    const install: string = byName("local-tooling-install").inputs.create;
    expect(install).toContain("/var/tmp/mai-test/bin/mai-backup.new");
    expect(install).toContain("/var/tmp/mai-test/etc/backup.env.new");
    expect(install).not.toMatch(/systemctl|\/etc\/systemd/);
  });

  it("installs for real into a scratch state directory, without GNU-only options", async () => {
    const { spawnSync } = await import("node:child_process");
    const os = await import("node:os");
    const { localHostPaths } = await import("../policy/localHost");
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "mai-local-backup-"));
    try {
      const local = plan.planBackupTooling(backups.readBackupHostFiles(), 7, { paths: localHostPaths(root), systemd: false });
      expect(local.installCommand).not.toContain("install -m");
      for (const upload of local.uploads) {
        fs.mkdirSync(path.dirname(upload.stagedPath), { recursive: true });
        fs.writeFileSync(upload.stagedPath, upload.content);
      }
      fs.mkdirSync(path.join(root, "bin"), { recursive: true });
      const result = spawnSync("bash", ["-c", local.installCommand], { encoding: "utf8" });
      expect(result.status).toBe(0);
      expect(fs.statSync(path.join(root, "bin", "mai-backup")).mode & 0o777).toBe(0o755);
      expect(fs.readFileSync(path.join(root, "etc", "backup.env"), "utf8")).toMatch(/^RETENTION_DAYS=7$/m);
      expect(fs.statSync(path.join(root, "backups")).mode & 0o777).toBe(0o750);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
