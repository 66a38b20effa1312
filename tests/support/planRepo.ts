/**
 * A throw-away git repository holding a copy of the example clients and the production stack
 * file (plus test-only config), committed once as the base, for running `npm run plan -- --base`
 * as a process. Tests edit the files, plan against HEAD, and `reset()` back.
 */
import { execFile, execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";

const ROOT = path.join(__dirname, "..", "..");
const run = promisify(execFile);

export interface PlanRepo {
  /** The repository's directory. */
  dir: string;
  /** Its `clients/` directory. */
  clientsDir: string;
  /** Its `Pulumi.prod.yaml`. */
  stackFile: string;
  /** Runs git in the repository. */
  git(...args: string[]): string;
  /** Puts every file back as committed. */
  reset(): void;
  /** Runs the plan CLI on the repository's files, with no cloud credentials in the environment. */
  plan(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Removes the repository. */
  remove(): void;
}

/** Creates and commits the repository; `stackConfig` is appended to the production stack file. */
export function createPlanRepo(prefix: string, stackConfig: string): PlanRepo {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const clientsDir = path.join(dir, "clients");
  const stackFile = path.join(dir, "Pulumi.prod.yaml");
  fs.mkdirSync(clientsDir);
  for (const file of fs.readdirSync(path.join(ROOT, "clients")).filter((f) => f.endsWith(".yaml"))) {
    fs.copyFileSync(path.join(ROOT, "clients", file), path.join(clientsDir, file));
  }
  fs.writeFileSync(stackFile, `${fs.readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8").trimEnd()}\n${stackConfig}`);
  const git = (...args: string[]) =>
    execFileSync("git", ["-c", "user.email=plan@example.invalid", "-c", "user.name=plan test", ...args], { cwd: dir, encoding: "utf8" });
  execFileSync("git", ["init", "-q", "-b", "main"], { cwd: dir });
  git("add", ".");
  git("commit", "-qm", "base");

  return {
    dir,
    clientsDir,
    stackFile,
    git,
    reset() {
      git("checkout", "-q", "--", ".");
      git("clean", "-qfd");
    },
    async plan(...args) {
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(PULUMI_|HCLOUD_|CLOUDFLARE_|AWS_)/.test(k)));
      try {
        const { stdout, stderr } = await run(
          process.execPath,
          ["--import", "tsx", path.join(ROOT, "scripts", "plan.ts"), "--stack-file", stackFile, "--clients", clientsDir, ...args],
          { cwd: ROOT, env, maxBuffer: 32 * 1024 * 1024 },
        );
        return { code: 0, stdout, stderr };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
      }
    },
    remove() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
