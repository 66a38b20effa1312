/**
 * The host seam: what a server gives the rest of the program. Everything that runs on a server
 * (Docker objects, host commands, files) goes through a `Host`, so the same components deploy to
 * a Hetzner server over SSH (`hetzner.ts`) and to the Docker Engine of the machine running
 * Pulumi (`local.ts`). An existing host reached over SSH (`kind: ssh`) is reserved for later.
 */
import * as pulumi from "@pulumi/pulumi";
import type * as docker from "@pulumi/docker";
import type { HostPaths } from "../../policy/hostPaths";
import { contentHash } from "../../policy/proxyPolicy";

export type { HostPaths } from "../../policy/hostPaths";

/** How the proxy listens on a host. */
export interface ProxyListeners {
  /** Address Caddy binds its sites to (`default_bind`); all addresses when absent. */
  bindAddress?: string;
  /** Plain-HTTP port (ACME challenges, redirects). */
  httpPort: number;
  /** HTTPS port, TCP and UDP (HTTP/3). */
  httpsPort: number;
  /** Public ACME certificates, or Caddy's internal CA (hostnames no public CA can verify). */
  issuer: "acme" | "internal";
  /** Unix socket of this proxy's admin API (`proxyAdminSocket` of the host's paths). */
  adminSocket: string;
}

/** A command run on a host; re-run when `triggers` change (see each implementation). */
export interface HostCommandArgs {
  /** Shell command run when the resource is created (and, without `update`, on every update). */
  create: pulumi.Input<string>;
  /** Shell command run when an input other than `triggers` changes. */
  update?: pulumi.Input<string>;
  /** Shell command run when the resource is deleted. */
  delete?: pulumi.Input<string>;
  /** Any change replaces the resource, which runs `create` again. */
  triggers?: pulumi.Input<unknown>[];
  /** Standard input of the commands (e.g. a secret that must not appear on a command line). */
  stdin?: pulumi.Input<string>;
  /** What of the commands' output is logged; "none" for commands that handle secrets. */
  logging?: "none";
}

/** What a host command resource offers its dependants. */
export type HostCommand = pulumi.CustomResource & {
  readonly stdout: pulumi.Output<string>;
  readonly stderr: pulumi.Output<string>;
};

/** A text file put on a host. */
export interface HostFileArgs {
  /** Absolute path on the host; its directory must exist. */
  path: string;
  /** File content (not secret: it is stored in the stack's state as is). */
  content: string;
  /** Re-copies the file when they change; default: the content's hash. */
  triggers?: pulumi.Input<string>[];
}

/** One server of the stack as the rest of the program sees it. */
export interface Host {
  /** Server name (a DNS label, e.g. `nbg1-a`, `local`; `host` for the single-server layout). */
  readonly name: string;
  /** Implementation. `ssh` (an existing host over SSH) is reserved, not built. */
  readonly kind: "hetzner" | "local";
  /** Docker provider for this host's engine. */
  readonly docker: docker.Provider;
  /** Where the stack's files live on this host. */
  readonly paths: HostPaths;
  /** Public IPv4 address for DNS (absent for a local host). */
  readonly ipv4Address?: pulumi.Output<string>;
  /** Public IPv6 address for DNS (absent for a local host). */
  readonly ipv6Address?: pulumi.Output<string>;
  /** How the proxy listens on this host. */
  readonly proxy: ProxyListeners;
  /** Whether systemd runs on the host: backup (and other) timers are installed only then. */
  readonly hasSystemd: boolean;
  /**
   * Shell command prefix that runs one command on this host from the machine running Pulumi,
   * with the host's Docker Engine as the default: append one quoted shell command, e.g.
   * `${shell} 'docker ps'`. Used for moves and exports between hosts.
   */
  readonly shell: pulumi.Output<string>;
  /** Runs a command on the host (`command.remote.Command` over SSH, or `command.local.Command`). */
  runCommand(name: string, args: HostCommandArgs, opts?: pulumi.CustomResourceOptions): HostCommand;
  /** Puts a text file on the host (a copy over SSH, or a local write), re-copied when its triggers change. */
  putFile(name: string, args: HostFileArgs, opts?: pulumi.CustomResourceOptions): pulumi.CustomResource;
}

/** Default triggers of a file: the hash of its content. */
export function fileTriggers(args: HostFileArgs): pulumi.Input<string>[] {
  return args.triggers ?? [contentHash(args.content)];
}

/** Copies only the optional command fields that are set (undefined inputs would still be declared). */
export function commandFields(args: HostCommandArgs): HostCommandArgs {
  return {
    create: args.create,
    ...(args.update === undefined ? {} : { update: args.update }),
    ...(args.delete === undefined ? {} : { delete: args.delete }),
    ...(args.triggers === undefined ? {} : { triggers: args.triggers }),
    ...(args.stdin === undefined ? {} : { stdin: args.stdin }),
    ...(args.logging === undefined ? {} : { logging: args.logging }),
  };
}
