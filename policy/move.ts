/**
 * Moving a client between servers: what a move is, how `pulumi up` performs it, and how the plan
 * shows it. Pure: no Pulumi imports, no I/O.
 *
 * ## How a move is declared
 * The operator changes the client's `server:` and, for the deployment that moves it, names the
 * server it leaves: `server: nbg1-b` + `moveFrom: nbg1-a`. `pulumi up` only ever sees the new
 * configuration, so without `moveFrom` it cannot tell a moved client from a new one: it would
 * start an empty workspace on the target (the data would still be safe in the retained volume on
 * the source). The plan (`--base`) sees both sides and refuses a changed `server:` without the
 * matching `moveFrom`, and reports a `moveFrom` left over from a finished move (harmless: the
 * move runs only when it is created; remove it in a follow-up change).
 *
 * Alternatives considered: detecting the move from state (a per-client placement command whose
 * `update` reads the previous server from `PULUMI_COMMAND_STDOUT`) needs one more resource per
 * client, so upgrading today's stack would no longer plan 0 changes, and the detection would live
 * in provider state no reviewer sees. Aliases alone only rename state; the client's Docker
 * resources still change provider, which Pulumi carries out as a replacement (a new, empty volume
 * on the target), so some step has to carry the data anyway.
 *
 * ## What `pulumi up` does (ClientMove, components/clientMove.ts)
 * The moved client's volume, network and container carry their server as `replacementTrigger`
 * (policy/lifecycle.ts `placedOn`): a changed server replaces them, i.e. creates them through the
 * target's provider (a provider change alone would only repoint the state), and deletes them
 * through the source's (the data volume is `retainOnDelete`, so the source volume stays). The move
 * is one local command on the machine running Pulumi (`host/mai-move.sh`). Seen on the real engine
 * (tests/move.engine.test.ts), in this order:
 *   target volume created -> move -> target network created -> source container deleted
 *   (delete-before-replace; the move stopped it) -> target container -> DNS records -> target
 *   proxy reloaded with the route; the source proxy's reload (without the route) waits for the
 *   move; the source network is deleted last, after its container. The network waits for the move
 *   so that a failed move leaves it in the state where it is (see ClientInstance): retrying the
 *   move and cancelling it (`server:` back, `moveFrom` removed) both work.
 * The move command itself:
 *   1. checks both hosts and refuses a source whose data already moved away (stale copy);
 *   2. stops `mai-<slug>` on the source itself. Pulumi deletes the source container only as the
 *      replaced resource, through the other provider, so `deleteBeforeReplace` gives no ordering
 *      across servers by itself: stopping first is what guarantees that two copies never run;
 *   3. streams `mai-export <slug> -` (source shell) into `mai-import <slug> -` (target shell)
 *      with pipefail: the import verifies the archive before it writes anything;
 *   4. checks the database on the target, records the move on the source host (a later move
 *      from that stale copy is refused) and disables the client's backup timer there;
 *   5. on any failure starts the source container again and exits non-zero with a message
 *      naming the step: Pulumi stops, so the source container is neither deleted nor replaced,
 *      the target container is never created, DNS keeps pointing at the source, the source
 *      proxy keeps its route and the target proxy gets none. A failed create leaves no move in
 *      the state, so the next `pulumi up` runs it again from the start (the volume already on the
 *      target is kept and adopted); a cancel adopts the source volume again (`docker volume create`
 *      of an existing volume) and leaves the target's empty volume behind (retained).
 * Trade-offs: the client is offline from the stop until DNS answers with the target (transfer,
 * start, DNS TTL, the target's first certificate); the archive passes through the machine
 * running Pulumi (no SSH trust between servers, but twice the transfer on a slow uplink).
 */
import type { ClientStatus } from "../config/model";

/** Where a client is placed, as read from its file. */
export interface ClientPlacement {
  /** Client slug. */
  slug: string;
  /** Server the client runs on. */
  server: string;
  /** Server the client leaves in this deployment (`moveFrom:` in the client file), if any. */
  moveFrom?: string;
  /** Suspended clients move too: only their volume. */
  status: ClientStatus;
}

/** A move `pulumi up` performs: the client's data goes from `from` to `to`. */
export interface ClientMoveSpec {
  /** Client slug. */
  slug: string;
  /** Server the client leaves. */
  from: string;
  /** Server the client is placed on. */
  to: string;
  /** True when the client runs no container (its volume still moves). */
  suspended: boolean;
}

/** Moves the program declares: every client whose file names a `moveFrom` other than its server. */
export function declaredMoves(clients: readonly ClientPlacement[]): ClientMoveSpec[] {
  return clients
    .filter((c) => c.moveFrom !== undefined && c.moveFrom !== c.server)
    .map((c) => ({ slug: c.slug, from: c.moveFrom!, to: c.server, suspended: c.status === "suspended" }));
}

/** A configuration problem with a client's `moveFrom` (file-level validation). */
export interface MoveFieldProblem {
  /** Client slug. */
  slug: string;
  /** What is wrong and what is expected. */
  message: string;
}

/** Checks `moveFrom` against the known servers and the client's own `server`. */
export function checkMoveFields(clients: readonly ClientPlacement[], servers: readonly string[]): MoveFieldProblem[] {
  const problems: MoveFieldProblem[] = [];
  for (const c of clients) {
    if (c.moveFrom === undefined) continue;
    if (!servers.includes(c.moveFrom)) {
      problems.push({ slug: c.slug, message: `expected one of the stack's servers (${servers.join(", ")}), got "${c.moveFrom}"` });
    } else if (c.moveFrom === c.server) {
      problems.push({ slug: c.slug, message: `names the server the client is on ("${c.server}"); set it to the server the client leaves, or remove it` });
    }
  }
  return problems;
}

/** A move as the plan sees it, comparing the base's placement with the head's. */
export interface PlannedMove extends ClientMoveSpec {
  /** What happens, in order, when `pulumi up` runs. */
  steps: string[];
  /** The downtime warning shown with the move. */
  downtime: string;
}

/** What the plan has to say about placements between a base and a head. */
export interface PlacementReview {
  /** Clients that change server with a matching `moveFrom`: moves `pulumi up` performs. */
  moves: PlannedMove[];
  /** Changes that would not move the data; the plan fails on these. */
  problems: string[];
  /** Notes that need no action now (a `moveFrom` left from a finished move). */
  notes: string[];
}

/** Seconds of DNS TTL the stack sets on client records (policy shared with the DNS records). */
export const CLIENT_DNS_TTL_SECONDS = 300;

/** The steps `pulumi up` takes for one move, for the plan and the runbook. */
export function moveSteps(move: Pick<ClientMoveSpec, "slug" | "from" | "to" | "suspended">): string[] {
  const { slug, from, to } = move;
  const container = `mai-${slug}`;
  return [
    `create volume mai-${slug}-data on ${to} (empty)`,
    move.suspended
      ? `${slug} is suspended: no container to stop on ${from}`
      : `stop ${container} on ${from} (the workspace goes offline)`,
    `stream \`mai-export ${slug} -\` on ${from} through the machine running Pulumi into \`mai-import ${slug} -\` on ${to}; the import verifies the archive before writing`,
    `check the database on ${to}; record the move on ${from} and stop its nightly backup of the old copy there`,
    move.suspended
      ? `create network ${container} on ${to}; no container there while suspended; DNS records point at ${to}`
      : `create network ${container} on ${to}; remove the stopped ${container} from ${from} and start it on ${to}, then point its DNS records at ${to}`,
    `reload Caddy on ${to} with the client's route (it obtains the certificate, DNS answering with ${to}) and Caddy on ${from} without it`,
    `remove network ${container} from ${from}; volume mai-${slug}-data stays on ${from} (retained) until you delete it`,
    `if any step fails: ${container} is started again on ${from}, DNS and both proxies are unchanged, and \`pulumi up\` stops with the reason; the next \`pulumi up\` runs the move again`,
  ];
}

/** The warning a reviewer must see before approving a move. */
export function moveDowntimeWarning(move: Pick<ClientMoveSpec, "slug" | "from" | "to" | "suspended">): string {
  if (move.suspended) return `${move.slug} is suspended: the move causes no further downtime`;
  return (
    `DOWNTIME: ${move.slug} is offline from the stop on ${move.from} until DNS answers with ${move.to}: ` +
    `the transfer of its whole volume, the start on ${move.to}, up to ${CLIENT_DNS_TTL_SECONDS} s of DNS caching ` +
    `and the first certificate on ${move.to}. Schedule the deployment outside working hours.`
  );
}

function readmeHint(): string {
  return 'docs/runbook.md: "Move a client to another server"';
}

/**
 * Compares placements between a base and a head configuration: which clients move, which server
 * changes would not carry the data (no or wrong `moveFrom`), and leftovers.
 */
export function reviewPlacements(base: readonly ClientPlacement[], head: readonly ClientPlacement[]): PlacementReview {
  const before = new Map(base.map((c) => [c.slug, c]));
  const review: PlacementReview = { moves: [], problems: [], notes: [] };
  for (const c of head) {
    const old = before.get(c.slug);
    if (!old) {
      // A client re-added with `moveFrom` fetches its retained data from that server.
      if (c.moveFrom !== undefined && c.moveFrom !== c.server) review.moves.push(planned({ slug: c.slug, from: c.moveFrom, to: c.server, suspended: c.status === "suspended" }));
      continue;
    }
    if (old.server === c.server) {
      if (c.moveFrom !== undefined) {
        review.notes.push(`client "${c.slug}": moveFrom: ${c.moveFrom} is left from a finished move and does nothing; remove it`);
      }
      continue;
    }
    if (c.moveFrom === undefined) {
      review.problems.push(
        `client "${c.slug}" changes server from ${old.server} to ${c.server} without \`moveFrom: ${old.server}\`: ` +
          `\`pulumi up\` would start an empty workspace on ${c.server} (its data stays on ${old.server}). ` +
          `Add \`moveFrom: ${old.server}\` to its file (${readmeHint()})`,
      );
    } else if (c.moveFrom !== old.server) {
      review.problems.push(
        `client "${c.slug}" has moveFrom: ${c.moveFrom}, but it runs on ${old.server}: set \`moveFrom: ${old.server}\` (${readmeHint()})`,
      );
    } else {
      review.moves.push(planned({ slug: c.slug, from: old.server, to: c.server, suspended: c.status === "suspended" }));
    }
  }
  return review;
}

function planned(move: ClientMoveSpec): PlannedMove {
  return { ...move, steps: moveSteps(move), downtime: moveDowntimeWarning(move) };
}

/** One end of a move: how the machine running Pulumi reaches a host and where its tools are. */
export interface MoveEndpoint {
  /** Server name (for messages). */
  name: string;
  /** Shell prefix that runs one command string on the host (`ssh ... root@<ip>`, `bash -c`). */
  shell: string;
  /** Directory of the host scripts (`mai-export`, `mai-import`) on the host. */
  binDir: string;
  /** Directory the stack keeps host state in; moves are recorded under `<stateDir>/moved`. */
  stateDir: string;
}

/** Environment of the move command (`host/mai-move.sh`); every value is a plain string. */
export function moveEnvironment(move: ClientMoveSpec, source: MoveEndpoint, target: MoveEndpoint): Record<string, string> {
  return {
    MAI_MOVE_SLUG: move.slug,
    MAI_MOVE_SUSPENDED: move.suspended ? "yes" : "no",
    MAI_SOURCE_NAME: source.name,
    MAI_SOURCE_SHELL: source.shell,
    MAI_SOURCE_BIN: source.binDir,
    MAI_SOURCE_STATE: source.stateDir,
    MAI_TARGET_NAME: target.name,
    MAI_TARGET_SHELL: target.shell,
    MAI_TARGET_BIN: target.binDir,
    MAI_TARGET_STATE: target.stateDir,
  };
}

/**
 * The command Pulumi runs when inputs of an already performed move change (e.g. a new script
 * version or a changed shell prefix): never a second transfer, which would copy the source's
 * retained, now stale, data over the live copy on the target.
 */
export function moveUpdateCommand(move: ClientMoveSpec): string {
  return `echo "move of ${move.slug} from ${move.from} to ${move.to} was done before; nothing to do"`;
}

/** Suffix of the move command's resource name (`<slug>-move-run`), by which the plan finds it. */
export const MOVE_COMMAND_SUFFIX = "-move-run";

/** Repository path of the move script (runs on the machine running Pulumi, not on a server). */
export const MOVE_SCRIPT_SOURCE = "host/mai-move.sh";
