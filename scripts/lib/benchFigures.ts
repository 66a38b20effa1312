/**
 * Pure arithmetic of the real-engine benchmarks (scripts/bench-engine.ts, scripts/bench-move.ts):
 * reading `docker stats` cells, the longest outage in a series of health probes, counting what
 * happened inside a time window, and one-line summaries. No Docker, no Pulumi.
 */

/** What a `pulumi up` or preview did, as counts (component resources left out). */
export interface ChangeCounts {
  created: readonly string[];
  updated: readonly string[];
  replaced: readonly string[];
  deleted: readonly string[];
}

/** "3 created, 2 replaced" (only the non-zero kinds), or "no changes". */
export function changeSummary(changes: ChangeCounts): string {
  const parts = (["created", "updated", "replaced", "deleted"] as const)
    .filter((kind) => changes[kind].length > 0)
    .map((kind) => `${changes[kind].length} ${kind}`);
  return parts.length === 0 ? "no changes" : parts.join(", ");
}

/** MiB of a size as `docker stats` prints it: "18.3MiB", "1.2GiB", "900KiB", "512B", "20MB". */
export function mebibytes(cell: string): number {
  const match = /^\s*([\d.]+)\s*([KMGT]?i?B)\s*$/i.exec(cell);
  if (!match) throw new Error(`not a docker stats size: "${cell}"`);
  const value = Number(match[1]);
  const unit = match[2].toUpperCase();
  const power = { B: 0, K: 1, M: 2, G: 3, T: 4 }[unit[0] as "B" | "K" | "M" | "G" | "T"];
  const base = unit.length === 3 || unit === "B" ? 1024 : 1000; // KiB vs kB
  return (value * base ** power) / 1024 ** 2;
}

/** The used part of a `docker stats` MemUsage cell ("18.3MiB / 512MiB"), in MiB. */
export function memoryUsageMib(memUsage: string): number {
  return mebibytes(memUsage.split("/")[0]);
}

/** The median of a list (NaN when empty). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** One health probe: when it was sent (ms, any monotonic clock) and whether it was answered well. */
export interface Probe {
  at: number;
  ok: boolean;
}

/** The longest outage in a probe series. */
export interface Outage {
  /** Last good probe before it (or the first probe, if the series starts failing). */
  from: number;
  /** First good probe after it; undefined if the series never recovered. */
  to: number | undefined;
  /** `to - from`, an upper bound of the outage (probes are discrete); undefined if never recovered. */
  ms: number | undefined;
  /** Failed probes in it. */
  failedProbes: number;
}

/**
 * The longest run of failed probes, measured from the last good probe before it to the first good
 * one after it; undefined when no probe failed. A run that never recovers is the longest of all.
 */
export function longestOutage(probes: readonly Probe[]): Outage | undefined {
  const sorted = [...probes].sort((a, b) => a.at - b.at);
  let best: Outage | undefined;
  let current: Outage | undefined;
  let lastGood: number | undefined;
  const longer = (a: Outage, b: Outage | undefined) => b === undefined || (a.ms ?? Infinity) > (b.ms ?? Infinity);
  for (const probe of sorted) {
    if (!probe.ok) {
      current ??= { from: lastGood ?? probe.at, to: undefined, ms: undefined, failedProbes: 0 };
      current.failedProbes++;
      continue;
    }
    if (current) {
      current.to = probe.at;
      current.ms = probe.at - current.from;
      if (longer(current, best)) best = current;
      current = undefined;
    }
    lastGood = probe.at;
  }
  if (current && longer(current, best)) best = current;
  return best;
}

/** How many of the times fall in [from, to]. */
export function countWithin(times: readonly number[], from: number, to: number): number {
  return times.filter((t) => t >= from && t <= to).length;
}

/** "1.23" for a ratio, "n/a" for NaN or infinity. */
export function ratioText(numerator: number, denominator: number): string {
  const ratio = numerator / denominator;
  return Number.isFinite(ratio) ? ratio.toFixed(2) : "n/a";
}

/** Seconds with one decimal from milliseconds: "12.3 s". */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** The line a benchmark part prints when it could not measure: "not measured: <why>". */
export function notMeasured(what: string, error: unknown): string {
  const why = error instanceof Error ? error.message : String(error);
  // The engine's output can be long: its error line (the first that says "error") is the reason.
  const lines = why.split("\n").map((line) => line.trim()).filter(Boolean);
  // The engine's own "error: ..." line first (progress lines like "1 errored" say less).
  const generic = /^error: (update|preview) failed$|^error: an error occurred/i;
  const engineError = lines.findIndex((line) => /^error:/i.test(line) && !generic.test(line));
  const at = engineError >= 0 ? engineError : lines.findIndex((line) => /error/i.test(line) && !/^pulumi (up|preview) failed:?$/.test(line));
  // "error: invalid configuration:" says what kind; the next line says what.
  const reason = at < 0 ? (lines[0] ?? "unknown") : lines[at].endsWith(":") && at + 1 < lines.length ? `${lines[at]} ${lines[at + 1]}` : lines[at];
  return `  ${what}: not measured: ${reason}`;
}
