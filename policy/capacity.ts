/**
 * Does everything fit on the server? Memory limits and all reservations must fit into what the
 * server offers after the host reserve; CPU limits may overcommit (CPU is time-shared, so a busy
 * client only slows others down) and produce a warning. Only active clients count: a suspended
 * client has no container.
 */
import type { ClientSpec, StackSettings } from "../config/model";
import type { ConfigIssue } from "../config/configIssues";
import { findServerType } from "../config/serverTypes";
import { formatMemory } from "../config/units";

/** What the server offers and what the active clients ask for. */
export interface CapacityReport {
  /** Hetzner server type the numbers are for. */
  serverType: string;
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

/**
 * Checks the active clients against the server. `settingsFile` names the stack config file in
 * messages about totals (they are fixed by changing serverType, hostReserve or client resources).
 */
export function assessCapacity(
  clients: ClientSpec[],
  settings: StackSettings,
  settingsFile = "stack settings",
): { report: CapacityReport; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const serverType = findServerType(settings.serverType);
  const server = serverType === undefined ? { cpus: 0, memoryMb: 0 } : { cpus: serverType.cpus, memoryMb: serverType.memoryMb };
  if (serverType === undefined) {
    issues.push({ file: settingsFile, path: "serverType", message: `unknown server type "${settings.serverType}"` });
  }
  const reserve = { cpus: settings.hostReserve.cpus, memoryMb: settings.hostReserve.memoryMb };
  const allocatable = {
    cpus: round2(Math.max(0, server.cpus - reserve.cpus)),
    memoryMb: Math.max(0, server.memoryMb - reserve.memoryMb),
  };

  const active = clients.filter((client) => client.status === "active");
  const totals = {
    cpuLimits: round2(active.reduce((sum, client) => sum + client.resources.cpus, 0)),
    memoryLimitsMb: active.reduce((sum, client) => sum + client.resources.memoryMb, 0),
    reservedCpus: round2(active.reduce((sum, client) => sum + client.resources.reservedCpus, 0)),
    reservedMemoryMb: active.reduce((sum, client) => sum + client.resources.reservedMemoryMb, 0),
  };
  const report: CapacityReport = {
    serverType: settings.serverType,
    server,
    reserve,
    allocatable,
    totals,
    activeClients: active.length,
    suspendedClients: clients.length - active.length,
    warnings: [],
  };
  if (serverType === undefined) return { report, issues };

  const name = settings.serverType;
  const who = `${plural(active.length, "active client")}`;
  const memoryOffer = `${name} offers ${formatMemory(allocatable.memoryMb)} (${formatMemory(server.memoryMb)} minus ${formatMemory(reserve.memoryMb)} host reserve)`;
  const cpuOffer = `${name} offers ${allocatable.cpus} vCPUs (${server.cpus} minus ${reserve.cpus} host reserve)`;
  const fix = "use a larger serverType, lower client resources or suspend clients";

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
      path: "serverType",
      message: `memory limits of ${who} total ${formatMemory(totals.memoryLimitsMb)}, but ${memoryOffer}; ${fix}`,
    });
  }
  if (totals.reservedMemoryMb > allocatable.memoryMb) {
    issues.push({
      file: settingsFile,
      path: "serverType",
      message: `memory reservations of ${who} total ${formatMemory(totals.reservedMemoryMb)}, but ${memoryOffer}; ${fix}`,
    });
  }
  if (totals.reservedCpus > allocatable.cpus) {
    issues.push({
      file: settingsFile,
      path: "serverType",
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
  const percent = (used: number, offered: number) => (offered > 0 ? `${Math.round((used / offered) * 100)}%` : "n/a");
  const suspended =
    report.suspendedClients > 0 ? `; ${plural(report.suspendedClients, "suspended client")} not counted (no container)` : "";
  return (
    `${report.serverType}: CPU limits ${report.totals.cpuLimits}/${report.allocatable.cpus} vCPUs (${percent(report.totals.cpuLimits, report.allocatable.cpus)}), ` +
    `memory limits ${formatMemory(report.totals.memoryLimitsMb)}/${formatMemory(report.allocatable.memoryMb)} (${percent(report.totals.memoryLimitsMb, report.allocatable.memoryMb)}), ` +
    `reserved ${report.totals.reservedCpus} vCPUs + ${formatMemory(report.totals.reservedMemoryMb)}${suspended}`
  );
}
