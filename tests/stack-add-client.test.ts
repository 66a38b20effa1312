/**
 * Adding a client file must add only that client's resources and change only the proxy's
 * configuration: no other resource's inputs may move (that would update or restart it).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { FIXTURE_CONFIG, FIXTURE_SECRET_KEYS } from "./fixtures/stack/config";
import { DeclaredResource, ProgramRun, runProgram } from "./support/programHarness";

const FIXTURE_CLIENTS = path.join(__dirname, "fixtures", "stack", "clients");
let workDir: string;
let before: ProgramRun;
let after: ProgramRun;

const key = (r: DeclaredResource) => `${r.type}::${r.name}`;
const byKey = (run: ProgramRun) => new Map(run.resources.map((r) => [key(r), r]));

async function evaluate(clientsDir: string, config = FIXTURE_CONFIG): Promise<ProgramRun> {
  vi.resetModules();
  return runProgram({ config, secretKeys: FIXTURE_SECRET_KEYS, clientsDir });
}

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-add-client-"));
  fs.cpSync(FIXTURE_CLIENTS, workDir, { recursive: true });
  before = await evaluate(workDir);
  fs.writeFileSync(path.join(workDir, "hooli.yaml"), "name: Hooli\nport: 8010\n");
  const keys = { ...JSON.parse(FIXTURE_CONFIG["mai-hosting:openrouterApiKeys"]), hooli: "sk-or-v1-fixture-hooli-0000000000000000000000000000" };
  after = await evaluate(workDir, { ...FIXTURE_CONFIG, "mai-hosting:openrouterApiKeys": JSON.stringify(keys) });
});

afterAll(() => fs.rmSync(workDir, { recursive: true, force: true }));

describe("adding a client", () => {
  it("adds only resources of the new client", () => {
    const old = byKey(before);
    const added = after.resources.filter((r) => !old.has(key(r))).map((r) => r.name).sort();
    expect(added).toEqual([
      "hooli",
      "hooli-admin-password",
      "hooli-backup",
      "hooli-backup-timer",
      "hooli-container",
      "hooli-data",
      "hooli-dns-a",
      "hooli-dns-aaaa",
      "hooli-network",
      "hooli-pids-limit",
      "hooli-webui-secret",
    ]);
  });

  it("removes nothing", () => {
    const now = byKey(after);
    expect(before.resources.filter((r) => !now.has(key(r))).map(key)).toEqual([]);
  });

  it("changes the inputs of the Caddyfile upload and the reload only", () => {
    const now = byKey(after);
    const changed = before.resources
      .filter((r) => JSON.stringify(r.inputs) !== JSON.stringify(now.get(key(r))?.inputs))
      .map((r) => r.name)
      .sort();
    expect(changed).toEqual(["proxy-caddyfile", "proxy-reload"]);
  });
});
