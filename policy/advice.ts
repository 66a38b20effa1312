/**
 * `npm run status -- --advice`: right-sizing from measured use. The host's sampler keeps each
 * client's CPU and memory once a minute (host/mai-sample.sh, 14 days); its summary gives the 95th
 * percentile (nearest rank) and the maximum. From those this suggests a `resources` block with
 * stated headroom, and how many more clients of the default size the server would take if every
 * suggestion were applied (the capacity rules of `capacity.ts`, which stay declarative: limits and
 * reservations, not use). Advice never changes a file.
 */
import { z } from "zod";
import { MIN_MEMORY_MB, MIN_RESERVED_MEMORY_MB } from "../config/clientFile";
import type { ClientSpec, ResourceSpec, StackSettings } from "../config/model";
import { formatMemory } from "../config/units";
import { assessCapacity } from "./capacity";

/** How suggestions are derived from the measurements (printed with the advice). */
export const ADVICE_RULES = {
  /** Memory limit = peak (maximum) memory x this, rounded up to `memoryStepMb`. */
  memoryHeadroom: 1.3,
  /** Memory reservation = 95th percentile memory, rounded up to `memoryStepMb`. */
  memoryStepMb: 256,
  /** CPU limit = 95th percentile CPU x this, rounded up to `cpuStep`. */
  cpuHeadroom: 1.5,
  /** CPU reservation = 95th percentile CPU, rounded up to `cpuStep`. */
  cpuStep: 0.25,
  /** Smallest CPU limit and reservation suggested. */
  minCpus: 0.25,
  /** Fewer samples than this (one hour at one a minute) give no suggestion. */
  minSamples: 60,
} as const;

/** The sampler's summary (`mai-sample --summary`). */
export const sampleSummarySchema = z.object({
  retentionDays: z.number(),
  percentile: z.number().optional(),
  clients: z.array(
    z.object({
      slug: z.string(),
      samples: z.number(),
      first: z.string(),
      last: z.string(),
      cpuPercent: z.object({ p95: z.number(), max: z.number() }),
      memoryBytes: z.object({ p95: z.number(), max: z.number() }),
      memoryLimitBytes: z.number().nullable(),
    }),
  ),
});
export type SampleSummary = z.infer<typeof sampleSummarySchema>;

/** Parses `mai-sample --summary` output; throws a one-line message. */
export function parseSampleSummary(text: string, server: string): SampleSummary {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${server}: mai-sample --summary did not print JSON`);
  }
  const parsed = sampleSummarySchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new Error(`${server}: unexpected mai-sample summary at ${first.path.join(".") || "(root)"}: ${first.message}`);
  }
  return parsed.data;
}

/** `value` rounded up to a multiple of `step` (float noise removed first). */
export function roundUpTo(value: number, step: number): number {
  const steps = Math.ceil(Math.round((value / step) * 1e6) / 1e6);
  return Math.round(steps * step * 100) / 100;
}

/** One client's measurements and what they suggest. */
export interface ClientAdvice {
  slug: string;
  samples: number;
  /** Time span of the samples. */
  from: string;
  to: string;
  measured: { cpuP95: number; cpuMax: number; memoryP95Mb: number; memoryMaxMb: number };
  current: ResourceSpec;
  /** Null when there are too few samples. */
  suggested: ResourceSpec | null;
  /** Why there is no suggestion, or what to watch. */
  notes: string[];
}

/** The whole advice. */
export interface AdviceReport {
  rules: typeof ADVICE_RULES;
  percentile: number;
  clients: ClientAdvice[];
  /** Active clients with a file but no samples (not running, or just started). */
  withoutSamples: string[];
  /** More clients of the default size that fit: now, and with every suggestion applied. */
  fit: { serverType: string; defaultResources: ResourceSpec; now: number; withAdvice: number };
}

/** The suggestion for one client's measurements. */
export function suggestResources(measured: ClientAdvice["measured"]): ResourceSpec {
  const r = ADVICE_RULES;
  const memoryMb = Math.max(MIN_MEMORY_MB, roundUpTo(measured.memoryMaxMb * r.memoryHeadroom, r.memoryStepMb));
  const reservedMemoryMb = Math.min(memoryMb, Math.max(MIN_RESERVED_MEMORY_MB, roundUpTo(measured.memoryP95Mb, r.memoryStepMb)));
  const cpus = Math.max(r.minCpus, roundUpTo(measured.cpuP95 * r.cpuHeadroom, r.cpuStep));
  const reservedCpus = Math.min(cpus, Math.max(r.minCpus, roundUpTo(measured.cpuP95, r.cpuStep)));
  return { cpus, memoryMb, reservedCpus, reservedMemoryMb };
}

/**
 * How many more clients with `settings.defaultResources` fit next to `clients` under the capacity
 * rules (assessCapacity finds no issue). Largest n by bisection: fitting is monotonic in n.
 */
export function additionalDefaultClients(clients: readonly ClientSpec[], settings: StackSettings): number {
  const template = clients[0];
  const extra = (n: number): ClientSpec[] =>
    Array.from({ length: n }, (_, i) => ({
      ...(template ?? ({} as ClientSpec)),
      slug: `advice-extra-${i}`,
      // On the advised clients' server (capacity is checked per server).
      server: template?.server ?? settings.defaultServer,
      file: "(extra)",
      status: "active" as const,
      resources: settings.defaultResources,
    }));
  const fits = (n: number) => assessCapacity([...clients, ...extra(n)], settings).issues.length === 0;
  if (!fits(0)) return 0;
  let low = 0;
  let high = 1;
  while (fits(high) && high < 100_000) {
    low = high;
    high *= 2;
  }
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (fits(middle)) low = middle;
    else high = middle;
  }
  return low;
}

/** Builds the advice from the servers' summaries and the client files. Pure. */
export function buildAdvice(summaries: readonly SampleSummary[], clients: readonly ClientSpec[], settings: StackSettings): AdviceReport {
  const bySlug = new Map(clients.map((client) => [client.slug, client]));
  const advice: ClientAdvice[] = [];
  const sampled = new Set<string>();
  for (const summary of summaries) {
    for (const entry of summary.clients) {
      const client = bySlug.get(entry.slug);
      if (!client) continue;
      sampled.add(entry.slug);
      const measured = {
        cpuP95: Math.round(entry.cpuPercent.p95) / 100,
        cpuMax: Math.round(entry.cpuPercent.max) / 100,
        memoryP95Mb: Math.round(entry.memoryBytes.p95 / 1048576),
        memoryMaxMb: Math.round(entry.memoryBytes.max / 1048576),
      };
      const notes: string[] = [];
      const enough = entry.samples >= ADVICE_RULES.minSamples;
      if (!enough) notes.push(`only ${entry.samples} samples (need ${ADVICE_RULES.minSamples}): no suggestion yet`);
      const spanHours = (Date.parse(entry.last) - Date.parse(entry.first)) / 3_600_000;
      if (enough && spanHours < 24 * 7) notes.push(`samples cover ${Math.round(spanHours)} h; a week includes the busy days`);
      if (measured.memoryMaxMb >= client.resources.memoryMb * 0.95) notes.push("memory peaked at its limit: the peak may be cut off (OOM), measure after raising it");
      if (measured.cpuMax >= client.resources.cpus * 0.95) notes.push("CPU reached its limit: the client is throttled at peaks");
      advice.push({
        slug: entry.slug,
        samples: entry.samples,
        from: entry.first,
        to: entry.last,
        measured,
        current: client.resources,
        suggested: enough ? suggestResources(measured) : null,
        notes,
      });
    }
  }
  advice.sort((a, b) => a.slug.localeCompare(b.slug));
  const advised = new Map(advice.filter((a) => a.suggested).map((a) => [a.slug, a.suggested as ResourceSpec]));
  // CPU and memory advice only: the pids limit stays as configured.
  const withAdvice = clients.map((client) => ({ ...client, resources: { ...client.resources, ...advised.get(client.slug) } }));
  return {
    rules: ADVICE_RULES,
    percentile: summaries[0]?.percentile ?? 95,
    clients: advice,
    withoutSamples: clients.filter((c) => c.status === "active" && !sampled.has(c.slug)).map((c) => c.slug),
    fit: {
      serverType: settings.serverType,
      defaultResources: settings.defaultResources,
      now: additionalDefaultClients(clients, settings),
      withAdvice: additionalDefaultClients(withAdvice, settings),
    },
  };
}

/** The suggestion as the YAML block for the client file. */
export function resourcesBlock(spec: ResourceSpec): string {
  return [
    "resources:",
    `  cpus: ${spec.cpus}`,
    `  memory: ${formatMemory(spec.memoryMb)}`,
    "  reservations:",
    `    cpus: ${spec.reservedCpus}`,
    `    memory: ${formatMemory(spec.reservedMemoryMb)}`,
  ].join("\n");
}

/** Text for people. */
export function renderAdvice(report: AdviceReport): string {
  const r = report.rules;
  const lines = [
    `Right-sizing advice from the sampler (one sample a minute; p${report.percentile} = ${report.percentile}th percentile, nearest rank; max = highest sample).`,
    `Rules: memory limit = max x ${r.memoryHeadroom} rounded up to ${r.memoryStepMb}M (at least ${formatMemory(MIN_MEMORY_MB)}); memory reservation = p${report.percentile} rounded up to ${r.memoryStepMb}M;`,
    `       CPU limit = p${report.percentile} x ${r.cpuHeadroom} rounded up to ${r.cpuStep}; CPU reservation = p${report.percentile} rounded up to ${r.cpuStep} (each at least ${r.minCpus}). Files are never changed.`,
    "",
  ];
  for (const client of report.clients) {
    const m = client.measured;
    const c = client.current;
    lines.push(
      `${client.slug}: ${client.samples} samples ${client.from.slice(0, 16).replace("T", " ")} .. ${client.to.slice(0, 16).replace("T", " ")} UTC`,
      `  measured: CPU p${report.percentile} ${m.cpuP95} / max ${m.cpuMax} vCPUs; memory p${report.percentile} ${formatMemory(m.memoryP95Mb)} / max ${formatMemory(m.memoryMaxMb)}`,
      `  current:  CPU limit ${c.cpus}, reserved ${c.reservedCpus}; memory limit ${formatMemory(c.memoryMb)}, reserved ${formatMemory(c.reservedMemoryMb)}`,
    );
    if (client.suggested) {
      lines.push("  suggested:", ...resourcesBlock(client.suggested).split("\n").map((line) => `    ${line}`));
    }
    for (const note of client.notes) lines.push(`  note: ${note}`);
  }
  if (report.clients.length === 0) lines.push("No samples yet (the sampler runs every minute on hosts with systemd).");
  if (report.withoutSamples.length > 0) lines.push("", `Active clients without samples: ${report.withoutSamples.join(", ")}`);
  const d = report.fit.defaultResources;
  lines.push(
    "",
    `Room on ${report.fit.serverType} for more clients of the default size (${d.cpus} CPU / ${formatMemory(d.memoryMb)}, reserved ${d.reservedCpus} / ${formatMemory(d.reservedMemoryMb)}): ` +
      `${report.fit.now} now, ${report.fit.withAdvice} with the suggestions applied.`,
    "",
  );
  return lines.join("\n");
}
