/**
 * The locally built proxy image as the stack deploys it with a real `pulumi up`: the stack
 * declares no command, so the image's default must serve the Caddyfile the stack mounts at
 * /etc/caddy; its state lands in the stack's volumes under /data and /config; the health check the
 * stack declares (busybox wget) passes, inside and as Docker runs it; it proxies HTTPS with the
 * internal CA to a workspace and streams unbuffered; and the stack's reload (`docker exec
 * mai-proxy caddy reload` in host/caddy-apply.sh) serves a changed Caddyfile without a restart.
 */
import { describe, expect, it } from "vitest";
import { LOCAL_PROXY_IMAGE } from "../policy/localImages";
import { proxyHealthcheck } from "../policy/proxyPolicy";
import { PROXY_VOLUMES } from "../policy/sharedNames";
import { docker, inspect, newRunId } from "./support/engine";
import { request, timeStream, type Target } from "./support/httpClient";
import { proxyRootCa } from "./support/realStack";
import { useRealEngineSuite } from "./support/testEngine";

const id = newRunId();
const PROXY = "mai-proxy";
const WAIT_MS = 90_000;
let rootCa: Buffer;

const suite = useRealEngineSuite({
  runId: id,
  clients: [{ key: "w", yaml: "name: Image Test\n" }],
  ready: async ({ stack }) => {
    rootCa = await proxyRootCa(stack.dockerHost(), WAIT_MS);
    await until("the workspace through the proxy", async () => ((await request(site("w"), "/health", { timeoutMs: 5000 })).status === 200 ? true : undefined));
  },
});
const stack = () => suite.stack;
const site = (key: string): Target => ({ port: stack().httpsPort(), hostname: stack().hostname(key), ca: rootCa });

interface ProxyInspect {
  Id: string;
  Config: { Cmd: string[] | null; Healthcheck?: { Test: string[]; Interval: number; Timeout: number; StartPeriod: number; Retries: number } };
  State: { Running: boolean; StartedAt: string; Health?: { Status: string; Log?: { ExitCode: number; Output: string }[] } };
  Mounts: { Type: string; Name?: string; Source: string; Destination: string; RW: boolean }[];
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what} (after ${timeoutMs} ms): ${String(last ?? "no answer")}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe("proxy image as the stack deploys it", () => {
  it("runs Caddy on /etc/caddy/Caddyfile by default, with its state in the stack's volumes under /data and /config", async () => {
    const image = await inspect<{ Config: { Cmd: string[]; Env: string[] } }>(LOCAL_PROXY_IMAGE);
    expect(image.Config.Cmd).toEqual(["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]);
    expect(image.Config.Env).toEqual(expect.arrayContaining(["XDG_DATA_HOME=/data", "XDG_CONFIG_HOME=/config", "HOME=/root"]));
    const proxy = await inspect<ProxyInspect>(PROXY);
    expect(proxy.State.Running).toBe(true);
    // The stack declares no command: the image's is what runs.
    expect(proxy.Config.Cmd).toEqual(image.Config.Cmd);
    const mounts = Object.fromEntries(proxy.Mounts.map((m) => [m.Destination, { type: m.Type, name: m.Name, source: m.Source, rw: m.RW }]));
    expect(mounts["/data"]).toMatchObject({ type: "volume", name: PROXY_VOLUMES.data, rw: true });
    expect(mounts["/config"]).toMatchObject({ type: "volume", name: PROXY_VOLUMES.config, rw: true });
    expect(mounts["/etc/caddy"]).toMatchObject({ type: "bind", source: `${stack().stateDir()}/caddy`, rw: false });
    await until("autosaved config in /config", async () => ((await docker(["exec", PROXY, "ls", "/config/caddy"])).includes("autosave.json") ? true : undefined));
    // The internal CA's root is in /data, i.e. in the stack's retained volume.
    expect((await docker(["exec", PROXY, "ls", "/data/caddy/pki/authorities/local"])).split("\n")).toContain("root.crt");
  }, 180_000);

  it("proxies HTTPS (internal CA) to the workspace, streams unbuffered", async () => {
    const reply = await request(site("w"), "/health");
    expect(JSON.parse(reply.body)).toEqual({ status: true });
    const stream = await timeStream(site("w"), "/api/stream?events=5&interval_ms=300", { "Accept-Encoding": "identity" });
    expect(stream.body.toString().match(/^data: /gm)).toHaveLength(6);
    const early = stream.arrivalsMs.filter((ms) => ms < stream.totalMs - 500);
    expect(early.length, `chunk arrivals ${stream.arrivalsMs.map(Math.round).join(",")}`).toBeGreaterThanOrEqual(2);
  }, 180_000);

  it("the stack's reload (`docker exec mai-proxy caddy reload`) serves a changed Caddyfile without restarting the proxy", async () => {
    const before = await inspect<ProxyInspect>(PROXY);
    await stack().writeClient({ key: "x", yaml: "name: Reload Test\n" });
    const result = await stack().up();
    expect(result.replaced).toEqual(expect.arrayContaining([expect.stringMatching(/::[\w-]*proxy-reload$/)]));
    await until("the new client through the proxy", async () => ((await request(site("x"), "/api/config", { timeoutMs: 5000 })).status === 200 ? true : undefined));
    expect(JSON.parse((await request(site("x"), "/api/config")).body).name).toBe("mAI - Reload Test");
    const after = await inspect<ProxyInspect>(PROXY);
    expect({ id: after.Id, startedAt: after.State.StartedAt }).toEqual({ id: before.Id, startedAt: before.State.StartedAt });
  }, 180_000);

  it("passes the health check the stack declares (busybox sh and wget), inside and as Docker runs it", async () => {
    // The local proxy's own check: its health site on this server's plain-HTTP port.
    const PROXY_HEALTHCHECK = proxyHealthcheck(suite.stack.httpPort());
    const proxy = await inspect<ProxyInspect>(PROXY);
    const seconds = (text: string) => {
      const m = /^(?:(\d+)m)?(\d+)s$/.exec(text);
      if (!m) throw new Error(`unexpected duration ${text}`);
      return Number(m[1] ?? 0) * 60 + Number(m[2]);
    };
    expect(proxy.Config.Healthcheck).toEqual({
      Test: PROXY_HEALTHCHECK.tests,
      Interval: seconds(PROXY_HEALTHCHECK.interval) * 1e9,
      Timeout: seconds(PROXY_HEALTHCHECK.timeout) * 1e9,
      StartPeriod: seconds(PROXY_HEALTHCHECK.startPeriod) * 1e9,
      Retries: PROXY_HEALTHCHECK.retries,
    });
    expect(PROXY_HEALTHCHECK.tests[0]).toBe("CMD-SHELL");
    await expect(docker(["exec", PROXY, "sh", "-c", `${PROXY_HEALTHCHECK.tests[1]} && echo healthy`])).resolves.toBe("healthy");
    // Docker's own first probe comes one interval after the start.
    const status = await until(
      "Docker's health status of the proxy",
      async () => {
        const health = (await inspect<ProxyInspect>(PROXY)).State.Health;
        return health && health.Status !== "starting" ? health : undefined;
      },
      seconds(PROXY_HEALTHCHECK.interval) * 1000 + WAIT_MS,
    );
    expect({ status: status.Status, exitCodes: status.Log?.map((l) => l.ExitCode) }).toMatchObject({ status: "healthy" });
    expect(status.Log?.every((l) => l.ExitCode === 0)).toBe(true);
  }, 180_000);
});
