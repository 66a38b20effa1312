/**
 * The monitoring tooling in the whole program under Pulumi's mocks: what it uploads, that the
 * webhook URL reaches the host only as the secret stdin of one command (never an asset, a
 * command line or a trigger), and that the install re-runs with the content hash.
 */
import * as path from "path";
import { beforeAll, describe, expect, it } from "vitest";
import { FIXTURE_CONFIG, FIXTURE_SECRET_KEYS } from "./fixtures/stack/config";
import { isSecretValue, type ProgramRun, publicJson, runProgram } from "./support/programHarness";

const CLIENTS_DIR = path.join(__dirname, "fixtures", "stack", "clients");
const WEBHOOK = "https://hooks.slack.com/services/T000/B000/monitoring-test-secret";
let run: ProgramRun;

beforeAll(async () => {
  run = await runProgram({
    config: { ...FIXTURE_CONFIG, "mai-hosting:alertWebhookUrl": WEBHOOK },
    secretKeys: [...FIXTURE_SECRET_KEYS, "mai-hosting:alertWebhookUrl"],
    clientsDir: CLIENTS_DIR,
  });
});

const monitoring = () => run.resources.filter((r) => r.name.startsWith("monitoring"));

describe("MonitoringTooling in the program", () => {
  it("declares one component that stages the files, writes the webhook file and installs", () => {
    expect(run.resources.filter((r) => r.type === "mai:index:MonitoringTooling").map((r) => r.name)).toEqual(["monitoring"]);
    const copies = monitoring().filter((r) => r.type === "command:remote:CopyToRemote");
    expect(copies.map((c) => c.inputs.remotePath)).toEqual([
      "/var/lib/mai/staging/monitoring/mai-status",
      "/var/lib/mai/staging/monitoring/mai-sample",
      "/var/lib/mai/staging/monitoring/mai-alert",
      "/var/lib/mai/staging/monitoring/mai-sample.service",
      "/var/lib/mai/staging/monitoring/mai-sample.timer",
      "/var/lib/mai/staging/monitoring/mai-alert.service",
      "/var/lib/mai/staging/monitoring/mai-alert.timer",
      "/var/lib/mai/staging/monitoring/status.env",
    ]);
    const install = monitoring().find((r) => r.name === "monitoring-install")!;
    // After every upload and the webhook file (and, through the connection, after cloud-init).
    expect(install.options.dependsOn.map((urn: string) => urn.split("::").pop())).toEqual(
      expect.arrayContaining([...copies.map((c) => c.name), "monitoring-alerts-env"]),
    );
    const hash = (install.inputs.triggers as string[])[0];
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    for (const copy of copies) expect(copy.inputs.triggers).toEqual([hash]);
    expect(install.inputs.create).toContain("systemctl enable --now mai-sample.timer mai-alert.timer");
  });

  it("passes the webhook URL only as secret stdin, never in plain sight", () => {
    const envWriter = monitoring().find((r) => r.name === "monitoring-alerts-env")!;
    expect(isSecretValue(envWriter.inputs.stdin)).toBe(true);
    expect((envWriter.inputs.stdin as { value: string }).value).toContain(`ALERT_WEBHOOK_URL='${WEBHOOK}'`);
    expect(envWriter.inputs.create).toContain("cat > /etc/mai/alerts.env.new");
    expect(envWriter.inputs.logging).toBe("none");
    expect(publicJson(run.resources.map((r) => r.inputs))).not.toContain("monitoring-test-secret");
  });
});
