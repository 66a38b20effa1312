/**
 * mai-hosting: one Hetzner CCX server, the shared Docker network, Caddy in front, and one
 * ClientInstance per `clients/*.yaml`. Configuration is validated completely before anything
 * is declared; see config/programConfig.ts.
 */
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import { BackupTooling } from "./components/backups";
import { renderCaddyfile } from "./policy/caddyfile";
import { ClientInstance } from "./components/clientInstance";
import { clientNames } from "./policy/clientContainer";
import { Host } from "./components/host";
import { openRouterKeyName } from "./components/openrouter/key";
import { loadProgramConfig } from "./config/programConfig";
import { Proxy } from "./components/proxy";
import { SHARED_NETWORK } from "./policy/sharedNames";

const config = loadProgramConfig();
const { settings } = config;

const host = new Host("host", { settings, sshPrivateKey: config.sshPrivateKey });

const network = new docker.Network(SHARED_NETWORK, { name: SHARED_NETWORK, driver: "bridge" }, { provider: host.docker });

const backupTooling = new BackupTooling("backup-tooling", {
  connection: host.connection,
  retentionDays: settings.backupRetentionDays,
});

const clients = config.clients.map(
  (client) =>
    new ClientInstance(
      client.slug,
      {
        client,
        domain: settings.domain,
        cloudflareZoneId: settings.cloudflareZoneId,
        ipv4Address: host.ipv4Address,
        ipv6Address: host.ipv6Address,
        connection: host.connection,
        backupTooling,
        openrouterApiKey: config.openrouterApiKeys.apply((keys) => keys[client.slug] ?? ""),
        managedKey: config.openrouterProvisioningKey && {
          provisioningKey: config.openrouterProvisioningKey,
          keyName: openRouterKeyName(client.slug, pulumi.getStack()),
          apiBaseUrl: settings.openrouterApiBaseUrl,
        },
      },
      { providers: { docker: host.docker } },
    ),
);

new Proxy(
  "proxy",
  {
    connection: host.connection,
    network,
    clientNetworks: clients.map((instance) => ({ slug: instance.client.slug, network: instance.network })),
    caddyfile: renderCaddyfile(config.clients, { acmeEmail: settings.acmeEmail }),
  },
  { providers: { docker: host.docker } },
);

export const serverIpv4 = host.ipv4Address;
export const serverIpv6 = host.ipv6Address;
export const clientEndpoints = Object.fromEntries(
  clients.map(({ client, url }) => [
    client.slug,
    { url, port: client.port, container: clientNames(client.slug).container, status: client.status },
  ]),
);
