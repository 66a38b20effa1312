/**
 * Real-engine benchmark (figures, never pass/fail): the client containers of 20 generated client
 * files, applied to the local Docker Engine from what the program declares (tests/support/applier):
 * time until all 20 run and answer /health, idle memory per workspace, and a noisy neighbour
 * (client A burning 100 % of its CPU limit) seen as client B's latency through Caddy. Caddy runs
 * on the host network and proxies to the clients' loopback ports, as the local stack's proxy does.
 * Holds the engine lock; removes everything it created. Run alone: `npx tsx scripts/bench-engine.ts`.
 */
import http from "node:http";
import https from "node:https";
import { performance } from "node:perf_hooks";
import { renderCaddyfile } from "../policy/caddyfile";
import { docker, EngineApplier, runId } from "../tests/support/applier";
import { fixtureClient } from "../tests/support/caddyFixtures";
import { freePort, startCaddy } from "../tests/support/caddyProcess";
import { createEngineStack, type EngineStack, OUT_OF_SCOPE, proxyRootCa, workspaceImage } from "../tests/support/engineStack";
import { lockEngine, requireDockerEngine } from "../tests/support/engineSession";
import { Http2Client, isStaleConnectionError, percentile, request, runLoad, timeStream, type Target } from "../tests/support/httpClient";
import { connectWebSocket } from "../tests/support/httpWebSocket";

const CLIENTS = 20;
const LATENCY_LOAD = { concurrency: 4, maxRequests: 3000, maxDurationMs: 6000 };
const RELOADS = 3;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function untilAnswering(ports: number[], timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(ports);
  while (pending.size > 0) {
    for (const port of [...pending]) {
      if (await request({ port, hostname: "localhost" }, "/health", { timeoutMs: 1000 }).then((r) => r.status === 200, () => false)) pending.delete(port);
    }
    if (pending.size > 0 && Date.now() > deadline) throw new Error(`${pending.size} clients never answered /health`);
    if (pending.size > 0) await sleep(50);
  }
}

/** Memory in MiB from a `docker stats` MemUsage cell such as "18.3MiB / 512MiB". */
function mib(cell: string): number {
  const [value, unit] = [parseFloat(cell), cell.replace(/^[\d.]+/, "").split(" ")[0]];
  return unit.startsWith("GiB") ? value * 1024 : unit.startsWith("KiB") ? value / 1024 : unit.startsWith("B") ? value / 1024 / 1024 : value;
}

/** Runs the benchmark and returns the lines to print. */
export async function runEngineBench(): Promise<string[]> {
  requireDockerEngine();
  const lines: string[] = [];
  const release = await lockEngine();
  const id = runId();
  const applier = new EngineApplier({ outOfScope: OUT_OF_SCOPE });
  const keys = Array.from({ length: CLIENTS }, (_, i) => `c${String(i + 1).padStart(2, "0")}`);
  const stack = await createEngineStack(id, keys.map((key) => ({ key })));
  let caddy: Awaited<ReturnType<typeof startCaddy>> | undefined;
  try {
    const resources = await stack.evaluate();
    const where = stack.local ? "local stack, Caddy container on the host network" : "prod-like program without its proxy; Caddy as a host process";
    lines.push(`Real-engine benchmark (Docker ${docker(["version", "-f", "{{.Server.Version}}"])}, ${CLIENTS} clients, ${where}; resources applied one at a time)`);

    const started = performance.now();
    await applier.up(resources);
    const applied = performance.now() - started;
    await untilAnswering(keys.map((k) => stack.port(k)));
    const answering = performance.now() - started;
    lines.push(`  start ${CLIENTS} clients: ${(applied / 1000).toFixed(1)} s until all containers run, ${(answering / 1000).toFixed(1)} s until all answer /health`);

    await sleep(3000);
    const names = keys.map((k) => `mai-${stack.slug(k)}`);
    const stats = docker(["stats", "--no-stream", "--format", "{{.MemUsage}}", ...names]).split("\n").map((line) => mib(line.split(" / ")[0]));
    lines.push(
      `  idle memory per workspace: median ${percentile(stats, 50).toFixed(1)} MiB, max ${Math.max(...stats).toFixed(1)} MiB (image ${workspaceImage()})`,
    );

    // Through Caddy: the local stack's container, else the pinned Caddy binary on the host.
    const [a, b] = [keys[0], keys[1]];
    let site: (key: string) => Target;
    if (stack.local) {
      const ca = await proxyRootCa();
      site = (key) => ({ port: stack.httpsPort, hostname: stack.hostname(key), ca });
    } else {
      const [httpPort, httpsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
      const sites = [a, b].map((k) => fixtureClient(stack.slug(k), { port: stack.port(k) }));
      const started = await startCaddy(
        renderCaddyfile(sites, {
          acmeEmail: "ops@example.com",
          httpPort,
          httpsPort,
          adminAddress: `127.0.0.1:${adminPort}`,
          issuer: "internal",
          upstream: (client) => `127.0.0.1:${client.port}`,
        }),
        `127.0.0.1:${adminPort}`,
      );
      caddy = started;
      site = (key) => ({ port: httpsPort, hostname: sites[key === a ? 0 : 1].hostname, ca: started.rootCa });
    }
    const target = site(b);
    for (let i = 0; i < 200 && !(await request(target, "/health").then((r) => r.status === 200, () => false)); i++) await sleep(50);

    // Noisy neighbour: B's latency through Caddy, idle vs while A burns its whole CPU limit.
    const measure = async () => {
      const agent = new https.Agent({ keepAlive: true, maxSockets: LATENCY_LOAD.concurrency });
      const result = await runLoad(LATENCY_LOAD, async () => {
        const reply = await request({ ...target, agent }, "/health");
        return reply.status === 200 ? undefined : `HTTP ${reply.status}`;
      });
      agent.destroy();
      return result;
    };
    const idle = await measure();
    const directAgent = new http.Agent({ keepAlive: true, maxSockets: LATENCY_LOAD.concurrency });
    const direct = await runLoad(LATENCY_LOAD, async () => {
      const reply = await request({ port: stack.port(b), hostname: "localhost", agent: directAgent }, "/health");
      return reply.status === 200 ? undefined : `HTTP ${reply.status}`;
    });
    directAgent.destroy();
    lines.push(`  client B /health, idle, keep-alive: direct p50/p99 ${percentile(direct.latenciesMs, 50).toFixed(2)}/${percentile(direct.latenciesMs, 99).toFixed(2)} ms`);
    const cpus = docker(["inspect", "-f", "{{.HostConfig.NanoCpus}}", `mai-${stack.slug(a)}`]);
    const loops = Math.max(1, Math.ceil(Number(cpus) / 1e9)) + 1;
    docker(["exec", "-d", `mai-${stack.slug(a)}`, "sh", "-c", `for i in $(seq ${loops}); do (while :; do :; done) & done; wait`]);
    await sleep(1500);
    const aCpu = docker(["stats", "--no-stream", "--format", "{{.CPUPerc}}", `mai-${stack.slug(a)}`]);
    const noisy = await measure();
    docker(["restart", "-t", "1", `mai-${stack.slug(a)}`]); // ends the burners
    const ratio = percentile(noisy.latenciesMs, 99) / percentile(idle.latenciesMs, 99);
    lines.push(
      `  noisy neighbour (A at ${aCpu} of one CPU, limit ${Number(cpus) / 1e9} CPU): B through Caddy p50/p99 idle ` +
        `${percentile(idle.latenciesMs, 50).toFixed(2)}/${percentile(idle.latenciesMs, 99).toFixed(2)} ms, with A busy ` +
        `${percentile(noisy.latenciesMs, 50).toFixed(2)}/${percentile(noisy.latenciesMs, 99).toFixed(2)} ms: p99 x${ratio.toFixed(2)} (goal <= 1.2); failed ${idle.failed}/${noisy.failed}`,
    );

    if (stack.local) lines.push(...(await reloadsUnderLoad(applier, stack, site(b))));
    else lines.push("  reloads in the container: not measured (needs the local stack, whose Caddy runs in a container on this engine)");
    return lines;
  } finally {
    await caddy?.stop();
    const problems = applier.cleanup();
    stack.dispose();
    release();
    if (problems.length) lines.push(`  cleanup problems: ${problems.join("; ")}`);
  }
}

/**
 * Failed requests per traffic kind while the program's reload runs RELOADS times in the Caddy
 * container: each time a client is added and applied as `pulumi up` would (Caddyfile upload,
 * then the validating apply script and `caddy reload` inside the container).
 */
async function reloadsUnderLoad(applier: EngineApplier, stack: EngineStack, target: Target): Promise<string[]> {
  const check = (status: number, body: string) => (status === 200 && body.includes('"status"') ? undefined : `HTTP ${status}`);
  const sockets = await Promise.all(Array.from({ length: 5 }, () => connectWebSocket({ port: target.port, hostname: target.hostname, path: "/ws", ca: target.ca! })));
  const streams = Array.from({ length: 5 }, () => timeStream(target, `/api/stream?events=${RELOADS * 15 + 10}&interval_ms=100`, { "Accept-Encoding": "identity" }));
  let done = false;
  const plan = { concurrency: 4, maxRequests: 1_000_000, maxDurationMs: 60_000, stop: () => done };
  const h2 = new Http2Client(target);
  const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 4 });
  let staleRetries = 0;
  const loads = Promise.all([
    runLoad(plan, async () => {
      const r = await h2.get("/health");
      return check(r.status, r.body);
    }),
    runLoad(plan, async () => {
      const t = { ...target, agent: keepAlive };
      const r = await request(t, "/health").catch(async (error: unknown) => {
        if (!isStaleConnectionError(error)) throw error;
        staleRetries++;
        return request(t, "/health");
      });
      return check(r.status, r.body);
    }),
    runLoad(plan, async () => {
      const r = await request(target, "/health");
      return check(r.status, r.body);
    }),
  ]);
  const reloadMs: number[] = [];
  for (let i = 1; i <= RELOADS; i++) {
    await sleep(700);
    await stack.writeClient({ key: `r${i}` });
    const resources = await stack.evaluate();
    const started = performance.now();
    await applier.up(resources);
    reloadMs.push(performance.now() - started);
  }
  await sleep(700);
  done = true;
  const [h2Load, keepAliveLoad, freshLoad] = await loads;
  h2.close();
  keepAlive.destroy();
  let socketsAlive = 0;
  for (const socket of sockets) {
    socket.send("still-there");
    if ((await socket.nextMessage(1000).catch(() => undefined)) === "still-there") socketsAlive++;
    socket.close();
  }
  const finished = await Promise.allSettled(streams);
  const complete = finished.filter((o) => o.status === "fulfilled" && o.value.body.toString("utf8").includes("data: [DONE]")).length;
  const failures = (r: { failures: string[] }) => (r.failures.length ? ` (${r.failures.slice(0, 3).join("; ")})` : "");
  return [
    `  ${RELOADS} reloads in the Caddy container under load (client added and applied; apply took ${reloadMs.map((ms) => (ms / 1000).toFixed(1)).join(", ")} s):`,
    `    HTTP/2 (browsers)              ${h2Load.ok} ok, ${h2Load.failed} failed, ${h2.retried} refused-and-retried${failures(h2Load)}`,
    `    HTTP/1.1 keep-alive            ${keepAliveLoad.ok} ok, ${keepAliveLoad.failed} failed, ${staleRetries} idle-connection retries${failures(keepAliveLoad)}`,
    `    HTTP/1.1 new connection each   ${freshLoad.ok} ok, ${freshLoad.failed} failed${failures(freshLoad)}`,
    `    websockets kept open           ${socketsAlive}/${sockets.length}`,
    `    streams completed              ${complete}/${streams.length}`,
  ];
}

if (require.main === module) {
  runEngineBench().then(
    (lines) => console.log(lines.join("\n")),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exitCode = 1;
    },
  );
}
