/**
 * The configuration side of the plan: the same validation as `npm run check` (every issue in one
 * ConfigError), plus the clients table, the capacity numbers and the clients whose OpenRouter
 * key is not in the stack config yet.
 */
import type { CapacityReport } from "../../policy/capacity";
import { clientKeyCommand, loadConfigurationFiles, missingClientKeys } from "../../config/configuration";
import type { PlanClientRow } from "../../plan/report";

/** What the plan shows about the configuration itself. */
export interface CheckedConfiguration {
  /** One row per client, in the loader's order. */
  clients: PlanClientRow[];
  /** Server capacity use of the active clients. */
  capacity: CapacityReport;
  /** Non-fatal findings, including clients without an OpenRouter key. */
  warnings: string[];
  /** Active clients whose key is missing from the stack config (the plan uses placeholders). */
  missingKeys: string[];
  /** Clients ask for managed keys but the stack has no provisioning key (the plan uses a placeholder). */
  missingProvisioningKey: boolean;
}

/** Validates the stack file and the client files like `npm run check`; throws ConfigError listing every issue. */
export function validateConfiguration(stackPath: string, clientsDir: string, stack: string): CheckedConfiguration {
  const { stackFile, configuration } = loadConfigurationFiles(stackPath, clientsDir);

  // Clients that ask for a managed key are planned with one even before the provisioning key is
  // set, so a reviewer sees the key resources the change will create.
  const missingProvisioningKey =
    configuration.clients.some((c) => c.openrouter?.monthlyLimitUsd !== undefined) && !stackFile.secretPaths.includes("openrouterProvisioningKey");
  const secretPaths = missingProvisioningKey ? [...stackFile.secretPaths, "openrouterProvisioningKey"] : stackFile.secretPaths;
  const missingKeys = missingClientKeys(configuration.clients, secretPaths);
  return {
    clients: configuration.clients.map((c) => ({
      slug: c.slug,
      hostname: c.hostname,
      url: `https://${c.hostname}`,
      port: c.port,
      status: c.status,
      cpus: c.resources.cpus,
      memoryMb: c.resources.memoryMb,
      reservedCpus: c.resources.reservedCpus,
      reservedMemoryMb: c.resources.reservedMemoryMb,
      ...placementFields(c as typeof c & { server?: string }),
    })),
    capacity: configuration.capacity,
    warnings: [
      ...configuration.warnings,
      ...(missingProvisioningKey
        ? [
            `clients ask for managed OpenRouter keys but the stack has no provisioning key (the plan used a placeholder; \`pulumi up\` fails until it is set): pulumi config set --stack ${stack} --secret openrouterProvisioningKey <key>`,
          ]
        : []),
      ...missingKeys.map(
        (slug) => `client "${slug}" has no OpenRouter key (the plan used a placeholder; \`pulumi up\` fails until it is set): ${clientKeyCommand(slug, stack)}`,
      ),
    ],
    missingKeys,
    missingProvisioningKey,
  };
}

/** The placement fields of a client, when the configuration has them. */
function placementFields(client: { server?: string; moveFrom?: string }): Pick<PlanClientRow, "server" | "moveFrom"> {
  return {
    ...(client.server !== undefined ? { server: client.server } : {}),
    ...(client.moveFrom !== undefined ? { moveFrom: client.moveFrom } : {}),
  };
}
