/**
 * `npm run plan -- [--stack prod] [--clients <dir>] [--stack-file <path>] [--base <git-ref>] [--json | --markdown] [--out <dir>]`
 *
 * Runs the real program (index.ts) under Pulumi's mock runtime with the stack's config (secrets
 * replaced by placeholders) and prints what it declares: the clients, the server's capacity use
 * and the resources by type; with --base, how the declaration differs from the one at that git
 * ref. Needs no credentials, state, plugins or network. Exit 0: planned; 1: invalid configuration
 * or a failing program (every problem printed); 2: bad usage.
 */
import * as fs from "fs";
import * as path from "path";
import type { PlanOptions } from "./lib/planRun";
import { applyFastRegistration } from "./lib/planSpeed";

const USAGE =
  "usage: npm run plan -- [--stack prod] [--clients <dir>] [--stack-file <path>] [--base <git-ref>] [--json | --markdown] [--out <dir>]";

/** Parsed command line. */
export interface PlanCommand extends PlanOptions {
  /** Output format. */
  format: "text" | "json" | "markdown";
  /** Directory to write the rendered artifacts to. */
  outDir?: string;
}

/** Parses arguments; returns a usage error message instead of throwing. */
export function parsePlanArgs(argv: readonly string[], projectRoot: string): PlanCommand | { usageError: string } | { help: true } {
  const command: PlanCommand = {
    projectRoot,
    stack: "prod",
    clientsDir: path.relative(process.cwd(), path.join(projectRoot, "clients")) || ".",
    format: "text",
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") return { help: true };
    if (arg === "--json" || arg === "--markdown") {
      const format = arg === "--json" ? "json" : "markdown";
      if (command.format !== "text" && command.format !== format) return { usageError: "--json and --markdown exclude each other" };
      command.format = format;
      continue;
    }
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    if (!["--stack", "--clients", "--stack-file", "--base", "--out"].includes(flag)) return { usageError: `unknown argument "${arg}"` };
    const value = inline ?? argv[++i];
    if (value === undefined || value === "" || value.startsWith("--")) return { usageError: `${flag} needs a value` };
    if (flag === "--stack") {
      if (!/^[A-Za-z0-9_.-]+$/.test(value)) return { usageError: `invalid stack name "${value}"` };
      command.stack = value;
    } else if (flag === "--clients") command.clientsDir = value;
    else if (flag === "--stack-file") command.stackFile = value;
    else if (flag === "--base") command.base = value;
    else command.outDir = value;
  }
  return command;
}

async function main(): Promise<number> {
  const parsed = parsePlanArgs(process.argv.slice(2), path.join(__dirname, ".."));
  if ("help" in parsed) {
    console.log(USAGE);
    return 0;
  }
  if ("usageError" in parsed) {
    console.error(`plan: ${parsed.usageError}`);
    console.error(USAGE);
    return 2;
  }
  // Before the SDK and the program load: see planSpeed.ts.
  applyFastRegistration();
  const { ConfigError, formatIssue } = require("../config/configIssues") as typeof import("../config/configIssues");
  const { renderJson, renderMarkdown, renderText } = require("../plan/report") as typeof import("../plan/report");
  const { PlanError, runPlan } = require("./lib/planRun") as typeof import("./lib/planRun");
  try {
    const { report, artifacts } = await runPlan(parsed);
    const render = parsed.format === "json" ? renderJson : parsed.format === "markdown" ? renderMarkdown : renderText;
    process.stdout.write(render(report));
    if (parsed.outDir) {
      fs.mkdirSync(parsed.outDir, { recursive: true });
      for (const artifact of artifacts) fs.writeFileSync(path.join(parsed.outDir, artifact.name), artifact.content);
      console.error(`wrote ${artifacts.map((a) => path.join(parsed.outDir!, a.name)).join(", ") || "no artifacts"}`);
    }
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) console.error(formatIssue(issue));
      console.error(`plan failed: ${err.issues.length} problem${err.issues.length === 1 ? "" : "s"} in the configuration`);
      return 1;
    }
    if (err instanceof PlanError) {
      console.error(`plan: ${err.message}`);
      return 1;
    }
    // A bug, not a user mistake: still no stack trace in the user's face.
    console.error(`plan: internal error: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

if (require.main === module) {
  main().then((code) => {
    process.exitCode = code;
  });
}
