import * as pulumi from "@pulumi/pulumi";
import * as hcloud from "@pulumi/hcloud";
import * as docker from "@pulumi/docker";
import * as command from "@pulumi/command";
import type { StackSettings } from "../../config/model";
import { renderCloudInit } from "../../policy/cloudInit";
import { lifecycle } from "../../policy/lifecycle";
import { firewallRules, hostLabels, sshKeyName } from "../../policy/hostPolicy";

export interface HostArgs {
  /** Server type, location, image, SSH keys and admin networks from the stack settings. */
  settings: Pick<StackSettings, "serverType" | "location" | "serverImage" | "sshPublicKeys" | "adminCidrs">;
  /** Private key the stack uses for SSH to the host (secret); when absent the SSH agent is used. */
  sshPrivateKey?: pulumi.Input<string>;
}

/**
 * The Hetzner server and everything that identifies it: SSH keys, firewall, primary IPs that
 * survive a server replacement, and a Docker provider that talks to the host's daemon over SSH
 * once cloud-init has finished.
 */
export class Host extends pulumi.ComponentResource {
  public readonly server: hcloud.Server;
  public readonly ipv4Address: pulumi.Output<string>;
  public readonly ipv6Address: pulumi.Output<string>;
  /** SSH connection for `command.remote` resources; waits for cloud-init to finish. */
  public readonly connection: pulumi.Output<command.types.input.remote.ConnectionArgs>;
  /** Docker provider connected to the host's daemon over `ssh://root@<ipv4>`. */
  public readonly docker: docker.Provider;

  constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mai:index:Host", name, {}, opts);
    const { settings } = args;
    const labels = hostLabels();

    const sshKeys = settings.sshPublicKeys.map(
      (publicKey, i) =>
        new hcloud.SshKey(`${name}-ssh-${i}`, { name: sshKeyName(publicKey, i), publicKey, labels }, { parent: this }),
    );

    const firewall = new hcloud.Firewall(
      `${name}-firewall`,
      { name: "mai-host", labels, rules: firewallRules(settings.adminCidrs) },
      { parent: this },
    );

    const primaryIp = (type: "ipv4" | "ipv6") =>
      new hcloud.PrimaryIp(
        `${name}-${type}`,
        {
          name: `mai-host-${type}`,
          type,
          assigneeType: "server",
          location: settings.location,
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
        name: "mai-host",
        serverType: settings.serverType,
        location: settings.location,
        image: settings.serverImage,
        sshKeys: sshKeys.map((k) => k.id),
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

    // Exit code 2 means "done, with recoverable warnings" (e.g. deprecated keys), which is fine.
    const cloudInit = new command.remote.Command(
      `${name}-cloud-init`,
      {
        connection: baseConnection,
        create: "cloud-init status --wait >/dev/null; rc=$?; [ $rc -eq 0 ] || [ $rc -eq 2 ]; docker info --format '{{.ServerVersion}}'",
        triggers: [this.server.id],
      },
      { parent: this },
    );

    // Every consumer of the connection waits for cloud-init (Docker installed, directories made).
    this.connection = pulumi
      .all([this.ipv4Address, cloudInit.stdout])
      .apply(([host]) => ({ ...baseConnection, host }));

    this.docker = new docker.Provider(
      `${name}-docker`,
      {
        host: this.connection.apply((connection) => `ssh://root@${connection.host}`),
        sshOpts: ["-o", "StrictHostKeyChecking=accept-new", "-o", "ServerAliveInterval=30"],
      },
      { parent: this },
    );

    this.registerOutputs({ ipv4Address: this.ipv4Address, ipv6Address: this.ipv6Address });
  }
}
