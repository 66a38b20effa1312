/**
 * Nightly per-client database backups on the host: `BackupTooling` installs the scripts, the
 * systemd units and the retention once per host; `ClientBackup` enables one client's timer.
 * What is installed and run is planned in `backupPlan.ts`; these classes only declare resources.
 */
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { BACKUP_HOST_FILES, backupTimerUnit, disableBackupCommand, enableBackupCommand, planBackupTooling } from "../policy/backupPlan";

/** Reads the tooling's repository files (scripts and units) from the project checkout. */
export function readBackupHostFiles(repoRoot: string = path.join(__dirname, "..")): Record<string, string> {
  const sources: Record<string, string> = {};
  for (const file of BACKUP_HOST_FILES) sources[file.source] = fs.readFileSync(path.join(repoRoot, file.source), "utf8");
  return sources;
}

export interface BackupToolingArgs {
  /** SSH connection to the host as root (waits for cloud-init). */
  connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
  /** Days each client's backups are kept on the host (stack config `backupRetentionDays`). */
  retentionDays: number;
  /** Contents of the repository's host files; read from the checkout when omitted. */
  sources?: Readonly<Record<string, string>>;
}

/**
 * Host-level backup tooling: `mai-backup`, `mai-restore`, `mai-export`, `mai-import`, their shared
 * `mai-lib.sh`, the `mai-backup@` service and timer templates, and `/etc/mai/backup.env`. Re-installed whenever any of their content changes.
 * Deleting it leaves the files and every backup on the host.
 */
export class BackupTooling extends pulumi.ComponentResource {
  /** sha256 of everything installed; changes exactly when the install runs again. */
  public readonly contentHash: string;
  /** The install step; per-client timers depend on it. */
  public readonly install: command.remote.Command;

  constructor(name: string, args: BackupToolingArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mai:index:BackupTooling", name, {}, opts);
    const plan = planBackupTooling(args.sources ?? readBackupHostFiles(), args.retentionDays);
    this.contentHash = plan.contentHash;

    // The same hash in every copy and in the install: a changed file re-runs both (a command
    // that only depends on a copy would not run again).
    const uploads = plan.uploads.map(
      (upload) =>
        new command.remote.CopyToRemote(
          `${name}-${upload.name}`,
          {
            connection: args.connection,
            source: new pulumi.asset.StringAsset(upload.content),
            remotePath: upload.stagedPath,
            triggers: [plan.contentHash],
          },
          { parent: this },
        ),
    );
    this.install = new command.remote.Command(
      `${name}-install`,
      { connection: args.connection, create: plan.installCommand, triggers: [plan.contentHash] },
      { parent: this, dependsOn: uploads },
    );
    this.registerOutputs({ contentHash: this.contentHash });
  }
}

export interface ClientBackupArgs {
  /** SSH connection to the host as root. */
  connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
  /** The client's slug: backs up volume `mai-<slug>-data` into `/srv/mai/backups/<slug>`. */
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
    new command.remote.Command(
      `${name}-timer`,
      {
        connection: args.connection,
        create: enableBackupCommand(args.slug),
        delete: disableBackupCommand(args.slug),
      },
      { parent: this, dependsOn: [args.tooling] },
    );
    this.registerOutputs({ timerUnit: this.timerUnit });
  }
}
