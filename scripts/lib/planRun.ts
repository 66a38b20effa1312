/**
 * The plan's orchestration: validate the configuration like `npm run check`, run the program
 * under the mock runtime, optionally do the same for a git ref (the program, client files and
 * stack config as they were there, written out with `git archive`; the working tree is never
 * touched), and assemble the report.
 * The base is evaluated in the same process after the head (fresh program modules, mocks and
 * config; see mockRuntime.ts): measured at about 0.15 s extra for the example stack, against
 * about 1.2 s for a second process that loads the SDK again.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigError, formatIssue } from "../../config/configIssues";
import { annotateMoves, diffDeclarations } from "../../plan/diff";
import { reviewPlacements, type ClientPlacement } from "../../policy/move";
import { evaluateProgram, EvaluationError, type Evaluation } from "../../plan/mockRuntime";
import type { PlanReport } from "../../plan/report";
import { runtimeConfigFromStackFile, StackFileError, type RuntimeConfig } from "../../plan/stackConfig";
import { PROJECT } from "../../config/stackSettings";
import { validateConfiguration, type CheckedConfiguration } from "./planConfig";

/** A mistake the user can fix; printed without a stack trace. */
export class PlanError extends Error {}

/** What to plan. */
export interface PlanOptions {
  /** Directory with index.ts and the Pulumi.<stack>.yaml files. */
  projectRoot: string;
  /** Stack name. */
  stack: string;
  /** Directory of the client files. */
  clientsDir: string;
  /** Stack config file; default `Pulumi.<stack>.yaml` in `projectRoot`. */
  stackFile?: string;
  /** Git ref to compare with, if any. */
  base?: string;
}

/** A file a reviewer may want to read (rendered Caddyfile, cloud-init user data). */
export interface PlanArtifact {
  /** File name to write it under. */
  name: string;
  /** File content. */
  content: string;
}

/** The plan and its artifacts. */
export interface PlanResult {
  /** Everything to render. */
  report: PlanReport;
  /** Rendered files found in the declared inputs. */
  artifacts: PlanArtifact[];
}

const OPENROUTER_KEYS = `${PROJECT}:openrouterApiKeys`;
const PROVISIONING_KEY = `${PROJECT}:openrouterProvisioningKey`;

/**
 * Adds placeholder OpenRouter keys for clients whose key is not in the stack config, so the plan
 * can still show what they declare; returns the slugs that were missing.
 */
export function withPlaceholderKeys(
  config: RuntimeConfig,
  slugs: readonly string[],
  provisioningKey = false,
): { config: RuntimeConfig; missing: string[] } {
  if (provisioningKey) {
    config = {
      values: { ...config.values, [PROVISIONING_KEY]: "placeholder-missing-provisioning-key" },
      secretKeys: [...new Set([...config.secretKeys, PROVISIONING_KEY])],
    };
  }
  let keys: Record<string, unknown> = {};
  try {
    keys = JSON.parse(config.values[OPENROUTER_KEYS] ?? "{}") as Record<string, unknown>;
  } catch {
    // Not an object: the configuration check reports it.
  }
  const missing = slugs.filter((slug) => keys[slug] === undefined || keys[slug] === "");
  if (missing.length === 0) return { config, missing };
  for (const slug of missing) keys[slug] = `placeholder-missing-${slug}`;
  return {
    config: {
      values: { ...config.values, [OPENROUTER_KEYS]: JSON.stringify(keys) },
      secretKeys: [...new Set([...config.secretKeys, OPENROUTER_KEYS])],
    },
    missing,
  };
}

function git(cwd: string, args: string[]): string {
  return execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024 });
}

/** The stack file a plan reads. */
export function stackFileOf(options: PlanOptions): string {
  return options.stackFile ?? path.join(options.projectRoot, `Pulumi.${options.stack}.yaml`);
}

/** `file` relative to the repository root `top`, or undefined when it lies outside. */
function inRepository(top: string, file: string): string | undefined {
  const relative = path.relative(top, path.resolve(file));
  return relative.startsWith("..") || path.isAbsolute(relative) ? undefined : relative.split(path.sep).join("/");
}

/** What the plan reads at the base ref, in a temporary directory. */
export interface BaseCheckout {
  /** Temporary directory holding it all; removed after the plan. */
  dir: string;
  /** The client files at the base. */
  clientsDir: string;
  /** The stack file at the base; undefined when the stack did not exist then. */
  stackFile?: string;
  /**
   * The program (index.ts) as it was at the base, when the project is in the same repository:
   * the base's code runs with the base's files, so a change of code shows in the plan as it will
   * in `pulumi preview`. Undefined when only the configuration lives in the repository.
   */
  programPath?: string;
}

/**
 * Writes the repository as it is at `ref` into a new temporary directory (`git archive`: the
 * working tree and index are not touched), with this checkout's node_modules linked in so the
 * base's program can run.
 */
export function checkoutConfigAt(options: PlanOptions & { base: string }): BaseCheckout {
  let top: string;
  try {
    top = fs.realpathSync(git(path.resolve(options.clientsDir), ["rev-parse", "--show-toplevel"]).trim());
  } catch {
    throw new PlanError(`--base needs a git repository: ${options.clientsDir} is not inside one`);
  }
  try {
    git(top, ["rev-parse", "--verify", "--quiet", `${options.base}^{commit}`]);
  } catch {
    throw new PlanError(`--base: "${options.base}" is not a commit in this repository (fetch it first, e.g. \`git fetch origin main\`)`);
  }
  const relClients = inRepository(top, fs.realpathSync(options.clientsDir));
  const stackPath = stackFileOf(options);
  const relStack = inRepository(top, path.join(fs.realpathSync(path.dirname(stackPath)), path.basename(stackPath)));
  if (relClients === undefined || relStack === undefined) {
    throw new PlanError(`--base: the clients directory and the stack file must be in the same git repository (${top})`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-plan-base-"));
  const tree = path.join(dir, "tree");
  fs.mkdirSync(tree);
  execFileSync("bash", ["-o", "pipefail", "-c", 'git -C "$1" archive --format=tar "$2" | tar -x -C "$3"', "archive", top, options.base, tree], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const clientsDir = path.join(tree, relClients);
  if (!fs.existsSync(clientsDir)) fs.mkdirSync(clientsDir, { recursive: true });
  const stackFile = path.join(tree, relStack);

  let programPath: string | undefined;
  const relProject = inRepository(top, fs.realpathSync(options.projectRoot));
  if (relProject !== undefined && fs.existsSync(path.join(tree, relProject, "index.ts"))) {
    programPath = path.join(tree, relProject, "index.ts");
    const modules = path.join(tree, relProject, "node_modules");
    if (!fs.existsSync(modules)) fs.symlinkSync(fs.realpathSync(path.join(options.projectRoot, "node_modules")), modules, "dir");
  }
  // The stack did not exist at the base: everything is a create.
  return { dir, clientsDir, stackFile: fs.existsSync(stackFile) ? stackFile : undefined, programPath };
}

async function evaluate(
  options: PlanOptions & { programPath?: string },
  stackPath: string,
  stackFileLabel: string,
  clientsDir: string,
  checked: Pick<CheckedConfiguration, "missingKeys" | "missingProvisioningKey">,
): Promise<Evaluation> {
  let runtime: RuntimeConfig;
  try {
    runtime = runtimeConfigFromStackFile(fs.readFileSync(stackPath, "utf8"), stackFileLabel);
  } catch (err) {
    if (err instanceof StackFileError) throw new PlanError(err.message);
    throw err;
  }
  return evaluateProgram({
    programPath: options.programPath ?? path.join(options.projectRoot, "index.ts"),
    project: PROJECT,
    stack: options.stack,
    config: withPlaceholderKeys(runtime, checked.missingKeys, checked.missingProvisioningKey).config,
    clientsDir,
  });
}

/** Finds the rendered files among the declared inputs. */
export function artifactsOf(evaluation: Evaluation): PlanArtifact[] {
  const artifacts: PlanArtifact[] = [];
  for (const r of evaluation.resources) {
    if (r.type === "command:remote:CopyToRemote") {
      const text = (r.inputs.source as { asset?: { text?: unknown } } | undefined)?.asset?.text;
      const remotePath = r.inputs.remotePath;
      if (typeof text === "string" && typeof remotePath === "string") {
        // The Caddyfile is uploaded as Caddyfile.next and swapped in after validation.
        artifacts.push({ name: path.posix.basename(remotePath).replace(/\.next$/, ""), content: text });
      }
    }
    if (r.type === "hcloud:index/server:Server" && typeof r.inputs.userData === "string" && r.inputs.userData !== "[secret]") {
      artifacts.push({ name: `cloud-init-${r.name}.yaml`, content: r.inputs.userData });
    }
  }
  return artifacts;
}

/** Where each client runs, for clients whose configuration names a server. */
export function placementsOf(clients: readonly CheckedConfiguration["clients"][number][]): ClientPlacement[] {
  return clients.flatMap((c) =>
    c.server === undefined ? [] : [{ slug: c.slug, server: c.server, status: c.status === "suspended" ? "suspended" : "active", ...(c.moveFrom ? { moveFrom: c.moveFrom } : {}) } satisfies ClientPlacement],
  );
}

/** Runs the whole plan. Throws ConfigError for invalid configuration and PlanError for other user mistakes. */
export async function runPlan(options: PlanOptions): Promise<PlanResult> {
  const stackPath = stackFileOf(options);
  const stackFileName = path.basename(stackPath);
  // Same validation and messages as `npm run check`.
  const checked = validateConfiguration(stackPath, options.clientsDir, options.stack);

  let head: Evaluation;
  try {
    head = await evaluate(options, stackPath, stackFileName, options.clientsDir, checked);
  } catch (err) {
    if (err instanceof EvaluationError) throw new PlanError(`the program failed under the mock runtime:\n${err.message}`);
    throw err;
  }
  const report: PlanReport = {
    stack: options.stack,
    clients: checked.clients,
    capacity: checked.capacity,
    resources: head.resources,
    warnings: [...new Set([...checked.warnings, ...head.warnings])],
  };

  if (options.base) {
    const at = checkoutConfigAt({ ...options, base: options.base });
    const atBase = (message: string) => message.split(at.dir + path.sep).join(`${options.base}:`);
    try {
      let base: Evaluation | undefined;
      let baseChecked: CheckedConfiguration | undefined;
      if (at.stackFile) {
        try {
          baseChecked = validateConfiguration(at.stackFile, at.clientsDir, options.stack);
          base = await evaluate({ ...options, programPath: at.programPath }, at.stackFile, `${options.base}:${stackFileName}`, at.clientsDir, baseChecked);
        } catch (err) {
          if (!(err instanceof EvaluationError || err instanceof PlanError || err instanceof ConfigError)) throw err;
          const detail = err instanceof ConfigError ? err.issues.map(formatIssue).join("\n") : err.message;
          throw new PlanError(`the configuration at ${options.base} is not valid, so there is nothing to compare with:\n${atBase(detail)}`);
        }
      }
      report.base = options.base;
      // A changed `server:` must come with the matching `moveFrom`, or `pulumi up` would start an
      // empty workspace on the new server: refuse the plan rather than show a harmless diff.
      const placements = reviewPlacements(placementsOf(baseChecked?.clients ?? []), placementsOf(checked.clients));
      if (placements.problems.length > 0) {
        throw new PlanError(`the change moves clients without carrying their data:\n${placements.problems.map((p) => `  - ${p}`).join("\n")}`);
      }
      report.moves = placements.moves;
      report.warnings.push(...placements.notes, ...placements.moves.map((m) => m.downtime));
      const changes = diffDeclarations(base?.resources ?? [], head.resources, { base: base?.fingerprints, head: head.fingerprints });
      report.changes = annotateMoves(changes, placements.moves);
      if (!at.stackFile) report.warnings.push(`${stackFileName} does not exist at ${options.base}: every resource is new`);
      if (at.stackFile && !at.programPath) {
        report.warnings.push(`the program is not in the repository of the client files: ${options.base} is evaluated with the current program, so only configuration changes are compared`);
      }
    } finally {
      fs.rmSync(at.dir, { recursive: true, force: true });
    }
  }
  return { report, artifacts: artifactsOf(head) };
}
