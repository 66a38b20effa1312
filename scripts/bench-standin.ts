/**
 * Latency of the workspace stand-in on the real engine: `/health` of one stand-in container, its
 * port published on 127.0.0.1 as the local stack publishes a client's, loaded with wrk (8
 * connections, 10 s) directly and through the pinned Caddy release serving the project's rendered
 * site over HTTPS/1.1 with keep-alive. Goal: p50 <= 2 ms through Caddy. wrk resolves the site's
 * name in a mount namespace of its own (a hosts file bound over /etc/hosts), so SNI and Host are
 * the site's and nothing on the machine changes. For scale on a shared machine, the same Caddy
 * also proxies to a minimal Node.js upstream on the host (the reference: what Caddy and wrk cost
 * by themselves right now), and the stand-in's CPU time per request (its container's cgroup) is
 * a figure the machine's other load hardly changes. Holds the engine lock; removes what it created.
 * Figures only, never a verdict that fails. Run alone: `npx tsx scripts/bench-standin.ts [image]`.
 */
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { renderCaddyfile } from "../policy/caddyfile";
import { LOCAL_WORKSPACE_IMAGE } from "../policy/localImages";
import { fixtureClient } from "../tests/support/caddyFixtures";
import { freePort, startCaddy } from "../tests/support/caddyProcess";
import { acquireEngineLock, cleanupByLabel, docker, newRunId, publishedPort, requireEngine, requireImages, runLabel } from "../tests/support/engine";
import { request, type Target } from "../tests/support/httpClient";
import { startFakeWorkspace } from "../tests/support/httpWorkspace";
import { parseWrkReport, type WrkReport } from "./lib/wrk";

const run = promisify(execFile);
const CONNECTIONS = 8;
const THREADS = 2;
const SECONDS = 10;
const GOAL_P50_MS = 2;

async function untilHealthy(target: Target, what: string): Promise<void> {
  let last = "no answer";
  for (let attempt = 0; attempt < 200; attempt++) {
    try {
      const reply = await request(target, "/health", { timeoutMs: 2000 });
      if (reply.status === 200) return;
      last = `HTTP ${reply.status}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what} never answered /health (${last})`);
}

/** One wrk run; `hostsFile` makes wrk resolve names through that file instead of /etc/hosts. */
async function wrk(url: string, hostsFile?: string): Promise<WrkReport> {
  const args = [`-t${THREADS}`, `-c${CONNECTIONS}`, `-d${SECONDS}s`, "--latency", url];
  const [command, commandArgs] = hostsFile
    ? ["unshare", ["--mount", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec wrk "$@"', hostsFile, ...args]]
    : ["wrk", args];
  const { stdout } = await run(command, commandArgs as string[], { timeout: (SECONDS + 30) * 1000 });
  return parseWrkReport(stdout);
}

/** CPU time the container has used so far, in microseconds (cgroup v1 or v2). */
async function containerCpuMicros(container: string): Promise<number> {
  // cgroup v1 counts nanoseconds, v2 microseconds.
  const v1 = "/sys/fs/cgroup/cpuacct/cpuacct.usage";
  const script = `if [ -e ${v1} ]; then echo $(( $(cat ${v1}) / 1000 )); else sed -n 's/^usage_usec //p' /sys/fs/cgroup/cpu.stat; fi`;
  return Number(await docker(["exec", container, "sh", "-c", script]));
}

/** A wrk run with the container's CPU time per request over it. */
async function measured(container: string, url: string, hostsFile?: string): Promise<WrkReport & { cpuMicrosPerRequest: number }> {
  const before = await containerCpuMicros(container);
  const report = await wrk(url, hostsFile);
  return { ...report, cpuMicrosPerRequest: ((await containerCpuMicros(container)) - before) / report.requests };
}

function line(label: string, report: WrkReport & { cpuMicrosPerRequest?: number }): string {
  const errors = report.non2xx + report.socketErrors;
  const cpu = report.cpuMicrosPerRequest === undefined ? "" : `  stand-in CPU ${report.cpuMicrosPerRequest.toFixed(0)} us/request`;
  return (
    `  ${label.padEnd(28)} ${report.requestsPerSecond.toFixed(0).padStart(6)} req/s  p50 ${report.latencyMs[50].toFixed(2)} ms` +
    `  p99 ${report.latencyMs[99].toFixed(2)} ms  errors ${errors}${cpu}`
  );
}

/** Runs the benchmark and returns the lines to print. */
export async function runStandInBench(image: string = LOCAL_WORKSPACE_IMAGE): Promise<string[]> {
  const header = `Workspace stand-in /health (${image}; wrk, ${CONNECTIONS} connections, ${SECONDS} s each)`;
  const missing = ["wrk", "unshare"].filter((tool) => spawnSync(tool, ["--version"]).error);
  if (missing.length > 0) return [header, `  not measured: ${missing.join(" and ")} not installed (apt-get install wrk util-linux)`];
  requireEngine();
  requireImages([image]);
  const lock = await acquireEngineLock();
  const id = newRunId();
  const label = runLabel(id);
  const scratch = mkdtempSync(path.join(os.tmpdir(), "mai-bench-standin-"));
  let caddy: Awaited<ReturnType<typeof startCaddy>> | undefined;
  const reference = await startFakeWorkspace("reference");
  try {
    await docker(["network", "create", "--label", label, `mai-${id}`]);
    const container = `mai-${id}-standin`;
    await docker(["run", "-d", "--name", container, "--label", label, "--network", `mai-${id}`, "-p", "127.0.0.1::8080", image]);
    const port = await publishedPort(container, "8080/tcp");
    await untilHealthy({ port, hostname: "localhost" }, container);

    const client = fixtureClient("standin", { port });
    const referenceClient = fixtureClient("reference", { port: reference.port });
    const [httpPort, httpsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
    const adminAddress = `127.0.0.1:${adminPort}`;
    caddy = await startCaddy(
      renderCaddyfile([client, referenceClient], { bindAddress: "127.0.0.1", httpPort, httpsPort, adminAddress, issuer: "internal" }),
      adminAddress,
    );
    for (const site of [client, referenceClient]) await untilHealthy({ port: httpsPort, hostname: site.hostname, ca: caddy.rootCa }, `Caddy for ${site.hostname}`);
    const hostsFile = path.join(scratch, "hosts");
    writeFileSync(hostsFile, `127.0.0.1 localhost ${client.hostname} ${referenceClient.hostname}\n`);

    const direct = await measured(container, `http://127.0.0.1:${port}/health`);
    const proxied = await measured(container, `https://${client.hostname}:${httpsPort}/health`, hostsFile);
    const floor = await wrk(`https://${referenceClient.hostname}:${httpsPort}/health`, hostsFile);
    const p50 = proxied.latencyMs[50];
    return [
      header,
      line("direct (published port)", direct),
      `${line("through Caddy (HTTPS/1.1)", proxied)}  (goal p50 <= ${GOAL_P50_MS} ms: ${p50 <= GOAL_P50_MS ? "met" : "NOT met"})`,
      `${line("reference upstream via Caddy", floor)}  (Node.js on the host: Caddy and wrk alone)`,
    ];
  } finally {
    await caddy?.stop();
    await reference.close();
    await cleanupByLabel(label);
    rmSync(scratch, { recursive: true, force: true });
    await lock.release();
  }
}

if (require.main === module) {
  runStandInBench(process.argv[2]).then(
    (lines) => console.log(lines.join("\n")),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exitCode = 1;
    },
  );
}
