/**
 * Real engine restarts: the clients the program declares (and, in the local stack, its Caddy) come
 * back on their own after a restart of `dockerd` itself (their restart policy), with the same
 * containers and network memberships, and answer again (through Caddy in the local stack).
 * The daemon restarted is a second dockerd this file starts (own socket, data root, exec root,
 * pid file and address pool): the machine's engine is shared and is never restarted by a test.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { docker, EngineApplier, runId } from "./support/applier";
import { createEngineStack, type EngineStack, OUT_OF_SCOPE, proxyRootCa } from "./support/engineStack";
import { LOCK_WAIT_MS, lockEngine, requireDockerEngine, SETUP_MS } from "./support/engineSession";
import { request } from "./support/httpClient";
import { type SecondEngine, startSecondEngine } from "./support/secondEngine";

const id = runId();
let engine: SecondEngine;
let applier: EngineApplier;
let stack: EngineStack;
let release: (() => void) | undefined;

const container = (key: string) => `mai-${stack.slug(key)}`;
const inspect = (name: string) => JSON.parse(docker(["inspect", name], engine.host))[0];

/** The client answers /health: through Caddy in the local stack, else on its loopback port. */
async function answering(key: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const target = stack.local ? { port: stack.httpsPort, hostname: stack.hostname(key), ca: await proxyRootCa(engine.host) } : { port: stack.port(key), hostname: "localhost" };
  while (!(await request(target, "/health", { timeoutMs: 2000 }).then((r) => r.status === 200, () => false))) {
    if (Date.now() > deadline) throw new Error(`${container(key)} does not answer /health on 127.0.0.1:${stack.port(key)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  requireDockerEngine();
  release = await lockEngine();
  engine = await startSecondEngine();
  applier = new EngineApplier({ outOfScope: OUT_OF_SCOPE, dockerHost: engine.host });
  stack = await createEngineStack(id, [{ key: "a" }, { key: "b" }], { dockerHost: engine.host });
  const resources = await stack.evaluate();
  // No registry: the images the program names are copied from the machine's engine.
  const images = resources.flatMap((r) =>
    r.type === "docker:index/remoteImage:RemoteImage" ? [String(r.inputs.name)] : r.type === "docker:index/container:Container" && !String(r.inputs.image).startsWith("sha256:") ? [String(r.inputs.image)] : [],
  );
  engine.loadImages([...new Set(images)]);
  await applier.up(resources);
  await Promise.all([answering("a"), answering("b")]);
}, LOCK_WAIT_MS + SETUP_MS);

afterAll(async () => {
  applier?.cleanup();
  await engine?.remove();
  stack?.dispose();
  release?.();
}, 120_000);

describe("restart of dockerd", () => {
  it("every client answers again (through Caddy in the local stack), with the same container and its network membership", async () => {
    const before = ["a", "b"].map((k) => inspect(container(k)));
    await engine.restart();
    await Promise.all([answering("a"), answering("b")]);
    const after = ["a", "b"].map((k) => inspect(container(k)));
    for (const [i, key] of ["a", "b"].entries()) {
      expect({
        id: after[i].Id,
        running: after[i].State.Running,
        restartedByDaemon: after[i].State.StartedAt !== before[i].State.StartedAt,
        networks: Object.keys(after[i].NetworkSettings.Networks),
      }).toEqual({ id: before[i].Id, running: true, restartedByDaemon: true, networks: [container(key)] });
    }
  }, 120_000);
});
