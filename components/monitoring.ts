/**
 * The operator's view on a host: `mai-status`, `mai-sample` and `mai-alert` with their timers,
 * the alert thresholds and the webhook settings. What is installed is planned in
 * `policy/monitoringPlan.ts`; this class only declares the resources.
 */
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { MONITORING_HOST_FILES, type MonitoringPaths, planMonitoring, renderAlertsEnv } from "../policy/monitoringPlan";

/** Reads the tooling's repository files (scripts and units) from the project checkout. */
export function readMonitoringHostFiles(repoRoot: string = path.join(__dirname, "..")): Record<string, string> {
  const sources: Record<string, string> = {};
  for (const file of MONITORING_HOST_FILES) sources[file.source] = fs.readFileSync(path.join(repoRoot, file.source), "utf8");
  return sources;
}

export interface MonitoringToolingArgs {
  /** SSH connection to the host as root (waits for cloud-init). */
  connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
  /** Alert webhook URL (secret stack config `alertWebhookUrl`); without it no alert is sent. */
  alertWebhookUrl?: pulumi.Input<string>;
  /** Whether the host runs systemd: the sampler and alert timers are enabled only there. */
  hasSystemd?: boolean;
  /** Host paths; production defaults. */
  paths?: MonitoringPaths;
  /** Contents of the repository's host files; read from the checkout when omitted. */
  sources?: Readonly<Record<string, string>>;
}

/**
 * Host-level monitoring tooling. Re-installed whenever a script, unit or threshold changes; the
 * webhook file is rewritten whenever the URL changes. Deleting it stops the timers and leaves the
 * files, the samples and the alert state on the host.
 */
export class MonitoringTooling extends pulumi.ComponentResource {
  /** sha256 of everything installed (not of the secret webhook URL). */
  public readonly contentHash: string;

  constructor(name: string, args: MonitoringToolingArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mai:index:MonitoringTooling", name, {}, opts);
    const plan = planMonitoring(args.sources ?? readMonitoringHostFiles(), { paths: args.paths, hasSystemd: args.hasSystemd });
    this.contentHash = plan.contentHash;

    // The copies do not create missing parent directories.
    const staging = new command.remote.Command(
      `${name}-staging`,
      { connection: args.connection, create: plan.stagingCommand },
      { parent: this },
    );

    // The same hash in every copy and in the install: a changed file re-runs both.
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
          { parent: this, dependsOn: [staging] },
        ),
    );

    // The URL only ever travels as the secret stdin of this command: never in an asset, a
    // command line, a trigger or the plan. A changed URL changes stdin, which re-runs it.
    const alertsEnv = new command.remote.Command(
      `${name}-alerts-env`,
      {
        connection: args.connection,
        create: plan.alertsEnvCommand,
        stdin: pulumi.secret(pulumi.output(args.alertWebhookUrl ?? "").apply((url) => renderAlertsEnv(url))),
        logging: "none",
      },
      { parent: this },
    );

    new command.remote.Command(
      `${name}-install`,
      { connection: args.connection, create: plan.installCommand, delete: plan.deleteCommand, triggers: [plan.contentHash] },
      { parent: this, dependsOn: [...uploads, alertsEnv] },
    );
    this.registerOutputs({ contentHash: this.contentHash });
  }
}
