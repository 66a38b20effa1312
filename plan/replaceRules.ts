/**
 * Which input changes make a provider recreate a resource instead of updating it in place.
 *
 * The tables follow the providers' published schemas (the bridged Terraform schemas are the
 * source of `ForceNew` for bridged Pulumi providers):
 * - @pulumi/docker 5 bridges kreuzwerker/terraform-provider-docker v3:
 *   internal/provider/resource_docker_container.go — every `docker_container` argument is
 *   `ForceNew` except the ones listed in `containerUpdatable` (memory, memory_swap, cpu_shares,
 *   cpu_set, cpu_period, cpu_quota, restart, max_retry_count, healthcheck, and the provider-side
 *   switches such as must_run/start/wait); memory_reservation is applied with `docker update`.
 *   resource_docker_network.go, resource_docker_volume.go: all arguments `ForceNew`.
 *   resource_docker_image.go (`docker_image`, RemoteImage): name, build, platform,
 *   pull_triggers, triggers force a new image; keep_locally and force_remove do not.
 * - @pulumi/hcloud bridges hetznercloud/terraform-provider-hcloud: internal/server/resource.go
 *   marks image, location, datacenter, user_data and ssh_keys `ForceNew`; server_type is changed
 *   in place (the server is powered off for the resize). internal/primaryip: type, datacenter,
 *   location and assignee_type force a new IP; internal/sshkey: public_key forces a new key;
 *   firewalls update in place.
 * - @pulumi/cloudflare 6 bridges cloudflare/terraform-provider-cloudflare v5: `dns_record`
 *   has `RequiresReplace` on zone_id only.
 * - @pulumi/command (native provider, schema in pulumi/pulumi-command): `triggers` is declared
 *   `replaceOnChanges: ["triggers[*]"]` by the SDK itself (command/remote/command.js and
 *   copyToRemote.js); other inputs re-run the command / copy as an update.
 * - @pulumi/random bridges hashicorp/terraform-provider-random: every `random_password`
 *   argument (length, special, upper, lower, numeric, min_*, override_special, keepers) is
 *   `ForceNew`.
 * For types not listed here a change counts as an update (the resource's own
 * `replaceOnChanges` option still applies). Container fields missing from the updatable list
 * count as replacing, so a restart is never under-reported.
 */

/** How one resource type reacts to changed inputs. */
interface ReplaceRule {
  /** Inputs whose change forces replacement. Ignored when `updatable` is given. */
  replaces?: ReadonlySet<string>;
  /** When given: only these inputs update in place, every other input forces replacement. */
  updatable?: ReadonlySet<string>;
}

const containerUpdatable = new Set([
  "memory",
  "memoryReservation",
  "memorySwap",
  "cpuShares",
  "cpuSet",
  "cpuPeriod",
  "cpuQuota",
  "restart",
  "maxRetryCount",
  "healthcheck",
  "mustRun",
  "start",
  "wait",
  "waitTimeout",
  "attach",
  "logs",
  "rm",
  "removeVolumes",
  "destroyGraceSeconds",
  "containerReadRefreshTimeoutMilliseconds",
  "init",
  "tmpfs",
]);

const rules: Record<string, ReplaceRule> = {
  "docker:index/container:Container": { updatable: containerUpdatable },
  "docker:index/network:Network": { updatable: new Set() },
  "docker:index/volume:Volume": { updatable: new Set() },
  "docker:index/remoteImage:RemoteImage": {
    replaces: new Set(["name", "build", "platform", "pullTriggers", "triggers"]),
  },
  "hcloud:index/server:Server": {
    replaces: new Set(["image", "location", "datacenter", "userData", "sshKeys"]),
  },
  "hcloud:index/primaryIp:PrimaryIp": {
    replaces: new Set(["type", "datacenter", "location", "assigneeType"]),
  },
  "hcloud:index/sshKey:SshKey": { replaces: new Set(["publicKey"]) },
  "hcloud:index/firewall:Firewall": { replaces: new Set() },
  "cloudflare:index/dnsRecord:DnsRecord": { replaces: new Set(["zoneId"]) },
  "command:remote:Command": { replaces: new Set(["triggers"]) },
  "command:remote:CopyToRemote": { replaces: new Set(["triggers"]) },
  "random:index/randomPassword:RandomPassword": { updatable: new Set() },
  "random:index/randomString:RandomString": { updatable: new Set() },
};

/**
 * Inputs a provider's diff does not compare at all: a change to them alone is no step for the
 * engine (the resource keeps its outputs). The OpenRouter key resource leaves limits to its
 * settings child and treats the provisioning key and API base URL as credentials, not as part of
 * the key (components/openrouter/keyProvider.ts); a rotation updates only the settings.
 */
const notCompared: Record<string, ReadonlySet<string>> = {
  "pulumi-nodejs:dynamic/openrouter:Key": new Set(["provisioningKey", "apiBaseUrl", "limitUsd", "limitReset"]),
};

/** Whether the provider of `type` compares top-level input `field` when it diffs. */
export function providerCompares(type: string, field: string): boolean {
  return !(notCompared[type]?.has(field) ?? false);
}

/**
 * Inputs that the provider changes in place but that interrupt service anyway; shown next to
 * the update so a reviewer is not surprised.
 */
const disruptiveUpdates: Record<string, Record<string, string>> = {
  "hcloud:index/server:Server": { serverType: "the server is powered off for the resize" },
};

/** The top-level input name an option path such as `triggers[*]` or `a.b` refers to. */
export function topLevelInput(path: string): string {
  return path.split(/[.[]/)[0];
}

/**
 * Whether a change to top-level input `field` of a resource of `type` forces replacement,
 * given the resource's own `replaceOnChanges` option paths.
 */
export function forcesReplacement(type: string, field: string, replaceOnChanges: readonly string[] = []): boolean {
  if (replaceOnChanges.some((path) => path === "*" || topLevelInput(path) === field)) return true;
  const rule = rules[type];
  if (!rule) return false;
  if (rule.updatable) return !rule.updatable.has(field);
  return rule.replaces?.has(field) ?? false;
}

/** A short warning for in-place updates that still interrupt service, if any. */
export function disruptionNote(type: string, field: string): string | undefined {
  return disruptiveUpdates[type]?.[field];
}

/** Resource types whose replacement means a client's workspace restarts. */
export const restartingTypes: ReadonlySet<string> = new Set(["docker:index/container:Container"]);

/** Resource types that hold client data: deleting one without `retainOnDelete` loses data. */
export const dataHoldingTypes: ReadonlySet<string> = new Set(["docker:index/volume:Volume"]);
