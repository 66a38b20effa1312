import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import * as command from "@pulumi/command";
import type { LocalServerSpec } from "../../config/model";
import { localHostPaths, localShellPrefix, localWriteFileCommand } from "../../policy/localHost";
import { proxyAdminSocket } from "../../policy/proxyPolicy";
import { type Host, type HostCommand, type HostCommandArgs, type HostFileArgs, type HostPaths, commandFields, fileTriggers } from "./host";

export interface LocalHostArgs {
  /** The local server's settings: engine endpoint, state directory, proxy ports. */
  server: LocalServerSpec;
}

/**
 * The Docker Engine of the machine running Pulumi, as a host: the Docker provider on its socket,
 * commands as local processes (bash, with DOCKER_HOST set to the same engine), files written by
 * a local command under the server's state directory. No DNS, no public addresses, no systemd
 * timers; Caddy listens on 127.0.0.1 with its internal CA.
 */
export class LocalHost extends pulumi.ComponentResource implements Host {
  public readonly name: string;
  public readonly kind = "local" as const;
  public readonly docker: docker.Provider;
  public readonly paths: HostPaths;
  public readonly proxy: Host["proxy"];
  public readonly hasSystemd = false;
  public readonly shell: pulumi.Output<string>;
  /** Environment of every command run on this host. */
  public readonly environment: Record<string, string>;
  /** Makes the state directories; every command and file waits for it. */
  private readonly prepared: command.local.Command;

  constructor(name: string, args: LocalHostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mai:index:Host", name, {}, opts);
    const { server } = args;
    this.name = server.name;
    this.paths = localHostPaths(server.stateDir);
    this.proxy = {
      bindAddress: "127.0.0.1",
      httpPort: server.httpPort,
      httpsPort: server.httpsPort,
      issuer: "internal",
      adminSocket: proxyAdminSocket(this.paths),
    };
    this.environment = { DOCKER_HOST: server.dockerHost };
    this.shell = pulumi.output(localShellPrefix(server.dockerHost, this.paths));

    this.docker = new docker.Provider(`${name}-docker`, { host: server.dockerHost }, { parent: this });

    const directories = [this.paths.caddyDir, this.paths.backupsDir, this.paths.etcDir, this.paths.binDir, this.paths.stateDir];
    this.prepared = new command.local.Command(
      `${name}-directories`,
      {
        create: `mkdir -p ${directories.join(" ")} && chmod 0750 ${this.paths.backupsDir}`,
        interpreter: ["/bin/bash", "-c"],
        environment: this.environment,
      },
      { parent: this },
    );

    this.registerOutputs({ stateDir: server.stateDir, dockerHost: server.dockerHost });
  }

  runCommand(name: string, args: HostCommandArgs, opts?: pulumi.CustomResourceOptions): HostCommand {
    return new command.local.Command(
      name,
      { ...commandFields(args), interpreter: ["/bin/bash", "-c"], environment: this.environment },
      { ...opts, dependsOn: withPrepared(opts?.dependsOn, this.prepared) },
    );
  }

  putFile(name: string, args: HostFileArgs, opts?: pulumi.CustomResourceOptions): pulumi.CustomResource {
    return new command.local.Command(
      name,
      {
        create: localWriteFileCommand(args.path),
        stdin: args.content,
        triggers: fileTriggers(args),
        interpreter: ["/bin/bash", "-c"],
        environment: this.environment,
      },
      { ...opts, dependsOn: withPrepared(opts?.dependsOn, this.prepared) },
    );
  }
}

function withPrepared(
  dependsOn: pulumi.CustomResourceOptions["dependsOn"],
  prepared: pulumi.Resource,
): pulumi.CustomResourceOptions["dependsOn"] {
  if (dependsOn === undefined) return [prepared];
  if (Array.isArray(dependsOn)) return [...dependsOn, prepared];
  if (pulumi.Resource.isInstance(dependsOn)) return [dependsOn, prepared];
  return pulumi.output(dependsOn as pulumi.Input<pulumi.Input<pulumi.Resource>[]>).apply((given) => [...given, prepared]);
}
