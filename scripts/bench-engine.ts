/**
 * Real-engine benchmark (figures, never pass/fail), on the private test engine (never the
 * machine's engine) with a real `pulumi up` of the program through the Automation API
 * (tests/support/realStack.ts), the local stack's configuration and the workspace stand-in:
 *
 * - a stack of 3 clients and one of 20: the first `up`, a no-op preview, a no-op `up`, and an `up`
 *   adding one client (clients with small limits, so that 20 fit this 2-core machine);
 * - idle memory per workspace (`docker stats`, the 20-client stack);
 * - the noisy neighbour: client A burning CPU at its limit (0.5 CPU, 25 % of a 2-CPU host) while
 *   client B's /health latency through the stack's Caddy is measured, quiet and noisy rounds
 *   alternated (this machine's other load drifts);
 * - requests lost while Caddy reloads under load: HTTP/2 and HTTP/1.1 keep-alive (and a new
 *   connection per request) to B through Caddy while three real `pulumi up`s each add a client
 *   (the engine uploads the Caddyfile and runs the validated reload), counted per `up` and within
 *   the engine's reload step.
 *
 * It runs itself again in a network namespace of its own where it can (root, `unshare`): the
 * stack's Caddy runs on the host network and, while the program gives it no admin address of its
 * own, shares Caddy's default admin address 127.0.0.1:2019 with every other Caddy there (a user's
 * local stack, another run's proxy), so a reload could land in theirs; where it cannot, it waits
 * for no other Caddy to listen there, or says why it measured nothing.
 *
 * Each part catches its own failure and prints "not measured: <why>". Holds the engine lock;
 * wipes the test engine afterwards. Run alone: `npx tsx scripts/bench-engine.ts`.
 */
import http from "node:http";
import https from "node:https";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { Http2Client, isStaleConnectionError, percentile, request, runLoad, type LoadResult, type Target } from "../tests/support/httpClient";
import { connectWebSocket } from "../tests/support/httpWebSocket";
import { localServerName, type PrivateEngine } from "../tests/support/privateEngine";
import { RealStack, proxyRootCa } from "../tests/support/realStack";
import { newRunId } from "../tests/support/engine";
import { changeSummary, countWithin, median, memoryUsageMib, notMeasured, ratioText, seconds } from "./lib/benchFigures";
import { clientYaml, dockerOn, holdTestEngine, inOwnNetworkNamespace, runsInOwnNetworkNamespace, sharedAdminHazard, sleep, timed, untilAnswering } from "./lib/realEngineBench";

/** Limits of the many-client stacks: 20 of them fit 2 cores and leave room for the rest. */
const SMALL = { cpus: 0.1, memory: "512M", reservedCpus: 0.1, reservedMemory: "64M" };
/** The noisy neighbour's pair: 0.5 CPU each, 25 % of this 2-CPU host. */
const HALF_CPU = { cpus: 0.5, memory: "512M", reservedCpus: 0.1, reservedMemory: "64M" };
const NOISY_ROUNDS = 3;
const NOISY_ROUND = { concurrency: 2, maxRequests: 4000, maxDurationMs: 5000 };
const RELOADS = 3;

const progress = (message: string) => console.error(`bench-engine: ${message}`);
const loadNow = () => os.loadavg()[0].toFixed(1);

/** Runs the benchmark and returns the lines to print. */
export async function runEngineBench(): Promise<string[]> {
  const isolated = await inOwnNetworkNamespace(__filename);
  if (isolated) return isolated;
  const where = runsInOwnNetworkNamespace() ? "a private dockerd in a network namespace of its own" : "a private dockerd";
  const lines = [`Real-engine benchmark (real \`pulumi up\` through the Automation API on ${where}, workspace stand-in; ${os.cpus().length} CPUs, load ${loadNow()})`];
  const hazard = await sharedAdminHazard(undefined, (who) => progress(`waiting for another Caddy on the default admin address to go (${who})`));
  if (hazard) return [...lines, `  every real-engine figure: not measured: ${hazard}`, testSuiteLine()];
  let held: Awaited<ReturnType<typeof holdTestEngine>>;
  try {
    held = await holdTestEngine(() => progress("waiting for the engine lock (another engine test or bench holds it)"));
  } catch (error) {
    return [...lines, notMeasured("every real-engine figure", error), testSuiteLine()];
  }
  try {
    const appeared = await sharedAdminHazard(0);
    if (appeared) {
      lines.push(`  every real-engine figure: not measured: ${appeared}`);
      return lines;
    }
    lines.push(`  engine: Docker ${await dockerOn(held.engine.host, ["version", "-f", "{{.Server.Version}}"])}, private daemon ${held.engine.host}`);
    lines.push(...(await threeClients(held.engine)));
    held.engine.wipe();
    lines.push(...(await twentyClients(held.engine)));
  } catch (error) {
    lines.push(notMeasured("the rest of the real-engine benchmark", error));
  } finally {
    await held.release().catch((error: unknown) => lines.push(notMeasured("cleanup of the test engine", error)));
  }
  lines.push(testSuiteLine());
  return lines;
}

/** `npm test` is not run from here: it would hold the machine for minutes and the engine lock meanwhile. */
function testSuiteLine(): string {
  return "  npm test wall time (warm): not measured: the bench does not run the suite and no test run keeps a report to read (time `npm test` or `bash .ci/run`)";
}

/** A new stack on the engine with the given clients (not deployed). */
async function newStack(engine: PrivateEngine, clients: { key: string; yaml: string }[]): Promise<RealStack> {
  return RealStack.create({ runId: newRunId(), clients, servers: { [localServerName()]: { dockerHost: engine.host } } });
}

/**
 * First `up` (and until every client answers /health), no-op preview, no-op `up`, one client added.
 * Returns the lines and whether the stack was deployed (the later parts need it).
 */
async function upFigures(stack: RealStack, keys: string[], label: string): Promise<{ lines: string[]; deployed: boolean }> {
  const lines: string[] = [];
  const row = (what: string, ms: number, detail: string) => `  ${label.padEnd(11)} ${what.padEnd(20)} ${seconds(ms).padStart(7)}  (${detail})`;
  progress(`${label}: first up`);
  try {
    const first = await timed(stack, "up");
    const answering = await untilAnswering(keys.map((k) => stack.port(k)));
    lines.push(row("first up", first.ms, `${changeSummary(first)}; every client answered /health ${seconds(answering)} later`));
  } catch (error) {
    progress(`${label}: first up failed: ${String(error)}`);
    lines.push(notMeasured(`${label}: first up`, error));
    return { lines, deployed: false };
  }
  for (const [what, operation] of [["no-op preview", "preview"], ["no-op up", "up"]] as const) {
    progress(`${label}: ${what}`);
    try {
      const result = await timed(stack, operation);
      lines.push(row(what, result.ms, changeSummary(result)));
    } catch (error) {
      lines.push(notMeasured(`${label}: ${what}`, error));
    }
  }
  progress(`${label}: add one client`);
  try {
    await stack.writeClient({ key: "added", yaml: clientYaml("Added client", SMALL) });
    const added = await timed(stack, "up");
    const answering = await untilAnswering([stack.port("added")]);
    lines.push(row("add one client up", added.ms, `${changeSummary(added)}; it answered /health ${seconds(answering)} later`));
  } catch (error) {
    lines.push(notMeasured(`${label}: add one client up`, error));
  }
  return { lines, deployed: true };
}

async function threeClients(engine: PrivateEngine): Promise<string[]> {
  const stack = await newStack(engine, [
    { key: "a", yaml: clientYaml("Noisy A", HALF_CPU) },
    { key: "b", yaml: clientYaml("Quiet B", HALF_CPU) },
    { key: "c", yaml: clientYaml("Client C", SMALL) },
  ]);
  try {
    const { lines, deployed } = await upFigures(stack, ["a", "b", "c"], "3 clients");
    if (!deployed) return [...lines, "  noisy neighbour: not measured: the 3-client stack was not deployed", "  reloads under load: not measured: the 3-client stack was not deployed"];
    let site: (key: string) => Target;
    try {
      const ca = await proxyRootCa(stack.dockerHost());
      site = (key) => ({ port: stack.httpsPort(), hostname: stack.hostname(key), ca });
      await untilThroughCaddy(site("b"));
    } catch (error) {
      return [...lines, notMeasured("noisy neighbour and reloads (Caddy of the stack)", error)];
    }
    try {
      progress("noisy neighbour");
      lines.push(...(await noisyNeighbour(stack, site("b"))));
    } catch (error) {
      lines.push(notMeasured("noisy neighbour", error));
    }
    try {
      progress("reloads under load");
      lines.push(...(await reloadsUnderLoad(stack, site)));
    } catch (error) {
      lines.push(notMeasured("reloads under load", error));
    }
    return lines;
  } finally {
    stack.dispose();
  }
}

async function twentyClients(engine: PrivateEngine): Promise<string[]> {
  const keys = Array.from({ length: 20 }, (_, i) => `c${String(i + 1).padStart(2, "0")}`);
  const stack = await newStack(engine, keys.map((key) => ({ key, yaml: clientYaml(`Client ${key}`, SMALL) })));
  try {
    const { lines, deployed } = await upFigures(stack, keys, "20 clients");
    if (!deployed) return [...lines, "  idle memory per workspace: not measured: the 20-client stack was not deployed"];
    try {
      await sleep(5000); // past the start-up allocations
      const names = [...keys, "added"].map((k) => stack.container(k));
      const cells = (await dockerOn(stack.dockerHost(), ["stats", "--no-stream", "--format", "{{.MemUsage}}", ...names])).split("\n");
      const mib = cells.map(memoryUsageMib);
      const proxy = memoryUsageMib(await dockerOn(stack.dockerHost(), ["stats", "--no-stream", "--format", "{{.MemUsage}}", "mai-proxy"]));
      lines.push(
        `  idle memory per workspace (docker stats, ${mib.length} stand-in containers, limit ${SMALL.memory}): median ${median(mib).toFixed(1)} MiB, ` +
          `min ${Math.min(...mib).toFixed(1)}, max ${Math.max(...mib).toFixed(1)}; Caddy ${proxy.toFixed(1)} MiB`,
      );
    } catch (error) {
      lines.push(notMeasured("idle memory per workspace", error));
    }
    return lines;
  } finally {
    stack.dispose();
  }
}

async function untilThroughCaddy(target: Target, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  for (;;) {
    try {
      const reply = await request(target, "/health", { timeoutMs: 3000 });
      if (reply.status === 200) return;
      last = `HTTP ${reply.status}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) throw new Error(`${target.hostname} did not answer through Caddy within ${timeoutMs / 1000} s (${last})`);
    await sleep(200);
  }
}

/** CPU time a container has used so far, in microseconds (its own cgroup, v1 or v2). */
async function containerCpuMicros(host: string, container: string): Promise<number> {
  const v1 = "/sys/fs/cgroup/cpuacct/cpuacct.usage"; // nanoseconds; v2's cpu.stat counts microseconds
  const script = `if [ -e ${v1} ]; then echo $(( $(cat ${v1}) / 1000 )); else sed -n 's/^usage_usec //p' /sys/fs/cgroup/cpu.stat; fi`;
  return Number(await dockerOn(host, ["exec", container, "sh", "-c", script]));
}

/** /health with keep-alive (through Caddy when the target has a CA), one bounded round. */
async function latencyRound(target: Target): Promise<LoadResult> {
  const options = { keepAlive: true, maxSockets: NOISY_ROUND.concurrency };
  const agent = target.ca ? new https.Agent(options) : new http.Agent(options);
  try {
    return await runLoad(NOISY_ROUND, async () => {
      const reply = await request({ ...target, agent }, "/health");
      return reply.status === 200 ? undefined : `HTTP ${reply.status}`;
    });
  } finally {
    agent.destroy();
  }
}

async function noisyNeighbour(stack: RealStack, target: Target): Promise<string[]> {
  const host = stack.dockerHost();
  const noisy = stack.container("a");
  const limit = Number(await dockerOn(host, ["inspect", "-f", "{{.HostConfig.NanoCpus}}", noisy])) / 1e9;
  await latencyRound(target); // warm-up: connections, Caddy's and the stand-in's first requests
  const quiet: number[] = [];
  const busy: number[] = [];
  const roundRatios: string[] = [];
  const aShares: number[] = [];
  let failed = 0;
  for (let round = 0; round < NOISY_ROUNDS; round++) {
    const q = await latencyRound(target);
    // Two burners for a 0.5-CPU limit: the quota, not a lack of work, holds A back.
    const burnSeconds = Math.ceil(NOISY_ROUND.maxDurationMs / 1000) + 3;
    const burn = await request({ port: stack.port("a"), hostname: "localhost" }, `/api/burn?seconds=${burnSeconds}&workers=2`, { method: "POST" });
    if (burn.status !== 202) throw new Error(`A's /api/burn answered HTTP ${burn.status}`);
    const burnStarted = performance.now();
    await sleep(1000);
    const cpuBefore = await containerCpuMicros(host, noisy);
    const measuredFrom = performance.now();
    const n = await latencyRound(target);
    const cpuAfter = await containerCpuMicros(host, noisy);
    aShares.push((cpuAfter - cpuBefore) / 1000 / (performance.now() - measuredFrom));
    quiet.push(...q.latenciesMs);
    busy.push(...n.latenciesMs);
    failed += q.failed + n.failed;
    roundRatios.push(ratioText(percentile(n.latenciesMs, 99), percentile(q.latenciesMs, 99)));
    await sleep(Math.max(0, burnSeconds * 1000 + 500 - (performance.now() - burnStarted))); // the burners end
  }
  const direct = await latencyRound({ port: stack.port("b"), hostname: "localhost" });
  const p = (values: number[], q: number) => percentile(values, q).toFixed(2);
  const ratio = percentile(busy, 99) / percentile(quiet, 99);
  return [
    `  noisy neighbour: A burning at ${median(aShares).toFixed(2)} CPU (limit ${limit} = ${((limit / os.cpus().length) * 100).toFixed(0)} % of the host), ` +
      `B's /health through Caddy (HTTPS keep-alive, ${NOISY_ROUND.concurrency} in flight, ${NOISY_ROUNDS} quiet and ${NOISY_ROUNDS} noisy rounds alternated, load ${loadNow()}):`,
    `    quiet p50/p99 ${p(quiet, 50)}/${p(quiet, 99)} ms (${quiet.length} requests), noisy p50/p99 ${p(busy, 50)}/${p(busy, 99)} ms (${busy.length} requests); ` +
      `p99 noisy/quiet x${ratioText(percentile(busy, 99), percentile(quiet, 99))} (target <= 1.2: ${ratio <= 1.2 ? "met" : "not met"}); per round x${roundRatios.join(", x")}; failed ${failed}`,
    `    for scale, B quiet on its own port (no Caddy, HTTP keep-alive): p50/p99 ${p(direct.latenciesMs, 50)}/${p(direct.latenciesMs, 99)} ms (${direct.latenciesMs.length} requests)`,
  ];
}

/** Completion times of a load's answered and failed requests. */
interface Timeline {
  ok: number[];
  failed: number[];
}

async function reloadsUnderLoad(stack: RealStack, site: (key: string) => Target): Promise<string[]> {
  const target = site("b");
  const check = (status: number, body: string) => (status === 200 && body.includes('"status"') ? undefined : `HTTP ${status}`);
  const sockets = await Promise.all(Array.from({ length: 3 }, () => connectWebSocket({ port: target.port, hostname: target.hostname, path: "/ws", ca: target.ca! })));
  let done = false;
  const plan = { concurrency: 2, maxRequests: 10_000_000, maxDurationMs: 15 * 60_000, stop: () => done };
  const h2 = new Http2Client(target);
  const keepAlive = new https.Agent({ keepAlive: true, maxSockets: plan.concurrency });
  let staleRetries = 0;
  const timelines = { h2: { ok: [], failed: [] } as Timeline, keepAlive: { ok: [], failed: [] } as Timeline, fresh: { ok: [], failed: [] } as Timeline };
  /** Records when each request ended and how. */
  const timedSend = (timeline: Timeline, send: () => Promise<string | undefined>) => async () => {
    try {
      const failure = await send();
      (failure === undefined ? timeline.ok : timeline.failed).push(performance.now());
      return failure;
    } catch (error) {
      timeline.failed.push(performance.now());
      throw error;
    }
  };
  const loads = Promise.all([
    runLoad(plan, timedSend(timelines.h2, async () => {
      const r = await h2.get("/health");
      return check(r.status, r.body);
    })),
    runLoad(plan, timedSend(timelines.keepAlive, async () => {
      const t = { ...target, agent: keepAlive };
      // What browsers do: a request on an idle connection the server closed just then is retried.
      const r = await request(t, "/health").catch(async (error: unknown) => {
        if (!isStaleConnectionError(error)) throw error;
        staleRetries++;
        return request(t, "/health");
      });
      return check(r.status, r.body);
    })),
    runLoad(plan, timedSend(timelines.fresh, async () => {
      const r = await request(target, "/health");
      return check(r.status, r.body);
    })),
  ]);
  const ups: { ms: number; reload?: { start: number; end: number | undefined }; started: number; ended: number; routed: boolean; proxyChanges: string }[] = [];
  let upError: unknown;
  try {
    await sleep(1500);
    for (let i = 1; i <= RELOADS; i++) {
      await stack.writeClient({ key: `r${i}`, yaml: clientYaml(`Reload ${i}`, SMALL) });
      const result = await timed(stack, "up");
      const routed = await untilAnswering([stack.port(`r${i}`)]).then(() => untilThroughCaddy(site(`r${i}`))).then(() => true, () => false);
      const proxyChanges = [...result.replaced, ...result.updated].filter((k) => /proxy/.test(k)).map((k) => k.split("::")[1]).join(", ");
      ups.push({ ms: result.ms, reload: result.reload, started: result.started, ended: result.ended, routed, proxyChanges });
      await sleep(1000);
    }
  } catch (error) {
    upError = error;
  } finally {
    done = true;
  }
  const [h2Load, keepAliveLoad, freshLoad] = await loads;
  h2.close();
  keepAlive.destroy();
  let socketsAlive = 0;
  for (const socket of sockets) {
    socket.send("still-there");
    if ((await socket.nextMessage(2000).catch(() => undefined)) === "still-there") socketsAlive++;
    socket.close();
  }
  if (ups.length === 0) throw upError;

  const failures = (r: LoadResult) => (r.failures.length ? `; ${r.failures.slice(0, 3).join("; ")}` : "");
  const perUp = (timeline: Timeline) =>
    ups
      .map((u) => {
        const inUp = countWithin(timeline.ok, u.started, u.ended) + countWithin(timeline.failed, u.started, u.ended);
        const lostInUp = countWithin(timeline.failed, u.started, u.ended);
        const inReload = u.reload?.end === undefined ? "?" : String(countWithin(timeline.ok, u.reload.start, u.reload.end) + countWithin(timeline.failed, u.reload.start, u.reload.end));
        return `${lostInUp}/${inUp} (${inReload} in the reload step)`;
      })
      .join(", ");
  const lines = [
    `  reloads under load: ${ups.length} real \`pulumi up\`s each adding a client (up ${ups.map((u) => seconds(u.ms)).join(", ")}; ` +
      `reload step ${ups.map((u) => (u.reload?.end === undefined ? "not seen" : seconds(u.reload.end - u.reload.start))).join(", ")}; ` +
      `re-run: ${ups[0].proxyChanges || "nothing of the proxy"}; new client routed through Caddy: ${ups.map((u) => (u.routed ? "yes" : "NO")).join(", ")}), load ${loadNow()}`,
    `    lost/sent per up: HTTP/2 ${perUp(timelines.h2)}`,
    `                      HTTP/1.1 keep-alive ${perUp(timelines.keepAlive)}`,
    `                      HTTP/1.1 new connection each ${perUp(timelines.fresh)}`,
    `    whole run: HTTP/2 ${h2Load.ok} ok, ${h2Load.failed} failed, ${h2.retried} refused-and-retried${failures(h2Load)}`,
    `               HTTP/1.1 keep-alive ${keepAliveLoad.ok} ok, ${keepAliveLoad.failed} failed, ${staleRetries} idle-connection retries${failures(keepAliveLoad)}`,
    `               HTTP/1.1 new connection each ${freshLoad.ok} ok, ${freshLoad.failed} failed${failures(freshLoad)}`,
    `    websockets kept open across the reloads: ${socketsAlive}/${sockets.length}`,
  ];
  if (upError !== undefined) lines.push(notMeasured(`reload ${ups.length + 1}`, upError));
  return lines;
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
