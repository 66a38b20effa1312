/**
 * Bad input gets a clear error and nothing is touched: the program must refuse before it
 * registers a single resource, with every problem listed and as a RunError (which Pulumi prints
 * without a stack trace).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { afterEach, describe, expect, it, vi } from "vitest";
import { FIXTURE_CONFIG, FIXTURE_SECRET_KEYS } from "./fixtures/stack/config";
import { runProgram } from "./support/programHarness";

const dirs: string[] = [];
function clientsDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-invalid-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}
afterEach(() => dirs.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

async function refusal(files: Record<string, string>, config = FIXTURE_CONFIG) {
  vi.resetModules();
  const registered: string[] = [];
  const attempt = runProgram({ config, secretKeys: FIXTURE_SECRET_KEYS, clientsDir: clientsDir(files) }).then((run) => {
    registered.push(...run.resources.map((r) => r.name));
  });
  const error = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
  return { error, registered };
}

describe("invalid configuration", () => {
  it("reports every mistake across files at once and registers nothing", async () => {
    const { error, registered } = await refusal({
      "good.yaml": "name: Good\nport: 8001\n",
      "bad.yaml": "name: Bad\nport: 80\nstatus: paused\n",
      "Bad_Name.yaml": "name: X\nport: 8002\n",
      "dup.yaml": "name: Dup\nport: 8001\n",
    });
    expect(pulumi.RunError.isInstance(error)).toBe(true);
    const message = (error as Error).message;
    expect(message).toMatch(/bad\.yaml:2: port: .*1024/);
    expect(message).toMatch(/bad\.yaml:3: status: .*active.*suspended/);
    expect(message).toContain("Bad_Name.yaml");
    expect(message).toMatch(/dup\.yaml.*8001|8001.*dup\.yaml/);
    expect(registered).toEqual([]);
  });

  it("refuses a client without an OpenRouter key and prints the command to set one", async () => {
    const keys = JSON.parse(FIXTURE_CONFIG["mai-hosting:openrouterApiKeys"]);
    const { error, registered } = await refusal(
      { "newco.yaml": "name: NewCo\nport: 8001\n" },
      { ...FIXTURE_CONFIG, "mai-hosting:openrouterApiKeys": JSON.stringify(keys) },
    );
    expect(pulumi.RunError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain("pulumi config set --stack test --secret --path 'openrouterApiKeys.newco' <key>");
    expect(registered).toEqual([]);
  });

  it("refuses broken stack settings the same way", async () => {
    const { error, registered } = await refusal(
      { "good.yaml": "name: Good\nport: 8001\n" },
      { ...FIXTURE_CONFIG, "mai-hosting:adminCidrs": JSON.stringify(["0.0.0.0/0"]) },
    );
    expect(pulumi.RunError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(/Pulumi\.test\.yaml: mai-hosting:adminCidrs\[0\]/);
    expect(registered).toEqual([]);
  });
});
