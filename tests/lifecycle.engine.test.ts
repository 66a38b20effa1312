/**
 * Real engine, as `pulumi up` applies the difference between two evaluations of the program:
 * adding a client starts only its container (the others keep their container id and start time);
 * suspending removes the container and keeps the volume with its data (the local stack's Caddy
 * serves the 503 page); removing keeps the volume; adding the client back serves the same data.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { docker, runId } from "./support/applier";
import { useAppliedEngineStack } from "./support/appliedEngineStack";
import { type EngineStack, proxyRootCa } from "./support/engineStack";
import { request } from "./support/httpClient";

const id = runId();
let stack: EngineStack;

const container = (key: string) => `mai-${stack.slug(key)}`;
const volume = (key: string) => `mai-${stack.slug(key)}-data`;
const exists = (kind: string, name: string) => spawnSync("docker", [kind, "inspect", name], { stdio: "ignore" }).status === 0;
const identity = (key: string) => docker(["inspect", "-f", "{{.Id}} {{.State.StartedAt}}", container(key)]);
const up = async () => applier.up(await stack.evaluate());
/**
 * Changes besides the client's own: in the local stack the proxy's Caddyfile upload and its
 * validated reload re-run (the routes changed); nothing else may change.
 */
const PROXY_CONFIG = /::[\w-]*proxy-(caddyfile|reload)$/;
const besidesProxyConfig = (keys: string[]) => keys.filter((k) => !PROXY_CONFIG.test(k));

/** Resource keys of one client in an up result. */
const ofClient = (keys: string[], key: string) => keys.filter((k) => k.split("::")[1].startsWith(`${stack.slug(key)}`)).sort();

/** Runs sqlite3 inside a client's container on its live database. */
function sql(key: string, statement: string): string {
  return docker(["exec", container(key), "sqlite3", "-cmd", ".timeout 10000", "/app/backend/data/webui.db", statement]);
}

async function answering(key: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await request({ port: stack.port(key), hostname: "localhost" }, "/health", { timeoutMs: 2000 }).then((r) => r.status === 200, () => false))) {
    if (Date.now() > deadline) throw new Error(`${container(key)} does not answer /health`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const applier = useAppliedEngineStack({
  runId: id,
  clients: [{ key: "a" }, { key: "b" }],
  applied: async (applied) => {
    stack = applied;
    await Promise.all([answering("a"), answering("b")]);
  },
});

describe("lifecycle as pulumi up applies the diff", () => {
  it("adding a client creates only its resources; the others keep container id and start time", async () => {
    const before = { a: identity("a"), b: identity("b") };
    await stack.writeClient({ key: "c" });
    const result = await up();
    expect(result.created.sort()).toEqual(ofClient(result.created, "c"));
    expect(result.created.map((k) => k.split("::")[0]).sort()).toEqual(
      ["docker:index/container:Container", "docker:index/network:Network", "docker:index/volume:Volume", "random:index/randomPassword:RandomPassword"].sort(),
    );
    expect(besidesProxyConfig([...result.updated, ...result.replaced, ...result.deleted])).toEqual([]);
    if (stack.local) expect(result.replaced.filter((k) => PROXY_CONFIG.test(k))).toHaveLength(2);
    await answering("c");
    expect({ a: identity("a"), b: identity("b") }).toEqual(before);
  }, 60_000);

  it("a memory limit change updates the running container in place", async () => {
    await stack.writeClient({ key: "c", yaml: "name: Test c\nresources:\n  cpus: 0.5\n  memory: 640M\n  reservations:\n    cpus: 0.25\n    memory: 64M\n" });
    await up(); // from the defaults to explicit values: cpus and shares may change here too
    const explicit = identity("c");
    await stack.writeClient({ key: "c", yaml: "name: Test c\nresources:\n  cpus: 0.5\n  memory: 768M\n  reservations:\n    cpus: 0.25\n    memory: 64M\n" });
    const result = await up();
    expect(result.updated).toEqual([`docker:index/container:Container::${stack.slug("c")}-container`]);
    expect(besidesProxyConfig([...result.created, ...result.replaced, ...result.deleted])).toEqual([]);
    expect(identity("c")).toBe(explicit);
    const host = JSON.parse(docker(["inspect", container("c")]))[0].HostConfig;
    expect({ memory: host.Memory / 1024 / 1024, swapTotal: host.MemorySwap / 1024 / 1024 }).toEqual({ memory: 768, swapTotal: 768 });
  }, 60_000);

  it("suspending and resuming keeps the client's session secret (a new one would log every user out)", async () => {
    const suspended = await stack.writeClient({ key: "c", yaml: "name: Test c\nstatus: suspended\n" }).then(up);
    const resumed = await stack.writeClient({ key: "c", yaml: "name: Test c\n" }).then(up);
    expect([...suspended.regenerated, ...resumed.regenerated]).toEqual([]);
    expect(resumed.created).toEqual([`docker:index/container:Container::${stack.slug("c")}-container`]);
    await answering("c");
  }, 60_000);

  it("suspending removes only the client's container and keeps its volume and data", async () => {
    sql("b", "CREATE TABLE IF NOT EXISTS lifecycle_marker (v TEXT); INSERT INTO lifecycle_marker VALUES ('kept-" + id + "');");
    const others = { a: identity("a"), c: identity("c") };
    await stack.writeClient({ key: "b", yaml: "name: Test b\nstatus: suspended\n" });
    const result = await up();
    expect(result.deleted).toEqual([`docker:index/container:Container::${stack.slug("b")}-container`]);
    expect(besidesProxyConfig([...result.created, ...result.updated, ...result.replaced])).toEqual([]);
    expect(exists("container", container("b"))).toBe(false);
    expect(exists("volume", volume("b"))).toBe(true);
    expect({ a: identity("a"), c: identity("c") }).toEqual(others);
    if (stack.local) {
      const page = await request({ port: stack.httpsPort, hostname: stack.hostname("b"), ca: await proxyRootCa() }, "/");
      expect(page.status).toBe(503);
    }
  }, 60_000);

  it("removing the client deletes its network and keeps its volume", async () => {
    stack.removeClient("b");
    const result = await up();
    expect(result.retained).toEqual([`docker:index/volume:Volume::${stack.slug("b")}-data`]);
    // The client's session secret goes with it too (a generated value, nothing on the engine).
    expect(result.deleted.filter((k) => !k.startsWith("random:"))).toEqual([`docker:index/network:Network::${stack.slug("b")}-network`]);
    expect(exists("volume", volume("b"))).toBe(true);
    expect(exists("network", container("b"))).toBe(false);
  }, 60_000);

  it("adding the client back serves the same data", async () => {
    await stack.writeClient({ key: "b" });
    const result = await up();
    expect(ofClient(result.created, "b")).toEqual(result.created.sort());
    await answering("b");
    expect(sql("b", "SELECT v FROM lifecycle_marker;")).toBe(`kept-${id}`);
  }, 60_000);
});
