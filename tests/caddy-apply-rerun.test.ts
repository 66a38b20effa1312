/**
 * host/caddy-apply.sh run again without a new upload: after a `pulumi up` killed between the
 * install and recording it (the repaired stack runs the reload step again, the file it uploaded is
 * already live), or when only the script itself changed. A stand-in `caddy` records what it is
 * asked; the real Caddy runs the script in caddy.integration.test.ts.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const run = promisify(execFile);
const SCRIPT = path.join(__dirname, "..", "host", "caddy-apply.sh");
let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-caddy-apply-"));
  fs.writeFileSync(path.join(dir, "caddy"), `#!/bin/bash\necho "caddy $*" >> "${dir}/calls"\n`, { mode: 0o755 });
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

async function apply(): Promise<{ code: number; output: string }> {
  const env = { ...process.env, CADDY_HOST_DIR: dir, CADDY_CONFIG_DIR: dir, CADDY: path.join(dir, "caddy"), CADDY_PROXY_RUNNING: "true" };
  try {
    const { stdout, stderr } = await run("bash", [SCRIPT], { env });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? 1, output: `${failed.stdout ?? ""}${failed.stderr ?? ""}` };
  }
}

const calls = () => fs.readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n");

describe("caddy-apply.sh without a new Caddyfile", () => {
  it("applies the installed one again: validated, reloaded, unchanged", async () => {
    fs.writeFileSync(path.join(dir, "Caddyfile"), "acme.localhost {\n\trespond ok\n}\n");
    const result = await apply();
    expect(result.code).toBe(0);
    expect(result.output).toContain(`no new configuration at ${dir}/Caddyfile.next; applying the installed ${dir}/Caddyfile again`);
    expect(result.output).toContain("reloaded the proxy");
    expect(calls()).toEqual([`caddy validate --config ${dir}/Caddyfile.next --adapter caddyfile`, // The reload goes to the running configuration's admin address (Caddy's default: no admin line).
    `caddy reload --config ${dir}/Caddyfile --adapter caddyfile --address localhost:2019`]);
    expect(fs.readFileSync(path.join(dir, "Caddyfile"), "utf8")).toBe("acme.localhost {\n\trespond ok\n}\n");
    expect(fs.readdirSync(dir).sort()).toEqual(["Caddyfile", "caddy", "calls"]);
  });

  it("still refuses when there is no Caddyfile at all", async () => {
    const result = await apply();
    expect(result.code).not.toBe(0);
    expect(result.output).toContain(`no new configuration at ${dir}/Caddyfile.next`);
    expect(fs.existsSync(path.join(dir, "calls"))).toBe(false);
  });
});
