/**
 * Before any test: make sure the pinned Caddy release is built (a no-op when it is cached), so
 * that `npm ci && npm test` works on a fresh machine with Go. If the build cannot happen, the
 * other suites still run and the Caddy suites fail with their own explanation.
 */
import { execFileSync } from "child_process";
import * as path from "path";

export default function setup(): void {
  if (process.env.CADDY_BIN) return;
  try {
    const script = path.join(__dirname, "..", "scripts", "install-caddy.sh");
    process.env.CADDY_BIN = execFileSync("bash", [script], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
  } catch {
    console.warn("Caddy could not be built (is Go installed?); the Caddy integration tests will fail.");
  }
}
