/**
 * The operator's view, pure parts: parsing mai-status and mai-sample output, holding the live
 * state against the client files, the advice maths, and the monitoring tooling's install plan.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import type { ClientSpec, ResourceSpec, StackSettings } from "../config/model";
import { assessCapacity } from "../policy/capacity";
import {
  ADVICE_RULES,
  additionalDefaultClients,
  buildAdvice,
  parseSampleSummary,
  renderAdvice,
  resourcesBlock,
  roundUpTo,
  suggestResources,
} from "../policy/advice";
import { MONITORING_HOST_FILES, MONITORING_PATHS, planMonitoring, renderAlertsEnv } from "../policy/monitoringPlan";
import { buildStatusReport, parseHostStatus, renderStatus, type ExpectedClient, type HostStatus } from "../policy/status";

const REPO = path.join(__dirname, "..");
const MiB = 1048576;

function container(slug: string, overrides: Record<string, unknown> = {}) {
  return {
    name: `mai-${slug}`,
    id: "0123456789ab",
    slug,
    role: "client",
    image: "img:1",
    state: "running",
    health: "healthy",
    restartCount: 0,
    oomKilled: false,
    oomKills: 0,
    exitCode: 0,
    startedAt: "2026-11-20T10:00:00Z",
    finishedAt: null,
    uptimeSeconds: 3600,
    cpuPercent: 12.5,
    memoryBytes: 700 * MiB,
    memoryLimitBytes: 4096 * MiB,
    memoryReservationBytes: 2048 * MiB,
    cpuLimit: 2,
    cpuShares: 1024,
    ...overrides,
  };
}

function clientEntry(slug: string, live: ReturnType<typeof container> | null, extra: Record<string, unknown> = {}) {
  return {
    slug,
    container: live,
    containers: live ? 1 : 0,
    volume: { name: `mai-${slug}-data`, createdAt: "2026-11-01T00:00:00Z", sizeBytes: 50 * MiB },
    backup: {
      timerEnabled: true,
      lastRun: { time: "2026-11-24T01:30:00Z", result: "ok", exitCode: 0, file: `${slug}-20261124T013000Z.db.zst`, sizeBytes: 1000, message: "" },
      lastGood: { time: "2026-11-24T01:30:00Z", file: `${slug}-20261124T013000Z.db.zst`, sizeBytes: 1000 },
      ageHours: 5.5,
    },
    ...extra,
  };
}

function hostDocument(overrides: Partial<Record<keyof HostStatus, unknown>> = {}): Record<string, unknown> {
  return {
    schema: 1,
    generatedAt: "2026-11-24T07:00:00Z",
    host: {
      hostname: "mai-host",
      cpus: 32,
      load: [1.5, 1.2, 1.0],
      memory: { totalBytes: 128 * 1024 * MiB, availableBytes: 100 * 1024 * MiB },
      disks: [{ filesystem: "/dev/sda1", mount: "/", sizeBytes: 1000, usedBytes: 400, availableBytes: 600, usedPercent: 40 }],
      docker: { running: true, version: "24.0.7" },
    },
    proxy: container("proxy", { slug: null, role: "proxy", name: "mai-caddy" }),
    clients: [clientEntry("acme", container("acme")), clientEntry("globex", null)],
    certificates: {
      source: "caddy",
      list: [
        { hostname: "acme.mai-hosting.eu", issuer: "acme-v02.api.letsencrypt.org-directory", notAfter: "2027-01-20T00:00:00Z", daysLeft: 57.3, internal: false },
        { hostname: "chat.acme.example", issuer: "acme-v02.api.letsencrypt.org-directory", notAfter: "2027-01-01T00:00:00Z", daysLeft: 38.1, internal: false },
      ],
    },
    thresholds: { diskPercent: 85, backupMaxAgeHours: 26, certificateDays: 14, restartCount: 3, restartWindowMinutes: 15 },
    conditions: [],
    healthy: true,
    ...overrides,
  };
}

const EXPECTED: ExpectedClient[] = [
  { slug: "acme", status: "active", server: "mai-host", hostnames: ["chat.acme.example", "acme.mai-hosting.eu"] },
  { slug: "globex", status: "suspended", server: "mai-host", hostnames: ["globex.mai-hosting.eu"] },
];
const NOW = new Date("2026-11-24T07:00:00Z");

function report(doc: Record<string, unknown>, expected = EXPECTED) {
  return buildStatusReport([{ server: "mai-host", status: parseHostStatus(JSON.stringify(doc), "mai-host") }], expected, NOW);
}

describe("parseHostStatus", () => {
  it("accepts a mai-status document", () => {
    const parsed = parseHostStatus(JSON.stringify(hostDocument()), "mai-host");
    expect(parsed.clients.map((c) => c.slug)).toEqual(["acme", "globex"]);
    expect(parsed.proxy?.name).toBe("mai-caddy");
  });

  it("names the server and the first wrong field, never the whole text", () => {
    expect(() => parseHostStatus("Permission denied (publickey).", "nbg1-a")).toThrow(/^nbg1-a: mai-status did not print JSON \(starts with "Permission denied/);
    const wrong = hostDocument();
    (wrong.host as Record<string, unknown>).cpus = "many";
    expect(() => parseHostStatus(JSON.stringify(wrong), "nbg1-a")).toThrow(/^nbg1-a: unexpected mai-status document at host\.cpus:/);
    expect(() => parseHostStatus(JSON.stringify({ ...hostDocument(), schema: 2 }), "x")).toThrow(/at schema/);
  });
});

describe("buildStatusReport", () => {
  it("is healthy when every active client runs, the suspended one has no container and no condition is set", () => {
    const r = report(hostDocument());
    expect(r.healthy).toBe(true);
    expect(r.differences).toEqual([]);
    const acme = r.clients.find((c) => c.slug === "acme")!;
    expect(acme).toMatchObject({
      state: "running",
      expected: "active",
      health: "healthy",
      restarts: 0,
      cpuPercent: 12.5,
      memoryBytes: 700 * MiB,
      memoryLimitBytes: 4096 * MiB,
      volumeBytes: 50 * MiB,
      backup: { lastGoodTime: "2026-11-24T01:30:00Z", lastRunResult: "ok", ageHours: 5.5, lastGoodBytes: 1000 },
      // The fewer days of its two hostnames.
      certificateDays: 38.1,
      problems: [],
    });
    expect(r.clients.find((c) => c.slug === "globex")!.state).toBe("suspended");
    expect(r.servers[0]).toMatchObject({ reachable: true, diskUsedPercent: 40, memoryUsedBytes: 28 * 1024 * MiB, proxy: { state: "running", health: "healthy" } });
  });

  it("reports a missing container, a running suspended client and an unknown container as differences", () => {
    const doc = hostDocument({
      clients: [clientEntry("acme", null), clientEntry("globex", container("globex")), clientEntry("stray", container("stray"))],
    });
    const r = report(doc);
    expect(r.healthy).toBe(false);
    const states = Object.fromEntries(r.clients.map((c) => [c.slug, [c.state, c.expected]]));
    expect(states).toEqual({ acme: ["missing", "active"], globex: ["suspended", "suspended"], stray: ["unknown", "not in files"] });
    expect(r.differences).toEqual([
      "acme is active in its file but has no container on mai-host; run pulumi up",
      "globex is suspended in its file but container mai-globex exists (running); run pulumi up",
      'mai-host: container mai-stray exists but no client file names "stray" (shown, not touched)',
    ]);
  });

  it("shows a removed client's kept data volume without calling it a problem", () => {
    const r = report(hostDocument({ clients: [clientEntry("acme", container("acme")), clientEntry("globex", null), clientEntry("gone", null)] }));
    expect(r.clients.find((c) => c.slug === "gone")).toMatchObject({ state: "removed", expected: "not in files", problems: [] });
    expect(r.healthy).toBe(true);
  });

  it("puts client conditions on the client and the rest on the server", () => {
    const conditions = [
      { key: "unhealthy:acme", condition: "unhealthy", subject: "acme", message: "mai-acme fails its health check" },
      { key: "backup-stale:globex", condition: "backup-stale", subject: "globex", message: "last good backup of globex is 30 h old" },
      { key: "disk:/", condition: "disk-full", subject: "/", message: "disk / is 91 % full" },
      { key: "proxy-down", condition: "proxy-down", subject: "mai-caddy", message: "proxy mai-caddy is exited" },
    ];
    const r = report(hostDocument({ conditions, healthy: false }));
    expect(r.healthy).toBe(false);
    expect(r.clients.find((c) => c.slug === "acme")!.problems).toEqual(["mai-acme fails its health check"]);
    expect(r.clients.find((c) => c.slug === "globex")!.problems).toEqual(["last good backup of globex is 30 h old"]);
    expect(r.servers[0].problems).toEqual(["disk / is 91 % full", "proxy mai-caddy is exited"]);
  });

  it("keeps the clients of an unreachable server visible and unhealthy", () => {
    const r = buildStatusReport([{ server: "mai-host", error: "ssh: connect to host 203.0.113.7 port 22: Connection timed out" }], EXPECTED, NOW);
    expect(r.healthy).toBe(false);
    expect(r.servers[0]).toMatchObject({ reachable: false });
    expect(r.clients.map((c) => [c.slug, c.state])).toEqual([
      ["acme", "unreachable"],
      ["globex", "unreachable"],
    ]);
  });

  it("says internal for certificates of the local CA and n/a when there is none yet", () => {
    const doc = hostDocument({
      certificates: { source: "caddy", list: [{ hostname: "acme.localhost", issuer: "local", notAfter: "2026-11-24T19:00:00Z", daysLeft: 0.5, internal: true }] },
    });
    const r = report(doc, [
      { slug: "acme", status: "active", server: "mai-host", hostnames: ["acme.localhost"] },
      { slug: "globex", status: "suspended", server: "mai-host", hostnames: ["globex.localhost"] },
    ]);
    expect(r.clients.map((c) => c.certificateDays)).toEqual(["internal", null]);
    const text = renderStatus(r);
    expect(text).toMatch(/acme\s+mai-host\s+running\s+healthy\s+0\s+0\s+1h0m\s+12\.5%\s+700M\/4G\s+50M\s+2026-11-24 01:30 0M 5\.5h ago\s+internal/);
    expect(text).toMatch(/globex\s+mai-host\s+suspended .* n\/a$/m);
  });

  it("lists every problem under the tables and says NOT healthy", () => {
    const r = report(hostDocument({ clients: [clientEntry("acme", container("acme", { state: "restarting", restartCount: 7, health: "unhealthy" })), clientEntry("globex", null)] }));
    expect(r.clients[0].state).toBe("restarting");
    const withProblem = buildStatusReport(
      [{ server: "mai-host", status: parseHostStatus(JSON.stringify(hostDocument({ clients: [clientEntry("acme", null), clientEntry("globex", null)] })), "mai-host") }],
      EXPECTED,
      NOW,
    );
    const text = renderStatus(withProblem);
    expect(text.split("\n")[0]).toBe("Status as of 2026-11-24 07:00:00 UTC: NOT healthy: 1 problem");
    expect(text).toContain("  - acme: acme is active in its file but has no container on mai-host; run pulumi up");
  });
});

// ---------------------------------------------------------------------------------------------

const SETTINGS: StackSettings = {
  domain: "mai-hosting.eu",
  cloudflareZoneId: "0".repeat(32),
  defaultServer: "host",
  servers: [{ name: "host", kind: "hetzner", serverType: "ccx33", location: "nbg1" }],
  serverType: "ccx33", // 8 vCPU, 32 GB
  location: "nbg1",
  serverImage: "ubuntu-24.04",
  sshPublicKeys: [],
  adminCidrs: [],
  defaultImage: "img:1",
  defaultResources: { cpus: 2, memoryMb: 4096, reservedCpus: 1, reservedMemoryMb: 2048, pidsLimit: 1024 },
  hostReserve: { cpus: 2, memoryMb: 4096 },
  acmeEmail: "ops@mai-hosting.eu",
  proxyImage: "caddy:2",
  backupRetentionDays: 30,
};

function spec(slug: string, resources: ResourceSpec = SETTINGS.defaultResources, status: "active" | "suspended" = "active"): ClientSpec {
  return {
    slug,
    server: "host",
    file: `clients/${slug}.yaml`,
    name: slug,
    admin: `admin@${slug}.mai-hosting.eu`,
    port: 3000,
    hostname: `${slug}.mai-hosting.eu`,
    defaultHostname: `${slug}.mai-hosting.eu`,
    status,
    image: "img:1",
    resources: { pidsLimit: SETTINGS.defaultResources.pidsLimit, ...resources },
    env: {},
  };
}

function summaryEntry(slug: string, samples: number, cpuP95: number, cpuMax: number, memP95Mb: number, memMaxMb: number) {
  return {
    slug,
    samples,
    first: "2026-11-10T07:00:00Z",
    last: "2026-11-24T07:00:00Z",
    cpuPercent: { p95: cpuP95, max: cpuMax },
    memoryBytes: { p95: memP95Mb * MiB, max: memMaxMb * MiB },
    memoryLimitBytes: 4096 * MiB,
  };
}

describe("advice maths", () => {
  it("rounds up to steps without float noise", () => {
    expect(roundUpTo(0.3 * 3, 0.25)).toBe(1);
    expect(roundUpTo(0.9, 0.25)).toBe(1);
    expect(roundUpTo(1, 0.25)).toBe(1);
    expect(roundUpTo(1.01, 0.25)).toBe(1.25);
    expect(roundUpTo(1300, 256)).toBe(1536);
    expect(roundUpTo(1024, 256)).toBe(1024);
  });

  it("suggests limit = max x 1.3 and reservation = p95 for memory, limit = p95 x 1.5 and reservation = p95 for CPU", () => {
    // Memory max 1000M x 1.3 = 1300M -> 1536M; p95 700M -> 768M. CPU p95 0.9 x 1.5 = 1.35 -> 1.5; reservation 0.9 -> 1.
    expect(suggestResources({ cpuP95: 0.9, cpuMax: 1.8, memoryP95Mb: 700, memoryMaxMb: 1000 })).toEqual({
      cpus: 1.5,
      memoryMb: 1536,
      reservedCpus: 1,
      reservedMemoryMb: 768,
    });
  });

  it("never goes below the minimums, and reservations never exceed limits", () => {
    expect(suggestResources({ cpuP95: 0.01, cpuMax: 0.02, memoryP95Mb: 40, memoryMaxMb: 60 })).toEqual({
      cpus: ADVICE_RULES.minCpus,
      memoryMb: 512,
      reservedCpus: ADVICE_RULES.minCpus,
      reservedMemoryMb: 256,
    });
    const s = suggestResources({ cpuP95: 3, cpuMax: 3, memoryP95Mb: 5000, memoryMaxMb: 5000 });
    expect(s.reservedMemoryMb).toBeLessThanOrEqual(s.memoryMb);
    expect(s.reservedCpus).toBeLessThanOrEqual(s.cpus);
  });

  it("counts the default-size clients that still fit with the capacity rules themselves", () => {
    // ccx33: 8 vCPU / 32G minus 2 / 4G reserve = 6 vCPU / 28G. Default client: limit 4G, reserved 1 CPU / 2G.
    // Memory limits allow 7; CPU reservations allow 6.
    expect(additionalDefaultClients([], SETTINGS)).toBe(6);
    expect(additionalDefaultClients([spec("a"), spec("b")], SETTINGS)).toBe(4);
    // The answer is exactly the edge where assessCapacity starts to complain.
    const clients = [spec("a")];
    const n = additionalDefaultClients(clients, SETTINGS);
    const extra = (k: number) => Array.from({ length: k }, (_, i) => spec(`x${i}`));
    expect(assessCapacity([...clients, ...extra(n)], SETTINGS).issues).toEqual([]);
    expect(assessCapacity([...clients, ...extra(n + 1)], SETTINGS).issues).not.toEqual([]);
    // Suspended clients take nothing; a server already over capacity has room for none.
    expect(additionalDefaultClients([spec("s", SETTINGS.defaultResources, "suspended")], SETTINGS)).toBe(6);
    expect(additionalDefaultClients(extra(9), SETTINGS)).toBe(0);
  });

  it("builds per-client advice, holds back on too few samples, and shows the room gained", () => {
    const clients = [spec("acme"), spec("globex"), spec("hooli"), spec("initech")];
    const summary = parseSampleSummary(
      JSON.stringify({
        retentionDays: 14,
        percentile: 95,
        clients: [
          summaryEntry("acme", 20000, 20, 140, 600, 900),
          summaryEntry("globex", 20000, 5, 10, 300, 310),
          summaryEntry("hooli", 10, 5, 10, 300, 310),
          summaryEntry("stray", 500, 1, 1, 1, 1),
        ],
      }),
      "mai-host",
    );
    const advice = buildAdvice([summary], clients, SETTINGS);
    expect(advice.clients.map((c) => c.slug)).toEqual(["acme", "globex", "hooli"]);
    const acme = advice.clients[0];
    expect(acme.measured).toEqual({ cpuP95: 0.2, cpuMax: 1.4, memoryP95Mb: 600, memoryMaxMb: 900 });
    // 900 x 1.3 = 1170 -> 1280M; 600 -> 768M; 0.2 x 1.5 = 0.3 -> 0.5; 0.2 -> 0.25.
    expect(acme.suggested).toEqual({ cpus: 0.5, memoryMb: 1280, reservedCpus: 0.25, reservedMemoryMb: 768 });
    // 310 x 1.3 = 403 -> 512M; 300 -> 512M; 0.05 x 1.5 -> at least 0.25.
    expect(advice.clients[1].suggested).toEqual({ cpus: 0.25, memoryMb: 512, reservedCpus: 0.25, reservedMemoryMb: 512 });
    expect(advice.clients[2].suggested).toBeNull();
    expect(advice.clients[2].notes[0]).toBe("only 10 samples (need 60): no suggestion yet");
    expect(advice.withoutSamples).toEqual(["initech"]);
    // Now: 4 default clients reserve 4 of 6 vCPUs -> 2 more. Advised: 2.5 vCPUs reserved, 9.75G of
    // 28G in limits -> 3 more.
    expect(advice.fit).toMatchObject({ now: 2, withAdvice: 3 });
    expect(advice.fit.withAdvice).toBe(
      additionalDefaultClients([spec("acme", acme.suggested!), spec("globex", advice.clients[1].suggested!), spec("hooli"), spec("initech")], SETTINGS),
    );
    const text = renderAdvice(advice);
    expect(text).toContain("memory limit = max x 1.3 rounded up to 256M");
    expect(text).toContain(resourcesBlock(acme.suggested!).split("\n").map((l) => `    ${l}`).join("\n"));
    expect(text).toContain("2 now, 3 with the suggestions applied");
  });

  it("writes a resources block in client-file spelling", () => {
    expect(resourcesBlock({ cpus: 0.5, memoryMb: 1280, reservedCpus: 0.25, reservedMemoryMb: 1024 })).toBe(
      "resources:\n  cpus: 0.5\n  memory: 1280M\n  reservations:\n    cpus: 0.25\n    memory: 1G",
    );
  });

  it("rejects a summary that is not the sampler's", () => {
    expect(() => parseSampleSummary("{}", "mai-host")).toThrow(/^mai-host: unexpected mai-sample summary at retentionDays/);
    expect(() => parseSampleSummary("Error: no such file", "mai-host")).toThrow("mai-host: mai-sample --summary did not print JSON");
  });
});

// ---------------------------------------------------------------------------------------------

function sources(): Record<string, string> {
  return Object.fromEntries(MONITORING_HOST_FILES.map((f) => [f.source, fs.readFileSync(path.join(REPO, f.source), "utf8")]));
}

describe("planMonitoring", () => {
  it("installs the three scripts, the four units and the thresholds, and enables both timers", () => {
    const plan = planMonitoring(sources());
    expect(plan.uploads.map((u) => `${u.target} ${u.mode}`)).toEqual([
      "/usr/local/sbin/mai-status 0755",
      "/usr/local/sbin/mai-sample 0755",
      "/usr/local/sbin/mai-alert 0755",
      "/etc/systemd/system/mai-sample.service 0644",
      "/etc/systemd/system/mai-sample.timer 0644",
      "/etc/systemd/system/mai-alert.service 0644",
      "/etc/systemd/system/mai-alert.timer 0644",
      "/etc/mai/status.env 0644",
    ]);
    expect(plan.uploads.every((u) => u.stagedPath.startsWith("/var/lib/mai/staging/monitoring/"))).toBe(true);
    expect(plan.uploads.at(-1)!.content).toContain("ALERT_DISK_PERCENT=85\nALERT_BACKUP_MAX_AGE_HOURS=26\nALERT_CERT_DAYS=14\n");
    expect(plan.installCommand).toContain("systemctl enable --now mai-sample.timer mai-alert.timer");
    expect(plan.installCommand).toContain("install -m 0755 -T /var/lib/mai/staging/monitoring/mai-status /usr/local/sbin/mai-status.new && mv -f /usr/local/sbin/mai-status.new /usr/local/sbin/mai-status");
    expect(plan.deleteCommand).toContain("systemctl disable --now mai-sample.timer mai-alert.timer");
  });

  it("installs no units and enables no timer on a host without systemd", () => {
    const plan = planMonitoring(sources(), { hasSystemd: false, paths: { ...MONITORING_PATHS, binDir: "/opt/mai/bin" } });
    expect(plan.uploads.map((u) => u.name)).toEqual(["mai-status", "mai-sample", "mai-alert", "status.env"]);
    expect(plan.installCommand).not.toContain("systemctl");
    expect(plan.uploads[0].target).toBe("/opt/mai/bin/mai-status");
    expect(plan.deleteCommand).toBe("true");
  });

  it("changes its hash exactly when a script or threshold changes, never with the webhook", () => {
    const base = planMonitoring(sources()).contentHash;
    expect(planMonitoring(sources()).contentHash).toBe(base);
    const edited = { ...sources(), "host/mai-alert.sh": sources()["host/mai-alert.sh"] + "\n# edit\n" };
    expect(planMonitoring(edited).contentHash).not.toBe(base);
    expect(() => planMonitoring({})).toThrow("missing repository file(s) host/mai-status.sh");
  });

  it("writes the webhook file from stdin only, quoted for bash, and refuses a bad URL without echoing it", () => {
    const plan = planMonitoring(sources());
    expect(plan.alertsEnvCommand).toContain("umask 077");
    expect(plan.alertsEnvCommand).toContain("cat > /etc/mai/alerts.env.new");
    expect(plan.alertsEnvCommand).not.toMatch(/https?:/);
    expect(renderAlertsEnv("https://hooks.slack.com/services/T0/B0/xyz")).toContain("ALERT_WEBHOOK_URL='https://hooks.slack.com/services/T0/B0/xyz'\n");
    expect(renderAlertsEnv(undefined)).toContain("ALERT_WEBHOOK_URL=''\n");
    expect(() => renderAlertsEnv("ftp://secret-host/x")).toThrow("alertWebhookUrl: expected an http(s) URL (value not shown: it is a secret)");
    try {
      renderAlertsEnv("https://ntfy.sh/top'secret");
    } catch (error) {
      expect((error as Error).message).not.toContain("secret'");
      expect((error as Error).message).not.toContain("ntfy.sh");
    }
  });
});
