/**
 * OpenRouter usage per client, for invoicing.
 *
 *   OPENROUTER_PROVISIONING_KEY=$(pulumi config get openrouterProvisioningKey) npm run usage
 *   npm run usage -- --stack prod --csv > usage.csv
 *
 * Lists every key whose name follows the stack's convention (`mai-hosting/<stack>/<slug>`,
 * see openRouterKeyName) with its usage this month and in total, its limit and what is left.
 * Needs only the provisioning key (env OPENROUTER_PROVISIONING_KEY). The API is the one the stack
 * manages keys through: `--api-base-url`, else env OPENROUTER_API_BASE_URL, else the stack's
 * `openrouterApiBaseUrl` setting (with `--stack`, from `Pulumi.<stack>.yaml`), else OpenRouter's;
 * the same rule as the setting (https, http only on loopback). Client files (`clients/*.yaml`) are
 * only looked at by name, to flag keys without a client and clients with an `openrouter` section
 * but no key.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { apiBaseUrlProblem, normalizeApiBaseUrl } from "../config/apiBaseUrl";
import { readStackFile } from "../config/configuration";
import { ConfigError } from "../config/configIssues";
import {
  createOpenRouterClient,
  DEFAULT_OPENROUTER_API_BASE,
  isOpenRouterApiError,
  parseOpenRouterKeyName,
  type OpenRouterKeyInfo,
  type RetryPolicy,
} from "../components/openrouter/api";
import { forEachArg } from "./lib/cliArgs";

/** Output format of the report. */
export type UsageFormat = "table" | "json" | "csv";

/** Parsed command line. */
export interface UsageOptions {
  /** Output format. */
  format: UsageFormat;
  /** Only keys of this stack; all stacks when undefined. */
  stack?: string;
  /** Directory of client files. */
  clientsDir: string;
  /** Whether the directory was given explicitly (then it must exist). */
  clientsDirGiven: boolean;
  /** API base URL given with `--api-base-url`. */
  apiBaseUrl?: string;
  /** Print help and exit. */
  help: boolean;
}

/** One line of the report: one key. */
export interface UsageRow {
  /** Stack the key belongs to (from its name). */
  stack: string;
  /** Client slug (from the key name). */
  client: string;
  /** Key name at OpenRouter; empty for a client without a key. */
  keyName: string;
  /** Key hash (not secret); empty for a client without a key. */
  keyHash: string;
  /** Whether the key is disabled. */
  disabled: boolean;
  /** Limit in USD per period; null for none. */
  limitUsd: number | null;
  /** Reset period of the limit. */
  limitReset: string;
  /** Spend this month (UTC); null when the API does not report it. */
  usageMonthUsd: number | null;
  /** Spend since the key was created. */
  usageTotalUsd: number;
  /** Limit left in the current period; null without a limit. */
  remainingUsd: number | null;
  /** Anything the operator should notice. */
  note: string;
}

/** The whole report. */
export interface UsageReport {
  /** When the numbers were read (ISO, UTC). */
  generatedAt: string;
  /** Stack filter, or null for all stacks. */
  stack: string | null;
  rows: UsageRow[];
  totals: { usageMonthUsd: number; usageTotalUsd: number };
}

/** A mistake on the command line or in the environment (exit code 2). */
export class UsageInputError extends Error {}

export const USAGE_HELP = `Usage: npm run usage [-- [--json | --csv] [--stack <name>] [--clients <dir>]]

OpenRouter usage per client key: this month (UTC), total, limit and what is left.

  --json            machine-readable report
  --csv             one row per key, for spreadsheets
  --stack <name>    only keys of this stack (default: all stacks)
  --clients <dir>   client files to compare against (default: clients)
  --api-base-url <url>
                    OpenRouter API to read (default: env OPENROUTER_API_BASE_URL, else the
                    stack's openrouterApiBaseUrl from Pulumi.<stack>.yaml with --stack,
                    else ${DEFAULT_OPENROUTER_API_BASE}); https, http only for a loopback host

Environment:
  OPENROUTER_PROVISIONING_KEY  required; e.g.
      OPENROUTER_PROVISIONING_KEY=$(pulumi config get openrouterProvisioningKey) npm run usage
  OPENROUTER_API_BASE_URL      API URL (see --api-base-url)
`;

/** Parses the arguments after `npm run usage --`. */
export function parseUsageArgs(argv: readonly string[]): UsageOptions {
  const options: UsageOptions = { format: "table", clientsDir: "clients", clientsDirGiven: false, help: false };
  const problems: string[] = [];
  const formats = new Set<UsageFormat>();
  forEachArg(argv, problems, (flag, value, arg) => {
    switch (flag) {
      case "--json":
      case "--csv":
        formats.add(flag.slice(2) as UsageFormat);
        break;
      case "--stack": {
        const stack = value();
        if (stack !== undefined) {
          if (/^[A-Za-z0-9._-]+$/.test(stack)) options.stack = stack;
          else problems.push(`--stack: "${stack}" is not a stack name (letters, digits, '.', '_', '-').`);
        }
        break;
      }
      case "--clients": {
        const dir = value();
        if (dir !== undefined) {
          options.clientsDir = dir;
          options.clientsDirGiven = true;
        }
        break;
      }
      case "--api-base-url": {
        const url = value();
        if (url !== undefined) options.apiBaseUrl = url;
        break;
      }
      case "--help":
      case "-h":
        options.help = true;
        break;
      default:
        problems.push(`unknown argument "${arg}".`);
    }
  });
  if (formats.size > 1) problems.push("choose one of --json and --csv.");
  if (formats.size === 1) options.format = [...formats][0];
  if (problems.length > 0) throw new UsageInputError(problems.join("\n"));
  return options;
}

/**
 * The API base URL to read from and where it came from: `--api-base-url`, env
 * OPENROUTER_API_BASE_URL (or its older name OPENROUTER_API_BASE), the stack's
 * `openrouterApiBaseUrl` in `<cwd>/Pulumi.<stack>.yaml` when `--stack` is given, or OpenRouter's.
 * Checked by the rule of the stack setting.
 */
export function resolveApiBaseUrl(options: UsageOptions, env: NodeJS.ProcessEnv, cwd: string): { url: string; source: string } {
  let found: { url: string; source: string } | undefined;
  if (options.apiBaseUrl !== undefined) found = { url: options.apiBaseUrl, source: "--api-base-url" };
  else if (env.OPENROUTER_API_BASE_URL) found = { url: env.OPENROUTER_API_BASE_URL, source: "OPENROUTER_API_BASE_URL" };
  else if (env.OPENROUTER_API_BASE) found = { url: env.OPENROUTER_API_BASE, source: "OPENROUTER_API_BASE" };
  else if (options.stack !== undefined) {
    const file = path.join(cwd, `Pulumi.${options.stack}.yaml`);
    if (existsSync(file)) {
      let value: unknown;
      try {
        value = readStackFile(file).values.openrouterApiBaseUrl;
      } catch (error) {
        if (error instanceof ConfigError) throw new UsageInputError(error.message);
        throw error;
      }
      if (typeof value === "string" && value.trim() !== "") found = { url: value, source: `mai-hosting:openrouterApiBaseUrl in ${path.basename(file)}` };
    }
  }
  if (found === undefined) return { url: DEFAULT_OPENROUTER_API_BASE, source: "default" };
  const problem = apiBaseUrlProblem(found.url);
  if (problem !== undefined) {
    throw new UsageInputError(
      `${found.source}: expected the OpenRouter API base URL, https like "${DEFAULT_OPENROUTER_API_BASE}" (http only for a loopback host such as 127.0.0.1): ${problem}.`,
    );
  }
  return { url: normalizeApiBaseUrl(found.url), source: found.source };
}

/** Client slugs from `<dir>/*.yaml`, and which of them have an `openrouter` section. */
export function readClientNames(dir: string, required: boolean): { slugs: Set<string>; withOpenRouter: Set<string> } {
  const slugs = new Set<string>();
  const withOpenRouter = new Set<string>();
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    if (required) throw new UsageInputError(`--clients: "${dir}" is not a directory.`);
    return { slugs, withOpenRouter };
  }
  for (const file of readdirSync(dir).sort()) {
    const match = /^(.+)\.ya?ml$/.exec(file);
    if (!match) continue;
    slugs.add(match[1]);
    if (/^openrouter\s*:/m.test(readFileSync(path.join(dir, file), "utf8"))) withOpenRouter.add(match[1]);
  }
  return { slugs, withOpenRouter };
}

/** Builds the report from the account's keys. Pure. */
export function buildUsageReport(
  keys: readonly OpenRouterKeyInfo[],
  context: { stack?: string; clientSlugs: Set<string>; clientsWithOpenRouter: Set<string>; now: Date },
): UsageReport {
  const rows: UsageRow[] = [];
  const seen = new Set<string>();
  for (const key of keys) {
    const owner = parseOpenRouterKeyName(key.name);
    if (!owner || (context.stack !== undefined && owner.stack !== context.stack)) continue;
    seen.add(`${owner.stack}/${owner.slug}`);
    const notes: string[] = [];
    if (context.clientSlugs.size > 0 && !context.clientSlugs.has(owner.slug)) notes.push("no client file");
    if (key.disabled) notes.push("disabled");
    const periodUsage = key.limitReset === "monthly" ? key.usageMonthlyUsd : key.limitReset === "none" ? key.usageUsd : null;
    const remaining = key.limitRemainingUsd ?? (key.limitUsd !== null && periodUsage !== null ? Math.max(0, key.limitUsd - periodUsage) : null);
    if (remaining !== null && remaining <= 0 && key.limitUsd !== null) notes.push("limit reached");
    rows.push({
      stack: owner.stack,
      client: owner.slug,
      keyName: key.name,
      keyHash: key.hash,
      disabled: key.disabled,
      limitUsd: key.limitUsd,
      limitReset: key.limitReset,
      usageMonthUsd: key.usageMonthlyUsd,
      usageTotalUsd: key.usageUsd,
      remainingUsd: remaining,
      note: notes.join("; "),
    });
  }
  // With one stack in view, a client asking for a managed key but having none is worth a line.
  if (context.stack !== undefined) {
    for (const slug of context.clientsWithOpenRouter) {
      if (seen.has(`${context.stack}/${slug}`)) continue;
      rows.push({
        stack: context.stack,
        client: slug,
        keyName: "",
        keyHash: "",
        disabled: false,
        limitUsd: null,
        limitReset: "",
        usageMonthUsd: null,
        usageTotalUsd: 0,
        remainingUsd: null,
        note: "no key found (not deployed yet?)",
      });
    }
  }
  rows.sort((a, b) => a.stack.localeCompare(b.stack) || a.client.localeCompare(b.client) || Number(a.disabled) - Number(b.disabled));
  const round = (n: number) => Math.round(n * 1e6) / 1e6;
  return {
    generatedAt: context.now.toISOString(),
    stack: context.stack ?? null,
    rows,
    totals: {
      usageMonthUsd: round(rows.reduce((sum, row) => sum + (row.usageMonthUsd ?? 0), 0)),
      usageTotalUsd: round(rows.reduce((sum, row) => sum + row.usageTotalUsd, 0)),
    },
  };
}

function usd(value: number | null): string {
  return value === null ? "-" : `$${value.toFixed(2)}`;
}

/** Aligned text table for people. */
export function renderUsageTable(report: UsageReport): string {
  const month = report.generatedAt.slice(0, 7);
  const header = ["STACK", "CLIENT", "KEY", "LIMIT", "RESET", `MONTH ${month}`, "REMAINING", "TOTAL", "NOTE"];
  const body = report.rows.map((row) => [
    row.stack,
    row.client,
    row.keyHash === "" ? "-" : `${row.keyHash.slice(0, 10)}…`,
    usd(row.limitUsd),
    row.limitReset || "-",
    usd(row.usageMonthUsd),
    usd(row.remainingUsd),
    row.keyHash === "" ? "-" : usd(row.usageTotalUsd),
    row.note,
  ]);
  const footer = ["TOTAL", "", "", "", "", usd(report.totals.usageMonthUsd), "", usd(report.totals.usageTotalUsd), ""];
  const lines = [header, ...body, footer];
  const widths = header.map((_, col) => Math.max(...lines.map((line) => line[col].length)));
  const numeric = new Set([3, 5, 6, 7]);
  const format = (line: string[]) =>
    line
      .map((cell, col) => (numeric.has(col) ? cell.padStart(widths[col]) : cell.padEnd(widths[col])))
      .join("  ")
      .trimEnd();
  const scope = report.stack === null ? "all stacks" : `stack ${report.stack}`;
  const title = `OpenRouter usage, ${scope}, as of ${report.generatedAt.replace("T", " ").slice(0, 16)} UTC (month = calendar month, UTC)`;
  if (report.rows.length === 0) return `${title}\nNo keys named mai-hosting/<stack>/<client> found.\n`;
  return `${title}\n${lines.map(format).join("\n")}\n`;
}

/** CSV with raw numbers, for spreadsheets. */
export function renderUsageCsv(report: UsageReport): string {
  const quote = (value: string) => (/[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);
  const num = (value: number | null) => (value === null ? "" : String(value));
  const lines = [
    "stack,client,key_name,key_hash,disabled,limit_usd,limit_reset,usage_month_usd,usage_total_usd,remaining_usd,note",
    ...report.rows.map((row) =>
      [
        quote(row.stack),
        quote(row.client),
        quote(row.keyName),
        row.keyHash,
        String(row.disabled),
        num(row.limitUsd),
        row.limitReset,
        num(row.usageMonthUsd),
        row.keyHash === "" ? "" : num(row.usageTotalUsd),
        num(row.remainingUsd),
        quote(row.note),
      ].join(","),
    ),
  ];
  return `${lines.join("\n")}\n`;
}

/** Where the report goes; injectable for tests. */
export interface UsageIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** Runs the command; returns the exit code (0 ok, 1 API failure, 2 usage mistake). */
export async function runUsage(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: UsageIo,
  retry?: Partial<RetryPolicy>,
  cwd: string = process.cwd(),
): Promise<number> {
  let options: UsageOptions;
  try {
    options = parseUsageArgs(argv);
    if (options.help) {
      io.stdout(USAGE_HELP);
      return 0;
    }
    const provisioningKey = provisioningKeyFrom(env, "usage");
    const clients = readClientNames(options.clientsDir, options.clientsDirGiven);
    const apiBaseUrl = resolveApiBaseUrl(options, env, cwd).url;
    const api = createOpenRouterClient({ provisioningKey, apiBaseUrl, retry });
    const keys = await api.listKeys();
    const report = buildUsageReport(keys, {
      stack: options.stack,
      clientSlugs: clients.slugs,
      clientsWithOpenRouter: clients.withOpenRouter,
      now: new Date(),
    });
    io.stdout(
      options.format === "json"
        ? `${JSON.stringify(report, null, 2)}\n`
        : options.format === "csv"
          ? renderUsageCsv(report)
          : renderUsageTable(report),
    );
    return 0;
  } catch (error) {
    return reportFailure(error, "usage", USAGE_HELP, io);
  }
}

/**
 * Prints a failure of a command that reads the OpenRouter API (`usage`, `invoice`) and returns its
 * exit code: 2 for a usage mistake (with the help), 1 for an API or other failure. Never prints a
 * key or a stack trace.
 */
export function reportFailure(error: unknown, command: string, help: string, io: UsageIo): number {
  if (error instanceof UsageInputError) {
    io.stderr(`${command}: ${error.message}\n\n${help}`);
    return 2;
  }
  if (isOpenRouterApiError(error)) {
    const hint =
      error.kind === "unauthorized" || error.kind === "forbidden"
        ? "\nCheck OPENROUTER_PROVISIONING_KEY: it must be the provisioning key from `pulumi config get openrouterProvisioningKey`."
        : "";
    io.stderr(`${command}: ${error.message}${hint}\n`);
    return 1;
  }
  io.stderr(`${command}: unexpected failure: ${error instanceof Error ? error.message : String(error)}\n`);
  return 1;
}

/** The provisioning key from the environment, or a usage mistake saying where to get it. */
export function provisioningKeyFrom(env: NodeJS.ProcessEnv, command: string): string {
  const key = env.OPENROUTER_PROVISIONING_KEY?.trim() ?? "";
  if (key === "") {
    throw new UsageInputError(
      "OPENROUTER_PROVISIONING_KEY is not set. Take it from the stack config:\n" +
        `  OPENROUTER_PROVISIONING_KEY=$(pulumi config get openrouterProvisioningKey) npm run ${command}`,
    );
  }
  return key;
}

if (require.main === module) {
  runUsage(process.argv.slice(2), process.env, {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  }).then((code) => {
    process.exitCode = code;
  });
}
