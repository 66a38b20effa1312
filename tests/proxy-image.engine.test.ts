/**
 * The locally built proxy image on the real Docker engine, as the stack uses it: its default
 * command serves the Caddyfile mounted at /etc/caddy, the declared health check (busybox wget)
 * passes, `docker exec … caddy reload` works, certificates of the internal CA land in /data, and
 * it proxies HTTPS to a workspace stand-in by container name on their own network. Everything is
 * labelled with this run's id and removed afterwards.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LOCAL_PROXY_IMAGE, LOCAL_WORKSPACE_IMAGE } from "../policy/localImages";
import { PROXY_HEALTHCHECK } from "../policy/proxyPolicy";
import { docker, inspect, newRunId, publishedPort, runLabel } from "./support/engine";
import { useEngineSuite } from "./support/engineSuite";
import { request, timeStream, type Target } from "./support/httpClient";

const runId = newRunId();
const label = runLabel(runId);
const network = `mai-${runId}`;
const proxy = `mai-${runId}-proxy`;
const workspace = `mai-${runId}-workspace`;
const hostname = "standin.localhost";
const configDir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-proxy-image-"));

function caddyfile(body: string): string {
  return `{\n\tadmin localhost:2019\n\tlocal_certs\n\tskip_install_trust\n}\n\n${hostname} {\n${body}\n}\n`;
}

/** Waits for the internal CA's root (written to /data by the running proxy), then returns it. */
async function rootCa(): Promise<Buffer> {
  const file = "/data/caddy/pki/authorities/local/root.crt";
  for (let i = 0; ; i++) {
    try {
      return Buffer.from(await docker(["exec", proxy, "cat", file]));
    } catch (error) {
      if (i >= 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  let last: unknown;
  for (let i = 0; i < 100; i++) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what}: ${String(last ?? "no answer")}`);
}

describe("proxy image on the real engine", () => {
  let https: Target;

  useEngineSuite({
    runId,
    setup: async () => {
      fs.writeFileSync(path.join(configDir, "Caddyfile"), caddyfile(`\treverse_proxy ${workspace}:8080`));
      await docker(["network", "create", "--label", label, network]);
      await docker(["run", "-d", "--name", workspace, "--label", label, "--network", network, LOCAL_WORKSPACE_IMAGE]);
      // No command given: the image's default must start Caddy on the mounted Caddyfile.
      await docker([
        "run", "-d", "--name", proxy, "--label", label, "--network", network,
        "-p", "127.0.0.1::443", "-v", `${configDir}:/etc/caddy:ro`, LOCAL_PROXY_IMAGE,
      ]);
      https = { port: await publishedPort(proxy, "443/tcp"), hostname, ca: await rootCa() };
    },
  });

  afterAll(() => fs.rmSync(configDir, { recursive: true, force: true }));

  it("runs Caddy on /etc/caddy/Caddyfile by default, with its state under /data and /config", async () => {
    const image = await inspect<{ Config: { Cmd: string[]; Env: string[] } }>(LOCAL_PROXY_IMAGE);
    expect(image.Config.Cmd).toEqual(["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]);
    expect(image.Config.Env).toEqual(expect.arrayContaining(["XDG_DATA_HOME=/data", "XDG_CONFIG_HOME=/config", "HOME=/root"]));
    const state = await inspect<{ State: { Running: boolean } }>(proxy);
    expect(state.State.Running).toBe(true);
    await until("autosaved config in /config", async () => ((await docker(["exec", proxy, "ls", "/config/caddy"])).includes("autosave.json") ? true : undefined));
  });

  it("passes the proxy's declared health check (busybox sh and wget)", async () => {
    expect(PROXY_HEALTHCHECK.tests[0]).toBe("CMD-SHELL");
    await expect(docker(["exec", proxy, "sh", "-c", `${PROXY_HEALTHCHECK.tests[1]} && echo healthy`])).resolves.toBe("healthy");
  });

  it("proxies HTTPS (internal CA) to the stand-in by container name, streams unbuffered", async () => {
    const reply = await until("stand-in through the proxy", async () => {
      const answer = await request(https, "/health");
      return answer.status === 200 ? answer : undefined;
    });
    expect(JSON.parse(reply.body)).toEqual({ status: true });
    const stream = await timeStream(https, "/api/stream?events=5&interval_ms=300", { "Accept-Encoding": "identity" });
    expect(stream.body.toString().match(/^data: /gm)).toHaveLength(6);
    const early = stream.arrivalsMs.filter((ms) => ms < stream.totalMs - 500);
    expect(early.length, `chunk arrivals ${stream.arrivalsMs.map(Math.round).join(",")}`).toBeGreaterThanOrEqual(2);
  });

  it("reloads a changed Caddyfile through `docker exec <proxy> caddy reload`", async () => {
    fs.writeFileSync(path.join(configDir, "Caddyfile"), caddyfile('\trespond "reloaded" 200'));
    await docker(["exec", proxy, "caddy", "reload", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]);
    const reply = await request(https, "/health");
    expect([reply.status, reply.body]).toEqual([200, "reloaded"]);
  });
});
