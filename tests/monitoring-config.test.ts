/**
 * A malformed alert webhook URL stops the program before any resource is registered, naming the
 * config key and never the value (it is a credential).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { afterAll, describe, expect, it } from "vitest";
import { FIXTURE_CONFIG, FIXTURE_SECRET_KEYS } from "./fixtures/stack/config";
import { runProgram } from "./support/programHarness";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-monitoring-config-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("alertWebhookUrl", () => {
  it("is refused with the key named and the value hidden when it is not an http(s) URL, with the other mistakes", async () => {
    fs.writeFileSync(path.join(dir, "acme.yaml"), "name: Acme\nport: 3001\n");
    const registered: string[] = [];
    const error = await runProgram({
      config: { ...FIXTURE_CONFIG, "mai-hosting:alertWebhookUrl": "hooks.slack.com/services/T0/B0/hidden-token" },
      secretKeys: [...FIXTURE_SECRET_KEYS, "mai-hosting:alertWebhookUrl"],
      clientsDir: dir,
    }).then(
      (run) => {
        registered.push(...run.resources.map((r) => r.name));
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(pulumi.RunError);
    const lines = (error as Error).message.split("\n");
    // Reported together with the other secret-config mistake of this stack (acme has no key).
    expect(lines).toEqual([
      "invalid configuration:",
      expect.stringMatching(/^Pulumi\.test\.yaml: mai-hosting:openrouterApiKeys\.acme: no OpenRouter key/),
      "Pulumi.test.yaml: mai-hosting:alertWebhookUrl: expected an http(s) URL (value not shown: it is a secret)",
    ]);
    expect((error as Error).message).not.toContain("hidden-token");
    expect(registered).toEqual([]);
  });
});
