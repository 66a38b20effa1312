/**
 * What the backup tooling puts on the host and the shell commands that install and enable it.
 * Pure functions (no Pulumi imports): the components in `backups.ts` only wire these into
 * resources, and the tests check the exact files, paths and commands here.
 */
import { createHash } from "node:crypto";
import { HOST_PATHS } from "./cloudInit";
import type { HostPaths } from "./hostPaths";

/** Where every client's backups live on the host (one directory per slug, see docs/runbook.md). */
export const BACKUP_ROOT = HOST_PATHS.backupsDir;
/** Directory of the env files read by `mai-backup`. */
export const BACKUP_CONFIG_DIR = HOST_PATHS.etcDir;
/** The env file the stack owns (retention); the operator's own settings go in `backup.local.env`. */
export const BACKUP_ENV_PATH = `${BACKUP_CONFIG_DIR}/backup.env`;
/** Where uploads land before `install` moves them into place (a running script is never overwritten). */
export const BACKUP_STAGING_DIR = `${HOST_PATHS.stateDir}/staging/backup`;

/** Where the tooling goes on a host, and whether systemd runs there (timers and units only then). */
export interface BackupTarget {
  /** The host's paths (production: HOST_PATHS). */
  paths: HostPaths;
  /** Install the systemd units and run `systemctl` (false on a local engine). */
  systemd: boolean;
}

/** A production server: HOST_PATHS and systemd. */
export const PRODUCTION_BACKUP_TARGET: BackupTarget = { paths: HOST_PATHS, systemd: true };

/** Where `file` is installed on `target`: scripts into its bin directory, units into systemd's. */
export function installTarget(file: BackupHostFile, target: BackupTarget): string {
  return file.target.startsWith("/etc/systemd/") ? file.target : `${target.paths.binDir}/${baseName(file.target)}`;
}
/** Host tools the scripts call; cloud-init installs them (Debian/Ubuntu packages sqlite3, zstd, jq; tar and util-linux are in every image). */
export const BACKUP_REQUIRED_TOOLS = ["sqlite3", "zstd", "flock", "jq", "tar"] as const;

/** One file of the tooling: a repository file installed at a fixed host path. */
export interface BackupHostFile {
  /** Path in the repository, relative to its root. */
  source: string;
  /** Absolute path on the host. */
  target: string;
  /** File mode given to `install -m`. */
  mode: "0755" | "0644";
}

/**
 * The scripts and systemd units, in install order: the library the scripts source comes first
 * (installed beside them, where they look for it first).
 */
export const BACKUP_HOST_FILES: readonly BackupHostFile[] = [
  { source: "host/mai-lib.sh", target: "/usr/local/sbin/mai-lib.sh", mode: "0644" },
  { source: "host/mai-backup.sh", target: "/usr/local/sbin/mai-backup", mode: "0755" },
  { source: "host/mai-restore.sh", target: "/usr/local/sbin/mai-restore", mode: "0755" },
  { source: "host/mai-export.sh", target: "/usr/local/sbin/mai-export", mode: "0755" },
  { source: "host/mai-import.sh", target: "/usr/local/sbin/mai-import", mode: "0755" },
  { source: "host/mai-backup@.service", target: "/etc/systemd/system/mai-backup@.service", mode: "0644" },
  { source: "host/mai-backup@.timer", target: "/etc/systemd/system/mai-backup@.timer", mode: "0644" },
];

/** One upload of the plan: text content copied to a staging path, then installed at `target`. */
export interface BackupUpload {
  /** Short stable name, used in resource names (`mai-backup.sh`, `backup.env`, ...). */
  name: string;
  /** File content. */
  content: string;
  /** Where the upload lands on the host. */
  stagedPath: string;
  /** Where `install` puts it. */
  target: string;
  /** File mode of the installed file. */
  mode: "0755" | "0644";
}

/** Everything the host-level tooling resource needs. */
export interface BackupToolingPlan {
  /** The files to upload, scripts and units first, the env file last. */
  uploads: BackupUpload[];
  /** Shell command that checks the host tools, installs the uploads and reloads systemd. */
  installCommand: string;
  /** sha256 over every upload's target and content: a trigger for the copies and the install. */
  contentHash: string;
}

/** Longest retention accepted: ten years, well past any sensible value. */
const MAX_RETENTION_DAYS = 3650;

/** Returns `days` when it is a whole number of days in 1..3650, otherwise throws a clear message. */
export function checkRetentionDays(days: number): number {
  if (!Number.isInteger(days) || days < 1 || days > MAX_RETENTION_DAYS) {
    throw new Error(
      `backupRetentionDays: expected a whole number of days from 1 to ${MAX_RETENTION_DAYS}, got ${JSON.stringify(days)}`,
    );
  }
  return days;
}

/** Client slugs are DNS labels; anything else would break unit names and paths. */
export function checkSlug(slug: string): string {
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(slug)) {
    throw new Error(`client slug ${JSON.stringify(slug)}: expected lowercase letters, digits and inner hyphens`);
  }
  return slug;
}

/** The stack-owned env file: only the retention, the off-host settings are the operator's. */
export function renderBackupEnv(retentionDays: number, configDir: string = BACKUP_CONFIG_DIR): string {
  return [
    "# Written by the mai-hosting stack (config key backupRetentionDays); edits here are overwritten.",
    `# Off-host copy settings (OFFSITE_TARGET, ...) belong in ${configDir}/backup.local.env.`,
    `RETENTION_DAYS=${checkRetentionDays(retentionDays)}`,
    "",
  ].join("\n");
}

function baseName(file: string): string {
  return file.slice(file.lastIndexOf("/") + 1);
}

/**
 * Plans the host tooling from the repository files' contents (`sources`, keyed by
 * `BackupHostFile.source`) and the retention. Throws naming any file that is missing.
 */
export function planBackupTooling(
  sources: Readonly<Record<string, string>>,
  retentionDays: number,
  target: BackupTarget = PRODUCTION_BACKUP_TARGET,
): BackupToolingPlan {
  const missing = BACKUP_HOST_FILES.filter((file) => sources[file.source] === undefined).map((f) => f.source);
  if (missing.length > 0) throw new Error(`backup tooling: missing repository file(s) ${missing.join(", ")}`);

  const staging = `${target.paths.stateDir}/staging/backup`;
  const files = BACKUP_HOST_FILES.filter((file) => target.systemd || !file.target.startsWith("/etc/systemd/"));
  const uploads: BackupUpload[] = files.map((file) => ({
    name: baseName(file.source),
    content: sources[file.source],
    stagedPath: `${staging}/${baseName(file.source)}`,
    target: installTarget(file, target),
    mode: file.mode,
  }));
  uploads.push({
    name: "backup.env",
    content: renderBackupEnv(retentionDays, target.paths.etcDir),
    stagedPath: `${staging}/backup.env`,
    target: `${target.paths.etcDir}/backup.env`,
    mode: "0644",
  });

  const hash = createHash("sha256");
  for (const upload of uploads) hash.update(`${upload.target}\0${upload.mode}\0${upload.content}\0`);
  const contentHash = hash.digest("hex");

  return { uploads, installCommand: renderInstallCommand(uploads, contentHash, target), contentHash };
}

function renderInstallCommand(uploads: readonly BackupUpload[], contentHash: string, target: BackupTarget): string {
  const tools = BACKUP_REQUIRED_TOOLS.join(" ");
  // Without systemd nothing runs the scripts on a schedule: a missing tool is only worth a warning.
  const missingTool = target.systemd
    ? `{ echo "mai backups: '$tool' is not installed on the host (apt-get install sqlite3 zstd jq)" >&2; exit 1; }`
    : `echo "mai backups: '$tool' is not installed here; mai-backup cannot run until it is" >&2`;
  return [
    "set -eu",
    `for tool in ${tools}; do`,
    `  command -v "$tool" >/dev/null || ${missingTool}`,
    "done",
    `install -d -m 0755 ${target.paths.etcDir}`,
    `install -d -m 0750 ${target.paths.backupsDir}`,
    // New inode + rename: a backup running right now keeps reading its own copy of the script.
    // A local machine may lack GNU install (-T), so it copies and sets the mode instead.
    ...uploads.map((u) =>
      target.systemd
        ? `install -m ${u.mode} -T ${u.stagedPath} ${u.target}.new && mv -f ${u.target}.new ${u.target}`
        : `cp ${u.stagedPath} ${u.target}.new && chmod ${u.mode} ${u.target}.new && mv -f ${u.target}.new ${u.target}`,
    ),
    ...(target.systemd
      ? [
          "systemctl daemon-reload",
          // Running timers pick up a changed schedule only when restarted.
          "systemctl try-restart 'mai-backup@*.timer'",
        ]
      : []),
    `echo "mai backups: tooling ${contentHash.slice(0, 12)} installed"`,
  ].join("\n");
}

/** The systemd timer of one client. */
export function backupTimerUnit(slug: string): string {
  return `mai-backup@${checkSlug(slug)}.timer`;
}

/** Creates the client's backup directory and enables its nightly timer. */
export function enableBackupCommand(slug: string, backupRoot: string = BACKUP_ROOT): string {
  const timer = backupTimerUnit(slug);
  return [
    "set -eu",
    `install -d -m 0750 ${backupRoot}/${slug}`,
    `systemctl enable --now ${timer}`,
    `echo "mai backups: ${timer} enabled, backups in ${backupRoot}/${slug}"`,
  ].join("\n");
}

/** Disables the client's timer; its backups are never deleted (they outlive the client). */
export function disableBackupCommand(slug: string, backupRoot: string = BACKUP_ROOT): string {
  const timer = backupTimerUnit(slug);
  return [
    `systemctl disable --now ${timer} || echo "mai backups: could not disable ${timer}" >&2`,
    `echo "mai backups: ${timer} disabled; backups in ${backupRoot}/${slug} are kept"`,
  ].join("\n");
}
