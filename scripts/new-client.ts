/**
 * `npm run new-client -- <slug> --name "Company ABC" [--admin it@abc.example] [--hostname chat.abc.example] [--port N]
 * [--stack prod] [--clients <dir>]`: writes `clients/<slug>.yaml` with the next free port and the
 * stack defaults (nothing else is needed), refuses an existing or invalid slug, and prints the
 * secret-config command for the client's OpenRouter key and the next steps.
 */
import * as fs from "fs";
import * as path from "path";
import { parse, stringify } from "yaml";
import { isClientFileName, slugProblem, validateClientFile } from "../config/clientFile";
import { formatIssue } from "../config/configIssues";
import { WELL_KNOWN_HOST_PORTS } from "../policy/hostPorts";

/** First port handed out when there are no clients yet. */
export const FIRST_CLIENT_PORT = 8001;

/** What the user asked for. */
export interface NewClientRequest {
  /** Client slug (file name, DNS label). */
  slug: string;
  /** Display name of the organisation. */
  name: string;
  /** E-mail of the client's first admin; default `admin@<slug>.<domain>`. */
  admin?: string;
  /** Custom public hostname; default `<slug>.<domain>`. */
  hostname?: string;
  /** Explicit port; default the next free one. */
  port?: number;
  /** Directory of the client files. */
  clientsDir: string;
  /** Stack whose secret config gets the client's key. */
  stack: string;
}

/** The result of a successful creation. */
export interface NewClientResult {
  /** Path of the written file. */
  file: string;
  /** Port given to the client. */
  port: number;
  /** Lines to print: the secret command and the next steps. */
  instructions: string[];
}

/** A user mistake; the message is printed as is. */
export class NewClientError extends Error {}

/** Ports used by the client files in `dir` (unreadable files are skipped: `npm run check` reports them). */
export function usedPorts(dir: string): number[] {
  if (!fs.existsSync(dir)) return [];
  const ports: number[] = [];
  for (const file of fs.readdirSync(dir).filter(isClientFileName)) {
    try {
      const port = (parse(fs.readFileSync(path.join(dir, file), "utf8")) as { port?: unknown } | null)?.port;
      if (typeof port === "number" && Number.isInteger(port)) ports.push(port);
    } catch {
      // Broken YAML is reported by `npm run check`; it does not block choosing a port.
    }
  }
  return ports;
}

/**
 * The port after the highest one in use (ports of removed clients are not reused), or the first;
 * never a port a host service may own (Caddy's admin API, a local proxy's default ports).
 */
export function nextFreePort(ports: readonly number[]): number {
  let port = ports.length === 0 ? FIRST_CLIENT_PORT : Math.max(FIRST_CLIENT_PORT - 1, ...ports) + 1;
  while (WELL_KNOWN_HOST_PORTS.includes(port)) port++;
  return port;
}

/** The command that stores the client's OpenRouter key as a secret in the stack config. */
export function keyCommand(slug: string, stack: string): string {
  return `pulumi config set --secret --path 'openrouterApiKeys.${slug}' <openrouter-api-key> --stack ${stack}`;
}

/** Text of a new client file: only what differs from the stack defaults. */
export function clientFileText(request: Pick<NewClientRequest, "name" | "hostname" | "admin">, port: number): string {
  const body: Record<string, unknown> = { name: request.name, port };
  if (request.admin) body.admin = request.admin;
  if (request.hostname) body.hostname = request.hostname;
  return [
    "# yaml-language-server: $schema=../schema/client.schema.json",
    stringify(body).trimEnd(),
    "# Optional (defaults come from the stack config):",
    ...(request.admin ? [] : ["# admin: it@example.com     # the first admin's e-mail; default admin@<slug>.<domain>"]),
    "# status: active            # or suspended: container removed, data and DNS kept",
    "# resources:",
    "#   cpus: 2",
    "#   memory: 4G",
    "#   reservations: { cpus: 0.5, memory: 1G }",
    "# env:",
    '#   DEFAULT_LOCALE: "de-DE"  # non-secret settings only',
    "",
  ].join("\n");
}

/** Validates the request, writes the file and returns what to print. Throws NewClientError on mistakes. */
export function createClient(request: NewClientRequest): NewClientResult {
  const problem = slugProblem(request.slug);
  if (problem !== undefined) throw new NewClientError(`slug: ${problem}`);
  const existing = ["yaml", "yml"].map((ext) => path.join(request.clientsDir, `${request.slug}.${ext}`)).find((f) => fs.existsSync(f));
  if (existing) throw new NewClientError(`client "${request.slug}" already exists: ${existing}`);

  const ports = usedPorts(request.clientsDir);
  const port = request.port ?? nextFreePort(ports);
  if (ports.includes(port)) throw new NewClientError(`--port: ${port} is already used by another client; leave --port out to take the next free one`);
  if (WELL_KNOWN_HOST_PORTS.includes(port)) {
    throw new NewClientError(`--port: ${port} is a port a host service listens on (${WELL_KNOWN_HOST_PORTS.join(", ")}); leave --port out to take the next free one`);
  }

  const file = path.join(request.clientsDir, `${request.slug}.yaml`);
  const text = clientFileText(request, port);
  // The same checks as `npm run check`, so a bad --name or --hostname is refused with the same message.
  const result = validateClientFile(file, text);
  if (!result.ok) {
    // Name the command-line option, not the (unwritten) file.
    throw new NewClientError(result.issues.map((issue) => (issue.path ? `--${issue.path}: ${issue.message}` : formatIssue(issue))).join("\n"));
  }

  fs.mkdirSync(request.clientsDir, { recursive: true });
  fs.writeFileSync(file, text, { flag: "wx" });
  const instructions = [
    `Created ${file} (port ${port}${request.hostname ? `, https://${request.hostname}` : ""}).`,
    "",
    "Next steps:",
    "  1. Store the client's OpenRouter API key as a secret (never in the client file):",
    `       ${keyCommand(request.slug, request.stack)}`,
    "  2. Adjust resources or env in the file if the defaults do not fit, then validate:",
    "       npm run check",
    "  3. See exactly what will change:",
    "       npm run plan -- --base HEAD",
    `  4. Commit ${path.relative(process.cwd(), file) || file} and Pulumi.${request.stack}.yaml and open a pull request; merging deploys it.`,
    `  5. After the deployment, hand the first admin account (${request.admin ?? `admin@${request.slug}.<domain>`}) over to the client:`,
    `       pulumi stack output clientAdmins --stack ${request.stack} --show-secrets   (docs/runbook.md: "Hand over a new workspace")`,
  ];
  if (request.hostname) {
    instructions.push(`  Custom hostname: ask the client to point ${request.hostname} (CNAME) at ${request.slug}.<domain> before deploying.`);
  }
  return { file, port, instructions };
}

const usage =
  'usage: npm run new-client -- <slug> --name "Company ABC" [--admin it@abc.example] [--hostname chat.abc.example] [--port N] [--stack prod] [--clients <dir>]';

/** Parses the command line; throws NewClientError with the usage on mistakes. */
export function parseNewClientArgs(argv: readonly string[], defaults: { clientsDir: string; stack: string }): NewClientRequest {
  const values: Record<string, string> = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") throw new NewClientError(usage);
    if (arg.startsWith("--")) {
      const [flag, inline] = arg.slice(2).split(/=(.*)/s, 2);
      if (!["name", "admin", "hostname", "port", "stack", "clients"].includes(flag)) throw new NewClientError(`unknown option --${flag}\n${usage}`);
      const value = inline ?? argv[++i];
      if (value === undefined || value.startsWith("--")) throw new NewClientError(`--${flag} needs a value\n${usage}`);
      values[flag] = value;
    } else positional.push(arg);
  }
  if (positional.length !== 1) throw new NewClientError(`expected exactly one slug\n${usage}`);
  if (values.name === undefined) throw new NewClientError(`--name is required\n${usage}`);
  let port: number | undefined;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!Number.isInteger(port) || port < 1024 || port > 65535) throw new NewClientError(`--port: expected an integer from 1024 to 65535, got "${values.port}"`);
  }
  return {
    slug: positional[0],
    name: values.name,
    ...(values.admin === undefined ? {} : { admin: values.admin }),
    hostname: values.hostname,
    port,
    stack: values.stack ?? defaults.stack,
    clientsDir: values.clients ?? defaults.clientsDir,
  };
}

function main(): void {
  try {
    const request = parseNewClientArgs(process.argv.slice(2), {
      clientsDir: path.relative(process.cwd(), path.join(__dirname, "..", "clients")) || "clients",
      stack: "prod",
    });
    console.log(createClient(request).instructions.join("\n"));
  } catch (err) {
    if (!(err instanceof NewClientError)) throw err;
    console.error(err.message);
    process.exit(1);
  }
}

if (require.main === module) main();
