import * as pulumi from "@pulumi/pulumi";
import * as hcloud from "@pulumi/hcloud";
import * as docker from "@pulumi/docker";
import * as command from "@pulumi/command";
import type { HetznerServerSpec, StackSettings } from "../../config/model";
import { HOST_PATHS, cloudInitWaitCommand, renderCloudInit, sysctlApplyCommand } from "../../policy/cloudInit";
import { contentHash, proxyAdminSocket } from "../../policy/proxyPolicy";
import { lifecycle } from "../../policy/lifecycle";
import { firewallRules, hostLabels, sshKeyName } from "../../policy/hostPolicy";
import { firewallInstallCommand } from "../../policy/clientFirewall";
import { type Host, type HostCommand, type HostCommandArgs, type HostFileArgs, commandFields, fileTriggers } from "./host";

/** SSH options of every connection the machine running Pulumi opens to a Hetzner host. */
export const HETZNER_SSH_OPTIONS = ["-o", "StrictHostKeyChecking=accept-new", "-o", "ServerAliveInterval=30"];

export interface HetznerHostArgs {
  /** The server: its name (resource names, `mai-<name>` at Hetzner), type and location. */
  server: HetznerServerSpec;
  /** OS image, SSH keys and admin networks from the stack settings. */
  settings: Pick<StackSettings, "serverImage" | "sshPublicKeys" | "adminCidrs">;
  /** Private key the stack uses for SSH to the host (secret); when absent the SSH agent is used. */
  sshPrivateKey?: pulumi.Input<string>;
  /**
   * The stack's SSH keys at Hetzner when another host already registered them (Hetzner refuses
   * the same key twice in a project); when absent this host registers them.
   */
  sshKeys?: hcloud.SshKey[];
}

/**
 * A Hetzner server and everything that identifies it: SSH keys, firewall, primary IPs that
 * survive a server replacement, and a Docker provider that talks to the host's daemon over SSH
 * once cloud-init has finished. Commands and files reach it over SSH as root.
 */
export class HetznerHost extends pulumi.ComponentResource implements Host {
  public readonly name: string;
  public readonly kind = "hetzner" as const;
  public readonly server: hcloud.Server;
  /** The SSH keys this host uses (registered by it, or given). */
  public readonly sshKeys: hcloud.SshKey[];
  public readonly ipv4Address: pulumi.Output<string>;
  public readonly ipv6Address: pulumi.Output<string>;
  /** SSH connection for `command.remote` resources; waits for cloud-init to finish. */
  public readonly connection: pulumi.Output<command.types.input.remote.ConnectionArgs>;
  /** Docker provider connected to the host's daemon over `ssh://root@<ipv4>`. */
  public readonly docker: docker.Provider;
  public readonly paths = HOST_PATHS;
  /** Caddy serves the public ports on every address. */
  public readonly proxy = { httpPort: 80, httpsPort: 443, issuer: "acme" as const, adminSocket: proxyAdminSocket(HOST_PATHS) };
  public readonly hasSystemd = true;
  public readonly shell: pulumi.Output<string>;

  constructor(name: string, args: HetznerHostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mai:index:Host", name, {}, opts);
    this.name = args.server.name;
    const { settings, server } = args;
    const labels = hostLabels();
    const hetznerName = `mai-${server.name}`;

    this.sshKeys =
      args.sshKeys ??
      settings.sshPublicKeys.map(
        (publicKey, i) =>
          new hcloud.SshKey(`${name}-ssh-${i}`, { name: sshKeyName(publicKey, i), publicKey, labels }, { parent: this }),
      );

    const firewall = new hcloud.Firewall(
      `${name}-firewall`,
      { name: hetznerName, labels, rules: firewallRules(settings.adminCidrs) },
      { parent: this },
    );

    // No assigneeType: the provider only needs it together with assigneeId (see lifecycle.ts).
    const primaryIp = (type: "ipv4" | "ipv6") =>
      new hcloud.PrimaryIp(
        `${name}-${type}`,
        {
          name: `${hetznerName}-${type}`,
          type,
          location: server.location,
          autoDelete: false,
          deleteProtection: true,
          labels,
        },
        { parent: this, ...lifecycle.primaryIp },
      );
    const ipv4 = primaryIp("ipv4");
    const ipv6 = primaryIp("ipv6");

    this.server = new hcloud.Server(
      `${name}-server`,
      {
        name: hetznerName,
        serverType: server.serverType,
        location: server.location,
        image: settings.serverImage,
        sshKeys: this.sshKeys.map((k) => k.id),
        firewallIds: [firewall.id.apply(Number)],
        publicNets: [
          { ipv4Enabled: true, ipv4: ipv4.id.apply(Number), ipv6Enabled: true, ipv6: ipv6.id.apply(Number) },
        ],
        userData: renderCloudInit(),
        backups: true,
        deleteProtection: true,
        rebuildProtection: true, // Hetzner requires both protections to be equal.
        labels,
      },
      { parent: this, ...lifecycle.server },
    );

    this.ipv4Address = this.server.ipv4Address;
    this.ipv6Address = this.server.ipv6Address;

    const baseConnection: command.types.input.remote.ConnectionArgs = {
      host: this.ipv4Address,
      user: "root",
      privateKey: args.sshPrivateKey,
      // A fresh server refuses SSH for a while; keep dialling instead of failing the update.
      dialErrorLimit: -1,
      perDialTimeout: 30,
    };

    const cloudInit = new command.remote.Command(
      `${name}-cloud-init`,
      { connection: baseConnection, create: cloudInitWaitCommand(), triggers: [this.server.id] },
      { parent: this },
    );

    // Every consumer of the connection waits for cloud-init (Docker installed, directories made).
    // The id, not the output: it is known as soon as the wait first succeeded, so re-running the
    // wait later never makes the connection (and with it every command and the Docker provider)
    // unknown in a preview.
    this.connection = pulumi.all([this.ipv4Address, cloudInit.id]).apply(([host]) => ({ ...baseConnection, host }));

    // The provider runs the system `ssh` (agent, ~/.ssh/config or default keys), not the key of the
    // remote commands: see docs/configuration.md ("SSH access") for what the machine running Pulumi needs.
    this.docker = new docker.Provider(
      `${name}-docker`,
      {
        host: this.connection.apply((connection) => `ssh://root@${connection.host}`),
        sshOpts: HETZNER_SSH_OPTIONS,
      },
      { parent: this },
    );

    // Also on servers whose first boot predates the drop-in (cloud-init never runs again).
    const sysctls = sysctlApplyCommand();
    this.runCommand(`${name}-sysctl`, { create: sysctls, triggers: [contentHash(sysctls)] }, { parent: this });

    // Client containers reach neither the metadata service nor host services (policy/clientFirewall.ts);
    // installed here too for servers whose first boot predates it.
    const clientFirewall = firewallInstallCommand();
    this.runCommand(`${name}-client-firewall`, { create: clientFirewall, triggers: [contentHash(clientFirewall)] }, { parent: this });

    // BatchMode: a move run by CI fails at once instead of waiting on a password prompt. (Not on
    // the Docker provider's own options: a change there is a change of the provider.)
    this.shell = this.ipv4Address.apply((address) => ["ssh", "-o", "BatchMode=yes", ...HETZNER_SSH_OPTIONS, `root@${address}`].join(" "));

    this.registerOutputs({ ipv4Address: this.ipv4Address, ipv6Address: this.ipv6Address });
  }

  runCommand(name: string, args: HostCommandArgs, opts?: pulumi.CustomResourceOptions): HostCommand {
    return new command.remote.Command(name, { connection: this.connection, ...commandFields(args) }, opts);
  }

  putFile(name: string, args: HostFileArgs, opts?: pulumi.CustomResourceOptions): pulumi.CustomResource {
    return new command.remote.CopyToRemote(
      name,
      {
        connection: this.connection,
        source: new pulumi.asset.StringAsset(args.content),
        remotePath: args.path,
        triggers: fileTriggers(args),
      },
      opts,
    );
  }
}
