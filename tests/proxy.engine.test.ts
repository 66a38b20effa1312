/**
 * Real engine, local stack: Caddy in its container on the host network, as the program declares
 * it (applied with its Caddyfile upload and validated reload, never re-typed), in front of the
 * client containers. Routing over HTTPS with Caddy's internal CA, the 503 page of a suspended
 * client, the redirect of a custom hostname's default name, listeners on 127.0.0.1 only, a reload
 * under load when a client is added (as `pulumi up` applies it), and a restart of the proxy.
 */
import { spawnSync } from "node:child_process";
import https from "node:https";
import { describe, expect, it } from "vitest";
import { docker, runId } from "./support/applier";
import { useAppliedEngineStack } from "./support/appliedEngineStack";
import { type EngineStack, proxyRootCa } from "./support/engineStack";
import { Http2Client, request, runLoad, timeStream, type Target } from "./support/httpClient";
import { connectWebSocket } from "./support/httpWebSocket";

const id = runId();
let stack: EngineStack;
let rootCa: Buffer;

const PROXY = "mai-proxy";
const customHostname = () => `chat-${stack.slug("b")}.example.test`;
const site = (hostname: string): Target => ({ port: stack.httpsPort, hostname, ca: rootCa });
/** The workspace's name as the stand-in reports it at /api/config (WEBUI_NAME). */
const nameAt = async (hostname: string) => JSON.parse((await request(site(hostname), "/api/config")).body).name as string;

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every active client answers /health through Caddy. */
async function allAnswer(keys: string[]): Promise<void> {
  for (const key of keys) {
    const hostname = key === "b" ? customHostname() : stack.hostname(key);
    await until(`${hostname} through Caddy`, async () => (await request(site(hostname), "/health", { timeoutMs: 2000 })).status === 200);
  }
}

const applier = useAppliedEngineStack({
  runId: id,
  clients: [
    { key: "a", yaml: "name: Alpha\n" },
    { key: "b", yaml: `name: Bravo\nhostname: chat-t${id}-b.example.test\n` },
    { key: "s", yaml: "name: Suspended\nstatus: suspended\n" },
  ],
  localOnly: true,
  applied: async (applied) => {
    stack = applied;
    rootCa = await proxyRootCa();
    await allAnswer(["a", "b"]);
  },
});

describe("routing through the Caddy container", () => {
  it("every active client answers /health over HTTPS with the internal CA, each from its own workspace", async () => {
    for (const [hostname, name] of [[stack.hostname("a"), "Alpha"], [customHostname(), "Bravo"]]) {
      expect((await request(site(hostname), "/health")).status).toBe(200);
      expect(await nameAt(hostname)).toBe(`mAI - ${name}`);
    }
  });

  it("a suspended client gets the 503 page", async () => {
    const reply = await request(site(stack.hostname("s")), "/");
    expect(reply.status).toBe(503);
    expect(reply.body).toContain("The workspace of Suspended is suspended.");
  });

  it("a custom hostname's default name redirects to it, port and path kept", async () => {
    const reply = await request(site(stack.hostname("b")), "/some/path?q=1");
    expect({ status: reply.status, location: reply.headers.location }).toEqual({
      status: 308,
      location: `https://${customHostname()}:${stack.httpsPort}/some/path?q=1`,
    });
  });

  it("the proxy publishes no ports and listens on 127.0.0.1 only", () => {
    const proxy = JSON.parse(docker(["inspect", PROXY]))[0];
    expect(proxy.HostConfig.NetworkMode).toBe("host");
    expect(proxy.HostConfig.PortBindings ?? {}).toEqual({});
    const pid = String(proxy.State.Pid);
    const listeners = spawnSync("ss", ["-Hlntup"], { encoding: "utf8" })
      .stdout.split("\n")
      .filter((line) => line.includes(`pid=${pid},`))
      .map((line) => line.trim().split(/\s+/)[4]);
    expect(listeners).toContain(`127.0.0.1:${stack.httpsPort}`);
    expect(listeners.filter((address) => !address.startsWith("127.0.0.1:"))).toEqual([]);
  });
});

describe("reload under load (a client added, applied as pulumi up would)", () => {
  it("routes the new client, keeps websockets and streams, and never answers wrongly", async () => {
    const hostname = stack.hostname("a");
    const sockets = await Promise.all(Array.from({ length: 3 }, () => connectWebSocket({ port: stack.httpsPort, hostname, path: "/ws", ca: rootCa })));
    for (const socket of sockets) {
      socket.send("before");
      expect(await socket.nextMessage()).toBe("before");
    }
    // Outcomes, not bare promises: a stream cut by the reload is a failed assertion below. The
    // reload starts only once every stream is flowing: a request still being sent in the ~50 ms
    // around a reload can be lost (README, "Proxy reloads"), which is not what this checks.
    const flowing: Promise<void>[] = [];
    const streams = Array.from({ length: 3 }, () => {
      let started!: () => void;
      flowing.push(new Promise<void>((resolve) => (started = resolve)));
      return timeStream(site(hostname), "/api/stream?events=80&interval_ms=100", { "Accept-Encoding": "identity" }, () => started()).then(
        (timings) => (timings.body.toString("utf8").includes("data: [DONE]") ? "complete" : "incomplete"),
        (error: Error) => {
          started();
          return `failed: ${error.message}`;
        },
      );
    });
    await Promise.all(flowing);
    let done = false;
    const wrong = new Set<string>();
    const check = (status: number, body: string) => {
      if (status !== 200 || !body.includes("mAI - Alpha")) wrong.add(`HTTP ${status} ${body.slice(0, 60)}`);
      return undefined;
    };
    const plan = { concurrency: 3, maxRequests: 1_000_000, maxDurationMs: 30_000, stop: () => done };
    const h2 = new Http2Client(site(hostname));
    const agent = new https.Agent({ keepAlive: true, maxSockets: 3 });
    const loads = Promise.all([
      runLoad(plan, async () => {
        const r = await h2.get("/api/config");
        return check(r.status, r.body);
      }),
      runLoad(plan, async () => {
        const r = await request({ ...site(hostname), agent }, "/api/config");
        return check(r.status, r.body);
      }),
    ]);

    await stack.writeClient({ key: "n", yaml: "name: Newcomer\n" });
    const result = await applier.up(await stack.evaluate());
    await allAnswer(["n"]);
    await new Promise((r) => setTimeout(r, 500));
    done = true;
    const [h2Load, h1Load] = await loads;
    h2.close();
    agent.destroy();

    // The reload ran (the upload and reload commands re-ran) and the proxy container was kept.
    expect(result.replaced.filter((k) => k.includes("proxy"))).toEqual(expect.arrayContaining([expect.stringMatching(/proxy-reload$/)]));
    expect(result.replaced.concat(result.updated).some((k) => k.includes("Container"))).toBe(false);
    expect(await nameAt(stack.hostname("n"))).toBe("mAI - Newcomer");
    expect([...wrong]).toEqual([]);
    expect(h2Load.ok + h1Load.ok).toBeGreaterThan(0);
    for (const socket of sockets) {
      socket.send("after");
      expect(await socket.nextMessage()).toBe("after");
      socket.close();
    }
    expect(await Promise.all(streams)).toEqual(["complete", "complete", "complete"]);
  }, 90_000);
});

describe("restart of the proxy container", () => {
  it("every active client answers again through Caddy after docker restart", async () => {
    const before = JSON.parse(docker(["inspect", PROXY]))[0].State.StartedAt;
    docker(["restart", PROXY]);
    expect(JSON.parse(docker(["inspect", PROXY]))[0].State.StartedAt).not.toBe(before);
    await allAnswer(["a", "b", "n"]);
    expect((await request(site(stack.hostname("s")), "/")).status).toBe(503);
  }, 60_000);
});
