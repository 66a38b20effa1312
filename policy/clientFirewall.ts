/**
 * The packet filter between a server's client containers and everything that is not the
 * internet: the cloud's metadata service (169.254.169.254 serves the server's user data) and the
 * host's own services (sshd, the Docker API if ever exposed, anything bound to a host address).
 * Every workspace runs untrusted code, and Hetzner's firewall only filters traffic from outside
 * the server, never a container talking to its own host. Pure: renders text, no Pulumi.
 *
 * - Forwarded traffic from a client bridge to link-local addresses (169.254.0.0/16) is dropped,
 *   from Docker's `DOCKER-USER` chain, which Docker evaluates before its own forwarding rules and
 *   never flushes.
 * - Traffic from a client bridge to the host itself (the bridge gateway, the public addresses) is
 *   dropped unless it answers a connection the host opened (published ports, health checks) or
 *   goes to Caddy's public ports (80, 443 TCP, 443 UDP): a container reaches the host exactly as
 *   the internet does. IPv6 likewise (a container can always reach the host's link-local address
 *   on its bridge), keeping neighbour discovery.
 *
 * Client bridges are matched by interface (`br-+`, Docker's user-defined networks, and the default
 * `docker0`): a container cannot choose its interface, and it has no capability to forge sources.
 * The rules live in chains of their own, replaced as a whole by `iptables-restore --noflush`, and
 * are hooked in with one jump each, added once. `mai-firewall.service` applies them at boot before
 * dockerd starts any container; a drop-in re-applies them each time dockerd (re)starts.
 */
/** Interfaces of the Docker bridges client containers sit on. */
export const CLIENT_BRIDGE_INTERFACES: readonly string[] = ["docker0", "br-+"];

/** Where no client container may send packets through the host: link-local, the metadata service's range. */
export const BLOCKED_FORWARD_DESTINATIONS: readonly string[] = ["169.254.0.0/16"];

/** Host ports a client container may reach: Caddy's public listeners, as the internet does. */
export const CLIENT_REACHABLE_HOST_PORTS = { tcp: [80, 443], udp: [443] } as const;

/** The chains the filter owns (iptables chain names: at most 28 characters). */
export const FIREWALL_CHAINS = {
  /** Jumped to from DOCKER-USER: forwarded traffic of client bridges. */
  forward: "MAI-CLIENT-FORWARD",
  /** Jumped to from INPUT: sends traffic arriving on a client bridge to `toHost`. */
  input: "MAI-CLIENT-INPUT",
  /** What a client container may send to the host itself. */
  toHost: "MAI-CLIENT-TO-HOST",
} as const;

/**
 * The host script that applies the filter (idempotent; in the host's bin directory, HOST_PATHS,
 * which is not imported: cloudInit.ts renders these files), its unit and the dockerd drop-in.
 */
export const FIREWALL_FILES = {
  script: "/usr/local/sbin/mai-firewall",
  unit: "/etc/systemd/system/mai-firewall.service",
  dockerDropIn: "/etc/systemd/system/docker.service.d/50-mai-firewall.conf",
} as const;

/** ICMPv6 types the host must keep answering on a bridge (neighbour discovery, router solicitation). */
const NEIGHBOUR_DISCOVERY = ["router-solicitation", "neighbour-solicitation", "neighbour-advertisement"];

/** The `iptables-restore --noflush` input for IPv4 (4) or IPv6 (6): the filter's own chains. */
export function renderFirewallRules(family: 4 | 6): string {
  const { forward, input, toHost } = FIREWALL_CHAINS;
  const ports = CLIENT_REACHABLE_HOST_PORTS;
  const chains = family === 4 ? [forward, input, toHost] : [input, toHost];
  const lines = ["*filter", ...chains.map((chain) => `:${chain} - [0:0]`)];
  if (family === 4) {
    for (const iface of CLIENT_BRIDGE_INTERFACES) {
      for (const destination of BLOCKED_FORWARD_DESTINATIONS) lines.push(`-A ${forward} -i ${iface} -d ${destination} -j DROP`);
    }
  }
  for (const iface of CLIENT_BRIDGE_INTERFACES) lines.push(`-A ${input} -i ${iface} -j ${toHost}`);
  lines.push(`-A ${toHost} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`);
  if (family === 6) {
    for (const type of NEIGHBOUR_DISCOVERY) lines.push(`-A ${toHost} -p ipv6-icmp -m icmp6 --icmpv6-type ${type} -j RETURN`);
  }
  lines.push(`-A ${toHost} -p tcp -m multiport --dports ${ports.tcp.join(",")} -j RETURN`);
  for (const port of ports.udp) lines.push(`-A ${toHost} -p udp -m udp --dport ${port} -j RETURN`);
  lines.push(`-A ${toHost} -j DROP`, "COMMIT", "");
  return lines.join("\n");
}

/**
 * The host script: loads both rule sets (each replaces the filter's chains atomically) and adds
 * the two jumps unless present. DOCKER-USER is created when dockerd has not run yet; dockerd keeps
 * an existing chain and its rules and jumps to it first from FORWARD. IPv6 is skipped on a host
 * without it. Safe to run any number of times.
 */
export function renderFirewallScript(): string {
  const { forward, input } = FIREWALL_CHAINS;
  return [
    "#!/bin/bash",
    "# Managed by the mai-hosting stack (policy/clientFirewall.ts): client containers reach neither",
    "# the cloud metadata service nor host services other than Caddy's public ports.",
    "set -euo pipefail",
    "",
    "iptables-restore --noflush <<'MAI_RULES_V4'",
    renderFirewallRules(4).trimEnd(),
    "MAI_RULES_V4",
    "iptables -w -N DOCKER-USER 2>/dev/null || true",
    `iptables -w -C DOCKER-USER -j ${forward} 2>/dev/null || iptables -w -I DOCKER-USER 1 -j ${forward}`,
    `iptables -w -C INPUT -j ${input} 2>/dev/null || iptables -w -I INPUT 1 -j ${input}`,
    "",
    "if [ -e /proc/net/if_inet6 ]; then",
    "  ip6tables-restore --noflush <<'MAI_RULES_V6'",
    renderFirewallRules(6).trimEnd(),
    "MAI_RULES_V6",
    `  ip6tables -w -C INPUT -j ${input} 2>/dev/null || ip6tables -w -I INPUT 1 -j ${input}`,
    "fi",
    'echo "mai-firewall: client container rules in place"',
    "",
  ].join("\n");
}

/** The boot-time unit: before dockerd, so no container ever runs without the filter. */
export function renderFirewallUnit(): string {
  return [
    "# Managed by the mai-hosting stack.",
    "[Unit]",
    "Description=mai-hosting: keep client containers from the metadata service and host services",
    "Before=docker.service",
    "After=local-fs.target",
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=${FIREWALL_FILES.script}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target docker.service",
    "",
  ].join("\n");
}

/**
 * The drop-in that re-applies the filter whenever dockerd has (re)started and set up its chains.
 * A failure there is logged but does not stop dockerd (`-`): it would take every client down; the
 * boot unit's failure shows in `systemctl --failed`.
 */
export function renderFirewallDockerDropIn(): string {
  return ["# Managed by the mai-hosting stack.", "[Service]", `ExecStartPost=-${FIREWALL_FILES.script}`, ""].join("\n");
}

/**
 * What the stack runs on a server (over SSH) to install and apply the filter: on servers created
 * before it was part of the first boot too (user data never runs again). Re-runs when any of it
 * changes (its content hash is the command's trigger).
 */
export function firewallInstallCommand(): string {
  const write = (path: string, content: string, mode: string, marker: string) => [
    `cat > ${path}.new <<'${marker}'`,
    content.trimEnd(),
    marker,
    `chmod ${mode} ${path}.new && mv -f ${path}.new ${path}`,
  ];
  return [
    "set -eu",
    `install -d -m 0755 $(dirname ${FIREWALL_FILES.dockerDropIn})`,
    ...write(FIREWALL_FILES.script, renderFirewallScript(), "0755", "MAI_FIREWALL_SCRIPT"),
    ...write(FIREWALL_FILES.unit, renderFirewallUnit(), "0644", "MAI_FIREWALL_UNIT"),
    ...write(FIREWALL_FILES.dockerDropIn, renderFirewallDockerDropIn(), "0644", "MAI_FIREWALL_DROPIN"),
    "systemctl daemon-reload",
    "systemctl enable mai-firewall.service",
    // Apply now (the unit has run already on a server booted with it: restart re-applies).
    "systemctl restart mai-firewall.service",
  ].join("\n");
}
