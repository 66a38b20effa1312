/**
 * Does everything fit on the server? Memory limits and all reservations must fit into what the
 * server offers after the host reserve; CPU limits may overcommit (CPU is time-shared, so a busy
 * client only slows others down) and produce a warning. Only active clients count: a suspended
 * client has no container.
 */
import type { ClientSpec, ServerSpec, StackSettings } from "../config/model";
import type { ConfigIssue } from "../config/configIssues";
import { findServerType } from "../config/serverTypes";
import { formatMemory } from "../config/units";
import { DEFAULT_SERVER_NAME } from "../config/servers";

/** What one server offers and what its active clients ask for. */
export interface CapacityReport {
  /** Name of the server (a key of the stack's `servers`; `host` without them). */
  serverName: string;
  /** Hetzner server type the numbers are for; `local` for the local engine. */
  serverType: string;
  /** False when the server's capacity is not checked (see `note`); totals are still given. */
  checked: boolean;
  /** Why the capacity is not checked, when it is not. */
  note?: string;
  /** The server's vCPUs and memory (MiB). */
  server: { cpus: number; memoryMb: number };
  /** Kept back for the OS, Docker and Caddy (stack `hostReserve`). */
  reserve: { cpus: number; memoryMb: number };
  /** `server` minus `reserve`: what clients may use. */
  allocatable: { cpus: number; memoryMb: number };
  /** Sums over active clients. */
  totals: { cpuLimits: number; memoryLimitsMb: number; reservedCpus: number; reservedMemoryMb: number };
  /** Clients with a container. */
  activeClients: number;
  /** Clients without a container (not counted in `totals`). */
  suspendedClients: number;
  /** Acceptable but noteworthy findings, e.g. CPU overcommit. */
  warnings: string[];
}

/** Two decimals: sums of fractional CPUs must not show float noise (0.1 + 0.2). */
function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** Why a local server's capacity is not checked. */
export const LOCAL_CAPACITY_NOTE = "not checked: a local Docker Engine shares its machine with everything else running there";

/**
 * Checks every server against the clients pinned to it. `settingsFile` names the stack config
 * file in messages about totals (they are fixed by changing the server type, hostReserve or
 * client resources). Returns one report per server, in the stack's server order.
 */
export function assessCapacity(
  clients: ClientSpec[],
  settings: StackSettings,
  settingsFile = "stack settings",
): { reports: CapacityReport[]; issues: ConfigIssue[] } {
  const reports: CapacityReport[] = [];
  const issues: ConfigIssue[] = [];
  const explicitServers = !(settings.servers.length === 1 && settings.servers[0].name === DEFAULT_SERVER_NAME && settings.servers[0].kind === "hetzner");
  for (const server of settings.servers) {
    const assessed = assessServerCapacity(
      server,
      clients.filter((client) => client.server === server.name),
      settings,
      settingsFile,
      explicitServers ? `servers.${server.name}.serverType` : "serverType",
    );
    reports.push(assessed.report);
    issues.push(...assessed.issues);
  }
  return { reports, issues };
}

/**
 * Checks the active clients of one server against it. `serverTypePath` is the stack setting
 * blamed when the totals do not fit.
 */
export function assessServerCapacity(
  target: ServerSpec,
  clients: ClientSpec[],
  settings: Pick<StackSettings, "hostReserve">,
  settingsFile = "stack settings",
  serverTypePath = "serverType",
): { report: CapacityReport; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const active = clients.filter((client) => client.status === "active");
  const totals = {
    cpuLimits: round2(active.reduce((sum, client) => sum + client.resources.cpus, 0)),
    memoryLimitsMb: active.reduce((sum, client) => sum + client.resources.memoryMb, 0),
    reservedCpus: round2(active.reduce((sum, client) => sum + client.resources.reservedCpus, 0)),
    reservedMemoryMb: active.reduce((sum, client) => sum + client.resources.reservedMemoryMb, 0),
  };
  const counts = { activeClients: active.length, suspendedClients: clients.length - active.length };
  if (target.kind === "local") {
    const none = { cpus: 0, memoryMb: 0 };
    const report: CapacityReport = {
      serverName: target.name,
      serverType: "local",
      checked: false,
      note: LOCAL_CAPACITY_NOTE,
      server: { cpus: target.cpus ?? 0, memoryMb: 0 },
      reserve: none,
      allocatable: none,
      totals,
      ...counts,
      warnings: [],
    };
    return { report, issues };
  }

  const serverType = findServerType(target.serverType);
  const server = serverType === undefined ? { cpus: 0, memoryMb: 0 } : { cpus: serverType.cpus, memoryMb: serverType.memoryMb };
  if (serverType === undefined) {
    issues.push({ file: settingsFile, path: serverTypePath, message: `unknown server type "${target.serverType}"` });
  }
  const reserve = { cpus: settings.hostReserve.cpus, memoryMb: settings.hostReserve.memoryMb };
  const allocatable = {
    cpus: round2(Math.max(0, server.cpus - reserve.cpus)),
    memoryMb: Math.max(0, server.memoryMb - reserve.memoryMb),
  };
  const report: CapacityReport = {
    serverName: target.name,
    serverType: target.serverType,
    checked: true,
    server,
    reserve,
    allocatable,
    totals,
    ...counts,
    warnings: [],
  };
  if (serverType === undefined) return { report, issues };

  const name = `server ${target.name} (${target.serverType})`;
  const who = `${plural(active.length, "active client")}`;
  const memoryOffer = `${name} offers ${formatMemory(allocatable.memoryMb)} (${formatMemory(server.memoryMb)} minus ${formatMemory(reserve.memoryMb)} host reserve)`;
  const cpuOffer = `${name} offers ${allocatable.cpus} vCPUs (${server.cpus} minus ${reserve.cpus} host reserve)`;
  const fix = "use a larger serverType, move clients to another server, lower client resources or suspend clients";

  if (reserve.cpus >= server.cpus || reserve.memoryMb >= server.memoryMb) {
    issues.push({
      file: settingsFile,
      path: "hostReserve",
      message: `the host reserve (${reserve.cpus} vCPUs, ${formatMemory(reserve.memoryMb)}) leaves nothing for clients on ${name} (${server.cpus} vCPUs, ${formatMemory(server.memoryMb)})`,
    });
  }
  if (totals.memoryLimitsMb > allocatable.memoryMb) {
    issues.push({
      file: settingsFile,
      path: serverTypePath,
      message: `memory limits of ${who} total ${formatMemory(totals.memoryLimitsMb)}, but ${memoryOffer}; ${fix}`,
    });
  }
  if (totals.reservedMemoryMb > allocatable.memoryMb) {
    issues.push({
      file: settingsFile,
      path: serverTypePath,
      message: `memory reservations of ${who} total ${formatMemory(totals.reservedMemoryMb)}, but ${memoryOffer}; ${fix}`,
    });
  }
  if (totals.reservedCpus > allocatable.cpus) {
    issues.push({
      file: settingsFile,
      path: serverTypePath,
      message: `CPU reservations of ${who} total ${totals.reservedCpus} vCPUs, but ${cpuOffer}; ${fix}`,
    });
  }
  for (const client of clients) {
    if (client.resources.cpus > server.cpus) {
      issues.push({
        file: client.file,
        path: "resources.cpus",
        message: `CPU limit ${client.resources.cpus} exceeds the ${server.cpus} vCPUs of ${name}`,
      });
    }
  }
  if (totals.cpuLimits > allocatable.cpus && allocatable.cpus > 0) {
    const ratio = Math.round((totals.cpuLimits / allocatable.cpus) * 100) / 100;
    report.warnings.push(
      `CPU limits of ${who} total ${totals.cpuLimits} vCPUs, ${ratio}x the ${allocatable.cpus} vCPUs ${name} offers (${server.cpus} minus ${reserve.cpus} host reserve): ` +
        `busy clients slow each other down; reservations (${totals.reservedCpus} vCPUs) stay guaranteed`,
    );
  }
  return { report, issues };
}

/** One line for humans: how much of the server the active clients use. */
export function capacitySummary(report: CapacityReport): string {
  if (!report.checked) {
    return `${report.serverName} (${report.serverType}): ${plural(report.activeClients, "active client")}, CPU limits ${report.totals.cpuLimits} vCPUs, memory limits ${formatMemory(report.totals.memoryLimitsMb)}; capacity ${report.note ?? "not checked"}`;
  }
  const percent = (used: number, offered: number) => (offered > 0 ? `${Math.round((used / offered) * 100)}%` : "n/a");
  const suspended =
    report.suspendedClients > 0 ? `; ${plural(report.suspendedClients, "suspended client")} not counted (no container)` : "";
  return (
    `${report.serverName} (${report.serverType}): CPU limits ${report.totals.cpuLimits}/${report.allocatable.cpus} vCPUs (${percent(report.totals.cpuLimits, report.allocatable.cpus)}), ` +
    `memory limits ${formatMemory(report.totals.memoryLimitsMb)}/${formatMemory(report.allocatable.memoryMb)} (${percent(report.totals.memoryLimitsMb, report.allocatable.memoryMb)}), ` +
    `reserved ${report.totals.reservedCpus} vCPUs + ${formatMemory(report.totals.reservedMemoryMb)}${suspended}`
  );
}
