/**
 * One client's move between servers: a local command on the machine running Pulumi that stops
 * the client on the source, streams its verified export into the target's import and checks it
 * (host/mai-move.sh). Declared only while the client file names `moveFrom`; the design, its
 * ordering and its trade-offs are described in policy/move.ts.
 */
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { MOVE_SCRIPT_SOURCE, moveEnvironment, moveUpdateCommand, type ClientMoveSpec } from "../policy/move";

/** Reads the move script from the project checkout. */
export function readMoveScript(repoRoot: string = path.join(__dirname, "..")): string {
  return fs.readFileSync(path.join(repoRoot, MOVE_SCRIPT_SOURCE), "utf8");
}

/** What the move needs of a host; a `Host` from components/hosts satisfies it. */
export interface MoveHost {
  /** Server name (a DNS label). */
  readonly name: string;
  /** Shell prefix that runs one command string on the host from the machine running Pulumi. */
  readonly shell: pulumi.Input<string>;
  /** Where the stack's scripts and state live on the host. */
  readonly paths: { readonly binDir: string; readonly stateDir: string };
}

export interface ClientMoveArgs {
  /** Which client moves from which server to which. */
  move: ClientMoveSpec;
  /** The server the client leaves. */
  source: MoveHost;
  /** The server the client is placed on. */
  target: MoveHost;
  /**
   * What must exist before the data moves: the client's volume on the target and the host tools
   * (`mai-export`, `mai-import`) on both servers. (The client's network on the target waits for
   * the move, see ClientInstance.)
   */
  after: pulumi.Input<pulumi.Resource>[];
  /** The move script's content; read from the checkout when omitted. */
  script?: string;
}

/**
 * Runs the move once, when it is created. Named `<slug>-move` by ClientInstance, so its command is
 * `<slug>-move-run` (`MOVE_COMMAND_SUFFIX`), which is how the plan recognises it. Its `update` never moves again (see
 * `moveUpdateCommand`); a different source or target (`triggers`) is a new move. Deleting it
 * (once `moveFrom` is removed from the client file) does nothing on any host.
 */
export class ClientMove extends pulumi.ComponentResource {
  /** The move command; the client's network and container on the target and its DNS records depend on it. */
  public readonly command: command.local.Command;

  constructor(name: string, args: ClientMoveArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mai:index:ClientMove", name, {}, opts);
    const { move, source, target } = args;
    const environment = pulumi
      .all([source.shell, target.shell])
      .apply(([sourceShell, targetShell]) =>
        moveEnvironment(
          move,
          { name: source.name, shell: sourceShell, ...source.paths },
          { name: target.name, shell: targetShell, ...target.paths },
        ),
      );
    this.command = new command.local.Command(
      `${name}-run`,
      {
        create: args.script ?? readMoveScript(),
        update: moveUpdateCommand(move),
        interpreter: ["/bin/bash", "-c"],
        environment,
        triggers: [move.from, move.to],
      },
      { parent: this, dependsOn: args.after },
    );
    this.registerOutputs({ from: move.from, to: move.to });
  }
}
