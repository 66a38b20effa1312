import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import * as command from "@pulumi/command";
import { CADDY_IMAGE } from "../policy/caddyRelease";
import { HOST_PATHS } from "../policy/cloudInit";
import { CONTAINER_LOG_OPTS, clientNames } from "../policy/clientContainer";
import { lifecycle } from "../policy/lifecycle";
import { PROXY_VOLUMES } from "../policy/sharedNames";
import { contentHash, proxyAttachCommands, proxyPorts, PROXY_CONTAINER, PROXY_HEALTHCHECK } from "../policy/proxyPolicy";

/** The production reload procedure, shipped to the host and run after each Caddyfile upload. */
const APPLY_SCRIPT = fs.readFileSync(path.join(__dirname, "..", "host", "caddy-apply.sh"), "utf8");
const APPLY_SCRIPT_PATH = "/usr/local/sbin/mai-caddy-apply";

export interface ProxyArgs {
  /** SSH connection to the host (waits for cloud-init). */
  connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
  /** The shared network the proxy lives on (`mai-network`). */
  network: docker.Network;
  /** Each client's own network, which the proxy joins to reach `mai-<slug>:8080`. */
  clientNetworks: { slug: string; network: docker.Network }[];
  /** The rendered Caddyfile (see caddyfile.ts). */
  caddyfile: string;
}

/**
 * Caddy in front of every client: the container, its certificate storage, its memberships of
 * the client networks, and the Caddyfile with a graceful reload whenever (and only when) the
 * file's content changes.
 */
export class Proxy extends pulumi.ComponentResource {
  public readonly container: docker.Container;
  /** Hash of the deployed Caddyfile; changes exactly when a reload happens. */
  public readonly caddyfileHash: string;

  constructor(name: string, args: ProxyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mai:index:Proxy", name, {}, opts);
    const child = { parent: this };
    this.caddyfileHash = contentHash(args.caddyfile);
    const scriptHash = contentHash(APPLY_SCRIPT);

    const image = new docker.RemoteImage(`${name}-image`, { name: CADDY_IMAGE, keepLocally: true }, child);
    const volume = (suffix: keyof typeof PROXY_VOLUMES) =>
      new docker.Volume(`${name}-${suffix}`, { name: PROXY_VOLUMES[suffix] }, { ...child, ...lifecycle.proxyVolume });
    const dataVolume = volume("data");
    const configVolume = volume("config");

    // The new file lands beside the live one; the apply script validates it before swapping.
    const upload = new command.remote.CopyToRemote(
      `${name}-caddyfile`,
      {
        connection: args.connection,
        source: new pulumi.asset.StringAsset(args.caddyfile),
        remotePath: `${HOST_PATHS.caddyDir}/Caddyfile.next`,
        triggers: [this.caddyfileHash],
      },
      child,
    );
    const applyScript = new command.remote.CopyToRemote(
      `${name}-apply-script`,
      {
        connection: args.connection,
        source: new pulumi.asset.StringAsset(APPLY_SCRIPT),
        remotePath: APPLY_SCRIPT_PATH,
        triggers: [scriptHash],
      },
      child,
    );

    // First start only: the container needs a Caddyfile to boot with. Later changes go through
    // the validating apply step below, never through a restart.
    const seed = new command.remote.Command(
      `${name}-caddyfile-seed`,
      {
        connection: args.connection,
        create: `cd ${HOST_PATHS.caddyDir} && { [ -f Caddyfile ] || cp Caddyfile.next Caddyfile; }`,
      },
      { ...child, dependsOn: [upload] },
    );

    this.container = new docker.Container(
      `${name}-container`,
      {
        name: PROXY_CONTAINER,
        image: image.imageId,
        restart: "unless-stopped",
        ports: proxyPorts(),
        // Only the shared network is declared here: declaring every client network would replace
        // the proxy (and cut every client's connections) whenever a client is added. Client
        // networks are joined by the attachments below, which Docker keeps across restarts.
        networksAdvanced: [{ name: args.network.name }],
        volumes: [
          { volumeName: dataVolume.name, containerPath: "/data" },
          { volumeName: configVolume.name, containerPath: "/config" },
          // The directory, not the file: a file mount would pin the old inode after the swap.
          { hostPath: HOST_PATHS.caddyDir, containerPath: "/etc/caddy", readOnly: true },
        ],
        // On reload Caddy opens a new listening socket; let the kernel hand connections still
        // queued on the old one over instead of resetting them (Linux 5.14+).
        sysctls: { "net.ipv4.tcp_migrate_req": "1" },
        healthcheck: PROXY_HEALTHCHECK,
        logDriver: "json-file",
        logOpts: CONTAINER_LOG_OPTS,
        labels: [{ label: "mai.role", value: "proxy" }],
      },
      { ...child, ...lifecycle.container, dependsOn: [seed] },
    );

    const attachments = args.clientNetworks.map(({ slug, network }) => {
      const cmd = proxyAttachCommands(clientNames(slug).network);
      return new command.remote.Command(
        `${name}-attach-${slug}`,
        {
          connection: args.connection,
          create: cmd.create,
          delete: cmd.delete,
          // Re-attach when either side is recreated.
          triggers: [this.container.id, network.id],
        },
        { ...child, dependsOn: [network] },
      );
    });

    new command.remote.Command(
      `${name}-reload`,
      {
        connection: args.connection,
        // The script's defaults are the production paths; the image is only needed to validate
        // while the proxy is down. Inline, because sshd drops `environment` variables.
        create: `CADDY_IMAGE=${CADDY_IMAGE} bash ${APPLY_SCRIPT_PATH}`,
        triggers: [this.caddyfileHash, scriptHash],
      },
      { ...child, dependsOn: [upload, applyScript, this.container, ...attachments] },
    );

    this.registerOutputs({ containerName: this.container.name, caddyfileHash: this.caddyfileHash });
  }
}
