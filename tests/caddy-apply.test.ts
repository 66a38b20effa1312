/**
 * host/caddy-apply.sh run for real (bash) against a scripted stand-in for `caddy`: a command that
 * fails because the proxy went away meanwhile (crashed or OOM-killed: back by its restart policy;
 * `docker kill`: started again by the script) is retried while the proxy comes back, so the new
 * file is served; Caddy's own refusal by a proxy
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
 * The stand-in. While the proxy is down, every call fails without taking a step of the plan: a
 * restarting proxy (its restart policy at work) is running again at the next call, whose answer
 * still fails (Caddy's admin not up yet); an exited one stays down until started. While it runs,
 * each call of a verb (validate, reload) takes the next line of `<verb>.plan` ("ok" when none is
 * left): ok; refuse (Caddy's own refusal, the proxy keeps running); crash (the process dies, as
 * by a kernel OOM kill: restarting); kill (`docker kill`: exited); kill-late (the same, with Docker
 * recording the end only after the first look at the proxy's state). Calls are logged `<verb> <what>`.
 */
/** The proxy's state as the script reads it; a late state change shows from the second read on. */
const STATE_COMMAND = (root: string) =>
  `if [ -f ${root}/state.later ]; then if [ -f ${root}/state.seen ]; then mv ${root}/state.later ${root}/state; rm ${root}/state.seen; else touch ${root}/state.seen; fi; fi; cat ${root}/state`;
const FAKE_CADDY = `#!/usr/bin/env bash
verb=$1
state=$(<"$FAKE_ROOT/state")
case "$state" in
  restarting*) echo "running 2026-12-01T10:00:05Z" > "$FAKE_ROOT/state"; echo "$verb down" >> "$FAKE_ROOT/calls"
    echo "Error response from daemon: Container is restarting, wait until the container is running" >&2; exit 1 ;;
  exited*) echo "$verb down" >> "$FAKE_ROOT/calls"; echo "Error response from daemon: Container is not running" >&2; exit 1 ;;
esac
count_file="$FAKE_ROOT/$verb.count"
n=$(( $(cat "$count_file" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$count_file"
action=$(sed -n "\${n}p" "$FAKE_ROOT/$verb.plan" 2>/dev/null)
action=\${action:-ok}
echo "$verb $action" >> "$FAKE_ROOT/calls"
case "$action" in
  ok) echo "caddy $verb: ok" ;;
  refuse) echo "caddy $verb: loading new config: listen tcp :443: bind: address already in use" >&2; exit 1 ;;
  crash) echo "restarting 2026-12-01T09:00:00Z" > "$FAKE_ROOT/state"; exit 137 ;;
  kill) echo "exited 2026-12-01T09:00:00Z" > "$FAKE_ROOT/state"; exit 137 ;;
  kill-late) echo "exited 2026-12-01T09:00:00Z" > "$FAKE_ROOT/state.later"; exit 137 ;;
esac
`;

let root: string;
let caddyDir: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "mai-caddy-apply-test-"));
  caddyDir = path.join(root, "caddy");
  fs.mkdirSync(caddyDir);
  fs.writeFileSync(path.join(root, "caddy-fake"), FAKE_CADDY, { mode: 0o755 });
  fs.writeFileSync(path.join(root, "state"), "running 2026-12-01T09:00:00Z\n");
  fs.writeFileSync(path.join(caddyDir, "Caddyfile"), "old routes\n");
  fs.writeFileSync(path.join(caddyDir, "Caddyfile.next"), "new routes\n");
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function plan(verb: "validate" | "reload", actions: string[]): void {
  fs.writeFileSync(path.join(root, `${verb}.plan`), actions.join("\n") + "\n");
}

/** The start command the script is given: like `docker start`, the proxy runs again. */
const startCommand = () => `echo "running 2026-12-01T10:00:09Z" > ${root}/state; echo start >> ${root}/calls`;

function apply(wait = 30, start = startCommand()) {
  const r = spawnSync("bash", [APPLY], {
    encoding: "utf8",
    env: {
      ...process.env,
      FAKE_ROOT: root,
      CADDY_HOST_DIR: caddyDir,
      CADDY_CONFIG_DIR: caddyDir,
      CADDY: path.join(root, "caddy-fake"),
      CADDY_PROXY_RUNNING: "true",
      CADDY_PROXY_STATE: STATE_COMMAND(root),
      CADDY_PROXY_START: start,
      CADDY_PROXY_WAIT: String(wait),
    },
  });
  const calls = fs.existsSync(path.join(root, "calls")) ? fs.readFileSync(path.join(root, "calls"), "utf8").trim().split("\n") : [];
  return { code: r.status, output: `${r.stdout}${r.stderr}`, calls, live: fs.readFileSync(path.join(caddyDir, "Caddyfile"), "utf8"), files: fs.readdirSync(caddyDir).sort() };
}

describe("caddy-apply when the proxy goes away", () => {
  it("retries a reload the proxy crashed during, once its restart policy has it running: the new file is live, the step succeeds", () => {
    plan("reload", ["crash", "ok"]);
    const run = apply();
    expect(run.code, run.output).toBe(0);
    expect(run.calls).toEqual(["validate ok", "reload crash", "reload down", "reload ok"]);
    expect(run.live).toBe("new routes\n");
    expect(run.files).toEqual(["Caddyfile"]);
    expect(run.output).toContain("the proxy stopped or restarted during 'caddy reload'");
    expect(run.output).toContain("reloaded the proxy (after it came back)");
  });

  it("starts a proxy killed with docker kill during the reload (no restart policy does), then reloads", () => {
    plan("reload", ["kill", "ok"]);
    const run = apply();
    expect(run.code, run.output).toBe(0);
    // Found stopped twice in a row before it is started: a restart policy gets its chance first.
    expect(run.calls).toEqual(["validate ok", "reload kill", "reload down", "start", "reload ok"]);
    expect(run.live).toBe("new routes\n");
    expect(run.output).toContain("the proxy is stopped");
  });

  it("looks at the proxy again when Docker records its end only after the failed exec", () => {
    plan("reload", ["kill-late", "ok"]);
    const run = apply();
    expect(run.code, run.output).toBe(0);
    expect(run.calls).toEqual(["validate ok", "reload kill-late", "reload down", "start", "reload ok"]);
    expect(run.live).toBe("new routes\n");
  });

  it("retries a validation the proxy crashed during, then installs and reloads", () => {
    plan("validate", ["crash", "ok"]);
    const run = apply();
    expect(run.code, run.output).toBe(0);
    expect(run.calls).toEqual(["validate crash", "validate down", "validate ok", "reload ok"]);
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
    plan("reload", ["kill"]);
    const run = apply(3, "false");
    expect(run.code).toBe(1);
    expect(run.live).toBe("old routes\n");
    expect(run.output).toContain("reload failed; the previous Caddyfile was restored");
    expect(run.output).toContain("could not start the proxy");
    // Retried while it waited, then gave up.
    expect(run.calls.filter((c) => c === "reload down").length).toBeGreaterThan(0);
  });

  it("says the proxy did not come back, not that the file is invalid, when validation never got an answer", () => {
    plan("validate", ["kill"]);
    const run = apply(2, "false");
    expect(run.code).toBe(1);
    expect(run.output).toContain("the proxy did not come back within 2s to validate the new Caddyfile");
    expect(run.output).not.toContain("is invalid");
    expect(run.live).toBe("old routes\n");
  });
});
