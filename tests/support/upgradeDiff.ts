/**
 * `node --import tsx tests/support/upgradeDiff.ts <git-ref>`: what upgrading a stack deployed from
 * <git-ref> to the working tree's program changes, with the configuration held fixed at <git-ref>
 * (its Pulumi.prod.yaml and clients/), so only the program's own change shows. Both programs run
 * under the plan's mock runtime in this process; prints the declared-resource diff as JSON.
 * A child process because the program is loaded with Node's require (tsx), not vitest's loader.
 */
import * as fs from "fs";
import * as path from "path";
import { diffDeclarations } from "../../plan/diff";
import { evaluateProgram } from "../../plan/mockRuntime";
import { runtimeConfigFromStackFile } from "../../plan/stackConfig";
import { PROJECT } from "../../config/stackSettings";
import { validateConfiguration } from "../../scripts/lib/planConfig";
import { checkoutConfigAt, withPlaceholderKeys } from "../../scripts/lib/planRun";
import { applyFastRegistration } from "../../scripts/lib/planSpeed";

async function main(base: string): Promise<void> {
  applyFastRegistration();
  const root = path.join(__dirname, "..", "..");
  const at = checkoutConfigAt({ projectRoot: root, stack: "prod", clientsDir: path.join(root, "clients"), base });
  try {
    if (!at.programPath || !at.stackFile) throw new Error(`${base} has no index.ts or Pulumi.prod.yaml`);
    const checked = validateConfiguration(at.stackFile, at.clientsDir, "prod");
    const runtime = runtimeConfigFromStackFile(fs.readFileSync(at.stackFile, "utf8"), "Pulumi.prod.yaml");
    const config = withPlaceholderKeys(runtime, checked.missingKeys, checked.missingProvisioningKey).config;
    const input = { project: PROJECT, stack: "prod", config, clientsDir: at.clientsDir };
    const before = await evaluateProgram({ ...input, programPath: at.programPath });
    const after = await evaluateProgram({ ...input, programPath: path.join(root, "index.ts") });
    const changes = diffDeclarations(before.resources, after.resources, { base: before.fingerprints, head: after.fingerprints });
    process.stdout.write(JSON.stringify({ changes, resources: { before: before.resources.length, after: after.resources.length } }));
  } finally {
    fs.rmSync(at.dir, { recursive: true, force: true });
  }
}

main(process.argv[2] ?? "HEAD").catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
