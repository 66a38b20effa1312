/**
 * Nightly per-client database backups on the host: `BackupTooling` installs the scripts, the
 * systemd units and the retention once per host; `ClientBackup` enables one client's timer.
 * What is installed and run is planned in `backupPlan.ts`; these classes only declare resources.
 */
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { BACKUP_HOST_FILES, backupTimerUnit, disableBackupCommand, enableBackupCommand, planBackupTooling } from "../policy/backupPlan";
import type { Host, HostCommand } from "./hosts/host";

/** Reads the tooling's repository files (scripts and units) from the project checkout. */
export function readBackupHostFiles(repoRoot: string = path.join(__dirname, "..")): Record<string, string> {
  const sources: Record<string, string> = {};
  for (const file of BACKUP_HOST_FILES) sources[file.source] = fs.readFileSync(path.join(repoRoot, file.source), "utf8");
  return sources;
}

export interface BackupToolingArgs {
  /** The host the tooling is installed on (its paths; systemd units only where systemd runs). */
  host: Host;
  /** Days each client's backups are kept on the host (stack config `backupRetentionDays`). */
  retentionDays: number;
  /** Contents of the repository's host files; read from the checkout when omitted. */
  sources?: Readonly<Record<string, string>>;
}

/**
 * Host-level backup tooling: `mai-backup`, `mai-restore`, `mai-export`, `mai-import`, their shared
 * `mai-lib.sh`, the `mai-backup@` service and timer templates (where systemd runs), and
 * `backup.env` in the host's config directory. Re-installed whenever any of their content
 * changes. Deleting it leaves the files and every backup on the host.
 */
export class BackupTooling extends pulumi.ComponentResource {
  /** sha256 of everything installed; changes exactly when the install runs again. */
  public readonly contentHash: string;
  /** The install step; per-client timers depend on it. */
  public readonly install: HostCommand;

  constructor(name: string, args: BackupToolingArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mai:index:BackupTooling", name, {}, opts);
    const { host } = args;
    const plan = planBackupTooling(args.sources ?? readBackupHostFiles(), args.retentionDays, { paths: host.paths, systemd: host.hasSystemd });
    this.contentHash = plan.contentHash;

    // The same hash in every copy and in the install: a changed file re-runs both (a command
    // that only depends on a copy would not run again).
    const uploads = plan.uploads.map((upload) =>
      host.putFile(
        `${name}-${upload.name}`,
        { path: upload.stagedPath, content: upload.content, triggers: [plan.contentHash] },
        { parent: this },
      ),
    );
    this.install = host.runCommand(
      `${name}-install`,
      { create: plan.installCommand, triggers: [plan.contentHash] },
      { parent: this, dependsOn: uploads },
    );
    this.registerOutputs({ contentHash: this.contentHash });
  }
}

export interface ClientBackupArgs {
  /** The client's host; it must run systemd (the timer is a systemd unit). */
  host: Host;
  /** The client's slug: backs up volume `mai-<slug>-data` into `<backupsDir>/<slug>`. */
  slug: string;
  /** The host tooling (or anything that installs it); the timer is enabled after it. */
  tooling: pulumi.Resource;
}

/**
 * One client's nightly backup: enables `mai-backup@<slug>.timer`. On delete the timer is
 * disabled; the client's backups are never deleted.
 */
export class ClientBackup extends pulumi.ComponentResource {
  /** The systemd timer unit, e.g. `mai-backup@acme.timer`. */
  public readonly timerUnit: string;

  constructor(name: string, args: ClientBackupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mai:index:ClientBackup", name, {}, opts);
    this.timerUnit = backupTimerUnit(args.slug);
    if (!args.host.hasSystemd) throw new Error(`ClientBackup ${args.slug}: host ${args.host.name} runs no systemd for the timer`);
    args.host.runCommand(
      `${name}-timer`,
      {
        create: enableBackupCommand(args.slug, args.host.paths.backupsDir),
        delete: disableBackupCommand(args.slug, args.host.paths.backupsDir),
      },
      { parent: this, dependsOn: [args.tooling] },
    );
    this.registerOutputs({ timerUnit: this.timerUnit });
  }
}
