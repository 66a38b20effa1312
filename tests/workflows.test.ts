/**
 * The GitHub Actions workflows cannot run here; check what can be checked: they parse, they
 * trigger on the right events, every `npm run` step names a script that exists (and whose file
 * exists), actions are pinned to a major version, and every secret they use is documented.
 */
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const root = path.join(__dirname, "..");
const workflowsDir = path.join(root, ".github", "workflows");
const packageScripts: Record<string, string> = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")).scripts;

interface Step { uses?: string; run?: string; with?: Record<string, unknown>; env?: Record<string, string> }
interface Job { steps: Step[]; needs?: string | string[]; environment?: string | { name: string }; if?: string; env?: Record<string, string> }
interface Workflow { name: string; on: Record<string, unknown>; jobs: Record<string, Job>; permissions?: Record<string, string> }

const workflows: Record<string, Workflow> = Object.fromEntries(
  fs.readdirSync(workflowsDir)
    .filter((f) => /\.ya?ml$/.test(f))
    .map((f) => [f, parse(fs.readFileSync(path.join(workflowsDir, f), "utf8")) as Workflow]),
);
const allSteps = (wf: Workflow) => Object.values(wf.jobs).flatMap((job) => job.steps);

describe("workflow files", () => {
  it("parse as YAML with jobs and steps", () => {
    expect(Object.keys(workflows).sort()).toEqual(["deploy.yml", "pull-request.yml"]);
    for (const [file, wf] of Object.entries(workflows)) {
      expect(wf.name, file).toBeTruthy();
      for (const [id, job] of Object.entries(wf.jobs)) expect(job.steps.length, `${file} ${id}`).toBeGreaterThan(0);
    }
  });

  it("only run npm scripts that exist, whose script files exist", () => {
    for (const [file, wf] of Object.entries(workflows)) {
      for (const step of allSteps(wf)) {
        for (const match of (step.run ?? "").matchAll(/npm run ([\w:-]+)/g)) {
          const script = packageScripts[match[1]];
          expect(script, `${file}: npm run ${match[1]}`).toBeDefined();
          const target = /tsx (\S+\.ts)/.exec(script)?.[1];
          if (target) expect(fs.existsSync(path.join(root, target)), `${file}: ${target}`).toBe(true);
        }
        if (/\bnpm test\b/.test(step.run ?? "")) expect(packageScripts.test).toBeDefined();
      }
    }
  });

  it("pin every action to a version", () => {
    for (const [file, wf] of Object.entries(workflows)) {
      for (const step of allSteps(wf).filter((s) => s.uses)) expect(step.uses, file).toMatch(/^[\w.-]+\/[\w.-]+@v\d+/);
    }
  });

  it("pull requests: install, type-check, test, plan against the base as a comment, and preview prod", () => {
    const wf = workflows["pull-request.yml"];
    expect(Object.keys(wf.on)).toEqual(["pull_request"]);
    expect(wf.permissions?.["pull-requests"]).toBe("write");
    const runs = allSteps(wf).map((s) => s.run ?? "").join("\n");
    for (const command of ["npm ci", "npm run typecheck", "npm test"]) expect(runs).toContain(command);
    expect(runs).toMatch(/npm run plan -- --base "origin\/\$\{\{ github\.base_ref \}\}" --markdown/);
    const comment = allSteps(wf).find((s) => s.uses?.startsWith("actions/github-script"));
    expect(String(comment?.with?.script)).toContain("<!-- mai-hosting-plan -->");
    const preview = allSteps(wf).find((s) => s.uses?.startsWith("pulumi/actions"));
    expect(preview?.with).toMatchObject({ command: "preview", "stack-name": "prod", "comment-on-pr": true });
  });

  it("push to main: pulumi up behind the production environment, after the tests", () => {
    const wf = workflows["deploy.yml"];
    expect(wf.on).toEqual({ push: { branches: ["main"] } });
    const [deployJob] = Object.values(wf.jobs).filter((job) => job.steps.some((s) => s.uses?.startsWith("pulumi/actions")));
    expect(deployJob.environment).toBe("production");
    expect(deployJob.needs).toBeTruthy();
    expect(deployJob.steps.find((s) => s.uses?.startsWith("pulumi/actions"))?.with).toMatchObject({ command: "up", "stack-name": "prod" });
  });

  it("use only secrets that docs/ci.md documents", () => {
    const docs = fs.readFileSync(path.join(root, "docs", "ci.md"), "utf8");
    for (const [file, wf] of Object.entries(workflows)) {
      const text = JSON.stringify(wf);
      for (const match of text.matchAll(/secrets\.(\w+)/g)) {
        if (match[1] === "GITHUB_TOKEN") continue;
        expect(docs, `${file} uses ${match[1]}`).toContain(`\`${match[1]}\``);
      }
    }
  });
});
