/**
 * mai-hosting: the stack's servers (Hetzner CCX servers, or the local Docker Engine), and on each
 * one the shared Docker network, the backup tooling, the ClientInstances pinned to it and Caddy
 * in front of them. Configuration is validated completely before anything is declared; see
 * config/programConfig.ts. Everything that differs between kinds of server is behind the Host
 * seam (components/hosts/host.ts).
 */
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import type * as hcloud from "@pulumi/hcloud";
import { BackupTooling } from "./components/backups";
import { ClientInstance } from "./components/clientInstance";
import type { Host } from "./components/hosts/host";
import { HetznerHost } from "./components/hosts/hetzner";
import { LocalHost } from "./components/hosts/local";
import { openRouterKeyName } from "./components/openrouter/key";
import { MonitoringTooling } from "./components/monitoring";
import { Proxy } from "./components/proxy";
import { loadProgramConfig } from "./config/programConfig";
import { DEFAULT_SERVER_NAME } from "./config/servers";
import { renderCaddyfile } from "./policy/caddyfile";
import { clientAdminsOutput, clientNames } from "./policy/clientContainer";
import { caddyfileOptionsFor } from "./policy/proxyPolicy";
import { serverResourceNames } from "./policy/serverNaming";
import { SHARED_NETWORK } from "./policy/sharedNames";

const config = loadProgramConfig();
const { settings } = config;

// Hetzner refuses the same SSH key twice in a project: one Hetzner server registers the keys
// (`host` when the stack has it, so upgrading a single-server stack keeps them where they are;
// otherwise the first by name: Pulumi hands the program config objects in key order, whatever the
// file's order), the others use them.
const hetznerServers = settings.servers.filter((server) => server.kind === "hetzner").sort((a, b) => a.name.localeCompare(b.name));
const keyOwner = hetznerServers.find((server) => server.name === DEFAULT_SERVER_NAME) ?? hetznerServers[0];
const built = new Map<string, Host>();
let sshKeys: hcloud.SshKey[] | undefined;
if (keyOwner?.kind === "hetzner") {
  const owner = new HetznerHost(serverResourceNames(keyOwner.name).host, { server: keyOwner, settings, sshPrivateKey: config.sshPrivateKey });
  sshKeys = owner.sshKeys;
  built.set(keyOwner.name, owner);
}
const hosts: Host[] = settings.servers.map((server) => {
  const existing = built.get(server.name);
  if (existing) return existing;
  const names = serverResourceNames(server.name);
  if (server.kind === "local") return new LocalHost(names.host, { server });
  return new HetznerHost(names.host, { server, settings, sshPrivateKey: config.sshPrivateKey, sshKeys });
});

// Per server: the shared network and the host tools, before any client (a moving client's data
// needs the tools on both of its servers).
const toolingByHost = new Map(
  hosts.map((host) => {
    const names = serverResourceNames(host.name);
    // The proxy runs on the host network now; the shared network stays for host-level tools and so
    // that existing servers keep it.
    new docker.Network(names.network, { name: SHARED_NETWORK, driver: "bridge" }, { provider: host.docker });
    const backupTooling = new BackupTooling(names.backupTooling, { host, retentionDays: settings.backupRetentionDays });
    // mai-status, the per-minute sampler and the alerts (docs/runbook.md, "The operator's view").
    new MonitoringTooling(names.monitoring, { host, alertWebhookUrl: config.alertWebhookUrl });
    return [host.name, backupTooling] as const;
  }),
);
const hostNamed = (name: string) => hosts.find((host) => host.name === name)!;

const pinnedByHost = new Map(hosts.map((host) => [host.name, config.clients.filter((client) => client.server === host.name)]));
const clients = hosts.flatMap((host) =>
  pinnedByHost.get(host.name)!.map(
    (client) =>
      new ClientInstance(
        client.slug,
        {
          client,
          host,
          domain: settings.domain,
          cloudflareZoneId: settings.cloudflareZoneId,
          backupTooling: toolingByHost.get(host.name)!,
          openrouterApiKey: config.openrouterApiKeys.apply((keys) => keys[client.slug] ?? ""),
          managedKey: config.openrouterProvisioningKey && {
            provisioningKey: config.openrouterProvisioningKey,
            keyName: openRouterKeyName(client.slug, pulumi.getStack()),
            apiBaseUrl: settings.openrouterApiBaseUrl,
          },
          // `moveFrom`: the client's data comes from that server in this deployment (policy/move.ts).
          ...(client.moveFrom && client.moveFrom !== client.server
            ? { move: { source: hostNamed(client.moveFrom), after: [toolingByHost.get(client.moveFrom)!, toolingByHost.get(host.name)!] } }
            : {}),
        },
        { providers: { docker: host.docker } },
      ),
  ),
);

for (const host of hosts) {
  const pinned = pinnedByHost.get(host.name)!;
  const leaving = clients.filter((instance) => instance.move && instance.client.moveFrom === host.name).map((instance) => instance.move!);
  const arriving = clients.filter((instance) => instance.move && instance.client.server === host.name).flatMap((instance) => instance.arrival);
  new Proxy(
    serverResourceNames(host.name).proxy,
    {
      host,
      caddyfile: renderCaddyfile(pinned, caddyfileOptionsFor(host.proxy, settings.acmeEmail)),
      image: settings.proxyImage,
      reloadAfter: [...leaving, ...arriving],
    },
    { providers: { docker: host.docker } },
  );
}

const firstPublic = keyOwner && hosts.find((host) => host.name === keyOwner.name);
/** Addresses of the Hetzner server that registers the SSH keys (the only one of a single-server stack). */
export const serverIpv4 = firstPublic?.ipv4Address;
export const serverIpv6 = firstPublic?.ipv6Address;
/** Every server: its kind, public addresses (Hetzner) and the shell prefix that reaches it. */
export const servers = Object.fromEntries(
  hosts.map((host) => [host.name, { kind: host.kind, ipv4: host.ipv4Address, ipv6: host.ipv6Address, shell: host.shell }]),
);
export const clientEndpoints = Object.fromEntries(
  clients.map(({ client, url }) => [
    client.slug,
    { url, port: client.port, container: clientNames(client.slug).container, status: client.status, server: client.server },
  ]),
);
/**
 * Each client's first admin, `{ <slug>: { email, password } }` (secret): the account the workspace
 * creates at its first start. Hand it over with `pulumi stack output clientAdmins --show-secrets`
 * (docs/runbook.md, "Hand over a new workspace"); the password is the initial one, not what the client set.
 */
export const clientAdmins = pulumi.secret(
  pulumi.all(clients.map((instance) => instance.adminAccount.apply((account) => ({ slug: instance.client.slug, ...account })))).apply(clientAdminsOutput),
);
