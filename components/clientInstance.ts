import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import * as cloudflare from "@pulumi/cloudflare";
import * as random from "@pulumi/random";
import { ClientBackup } from "./backups";
import { ClientMove } from "./clientMove";
import type { ClientSpec } from "../config/model";
import {
  CLIENT_HEALTHCHECK,
  CONTAINER_LOG_OPTS,
  clientContainment,
  clientEnvironment,
  clientLabels,
  clientLimits,
  clientMounts,
  clientNames,
  clientPorts,
  clientUrl,
  type ClientAdminAccount,
  pidsLimitCommand,
} from "../policy/clientContainer";
import { dnsRecordsFor } from "../policy/dns";
import { lifecycle, placedOn } from "../policy/lifecycle";
import { OpenRouterKey } from "./openrouter/key";
import type { Host, HostCommand } from "./hosts/host";

export interface ClientInstanceArgs {
  /** The validated client: `clients/<slug>.yaml` with the stack defaults applied. */
  client: ClientSpec;
  /** Base domain of the Cloudflare zone (decides which hostnames get records). */
  domain: string;
  /** Cloudflare zone that holds `<slug>.<domain>`; without it (local stack) no DNS is declared. */
  cloudflareZoneId?: string;
  /** The host the client runs on: its paths, its commands, and its addresses for DNS. */
  host: Host;
  /** The client's OpenRouter API key set by hand in secret config (secret); unused with a managed key. */
  openrouterApiKey: pulumi.Input<string>;
  /** The host's backup tooling; the client's nightly timer is enabled after it is installed. */
  backupTooling: pulumi.Resource;
  /**
   * When the client moves here in this deployment (`moveFrom` in its file): the server it leaves,
   * and what must be in place before its data moves (the host tools on both servers).
   */
  move?: {
    /** The server the client leaves. */
    source: Host;
    /** Resources the move waits for besides the client's own volume on this host. */
    after: pulumi.Resource[];
  };
  /** When set and the client file has `openrouter.monthlyLimitUsd`, the stack creates the key itself. */
  managedKey?: {
    /** OpenRouter provisioning key (secret). */
    provisioningKey: pulumi.Input<string>;
    /** Name of the key in OpenRouter (see `openRouterKeyName`). */
    keyName: string;
    /** OpenRouter API base URL for key management (stack setting `openrouterApiBaseUrl`); default OpenRouter's. */
    apiBaseUrl?: string;
  };
}

/**
 * One client organisation: its data volume, its private network, its container (absent while
 * suspended), its nightly backup timer (where the host runs systemd) and its DNS records (where
 * the host has public addresses). Docker children use the provider given in `opts.providers`.
 */
export class ClientInstance extends pulumi.ComponentResource {
  /** The client's own bridge network; nothing else joins it (the proxy uses the loopback port). */
  public readonly network: docker.Network;
  /** The client's database volume; retained when the client is removed. */
  public readonly dataVolume: docker.Volume;
  /** The running workspace; undefined while the client is suspended. */
  public readonly container?: docker.Container;
  /** Gives the container its pids limit (the Docker provider has none); with the container only. */
  public readonly pidsLimit?: HostCommand;
  /** The stack-managed OpenRouter key, when the client has one. */
  public readonly openrouterKey?: OpenRouterKey;
  /** The move of the client's data from the server it leaves, in the deployment that moves it. */
  public readonly move?: ClientMove;
  /**
   * In the deployment that moves the client here: what must be done before this host's proxy
   * routes to it (the move, the container started here, the DNS records pointing here). Empty
   * otherwise.
   */
  public readonly arrival: pulumi.Resource[] = [];
  /** Where the workspace answers, with the port when the host's proxy is not on 443. */
  public readonly url: string;
  /** The validated client this instance declares. */
  public readonly client: ClientSpec;
  /** The first admin's e-mail and generated password (secret): what the operator hands over. */
  public readonly adminAccount: pulumi.Output<ClientAdminAccount>;

  constructor(name: string, args: ClientInstanceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mai:index:ClientInstance", name, {}, opts);
    const { client } = args;
    const names = clientNames(client.slug);
    const child = { parent: this };
    this.url = clientUrl(client, args.host.proxy.httpsPort);
    this.client = client;

    this.dataVolume = new docker.Volume(
      `${name}-data`,
      { name: names.dataVolume, labels: [{ label: "mai.client", value: client.slug }] },
      { ...child, ...lifecycle.dataVolume, ...placedOn(client.server) },
    );

    // A move fills the new (empty) volume before anything else of the client exists here; see
    // policy/move.ts.
    if (args.move) {
      this.move = new ClientMove(
        `${name}-move`,
        {
          move: { slug: client.slug, from: args.move.source.name, to: args.host.name, suspended: client.status === "suspended" },
          source: args.move.source,
          target: args.host,
          after: [this.dataVolume, ...args.move.after],
        },
        child,
      );
    }
    const afterMove = this.move ? [this.move] : [];

    // Created here only once the data has moved: a failed move then leaves the network where it
    // was in the state too (the volume's replacement is harmless: `docker volume create` adopts
    // the existing volume, and the copy left behind is retained), so both retrying and cancelling
    // the move work. Replaced the other way round, the source network would stay in the state
    // only as pending deletion, with the client still attached, and setting `server:` back would
    // fail on "network with name mai-<slug> already exists" at every `pulumi up`.
    this.network = new docker.Network(
      `${name}-network`,
      { name: names.network, driver: "bridge", labels: [{ label: "mai.client", value: client.slug }] },
      { ...child, ...placedOn(client.server), dependsOn: afterMove },
    );

    // A suspended client keeps its key (resuming keeps the same key) but cannot spend with it.
    const limitUsd = client.openrouter?.monthlyLimitUsd;
    if (args.managedKey && limitUsd !== undefined) {
      this.openrouterKey = new OpenRouterKey(
        `${name}-openrouter`,
        {
          name: args.managedKey.keyName,
          limitUsd,
          provisioningKey: args.managedKey.provisioningKey,
          apiBaseUrl: args.managedKey.apiBaseUrl,
          disabled: client.status === "suspended",
        },
        child,
      );
    }
    const apiKey = this.openrouterKey?.key ?? args.openrouterApiKey;

    // The session-signing secret lives as long as the client, not its container: suspending and
    // resuming must not log every user out.
    const webuiSecretKey = new random.RandomPassword(`${name}-webui-secret`, { length: 48, special: false }, child);

    // The first admin's password, created with the workspace: Open WebUI makes the account at its
    // first start and ignores the value once any account exists, so it too lives as long as the client.
    const adminPassword = new random.RandomPassword(`${name}-admin-password`, { length: 32, special: false }, child);
    this.adminAccount = pulumi.secret(adminPassword.result.apply((password) => ({ email: client.admin, password })));

    if (client.status === "active") {
      const envs = pulumi
        .all([pulumi.secret(apiKey), webuiSecretKey.result, adminPassword.result])
        .apply(([openrouterApiKey, secret, admin]) => clientEnvironment(client, { openrouterApiKey, webuiSecretKey: secret, adminPassword: admin }));

      this.container = new docker.Container(
        `${name}-container`,
        {
          name: names.container,
          image: client.image,
          restart: "unless-stopped",
          envs: pulumi.secret(envs),
          ...clientLimits(client),
          ...clientContainment(),
          ports: clientPorts(client),
          networksAdvanced: [{ name: this.network.name }],
          volumes: this.dataVolume.name.apply((volumeName) => clientMounts(client.slug, args.host.paths.backupsDir, volumeName)),
          healthcheck: CLIENT_HEALTHCHECK,
          logDriver: "json-file",
          logOpts: CONTAINER_LOG_OPTS,
          labels: clientLabels(client),
        },
        { ...child, ...lifecycle.container, ...placedOn(client.server), dependsOn: afterMove },
      );

      // `replaceWith`: a new container gets the limit again. The command names the container
      // rather than taking its id, so an in-place update (which keeps the limit) leaves it alone;
      // an id is unknown in a preview of any container change and would show a re-run each time.
      this.pidsLimit = args.host.runCommand(
        `${name}-pids-limit`,
        { create: pidsLimitCommand(names.container, client.resources.pidsLimit) },
        { ...child, dependsOn: [this.container], replaceWith: [this.container] },
      );
    }

    // Suspended clients keep their nightly backup: their data still exists and still matters.
    if (args.host.hasSystemd) {
      new ClientBackup(`${name}-backup`, { host: args.host, slug: client.slug, tooling: args.backupTooling }, child);
    }

    // DNS stays while suspended, so visitors see the 503 page rather than a DNS error. A host
    // without public addresses (the local engine) has no DNS.
    const { ipv4Address, ipv6Address } = args.host;
    const zoneId = args.cloudflareZoneId;
    const dnsRecords = ipv4Address && ipv6Address && zoneId ? dnsRecordsFor(client, args.domain) : [];
    for (const record of dnsRecords) {
      const dns = new cloudflare.DnsRecord(
        `${name}-dns-${record.key}`,
        {
          zoneId: zoneId!,
          name: record.name,
          type: record.type,
          content: record.type === "A" ? ipv4Address! : ipv6Address!,
          ttl: 300,
          // DNS only: Caddy terminates TLS itself (ACME HTTP-01/TLS-ALPN, HTTP/3).
          proxied: false,
          comment: `mAI client ${client.slug} (managed by Pulumi)`,
        },
        // After a move, DNS switches only once the workspace runs here.
        { ...child, dependsOn: this.container ? [this.container, ...afterMove] : afterMove },
      );
      if (this.move) this.arrival.push(dns);
    }
    // The target's Caddy gets the route once the client runs here and DNS points here: a failed
    // move leaves the target's served configuration as it was, and the first certificate request
    // (HTTP-01 on a public server) finds the client's name already answered by this host.
    if (this.move) this.arrival.push(this.move, ...(this.container ? [this.container] : []));

    this.registerOutputs({ url: this.url, status: client.status });
  }
}
