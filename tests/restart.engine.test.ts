/**
 * Real engine, real `pulumi up`: restarts. A `docker restart` of the proxy, and a restart of the
 * Docker daemon itself (the private test engine's, standing for a server's dockerd restart): the
 * clients and Caddy come back on their own (their restart policy), with the same containers and
 * network memberships, and every client answers through Caddy again; afterwards `pulumi preview`
 * (also after a `pulumi refresh`) finds nothing to change.
 */
import { describe, expect, it } from "vitest";
import { until } from "./support/deployedHost";
import { docker, newRunId } from "./support/engine";
import { request } from "./support/httpClient";
import { proxyRootCa, type Changes } from "./support/realStack";
import { useRealEngineSuite } from "./support/testEngine";

const PROXY = "mai-proxy";
const ACTIVE = ["a", "b"];
let rootCa: Buffer;

const suite = useRealEngineSuite({
  runId: newRunId(),
  clients: [{ key: "a" }, { key: "b" }, { key: "s", yaml: "name: Test s\nstatus: suspended\n" }],
  ready: async ({ stack }) => {
    rootCa = await proxyRootCa(stack.dockerHost());
    await allAnswer();
  },
});
const stack = () => suite.stack;
const container = (key: string) => stack().container(key);

interface Inspected {
  Id: string;
  State: { Running: boolean; StartedAt: string };
  HostConfig: { NetworkMode: string };
  NetworkSettings: { Networks: Record<string, unknown> };
}
const inspectContainer = async (name: string) => (JSON.parse(await docker(["container", "inspect", name])) as Inspected[])[0];

/** GET through Caddy over HTTPS (internal CA) for a client's hostname. */
const viaCaddy = (key: string, path: string) => request({ port: stack().httpsPort(), hostname: stack().hostname(key), ca: rootCa }, path, { timeoutMs: 5000 });

/** Every active client answers /health through Caddy, and the suspended one gets the 503 page. */
async function allAnswer(timeoutMs = 120_000): Promise<void> {
  for (const key of ACTIVE) {
    await until(`${stack().hostname(key)} to answer /health through Caddy`, async () => (await viaCaddy(key, "/health")).status === 200, timeoutMs, 250);
  }
  await until(`the 503 page of suspended ${stack().hostname("s")}`, async () => (await viaCaddy("s", "/")).status === 503, timeoutMs, 250);
}

const changed = (result: Changes) => [...result.created, ...result.updated, ...result.replaced, ...result.deleted];

/** What must survive a restart, and the evidence that it was one. */
async function snapshot() {
  return Object.fromEntries(
    await Promise.all(
      [...ACTIVE.map(container), PROXY].map(async (name) => {
        const c = await inspectContainer(name);
        return [name, { id: c.Id, running: c.State.Running, startedAt: c.State.StartedAt, networkMode: c.HostConfig.NetworkMode, networks: Object.keys(c.NetworkSettings.Networks).sort() }] as const;
      }),
    ),
  );
}

describe("restart of the proxy container", () => {
  it("every active client answers again through Caddy after docker restart, the suspended one gets its 503 page", async () => {
    const before = await inspectContainer(PROXY);
    await docker(["restart", PROXY], 120_000);
    const after = await inspectContainer(PROXY);
    expect({ id: after.Id, running: after.State.Running, restarted: after.State.StartedAt !== before.State.StartedAt }).toEqual({ id: before.Id, running: true, restarted: true });
    await allAnswer();
  }, 180_000);
});

describe("restart of dockerd", () => {
  it("the clients and the proxy come back by themselves, with the same containers and networks, and answer through Caddy", async () => {
    const before = await snapshot();
    await suite.engine.restart();
    await allAnswer();
    const after = await snapshot();
    for (const [name, was] of Object.entries(before)) {
      const now = after[name];
      expect({ name, id: now.id, running: now.running, restartedByDaemon: now.startedAt !== was.startedAt, networkMode: now.networkMode, networks: now.networks }).toEqual({
        name,
        id: was.id,
        running: true,
        restartedByDaemon: true,
        networkMode: was.networkMode,
        networks: was.networks,
      });
    }
    // Each client still on its own network only; the proxy on the host's.
    for (const key of ACTIVE) expect(after[container(key)].networks).toEqual([container(key)]);
    expect(after[PROXY].networkMode).toBe("host");
  }, 180_000);

  it("after the restart, pulumi preview finds nothing to change", async () => {
    expect(changed(await stack().preview())).toEqual([]);
  }, 180_000);

  it("after the restart, pulumi refresh reads the engine back as deployed: a preview then finds nothing to change", async () => {
    await stack().refresh();
    expect(changed(await stack().preview())).toEqual([]);
  }, 180_000);
});
