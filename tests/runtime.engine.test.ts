/**
 * Real engine, real `pulumi up`: the client containers the program deploys have exactly the client
 * file's limits, share no network with each other (no name resolution, no on-link route, no
 * reachable published port), publish only on 127.0.0.1, and one that allocates past its memory
 * limit is OOM-killed and restarted by its policy while the other keeps answering.
 *
 * What this cannot show: that packets sent to another client's address are dropped. Between two
 * Docker networks that is done by the DOCKER-ISOLATION iptables chains of an engine that manages
 * iptables (a server's); the private test engine runs without iptables (privateEngine.ts), so any
 * such drop here would be the machine's firewall, not the program's doing. The test asserts what
 * the program controls: every client on a bridge network of its own, with only its own container.
 */
import { describe, expect, it } from "vitest";
import { answering, answersHealth, until } from "./support/deployedHost";
import { docker, newRunId } from "./support/engine";
import { request } from "./support/httpClient";
import { useRealEngineSuite } from "./support/testEngine";

const MB = 1024 * 1024;

/** The client files of this test: the limits below are what `docker inspect` must show. */
const CLIENT_A = { cpus: 1.5, memoryMb: 512, reservedCpus: 0.5, reservedMemoryMb: 96 };
const CLIENT_B = { cpus: 0.5, memoryMb: 768, reservedCpus: 0.25, reservedMemoryMb: 128 };
const clientYaml = (name: string, r: typeof CLIENT_A) =>
  `name: ${name}\nresources:\n  cpus: ${r.cpus}\n  memory: ${r.memoryMb}M\n  reservations:\n    cpus: ${r.reservedCpus}\n    memory: ${r.reservedMemoryMb}M\n`;

const suite = useRealEngineSuite({
  runId: newRunId(),
  clients: [
    { key: "a", yaml: clientYaml("Client A", CLIENT_A) },
    { key: "b", yaml: clientYaml("Client B", CLIENT_B) },
  ],
  ready: async ({ stack }) => {
    await Promise.all([answering(stack, "a"), answering(stack, "b")]);
  },
});
const stack = () => suite.stack;
const container = (key: string) => stack().container(key);

interface Inspected {
  Id: string;
  RestartCount: number;
  State: { Running: boolean; StartedAt: string; OOMKilled: boolean };
  HostConfig: { NanoCpus: number; Memory: number; MemorySwap: number; MemoryReservation: number; CpuShares: number; NetworkMode: string };
  NetworkSettings: { Networks: Record<string, { IPAddress: string; Gateway: string; NetworkID: string }>; Ports: Record<string, { HostIp: string; HostPort: string }[] | null> | null };
}

/** `docker container inspect` / `docker network inspect` (a client's container and network share a name). */
const inspectContainer = async (name: string) => (JSON.parse(await docker(["container", "inspect", name])) as Inspected[])[0];
const inspectNetwork = async (name: string) =>
  (JSON.parse(await docker(["network", "inspect", name])) as { Driver: string; Containers: Record<string, { Name: string }> }[])[0];

/** curl from inside a container: its exit code and its own message. */
async function curlFrom(name: string, url: string): Promise<{ code: number; output: string }> {
  const output = await docker(["exec", name, "sh", "-c", `curl -sS -o /dev/null --max-time 10 ${url} 2>&1; echo "curl-exit=$?"`], 30_000);
  return { code: Number(/curl-exit=(\d+)/.exec(output)?.[1] ?? -1), output: output.replace(/curl-exit=\d+/, "").trim() };
}

/** IPv4 dotted quad as a number. */
const ipv4 = (address: string) => address.split(".").reduce((n, part) => n * 256 + Number(part), 0);

/** The on-link (gateway-less) routes of a container's network namespace, as [network, mask] numbers. */
async function onLinkRoutes(name: string): Promise<[number, number][]> {
  const table = await docker(["exec", name, "cat", "/proc/net/route"]);
  // Destination, Gateway and Mask are little-endian hex.
  const le = (hex: string) => ipv4(hex.match(/../g)!.reverse().map((byte) => String(parseInt(byte, 16))).join("."));
  return table
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length >= 8 && le(fields[2]) === 0)
    .map((fields) => [le(fields[1]), le(fields[7])]);
}

describe("limits", () => {
  for (const [key, file] of [["a", CLIENT_A], ["b", CLIENT_B]] as const) {
    it(`docker inspect of client ${key} shows the client file's CPU, memory, swap, reservation and shares`, async () => {
      const host = (await inspectContainer(container(key))).HostConfig;
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
    }, 60_000);
  }

  it("a client allocating past its memory limit is OOM-killed and restarted while the other keeps answering", async () => {
    await answering(stack(), "a");
    const before = await inspectContainer(container("a"));
    let otherFailures = 0;
    let otherAnswers = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        // 5 s per answer: slow on a busy machine is still answering.
        if (await answersHealth(stack(), "b", 5000)) otherAnswers++;
        else otherFailures++;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      // The workspace holds what it allocates; 1.5x its limit cannot fit without swap.
      await request({ port: stack().port("a"), hostname: "localhost" }, `/api/allocate?mb=${Math.round(CLIENT_A.memoryMb * 1.5)}`, {
        method: "POST",
        timeoutMs: 60_000,
      }).catch(() => undefined);
      await until("client a to be restarted after its OOM kill", async () => (await inspectContainer(container("a"))).RestartCount > before.RestartCount, 90_000);
      await answering(stack(), "a");
    } finally {
      watching = false;
      await watcher;
    }
    const after = await inspectContainer(container("a"));
    const events = await docker(["events", "--since", before.State.StartedAt, "--until", "0s", "--filter", `container=${container("a")}`, "--filter", "event=oom", "--format", "{{.Action}}"]);
    expect({
      oomEvents: events.split("\n").filter(Boolean).length > 0,
      oomKilled: after.State.OOMKilled,
      restarted: after.RestartCount > before.RestartCount,
      sameContainer: after.Id === before.Id,
      running: after.State.Running,
    }).toEqual({ oomEvents: true, oomKilled: true, restarted: true, sameContainer: true, running: true });
    expect({ otherFailures, otherAnswered: otherAnswers > 0 }).toEqual({ otherFailures: 0, otherAnswered: true });
  }, 180_000);
});

describe("isolation", () => {
  it("each client is alone on a bridge network of its own: no shared network, no on-link route to the other", async () => {
    const [a, b] = await Promise.all([inspectContainer(container("a")), inspectContainer(container("b"))]);
    expect(Object.keys(a.NetworkSettings.Networks)).toEqual([container("a")]);
    expect(Object.keys(b.NetworkSettings.Networks)).toEqual([container("b")]);
    for (const key of ["a", "b"]) {
      const network = await inspectNetwork(container(key));
      expect({ driver: network.Driver, members: Object.values(network.Containers).map((c) => c.Name) }).toEqual({ driver: "bridge", members: [container(key)] });
    }
    // B's address is on no network A is attached to: reaching it needs the host to route it.
    const bAddress = ipv4(b.NetworkSettings.Networks[container("b")].IPAddress);
    const aRoutes = await onLinkRoutes(container("a"));
    expect(aRoutes.length).toBeGreaterThan(0);
    expect(aRoutes.some(([network, mask]) => ((bAddress & mask) >>> 0) === network)).toBe(false);
    // Sanity of the check itself: A's own address is on one of its on-link routes.
    const aAddress = ipv4(a.NetworkSettings.Networks[container("a")].IPAddress);
    expect(aRoutes.some(([network, mask]) => ((aAddress & mask) >>> 0) === network)).toBe(true);
  }, 60_000);

  it("from inside client A, client B's name does not resolve and its published port is unreachable", async () => {
    const a = await inspectContainer(container("a"));
    const aGateway = a.NetworkSettings.Networks[container("a")].Gateway;
    // The same command reaches A itself, by its own name too: a failure below is isolation, not a broken curl or DNS.
    expect(await curlFrom(container("a"), "http://127.0.0.1:8080/health")).toMatchObject({ code: 0 });
    expect(await curlFrom(container("a"), `http://${container("a")}:8080/health`)).toMatchObject({ code: 0 });
    const byName = await curlFrom(container("a"), `http://${container("b")}:8080/health`);
    // 6: not resolved; 28 with "Resolving": no answer for the name (the engine's DNS knows only A's network).
    expect({ resolved: !(byName.code === 6 || (byName.code === 28 && /Resolving timed out/.test(byName.output))), output: byName.output }).toMatchObject({ resolved: false });
    // B publishes on the host's 127.0.0.1 only: neither A's own loopback nor its gateway has it.
    for (const url of [`http://127.0.0.1:${stack().port("b")}/health`, `http://${aGateway}:${stack().port("b")}/health`]) {
      const attempt = await curlFrom(container("a"), url);
      expect({ url, code: attempt.code }).toEqual({ url, code: 7 }); // 7: connection refused
    }
  }, 120_000);

  it("no container of the stack publishes anything beyond 127.0.0.1", async () => {
    // Everything on the private test engine is this stack's.
    const ids = (await docker(["ps", "-aq"])).split("\n").filter(Boolean);
    expect(ids.length).toBeGreaterThanOrEqual(3); // the two clients and the proxy
    const bindings = (await Promise.all(ids.map((id) => inspectContainer(id))))
      .flatMap((c) => Object.values(c.NetworkSettings.Ports ?? {}))
      .flatMap((list) => list ?? []);
    expect(bindings.length).toBeGreaterThan(0);
    expect([...new Set(bindings.map((b) => b.HostIp))]).toEqual(["127.0.0.1"]);
  }, 60_000);
});
