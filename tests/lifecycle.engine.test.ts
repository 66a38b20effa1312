/**
 * Real engine, real `pulumi up`: adding a client starts only its container (the others keep their
 * container id and start time); suspending removes the container and keeps the volume with its
 * data (Caddy serves the 503 page); removing keeps the volume; adding the client back serves the
 * same data.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { DEFAULT_PIDS_LIMIT } from "../config/stackSettings";
import { docker, newRunId } from "./support/engine";
import { request } from "./support/httpClient";
import { proxyRootCa, type Changes } from "./support/realStack";
import { useRealEngineSuite } from "./support/testEngine";

const id = newRunId();
const suite = useRealEngineSuite({
  runId: id,
  clients: [{ key: "a" }, { key: "b" }],
  ready: async () => {
    await Promise.all([answering("a"), answering("b")]);
  },
});
const stack = () => suite.stack;

const container = (key: string) => stack().container(key);
const volume = (key: string) => `${container(key)}-data`;
const exists = (kind: string, name: string) => spawnSync("docker", [kind, "inspect", name], { stdio: "ignore" }).status === 0;
const identity = (key: string) => docker(["inspect", "-f", "{{.Id}} {{.State.StartedAt}}", container(key)]);
const up = () => stack().up();
/**
 * Changes besides the client's own: the proxy's Caddyfile upload and its validated reload re-run
 * (the routes changed); nothing else may change.
 */
const PROXY_CONFIG = /::[\w-]*proxy-(caddyfile|reload)$/;
const besidesProxyConfig = (keys: string[]) => keys.filter((k) => !PROXY_CONFIG.test(k));
const changed = (result: Changes) => [...result.created, ...result.updated, ...result.replaced, ...result.deleted];

/** Resource keys of one client in an up result. */
const ofClient = (keys: string[], key: string) => keys.filter((k) => k.split("::")[1].startsWith(`${stack().slug(key)}`)).sort();

/** Runs sqlite3 inside a client's container on its live database. */
function sql(key: string, statement: string): Promise<string> {
  return docker(["exec", container(key), "sqlite3", "-cmd", ".timeout 10000", "/app/backend/data/webui.db", statement]);
}

async function answering(key: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await request({ port: stack().port(key), hostname: "localhost" }, "/health", { timeoutMs: 2000 }).then((r) => r.status === 200, () => false))) {
    if (Date.now() > deadline) throw new Error(`${container(key)} does not answer /health`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("lifecycle through a real pulumi up", () => {
  it("adding a client creates only its resources; the others keep container id and start time", async () => {
    const before = { a: await identity("a"), b: await identity("b") };
    await stack().writeClient({ key: "c" });
    const result = await up();
    expect(result.created).toEqual(ofClient(result.created, "c"));
    expect(result.created.map((k) => k.split("::")[0]).sort()).toEqual(
      [
        "command:local:Command", // its pids limit
        "docker:index/container:Container",
        "docker:index/network:Network",
        "docker:index/volume:Volume",
        "random:index/randomPassword:RandomPassword", // its admin's password
        "random:index/randomPassword:RandomPassword", // its session secret
      ].sort(),
    );
    expect(besidesProxyConfig([...result.updated, ...result.replaced, ...result.deleted])).toEqual([]);
    expect(result.replaced.filter((k) => PROXY_CONFIG.test(k))).toHaveLength(2);
    await answering("c");
    expect({ a: await identity("a"), b: await identity("b") }).toEqual(before);
  }, 180_000);

  it("a memory limit change updates the running container in place", async () => {
    await stack().writeClient({ key: "c", yaml: "name: Test c\nresources:\n  cpus: 0.5\n  memory: 640M\n  reservations:\n    cpus: 0.25\n    memory: 64M\n" });
    await up(); // from the defaults to explicit values: cpus and the reservation may replace here
    const explicit = await identity("c");
    await stack().writeClient({ key: "c", yaml: "name: Test c\nresources:\n  cpus: 0.5\n  memory: 768M\n  reservations:\n    cpus: 0.25\n    memory: 64M\n" });
    const result = await up();
    expect(changed(result)).toEqual([`docker:index/container:Container::${stack().slug("c")}-container`]);
    expect(result.updated).toEqual([`docker:index/container:Container::${stack().slug("c")}-container`]);
    expect(await identity("c")).toBe(explicit);
    const host = (JSON.parse(await docker(["inspect", container("c")])) as { HostConfig: { Memory: number; MemorySwap: number; PidsLimit: number } }[])[0].HostConfig;
    expect({ memory: host.Memory / 1024 / 1024, swapTotal: host.MemorySwap / 1024 / 1024 }).toEqual({ memory: 768, swapTotal: 768 });
    // The provider's in-place update leaves the pids limit the stack gave the container.
    expect(host.PidsLimit).toBe(DEFAULT_PIDS_LIMIT);
    expect(await stack().preview()).toMatchObject({ created: [], updated: [], replaced: [], deleted: [] });
  }, 180_000);

  it("suspending and resuming keeps the client's session secret (a new one would log every user out)", async () => {
    await stack().writeClient({ key: "c", yaml: "name: Test c\nstatus: suspended\n" });
    const suspended = await up();
    await stack().writeClient({ key: "c", yaml: "name: Test c\n" });
    const resumed = await up();
    const secrets = (keys: string[]) => keys.filter((k) => k.startsWith("random:"));
    expect(secrets([...changed(suspended), ...changed(resumed)])).toEqual([]);
    const runtime = (key: string) => [`command:local:Command::${stack().slug(key)}-pids-limit`, `docker:index/container:Container::${stack().slug(key)}-container`];
    expect(besidesProxyConfig(changed(suspended))).toEqual(runtime("c"));
    expect(suspended.deleted).toEqual(runtime("c"));
    expect(resumed.created).toEqual(runtime("c"));
    await answering("c");
  }, 180_000);

  it("suspending removes only the client's container and keeps its volume and data", async () => {
    await sql("b", "CREATE TABLE IF NOT EXISTS lifecycle_marker (v TEXT); INSERT INTO lifecycle_marker VALUES ('kept-" + id + "');");
    const others = { a: await identity("a"), c: await identity("c") };
    await stack().writeClient({ key: "b", yaml: "name: Test b\nstatus: suspended\n" });
    const result = await up();
    expect(result.deleted).toEqual([`command:local:Command::${stack().slug("b")}-pids-limit`, `docker:index/container:Container::${stack().slug("b")}-container`]);
    expect(besidesProxyConfig([...result.created, ...result.updated, ...result.replaced])).toEqual([]);
    expect(exists("container", container("b"))).toBe(false);
    expect(exists("volume", volume("b"))).toBe(true);
    expect({ a: await identity("a"), c: await identity("c") }).toEqual(others);
    const page = await request({ port: stack().httpsPort(), hostname: stack().hostname("b"), ca: await proxyRootCa(stack().dockerHost()) }, "/");
    expect(page.status).toBe(503);
  }, 180_000);

  it("removing the client deletes its network and keeps its volume", async () => {
    stack().removeClient("b");
    const result = await up();
    // The engine reports the retained volume as deleted from the stack; it stays on the engine.
    expect(besidesProxyConfig(result.deleted).filter((k) => !k.startsWith("random:")).sort()).toEqual(
      [`docker:index/network:Network::${stack().slug("b")}-network`, `docker:index/volume:Volume::${stack().slug("b")}-data`].sort(),
    );
    expect(exists("volume", volume("b"))).toBe(true);
    expect(exists("network", container("b"))).toBe(false);
  }, 180_000);

  it("adding the client back serves the same data", async () => {
    await stack().writeClient({ key: "b" });
    const result = await up();
    expect(ofClient(result.created, "b")).toEqual(result.created);
    await answering("b");
    expect(await sql("b", "SELECT v FROM lifecycle_marker;")).toBe(`kept-${id}`);
  }, 180_000);
});
