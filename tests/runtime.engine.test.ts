/**
 * Real engine: the client containers as the program declares them (applied by the applier, never
 * re-typed) have exactly the client file's limits, cannot reach each other, publish only on
 * 127.0.0.1, and one that allocates past its memory limit is OOM-killed and restarted by its
 * policy while the other keeps answering.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { docker, runId } from "./support/applier";
import { useAppliedEngineStack } from "./support/appliedEngineStack";
import { type EngineStack } from "./support/engineStack";
import { request } from "./support/httpClient";

const MB = 1024 * 1024;
const id = runId();
let stack: EngineStack;

/** The client files of this test: the limits below are what `docker inspect` must show. */
const CLIENT_A = { cpus: 1.5, memoryMb: 512, reservedCpus: 0.5, reservedMemoryMb: 96 };
const CLIENT_B = { cpus: 0.5, memoryMb: 768, reservedCpus: 0.25, reservedMemoryMb: 128 };
const clientYaml = (name: string, r: typeof CLIENT_A) =>
  `name: ${name}\nresources:\n  cpus: ${r.cpus}\n  memory: ${r.memoryMb}M\n  reservations:\n    cpus: ${r.reservedCpus}\n    memory: ${r.reservedMemoryMb}M\n`;

const container = (key: string) => `mai-${stack.slug(key)}`;
const inspect = (name: string) => JSON.parse(docker(["inspect", name]))[0];
const health = (key: string) => request({ port: stack.port(key), hostname: "localhost" }, "/health", { timeoutMs: 2000 });

/** Waits until the client answers /health on its loopback port. */
async function answering(key: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await health(key).then((r) => r.status === 200, () => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${container(key)} does not answer /health on 127.0.0.1:${stack.port(key)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs a command inside a container; returns its exit code and output. */
function exec(name: string, command: string): { code: number | null; output: string } {
  const r = spawnSync("docker", ["exec", name, "sh", "-c", command], { encoding: "utf8", timeout: 20_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

const applier = useAppliedEngineStack({
  runId: id,
  clients: [
    { key: "a", yaml: clientYaml("Client A", CLIENT_A) },
    { key: "b", yaml: clientYaml("Client B", CLIENT_B) },
  ],
  applied: async (applied) => {
    stack = applied;
    await Promise.all([answering("a"), answering("b")]);
  },
});

describe("limits", () => {
  for (const [key, file] of [["a", CLIENT_A], ["b", CLIENT_B]] as const) {
    it(`docker inspect of client ${key} shows the client file's CPU, memory, swap, reservation and shares`, () => {
      const host = inspect(container(key)).HostConfig;
      expect({
        cpus: host.NanoCpus / 1e9,
        memoryMb: host.Memory / MB,
        swapTotalMb: host.MemorySwap / MB,
        reservedMemoryMb: host.MemoryReservation / MB,
        cpuShares: host.CpuShares,
      }).toEqual({
        cpus: file.cpus,
        memoryMb: file.memoryMb,
        // memory + swap = memory: no swap at all.
        swapTotalMb: file.memoryMb,
        reservedMemoryMb: file.reservedMemoryMb,
        cpuShares: file.reservedCpus * 1024,
      });
    });
  }

  it("a client allocating past its memory limit is OOM-killed and restarted while the other keeps answering", async () => {
    const before = inspect(container("a"));
    let otherFailures = 0;
    let otherAnswers = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        await health("b").then((r) => (r.status === 200 ? otherAnswers++ : otherFailures++), () => otherFailures++);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // The workspace holds what it allocates; 1.5x its limit cannot fit without swap.
    await request({ port: stack.port("a"), hostname: "localhost" }, `/api/allocate?mb=${Math.round(CLIENT_A.memoryMb * 1.5)}`, {
      method: "POST",
      timeoutMs: 15_000,
    }).catch(() => undefined);
    const deadline = Date.now() + 20_000;
    while (inspect(container("a")).RestartCount === before.RestartCount && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await answering("a");
    watching = false;
    await watcher;
    const after = inspect(container("a"));
    const events = docker(["events", "--since", before.State.StartedAt, "--until", "0s", "--filter", `container=${container("a")}`, "--filter", "event=oom", "--format", "{{.Action}}"]);
    expect({ oomEvents: events.split("\n").filter(Boolean).length > 0, restarted: after.RestartCount > before.RestartCount, running: after.State.Running }).toEqual({
      oomEvents: true,
      restarted: true,
      running: true,
    });
    expect({ otherFailures, otherAnswered: otherAnswers > 0 }).toEqual({ otherFailures: 0, otherAnswered: true });
  }, 60_000);
});

describe("isolation", () => {
  it("from inside client A, client B is unreachable by name, by IP and by its published port", () => {
    const bNetworks = inspect(container("b")).NetworkSettings.Networks as Record<string, { IPAddress: string }>;
    const bAddress = Object.values(bNetworks)[0].IPAddress;
    const aGateway = (Object.values(inspect(container("a")).NetworkSettings.Networks)[0] as { Gateway: string }).Gateway;
    const tries = {
      byName: exec(container("a"), `curl -fsS --max-time 2 http://${container("b")}:8080/health`).code,
      byIp: exec(container("a"), `curl -fsS --max-time 2 http://${bAddress}:8080/health`).code,
      viaHostLoopbackPort: exec(container("a"), `curl -fsS --max-time 2 http://127.0.0.1:${stack.port("b")}/health`).code,
      viaGatewayPort: exec(container("a"), `curl -fsS --max-time 2 http://${aGateway}:${stack.port("b")}/health`).code,
    };
    // The same command does reach A itself: a failure above is isolation, not a broken curl.
    expect(exec(container("a"), "curl -fsS --max-time 2 http://127.0.0.1:8080/health").code).toBe(0);
    for (const [how, code] of Object.entries(tries)) expect({ how, reached: code === 0 }).toEqual({ how, reached: false });
  });

  it("no client container publishes anything beyond 127.0.0.1", () => {
    const bindings = applier
      .appliedOf("docker:index/container:Container")
      .flatMap((c) => Object.values((inspect(c.inputs.name).NetworkSettings.Ports ?? {}) as Record<string, { HostIp: string }[] | null>))
      .flatMap((list) => list ?? []);
    expect(bindings.length).toBeGreaterThan(0);
    expect([...new Set(bindings.map((b) => b.HostIp))]).toEqual(["127.0.0.1"]);
  });
});
