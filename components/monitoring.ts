/**
 * The operator's view on a host: `mai-status`, `mai-sample` and `mai-alert` with their timers,
 * the alert thresholds and the webhook settings. What is installed is planned in
 * `policy/monitoringPlan.ts`; this class only declares the resources.
 */
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { MONITORING_HOST_FILES, MONITORING_PATHS, planMonitoring, renderAlertsEnv } from "../policy/monitoringPlan";
import type { Host } from "./hosts/host";

/** Reads the tooling's repository files (scripts and units) from the project checkout. */
export function readMonitoringHostFiles(repoRoot: string = path.join(__dirname, "..")): Record<string, string> {
  const sources: Record<string, string> = {};
  for (const file of MONITORING_HOST_FILES) sources[file.source] = fs.readFileSync(path.join(repoRoot, file.source), "utf8");
  return sources;
}

export interface MonitoringToolingArgs {
  /** The host the tooling is installed on (its paths; timers only where systemd runs). */
  host: Host;
  /** Alert webhook URL (secret stack config `alertWebhookUrl`); without it no alert is sent. */
  alertWebhookUrl?: pulumi.Input<string>;
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
    const { host } = args;
    const paths = { binDir: host.paths.binDir, etcDir: host.paths.etcDir, stateDir: host.paths.stateDir, unitDir: MONITORING_PATHS.unitDir };
    const plan = planMonitoring(args.sources ?? readMonitoringHostFiles(), { paths, hasSystemd: host.hasSystemd });
    this.contentHash = plan.contentHash;

    // The copies do not create missing parent directories.
    const staging = host.runCommand(`${name}-staging`, { create: plan.stagingCommand }, { parent: this });

    // The same hash in every copy and in the install: a changed file re-runs both.
    const uploads = plan.uploads.map((upload) =>
      host.putFile(
        `${name}-${upload.name}`,
        { path: upload.stagedPath, content: upload.content, triggers: [plan.contentHash] },
        { parent: this, dependsOn: [staging] },
      ),
    );

    // The URL only ever travels as the secret stdin of this command: never in an asset, a
    // command line, a trigger or the plan. A changed URL changes stdin, which re-runs it.
    const alertsEnv = host.runCommand(
      `${name}-alerts-env`,
      {
        create: plan.alertsEnvCommand,
        stdin: pulumi.secret(pulumi.output(args.alertWebhookUrl ?? "").apply((url) => renderAlertsEnv(url))),
        logging: "none",
      },
      { parent: this },
    );

    host.runCommand(
      `${name}-install`,
      { create: plan.installCommand, delete: plan.deleteCommand, triggers: [plan.contentHash] },
      { parent: this, dependsOn: [...uploads, alertsEnv] },
    );
    this.registerOutputs({ contentHash: this.contentHash });
  }
}
