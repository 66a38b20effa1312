/**
 * `npm run status [-- --stack <name>] [--json] [--advice]`: the live state of every server of the
 * stack (read with `mai-status` through the connection the stack uses) against the client files.
 * Exit 0: everything healthy; 1: something is not (each problem is listed); 2: bad usage or
 * invalid configuration. Reads only: a client the files do not know is shown, never touched.
 */
import { spawnSync } from "child_process";
import { ConfigError, capIssuesPerFile, formatIssue } from "../config/configIssues";
import { loadConfigurationFiles } from "../config/configuration";
import type { ClientSpec, LocalServerSpec, ServerSpec } from "../config/model";
import { DEFAULT_SERVER_NAME } from "../config/servers";
import { localHostPaths } from "../policy/localHost";
import { buildAdvice, parseSampleSummary, renderAdvice, type AdviceReport, type SampleSummary } from "../policy/advice";
import { buildStatusReport, parseHostStatus, renderStatus, type ExpectedClient, type ServerAnswer } from "../policy/status";
import { localRunner, sshRunner, type HostRunner } from "./lib/hostRunner";

export const STATUS_HELP = `Usage: npm run status [-- [--stack <name>] [--clients <dir>] [--json] [--advice] [--local] [--host <server>=<address>]]

Live state of every client and server of the stack, compared with the client files.

  --stack <name>        stack (default: prod); reads Pulumi.<name>.yaml
  --clients <dir>       client files (default: clients)
  --json                machine-readable report
  --advice              also: right-sizing advice from the measured CPU and memory
  --local               read the local Docker Engine (this machine) for every server
  --host <srv>=<addr>   address of a server (default: \`pulumi stack output serverIpv4\`)

Exit code: 0 everything healthy, 1 a problem (listed), 2 bad usage or configuration.
`;

/** The default server's name when the stack has no \`servers\` setting. */
export const DEFAULT_SERVER = DEFAULT_SERVER_NAME;

interface StatusOptions {
  stack: string;
  clientsDir: string;
  json: boolean;
  advice: boolean;
  local: boolean;
  hosts: Map<string, string>;
  help: boolean;
}

class UsageError extends Error {}

export function parseStatusArgs(argv: readonly string[]): StatusOptions {
  const options: StatusOptions = { stack: "prod", clientsDir: "clients", json: false, advice: false, local: false, hosts: new Map(), help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const value = (): string => {
      const given = inline ?? argv[++i];
      if (given === undefined || given === "" || given.startsWith("--")) throw new UsageError(`${flag} needs a value`);
      return given;
    };
    switch (flag) {
      case "--stack": {
        const stack = value();
        if (!/^[A-Za-z0-9_.-]+$/.test(stack)) throw new UsageError(`invalid stack name "${stack}"`);
        options.stack = stack;
        break;
      }
      case "--clients":
        options.clientsDir = value();
        break;
      case "--json":
        options.json = true;
        break;
      case "--advice":
        options.advice = true;
        break;
      case "--local":
        options.local = true;
        break;
      case "--host": {
        const spec = value();
        const match = /^([a-z0-9-]+)=([A-Za-z0-9.:[\]-]+)$/.exec(spec);
        if (!match) throw new UsageError(`--host expects <server>=<address>, got "${spec}"`);
        options.hosts.set(match[1], match[2]);
        break;
      }
      case "--help":
      case "-h":
        options.help = true;
        break;
      default:
        throw new UsageError(`unknown argument "${arg}"`);
    }
  }
  return options;
}

/** The client files as the report expects them. */
export function expectedClients(clients: readonly ClientSpec[]): ExpectedClient[] {
  return clients.map((client) => ({
    slug: client.slug,
    status: client.status,
    server: client.server,
    hostnames: [...new Set([client.hostname, client.defaultHostname])],
  }));
}

function pulumiAddress(stack: string): { address?: string; error?: string } {
  const r = spawnSync("pulumi", ["stack", "output", "serverIpv4", "--stack", stack], { encoding: "utf8", timeout: 60_000 });
  if (r.error) return { error: "the pulumi CLI is not available" };
  if (r.status !== 0) return { error: `pulumi stack output failed: ${r.stderr.trim().split("\n")[0]}` };
  return { address: r.stdout.trim() };
}

/** The environment that points the host tools at a local server's files and engine. */
export function localServerEnv(server: LocalServerSpec): NodeJS.ProcessEnv {
  const paths = localHostPaths(server.stateDir);
  return {
    ...process.env,
    DOCKER_HOST: server.dockerHost,
    MAI_CONFIG_DIR: paths.etcDir,
    MAI_BACKUP_ROOT: paths.backupsDir,
    MAI_STATE_DIR: paths.stateDir,
  };
}

function runnerFor(server: ServerSpec, options: StatusOptions): HostRunner | { error: string } {
  if (server.kind === "local") return localRunner(server.name, { env: localServerEnv(server) });
  if (options.local) return localRunner(server.name);
  const given = options.hosts.get(server.name);
  if (given) return sshRunner(server.name, given);
  const found = pulumiAddress(options.stack);
  if (found.address) return sshRunner(server.name, found.address);
  return { error: `no address for ${server.name}: pass --host ${server.name}=<ip> (${found.error})` };
}

/** Output of the command; injectable for tests. */
export interface StatusIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** Runs the command; returns the exit code. `runners` replaces the stack's connections (tests). */
export async function runStatus(argv: readonly string[], io: StatusIo, runners?: HostRunner[]): Promise<number> {
  let options: StatusOptions;
  try {
    options = parseStatusArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`status: ${error.message}\n\n${STATUS_HELP}`);
    return 2;
  }
  if (options.help) {
    io.stdout(STATUS_HELP);
    return 0;
  }

  let loaded: ReturnType<typeof loadConfigurationFiles>;
  try {
    loaded = loadConfigurationFiles(`Pulumi.${options.stack}.yaml`, options.clientsDir);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const found of capIssuesPerFile(error.issues)) io.stderr(`${formatIssue(found)}\n`);
    io.stderr("status: the configuration is invalid (npm run check shows the same)\n");
    return 2;
  }
  const { configuration } = loaded;
  const servers = configuration.settings.servers;
  const chosen: (HostRunner | { server: string; error: string })[] =
    runners ??
    servers.map((server) => {
      const runner = runnerFor(server, options);
      return "error" in runner ? { server: server.name, error: runner.error } : runner;
    });

  const answers: ServerAnswer[] = await Promise.all(
    chosen.map(async (runner): Promise<ServerAnswer> => {
      if ("error" in runner) return runner;
      const result = await runner.run("mai-status");
      if (result.code !== 0) {
        return { server: runner.server, error: `mai-status failed via ${runner.via} (exit ${result.code}): ${result.stderr.trim().split("\n").slice(-1)[0] ?? ""}` };
      }
      try {
        return { server: runner.server, status: parseHostStatus(result.stdout, runner.server) };
      } catch (error) {
        return { server: runner.server, error: (error as Error).message };
      }
    }),
  );
  const expected = expectedClients(configuration.clients);
  const report = buildStatusReport(answers, expected, new Date());

  let advice: AdviceReport | undefined;
  const adviceErrors: string[] = [];
  if (options.advice) {
    const summaries: SampleSummary[] = [];
    for (const runner of chosen) {
      if ("error" in runner) continue;
      const result = await runner.run("mai-sample", ["--summary"]);
      try {
        if (result.code !== 0) throw new Error(`${runner.server}: mai-sample --summary failed (exit ${result.code}): ${result.stderr.trim()}`);
        summaries.push(parseSampleSummary(result.stdout, runner.server));
      } catch (error) {
        adviceErrors.push((error as Error).message);
      }
    }
    advice = buildAdvice(summaries, configuration.clients, configuration.settings);
  }

  if (options.json) {
    io.stdout(`${JSON.stringify(options.advice ? { ...report, advice, adviceErrors } : report, null, 2)}\n`);
  } else {
    io.stdout(renderStatus(report));
    if (advice) io.stdout(`\n${renderAdvice(advice)}`);
    for (const error of adviceErrors) io.stderr(`status: advice: ${error}\n`);
  }
  return report.healthy ? 0 : 1;
}

if (require.main === module) {
  runStatus(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  }).then((code) => {
    process.exitCode = code;
  });
}
