/**
 * `npm run repair -- --stack <name> [--cwd <dir>] [--dry-run] [--forget <urn>]`: the one command
 * after a `pulumi up` that died (after `pulumi cancel` for its stale lock). It reads the stack's
 * interrupted operations, looks the half-made Docker objects up on each server's engine, adopts or
 * removes them (never a volume or anything in it), writes the result into the state and re-reads
 * what was interrupted; the next `pulumi up` then succeeds. What it decides and why:
 * policy/repair.ts. Exit 0: repaired, or nothing to repair; 1: refused or failed (the message says
 * what changed, usually nothing); 2: bad usage.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  dockerInvocation,
  enginesOf,
  lockDirectories,
  lockedMessage,
  parseInspect,
  pendingWork,
  planRepair,
  refreshTargets,
  removals,
  renderSteps,
  repairedDeployment,
  urnProject,
  type EngineRef,
  type LockHolder,
  type ObservedObject,
  type StackExport,
} from "../policy/repair";
import { forEachArg } from "./lib/cliArgs";

export const REPAIR_HELP = `Usage: npm run repair -- --stack <name> [--cwd <dir>] [--dry-run] [--forget <urn>]...

After a pulumi up that was killed (SIGKILL, OOM, power loss, a killed CI runner):
  pulumi cancel --stack <name>      # removes the dead deployment's lock
  npm run repair -- --stack <name>  # resolves what it left half-made
  pulumi up --stack <name>

Finds the containers and networks the interrupted deployment was creating on each server's Docker
engine, adopts a network that is as declared, removes a half-made container or network, and
clears the rest from the state. Never touches a volume or anything in it.

  --stack <name>    the stack (required)
  --cwd <dir>       the project directory (default: the current directory)
  --dry-run         show what would be done; change nothing
  --forget <urn>    clear this pending create although repair cannot check it (Hetzner, Cloudflare,
                    OpenRouter objects: check at the provider first); repeatable

Exit code: 0 repaired or nothing to repair, 1 refused or failed (says what changed), 2 bad usage.
`;

export interface RepairOptions {
  stack: string;
  cwd: string;
  dryRun: boolean;
  forget: Set<string>;
  help: boolean;
}

export class UsageError extends Error {}

export function parseRepairArgs(argv: readonly string[], cwd = process.cwd()): RepairOptions {
  const options: RepairOptions = { stack: "", cwd, dryRun: false, forget: new Set(), help: false };
  const problems: string[] = [];
  forEachArg(argv, problems, (flag, value, arg) => {
    switch (flag) {
      case "--stack": {
        const stack = value();
        if (stack === undefined) return;
        if (!/^[A-Za-z0-9_./-]+$/.test(stack)) problems.push(`invalid stack name "${stack}".`);
        else options.stack = stack;
        return;
      }
      case "--cwd": {
        const dir = value();
        if (dir !== undefined) options.cwd = path.resolve(cwd, dir);
        return;
      }
      case "--forget": {
        const urn = value();
        if (urn === undefined) return;
        if (!urn.startsWith("urn:pulumi:")) problems.push(`--forget expects a resource URN (urn:pulumi:...), got "${urn}".`);
        else options.forget.add(urn);
        return;
      }
      case "--dry-run":
        options.dryRun = true;
        return;
      case "--help":
      case "-h":
        options.help = true;
        return;
      default:
        problems.push(`unknown argument "${arg}".`);
    }
  });
  if (!options.stack && !options.help) problems.push("--stack <name> is required.");
  if (problems.length > 0) throw new UsageError(problems.join("\n"));
  return options;
}

/** Output of the command; injectable for tests. */
export interface RepairIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** A refusal or failure: the message is the whole story (no stack trace). */
class RepairError extends Error {}

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
  missing: boolean;
}

function run(command: string, args: readonly string[], options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Ran {
  const r = spawnSync(command, [...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    encoding: "utf8",
    timeout: options.timeoutMs ?? 120_000,
    maxBuffer: 256 * 1024 * 1024,
  });
  const missing = (r.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
  return { status: r.error ? null : r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? (r.error ? String(r.error.message) : ""), missing };
}

/** The lines of a CLI's stderr that say what went wrong (its `error:` lines, else its last lines). */
export function errorLines(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trimEnd()).filter(Boolean);
  const errors = lines.filter((l) => /^error\b|^Error\b/i.test(l.trim()));
  return (errors.length ? errors : lines.slice(-3)).slice(0, 5).join("\n") || "no message";
}

function pulumi(options: RepairOptions, args: string[], timeoutMs = 120_000): Ran {
  const r = run("pulumi", [...args, "--non-interactive"], { cwd: options.cwd, timeoutMs });
  if (r.missing) throw new RepairError("The pulumi CLI is not on PATH (see README, \"Set up\"). Nothing was changed.");
  return r;
}

function exportStack(options: RepairOptions): { text: string; state: StackExport } {
  const r = pulumi(options, ["stack", "export", "--stack", options.stack]);
  if (r.status !== 0) throw new RepairError(`pulumi stack export --stack ${options.stack} failed:\n${errorLines(r.stderr)}\nNothing was changed.`);
  try {
    const state = JSON.parse(r.stdout) as StackExport;
    if (!state || typeof state.deployment !== "object" || state.deployment === null) throw new Error("no deployment");
    return { text: r.stdout, state };
  } catch {
    throw new RepairError(`pulumi stack export --stack ${options.stack} printed no stack state. Nothing was changed.`);
  }
}

/** The backend's URL (`pulumi whoami`), for a `file://` backend's lock files. */
function backendUrl(options: RepairOptions): string | undefined {
  const r = pulumi(options, ["whoami", "--json"]);
  if (r.status !== 0) return undefined;
  try {
    return (JSON.parse(r.stdout) as { url?: string }).url;
  } catch {
    return undefined;
  }
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Refuses a locked stack before anything is looked at. A `file://` backend's lock files are read
 * directly; on other backends Pulumi's own lock refuses the state write (`pulumi stack import`),
 * which comes before any change on an engine.
 */
function refuseWhenLocked(options: RepairOptions, state: StackExport): void {
  const url = backendUrl(options);
  const urn = (state.deployment.resources ?? [])[0]?.urn ?? (state.deployment.pending_operations ?? [])[0]?.resource.urn;
  if (!url || !urn) return;
  for (const dir of lockDirectories(url, urnProject(urn), options.stack, os.homedir())) {
    if (!fs.existsSync(dir)) continue;
    const lock = fs.readdirSync(dir).find((file) => file.endsWith(".json"));
    if (!lock) continue;
    let holder: LockHolder = {};
    try {
      holder = JSON.parse(fs.readFileSync(path.join(dir, lock), "utf8")) as LockHolder;
    } catch {
      // an unreadable lock file is still a lock
    }
    const here = holder.hostname === os.hostname();
    const running = here && typeof holder.pid === "number" ? processRuns(holder.pid) : undefined;
    throw new RepairError(lockedMessage(options.stack, holder, running));
  }
}

function docker(engine: EngineRef, args: string[], timeoutMs = 60_000): Ran {
  const call = dockerInvocation(engine, args);
  const r = run(call.command, call.args, { env: call.env, timeoutMs });
  if (r.missing) throw new RepairError(`The ${call.command} command is not on PATH: repair needs it to reach server ${engine.server}. Nothing was changed.`);
  return r;
}

function requireEngines(engines: readonly EngineRef[]): void {
  const unreachable = engines
    .map((engine) => ({ engine, r: docker(engine, ["version", "--format", "{{.Server.Version}}"], 30_000) }))
    .filter(({ r }) => r.status !== 0 || r.stdout.trim() === "");
  if (unreachable.length === 0) return;
  const lines = unreachable.map(({ engine, r }) => `  server ${engine.server} (${engine.host}): ${errorLines(r.stderr)}`);
  throw new RepairError(`Cannot reach the Docker engine of ${unreachable.length === 1 ? "a server" : "some servers"}:\n${lines.join("\n")}\nRepair must see what is there before it changes anything. Nothing was changed.`);
}

function lookUp(work: ReturnType<typeof pendingWork>): Map<string, ObservedObject | undefined> {
  const observed = new Map<string, ObservedObject | undefined>();
  for (const item of work) {
    if (item.kind !== "docker") continue;
    const r = docker(item.engine, ["inspect", "--type", item.declared.kind, item.declared.name]);
    if (r.status === 0) {
      const found = parseInspect(r.stdout);
      if (!found) throw new RepairError(`docker inspect ${item.declared.name} on server ${item.engine.server} printed nothing repair understands. Nothing was changed.`);
      observed.set(item.op.resource.urn, found);
    } else if (/no such|not found/i.test(r.stderr)) {
      observed.set(item.op.resource.urn, undefined);
    } else {
      throw new RepairError(`docker inspect ${item.declared.name} on server ${item.engine.server} failed:\n${errorLines(r.stderr)}\nNothing was changed.`);
    }
  }
  return observed;
}

function importState(options: RepairOptions, state: StackExport, deployment: StackExport["deployment"]): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-repair-"));
  const file = path.join(dir, "state.json");
  try {
    // The export holds secrets only as ciphertext; still, only this user may read the copy.
    fs.writeFileSync(file, JSON.stringify({ ...state, deployment }), { mode: 0o600 });
    const r = pulumi(options, ["stack", "import", "--stack", options.stack, "--file", file]);
    if (r.status !== 0) {
      const locked = /locked/i.test(r.stderr);
      throw new RepairError(
        locked
          ? `The stack ${options.stack} is locked:\n${errorLines(r.stderr)}\nIf no deployment is running, run \`pulumi cancel --stack ${options.stack}\`, then repair again. Nothing was changed.`
          : `pulumi stack import --stack ${options.stack} failed:\n${errorLines(r.stderr)}\nNothing was changed.`,
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the command; returns the exit code. */
export function runRepair(argv: readonly string[], io: RepairIo): number {
  let options: RepairOptions;
  try {
    options = parseRepairArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`repair: ${error.message}\n\n${REPAIR_HELP}`);
    return 2;
  }
  if (options.help) {
    io.stdout(REPAIR_HELP);
    return 0;
  }
  try {
    return repair(options, io);
  } catch (error) {
    if (!(error instanceof RepairError)) throw error;
    io.stderr(`repair: ${error.message}\n`);
    return 1;
  }
}

function repair(options: RepairOptions, io: RepairIo): number {
  const { stack } = options;
  const first = exportStack(options);
  refuseWhenLocked(options, first.state);
  const work = pendingWork(first.state.deployment);
  if (work.length === 0) {
    io.stdout(`Stack ${stack}: no interrupted operations in its state. Nothing to repair; nothing was changed.\n`);
    return 0;
  }
  requireEngines(enginesOf(work));
  const steps = planRepair(first.state.deployment, lookUp(work), options.forget);
  io.stdout(`Stack ${stack}: ${steps.length} operation${steps.length === 1 ? "" : "s"} interrupted by a deployment that did not finish.\n`);

  const blocked = steps.filter((s) => s.action === "blocked");
  if (blocked.length > 0) {
    io.stdout(renderSteps(steps, true));
    io.stderr(`repair: ${blocked.length} of them cannot be resolved safely (see above). Nothing was changed.\n`);
    return 1;
  }
  if (options.dryRun) {
    io.stdout(renderSteps(steps, true));
    io.stdout("Dry run: nothing was changed.\n");
    return 0;
  }

  let repaired: StackExport["deployment"];
  try {
    repaired = repairedDeployment(first.state.deployment, steps);
  } catch (error) {
    throw new RepairError(`Cannot write the repaired state: ${(error as Error).message}. Nothing was changed.`);
  }
  // The state must be the one the plan was made from: another Pulumi command since would be lost.
  if (exportStack(options).text !== first.text) {
    throw new RepairError(`The state of ${stack} changed while repair was looking (another pulumi command?). Nothing was changed; run repair again.`);
  }
  // The state write comes first: it takes the stack's lock, so a deployment that is still running
  // (on any backend) refuses it before anything on an engine changes.
  importState(options, first.state, repaired);

  const failed: string[] = [];
  const notRemoved = new Set<string>();
  for (const step of removals(steps)) {
    const object = step.object!;
    const args = object.kind === "container" ? ["rm", "-f", object.id] : ["network", "rm", object.id];
    const r = docker(object.engine, args);
    if (r.status !== 0 && !/no such|not found/i.test(r.stderr)) {
      notRemoved.add(step.urn);
      failed.push(`  ${object.kind} ${object.name} on server ${object.engine.server}: ${errorLines(r.stderr)}\n    remove it by hand: docker ${args.join(" ")}  (DOCKER_HOST=${object.engine.host})`);
    }
  }
  const done = steps.map((s) => (notRemoved.has(s.urn) ? { ...s, action: "blocked" as const, reason: `could not be removed (below); ${s.reason}` } : s));
  io.stdout(renderSteps(done, false));

  const targets = refreshTargets(steps);
  let refreshFailure: string | undefined;
  if (targets.length > 0) {
    const r = pulumi(options, ["refresh", "--yes", "--skip-preview", "--color", "never", "--stack", stack, ...targets.flatMap((urn) => ["--target", urn])], 15 * 60_000);
    if (r.status !== 0) refreshFailure = errorLines(r.stderr || r.stdout);
  }

  if (failed.length > 0 || refreshFailure) {
    if (failed.length > 0) io.stderr(`repair: the state is repaired, but ${failed.length} object(s) could not be removed:\n${failed.join("\n")}\n`);
    if (refreshFailure) io.stderr(`repair: the state is repaired, but re-reading the interrupted resources failed:\n${refreshFailure}\nRun \`pulumi refresh --stack ${stack} ${targets.map((t) => `--target '${t}'`).join(" ")}\`.\n`);
    return 1;
  }
  io.stdout(`Repaired. Now run: pulumi up --stack ${stack}\n`);
  return 0;
}

if (require.main === module) {
  process.exitCode = runRepair(process.argv.slice(2), { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) });
}
