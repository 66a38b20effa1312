/**
 * The configuration side of the plan: the same validation as `npm run check` (every issue in one
 * ConfigError), plus the clients table, the capacity numbers and the clients whose OpenRouter
 * key is not in the stack config yet.
 */
import type { CapacityReport } from "../../policy/capacity";
import { clientKeyCommand, keysOptional, loadConfigurationFiles, localMissingKeyWarning, missingClientKeys } from "../../config/configuration";
import type { PlanClientRow } from "../../plan/report";
import { clientUrl, serverHttpsPort } from "../../policy/clientContainer";

/** What the plan shows about the configuration itself. */
export interface CheckedConfiguration {
  /** One row per client, in the loader's order. */
  clients: PlanClientRow[];
  /** Capacity use of each server by its active clients, in the stack's server order. */
  capacity: CapacityReport[];
  /** Non-fatal findings, including clients without an OpenRouter key. */
  warnings: string[];
  /** Active clients whose key is missing from the stack config (the plan uses placeholders). */
  missingKeys: string[];
  /** Clients ask for managed keys but the stack has no provisioning key (the plan uses a placeholder). */
  missingProvisioningKey: boolean;
  /** A stack of local servers only: missing keys are not filled in, the program runs without them. */
  keysOptional: boolean;
}

/** Validates the stack file and the client files like `npm run check`; throws ConfigError listing every issue. */
export function validateConfiguration(stackPath: string, clientsDir: string, stack: string): CheckedConfiguration {
  const { stackFile, configuration } = loadConfigurationFiles(stackPath, clientsDir);

  // Clients that ask for a managed key are planned with one even before the provisioning key is
  // set, so a reviewer sees the key resources the change will create.
  const localOnly = keysOptional(configuration.settings);
  const missingProvisioningKey =
    !localOnly &&
    configuration.clients.some((c) => c.openrouter?.monthlyLimitUsd !== undefined) &&
    !stackFile.secretPaths.includes("openrouterProvisioningKey");
  const secretPaths = missingProvisioningKey ? [...stackFile.secretPaths, "openrouterProvisioningKey"] : stackFile.secretPaths;
  const missingKeys = missingClientKeys(configuration.clients, secretPaths);
  return {
    clients: configuration.clients.map((c) => ({
      slug: c.slug,
      hostname: c.hostname,
      url: clientUrl(c, serverHttpsPort(configuration.settings.servers.find((server) => server.name === c.server))),
      port: c.port,
      status: c.status,
      cpus: c.resources.cpus,
      memoryMb: c.resources.memoryMb,
      reservedCpus: c.resources.reservedCpus,
      reservedMemoryMb: c.resources.reservedMemoryMb,
      pidsLimit: c.resources.pidsLimit,
      server: c.server,
      ...(c.moveFrom === undefined ? {} : { moveFrom: c.moveFrom }),
    })),
    capacity: configuration.capacity,
    warnings: [
      ...configuration.warnings,
      ...(missingProvisioningKey
        ? [
            `clients ask for managed OpenRouter keys but the stack has no provisioning key (the plan used a placeholder; \`pulumi up\` fails until it is set): pulumi config set --stack ${stack} --secret openrouterProvisioningKey <key>`,
          ]
        : []),
      ...missingKeys.map((slug) =>
        localOnly
          ? localMissingKeyWarning(slug, stack)
          : `client "${slug}" has no OpenRouter key (the plan used a placeholder; \`pulumi up\` fails until it is set): ${clientKeyCommand(slug, stack)}`,
      ),
    ],
    missingKeys,
    missingProvisioningKey,
    keysOptional: localOnly,
  };
}

