/**
 * The monthly invoice per client:
 *
 *   OPENROUTER_PROVISIONING_KEY=$(pulumi config get openrouterProvisioningKey) \
 *     npm run invoice -- --month 2026-10 --host root@<server> [--csv|--json] [--stack prod]
 *
 * Per client: OpenRouter spend in the month (the stack's managed keys `mai-hosting/<stack>/<slug>`,
 * removed clients' disabled keys included), active users and storage from the nightly usage
 * snapshots that `mai-backup` writes next to each client's backups, and with the stack config's
 * `pricing` the amounts and totals. How past months' spend is derived: policy/invoice.ts.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { createOpenRouterClient, type OpenRouterKeyInfo, type RetryPolicy } from "../components/openrouter/api";
import { ConfigError, formatIssue } from "../config/configIssues";
import { readStackFile } from "../config/configuration";
import { parseStackSettings } from "../config/stackSettings";
import {
  buildInvoice,
  isMonth,
  monthOf,
  recordReadings,
  renderInvoiceCsv,
  renderInvoiceTable,
  spendInMonth,
  usageInMonth,
  type ClientMonth,
  type KeyReading,
  type UsageSnapshot,
} from "../policy/invoice";
import { HOST_PATHS } from "../policy/cloudInit";
import { buildUsageReport, provisioningKeyFrom, readClientNames, reportFailure, UsageInputError, type UsageIo } from "./usage";
import { forEachArg } from "./lib/cliArgs";

/** Parsed command line. */
export interface InvoiceOptions {
  /** `YYYY-MM`, UTC. */
  month: string;
  /** Output format. */
  format: "table" | "json" | "csv";
  /** Stack: its keys, and `Pulumi.<stack>.yaml` for the pricing. */
  stack: string;
  /** Directory of client files. */
  clientsDir: string;
  /** Whether the clients directory was given explicitly (then it must exist). */
  clientsDirGiven: boolean;
  /** Directory with `<slug>/usage-YYYY-MM-DD.json`, laid out like the host's backup directory. */
  snapshotsDir?: string;
  /** SSH destinations (`root@<server>`) whose backup directory holds the snapshots. */
  hosts: string[];
  /** JSON file of recorded key readings (read and updated). */
  readingsFile: string;
  /** Print help and exit. */
  help: boolean;
}

export const INVOICE_HELP = `Usage: npm run invoice -- --month YYYY-MM (--host <server>... | --snapshots <dir>)
                          [--json | --csv] [--stack <name>] [--clients <dir>] [--readings <file>]

Per client for one calendar month (UTC): OpenRouter spend, active users, storage and, with
\`pricing\` in Pulumi.<stack>.yaml, the amounts and totals.

  --month YYYY-MM     the month to invoice (this month: spend to date)
  --host <server>     read the usage snapshots that the nightly backup writes on the server, over
                      SSH (root@<address>; repeat for every server of the stack)
  --snapshots <dir>   or read them from a copy, <dir>/<slug>/usage-YYYY-MM-DD.json, of the servers'
                      backup directories (env MAI_USAGE_SNAPSHOTS):
      rsync -a --include='*/' --include='usage-*.json' --exclude='*' root@<server>:/srv/mai/backups/ <dir>/
  --json | --csv      machine-readable output
  --stack <name>      the stack's keys and pricing (default: prod)
  --clients <dir>     client files (default: clients)
  --readings <file>   OpenRouter readings kept between runs; past months' spend comes from them
                      (env MAI_INVOICE_READINGS; default ~/.local/state/mai-hosting/openrouter-readings-<stack>.json)

Environment: OPENROUTER_PROVISIONING_KEY (required), OPENROUTER_API_BASE (API URL), MAI_SSH (ssh).
`;

/** Parses the arguments after `npm run invoice --`. */
export function parseInvoiceArgs(argv: readonly string[], env: NodeJS.ProcessEnv): InvoiceOptions {
  const problems: string[] = [];
  const formats = new Set<"json" | "csv">();
  let month: string | undefined;
  let stack = "prod";
  let clientsDir: string | undefined;
  let snapshotsDir = env.MAI_USAGE_SNAPSHOTS || undefined;
  const hosts: string[] = [];
  let readingsFile = env.MAI_INVOICE_READINGS || undefined;
  let help = false;
  forEachArg(argv, problems, (flag, value, arg) => {
    switch (flag) {
      case "--json":
      case "--csv":
        formats.add(flag.slice(2) as "json" | "csv");
        break;
      case "--month": {
        const given = value();
        if (given !== undefined && !isMonth(given)) problems.push(`--month: expected a month like 2026-10, got "${given}".`);
        else month = given;
        break;
      }
      case "--stack": {
        const given = value();
        if (given !== undefined && !/^[A-Za-z0-9._-]+$/.test(given)) problems.push(`--stack: "${given}" is not a stack name (letters, digits, '.', '_', '-').`);
        else if (given !== undefined) stack = given;
        break;
      }
      case "--clients":
        clientsDir = value();
        break;
      case "--snapshots":
        snapshotsDir = value();
        break;
      case "--host": {
        const host = value();
        if (host !== undefined && !/^([A-Za-z0-9._-]+@)?[A-Za-z0-9.:_-]+$/.test(host)) problems.push(`--host: expected an SSH destination like root@203.0.113.7, got "${host}".`);
        else if (host !== undefined) hosts.push(host);
        break;
      }
      case "--readings":
        readingsFile = value();
        break;
      case "--help":
      case "-h":
        help = true;
        break;
      default:
        problems.push(`unknown argument "${arg}".`);
    }
  });
  if (!help) {
    if (month === undefined && !problems.some((p) => p.startsWith("--month"))) problems.push("--month YYYY-MM is required.");
    if (snapshotsDir === undefined && hosts.length === 0) problems.push("--host <server> or --snapshots <dir> is required (where the usage snapshots are; see below).");
    if (snapshotsDir !== undefined && hosts.length > 0) problems.push("choose one of --host and --snapshots.");
  }
  if (formats.size > 1) problems.push("choose one of --json and --csv.");
  if (problems.length > 0) throw new UsageInputError(problems.join("\n"));
  return {
    month: month ?? "",
    format: formats.size === 1 ? [...formats][0] : "table",
    stack,
    clientsDir: clientsDir ?? "clients",
    clientsDirGiven: clientsDir !== undefined,
    snapshotsDir,
    hosts,
    readingsFile: readingsFile ?? path.join(os.homedir(), ".local", "state", "mai-hosting", `openrouter-readings-${stack}.json`),
    help,
  };
}

const SLUG = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** Where mai-backup writes each client's backups and usage snapshots on a server. */
const BACKUPS_DIR = HOST_PATHS.backupsDir;

/** One snapshot file as found: `<slug>/usage-YYYY-MM-DD.json` and its text. */
interface SnapshotFile {
  /** Where it was found, for messages. */
  origin: string;
  slug: string;
  name: string;
  text: string;
}

/** Parses the month's snapshot files; every malformed one is named at once. */
export function parseUsageSnapshots(files: readonly SnapshotFile[], month: string): Map<string, UsageSnapshot[]> {
  const bySlug = new Map<string, UsageSnapshot[]>();
  const problems: string[] = [];
  for (const file of files) {
    const match = /^usage-(\d{4}-\d{2}-\d{2})\.json$/.exec(file.name);
    if (!SLUG.test(file.slug) || !match || !match[1].startsWith(`${month}-`)) continue;
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(file.text);
    } catch {
      problems.push(`${file.origin}: not valid JSON.`);
      continue;
    }
    const count = (value: unknown) => typeof value === "number" && Number.isInteger(value) && value >= 0;
    if (data.slug !== file.slug || !(data.activeUsers === null || count(data.activeUsers)) || !count(data.volumeBytes) || !count(data.databaseBytes)) {
      problems.push(`${file.origin}: expected {slug: "${file.slug}", activeUsers, volumeBytes, databaseBytes} as written by mai-backup.`);
      continue;
    }
    const list = bySlug.get(file.slug) ?? [];
    list.push({
      slug: file.slug,
      day: match[1],
      activeUsers: data.activeUsers as number | null,
      volumeBytes: data.volumeBytes as number,
      databaseBytes: data.databaseBytes as number,
    });
    bySlug.set(file.slug, list);
  }
  if (problems.length > 0) throw new UsageInputError(problems.join("\n"));
  return bySlug;
}

/** Snapshot files of `month` under `<dir>/<slug>/`. */
export function snapshotFilesInDir(dir: string, month: string): SnapshotFile[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageInputError(`--snapshots: "${dir}" is not a directory.`);
  const files: SnapshotFile[] = [];
  for (const slug of readdirSync(dir).sort()) {
    if (!SLUG.test(slug) || !statSync(path.join(dir, slug)).isDirectory()) continue;
    for (const name of readdirSync(path.join(dir, slug)).sort()) {
      if (!name.startsWith(`usage-${month}-`) || !name.endsWith(".json")) continue;
      const origin = path.join(dir, slug, name);
      files.push({ origin, slug, name, text: readFileSync(origin, "utf8") });
    }
  }
  return files;
}

/**
 * Snapshot files of `month` read over SSH from a server's backup directory: one line per file,
 * `<slug>/<name>` TAB its JSON on one line. `ssh` is `$MAI_SSH` (default ssh) in batch mode.
 */
export function snapshotFilesOnHost(host: string, month: string, env: NodeJS.ProcessEnv): SnapshotFile[] {
  const remote = [
    `cd ${BACKUPS_DIR} 2>/dev/null || exit 0`,
    `for f in */usage-${month}-*.json; do [ -f "$f" ] || continue; printf '%s\\t' "$f"; tr -d '\\n' < "$f"; echo; done`,
  ].join("; ");
  const result = spawnSync(env.MAI_SSH || "ssh", ["-o", "BatchMode=yes", "-o", "ConnectTimeout=20", host, remote], {
    encoding: "utf8",
    timeout: 120_000,
    env,
  });
  if (result.status !== 0) {
    throw new UsageInputError(`--host ${host}: reading the usage snapshots over SSH failed (exit ${result.status ?? "timeout"}): ${(result.stderr ?? "").trim().slice(0, 300)}`);
  }
  return result.stdout
    .split("\n")
    .filter((line) => line.includes("\t"))
    .map((line) => {
      const [where, text] = [line.slice(0, line.indexOf("\t")), line.slice(line.indexOf("\t") + 1)];
      const [slug, name] = where.split("/");
      return { origin: `${host}:${BACKUPS_DIR}/${where}`, slug, name: name ?? "", text };
    });
}

/** The readings file: missing means none yet. */
export function loadReadings(file: string): KeyReading[] {
  if (!existsSync(file)) return [];
  try {
    const data = JSON.parse(readFileSync(file, "utf8")) as { readings?: unknown };
    if (!Array.isArray(data.readings)) throw new Error("no readings list");
    return data.readings.filter(
      (r): r is KeyReading =>
        typeof r?.keyHash === "string" && typeof r?.at === "string" && typeof r?.usageUsd === "number" && (r?.usageMonthlyUsd === null || typeof r?.usageMonthlyUsd === "number"),
    );
  } catch {
    throw new UsageInputError(`--readings: "${file}" is not a readings file written by npm run invoice.`);
  }
}

function saveReadings(file: string, readings: readonly KeyReading[]): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify({ format: "mai-invoice-readings", version: 1, readings }, null, 1)}\n`, { mode: 0o600 });
  renameSync(temp, file);
}

/** Runs the command; returns the exit code (0 ok, 1 API or config failure, 2 usage mistake). */
export async function runInvoice(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: UsageIo,
  options: { now?: Date; retry?: Partial<RetryPolicy>; cwd?: string } = {},
): Promise<number> {
  const now = options.now ?? new Date();
  try {
    const parsed = parseInvoiceArgs(argv, env);
    if (parsed.help) {
      io.stdout(INVOICE_HELP);
      return 0;
    }
    if (parsed.month > monthOf(now)) throw new UsageInputError(`--month: ${parsed.month} has not started yet.`);

    const stackFile = readStackFile(path.join(options.cwd ?? process.cwd(), `Pulumi.${parsed.stack}.yaml`));
    const settings = parseStackSettings(stackFile);
    if (!settings.ok) throw new ConfigError(settings.issues);
    const pricing = settings.settings.pricing ?? null;

    const snapshotFiles =
      parsed.snapshotsDir !== undefined
        ? snapshotFilesInDir(parsed.snapshotsDir, parsed.month)
        : parsed.hosts.flatMap((host) => snapshotFilesOnHost(host, parsed.month, env));
    const snapshots = parseUsageSnapshots(snapshotFiles, parsed.month);
    const readings = loadReadings(parsed.readingsFile);
    const clients = readClientNames(parsed.clientsDir, parsed.clientsDirGiven);
    const api = createOpenRouterClient({
      provisioningKey: provisioningKeyFrom(env, "invoice"),
      apiBaseUrl: env.OPENROUTER_API_BASE || undefined,
      retry: options.retry,
    });
    const keys = await api.listKeys();
    saveReadings(parsed.readingsFile, recordReadings(readings, keys, now));

    // The stack's keys, by client, as `npm run usage` sees them (removed clients' disabled keys included).
    const report = buildUsageReport(keys, { stack: parsed.stack, clientSlugs: clients.slugs, clientsWithOpenRouter: new Set(), now });
    const keyByHash = new Map<string, OpenRouterKeyInfo>(keys.map((key) => [key.hash, key]));
    const months = new Map<string, ClientMonth>();
    const clientMonth = (slug: string): ClientMonth => {
      const existing = months.get(slug);
      if (existing) return existing;
      const created: ClientMonth = { client: slug, spends: [], keyNotes: [], usage: usageInMonth(parsed.month, snapshots.get(slug) ?? []) };
      months.set(slug, created);
      return created;
    };
    for (const row of report.rows) {
      const key = keyByHash.get(row.keyHash);
      if (key === undefined) continue;
      // A key created after the month has nothing to bill in it.
      if (key.createdAt !== null && monthOf(key.createdAt) > parsed.month) continue;
      const month = clientMonth(row.client);
      month.spends.push(spendInMonth(parsed.month, key, readings, now));
      for (const note of row.note.split("; ").filter(Boolean)) if (!month.keyNotes.includes(note)) month.keyNotes.push(note);
    }
    for (const slug of snapshots.keys()) clientMonth(slug);
    if (parsed.month === monthOf(now)) for (const slug of clients.slugs) clientMonth(slug);

    const invoice = buildInvoice(parsed.month, parsed.stack, [...months.values()], pricing, now);
    io.stdout(
      parsed.format === "json" ? `${JSON.stringify(invoice, null, 2)}\n` : parsed.format === "csv" ? renderInvoiceCsv(invoice) : renderInvoiceTable(invoice),
    );
    return 0;
  } catch (error) {
    if (error instanceof ConfigError) {
      io.stderr(`invoice: the stack config is not valid:\n${error.issues.map((issue) => `  ${formatIssue(issue)}`).join("\n")}\n`);
      return 1;
    }
    return reportFailure(error, "invoice", INVOICE_HELP, io);
  }
}

if (require.main === module) {
  runInvoice(process.argv.slice(2), process.env, {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  }).then((code) => {
    process.exitCode = code;
  });
}
