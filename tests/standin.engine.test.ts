/**
 * The workspace stand-in image on the real Docker engine: the part of mAI's contract the stack
 * relies on (health, a SQLite database in WAL mode that keeps growing, unbuffered SSE, websocket
 * echo, uploads on the data volume, a prompt stop) and the load endpoints the limit tests use
 * (memory past the container's limit gets it OOM-killed). Every object is labelled with this
 * run's id and removed afterwards.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { LOCAL_WORKSPACE_IMAGE } from "../policy/localImages";
import { CLIENT_HEALTHCHECK } from "../policy/clientContainer";
import { cleanupByLabel, docker, inspect, newRunId, publishedPort, runLabel } from "./support/engine";
import { useEngineSuite } from "./support/engineSuite";
import { request, timeStream, type Target } from "./support/httpClient";
import { connectWebSocket } from "./support/httpWebSocket";

const DB = "/app/backend/data/webui.db";
const runId = newRunId();
const label = runLabel(runId);
const network = `mai-${runId}`;
const secret = randomBytes(24).toString("hex");

interface ContainerState {
  State: { Running: boolean; OOMKilled: boolean; ExitCode: number; Status: string };
}

/** Starts a stand-in on the run's network with its port published on 127.0.0.1; returns its target. */
async function startStandIn(name: string, extra: string[] = []): Promise<Target> {
  await docker(["run", "-d", "--name", name, "--label", label, "--network", network, "-p", "127.0.0.1::8080", ...extra, LOCAL_WORKSPACE_IMAGE]);
  const target: Target = { port: await publishedPort(name, "8080/tcp"), hostname: "localhost" };
  let last = "no answer";
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      const reply = await request(target, "/health", { timeoutMs: 2000 });
      if (reply.status === 200) return target;
      last = `HTTP ${reply.status}`;
    } catch (error) {
      last = String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${name} never answered /health (${last})`);
}

/** Runs sqlite3 inside the container, against the database file itself (not through the app). */
async function sqlite(container: string, sql: string): Promise<string> {
  return docker(["exec", container, "sqlite3", DB, sql]);
}

describe("workspace stand-in image on the real engine", () => {
  const main = `mai-${runId}-standin`;
  const volume = `mai-${runId}-data`;
  let target: Target;

  useEngineSuite({
    runId,
    images: [LOCAL_WORKSPACE_IMAGE],
    setup: async () => {
      await docker(["network", "create", "--label", label, network]);
      await docker(["volume", "create", "--label", label, volume]);
      target = await startStandIn(main, [
        "-v",
        `${volume}:/app/backend/data`,
        "-e",
        "STANDIN_HEARTBEAT_SECONDS=0.3",
        "-e",
        `WEBUI_SECRET_KEY=${secret}`,
        "-e",
        "WEBUI_NAME=mAI - Stand-in Test",
      ]);
    },
  });

  it("answers /health with Open WebUI's body, and the stack's declared health check passes inside", async () => {
    const health = await request(target, "/health");
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ status: true });
    const config = JSON.parse((await request(target, "/api/config")).body) as { name: string };
    expect(config.name).toBe("mAI - Stand-in Test");
    // The exact command the client container declares (curl must be in the image).
    expect(CLIENT_HEALTHCHECK.tests[0]).toBe("CMD-SHELL");
    await expect(docker(["exec", main, "sh", "-c", CLIENT_HEALTHCHECK.tests[1]])).resolves.toContain('"status"');
  });

  it("keeps webui.db in WAL mode with Open WebUI's user roles, and writes to it continuously", async () => {
    expect(await sqlite(main, "PRAGMA journal_mode")).toBe("wal");
    const columns = (await sqlite(main, "SELECT name FROM pragma_table_info('user')")).split("\n");
    expect(columns).toEqual(expect.arrayContaining(["id", "email", "role"]));

    const first = JSON.parse((await request(target, "/api/signup?email=owner@example.test", { method: "POST" })).body) as { role: string };
    const second = JSON.parse((await request(target, "/api/signup?email=member@example.test", { method: "POST" })).body) as { role: string };
    expect([first.role, second.role]).toEqual(["admin", "pending"]);
    expect(await sqlite(main, "SELECT email || ':' || role FROM user ORDER BY created_at, email")).toBe("member@example.test:pending\nowner@example.test:admin");

    const heartbeatsBefore = Number(await sqlite(main, "SELECT count(*) FROM heartbeat"));
    const written = await request(target, "/api/write", { method: "POST", body: Readable.from([Buffer.from("first chat")]) });
    expect(written.status).toBe(200);
    expect(await sqlite(main, "SELECT title FROM chat")).toBe("first chat");
    // The heartbeat keeps appending on its own (every 0.3 s here): wait until it has.
    let heartbeatsAfter = heartbeatsBefore;
    for (let i = 0; i < 50 && heartbeatsAfter <= heartbeatsBefore + 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      heartbeatsAfter = Number(await sqlite(main, "SELECT count(*) FROM heartbeat"));
    }
    expect(heartbeatsAfter).toBeGreaterThan(heartbeatsBefore + 2);
    await expect(docker(["exec", main, "test", "-s", `${DB}-wal`])).resolves.toBe("");
  });

  it("streams Server-Sent Events as they are produced", async () => {
    const timings = await timeStream(target, "/api/stream?events=6&interval_ms=300");
    expect(timings.status).toBe(200);
    expect(timings.headers["content-type"]).toBe("text/event-stream");
    const events = timings.body.toString("utf8").match(/^data: .*$/gm) ?? [];
    expect(events).toHaveLength(7);
    expect(events[6]).toBe("data: [DONE]");
    // The server needs ~1.5 s for the whole stream; unbuffered, most events arrive well before its end.
    expect(timings.totalMs).toBeGreaterThan(1200);
    const early = timings.arrivalsMs.filter((ms) => ms < timings.totalMs - 500);
    expect(early.length, `chunk arrivals ${timings.arrivalsMs.map(Math.round).join(",")}`).toBeGreaterThanOrEqual(3);
  });

  it("echoes websocket messages, short and long", async () => {
    const socket = await connectWebSocket({ port: target.port, hostname: "localhost", path: "/ws/socket.io/?EIO=4&transport=websocket" });
    try {
      socket.send("hello stand-in");
      expect(await socket.nextMessage()).toBe("hello stand-in");
      const long = "x".repeat(70_000); // needs the 64-bit length form
      socket.send(long);
      expect(await socket.nextMessage(5000)).toBe(long);
    } finally {
      socket.close();
    }
  });

  it("stores uploads on the data volume", async () => {
    const content = randomBytes(200_000);
    const reply = await request(target, "/api/upload?name=report.bin", {
      method: "POST",
      headers: { "Content-Length": content.length },
      body: Readable.from([content]),
    });
    expect(JSON.parse(reply.body)).toEqual({ name: "report.bin", bytes: content.length });
    const sum = await docker(["exec", main, "sha256sum", "/app/backend/data/uploads/report.bin"]);
    expect(sum.split(" ")[0]).toBe(createHash("sha256").update(content).digest("hex"));
  });

  it("burns CPU in separate processes on request", async () => {
    const reply = await request(target, "/api/burn?seconds=2&workers=2", { method: "POST" });
    expect(reply.status).toBe(202);
    const processes = await docker(["top", main, "-o", "pid,args"]);
    expect(processes.split("\n").filter((line) => line.includes("while time.time() < end")).length).toBe(2);
  });

  it("logs the names of its secrets, never their values", async () => {
    // `docker logs` replays the container's stderr on its own stderr.
    const { stdout, stderr } = await promisify(execFile)("docker", ["logs", main]);
    const logs = stdout + stderr;
    expect(logs).toMatch(/environment \(names only\): .*\bWEBUI_SECRET_KEY\b/);
    expect(logs).not.toContain(secret);
  });

  it("stops promptly on SIGTERM with a clean exit, and keeps its data across a restart", async () => {
    const chatsBefore = await sqlite(main, "SELECT count(*) FROM chat");
    await docker(["stop", "-t", "30", main]);
    const stopped = await inspect<ContainerState>(main);
    // Exit 0 means the stand-in handled SIGTERM itself (as PID 1 it would otherwise ignore it
    // and be killed after the timeout with 137).
    expect(stopped.State.ExitCode).toBe(0);
    await docker(["start", main]);
    target = { port: await publishedPort(main, "8080/tcp"), hostname: "localhost" };
    for (let i = 0; i < 100; i++) {
      const ok = await request(target, "/health", { timeoutMs: 2000 }).then((r) => r.status === 200, () => false);
      if (ok) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(await sqlite(main, "SELECT count(*) FROM chat")).toBe(chatsBefore);
    expect(await sqlite(main, "SELECT count(*) FROM user")).toBe("2");
  });

  it("is OOM-killed when it allocates past its container's memory limit", async () => {
    const limited = `mai-${runId}-limited`;
    const limitedTarget = await startStandIn(limited, ["--memory", "96m", "--memory-swap", "96m", "--restart", "no"]);
    // Below the limit: held, the process lives on.
    const small = await request(limitedTarget, "/api/allocate?mb=16", { method: "POST" });
    expect(JSON.parse(small.body)).toEqual({ held_mb: 16 });
    // Past the limit: the kernel kills it mid-request.
    await request(limitedTarget, "/api/allocate?mb=256", { method: "POST", timeoutMs: 30_000 }).then(
      (reply) => expect.fail(`allocation past the limit was answered: ${reply.status} ${reply.body}`),
      () => undefined,
    );
    await docker(["wait", limited], 30_000);
    const state = (await inspect<ContainerState>(limited)).State;
    expect(state.OOMKilled).toBe(true);
    expect(state.ExitCode).toBe(137);
  });

  it("cleans up every container, network and volume of the run", async () => {
    const removed = await cleanupByLabel(label);
    expect(removed.containers).toHaveLength(2);
    expect(removed.networks).toHaveLength(1);
    expect(removed.volumes).toHaveLength(1);
    for (const kind of [["ps", "-aq"], ["network", "ls", "-q"], ["volume", "ls", "-q"]]) {
      expect(await docker([...kind, "--filter", `label=${label}`])).toBe("");
    }
  });
});
