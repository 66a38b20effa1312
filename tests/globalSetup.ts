/**
 * Before any test, once per run: make sure the pinned Caddy release is built, and — when a Docker
 * engine answers — the local images the real-engine tests run (both no-ops when cached), so that
 * `npm ci && npm test` works on a fresh machine with Go and a running engine. If something cannot
 * be built, the other suites still run and the suites that need it fail with their own
 * explanation (the engine tests with requireEngine's or requireImages' message).
 */
import { execFileSync } from "child_process";
import * as path from "path";
import { buildLocalImages } from "../scripts/lib/localImageBuild";

function engineAnswers(): boolean {
  try {
    execFileSync("docker", ["info", "--format", "{{.ServerVersion}}"], { stdio: "ignore", timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

export default async function setup(): Promise<void> {
  if (!process.env.CADDY_BIN) {
    try {
      const script = path.join(__dirname, "..", "scripts", "install-caddy.sh");
      process.env.CADDY_BIN = execFileSync("bash", [script], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
    } catch {
      console.warn("Caddy could not be built (is Go installed?); the Caddy integration tests will fail.");
    }
  }
  if (!engineAnswers()) {
    console.warn("No Docker engine answers: the real-engine tests will fail (each says how to start one).");
    return;
  }
  try {
    await buildLocalImages((line) => console.log(line));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    console.warn(`The local images could not be built (${reason}); the real-engine tests will fail. \`npm run local:images\` retries.`);
  }
}
