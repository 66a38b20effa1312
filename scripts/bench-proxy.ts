/**
 * Proxy benchmark on loopback: the real Caddy release serving the rendered Caddyfile in front of a
 * local stand-in workspace. Measures requests/s and latency direct vs through Caddy, time to first
 * chunk of a streamed response, and what a reload under load costs (failed requests, dropped
 * websockets and streams). Bounded in count and time. Run alone: `npx tsx scripts/bench-proxy.ts`.
 */
import http from "node:http";
import https from "node:https";
import { renderCaddyfile } from "../policy/caddyfile";
import { fixtureClient } from "../tests/support/caddyFixtures";
import { freePort, startCaddy } from "../tests/support/caddyProcess";
import {
  Http2Client,
  isStaleConnectionError,
  percentile,
  request,
  runLoad,
  timeStream,
  type LoadResult,
  type Target,
} from "../tests/support/httpClient";
import { connectWebSocket } from "../tests/support/httpWebSocket";
import { startFakeWorkspace } from "../tests/support/httpWorkspace";

const LOAD = { concurrency: 16, maxRequests: 4000, maxDurationMs: 5000 };
const TTFC_SAMPLES = 30;
const RELOADS = 3;

function summary(label: string, result: LoadResult): string {
  const rate = (result.ok / result.elapsedMs) * 1000;
  return (
    `${label.padEnd(34)} ${rate.toFixed(0).padStart(6)} req/s  p50 ${percentile(result.latenciesMs, 50).toFixed(2)} ms` +
    `  p99 ${percentile(result.latenciesMs, 99).toFixed(2)} ms  failed ${result.failed}`
  );
}

/** Runs the benchmark and returns the lines to print. */
export async function runProxyBench(): Promise<string[]> {
  const lines: string[] = [];
  const client = fixtureClient("alpha");
  const workspace = await startFakeWorkspace(client.slug);
  const [httpPort, httpsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const extra: string[] = [];
  const render = (): string =>
    renderCaddyfile([client, ...extra.map((slug) => fixtureClient(slug))], {
      acmeEmail: "ops@example.com",
      httpPort,
      httpsPort,
      adminAddress: `127.0.0.1:${adminPort}`,
      issuer: "internal",
      upstream: () => `127.0.0.1:${workspace.port}`,
    });
  const caddy = await startCaddy(render(), `127.0.0.1:${adminPort}`);
  const direct: Target = { port: workspace.port, hostname: client.hostname };
  const proxied: Target = { port: httpsPort, hostname: client.hostname, ca: caddy.rootCa };
  const expected = `workspace:alpha host:${client.hostname}`;
  const check = (body: string, status: number): string | undefined =>
    body === expected ? undefined : `HTTP ${status} ${body.slice(0, 60)}`;
  try {
    for (let i = 0; i < 100 && !(await request(proxied, "/whoami").then(() => true, () => false)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    lines.push(`Proxy benchmark (loopback, ${LOAD.concurrency} concurrent, <= ${LOAD.maxRequests} requests or ${LOAD.maxDurationMs / 1000} s each)`);

    const directAgent = new http.Agent({ keepAlive: true, maxSockets: LOAD.concurrency });
    const directRun = await runLoad(LOAD, async () => {
      const reply = await request({ ...direct, agent: directAgent }, "/whoami");
      return reply.body === `workspace:alpha host:${client.hostname}` ? undefined : `HTTP ${reply.status}`;
    });
    directAgent.destroy();
    lines.push(summary("direct (HTTP/1.1 keep-alive)", directRun));

    const proxyAgent = new https.Agent({ keepAlive: true, maxSockets: LOAD.concurrency });
    const h1Run = await runLoad(LOAD, async () => {
      const reply = await request({ ...proxied, agent: proxyAgent }, "/whoami");
      return check(reply.body, reply.status);
    });
    proxyAgent.destroy();
    lines.push(summary("Caddy (HTTPS/1.1 keep-alive)", h1Run));

    const h2 = new Http2Client(proxied);
    const h2Run = await runLoad(LOAD, async () => {
      const reply = await h2.get("/whoami");
      return check(reply.body, reply.status);
    });
    h2.close();
    lines.push(summary("Caddy (HTTP/2, one connection)", h2Run));

    // Time to first chunk: the workspace sends its first chunk 20 ms after the request.
    const ttfc = async (target: Target, agent: http.Agent): Promise<number[]> => {
      const samples: number[] = [];
      for (let i = 0; i < TTFC_SAMPLES; i++) {
        const timings = await timeStream({ ...target, agent }, "/sse?chunks=3&interval=20", {
          "Accept-Encoding": "gzip, br, zstd",
        });
        samples.push(timings.firstChunkMs);
      }
      agent.destroy();
      return samples;
    };
    const directTtfc = await ttfc(direct, new http.Agent({ keepAlive: true }));
    const proxiedTtfc = await ttfc(proxied, new https.Agent({ keepAlive: true }));
    const delta = percentile(proxiedTtfc, 50) - percentile(directTtfc, 50);
    lines.push(
      `time to first SSE chunk (p50/p99)   direct ${percentile(directTtfc, 50).toFixed(1)}/${percentile(directTtfc, 99).toFixed(1)} ms` +
        `  via Caddy ${percentile(proxiedTtfc, 50).toFixed(1)}/${percentile(proxiedTtfc, 99).toFixed(1)} ms` +
        `  added ${delta.toFixed(1)} ms (target < 10 ms: ${delta < 10 ? "met" : "MISSED"})`,
    );

    // Reloads under load, with long-lived connections open.
    const sockets = await Promise.all(
      Array.from({ length: 5 }, () =>
        connectWebSocket({ port: httpsPort, hostname: client.hostname, path: "/ws/socket.io/?EIO=4&transport=websocket", ca: caddy.rootCa }),
      ),
    );
    for (const socket of sockets) await socket.nextMessage();
    const streams = Array.from({ length: 5 }, () =>
      timeStream(proxied, `/sse?chunks=${RELOADS * 10 + 10}&interval=100`, { "Accept-Encoding": "identity" }),
    );
    let done = false;
    const h2Reload = new Http2Client(proxied);
    const keepAliveAgent = new https.Agent({ keepAlive: true, maxSockets: 4 });
    let staleRetries = 0;
    const plan = { concurrency: 4, maxRequests: 1_000_000, maxDurationMs: 20_000, stop: () => done };
    const loads = Promise.all([
      runLoad(plan, async () => {
        const reply = await h2Reload.get("/whoami");
        return check(reply.body, reply.status);
      }),
      runLoad(plan, async () => {
        const target = { ...proxied, agent: keepAliveAgent };
        const reply = await request(target, "/whoami").catch(async (error: unknown) => {
          if (!isStaleConnectionError(error)) throw error;
          staleRetries++;
          return request(target, "/whoami");
        });
        return check(reply.body, reply.status);
      }),
      runLoad(plan, async () => {
        const reply = await request(proxied, "/whoami");
        return check(reply.body, reply.status);
      }),
    ]);
    for (let i = 1; i <= RELOADS; i++) {
      await new Promise((resolve) => setTimeout(resolve, 700));
      extra.push(`extra${i}`);
      const applied = await caddy.apply(render());
      if (applied.code !== 0) throw new Error(`reload ${i} failed:\n${applied.output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 700));
    done = true;
    const [h2Load, keepAliveLoad, freshLoad] = await loads;
    h2Reload.close();
    keepAliveAgent.destroy();
    let socketsAlive = 0;
    for (const socket of sockets) {
      socket.send("still-there");
      const answer = await socket.nextMessage(1000).catch(() => undefined);
      if (answer === "alpha:still-there") socketsAlive++;
      socket.close();
    }
    const finished = await Promise.allSettled(streams);
    const streamsComplete = finished.filter(
      (outcome) =>
        outcome.status === "fulfilled" &&
        (outcome.value.body.toString("utf8").match(/^data: /gm) ?? []).length === RELOADS * 10 + 10,
    ).length;
    lines.push(`${RELOADS} reloads under load:`);
    lines.push(`  HTTP/2 (browsers)                ${h2Load.ok} ok, ${h2Load.failed} failed, ${h2Reload.retried} refused-and-retried`);
    lines.push(`  HTTP/1.1 keep-alive              ${keepAliveLoad.ok} ok, ${keepAliveLoad.failed} failed, ${staleRetries} idle-connection retries`);
    lines.push(
      `  HTTP/1.1 new connection each     ${freshLoad.ok} ok, ${freshLoad.failed} failed` +
        (freshLoad.failures.length > 0 ? ` (${freshLoad.failures.join("; ")})` : ""),
    );
    lines.push(`  websockets kept open             ${socketsAlive}/${sockets.length}`);
    lines.push(`  streams completed                ${streamsComplete}/${streams.length}`);
    return lines;
  } finally {
    await caddy.stop();
    await workspace.close();
  }
}

if (require.main === module) {
  runProxyBench().then(
    (lines) => console.log(lines.join("\n")),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exitCode = 1;
    },
  );
}
