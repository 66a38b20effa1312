import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import { CONTAINER_LOG_OPTS } from "../policy/clientContainer";
import { lifecycle } from "../policy/lifecycle";
import {
  APPLY_SCRIPT_NAME,
  PROXY_CONTAINER,
  PROXY_NETWORK_MODE,
  contentHash,
  proxyAdminDir,
  proxyHealthcheck,
  proxyApplyCommand,
  proxySeedCommand,
} from "../policy/proxyPolicy";
import { PROXY_VOLUMES } from "../policy/sharedNames";
import type { Host } from "./hosts/host";

/** The production reload procedure, shipped to the host and run after each Caddyfile upload. */
const APPLY_SCRIPT = fs.readFileSync(path.join(__dirname, "..", "host", "caddy-apply.sh"), "utf8");

export interface ProxyArgs {
  /** The host the proxy runs on (its engine, paths and commands). */
  host: Host;
  /** The rendered Caddyfile with this host's clients only (see caddyfile.ts). */
  caddyfile: string;
  /** Caddy image (stack `proxyImage`). */
  image: string;
  /**
   * What the reload waits for in a deployment that moves clients: the moves of clients leaving
   * this host (a failed move leaves their route in place: the client keeps running here), and the
   * arrival of clients moving here (their container and DNS records: a failed move adds no route).
   */
  reloadAfter?: pulumi.Resource[];
}

/**
 * Caddy in front of a host's clients: the container on the host's network, its certificate
 * storage, and the Caddyfile with a validated, graceful reload whenever (and only when) the
 * file's content changes.
 */
export class Proxy extends pulumi.ComponentResource {
  public readonly container: docker.Container;
  /** Hash of the deployed Caddyfile; changes exactly when a reload happens. */
  public readonly caddyfileHash: string;

  constructor(name: string, args: ProxyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mai:index:Proxy", name, {}, opts);
    const { host } = args;
    const child = { parent: this };
    this.caddyfileHash = contentHash(args.caddyfile);
    const scriptHash = contentHash(APPLY_SCRIPT);

    const image = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, child);
    const volume = (suffix: keyof typeof PROXY_VOLUMES) =>
      new docker.Volume(`${name}-${suffix}`, { name: PROXY_VOLUMES[suffix] }, { ...child, ...lifecycle.proxyVolume });
    const dataVolume = volume("data");
    const configVolume = volume("config");

    // The new file lands beside the live one; the apply script validates it before swapping.
    const upload = host.putFile(
      `${name}-caddyfile`,
      { path: `${host.paths.caddyDir}/Caddyfile.next`, content: args.caddyfile, triggers: [this.caddyfileHash] },
      child,
    );
    const applyScript = host.putFile(
      `${name}-apply-script`,
      { path: `${host.paths.binDir}/${APPLY_SCRIPT_NAME}`, content: APPLY_SCRIPT, triggers: [scriptHash] },
      child,
    );

    // First start only: later changes go through the validating apply step, never a restart.
    const seed = host.runCommand(`${name}-caddyfile-seed`, { create: proxySeedCommand(host.paths) }, { ...child, dependsOn: [upload] });

    this.container = new docker.Container(
      `${name}-container`,
      {
        name: PROXY_CONTAINER,
        image: image.imageId,
        restart: "unless-stopped",
        // The host's network: no published ports, no client network memberships (see proxyPolicy.ts).
        networkMode: PROXY_NETWORK_MODE,
        volumes: [
          { volumeName: dataVolume.name, containerPath: "/data" },
          { volumeName: configVolume.name, containerPath: "/config" },
          // The directory, not the file: a file mount would pin the old inode after the swap.
          { hostPath: host.paths.caddyDir, containerPath: "/etc/caddy", readOnly: true },
          // The admin socket's directory, at the same path inside: one address for every caller.
          { hostPath: proxyAdminDir(host.paths), containerPath: proxyAdminDir(host.paths) },
        ],
        healthcheck: proxyHealthcheck(host.proxy.httpPort),
        logDriver: "json-file",
        logOpts: CONTAINER_LOG_OPTS,
        labels: [{ label: "mai.role", value: "proxy" }],
      },
      { ...child, ...lifecycle.container, dependsOn: [seed] },
    );

    host.runCommand(
      `${name}-reload`,
      { create: proxyApplyCommand(host.paths, args.image), triggers: [this.caddyfileHash, scriptHash] },
      { ...child, dependsOn: [upload, applyScript, this.container, ...(args.reloadAfter ?? [])] },
    );

    this.registerOutputs({ containerName: this.container.name, caddyfileHash: this.caddyfileHash });
  }
}
