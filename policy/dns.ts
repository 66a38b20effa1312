/**
 * Which DNS records a client gets. Every client has `<slug>.<domain>` in the stack's zone. A
 * custom hostname inside the zone gets its own records; one outside the zone is the client's to
 * point at `<slug>.<domain>` with a CNAME (the runbook's onboarding steps say so).
 */
import type { ClientSpec } from "../config/model";

export interface DnsRecordSpec {
  /** Suffix of the Pulumi resource name; stable per record. */
  key: string;
  /** Fully qualified record name. */
  name: string;
  type: "A" | "AAAA";
}

/** True when `hostname` is `domain` or lies below it. */
export function isInZone(hostname: string, domain: string): boolean {
  return hostname === domain || hostname.endsWith(`.${domain}`);
}

export function dnsRecordsFor(client: ClientSpec, domain: string): DnsRecordSpec[] {
  const records: DnsRecordSpec[] = [
    { key: "a", name: client.defaultHostname, type: "A" },
    { key: "aaaa", name: client.defaultHostname, type: "AAAA" },
  ];
  if (client.hostname !== client.defaultHostname && isInZone(client.hostname, domain)) {
    records.push({ key: "host-a", name: client.hostname, type: "A" });
    records.push({ key: "host-aaaa", name: client.hostname, type: "AAAA" });
  }
  return records;
}

/** Hostnames outside the zone: each needs a CNAME to `<slug>.<domain>` set by the client. */
export function externalHostnames(clients: ClientSpec[], domain: string): { slug: string; hostname: string; target: string }[] {
  return clients
    .filter((c) => !isInZone(c.hostname, domain))
    .map((c) => ({ slug: c.slug, hostname: c.hostname, target: c.defaultHostname }));
}
