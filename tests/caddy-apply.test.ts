/**
 * host/caddy-apply.sh run for real (bash) against a scripted stand-in for `caddy`: a command that
 * fails because the proxy went away meanwhile (killed, OOM-killed, restarted with its daemon) is
 * retried while the proxy comes back, so the new file is served; Caddy's own refusal by a proxy
 * that keeps running is final at once; a proxy that does not come back fails the step with the
 * previous file in place. (Serving, reloading under load and refusing an invalid file with a real
 * Caddy: caddy.integration.test.ts; in the real container: proxy.engine.test.ts, faults.engine.test.ts.)
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const APPLY = path.resolve(__dirname, "..", "host", "caddy-apply.sh");

/**
 * The stand-in: each call of a verb (validate, reload) takes the next line of `<verb>.plan`
 * ("ok" when none is left) and logs `<verb> <action>`. Actions: ok; refuse (fails, the proxy keeps
 * running); die (the proxy stops: fails); restarting (still down: fails); back (the proxy runs
 * again with a new start time, its admin not answering yet: fails).
 */
const FAKE_CADDY = `#!/usr/bin/env bash
verb=$1
count_file="$FAKE_ROOT/$verb.count"
n=$(( $(cat "$count_file" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$count_file"
action=$(sed -n "\${n}p" "$FAKE_ROOT/$verb.plan" 2>/dev/null)
action=\${action:-ok}
echo "$verb $action" >> "$FAKE_ROOT/calls"
case "$action" in
  ok) echo "caddy $verb: ok" ;;
  refuse) echo "caddy $verb: loading new config: listen tcp :443: bind: address already in use" >&2; exit 1 ;;
  die) echo "false 2026-12-01T10:00:00Z" > "$FAKE_ROOT/state"; echo "Error response from daemon: container is not running" >&2; exit 137 ;;
  restarting) echo "Error response from daemon: Container is restarting, wait until the container is running" >&2; exit 1 ;;
  back) echo "true 2026-12-01T10:00:05Z" > "$FAKE_ROOT/state"; echo "connection refused" >&2; exit 1 ;;
esac
`;

let root: string;
let caddyDir: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "mai-caddy-apply-test-"));
  caddyDir = path.join(root, "caddy");
  fs.mkdirSync(caddyDir);
  fs.writeFileSync(path.join(root, "caddy-fake"), FAKE_CADDY, { mode: 0o755 });
  fs.writeFileSync(path.join(root, "state"), "true 2026-12-01T09:00:00Z\n");
  fs.writeFileSync(path.join(caddyDir, "Caddyfile"), "old routes\n");
  fs.writeFileSync(path.join(caddyDir, "Caddyfile.next"), "new routes\n");
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function plan(verb: "validate" | "reload", actions: string[]): void {
  fs.writeFileSync(path.join(root, `${verb}.plan`), actions.join("\n") + "\n");
}

function apply(wait = 30) {
  const r = spawnSync("bash", [APPLY], {
    encoding: "utf8",
    env: {
      ...process.env,
      FAKE_ROOT: root,
      CADDY_HOST_DIR: caddyDir,
      CADDY_CONFIG_DIR: caddyDir,
      CADDY: path.join(root, "caddy-fake"),
      CADDY_PROXY_RUNNING: "true",
      CADDY_PROXY_STATE: `cat ${root}/state`,
      CADDY_PROXY_WAIT: String(wait),
    },
  });
  const calls = fs.existsSync(path.join(root, "calls")) ? fs.readFileSync(path.join(root, "calls"), "utf8").trim().split("\n") : [];
  return { code: r.status, output: `${r.stdout}${r.stderr}`, calls, live: fs.readFileSync(path.join(caddyDir, "Caddyfile"), "utf8"), files: fs.readdirSync(caddyDir).sort() };
}

describe("caddy-apply when the proxy goes away", () => {
  it("retries a reload the proxy died during, once it runs again: the new file is live and served, the step succeeds", () => {
    plan("reload", ["die", "restarting", "back", "ok"]);
    const run = apply();
    expect(run.code, run.output).toBe(0);
    expect(run.calls).toEqual(["validate ok", "reload die", "reload restarting", "reload back", "reload ok"]);
    expect(run.live).toBe("new routes\n");
    expect(run.files).toEqual(["Caddyfile"]);
    expect(run.output).toContain("the proxy stopped or restarted during 'caddy reload'");
    expect(run.output).toContain("reloaded the proxy (after it came back)");
  });

  it("retries a validation the proxy died during, then installs and reloads", () => {
    plan("validate", ["die", "back", "ok"]);
    const run = apply();
    expect(run.code, run.output).toBe(0);
    expect(run.calls).toEqual(["validate die", "validate back", "validate ok", "reload ok"]);
    expect(run.live).toBe("new routes\n");
  });

  it("takes a refusal by a proxy that keeps running as final: one attempt, the previous file put back", () => {
    plan("reload", ["refuse"]);
    const run = apply();
    expect(run.code).toBe(1);
    expect(run.calls).toEqual(["validate ok", "reload refuse"]);
    expect(run.live).toBe("old routes\n");
    expect(run.output).toContain("reload failed; the previous Caddyfile was restored");
    expect(run.output).toContain("address already in use");
  });

  it("takes an invalid file as final: one attempt, nothing installed", () => {
    plan("validate", ["refuse"]);
    const run = apply();
    expect(run.code).toBe(1);
    expect(run.calls).toEqual(["validate refuse"]);
    expect(run.live).toBe("old routes\n");
    expect(run.files).toEqual(["Caddyfile", "Caddyfile.next"]);
    expect(run.output).toContain("the new Caddyfile is invalid");
  });

  it("fails after CADDY_PROXY_WAIT when the proxy does not come back, the previous file in place", () => {
    plan("reload", ["die", ...Array(20).fill("restarting")]);
    const run = apply(2);
    expect(run.code).toBe(1);
    expect(run.live).toBe("old routes\n");
    expect(run.output).toContain("reload failed; the previous Caddyfile was restored");
    // Retried while it waited, then gave up (not all 21 planned attempts: about one a second).
    const attempts = run.calls.filter((c) => c.startsWith("reload")).length;
    expect(attempts).toBeGreaterThan(1);
    expect(attempts).toBeLessThan(21);
  });

  it("says the proxy did not come back, not that the file is invalid, when validation never got an answer", () => {
    plan("validate", ["die", ...Array(20).fill("restarting")]);
    const run = apply(2);
    expect(run.code).toBe(1);
    expect(run.output).toContain("the proxy did not come back within 2s to validate the new Caddyfile");
    expect(run.output).not.toContain("is invalid");
    expect(run.live).toBe("old routes\n");
  });
});
