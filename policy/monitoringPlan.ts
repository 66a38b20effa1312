/**
 * What the operator's-view tooling puts on a host (`mai-status`, `mai-sample`, `mai-alert`, their
 * timers and settings) and the shell commands that install it. Pure functions (no Pulumi
 * imports): `components/monitoring.ts` wires them into resources; the tests check the files,
 * paths and commands here. Same deploy pattern as the backup tooling: staged uploads, one install
 * step with the content hash in its triggers, files swapped by rename.
 */
import { createHash } from "node:crypto";
import { webhookUrlProblem } from "../config/alerts";
import { HOST_PATHS } from "./cloudInit";

/** Where the tooling lives on a host; production defaults in `MONITORING_PATHS`. */
export interface MonitoringPaths {
  /** Scripts (`mai-status`, ...). */
  binDir: string;
  /** Settings (`status.env`, `alerts.env`). */
  etcDir: string;
  /** State kept between runs (samples.db, alert state). */
  stateDir: string;
  /** systemd unit files. */
  unitDir: string;
}

/** Production paths (Hetzner hosts). */
export const MONITORING_PATHS: MonitoringPaths = {
  binDir: "/usr/local/sbin",
  etcDir: HOST_PATHS.etcDir,
  stateDir: "/var/lib/mai",
  unitDir: "/etc/systemd/system",
};

/** Host tools the scripts call: cloud-init installs jq, curl and sqlite3; flock is util-linux. */
export const MONITORING_REQUIRED_TOOLS = ["jq", "curl", "sqlite3", "flock"] as const;

/** The timers the tooling enables where systemd runs. */
export const MONITORING_TIMERS = ["mai-sample.timer", "mai-alert.timer"] as const;

/** Thresholds the alerts use (docs/runbook.md, "The operator's view"); written to `status.env`. */
export const ALERT_THRESHOLDS = {
  /** Disk use above this percentage of any file system holding /, Docker's data or the backups. */
  diskPercent: 85,
  /** A client's newest good backup older than this (nightly schedule: at most ~24 h + 2 h spread). */
  backupMaxAgeHours: 26,
  /** A publicly trusted certificate with fewer days left than this (Caddy renews at ~30). */
  certificateDays: 14,
  /** This many restarts, the last one within `restartWindowMinutes`, is a restart loop. */
  restartCount: 3,
  restartWindowMinutes: 15,
} as const;

/** One file of the tooling from the repository. */
export interface MonitoringHostFile {
  /** Path in the repository, relative to its root. */
  source: string;
  /** Directory it is installed into, and its name there. */
  dir: keyof MonitoringPaths;
  name: string;
  /** Whether it is a systemd unit (installed only where systemd runs). */
  unit: boolean;
}

/** Scripts first, then units. */
export const MONITORING_HOST_FILES: readonly MonitoringHostFile[] = [
  { source: "host/mai-status.sh", dir: "binDir", name: "mai-status", unit: false },
  { source: "host/mai-sample.sh", dir: "binDir", name: "mai-sample", unit: false },
  { source: "host/mai-alert.sh", dir: "binDir", name: "mai-alert", unit: false },
  { source: "host/mai-sample.service", dir: "unitDir", name: "mai-sample.service", unit: true },
  { source: "host/mai-sample.timer", dir: "unitDir", name: "mai-sample.timer", unit: true },
  { source: "host/mai-alert.service", dir: "unitDir", name: "mai-alert.service", unit: true },
  { source: "host/mai-alert.timer", dir: "unitDir", name: "mai-alert.timer", unit: true },
];

/** One upload: content copied to a staging path, then installed at `target`. */
export interface MonitoringUpload {
  /** Short stable name used in resource names. */
  name: string;
  content: string;
  stagedPath: string;
  target: string;
  mode: "0755" | "0644";
}

/** Everything the tooling resources need. */
export interface MonitoringPlan {
  /** Scripts, units (where systemd runs) and `status.env`. */
  uploads: MonitoringUpload[];
  /** Creates the staging directory the uploads land in (before any upload). */
  stagingCommand: string;
  /** Checks the host tools, installs the uploads, enables the timers (where systemd runs). */
  installCommand: string;
  /** sha256 over every upload's target, mode and content; triggers the copies and the install. */
  contentHash: string;
  /** Where the webhook settings go (0600); written by a separate step from a secret. */
  alertsEnvPath: string;
  /** Command that writes `alertsEnvPath` from stdin (the secret never appears in the command). */
  alertsEnvCommand: string;
  /** Command run when the tooling is deleted: stops the timers, keeps files and state. */
  deleteCommand: string;
}

/** Options of `planMonitoring`. */
export interface MonitoringOptions {
  /** Host paths; production defaults. */
  paths?: MonitoringPaths;
  /** Install and enable the timers (false on hosts without systemd, e.g. the local engine). */
  hasSystemd?: boolean;
}

/** The stack-owned thresholds file; the operator's overrides go in `status.local.env`. */
export function renderStatusEnv(etcDir: string = MONITORING_PATHS.etcDir): string {
  const t = ALERT_THRESHOLDS;
  return [
    "# Written by the mai-hosting stack; edits here are overwritten.",
    `# Override a threshold in ${etcDir}/status.local.env (read after this file).`,
    `ALERT_DISK_PERCENT=${t.diskPercent}`,
    `ALERT_BACKUP_MAX_AGE_HOURS=${t.backupMaxAgeHours}`,
    `ALERT_CERT_DAYS=${t.certificateDays}`,
    `ALERT_RESTART_COUNT=${t.restartCount}`,
    `ALERT_RESTART_WINDOW_MINUTES=${t.restartWindowMinutes}`,
    "",
  ].join("\n");
}

/** Single-quotes a value for a shell env file sourced by bash. */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * The content of `alerts.env` (mode 0600). Secret: give it to the host only as a secret value
 * (stdin of a command), never as an asset or in a command line. Empty URL: alerts off.
 */
export function renderAlertsEnv(webhookUrl: string | undefined): string {
  const url = webhookUrl?.trim() ?? "";
  if (url !== "") {
    const problem = webhookUrlProblem(url);
    if (problem) throw new Error(`alertWebhookUrl: ${problem}`);
  }
  return [
    "# Written by the mai-hosting stack from the secret config alertWebhookUrl; mode 0600.",
    `ALERT_WEBHOOK_URL=${shellQuote(url)}`,
    "",
  ].join("\n");
}

/**
 * Plans the tooling from the repository files' contents (`sources`, keyed by
 * `MonitoringHostFile.source`). Throws naming any missing file.
 */
export function planMonitoring(sources: Readonly<Record<string, string>>, options: MonitoringOptions = {}): MonitoringPlan {
  const paths = options.paths ?? MONITORING_PATHS;
  const hasSystemd = options.hasSystemd ?? true;
  const files = MONITORING_HOST_FILES.filter((file) => hasSystemd || !file.unit);
  const missing = files.filter((file) => sources[file.source] === undefined).map((file) => file.source);
  if (missing.length > 0) throw new Error(`monitoring tooling: missing repository file(s) ${missing.join(", ")}`);

  const staging = `${paths.stateDir}/staging/monitoring`;
  const uploads: MonitoringUpload[] = files.map((file) => ({
    name: file.name,
    content: sources[file.source],
    stagedPath: `${staging}/${file.name}`,
    target: `${paths[file.dir]}/${file.name}`,
    mode: file.unit ? "0644" : "0755",
  }));
  uploads.push({
    name: "status.env",
    content: renderStatusEnv(paths.etcDir),
    stagedPath: `${staging}/status.env`,
    target: `${paths.etcDir}/status.env`,
    mode: "0644",
  });

  const hash = createHash("sha256");
  for (const upload of uploads) hash.update(`${upload.target}\0${upload.mode}\0${upload.content}\0`);
  const contentHash = hash.digest("hex");

  const alertsEnvPath = `${paths.etcDir}/alerts.env`;
  return {
    uploads,
    stagingCommand: `install -d -m 0700 ${staging}`,
    installCommand: renderInstallCommand(uploads, paths, hasSystemd, contentHash),
    contentHash,
    alertsEnvPath,
    alertsEnvCommand: [
      "set -eu",
      "umask 077",
      `install -d -m 0755 ${paths.etcDir}`,
      `cat > ${alertsEnvPath}.new`,
      `chmod 0600 ${alertsEnvPath}.new`,
      `mv -f ${alertsEnvPath}.new ${alertsEnvPath}`,
      `echo "mai monitoring: ${alertsEnvPath} written"`,
    ].join("\n"),
    deleteCommand: hasSystemd
      ? `systemctl disable --now ${MONITORING_TIMERS.join(" ")} || echo "mai monitoring: could not disable the timers" >&2`
      : "true",
  };
}

function renderInstallCommand(uploads: readonly MonitoringUpload[], paths: MonitoringPaths, hasSystemd: boolean, contentHash: string): string {
  const lines = [
    "set -eu",
    `for tool in ${MONITORING_REQUIRED_TOOLS.join(" ")}; do`,
    `  command -v "$tool" >/dev/null || { echo "mai monitoring: '$tool' is not installed on the host (apt-get install jq curl sqlite3)" >&2; exit 1; }`,
    "done",
    `install -d -m 0755 ${paths.etcDir} ${paths.binDir}`,
    `install -d -m 0700 ${paths.stateDir}`,
    // New inode + rename: a run in progress keeps its own copy of the script.
    ...uploads.map((u) => `install -m ${u.mode} -T ${u.stagedPath} ${u.target}.new && mv -f ${u.target}.new ${u.target}`),
  ];
  if (hasSystemd) {
    lines.push("systemctl daemon-reload", `systemctl enable --now ${MONITORING_TIMERS.join(" ")}`);
  }
  lines.push(`echo "mai monitoring: tooling ${contentHash.slice(0, 12)} installed${hasSystemd ? ", timers enabled" : " (no timers: no systemd)"}"`);
  return lines.join("\n");
}
