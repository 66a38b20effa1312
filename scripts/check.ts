/**
 * `npm run check -- [--clients <dir>] [--stack <name>]`: validates the stack config and every client
 * file without touching anything. Exit 0: valid (summary and warnings printed); 1: invalid (every
 * problem printed, one per line); 2: bad usage.
 */
import { capacitySummary } from "../policy/capacity";
import { ConfigError, capIssuesPerFile, formatIssue } from "../config/configIssues";
import { clientKeyCommand, keysOptional, loadConfigurationFiles, missingClientKeys } from "../config/configuration";

const USAGE = "usage: npm run check -- [--clients <dir>] [--stack <name>]   (defaults: --clients clients --stack prod)";

interface Options {
  clientsDir: string;
  stack: string;
}

function parseArguments(argv: string[]): Options | { usageError: string } | { help: true } {
  const options: Options = { clientsDir: "clients", stack: "prod" };
  for (let i = 0; i < argv.length; i++) {
    const argument = argv[i];
    if (argument === "--help" || argument === "-h") return { help: true };
    const [flag, inline] = argument.startsWith("--") && argument.includes("=") ? argument.split(/=(.*)/s, 2) : [argument, undefined];
    if (flag !== "--clients" && flag !== "--stack") return { usageError: `unknown argument "${argument}"` };
    const value = inline ?? argv[++i];
    if (value === undefined || value === "" || value.startsWith("--")) return { usageError: `${flag} needs a value` };
    if (flag === "--clients") options.clientsDir = value;
    else if (!/^[A-Za-z0-9_.-]+$/.test(value)) return { usageError: `invalid stack name "${value}"` };
    else options.stack = value;
  }
  return options;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function run(argv: string[]): number {
  const parsed = parseArguments(argv);
  if ("help" in parsed) {
    console.log(USAGE);
    return 0;
  }
  if ("usageError" in parsed) {
    console.error(`check: ${parsed.usageError}`);
    console.error(USAGE);
    return 2;
  }

  let loaded: ReturnType<typeof loadConfigurationFiles>;
  try {
    loaded = loadConfigurationFiles(`Pulumi.${parsed.stack}.yaml`, parsed.clientsDir);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const found of capIssuesPerFile(error.issues)) console.error(formatIssue(found));
    console.error(`check failed: ${plural(error.issues.length, "problem")}`);
    return 1;
  }
  const { stackFile: stack, configuration } = loaded;

  const { clients, capacity } = configuration;
  const active = clients.filter((client) => client.status === "active").length;
  const servers = configuration.settings.servers.length;
  console.log(`OK: ${plural(clients.length, "client")} (${active} active, ${clients.length - active} suspended) on ${plural(servers, "server")}`);
  for (const report of capacity) console.log(`  ${capacitySummary(report)}`);
  if (clients.length === 0) console.log(`warning: no client files (*.yaml) in ${parsed.clientsDir}`);
  for (const warning of configuration.warnings) console.log(`warning: ${warning}`);
  const localOnly = keysOptional(configuration.settings);
  for (const slug of missingClientKeys(clients, stack.secretPaths)) {
    const managed = clients.find((client) => client.slug === slug)?.openrouter?.monthlyLimitUsd !== undefined;
    const alternative = managed ? " (or set openrouterProvisioningKey for a managed key)" : "";
    const consequence = localOnly ? " (a local stack runs it without one: no model answers)" : "";
    console.log(`warning: client "${slug}" has no OpenRouter key${consequence}; set it with: ${clientKeyCommand(slug, parsed.stack)}${alternative}`);
  }
  return 0;
}

try {
  process.exitCode = run(process.argv.slice(2));
} catch (error) {
  // A bug, not a user mistake: still no stack trace in the user's face.
  console.error(`check: internal error: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
