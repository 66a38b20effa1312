import { describe, expect, it } from "vitest";
import { assessCapacity, capacitySummary } from "../policy/capacity";
import { ConfigError, formatIssue } from "../config/configIssues";
import { type ClientSource, resolveConfiguration } from "../config/configuration";
import type { ClientSpec, ResourceSpec, StackSettings } from "../config/model";

const SETTINGS: StackSettings = {
  domain: "mai-hosting.eu",
  cloudflareZoneId: "0123456789abcdef0123456789abcdef",
  defaultServer: "host",
  serverType: "ccx53",
  location: "nbg1",
  serverImage: "ubuntu-24.04",
  sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPSC1l/62VRwD1a2oO5ETlwMnjE84napWFyJKnqj306o ops@mai-hosting.eu"],
  adminCidrs: ["203.0.113.10/32"],
  defaultImage: "ghcr.io/mai-hosting/mai:1.4.2",
  defaultResources: { cpus: 2, memoryMb: 4096, reservedCpus: 1, reservedMemoryMb: 2048, pidsLimit: 1024 },
  hostReserve: { cpus: 2, memoryMb: 4096 },
  acmeEmail: "ops@mai-hosting.eu",
  backupRetentionDays: 30,
  servers: [{ name: "host", kind: "hetzner", serverType: "ccx53", location: "nbg1" }],
  proxyImage: "caddy:2.11.9-alpine",
};

/** SETTINGS with the one server of the given type. */
function onServerType(serverType: string, over: Partial<StackSettings> = {}): StackSettings {
  return { ...SETTINGS, serverType, servers: [{ name: "host", kind: "hetzner", serverType, location: "nbg1" }], ...over };
}

/** The single server's report and the issues. */
function assessOne(list: ClientSpec[], settings: StackSettings, file?: string) {
  const { reports, issues } = assessCapacity(list, settings, file);
  return { report: reports[0], issues };
}

function clients(count: number, resources: Partial<ResourceSpec> = {}, status: ClientSpec["status"] = "active"): ClientSpec[] {
  return Array.from({ length: count }, (_, index) => {
    const slug = `${status === "active" ? "c" : "s"}${String(index).padStart(2, "0")}`;
    return {
      slug,
      file: `clients/${slug}.yaml`,
      admin: `admin@${slug}.example.com`,
      name: slug,
      port: 3000 + index + (status === "active" ? 0 : 500),
      hostname: `${slug}.mai-hosting.eu`,
      defaultHostname: `${slug}.mai-hosting.eu`,
      status,
      image: SETTINGS.defaultImage,
      resources: { ...SETTINGS.defaultResources, ...resources },
      env: {},
      server: "host",
    };
  });
}

describe("assessCapacity", () => {
  it("reports server, reserve, allocatable and totals of a fitting set", () => {
    const { report, issues } = assessOne(clients(20), SETTINGS);
    expect(issues).toEqual([]);
    expect(report).toMatchObject({
      serverType: "ccx53",
      server: { cpus: 32, memoryMb: 131072 },
      reserve: { cpus: 2, memoryMb: 4096 },
      allocatable: { cpus: 30, memoryMb: 126976 },
      totals: { cpuLimits: 40, memoryLimitsMb: 81920, reservedCpus: 20, reservedMemoryMb: 40960 },
      activeClients: 20,
      suspendedClients: 0,
    });
  });

  it("warns (does not fail) when CPU limits overcommit, stating the ratio", () => {
    const { report, issues } = assessOne(clients(21), SETTINGS);
    expect(issues).toEqual([]);
    expect(report.warnings).toEqual([
      "CPU limits of 21 active clients total 42 vCPUs, 1.4x the 30 vCPUs server host (ccx53) offers (32 minus 2 host reserve): busy clients slow each other down; reservations (21 vCPUs) stay guaranteed",
    ]);
    expect(assessOne(clients(15), SETTINGS).report.warnings).toEqual([]);
  });

  it("fails when memory limits exceed what the server offers, stating totals and capacity", () => {
    const { issues } = assessOne(clients(21, { memoryMb: 6144, reservedMemoryMb: 1024, reservedCpus: 0.5 }), SETTINGS, "Pulumi.prod.yaml");
    expect(issues.map(formatIssue)).toEqual([
      "Pulumi.prod.yaml: serverType: memory limits of 21 active clients total 126G, but server host (ccx53) offers 124G (128G minus 4G host reserve); use a larger serverType, move clients to another server, lower client resources or suspend clients",
    ]);
  });

  it("fails when memory or CPU reservations exceed what the server offers", () => {
    const { issues } = assessOne(clients(4, { cpus: 8, reservedCpus: 8, memoryMb: 16384, reservedMemoryMb: 16384 }), onServerType("ccx43"));
    expect(issues.map((issue) => issue.message)).toEqual([
      "memory limits of 4 active clients total 64G, but server host (ccx43) offers 60G (64G minus 4G host reserve); use a larger serverType, move clients to another server, lower client resources or suspend clients",
      "memory reservations of 4 active clients total 64G, but server host (ccx43) offers 60G (64G minus 4G host reserve); use a larger serverType, move clients to another server, lower client resources or suspend clients",
      "CPU reservations of 4 active clients total 32 vCPUs, but server host (ccx43) offers 14 vCPUs (16 minus 2 host reserve); use a larger serverType, move clients to another server, lower client resources or suspend clients",
    ]);
  });

  it("fails when one client's CPU limit exceeds the server's vCPUs", () => {
    const [big] = clients(1, { cpus: 8 });
    const { issues } = assessOne([big], onServerType("ccx13"));
    expect(issues.map(formatIssue)).toContain("clients/c00.yaml: resources.cpus: CPU limit 8 exceeds the 2 vCPUs of server host (ccx13)");
  });

  it("does not count suspended clients (they have no container) and says so", () => {
    const { report, issues } = assessOne([...clients(10), ...clients(40, { memoryMb: 65536 }, "suspended")], SETTINGS);
    expect(issues).toEqual([]);
    expect(report.activeClients).toBe(10);
    expect(report.suspendedClients).toBe(40);
    expect(report.totals.memoryLimitsMb).toBe(40960);
    expect(capacitySummary(report)).toBe(
      "host (ccx53): CPU limits 20/30 vCPUs (67%), memory limits 40G/124G (32%), reserved 10 vCPUs + 20G; 40 suspended clients not counted (no container)",
    );
  });

  it("sums fractional CPUs without float noise", () => {
    const { report } = assessOne(clients(3, { cpus: 0.1, reservedCpus: 0.1 }), SETTINGS);
    expect(report.totals.cpuLimits).toBe(0.3);
    expect(report.totals.reservedCpus).toBe(0.3);
  });

  it("fails when the host reserve leaves nothing for clients", () => {
    const { issues } = assessOne([], onServerType("ccx13", { hostReserve: { cpus: 2, memoryMb: 4096 } }));
    expect(issues.map((issue) => issue.message)).toEqual([
      "the host reserve (2 vCPUs, 4G) leaves nothing for clients on server host (ccx13) (2 vCPUs, 8G)",
    ]);
  });
});

describe("capacity inside resolveConfiguration", () => {
  const stackValues = {
    domain: SETTINGS.domain,
    cloudflareZoneId: SETTINGS.cloudflareZoneId,
    sshPublicKeys: SETTINGS.sshPublicKeys,
    adminCidrs: SETTINGS.adminCidrs,
    defaultImage: SETTINGS.defaultImage,
    acmeEmail: SETTINGS.acmeEmail,
  };
  const sources = (count: number, memory: string): ClientSource[] =>
    Array.from({ length: count }, (_, index) => ({
      file: `clients/client-${String(index).padStart(2, "0")}.yaml`,
      text: `name: Client ${index}\nport: ${3001 + index}\nresources:\n  memory: ${memory}\n`,
    }));

  it("reports capacity errors against the stack file's serverType", () => {
    let error: unknown;
    try {
      resolveConfiguration({ file: "Pulumi.prod.yaml", values: { ...stackValues, serverType: "ccx33" } }, sources(6, "5G"));
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues.map(formatIssue)).toEqual([
      "Pulumi.prod.yaml: mai-hosting:serverType: memory limits of 6 active clients total 30G, but server host (ccx33) offers 28G (32G minus 4G host reserve); use a larger serverType, move clients to another server, lower client resources or suspend clients",
    ]);
  });

  it("passes the overcommit warning through as a configuration warning", () => {
    const configuration = resolveConfiguration({ file: "Pulumi.prod.yaml", values: stackValues }, sources(16, "4G"));
    expect(configuration.capacity[0].totals.cpuLimits).toBe(32);
    expect(configuration.warnings).toEqual([expect.stringContaining("CPU limits of 16 active clients total 32 vCPUs, 1.07x the 30 vCPUs")]);
  });
});
