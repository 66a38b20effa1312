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
import { Proxy } from "./components/proxy";
import { loadProgramConfig } from "./config/programConfig";
import { renderCaddyfile } from "./policy/caddyfile";
import { clientNames } from "./policy/clientContainer";
import { caddyfileOptionsFor } from "./policy/proxyPolicy";
import { serverResourceNames } from "./policy/serverNaming";

const config = loadProgramConfig();
const { settings } = config;

// Hetzner refuses the same SSH key twice in a project: the first Hetzner server registers the
// keys, the others use them.
let sshKeys: hcloud.SshKey[] | undefined;
const hosts: Host[] = settings.servers.map((server) => {
  const names = serverResourceNames(server.name);
  if (server.kind === "local") return new LocalHost(names.host, { server });
  const host = new HetznerHost(names.host, { server, settings, sshPrivateKey: config.sshPrivateKey, sshKeys });
  sshKeys ??= host.sshKeys;
  return host;
});

const clients = hosts.flatMap((host) => {
  const names = serverResourceNames(host.name);
  const onHost = { providers: { docker: host.docker } };

  // The proxy runs on the host network now; the shared network stays for host-level tools and so
  // that existing servers keep it.
  new docker.Network(names.network, { name: "mai-network", driver: "bridge" }, { provider: host.docker });

  const backupTooling = new BackupTooling(names.backupTooling, { host, retentionDays: settings.backupRetentionDays });

  const pinned = config.clients.filter((client) => client.server === host.name);
  const instances = pinned.map(
    (client) =>
      new ClientInstance(
        client.slug,
        {
          client,
          host,
          domain: settings.domain,
          cloudflareZoneId: settings.cloudflareZoneId,
          backupTooling,
          openrouterApiKey: config.openrouterApiKeys.apply((keys) => keys[client.slug] ?? ""),
          managedKey: config.openrouterProvisioningKey && {
            provisioningKey: config.openrouterProvisioningKey,
            keyName: openRouterKeyName(client.slug, pulumi.getStack()),
          },
        },
        onHost,
      ),
  );

  new Proxy(
    names.proxy,
    { host, caddyfile: renderCaddyfile(pinned, caddyfileOptionsFor(host.proxy, settings.acmeEmail)), image: settings.proxyImage },
    onHost,
  );
  return instances;
});

const firstPublic = hosts.find((host) => host.ipv4Address !== undefined);
/** Addresses of the first Hetzner server (the only one of a single-server stack). */
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
