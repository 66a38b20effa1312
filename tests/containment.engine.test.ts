/**
 * Tenants are untrusted code (an Open WebUI admin can run Python in the server): on the real
 * engine, after a real `pulumi up`, every client container has a pids limit, no-new-privileges,
 * no capabilities, an init process and a read-only root; a process flood in one client stops at
 * its limit while another keeps answering through Caddy; the settings survive a replacement and
 * an engine restart, and a preview afterwards is clean.
 */
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { answering, until } from "./support/deployedHost";
import { docker, newRunId } from "./support/engine";
import { request } from "./support/httpClient";
import { proxyRootCa } from "./support/realStack";
import { useRealEngineSuite } from "./support/testEngine";

const id = newRunId();
const FLOODED = "name: Test a\nresources:\n  pids: 128\n";
const suite = useRealEngineSuite({
  runId: id,
  clients: [{ key: "a", yaml: FLOODED }, { key: "b" }],
  ready: async ({ stack }) => {
    await Promise.all([answering(stack, "a"), answering(stack, "b")]);
  },
});
const stack = () => suite.stack;

interface Inspected {
  Id: string;
  HostConfig: { PidsLimit: number; SecurityOpt: string[] | null; CapDrop: string[] | null; CapAdd: string[] | null; Init: boolean; ReadonlyRootfs: boolean; Tmpfs: Record<string, string> | null };
}
const inspect = async (key: string) => (JSON.parse(await docker(["inspect", stack().container(key)])) as Inspected[])[0];

async function expectContained(key: string, pids: number): Promise<void> {
  const { HostConfig: host } = await inspect(key);
  expect({
    pids: host.PidsLimit,
    securityOpt: host.SecurityOpt,
    capDrop: host.CapDrop,
    capAdd: host.CapAdd ?? [],
    init: host.Init,
    readOnlyRoot: host.ReadonlyRootfs,
    tmp: Object.keys(host.Tmpfs ?? {}),
  }).toEqual({ pids, securityOpt: ["no-new-privileges:true"], capDrop: ["ALL"], capAdd: [], init: true, readOnlyRoot: true, tmp: ["/tmp"] });
  const status = await docker(["exec", stack().container(key), "cat", "/proc/1/status", "/proc/self/status"]);
  expect(status).toMatch(/CapEff:\s+0000000000000000/);
  expect(status).toMatch(/NoNewPrivs:\s+1/);
}

async function throughCaddy(key: string): Promise<number> {
  const ca = await proxyRootCa(stack().dockerHost());
  return (await request({ port: stack().httpsPort(), hostname: stack().hostname(key), ca }, "/health", { timeoutMs: 10_000 })).status;
}

describe("a tenant's container is contained", () => {
  it("every client container has a pids limit, no-new-privileges, no capabilities, init and a read-only root", async () => {
    await expectContained("a", 128);
    await expectContained("b", 1024);
  }, 180_000);

  it("a process flood in one client stops at its limit while another keeps answering through Caddy", async () => {
    // Bounded: 2000 sleepers at most, each gone after 30 s; the shell itself is killed after 60 s.
    const flood = spawn("docker", ["exec", stack().container("a"), "sh", "-c", "i=0; while [ $i -lt 2000 ]; do sleep 30 & i=$((i+1)); done; wait"], {
      env: process.env,
      stdio: "ignore",
    });
    const killer = setTimeout(() => flood.kill("SIGKILL"), 60_000);
    try {
      const pidsCurrent = async () => Number(await docker(["exec", stack().container("a"), "cat", "/sys/fs/cgroup/pids/pids.current"]).catch(() => docker(["exec", stack().container("a"), "cat", "/sys/fs/cgroup/pids.current"])));
      await until("the flood reaches the limit", async () => (await pidsCurrent().catch(() => 0)) >= 120, 90_000);
      expect(await pidsCurrent().catch(() => 128)).toBeLessThanOrEqual(128);
      const answers: number[] = [];
      for (let i = 0; i < 20; i++) answers.push(await throughCaddy("b"));
      expect(answers).toEqual(Array(20).fill(200));
    } finally {
      clearTimeout(killer);
      flood.kill("SIGKILL");
    }
    // The sleepers end; init reaps them and the client answers again.
    await until("client a recovers", async () => (await throughCaddy("a").catch(() => 0)) === 200, 180_000);
  }, 400_000);

  it("the settings survive a replacement of the container and a restart of the engine", async () => {
    const before = (await inspect("a")).Id;
    await stack().writeClient({ key: "a", yaml: `${FLOODED}env:\n  DEFAULT_LOCALE: de-DE\n` });
    await stack().up();
    expect((await inspect("a")).Id).not.toBe(before);
    await expectContained("a", 128);
    await suite.engine.restart();
    await Promise.all([answering(stack(), "a"), answering(stack(), "b")]);
    await expectContained("a", 128);
    await expectContained("b", 1024);
    const preview = await stack().preview();
    expect(preview.steps.filter((s) => s.op !== "same").map((s) => `${s.op} ${s.key}`)).toEqual([]);
  }, 600_000);
});
