import { describe, expect, it } from "vitest";
import { firewallRules, sshKeyName } from "../policy/hostPolicy";
import { dnsRecordsFor, externalHostnames, isInZone } from "../policy/dns";
import { OVERRIDABLE_ENV_DEFAULTS, STACK_ENV, clientAdminsOutput, clientEnvironment, clientLimits, keptAfterFirstStart } from "../policy/clientContainer";
import {
  PROXY_HEALTHCHECK,
  PROXY_NETWORK_MODE,
  caddyfileOptionsFor,
  proxyAdminDir,
  proxyAdminSocket,
  proxyApplyCommand,
  proxyHealthcheck,
  proxySeedCommand,
} from "../policy/proxyPolicy";
import { HOST_PATHS } from "../policy/cloudInit";
import { localHostPaths, localShellPrefix, localWriteFileCommand } from "../policy/localHost";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { lifecycle } from "../policy/lifecycle";
import type { ClientSpec } from "../config/model";

const client = (over: Partial<ClientSpec> = {}): ClientSpec => ({
  slug: "acme",
  file: "clients/acme.yaml",
  name: "Acme",
  admin: "admin@acme.mai.example.net",
  port: 8001,
  hostname: "acme.mai.example.net",
  defaultHostname: "acme.mai.example.net",
  status: "active",
  image: "ghcr.io/mai-hosting/mai:1.4.2",
  resources: { cpus: 2, memoryMb: 4096, reservedCpus: 0.25, reservedMemoryMb: 2048, pidsLimit: 1024 },
  env: {},
  server: "host",
  ...over,
});

describe("firewall", () => {
  it("never opens SSH wider than the admin networks", () => {
    const ssh = firewallRules(["198.51.100.7/32"]).filter((r) => r.port === "22");
    expect(ssh).toEqual([expect.objectContaining({ protocol: "tcp", sourceIps: ["198.51.100.7/32"] })]);
  });
  it("has no rule for client ports", () => {
    expect(firewallRules(["198.51.100.7/32"]).map((r) => r.port).filter(Boolean).sort()).toEqual(["22", "443", "443", "80"]);
  });
});

describe("ssh key names", () => {
  it("use the key comment, sanitised, or a numbered fallback", () => {
    expect(sshKeyName("ssh-ed25519 AAAA ops@example.net", 0)).toBe("mai-ops@example.net");
    expect(sshKeyName("ssh-ed25519 AAAA Jane Doe (laptop)", 0)).toBe("mai-jane-doe-laptop");
    expect(sshKeyName("ssh-ed25519 AAAA", 1)).toBe("mai-admin-2");
  });
});

describe("dns", () => {
  it("records the default name always and a custom name only inside the zone", () => {
    expect(dnsRecordsFor(client(), "mai.example.net").map((r) => `${r.type} ${r.name}`)).toEqual(["A acme.mai.example.net", "AAAA acme.mai.example.net"]);
    const inZone = client({ hostname: "ki.acme.mai.example.net" });
    expect(dnsRecordsFor(inZone, "mai.example.net").map((r) => r.name)).toContain("ki.acme.mai.example.net");
    const outside = client({ hostname: "chat.acme.example" });
    expect(dnsRecordsFor(outside, "mai.example.net").map((r) => r.name)).not.toContain("chat.acme.example");
    expect(externalHostnames([outside], "mai.example.net")).toEqual([{ slug: "acme", hostname: "chat.acme.example", target: "acme.mai.example.net" }]);
  });
  it("does not mistake a look-alike domain for the zone", () => {
    expect(isInZone("evilmai.example.net", "mai.example.net")).toBe(false);
    expect(isInZone("x.mai.example.net", "mai.example.net")).toBe(true);
  });
});

describe("client container", () => {
  it("turns a CPU reservation into CPU shares and pins swap to the memory limit", () => {
    expect(clientLimits(client())).toEqual({ cpus: "2.0", cpuShares: 256, memory: 4096, memorySwap: 4096, memoryReservation: 2048 });
  });
  it("lets stack-managed variables win over the file's env and keeps defaults overridable", () => {
    const env = clientEnvironment(client({ env: { ENABLE_SIGNUP: "true", ENABLE_OLLAMA_API: "true" } }), { openrouterApiKey: "k", webuiSecretKey: "s", adminPassword: "p" });
    expect(env).toContain("ENABLE_SIGNUP=false");
    expect(env).toContain("ENABLE_OLLAMA_API=true");
    expect(env).toEqual([...env].sort());
  });
  it("creates the client's first admin from the e-mail and the generated password, whatever the file's env says", () => {
    const env = clientEnvironment(client({ env: { WEBUI_ADMIN_EMAIL: "intruder@example.com", WEBUI_ADMIN_PASSWORD: "known" } }), {
      openrouterApiKey: "k",
      webuiSecretKey: "s",
      adminPassword: "GeneratedPassword0123456789abcdef",
    });
    expect(env.filter((e) => e.startsWith("WEBUI_ADMIN_"))).toEqual([
      "WEBUI_ADMIN_EMAIL=admin@acme.mai.example.net",
      "WEBUI_ADMIN_PASSWORD=GeneratedPassword0123456789abcdef",
    ]);
  });
  it("says which stack-managed variables a running workspace keeps from its first start", () => {
    expect(keptAfterFirstStart()).toEqual(["ENABLE_SIGNUP", "WEBUI_URL", "OPENAI_API_BASE_URL", "OPENAI_API_KEY", "WEBUI_ADMIN_EMAIL", "WEBUI_ADMIN_PASSWORD"]);
    // Every variable the stack sets is classified, and nothing is classified that it does not set.
    const env = clientEnvironment(client(), { openrouterApiKey: "k", webuiSecretKey: "s", adminPassword: "p" }).map((e) => e.slice(0, e.indexOf("=")));
    expect(Object.keys(STACK_ENV).sort()).toEqual(env.filter((key) => !(key in OVERRIDABLE_ENV_DEFAULTS)).sort());
    // A first-start variable names where Open WebUI stores it (the engine test reads it there).
    for (const [name, spec] of Object.entries(STACK_ENV)) expect(spec.configKey !== undefined, name).toBe(spec.applied === "first start");
  });
  it("shapes clientAdmins as { <slug>: { email, password } }, sorted by slug", () => {
    const output = clientAdminsOutput([
      { slug: "zeta", email: "admin@zeta.example", password: "pz" },
      { slug: "acme", email: "it@acme.example", password: "pa" },
    ]);
    expect(output).toEqual({ acme: { email: "it@acme.example", password: "pa" }, zeta: { email: "admin@zeta.example", password: "pz" } });
    expect(Object.keys(output)).toEqual(["acme", "zeta"]);
  });
});

describe("proxy", () => {
  it("runs on the host network, so no port list and no client network is declared", () => {
    expect(PROXY_NETWORK_MODE).toBe("host");
  });
  it("leaves the public defaults out of a production Caddyfile and binds a local one to the loopback", () => {
    const production = { httpPort: 80, httpsPort: 443, issuer: "acme" as const, adminSocket: proxyAdminSocket(HOST_PATHS) };
    expect(caddyfileOptionsFor(production, "ops@example.net")).toEqual({
      acmeEmail: "ops@example.net",
      adminAddress: "unix//var/lib/mai/caddy-admin/admin.sock",
    });
    const local = { bindAddress: "127.0.0.1", httpPort: 8080, httpsPort: 8443, issuer: "internal" as const, adminSocket: proxyAdminSocket(localHostPaths("/var/tmp/mai")) };
    expect(caddyfileOptionsFor(local, undefined)).toEqual({
      bindAddress: "127.0.0.1",
      adminAddress: "unix//var/tmp/mai/state/caddy-admin/admin.sock",
      httpPort: 8080,
      httpsPort: 8443,
      issuer: "internal",
    });
  });
  it("gives every host's proxy its own admin socket in the host's state directory, never Caddy's shared default", () => {
    expect(proxyAdminDir(HOST_PATHS)).toBe("/var/lib/mai/caddy-admin");
    expect(proxyAdminSocket(localHostPaths("/var/tmp/mai-a"))).not.toBe(proxyAdminSocket(localHostPaths("/var/tmp/mai-b")));
  });
  it("seeds the Caddyfile the proxy boots with: when there is none, and when it predates the proxy's own admin socket", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "mai-seed-"));
    try {
      const paths = localHostPaths(root);
      fs.mkdirSync(paths.caddyDir, { recursive: true });
      const live = path.join(paths.caddyDir, "Caddyfile");
      const next = path.join(paths.caddyDir, "Caddyfile.next");
      const current = `{\n\tadmin unix/${proxyAdminSocket(paths)}\n}\n# new\n`;
      const seed = () => spawnSync("bash", ["-c", proxySeedCommand(paths)], { encoding: "utf8" });
      fs.writeFileSync(next, current);
      // First start: no Caddyfile yet.
      expect(seed().status).toBe(0);
      expect(fs.readFileSync(live, "utf8")).toBe(current);
      expect(fs.statSync(proxyAdminDir(paths)).mode & 0o777).toBe(0o700);
      // A Caddyfile naming the socket stays: later changes go through the validating apply step.
      fs.writeFileSync(live, `{\n\tadmin unix/${proxyAdminSocket(paths)}\n}\n# running\n`);
      expect(seed().status).toBe(0);
      expect(fs.readFileSync(live, "utf8")).toContain("# running");
      // One from before the socket (Caddy's shared default) is replaced, so the proxy starts on its socket.
      fs.writeFileSync(live, "{\n\temail ops@example.com\n}\n# old\n");
      expect(seed().status).toBe(0);
      expect(fs.readFileSync(live, "utf8")).toBe(current);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
  it("checks the proxy's health on the host's own HTTP port, not on an admin port", () => {
    expect(proxyHealthcheck(8080).tests).toEqual(["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/mai-proxy-health || exit 1"]);
    expect(PROXY_HEALTHCHECK).toEqual(proxyHealthcheck(80));
    expect(JSON.stringify(proxyHealthcheck(80))).not.toContain("2019");
  });
  it("reloads through the apply script with the production paths unchanged and a local host's Caddyfile directory", () => {
    expect(proxyApplyCommand(HOST_PATHS, "caddy:2.11.9-alpine")).toBe("CADDY_IMAGE=caddy:2.11.9-alpine bash /usr/local/sbin/mai-caddy-apply");
    expect(proxyApplyCommand(localHostPaths("/var/tmp/mai"), "mai-local/caddy:2.11.9")).toBe(
      "CADDY_HOST_DIR=/var/tmp/mai/caddy CADDY_IMAGE=mai-local/caddy:2.11.9 bash /var/tmp/mai/bin/mai-caddy-apply",
    );
  });
});

describe("lifecycle policy", () => {
  it("protects the server and IPs, retains data, replaces containers delete-first", () => {
    expect(lifecycle.server.protect).toBe(true);
    expect(lifecycle.primaryIp.protect).toBe(true);
    // assigneeType is no longer declared; the IPs' stored value must never plan a change.
    expect(lifecycle.primaryIp.ignoreChanges).toEqual(["assigneeType"]);
    expect(lifecycle.dataVolume.retainOnDelete).toBe(true);
    expect(lifecycle.proxyVolume.retainOnDelete).toBe(true);
    expect(lifecycle.container.deleteBeforeReplace).toBe(true);
  });
});

describe("local host", () => {
  it("keeps every host path under the state directory", () => {
    expect(localHostPaths("/var/tmp/mai")).toEqual({
      caddyDir: "/var/tmp/mai/caddy",
      backupsDir: "/var/tmp/mai/backups",
      etcDir: "/var/tmp/mai/etc",
      binDir: "/var/tmp/mai/bin",
      stateDir: "/var/tmp/mai/state",
    });
  });
  it("writes a file from stdin, creating its directory and replacing it whole", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-local-write-"));
    try {
      const target = path.join(dir, "caddy", "Caddyfile.next");
      for (const content of ["first\n", "second {$HOME}\n"]) {
        const result = spawnSync("bash", ["-c", localWriteFileCommand(target)], { input: content, encoding: "utf8" });
        expect(result.status).toBe(0);
        expect(fs.readFileSync(target, "utf8")).toBe(content);
      }
      expect(fs.readdirSync(path.dirname(target))).toEqual(["Caddyfile.next"]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it("reaches another engine through DOCKER_HOST in its shell prefix", () => {
    expect(localShellPrefix("unix:///var/run/docker.sock")).toBe("bash -c");
    expect(localShellPrefix("unix:///tmp/engine b.sock")).toBe("env DOCKER_HOST='unix:///tmp/engine b.sock' bash -c");
    expect(localShellPrefix("unix:///tmp/b.sock", localHostPaths("/srv/b"))).toBe(
      "env DOCKER_HOST=unix:///tmp/b.sock MAI_STATE_DIR=/srv/b/state MAI_LOCK_DIR=/srv/b/state/lock MAI_EXPORT_ROOT=/srv/b/state/exports MAI_BACKUP_ROOT=/srv/b/backups MAI_CONFIG_DIR=/srv/b/etc bash -c",
    );
  });
});

