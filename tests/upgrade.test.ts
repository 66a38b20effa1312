/**
 * Upgrading the production stack as it was deployed before servers and the host seam existed
 * (commit 2000337) to this program, with that commit's Pulumi.prod.yaml and clients/: the server,
 * its IPs, volumes, networks, DNS and keys stay untouched; the servers map itself changes nothing.
 * Every change there is, is listed exactly below with the reason it is wanted.
 */
import { execFile } from "child_process";
import * as path from "path";
import { promisify } from "util";
import { beforeAll, describe, expect, it } from "vitest";

const ROOT = path.join(__dirname, "..");
/** The last commit before the host seam (the single-server layout). */
const BEFORE_SERVERS = "2000337";

interface Change {
  op: string;
  type: string;
  name: string;
  fields: string[];
  rerun?: boolean;
  protected?: boolean;
}
let changes: Change[];

beforeAll(async () => {
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", path.join(ROOT, "tests", "support", "upgradeDiff.ts"), BEFORE_SERVERS], {
      cwd: ROOT,
      maxBuffer: 32 * 1024 * 1024,
    }));
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? String(error);
    throw new Error(`cannot evaluate commit ${BEFORE_SERVERS} (a shallow clone lacks it: git fetch --unshallow): ${stderr}`);
  }
  changes = (JSON.parse(stdout) as { changes: Change[] }).changes;
}, 120_000);

describe("upgrading the single-server production stack", () => {
  it("creates, replaces and deletes only what the host-network proxy implies", () => {
    const structural = changes.filter((c) => c.op !== "update").map((c) => `${c.op} ${c.type} ${c.name}`);
    expect(structural.sort()).toEqual(
      [
        // Caddy joins the host network: a new container (no ports, no networks, no sysctls of its own).
        "replace docker:index/container:Container proxy-container",
        // The proxy no longer joins client networks.
        "delete command:remote:Command proxy-attach-acme",
        "delete command:remote:Command proxy-attach-mueller-steuerberatung",
        "delete command:remote:Command proxy-attach-nordlicht-design",
        // tcp_migrate_req moves from the container to the host.
        "create command:remote:Command host-sysctl",
        // Client containers reach neither the metadata service nor host services (DOCKER-USER/INPUT).
        "create command:remote:Command host-client-firewall",
        // Every client container gets its pids limit from the host (no provider input for it).
        "create command:remote:Command acme-pids-limit",
        "create command:remote:Command mueller-steuerberatung-pids-limit",
        // The stack-managed environment of the production guide (mai_client_<slug>, Secure/lax
        // session cookies, organisation model access) and the containment of a tenant (no
        // capabilities, no-new-privileges, init, read-only root and backups): every active client restarts once.
        "replace docker:index/container:Container acme-container",
        "replace docker:index/container:Container mueller-steuerberatung-container",
        // A session secret lives as long as its client: the suspended client gets its own now.
        "create random:index/randomPassword:RandomPassword nordlicht-design-webui-secret",
        // Each client's first admin (WEBUI_ADMIN_EMAIL/PASSWORD; ignored by a workspace that has accounts).
        "create random:index/randomPassword:RandomPassword acme-admin-password",
        "create random:index/randomPassword:RandomPassword mueller-steuerberatung-admin-password",
        "create random:index/randomPassword:RandomPassword nordlicht-design-admin-password",
        // Export and import (offboarding, moves) join the host tools, with the library they share.
        "create command:remote:CopyToRemote backup-tooling-mai-export.sh",
        "create command:remote:CopyToRemote backup-tooling-mai-import.sh",
        "create command:remote:CopyToRemote backup-tooling-mai-lib.sh",
        // The operator's view: mai-status, the sampler and the alerts, with their timers.
        "create mai:index:MonitoringTooling monitoring",
        "create command:remote:Command monitoring-staging",
        "create command:remote:Command monitoring-alerts-env",
        "create command:remote:Command monitoring-install",
        "create command:remote:CopyToRemote monitoring-mai-alert",
        "create command:remote:CopyToRemote monitoring-mai-alert.service",
        "create command:remote:CopyToRemote monitoring-mai-alert.timer",
        "create command:remote:CopyToRemote monitoring-mai-sample",
        "create command:remote:CopyToRemote monitoring-mai-sample.service",
        "create command:remote:CopyToRemote monitoring-mai-sample.timer",
        "create command:remote:CopyToRemote monitoring-mai-status",
        "create command:remote:CopyToRemote monitoring-status.env",
      ].sort(),
    );
    const replaced = (name: string) => changes.find((c) => c.op === "replace" && c.name === name)!.fields;
    // The host network, and its own admin socket (a mount, and a health check without the admin port).
    expect(replaced("proxy-container")).toEqual(["healthcheck", "networkMode", "networksAdvanced", "ports", "sysctls", "volumes"]);
    // The environment and the containment: the CPU amount "2" -> "2.0" and the health check's
    // "120s" -> "2m0s" are the same values in the provider's read-back form, so they are no change.
    const containment = ["capabilities", "envs", "init", "readOnly", "securityOpts", "tmpfs", "volumes"];
    expect(replaced("acme-container")).toEqual(containment);
    expect(replaced("mueller-steuerberatung-container")).toEqual(containment);
  });

  it("only re-runs commands in place: the Caddyfile with loopback upstreams, its reload, and the fixed cloud-init wait", () => {
    const updates = changes.filter((c) => c.op === "update").map((c) => `${c.name} ${c.fields.join(",")}${c.rerun ? " (re-run)" : ""}`);
    expect(updates.sort()).toEqual([
      // The OpenRouter API base URL is now a stack setting, handed to the key settings (in place).
      "acme-openrouter-settings apiBaseUrl",
      // The host tools are installed again (new scripts, a usage snapshot after each backup).
      "backup-tooling-backup.env triggers (re-run)",
      "backup-tooling-install create,triggers (re-run)",
      "backup-tooling-mai-backup.sh source,triggers (re-run)",
      "backup-tooling-mai-backup@.service triggers (re-run)",
      "backup-tooling-mai-backup@.timer triggers (re-run)",
      "backup-tooling-mai-restore.sh source,triggers (re-run)",
      "host-cloud-init create",
      "mueller-steuerberatung-openrouter-settings apiBaseUrl",
      "nordlicht-design-openrouter-settings apiBaseUrl",
      "proxy-apply-script source,triggers (re-run)",
      "proxy-caddyfile source,triggers (re-run)",
      // The admin socket's directory is made before the proxy starts.
      "proxy-caddyfile-seed create",
      "proxy-reload triggers (re-run)",
    ]);
  });

  it("never touches the server, its primary IPs, a volume, a client container, a network or a DNS record", () => {
    const untouchable = /^(hcloud:index\/(server|primaryIp|firewall|sshKey)|docker:index\/(volume|network)|cloudflare:|pulumi-nodejs:dynamic\/openrouter:Key$)/;
    expect(changes.filter((c) => untouchable.test(c.type))).toEqual([]);
    const containers = changes.filter((c) => c.type === "docker:index/container:Container" && c.name !== "proxy-container");
    expect(containers.every((c) => c.op === "replace" && c.fields.join() === "capabilities,envs,init,readOnly,securityOpts,tmpfs,volumes")).toBe(true);
    expect(changes.filter((c) => c.protected)).toEqual([]);
  });
});
