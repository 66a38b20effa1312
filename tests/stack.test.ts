/**
 * The whole program under Pulumi's mocks, for a fixture stack of four clients: acme (defaults),
 * globex (custom hostname outside the zone, own image, resources and env), initech (suspended)
 * and umbrella (custom hostname inside the zone); acme and initech have stack-managed OpenRouter
 * keys. Asserts on the inputs each resource receives.
 */
import * as path from "path";
import { beforeAll, describe, expect, it } from "vitest";
import { FIXTURE_API_KEYS, FIXTURE_CONFIG, FIXTURE_PROVISIONING_KEY, FIXTURE_SECRET_KEYS } from "./fixtures/stack/config";
import { DeclaredResource, isSecretValue, MOCK_IPV4, MOCK_IPV6, ProgramRun, publicJson, runProgram } from "./support/programHarness";

const CLIENTS_DIR = path.join(__dirname, "fixtures", "stack", "clients");
let run: ProgramRun;

const ofType = (type: string) => run.resources.filter((r) => r.type === type);
const named = (type: string, name: string): DeclaredResource => {
  const found = run.resources.find((r) => r.type === type && r.name === name);
  if (!found) throw new Error(`no ${type} named ${name}; have: ${ofType(type).map((r) => r.name).join(", ")}`);
  return found;
};
const container = (name: string) => named("docker:index/container:Container", name);

beforeAll(async () => {
  run = await runProgram({ config: FIXTURE_CONFIG, secretKeys: FIXTURE_SECRET_KEYS, clientsDir: CLIENTS_DIR });
});

describe("host", () => {
  it("is a protected, backed-up CCX server in nbg1 whose first-boot-only inputs are ignored later", () => {
    const server = named("hcloud:index/server:Server", "host-server");
    expect(server.inputs).toMatchObject({
      serverType: "ccx33",
      location: "nbg1",
      image: "ubuntu-24.04",
      backups: true,
      deleteProtection: true,
      rebuildProtection: true,
      labels: { "managed-by": "pulumi", stack: "mai-hosting" },
    });
    expect(server.inputs.userData).toMatch(/^#cloud-config\n/);
    expect(server.options.protect).toBe(true);
    expect(server.options.ignoreChanges.sort()).toEqual(["image", "sshKeys", "userData"]);
  });

  it("uses primary IPv4 and IPv6 addresses that outlive the server and are protected", () => {
    const ips = ofType("hcloud:index/primaryIp:PrimaryIp");
    expect(ips.map((ip) => ip.inputs.type).sort()).toEqual(["ipv4", "ipv6"]);
    for (const ip of ips) {
      expect(ip.inputs).toMatchObject({ location: "nbg1", autoDelete: false, deleteProtection: true });
      // The provider wants assigneeType only with assigneeId; the IPs' stored value is ignored.
      expect(ip.inputs).not.toHaveProperty("assigneeType");
      expect(ip.options.protect).toBe(true);
      expect(ip.options.ignoreChanges).toEqual(["assigneeType"]);
    }
    const publicNet = named("hcloud:index/server:Server", "host-server").inputs.publicNets[0];
    expect(publicNet).toMatchObject({ ipv4Enabled: true, ipv6Enabled: true });
    expect(Number.isInteger(publicNet.ipv4) && Number.isInteger(publicNet.ipv6)).toBe(true);
  });

  it("opens SSH to the admin networks only, and the web ports and ICMP to everyone", () => {
    const [firewall] = ofType("hcloud:index/firewall:Firewall");
    const rules = firewall.inputs.rules as { protocol: string; port?: string; sourceIps: string[] }[];
    const anywhere = ["0.0.0.0/0", "::/0"];
    expect(rules.map((r) => `${r.protocol}/${r.port ?? "-"}`).sort()).toEqual(["icmp/-", "tcp/22", "tcp/443", "tcp/80", "udp/443"]);
    expect(rules.find((r) => r.port === "22")!.sourceIps).toEqual(["198.51.100.0/24", "2001:db8:100::/48"]);
    for (const rule of rules.filter((r) => r.port !== "22")) expect(rule.sourceIps).toEqual(anywhere);
    expect(named("hcloud:index/server:Server", "host-server").inputs.firewallIds).toHaveLength(1);
  });

  it("registers each admin SSH key and waits for cloud-init before Docker is used over SSH", () => {
    expect(ofType("hcloud:index/sshKey:SshKey")).toHaveLength(1);
    const wait = named("command:remote:Command", "host-cloud-init");
    expect(wait.inputs.create).toContain("cloud-init status --wait");
    // The command provider marks every connection secret (it may carry a private key).
    expect(isSecretValue(wait.inputs.connection)).toBe(true);
    expect((wait.inputs.connection as { value: unknown }).value).toMatchObject({ host: MOCK_IPV4, user: "root", dialErrorLimit: -1 });
    const provider = named("pulumi:providers:docker", "host-docker");
    expect(provider.inputs.host).toBe(`ssh://root@${MOCK_IPV4}`);
  });
});

describe("mai-network", () => {
  it("exists exactly once, under the single-server name it always had", () => {
    const networks = ofType("docker:index/network:Network").filter((n) => n.inputs.name === "mai-network");
    expect(networks.map((n) => n.name)).toEqual(["mai-network"]);
  });
});

describe("client instances", () => {
  it("declares one container per active client and none for the suspended one", () => {
    const names = ofType("docker:index/container:Container").map((c) => c.inputs.name).sort();
    expect(names).toEqual(["mai-acme", "mai-globex", "mai-proxy", "mai-umbrella"]);
  });

  it("applies the stack defaults to a client that sets nothing", () => {
    expect(container("acme-container").inputs).toMatchObject({
      name: "mai-acme",
      image: "ghcr.io/mai-hosting/mai:1.4.2",
      restart: "unless-stopped",
      cpus: "2.0",
      memory: 4096,
      memorySwap: 4096,
      memoryReservation: 2048,
      cpuShares: 1024,
      logDriver: "json-file",
      logOpts: { "max-size": "10m", "max-file": "5" },
    });
  });

  it("uses the client's own image, limits and reservations", () => {
    expect(container("globex-container").inputs).toMatchObject({
      image: "ghcr.io/mai-hosting/mai:1.5.0-rc1",
      cpus: "1.5",
      memory: 3072,
      memoryReservation: 1536,
      cpuShares: 512,
    });
  });

  it("publishes the app port on 127.0.0.1 only, on the client's port", () => {
    expect(container("acme-container").inputs.ports).toEqual([{ internal: 8080, external: 8001, ip: "127.0.0.1", protocol: "tcp" }]);
    expect(container("umbrella-container").inputs.ports).toEqual([{ internal: 8080, external: 8004, ip: "127.0.0.1", protocol: "tcp" }]);
  });

  it("mounts the data volume and the backups directory (read-only), and joins only its own network", () => {
    const inputs = container("acme-container").inputs;
    expect(inputs.volumes).toEqual([
      { volumeName: "mai-acme-data", containerPath: "/app/backend/data" },
      { hostPath: "/srv/mai/backups/acme", containerPath: "/app/backups", readOnly: true },
    ]);
    expect(inputs.networksAdvanced).toEqual([{ name: "mai-acme" }]);
  });

  it("confines every client container: no capabilities, no-new-privileges, an init process, a read-only root", () => {
    const containers = ofType("docker:index/container:Container").filter((c) => !c.name.startsWith("proxy"));
    expect(containers.map((c) => c.name).sort()).toEqual(["acme-container", "globex-container", "umbrella-container"]);
    for (const c of containers) {
      expect(c.inputs).toMatchObject({
        init: true,
        securityOpts: ["no-new-privileges:true"],
        capabilities: { drops: ["ALL"], adds: [] },
        readOnly: true,
        tmpfs: { "/tmp": "rw,noexec,nosuid,nodev" },
      });
    }
  });

  it("gives every client container its pids limit on the host, again whenever the container is replaced", () => {
    const limits = ofType("command:remote:Command").filter((c) => c.name.endsWith("-pids-limit"));
    expect(limits.map((c) => c.name).sort()).toEqual(["acme-pids-limit", "globex-pids-limit", "umbrella-pids-limit"]);
    const acme = named("command:remote:Command", "acme-pids-limit");
    // The stack default (1024) for acme; globex's file sets its own. The container by name: an
    // id would be unknown in a preview of every container update and show a needless re-run.
    expect(acme.inputs.create).toContain("docker update --pids-limit 1024 mai-acme");
    expect(acme.inputs.triggers).toBeUndefined();
    expect(named("command:remote:Command", "globex-pids-limit").inputs.create).toContain("docker update --pids-limit 512 mai-globex");
    expect(acme.options.dependsOn.some((urn) => urn.endsWith("::acme-container"))).toBe(true);
    expect(acme.options.replaceWith).toHaveLength(1);
    expect(acme.options.replaceWith[0]).toMatch(/docker:index\/container:Container::acme-container$/);
  });

  it("checks health on /health inside the container", () => {
    expect(container("acme-container").inputs.healthcheck).toMatchObject({
      tests: ["CMD-SHELL", "curl -fsS http://localhost:8080/health || exit 1"],
    });
  });

  it("passes the environment as a secret, sorted, with stack-managed values and the file's env", () => {
    const envs = container("globex-container").inputs.envs;
    expect(isSecretValue(envs)).toBe(true);
    const list = (envs as { value: string[] }).value;
    expect(list).toEqual([...list].sort());
    const env = Object.fromEntries(list.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
    expect(env).toMatchObject({
      WEBUI_NAME: 'mAI - Globex "Research" {Labs}',
      ORGANIZATION_NAME: 'Globex "Research" {Labs}',
      ENABLE_SIGNUP: "false",
      ENV: "prod",
      WEBUI_URL: "https://chat.globex.example",
      OPENAI_API_BASE_URL: "https://openrouter.ai/api/v1",
      OPENAI_API_KEY: FIXTURE_API_KEYS.globex,
      OPENROUTER_EXTERNAL_USER: "mai_client_globex",
      WEBUI_SESSION_COOKIE_SECURE: "true",
      WEBUI_SESSION_COOKIE_SAME_SITE: "lax",
      // The file overrides one organisation model access default and keeps the other.
      ENABLE_MODEL_FILTER: "false",
      BYPASS_MODEL_ACCESS_CONTROL: "false",
      DEFAULT_LOCALE: "de-DE",
      // The file's admin, created by Open WebUI at its first start.
      WEBUI_ADMIN_EMAIL: "it-admin@globex.example",
    });
    expect(env.WEBUI_SECRET_KEY).toMatch(/^placeholder-password-/);
    expect(env.WEBUI_ADMIN_PASSWORD).toMatch(/^placeholder-password-/);
    expect(env.WEBUI_ADMIN_PASSWORD).not.toBe(env.WEBUI_SECRET_KEY);
  });

  it("creates the first admin of a client without `admin` as admin@<slug>.<domain>", () => {
    const list = (container("acme-container").inputs.envs as { value: string[] }).value;
    expect(list).toContain("WEBUI_ADMIN_EMAIL=admin@acme.mai.example.net");
    expect(list.filter((e) => e.startsWith("WEBUI_ADMIN_PASSWORD="))).toHaveLength(1);
  });

  it("gives a client that sets no env the guides' organisation model access defaults", () => {
    const list = (container("acme-container").inputs.envs as { value: string[] }).value;
    expect(list).toEqual(expect.arrayContaining(["ENABLE_MODEL_FILTER=true", "BYPASS_MODEL_ACCESS_CONTROL=false", "OPENROUTER_EXTERNAL_USER=mai_client_acme"]));
  });

  it("keeps one WEBUI_SECRET_KEY and one admin password per client, suspended ones included, so resuming keeps every session", () => {
    const passwords = ofType("random:index/randomPassword:RandomPassword").map((p) => p.name).sort();
    expect(passwords).toEqual(
      ["acme", "globex", "initech", "umbrella"].flatMap((slug) => [`${slug}-admin-password`, `${slug}-webui-secret`]).sort(),
    );
    // 32 letters and digits: no quoting trouble in an environment variable, far below bcrypt's 72 bytes.
    expect(named("random:index/randomPassword:RandomPassword", "acme-admin-password").inputs).toMatchObject({ length: 32, special: false });
    expect(named("random:index/randomPassword:RandomPassword", "initech-admin-password").options.parent).toContain("ClientInstance::initech");
    // Same name and parent as while active: suspending and resuming keeps the same resource.
    expect(named("random:index/randomPassword:RandomPassword", "initech-webui-secret").options.parent).toContain("ClientInstance::initech");
  });

  it("never shows a secret outside a secret-marked value", () => {
    const visible = publicJson(run.resources.map((r) => r.inputs));
    for (const key of [...Object.values(FIXTURE_API_KEYS), FIXTURE_PROVISIONING_KEY]) expect(visible).not.toContain(key);
    expect(visible).not.toContain("placeholder-password-");
    expect(visible).not.toContain("placeholder-key-");
  });

  it("creates a managed OpenRouter key with the client's monthly limit and wires it into the container", () => {
    const key = named("pulumi-nodejs:dynamic/openrouter:Key", "acme-openrouter");
    expect(key.inputs.name).toBe("mai-hosting/test/acme");
    expect(isSecretValue(key.inputs.provisioningKey)).toBe(true);
    const settings = named("pulumi-nodejs:dynamic/openrouter:KeySettings", "acme-openrouter-settings");
    expect(settings.inputs).toMatchObject({ limitUsd: 250, disabled: false });
    const env = (container("acme-container").inputs.envs as { value: string[] }).value;
    expect(env.find((e) => e.startsWith("OPENAI_API_KEY="))).toMatch(/^OPENAI_API_KEY=placeholder-key-/);
  });

  it("disables the managed key of a suspended client instead of deleting it", () => {
    expect(named("pulumi-nodejs:dynamic/openrouter:KeySettings", "initech-openrouter-settings").inputs).toMatchObject({ disabled: true, limitUsd: 100 });
  });

  it("keeps volume, network and DNS of a suspended client", () => {
    expect(named("docker:index/volume:Volume", "initech-data").inputs.name).toBe("mai-initech-data");
    expect(named("docker:index/network:Network", "initech-network").inputs.name).toBe("mai-initech");
    expect(named("cloudflare:index/dnsRecord:DnsRecord", "initech-dns-a").inputs.content).toBe(MOCK_IPV4);
  });

  it("retains every client data volume when the client or the stack goes away", () => {
    const volumes = ofType("docker:index/volume:Volume").filter((v) => v.name.endsWith("-data") && !v.name.startsWith("proxy-"));
    expect(volumes.map((v) => v.inputs.name).sort()).toEqual(["mai-acme-data", "mai-globex-data", "mai-initech-data", "mai-umbrella-data"]);
    for (const volume of volumes) expect(volume.options.retainOnDelete).toBe(true);
  });

  it("replaces containers delete-first so fixed names and ports never collide", () => {
    for (const c of ofType("docker:index/container:Container")) expect(c.options.deleteBeforeReplace).toBe(true);
  });

  it("replaces a container whose memory reservation, health check, init or tmpfs changes (the provider's update never sends them)", () => {
    for (const c of ofType("docker:index/container:Container")) {
      expect(c.options.replaceOnChanges.sort()).toEqual(["healthcheck", "init", "memoryReservation", "tmpfs"]);
    }
  });
});

describe("backups", () => {
  it("installs the host tooling once with the stack's retention", () => {
    expect(ofType("mai:index:BackupTooling")).toHaveLength(1);
    const envUpload = ofType("command:remote:CopyToRemote").find((c) => c.name.startsWith("backup-tooling") && /backup\.env/.test(c.inputs.remotePath));
    expect(envUpload).toBeDefined();
  });

  it("enables a nightly timer for every client, suspended ones included", () => {
    const timers = ofType("command:remote:Command").filter((c) => c.name.endsWith("-backup-timer")).map((c) => c.name).sort();
    expect(timers).toEqual(["acme-backup-timer", "globex-backup-timer", "initech-backup-timer", "umbrella-backup-timer"]);
    expect(named("command:remote:Command", "acme-backup-timer").inputs.create).toContain("mai-backup@acme.timer");
  });
});

describe("DNS", () => {
  const records = () =>
    ofType("cloudflare:index/dnsRecord:DnsRecord").map((r) => `${r.inputs.type} ${r.inputs.name} ${r.inputs.content}`).sort();

  it("points A and AAAA of <slug>.<domain> at the server, and in-zone custom hostnames too", () => {
    expect(records()).toEqual(
      [
        `A acme.mai.example.net ${MOCK_IPV4}`,
        `AAAA acme.mai.example.net ${MOCK_IPV6}`,
        `A globex.mai.example.net ${MOCK_IPV4}`,
        `AAAA globex.mai.example.net ${MOCK_IPV6}`,
        `A initech.mai.example.net ${MOCK_IPV4}`,
        `AAAA initech.mai.example.net ${MOCK_IPV6}`,
        `A umbrella.mai.example.net ${MOCK_IPV4}`,
        `AAAA umbrella.mai.example.net ${MOCK_IPV6}`,
        `A ki.umbrella.mai.example.net ${MOCK_IPV4}`,
        `AAAA ki.umbrella.mai.example.net ${MOCK_IPV6}`,
      ].sort(),
    );
  });

  it("uses the stack's zone, DNS only (Caddy terminates TLS)", () => {
    for (const r of ofType("cloudflare:index/dnsRecord:DnsRecord")) {
      expect(r.inputs).toMatchObject({ zoneId: "0123456789abcdef0123456789abcdef", proxied: false, ttl: 300 });
    }
  });
});

describe("proxy", () => {
  // An asset's text reaches the mock as a promise.
  const caddyfile = () => named("command:remote:CopyToRemote", "proxy-caddyfile").inputs.source.text as Promise<string>;

  it("runs the pinned Caddy image on the host network: no port list, no network memberships", () => {
    const image = named("docker:index/remoteImage:RemoteImage", "proxy-image");
    expect(image.inputs.name).toMatch(/^caddy:2\.\d+\.\d+-alpine$/);
    const inputs = container("proxy-container").inputs;
    expect(inputs.networkMode).toBe("host");
    expect(inputs).not.toHaveProperty("ports");
    expect(inputs).not.toHaveProperty("networksAdvanced");
  });

  it("keeps its certificate storage on a volume retained on delete", () => {
    const data = named("docker:index/volume:Volume", "proxy-data");
    expect(data.options.retainOnDelete).toBe(true);
    expect(container("proxy-container").inputs.volumes).toContainEqual({ volumeName: "mai-caddy-data", containerPath: "/data" });
  });

  it("migrates queued connections to the new listener on reload: a host sysctl, since Caddy shares the host's network", () => {
    expect(container("proxy-container").inputs).not.toHaveProperty("sysctls");
    const sysctl = named("command:remote:Command", "host-sysctl");
    expect(sysctl.inputs.create).toContain("net.ipv4.tcp_migrate_req = 1");
    expect(sysctl.inputs.create).toContain("sysctl -p /etc/sysctl.d/60-mai.conf");
    expect(named("hcloud:index/server:Server", "host-server").inputs.userData).toContain("/etc/sysctl.d/60-mai.conf");
  });

  it("mounts the Caddyfile directory, not the file", () => {
    expect(container("proxy-container").inputs.volumes).toContainEqual({ hostPath: "/opt/mai/caddy", containerPath: "/etc/caddy", readOnly: true });
  });

  it("has its own admin socket, mounted at the same path, and a health check on its HTTP port", async () => {
    expect(container("proxy-container").inputs.volumes).toContainEqual({ hostPath: "/var/lib/mai/caddy-admin", containerPath: "/var/lib/mai/caddy-admin" });
    expect(await caddyfile()).toContain("\tadmin unix//var/lib/mai/caddy-admin/admin.sock\n");
    expect(container("proxy-container").inputs.healthcheck.tests).toEqual(["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:80/mai-proxy-health || exit 1"]);
    expect(named("command:remote:Command", "proxy-caddyfile-seed").inputs.create).toMatch(/^install -d -m 0700 \/var\/lib\/mai\/caddy-admin && .*admin unix\/\/var\/lib\/mai\/caddy-admin\/admin\.sock/);
  });

  it("keeps client containers from the metadata service and host services: the filter is installed on the server", () => {
    const install = named("command:remote:Command", "host-client-firewall");
    expect(install.inputs.create).toContain("-A MAI-CLIENT-FORWARD -i br-+ -d 169.254.0.0/16 -j DROP");
    expect(install.inputs.create).toContain("systemctl restart mai-firewall.service");
    expect(install.inputs.triggers).toHaveLength(1);
    const userData = named("hcloud:index/server:Server", "host-server").inputs.userData as string;
    expect(userData).toContain("/usr/local/sbin/mai-firewall");
    expect(userData).toContain('"no-new-privileges": true');
  });

  it("renders a site per active client, a 503 page for the suspended one and no secret", async () => {
    const text = await caddyfile();
    for (const host of ["acme.mai.example.net", "chat.globex.example", "ki.umbrella.mai.example.net"]) expect(text).toContain(host);
    // Caddy reaches each client on its loopback port (acme publishes 8080 on 127.0.0.1:8001).
    expect(text).toContain("reverse_proxy 127.0.0.1:8001 {");
    expect(text).not.toContain("127.0.0.1:8003");
    expect(text).toMatch(/initech\.mai\.example\.net[\s\S]*503/);
    for (const key of Object.values(FIXTURE_API_KEYS)) expect(text).not.toContain(key);
  });

  it("reloads Caddy through the apply script whenever the uploaded content changes", () => {
    const upload = named("command:remote:CopyToRemote", "proxy-caddyfile");
    const reload = named("command:remote:Command", "proxy-reload");
    expect(upload.inputs.remotePath).toBe("/opt/mai/caddy/Caddyfile.next");
    expect(reload.inputs.create).toMatch(/^CADDY_IMAGE=caddy:2\.\d+\.\d+-alpine bash \/usr\/local\/sbin\/mai-caddy-apply$/);
    // Same content hash in both: the upload and the reload re-run together (pulumi-command#151).
    expect(reload.inputs.triggers[0]).toBe(upload.inputs.triggers[0]);
    expect(reload.inputs.triggers[0]).toMatch(/^[0-9a-f]{16}$/);
  });

  it("joins no client network (nothing imperative to lose on a restart)", () => {
    const commands = [...ofType("command:remote:Command"), ...ofType("command:remote:CopyToRemote")];
    expect(commands.filter((c) => /network connect/.test(JSON.stringify(c.inputs)))).toEqual([]);
    expect(commands.map((c) => c.name).filter((name) => name.startsWith("proxy-"))).toEqual(
      expect.arrayContaining(["proxy-caddyfile", "proxy-apply-script", "proxy-caddyfile-seed", "proxy-reload"]),
    );
    expect(commands.filter((c) => c.name.startsWith("proxy-"))).toHaveLength(4);
  });
});

describe("stack outputs", () => {
  it("exports the server IPs and each client's URL, port, container and status", () => {
    expect(run.outputs.serverIpv4).toBe(MOCK_IPV4);
    expect(run.outputs.serverIpv6).toBe(MOCK_IPV6);
    expect(run.outputs.clientEndpoints).toMatchObject({
      acme: { url: "https://acme.mai.example.net", port: 8001, container: "mai-acme", status: "active" },
      globex: { url: "https://chat.globex.example", port: 8002, container: "mai-globex", status: "active" },
      initech: { url: "https://initech.mai.example.net", port: 8003, container: "mai-initech", status: "suspended" },
    });
  });
});

describe("clientAdmins", () => {
  it("gives each client's admin e-mail and generated password, suspended clients included", () => {
    const password = () => expect.stringMatching(/^placeholder-password-/) as unknown as string;
    expect(run.outputs.clientAdmins).toEqual({
      acme: { email: "admin@acme.mai.example.net", password: password() },
      globex: { email: "it-admin@globex.example", password: password() },
      initech: { email: "admin@initech.mai.example.net", password: password() },
      umbrella: { email: "admin@umbrella.mai.example.net", password: password() },
    });
  });

  it("hands over the very password the container gets", () => {
    const admins = run.outputs.clientAdmins as Record<string, { password: string }>;
    const list = (container("globex-container").inputs.envs as { value: string[] }).value;
    expect(list).toContain(`WEBUI_ADMIN_PASSWORD=${admins.globex.password}`);
    expect(admins.globex.password).not.toBe(admins.acme.password);
  });

  it("is a secret output, and no password shows outside a secret-marked value", async () => {
    const program = await import("../index");
    expect(await (program.clientAdmins as unknown as { isSecret: Promise<boolean> }).isSecret).toBe(true);
    const admins = run.outputs.clientAdmins as Record<string, { password: string }>;
    const visible = publicJson(run.resources.map((r) => r.inputs));
    for (const { password } of Object.values(admins)) expect(visible).not.toContain(password);
  });
});

describe("names shared between clients", () => {
  it("lists every shared Docker object the program declares, and no slug can take one of their names", async () => {
    const { SHARED_NAMES, reservedSlugs } = await import("../policy/sharedNames");
    const { slugProblem } = await import("../config/clientFile");
    const kinds: Record<string, "container" | "network" | "volume"> = {
      "docker:index/container:Container": "container",
      "docker:index/network:Network": "network",
      "docker:index/volume:Volume": "volume",
    };
    const ownedByClient = (r: DeclaredResource) => r.options.parent.includes("mai:index:ClientInstance::");
    const shared = run.resources.filter((r) => kinds[r.type] !== undefined && !ownedByClient(r));
    expect(shared.length).toBeGreaterThanOrEqual(4);
    for (const resource of shared) expect(SHARED_NAMES[kinds[resource.type]]).toContain(resource.inputs.name);

    // Host paths the shared containers mount are shared too.
    for (const resource of shared.filter((r) => kinds[r.type] === "container")) {
      for (const mount of (resource.inputs.volumes as { hostPath?: string }[] | undefined) ?? []) {
        if (mount.hostPath) expect(SHARED_NAMES.hostPath).toContain(mount.hostPath);
      }
    }

    const reserved = reservedSlugs();
    expect(reserved.map((r) => `${r.kind}:${r.slug}`).sort()).toEqual(["container:proxy", "network:network", "volume:caddy"]);
    for (const { slug } of reserved) expect(slugProblem(slug)).toMatch(/is reserved/);
  });
});
