/**
 * The server's first-boot configuration (cloud-init user data), rendered as a pure function.
 *
 * The server ignores later changes to its user data (see `lifecycle.server` in lifecycle.ts),
 * so this file only prepares the machine: Docker, unattended security upgrades, the tools the
 * host-side scripts use, and the directories the stack writes to. Everything that changes with
 * the clients (Caddyfile, backup units) is deployed by the stack over SSH instead.
 */
import { stringify } from "yaml";
import type { HostPaths } from "./hostPaths";
import { FIREWALL_FILES, renderFirewallDockerDropIn, renderFirewallScript, renderFirewallUnit } from "./clientFirewall";

/** Host directories the stack uses; created at first boot and again by the deploy commands. */
export const HOST_PATHS: Readonly<HostPaths> = {
  /** Caddyfile directory, bind-mounted read-only at /etc/caddy in the proxy. */
  caddyDir: "/opt/mai/caddy",
  /** Per-client backups live below this directory, one sub-directory per slug. */
  backupsDir: "/srv/mai/backups",
  /** Host-side configuration of the stack's scripts (backup env file, ...). */
  etcDir: "/etc/mai",
  /** The stack's host scripts (mai-caddy-apply, mai-backup, mai-restore, ...). */
  binDir: "/usr/local/sbin",
  /** Scratch space of the stack: staged uploads, state of host tools. */
  stateDir: "/var/lib/mai",
};

/**
 * Kernel settings of the host. Caddy shares the host's network namespace (it runs with
 * `network_mode: host`), so its socket settings are the host's: on reload Caddy opens a new
 * listening socket, and tcp_migrate_req hands connections still queued on the old one over
 * instead of resetting them (Linux 5.14+).
 */
export const HOST_SYSCTLS: Readonly<Record<string, string>> = {
  "net.ipv4.tcp_migrate_req": "1",
};

/** Path of the sysctl drop-in cloud-init writes; systemd-sysctl applies it at every boot. */
export const SYSCTL_DROP_IN = "/etc/sysctl.d/60-mai.conf";

/** Exit status of `cloud-init status --wait` that means done with recoverable warnings. */
export const CLOUD_INIT_DEGRADED = 2;

/**
 * The command the deployment runs (over SSH) before using a new server: waits for cloud-init,
 * fails with cloud-init's status when it failed (exit 1) and otherwise prints the Docker version
 * (Docker answers). Exit 2 is "done, with recoverable warnings" (e.g. deprecated keys): fine.
 */
export function cloudInitWaitCommand(): string {
  return [
    "cloud-init status --wait >/dev/null; rc=$?",
    `if [ $rc -ne 0 ] && [ $rc -ne ${CLOUD_INIT_DEGRADED} ]; then echo "cloud-init failed (exit $rc); see cloud-init status --long and /var/log/cloud-init-output.log" >&2; cloud-init status --long >&2 || true; exit $rc; fi`,
    "docker info --format '{{.ServerVersion}}'",
  ].join("\n");
}

/**
 * Docker daemon defaults. One bridge network per client needs more address pools than Docker's
 * default (31 networks); 172.20.0.0/14 in /24 slices gives 1024. Log rotation applies to every
 * container, so a chatty client cannot fill the disk. live-restore keeps the clients running
 * while an upgrade restarts dockerd.
 */
export const DOCKER_DAEMON_CONFIG = {
  "log-driver": "json-file",
  "log-opts": { "max-size": "10m", "max-file": "5" },
  "default-address-pools": [{ base: "172.20.0.0/14", size: 24 }],
  "live-restore": true,
  // Every container, not only the clients (which set it themselves): no process gains privileges
  // through setuid binaries or file capabilities.
  "no-new-privileges": true,
} as const;

/**
 * Packages from the Ubuntu archive. docker.io (not Docker's own repository) so that security
 * updates arrive through unattended-upgrades like every other package.
 */
export const HOST_PACKAGES = [
  "docker.io",
  "unattended-upgrades",
  "sqlite3",
  "zstd",
  "rsync",
  "curl",
  "jq",
] as const;

const AUTO_UPGRADES = [
  'APT::Periodic::Update-Package-Lists "1";',
  'APT::Periodic::Unattended-Upgrade "1";',
  'APT::Periodic::AutocleanInterval "7";',
  "",
].join("\n");

/** Security upgrades only, no automatic reboot: a reboot restarts every client, so an operator schedules it. */
const UNATTENDED_UPGRADES = [
  "Unattended-Upgrade::Allowed-Origins {",
  '  "${distro_id}:${distro_codename}-security";',
  '  "${distro_id}ESMApps:${distro_codename}-apps-security";',
  '  "${distro_id}ESM:${distro_codename}-infra-security";',
  "};",
  'Unattended-Upgrade::Remove-Unused-Dependencies "true";',
  'Unattended-Upgrade::Automatic-Reboot "false";',
  "",
].join("\n");

/** sshd keeps the first value it reads, so this drop-in sorts before cloud-init's own 50-cloud-init.conf. */
const SSHD_HARDENING = [
  "# Managed by the mai-hosting stack: keys only.",
  "PasswordAuthentication no",
  "KbdInteractiveAuthentication no",
  "PermitRootLogin prohibit-password",
  "",
].join("\n");

/** The sysctl drop-in's content. */
export function renderSysctls(): string {
  return [
    "# Managed by the mai-hosting stack. Caddy runs in the host's network namespace.",
    ...Object.entries(HOST_SYSCTLS).map(([key, value]) => `${key} = ${value}`),
    "",
  ].join("\n");
}

/**
 * Writes the sysctl drop-in and applies it now: servers created before the drop-in was part of
 * their first boot get it this way (their user data is never re-applied).
 */
export function sysctlApplyCommand(): string {
  return [
    "set -eu",
    `cat > ${SYSCTL_DROP_IN}.new <<'MAI_SYSCTL'`,
    renderSysctls().trimEnd(),
    "MAI_SYSCTL",
    `mv -f ${SYSCTL_DROP_IN}.new ${SYSCTL_DROP_IN}`,
    `sysctl -p ${SYSCTL_DROP_IN}`,
  ].join("\n");
}

/** Renders the `#cloud-config` document for the host. Deterministic: same input, same bytes. */
export function renderCloudInit(): string {
  const config = {
    ssh_pwauth: false,
    package_update: true,
    package_upgrade: true,
    packages: [...HOST_PACKAGES],
    write_files: [
      {
        path: "/etc/docker/daemon.json",
        permissions: "0644",
        content: JSON.stringify(DOCKER_DAEMON_CONFIG, null, 2) + "\n",
      },
      { path: "/etc/apt/apt.conf.d/20auto-upgrades", permissions: "0644", content: AUTO_UPGRADES },
      { path: "/etc/apt/apt.conf.d/52mai-unattended-upgrades", permissions: "0644", content: UNATTENDED_UPGRADES },
      { path: "/etc/ssh/sshd_config.d/10-mai.conf", permissions: "0644", content: SSHD_HARDENING },
      { path: SYSCTL_DROP_IN, permissions: "0644", content: renderSysctls() },
      // Before the packages: dockerd's first start already runs the filter (policy/clientFirewall.ts).
      { path: FIREWALL_FILES.script, permissions: "0755", content: renderFirewallScript() },
      { path: FIREWALL_FILES.unit, permissions: "0644", content: renderFirewallUnit() },
      { path: FIREWALL_FILES.dockerDropIn, permissions: "0644", content: renderFirewallDockerDropIn() },
    ],
    runcmd: [
      ["sysctl", "-p", SYSCTL_DROP_IN],
      ["install", "-d", "-m", "0755", HOST_PATHS.caddyDir, HOST_PATHS.etcDir, HOST_PATHS.binDir, HOST_PATHS.stateDir],
      ["install", "-d", "-m", "0750", HOST_PATHS.backupsDir],
      ["systemctl", "daemon-reload"],
      ["systemctl", "enable", "--now", "mai-firewall.service"],
      ["systemctl", "enable", "--now", "docker.service", "unattended-upgrades.service"],
      // daemon.json is written before the package installs, but restart in case Docker was preinstalled.
      ["systemctl", "restart", "docker.service"],
      // Ubuntu starts sshd through socket activation; reload only if it is already running.
      ["systemctl", "try-reload-or-restart", "ssh.service"],
    ],
  };
  return "#cloud-config\n" + stringify(config, { lineWidth: 0 });
}
