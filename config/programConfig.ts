/**
 * Bridge from Pulumi's config to the pure configuration model: reads the stack config and the
 * client files, runs the full validation, and turns user mistakes into a clean error (no stack
 * trace) before the program registers a single resource.
 */
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { Configuration } from "./configuration";
import { clientKeyCommand, keysOptional, localMissingKeyWarning, missingClientKeys, readClientSources, resolveConfiguration } from "./configuration";
import { ALERT_WEBHOOK_CONFIG_KEY, webhookUrlProblem } from "./alerts";
import { ConfigError, formatIssue } from "./configIssues";
import { PROJECT, SECRET_CONFIG_KEYS } from "./stackSettings";

/** Where the client files are; `MAI_CLIENTS_DIR` lets the plan evaluate another set. */
export function clientsDir(): string {
  return process.env.MAI_CLIENTS_DIR ?? path.join(__dirname, "..", "clients");
}

export interface ProgramConfig extends Configuration {
  /** Per-client OpenRouter keys set by hand in secret config, keyed by slug. */
  openrouterApiKeys: pulumi.Output<Record<string, string>>;
  /** Provisioning key for managed OpenRouter keys, when set. */
  openrouterProvisioningKey?: pulumi.Output<string>;
  /** Private key for SSH to the host, when set (otherwise the SSH agent is used). */
  sshPrivateKey?: pulumi.Output<string>;
  /** Webhook the hosts post alerts to, when set (otherwise no alert is sent). */
  alertWebhookUrl?: pulumi.Output<string>;
}

/** Non-secret config of this project as plain values (objects arrive as JSON strings). */
function projectConfigValues(): Record<string, unknown> {
  const prefix = `${PROJECT}:`;
  const values: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(pulumi.runtime.allConfig())) {
    if (!key.startsWith(prefix)) continue;
    const name = key.slice(prefix.length);
    if ((SECRET_CONFIG_KEYS as readonly string[]).includes(name)) continue;
    values[name] = raw;
  }
  return values;
}

/** Dotted paths of the secrets that are set, e.g. `openrouterApiKeys.acme`; values are never kept. */
function presentSecretPaths(): string[] {
  // Read raw: `Config.get` on a secret logs a warning. Only the keys are kept.
  const all = pulumi.runtime.allConfig();
  const paths: string[] = [];
  for (const key of SECRET_CONFIG_KEYS) {
    const raw = all[`${PROJECT}:${key}`];
    if (raw === undefined || raw === "") continue;
    paths.push(key);
    if (raw.trimStart().startsWith("{")) {
      try {
        for (const sub of Object.keys(JSON.parse(raw) as object)) paths.push(`${key}.${sub}`);
      } catch {
        // Not an object: the key itself is set, which is all we need to know.
      }
    }
  }
  return paths;
}

/** Reads and validates everything; throws `pulumi.RunError` (printed without a stack trace) on mistakes. */
export function loadProgramConfig(): ProgramConfig {
  const config = new pulumi.Config(PROJECT);
  const stackFile = `Pulumi.${pulumi.getStack()}.yaml`;
  let configuration: Configuration;
  try {
    configuration = resolveConfiguration({ file: stackFile, values: projectConfigValues() }, readClientSources(clientsDir()));
  } catch (err) {
    if (err instanceof ConfigError) throw new pulumi.RunError(`invalid configuration:\n${err.message}`);
    throw err;
  }

  const missing = missingClientKeys(configuration.clients, presentSecretPaths());
  const lines: string[] = [];
  if (missing.length > 0 && keysOptional(configuration.settings)) {
    // A local stack is for trying things out: the workspace runs, only the model connection is empty.
    for (const slug of missing) pulumi.log.warn(localMissingKeyWarning(slug, pulumi.getStack()));
  } else {
    for (const slug of missing) {
      lines.push(formatIssue({ file: stackFile, path: `${PROJECT}:openrouterApiKeys.${slug}`, message: `no OpenRouter key for client "${slug}"; set it with: ${clientKeyCommand(slug, pulumi.getStack())}` }));
    }
  }
  const webhookUrl = pulumi.runtime.allConfig()[`${PROJECT}:${ALERT_WEBHOOK_CONFIG_KEY}`];
  const webhookProblem = webhookUrl === undefined || webhookUrl === "" ? undefined : webhookUrlProblem(webhookUrl);
  if (webhookProblem !== undefined) {
    lines.push(formatIssue({ file: stackFile, path: `${PROJECT}:${ALERT_WEBHOOK_CONFIG_KEY}`, message: webhookProblem }));
  }
  if (lines.length > 0) throw new pulumi.RunError(`invalid configuration:\n${lines.join("\n")}`);

  for (const warning of configuration.warnings) pulumi.log.warn(warning);

  const present = new Set(presentSecretPaths());
  const secretOrUndefined = (key: string) => (present.has(key) ? config.requireSecret(key) : undefined);
  return {
    ...configuration,
    openrouterApiKeys: config.getSecretObject<Record<string, string>>("openrouterApiKeys") ?? pulumi.secret<Record<string, string>>({}),
    openrouterProvisioningKey: secretOrUndefined("openrouterProvisioningKey"),
    sshPrivateKey: secretOrUndefined("sshPrivateKey"),
    alertWebhookUrl: secretOrUndefined(ALERT_WEBHOOK_CONFIG_KEY),
  };
}
