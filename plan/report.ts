/**
 * The plan report and its three renderings: a terminal text view, a compact Markdown summary for
 * a pull-request comment, and stable JSON. Pure: no Pulumi imports, no I/O.
 */
import { summariseChanges } from "./diff";
import { dataHoldingTypes, disruptionNote, restartingTypes } from "./replaceRules";
import { keptAfterFirstStart } from "../policy/clientContainer";

/** Stack-set variables a running Open WebUI keeps as it first saw them. */
const PERSISTENT_ENV = keptAfterFirstStart();
import type { CapacityReport } from "../policy/capacity";
import { MOVE_COMMAND_SUFFIX, type PlannedMove } from "../policy/move";
import type { ChangeSummary, DeclaredResource, ResourceChange } from "./types";

/** One row of the clients table. */
export interface PlanClientRow {
  /** Client slug (file name). */
  slug: string;
  /** Public hostname. */
  hostname: string;
  /** `https://<hostname>`. */
  url: string;
  /** Host port on 127.0.0.1. */
  port: number;
  /** active or suspended. */
  status: string;
  /** CPU limit in vCPUs. */
  cpus: number;
  /** Memory limit in MiB. */
  memoryMb: number;
  /** Reserved CPUs. */
  reservedCpus: number;
  /** Reserved memory in MiB. */
  reservedMemoryMb: number;
  /** Most processes and threads the container may run (Docker pids limit). */
  pidsLimit: number;
  /** Server the client runs on. */
  server: string;
  /** Server the client leaves in this deployment (`moveFrom:` in its file). */
  moveFrom?: string;
}

/** Everything the plan shows. */
export interface PlanReport {
  /** Stack name. */
  stack: string;
  /** Clients in file order. */
  clients: PlanClientRow[];
  /** Capacity use per server, in the stack's server order. */
  capacity: CapacityReport[];
  /** Every resource the program declares. */
  resources: DeclaredResource[];
  /** Server of each resource, by URN (see plan/servers.ts). */
  resourceServer?: Readonly<Record<string, string>>;
  /** Differences against `base` (only when a base was given). */
  changes?: ResourceChange[];
  /** The git ref the changes are computed against. */
  base?: string;
  /** Clients that move to another server between `base` and now (only when a base was given). */
  moves?: PlannedMove[];
  /** Warnings from the configuration and the program. */
  warnings: string[];
}

/** The label every rendering carries: this is what the program declares, not what exists. */
export const DECLARED_STATE_NOTE =
  "Declared desired state, computed by running the program under Pulumi's mock runtime with secret placeholders; it is not the cloud's actual state (use `pulumi preview` for that).";

/** `docker:index/container:Container` -> `docker:Container`; `mai:index:Proxy` -> `mai:Proxy`. */
export function shortType(type: string): string {
  const parts = type.split(":");
  return parts.length < 3 ? type : `${parts[0]}:${parts[parts.length - 1]}`;
}

function percent(part: number, whole: number): string {
  return whole > 0 ? `${Math.round((part / whole) * 100)}%` : "n/a";
}

function cpus(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(2).replace(/0+$/, "").replace(/\.$/, "");
}

function memory(mb: number): string {
  return mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024} GiB` : mb >= 1024 ? `${(mb / 1024).toFixed(1)} GiB` : `${mb} MiB`;
}

/** Resource counts by type, most frequent first, then by name. */
export function countByType(resources: readonly DeclaredResource[]): Array<[string, number]> {
  const counts = new Map<string, number>();
  for (const r of resources) counts.set(r.type, (counts.get(r.type) ?? 0) + 1);
  return [...counts.entries()].sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)];
}

function clientRows(clients: readonly PlanClientRow[]): string[][] {
  return clients.map((c) => [
    c.slug,
    c.url,
    String(c.port),
    c.status,
    `${cpus(c.cpus)} / ${cpus(c.reservedCpus)}`,
    `${memory(c.memoryMb)} / ${memory(c.reservedMemoryMb)}`,
    String(c.pidsLimit),
  ]);
}

const clientHeader = ["CLIENT", "URL", "PORT", "STATUS", "CPU LIMIT / RESERVED", "MEMORY LIMIT / RESERVED", "PIDS"];

function capacityLines(c: CapacityReport): string[] {
  const t = c.totals;
  const a = c.allocatable;
  if (!c.checked) {
    return [
      `Server ${c.serverName} (${c.serverType}): capacity ${c.note ?? "not checked"}`,
      `  limits:   ${cpus(t.cpuLimits)} vCPU, ${memory(t.memoryLimitsMb)}; reserved ${cpus(t.reservedCpus)} vCPU, ${memory(t.reservedMemoryMb)}`,
      `  ${c.activeClients} active client(s)${c.suspendedClients > 0 ? `; ${c.suspendedClients} suspended` : ""}`,
    ];
  }
  return [
    `Server ${c.serverName} (${c.serverType}): ${cpus(c.server.cpus)} vCPU, ${memory(c.server.memoryMb)}; host reserve ${cpus(c.reserve.cpus)} vCPU, ${memory(c.reserve.memoryMb)}; available to clients ${cpus(a.cpus)} vCPU, ${memory(a.memoryMb)}`,
    `  reserved: ${cpus(t.reservedCpus)} vCPU (${percent(t.reservedCpus, a.cpus)}), ${memory(t.reservedMemoryMb)} (${percent(t.reservedMemoryMb, a.memoryMb)})`,
    `  limits:   ${cpus(t.cpuLimits)} vCPU (${percent(t.cpuLimits, a.cpus)}), ${memory(t.memoryLimitsMb)} (${percent(t.memoryLimitsMb, a.memoryMb)})`,
    `  ${c.activeClients} active client(s) counted${c.suspendedClients > 0 ? `; ${c.suspendedClients} suspended (no container, not counted)` : ""}`,
    ...c.warnings.map((w) => `  warning: ${w}`),
  ];
}

const opSymbol: Record<ResourceChange["op"], string> = { create: "+", update: "~", replace: "+-", delete: "-" };

/** One line per change: symbol, op, type, name, fields and what it means. */
export function describeChange(change: ResourceChange): string {
  const fields = change.fields.length > 0 ? ` (${change.fields.join(", ")})` : "";
  const notes: string[] = [];
  if (change.move) notes.push(...moveNotes(change, change.move));
  else if (change.op === "replace" && restartingTypes.has(change.type)) notes.push(`restart of ${change.client ?? "the container"}`);
  const ownFields = change.replaceFields?.filter((f) => f !== "replaceWith") ?? [];
  if (change.op === "replace" && ownFields.length > 0 && !change.move) notes.push(`recreated because of ${ownFields.join(", ")}`);
  if (change.op === "replace" && change.replaceFields?.includes("replaceWith")) notes.push("recreated with the resource it belongs to (replaceWith)");
  if (change.op === "update" && restartingTypes.has(change.type)) notes.push("updated in place, no restart");
  if (change.op === "update") {
    for (const field of change.fields) {
      const note = disruptionNote(change.type, field);
      if (note) notes.push(`${field}: ${note}`);
    }
  }
  if (change.rerun) notes.push("re-runs on the host (`pulumi preview` lists it as a replacement; nothing is torn down)");
  if (change.retained && !change.move) notes.push("retained: dropped from the stack, kept on the host");
  if (change.op === "replace" && !change.move && restartingTypes.has(change.type) && change.fields.includes("envs")) {
    notes.push(
      `a running workspace keeps its stored ${PERSISTENT_ENV.join(", ")} (Open WebUI PersistentConfig; the admin account only while it has none; docs/runbook.md: "What reaches a running instance")`,
    );
  }
  // The OpenRouter provider's delete disables the key: its usage history stays for invoicing.
  if (change.op === "delete" && change.type === "pulumi-nodejs:dynamic/openrouter:Key") notes.push("disabled at OpenRouter, not deleted");
  if (change.protected) notes.push("PROTECTED: `pulumi up` will refuse");
  const note = notes.length > 0 ? ` — ${notes.join("; ")}` : "";
  return `${opSymbol[change.op].padEnd(2)} ${change.op.padEnd(7)} ${shortType(change.type)} ${change.name}${fields}${note}`;
}

/** What a change of a moving client means for the move. */
function moveNotes(change: ResourceChange, move: { from: string; to: string }): string[] {
  const isMoveCommand = change.type === "command:local:Command" && change.name.endsWith(MOVE_COMMAND_SUFFIX);
  if (isMoveCommand && change.op === "create") return [`runs the move: stops the client on ${move.from}, streams its data to ${move.to}, verifies (see Moves)`];
  if (isMoveCommand && change.op === "delete") return ["drops the record of an earlier move; runs nothing"];
  const notes: string[] = [];
  if (change.op === "replace" && change.replaceFields?.includes("replacementTrigger")) notes.push(`recreated on ${move.to}, removed from ${move.from}`);
  if (restartingTypes.has(change.type) && change.op !== "delete") notes.push(`starts on ${move.to} after the data has moved`);
  if (restartingTypes.has(change.type) && change.op === "delete") notes.push(`removed from ${move.from} after the move (stopped by the move first)`);
  if (dataHoldingTypes.has(change.type) && change.op !== "delete") notes.push(`filled by the move on ${move.to}`);
  if (change.retained) notes.push(`the one on ${move.from} is kept (retained) until you delete it`);
  if (change.type === "cloudflare:index/dnsRecord:DnsRecord") notes.push(`points at ${move.to} once the client runs there`);
  if (change.name.endsWith("-backup-timer")) notes.push(`the nightly backup runs on ${move.to}; the move disables it on ${move.from}`);
  return notes;
}

/** Slugs of the clients that run a container in this declaration. */
function activeSlugs(report: PlanReport): string[] {
  return report.clients.filter((client) => client.status === "active").map((client) => client.slug);
}

/** "2 added (a, b), 0 changed, 1 restarted (c), 1 removed (d)". */
export function summaryLine(summary: ChangeSummary, activeClients: readonly string[] = []): string {
  const part = (n: string[], label: string) => `${n.length} ${label}${n.length > 0 ? ` (${n.join(", ")})` : ""}`;
  const everyoneRestarts = activeClients.length > 1 && activeClients.every((slug) => summary.restarted.includes(slug));
  const moved = summary.moved.length > 0 ? `, ${part(summary.moved, "moved")}` : "";
  const clients =
    `Clients: ${part(summary.added, "added")}, ${part(summary.changed, "changed")}, ${part(summary.restarted, "restarted")}, ${part(summary.removed, "removed")}${moved}.` +
    (everyoneRestarts ? ` Every active client restarts once (${activeClients.length} workspaces briefly unavailable).` : "");
  const data =
    summary.dataLost.length > 0
      ? ` DATA LOSS: ${summary.dataLost.join(", ")} would be deleted.`
      : summary.moved.length > 0
        ? ` Data volumes of moved${summary.removed.length > 0 ? " and removed" : ""} clients are retained on the server they leave (${summary.retained.join(", ") || "none declared"}).`
        : summary.removed.length > 0
          ? ` Data volumes of removed clients are retained on the host (${summary.retained.join(", ") || "none declared"}).`
          : "";
  const shared = summary.shared.length > 0 ? ` Shared resources changed: ${summary.shared.length}.` : "";
  const protectedNote = summary.protectedTouched.length > 0 ? ` Protected resources touched: ${summary.protectedTouched.join(", ")}.` : "";
  return clients + data + shared + protectedNote;
}

/** Changes grouped by client (alphabetical), shared changes last. */
function groupChanges(changes: readonly ResourceChange[]): Array<[string, ResourceChange[]]> {
  const groups = new Map<string, ResourceChange[]>();
  for (const change of changes) {
    const key = change.client ?? "";
    groups.set(key, [...(groups.get(key) ?? []), change]);
  }
  return [...groups.entries()].sort(([a], [b]) => (a === "" ? 1 : b === "" ? -1 : a.localeCompare(b)));
}

/** The moves section: each move's steps and its downtime warning. */
function moveLines(moves: readonly PlannedMove[]): string[] {
  const lines = [`Moves (${moves.length})`];
  for (const move of moves) {
    lines.push(`  ${move.slug}: ${move.from} -> ${move.to}`);
    move.steps.forEach((step, i) => lines.push(`    ${i + 1}. ${step}`));
    lines.push(`    ${move.downtime}`);
  }
  return lines;
}

/** The heading of a client's group of changes. */
function groupHeading(client: string, changes: readonly ResourceChange[]): string {
  if (client === "") return "shared (proxy, host, DNS)";
  const move = changes.find((c) => c.move)?.move;
  return move ? `client ${client} (moves ${move.from} -> ${move.to})` : `client ${client}`;
}

/** Server names in stack order (from the capacity reports), then any others the clients name. */
export function serverNames(report: Pick<PlanReport, "capacity" | "clients">): string[] {
  const names = report.capacity.map((c) => c.serverName);
  for (const client of report.clients) if (!names.includes(client.server)) names.push(client.server);
  return names;
}

/** Resources grouped by server, in server order; resources of no server last under "". */
export function resourcesByServer(report: PlanReport): Array<[string, DeclaredResource[]]> {
  const groups = new Map<string, DeclaredResource[]>(serverNames(report).map((name) => [name, []]));
  for (const resource of report.resources) {
    const server = report.resourceServer?.[resource.urn] ?? "";
    groups.set(server, [...(groups.get(server) ?? []), resource]);
  }
  return [...groups.entries()].filter(([, list]) => list.length > 0);
}

/** Terminal rendering. */
export function renderText(report: PlanReport): string {
  const lines: string[] = [`Plan for stack "${report.stack}"`, DECLARED_STATE_NOTE, ""];
  for (const server of serverNames(report)) {
    const clients = report.clients.filter((c) => c.server === server);
    const capacity = report.capacity.find((c) => c.serverName === server);
    lines.push(`Server ${server}: ${clients.length} client(s)`);
    if (clients.length > 0) lines.push(...table(clientHeader, clientRows(clients)).map((line) => `  ${line}`));
    if (capacity) lines.push(...capacityLines(capacity).map((line) => `  ${line}`));
    lines.push("");
  }
  lines.push(`Resources (${report.resources.length})`);
  for (const [server, resources] of resourcesByServer(report)) {
    lines.push(`  ${server === "" ? "no server" : `server ${server}`} (${resources.length})`);
    for (const [type, count] of countByType(resources)) lines.push(`    ${String(count).padStart(4)}  ${type}`);
  }
  if (report.changes) {
    lines.push("", `Changes against ${report.base ?? "base"} (${report.changes.length})`);
    if (report.changes.length === 0) lines.push("  none: the declared resources are identical");
    if (report.moves && report.moves.length > 0) lines.push(...moveLines(report.moves).map((line) => `  ${line}`));
    for (const [client, changes] of groupChanges(report.changes)) {
      lines.push(`  ${groupHeading(client, changes)}`);
      const several = serverNames(report).length > 1;
      for (const change of changes) {
        const server = several && client === "" ? report.resourceServer?.[change.urn] : undefined;
        lines.push(`    ${describeChange(change)}${server ? ` [server ${server}]` : ""}`);
      }
    }
    lines.push("", summaryLine(summariseChanges(report.changes), activeSlugs(report)));
  }
  if (report.warnings.length > 0) lines.push("", "Warnings", ...report.warnings.map((w) => `  - ${w}`));
  return lines.join("\n") + "\n";
}

function mdEscape(text: string): string {
  return text.replace(/\|/g, "\\|");
}

/** Compact Markdown for a pull-request comment; the first line is a stable marker for updates. */
export const MARKDOWN_MARKER = "<!-- mai-hosting-plan -->";

/** Markdown rendering. */
export function renderMarkdown(report: PlanReport): string {
  const lines: string[] = [MARKDOWN_MARKER, `### Plan for stack \`${report.stack}\``, "", `_${DECLARED_STATE_NOTE}_`, ""];
  if (report.changes) {
    const summary = summariseChanges(report.changes);
    lines.push(`**${summaryLine(summary, activeSlugs(report))}**`, "");
    for (const move of report.moves ?? []) {
      lines.push(`**Move \`${move.slug}\`: ${move.from} → ${move.to}.** ${mdEscape(move.downtime)}`, "");
      move.steps.forEach((step, i) => lines.push(`${i + 1}. ${mdEscape(step)}`));
      lines.push("");
    }
    if (report.changes.length === 0) lines.push(`No declared resource changes against \`${report.base}\`.`, "");
    else {
      lines.push(`| | Change | Type | Name | Inputs | Client |`, `|---|---|---|---|---|---|`);
      for (const [, changes] of groupChanges(report.changes)) {
        for (const c of changes) {
          const restart = c.move ? ` (**move** ${c.move.from} → ${c.move.to})` : c.op === "replace" && restartingTypes.has(c.type) ? " (**restart**)" : "";
          const extra = c.retained ? " (retained)" : c.protected ? " (**protected**)" : c.rerun ? " (re-run)" : "";
          lines.push(
            `| ${opSymbol[c.op]} | ${c.op}${restart}${extra} | \`${shortType(c.type)}\` | \`${mdEscape(c.name)}\` | ${c.fields.map((f) => `\`${f}\``).join(", ")} | ${c.client ?? "shared"} |`,
          );
        }
      }
      lines.push("");
    }
  }
  lines.push(`<details><summary>Clients (${report.clients.length})</summary>`, "");
  lines.push(`| Server | Client | URL | Port | Status | CPU limit / reserved | Memory limit / reserved | Pids limit |`, `|---|---|---|---|---|---|---|---|`);
  for (const client of report.clients) lines.push(`| ${[client.server, ...clientRows([client])[0]].map(mdEscape).join(" | ")} |`);
  lines.push("", "</details>", "");
  lines.push("<details><summary>Capacity</summary>", "", "```", ...report.capacity.flatMap(capacityLines), "```", "", "</details>", "");
  lines.push(`<details><summary>Resources (${report.resources.length})</summary>`, "", "| Server | Type | Count |", "|---|---|---|");
  for (const [server, resources] of resourcesByServer(report)) {
    for (const [type, count] of countByType(resources)) lines.push(`| ${server || "none"} | \`${type}\` | ${count} |`);
  }
  lines.push("", "</details>");
  if (report.warnings.length > 0) lines.push("", "**Warnings**", "", ...report.warnings.map((w) => `- ${mdEscape(w)}`));
  return lines.join("\n") + "\n";
}

/** The stable JSON shape; secrets are already masked as "[secret]" in the inputs. */
export function toJson(report: PlanReport): Record<string, unknown> {
  return {
    stack: report.stack,
    note: DECLARED_STATE_NOTE,
    clients: report.clients.map((c) => ({
      slug: c.slug,
      hostname: c.hostname,
      url: c.url,
      port: c.port,
      status: c.status,
      cpus: c.cpus,
      memoryMb: c.memoryMb,
      reservedCpus: c.reservedCpus,
      reservedMemoryMb: c.reservedMemoryMb,
      pidsLimit: c.pidsLimit,
      server: c.server,
    })),
    servers: serverNames(report),
    capacity: report.capacity,
    resources: report.resources.map((r) => ({
      urn: r.urn,
      type: r.type,
      name: r.name,
      parent: r.parent ?? null,
      server: report.resourceServer?.[r.urn] ?? null,
      inputs: r.inputs,
    })),
    ...(report.changes
      ? {
          base: report.base,
          changes: report.changes.map((c) => ({
            op: c.op,
            urn: c.urn,
            type: c.type,
            name: c.name,
            fields: c.fields,
            ...(c.client ? { client: c.client } : {}),
            ...(c.retained ? { retained: true } : {}),
            ...(c.rerun ? { rerun: true } : {}),
            ...(c.protected ? { protected: true } : {}),
            ...(c.op === "replace" && restartingTypes.has(c.type) ? { restart: true } : {}),
            ...(c.move ? { move: c.move } : {}),
          })),
          moves: (report.moves ?? []).map((m) => ({ slug: m.slug, from: m.from, to: m.to, suspended: m.suspended, steps: m.steps, downtime: m.downtime })),
          summary: (({ shared: _shared, ...rest }) => rest)(summariseChanges(report.changes)),
        }
      : {}),
    warnings: report.warnings,
  };
}

/** JSON text. */
export function renderJson(report: PlanReport): string {
  return JSON.stringify(toJson(report), null, 2) + "\n";
}
