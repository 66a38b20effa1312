/**
 * Pure policy of the host: who may reach which port, and how the stack labels what it owns.
 */

/** Both address families, for services the whole internet uses. */
export const ANYWHERE = ["0.0.0.0/0", "::/0"];

/** One Hetzner firewall rule (the shape of `hcloud.types.input.FirewallRule`). */
export interface FirewallRule {
  direction: "in" | "out";
  protocol: "tcp" | "udp" | "icmp";
  port?: string;
  sourceIps: string[];
  description: string;
}

/**
 * Inbound rules. Hetzner firewalls drop everything not allowed; client ports are published on
 * 127.0.0.1 only and so never need a rule.
 */
export function firewallRules(adminCidrs: string[]): FirewallRule[] {
  return [
    { direction: "in", protocol: "tcp", port: "22", sourceIps: [...adminCidrs], description: "SSH from admin networks" },
    { direction: "in", protocol: "tcp", port: "80", sourceIps: ANYWHERE, description: "HTTP: ACME challenges, redirect to HTTPS" },
    { direction: "in", protocol: "tcp", port: "443", sourceIps: ANYWHERE, description: "HTTPS" },
    { direction: "in", protocol: "udp", port: "443", sourceIps: ANYWHERE, description: "HTTP/3 (QUIC)" },
    { direction: "in", protocol: "icmp", sourceIps: ANYWHERE, description: "ping and path MTU discovery" },
  ];
}

/** Labels on every Hetzner object of the stack (`hcloud server list -l managed-by=pulumi`). */
export function hostLabels(): Record<string, string> {
  return { "managed-by": "pulumi", stack: "mai-hosting" };
}

/** Hetzner SSH key name: the key's comment when it has one, so the console shows whose key it is. */
export function sshKeyName(publicKey: string, index: number): string {
  const comment = publicKey.trim().split(/\s+/).slice(2).join(" ");
  const slug = comment.toLowerCase().replace(/[^a-z0-9@._-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 48);
  return slug ? `mai-${slug}` : `mai-admin-${index + 1}`;
}
