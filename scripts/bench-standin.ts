/**
 * Benchmark on the real Docker engine (figures, never assertions): idle memory of the workspace
 * stand-in. Starts N stand-ins (their own labelled network, ports published nowhere), waits until
 * each answers its health check and settles, then reads `docker stats --no-stream`. Holds the
 * engine lock and removes everything it started. Skipped with a note when no engine answers.
 */
import { LOCAL_WORKSPACE_IMAGE } from "../policy/localImages";
import { cleanupByLabel, docker, newRunId, requireEngine, requireImages, runLabel, withEngineLock } from "../tests/support/engine";

const STAND_INS = 5;
const SETTLE_MS = 5_000;

/** "12.3MiB / 1.944GiB" → MiB. */
export function parseMemUsage(usage: string): number {
  const match = usage.trim().match(/^([\d.]+)\s*([KMG]i?B|B)/i);
  if (!match) return Number.NaN;
  const factor: Record<string, number> = { b: 1 / 1048576, kib: 1 / 1024, kb: 1 / 1024, mib: 1, mb: 1, gib: 1024, gb: 1024 };
  return Number(match[1]) * (factor[match[2].toLowerCase()] ?? Number.NaN);
}

async function waitHealthy(name: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    const ok = await docker(["exec", name, "curl", "-fsS", "http://localhost:8080/health"]).then(
      () => true,
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${name} never answered /health`);
}

/** Lines of the idle-memory figure. */
export async function runStandInBench(): Promise<string[]> {
  try {
    requireEngine();
    requireImages([LOCAL_WORKSPACE_IMAGE]);
  } catch (error) {
    return [`stand-in idle memory: not measured (${error instanceof Error ? error.message : String(error)})`];
  }
  const runId = newRunId();
  const label = runLabel(runId);
  return withEngineLock(async () => {
    try {
      await docker(["network", "create", "--internal", "--label", label, `mai-${runId}`]);
      const names = Array.from({ length: STAND_INS }, (_, i) => `mai-${runId}-idle-${i + 1}`);
      for (const name of names) {
        await docker(["run", "-d", "--name", name, "--label", label, "--network", `mai-${runId}`, LOCAL_WORKSPACE_IMAGE]);
      }
      for (const name of names) await waitHealthy(name);
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      const stats = await docker(["stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}", ...names]);
      const mib = stats
        .split("\n")
        .map((line) => parseMemUsage(line.split("\t")[1] ?? ""))
        .filter((value) => Number.isFinite(value));
      const mean = mib.reduce((sum, value) => sum + value, 0) / mib.length;
      return [
        `stand-in idle memory (${LOCAL_WORKSPACE_IMAGE}, ${mib.length} containers, healthy + ${SETTLE_MS / 1000} s, docker stats):`,
        `  mean ${mean.toFixed(1)} MiB, min ${Math.min(...mib).toFixed(1)}, max ${Math.max(...mib).toFixed(1)} MiB per container`,
      ];
    } finally {
      await cleanupByLabel(label);
    }
  });
}
