/**
 * `npm run status`: what each server's `mai-status` document says, held against the client
 * files. Pure functions: parse the host's JSON, build one report (per client and per server),
 * render it for people. Nothing here touches a host; a client the files do not know is shown,
 * never acted on.
 */
import { z } from "zod";

// ---------------------------------------------------------------------------------------------
// The host's document (host/mai-status.sh, schema 1)
// ---------------------------------------------------------------------------------------------

const nullableNumber = z.number().nullable();
const containerSchema = z.object({
  name: z.string(),
  id: z.string(),
  slug: z.string().nullable(),
  role: z.enum(["client", "proxy"]),
  image: z.string(),
  state: z.string(),
  health: z.string(),
  restartCount: z.number(),
  oomKilled: z.boolean(),
  oomKills: nullableNumber,
  exitCode: z.number(),
  startedAt: z.string().nullable(),
  uptimeSeconds: nullableNumber,
  cpuPercent: nullableNumber,
  memoryBytes: nullableNumber,
  memoryLimitBytes: nullableNumber,
  memoryReservationBytes: nullableNumber,
  cpuLimit: nullableNumber,
});
const backupRunSchema = z.object({
  time: z.string(),
  result: z.string(),
  exitCode: z.number(),
  file: z.string().nullable().optional(),
  sizeBytes: nullableNumber.optional(),
  message: z.string().optional(),
});
const conditionSchema = z.object({ key: z.string(), condition: z.string(), subject: z.string(), message: z.string() });

/** One `mai-status` document. */
export const hostStatusSchema = z.object({
  schema: z.literal(1),
  generatedAt: z.string(),
  host: z.object({
    hostname: z.string(),
    cpus: z.number(),
    load: z.array(z.number()),
    memory: z.object({ totalBytes: z.number(), availableBytes: z.number() }),
    disks: z.array(z.object({ mount: z.string(), sizeBytes: z.number(), usedBytes: z.number(), usedPercent: z.number() })),
    docker: z.object({ running: z.boolean(), version: z.string().nullable() }),
  }),
  /** Where CPU and memory use come from: the sampler's last minute, or `docker stats` now. */
  usage: z.object({ source: z.string(), sampledAt: z.string().nullable() }).optional(),
  proxy: containerSchema.nullable(),
  clients: z.array(
    z.object({
      slug: z.string(),
      container: containerSchema.nullable(),
      containers: z.number(),
      volume: z.object({ name: z.string(), createdAt: z.string().nullable(), sizeBytes: nullableNumber }).nullable(),
      backup: z.object({
        timerEnabled: z.boolean(),
        lastRun: backupRunSchema.nullable(),
        lastGood: z.object({ time: z.string(), file: z.string(), sizeBytes: nullableNumber }).nullable(),
        ageHours: nullableNumber,
      }),
    }),
  ),
  certificates: z.object({
    source: z.string(),
    list: z.array(z.object({ hostname: z.string(), issuer: z.string(), notAfter: z.string(), daysLeft: z.number(), internal: z.boolean() })),
  }),
  thresholds: z.record(z.string(), z.number()),
  conditions: z.array(conditionSchema),
  healthy: z.boolean(),
});
export type HostStatus = z.infer<typeof hostStatusSchema>;
export type HostContainer = z.infer<typeof containerSchema>;
export type HostCondition = z.infer<typeof conditionSchema>;

/** Parses `mai-status` output; throws a one-line message naming what is wrong (never the whole text). */
export function parseHostStatus(text: string, server: string): HostStatus {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    const start = text.trim().slice(0, 80).replace(/\s+/g, " ");
    throw new Error(`${server}: mai-status did not print JSON (starts with ${JSON.stringify(start)})`);
  }
  const parsed = hostStatusSchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new Error(`${server}: unexpected mai-status document at ${first.path.join(".") || "(root)"}: ${first.message}`);
  }
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/** What the client files say about one client. */
export interface ExpectedClient {
  slug: string;
  status: "active" | "suspended";
  /** Server the client belongs on. */
  server: string;
  /** Public hostnames (certificates). */
  hostnames: string[];
}

/** What a server answered: its document, or why there is none. */
export type ServerAnswer = { server: string; status: HostStatus } | { server: string; error: string };

/**
 * The client's state as one word: its container's (running, restarting, stopped), or missing
 * (active, no container), suspended (no container, as the file says), unknown (a container no
 * file names), removed (no file, only its kept data volume), unreachable (server did not answer).
 */
export type ClientState =
  | "running"
  | "restarting"
  | "stopped"
  | "missing"
  | "suspended"
  | "unknown"
  | "removed"
  | "unreachable";

/** One client line. */
export interface ClientReport {
  slug: string;
  server: string;
  /** What the files say: active, suspended, or not in the files. */
  expected: "active" | "suspended" | "not in files";
  state: ClientState;
  health: string | null;
  restarts: number | null;
  oomKilled: boolean;
  oomKills: number | null;
  uptimeSeconds: number | null;
  cpuPercent: number | null;
  memoryBytes: number | null;
  memoryLimitBytes: number | null;
  volumeBytes: number | null;
  backup: {
    lastRunTime: string | null;
    lastRunResult: string | null;
    lastGoodTime: string | null;
    lastGoodBytes: number | null;
    ageHours: number | null;
  };
  /** Fewest days left of the client's publicly trusted certificates; "internal" for the local CA; null: none yet. */
  certificateDays: number | "internal" | null;
  /** Everything wrong with this client, for people. */
  problems: string[];
}

/** One server line. */
export interface ServerReport {
  server: string;
  reachable: boolean;
  error?: string;
  hostname?: string;
  dockerVersion?: string | null;
  diskUsedPercent?: number;
  memoryUsedBytes?: number;
  memoryTotalBytes?: number;
  load?: number[];
  cpus?: number;
  proxy?: { state: string; health: string } | null;
  /** Where the clients' CPU and memory figures come from ("docker-stats" now, or "sampler" with its time). */
  usage?: string;
  /** Conditions that belong to the server, not to one client (disk, proxy, Docker, certificates). */
  problems: string[];
}

export interface StatusReport {
  generatedAt: string;
  healthy: boolean;
  servers: ServerReport[];
  clients: ClientReport[];
  /** Differences between the files and what runs. */
  differences: string[];
}

const CLIENT_CONDITIONS = new Set(["restarting", "container-down", "unhealthy", "oom-killed", "backup-failed", "backup-stale"]);

function containerState(container: HostContainer): ClientState {
  if (container.state === "running") return "running";
  if (container.state === "restarting") return "restarting";
  return "stopped";
}

/** Holds every server's answer against the client files. Pure. */
export function buildStatusReport(answers: readonly ServerAnswer[], expected: readonly ExpectedClient[], now: Date): StatusReport {
  const servers: ServerReport[] = [];
  const clients: ClientReport[] = [];
  const differences: string[] = [];
  const expectedBySlug = new Map(expected.map((client) => [client.slug, client]));
  const seen = new Set<string>();

  for (const answer of answers) {
    if ("error" in answer) {
      servers.push({ server: answer.server, reachable: false, error: answer.error, problems: [`cannot read the server: ${answer.error}`] });
      for (const client of expected.filter((c) => c.server === answer.server)) {
        seen.add(client.slug);
        clients.push(emptyClient(client.slug, answer.server, client.status, "unreachable", ["server unreachable"]));
      }
      continue;
    }
    const { status } = answer;
    const serverProblems = status.conditions.filter((c) => !CLIENT_CONDITIONS.has(c.condition)).map((c) => c.message);
    const biggestDisk = status.host.disks.reduce((max, disk) => Math.max(max, disk.usedPercent), 0);
    servers.push({
      server: answer.server,
      reachable: true,
      hostname: status.host.hostname,
      dockerVersion: status.host.docker.version,
      diskUsedPercent: biggestDisk,
      memoryUsedBytes: status.host.memory.totalBytes - status.host.memory.availableBytes,
      memoryTotalBytes: status.host.memory.totalBytes,
      load: status.host.load,
      cpus: status.host.cpus,
      proxy: status.proxy && { state: status.proxy.state, health: status.proxy.health },
      usage: status.usage?.source === "sampler" && status.usage.sampledAt ? `sampler ${status.usage.sampledAt.slice(11, 19)}` : "docker-stats",
      problems: serverProblems,
    });

    const onServer = new Map(status.clients.map((client) => [client.slug, client]));
    const slugs = new Set([...onServer.keys(), ...expected.filter((c) => c.server === answer.server).map((c) => c.slug)]);
    for (const slug of [...slugs].sort()) {
      const live = onServer.get(slug);
      const want = expectedBySlug.get(slug);
      const container = live?.container ?? null;
      // A client found on another server than its file says is reported where it runs.
      if (want && want.server !== answer.server && !container) continue;
      seen.add(slug);
      const problems = status.conditions.filter((c) => c.subject === slug && CLIENT_CONDITIONS.has(c.condition)).map((c) => c.message);

      let state: ClientState;
      if (!want) {
        // No file: a container is a difference; a data volume alone is a removed client's kept data.
        state = container ? "unknown" : "removed";
        if (container) {
          differences.push(`${answer.server}: container ${container.name} exists but no client file names "${slug}" (shown, not touched)`);
        }
      } else if (want.status === "suspended") {
        state = "suspended";
        if (container) {
          const message = `${slug} is suspended in its file but container ${container.name} exists (${container.state}); run pulumi up`;
          differences.push(message);
          problems.push(message);
        }
      } else if (!container) {
        state = "missing";
        const message = `${slug} is active in its file but has no container on ${answer.server}; run pulumi up`;
        differences.push(message);
        problems.push(message);
      } else {
        state = containerState(container);
      }
      if (want && want.server !== answer.server && container) {
        const message = `${slug} runs on ${answer.server} but its file places it on ${want.server}`;
        differences.push(message);
        problems.push(message);
      }
      if (live && live.containers > 1) problems.push(`${live.containers} containers carry the label mai.client=${slug}`);
      const hostnames = want?.hostnames ?? [`${slug}`];
      const certs = status.certificates.list.filter((cert) => hostnames.includes(cert.hostname));
      const trusted = certs.filter((cert) => !cert.internal);
      const certificateDays =
        trusted.length > 0 ? Math.min(...trusted.map((cert) => cert.daysLeft)) : certs.length > 0 ? ("internal" as const) : null;

      const backup = live?.backup;
      clients.push({
        slug,
        server: answer.server,
        expected: want ? want.status : "not in files",
        state,
        health: container ? container.health : null,
        restarts: container ? container.restartCount : null,
        oomKilled: container?.oomKilled ?? false,
        oomKills: container?.oomKills ?? null,
        uptimeSeconds: container?.uptimeSeconds ?? null,
        cpuPercent: container?.cpuPercent ?? null,
        memoryBytes: container?.memoryBytes ?? null,
        memoryLimitBytes: container?.memoryLimitBytes ?? null,
        volumeBytes: live?.volume?.sizeBytes ?? null,
        backup: {
          lastRunTime: backup?.lastRun?.time ?? null,
          lastRunResult: backup?.lastRun?.result ?? null,
          lastGoodTime: backup?.lastGood?.time ?? null,
          lastGoodBytes: backup?.lastGood?.sizeBytes ?? null,
          ageHours: backup?.ageHours ?? null,
        },
        certificateDays,
        problems,
      });
    }
  }

  // Clients whose server did not answer at all (not in the list of servers) stay visible.
  for (const client of expected) {
    if (seen.has(client.slug) || answers.some((a) => a.server === client.server)) continue;
    clients.push(emptyClient(client.slug, client.server, client.status, "unreachable", [`server ${client.server} was not queried`]));
    differences.push(`${client.slug}: server ${client.server} is not a server of this stack`);
  }

  clients.sort((a, b) => a.slug.localeCompare(b.slug) || a.server.localeCompare(b.server));
  const healthy =
    servers.every((s) => s.reachable && s.problems.length === 0) &&
    clients.every((c) => c.problems.length === 0 && c.state !== "unknown") &&
    differences.length === 0;
  return { generatedAt: now.toISOString(), healthy, servers, clients, differences };
}

function emptyClient(slug: string, server: string, expected: ClientReport["expected"], state: ClientState, problems: string[]): ClientReport {
  return {
    slug,
    server,
    expected,
    state: expected === "suspended" && state !== "unreachable" ? "suspended" : state,
    health: null,
    restarts: null,
    oomKilled: false,
    oomKills: null,
    uptimeSeconds: null,
    cpuPercent: null,
    memoryBytes: null,
    memoryLimitBytes: null,
    volumeBytes: null,
    backup: { lastRunTime: null, lastRunResult: null, lastGoodTime: null, lastGoodBytes: null, ageHours: null },
    certificateDays: null,
    problems,
  };
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/** 1536 MiB -> "1.5G", 300 MiB -> "300M", 2 KiB -> "0M". */
export function formatBytes(bytes: number | null): string {
  if (bytes === null) return "-";
  const mib = bytes / 1048576;
  if (mib >= 1024) return `${Math.round((mib / 1024) * 10) / 10}G`;
  return `${Math.round(mib)}M`;
}

/** 93784 s -> "1d2h", 3720 -> "1h2m", 59 -> "59s". */
export function formatDuration(seconds: number | null): string {
  if (seconds === null) return "-";
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d${Math.floor((seconds % 86400) / 3600)}h`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((_, col) => Math.max(header[col].length, ...rows.map((row) => row[col].length)));
  return [header, ...rows].map((row) => row.map((cell, col) => cell.padEnd(widths[col])).join("  ").trimEnd()).join("\n");
}

/** Text for people: servers, clients, then every problem and difference. */
export function renderStatus(report: StatusReport): string {
  const servers = table(
    ["SERVER", "DOCKER", "DISK", "MEMORY", "LOAD", "PROXY", "CPU/MEM OF"],
    report.servers.map((s) =>
      s.reachable
        ? [
            s.server,
            s.dockerVersion ?? "down",
            `${s.diskUsedPercent}%`,
            `${formatBytes(s.memoryUsedBytes ?? null)}/${formatBytes(s.memoryTotalBytes ?? null)}`,
            `${(s.load ?? []).map((l) => l.toFixed(2)).join(" ")} (${s.cpus} CPUs)`,
            s.proxy ? `${s.proxy.state}/${s.proxy.health}` : "none",
            s.usage ?? "-",
          ]
        : [s.server, "unreachable", "-", "-", "-", "-", "-"],
    ),
  );
  const clients = table(
    ["CLIENT", "SERVER", "STATUS", "HEALTH", "RESTARTS", "OOM", "UPTIME", "CPU", "MEMORY", "DATA", "LAST BACKUP", "CERT"],
    report.clients.map((c) => [
      c.slug,
      c.server,
      c.expected === "not in files" ? `${c.state} (no file)` : c.state,
      c.health ?? "-",
      c.restarts === null ? "-" : String(c.restarts),
      c.oomKilled ? `yes${c.oomKills ? ` (${c.oomKills})` : ""}` : c.oomKills ? String(c.oomKills) : c.restarts === null ? "-" : "0",
      formatDuration(c.uptimeSeconds),
      c.cpuPercent === null ? "-" : `${c.cpuPercent.toFixed(1)}%`,
      c.memoryBytes === null ? "-" : `${formatBytes(c.memoryBytes)}/${formatBytes(c.memoryLimitBytes)}`,
      formatBytes(c.volumeBytes),
      c.backup.lastGoodTime === null
        ? c.backup.lastRunResult === null
          ? "none"
          : `none (${c.backup.lastRunResult})`
        : `${c.backup.lastGoodTime.replace("T", " ").slice(0, 16)} ${formatBytes(c.backup.lastGoodBytes)} ${c.backup.ageHours}h ago${
            c.backup.lastRunResult && c.backup.lastRunResult !== "ok" ? ` (last run ${c.backup.lastRunResult})` : ""
          }`,
      c.certificateDays === null ? "n/a" : c.certificateDays === "internal" ? "internal" : `${Math.floor(c.certificateDays)}d`,
    ]),
  );
  const problems = [
    ...report.servers.flatMap((s) => s.problems.map((p) => `${s.server}: ${p}`)),
    ...report.clients.flatMap((c) => c.problems.map((p) => `${c.slug}: ${p}`)),
    ...report.differences.filter((d) => !report.clients.some((c) => c.problems.includes(d))),
  ];
  const verdict = report.healthy ? "healthy" : `NOT healthy: ${problems.length} problem${problems.length === 1 ? "" : "s"}`;
  return [
    `Status as of ${report.generatedAt.replace("T", " ").slice(0, 19)} UTC: ${verdict}`,
    "",
    servers,
    "",
    clients,
    ...(problems.length > 0 ? ["", "Problems:", ...problems.map((p) => `  - ${p}`)] : []),
    "",
  ].join("\n");
}
