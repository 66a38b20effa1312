/**
 * The workspace stand-in image as the stack deploys it with a real `pulumi up` (its environment,
 * data volume, network, limits and health check as the program declares them): the part of mAI's
 * contract the stack relies on (health, a SQLite database in WAL mode that keeps growing,
 * unbuffered SSE, websocket echo, uploads on the data volume, a prompt stop, secrets never logged)
 * and the load endpoints the limit tests use (CPU burners; memory past a container's limit gets it
 * OOM-killed, shown on a container of the test's own with no restart policy).
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { CLIENT_HEALTHCHECK } from "../policy/clientContainer";
import { LOCAL_WORKSPACE_IMAGE } from "../policy/localImages";
import { docker, inspect, newRunId, publishedPort } from "./support/engine";
import { request, timeStream, type Target } from "./support/httpClient";
import { connectWebSocket } from "./support/httpWebSocket";
import { MACHINE_DOCKER_HOST, useRealEngineSuite } from "./support/testEngine";

const DB = "/app/backend/data/webui.db";
const WAIT_MS = 90_000;
const id = newRunId();

const suite = useRealEngineSuite({
  runId: id,
  // A fast heartbeat (a client file may set it: it is no stack-managed variable) so the database
  // visibly keeps growing within the test.
  clients: [{ key: "w", yaml: 'name: Stand-in Test\nenv:\n  STANDIN_HEARTBEAT_SECONDS: "0.3"\n' }],
  ready: async ({ stack }) => {
    await answering({ port: stack.port("w"), hostname: "localhost" }, stack.container("w"));
  },
});
const stack = () => suite.stack;
const main = () => stack().container("w");
const target = (): Target => ({ port: stack().port("w"), hostname: "localhost" });

interface ContainerState {
  State: { Running: boolean; OOMKilled: boolean; ExitCode: number; Status: string };
  Config: { Env: string[]; Healthcheck?: { Test: string[] } };
}

async function answering(at: Target, name: string, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  for (;;) {
    try {
      const reply = await request(at, "/health", { timeoutMs: 5000 });
      if (reply.status === 200) return;
      last = `HTTP ${reply.status}`;
    } catch (error) {
      last = String(error);
    }
    if (Date.now() > deadline) throw new Error(`${name} never answered /health within ${timeoutMs} ms (${last})`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Runs sqlite3 inside the container, against the database file itself (not through the app). */
async function sqlite(sql: string): Promise<string> {
  return docker(["exec", main(), "sqlite3", "-cmd", ".timeout 10000", DB, sql]);
}

/** The container's session secret, as the stack gave it (from the engine, never printed). */
async function webuiSecret(): Promise<string> {
  const env = (await inspect<ContainerState>(main())).Config.Env;
  const entry = env.find((e) => e.startsWith("WEBUI_SECRET_KEY="));
  if (!entry) throw new Error("the client container has no WEBUI_SECRET_KEY");
  return entry.slice("WEBUI_SECRET_KEY=".length);
}

describe("workspace stand-in as the stack deploys it", () => {
  it("answers /health with Open WebUI's body, and the health check the stack declares passes inside", async () => {
    const health = await request(target(), "/health");
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ status: true });
    const config = JSON.parse((await request(target(), "/api/config")).body) as { name: string };
    expect(config.name).toBe("mAI - Stand-in Test");
    // The exact command the client container declares (curl must be in the image).
    const declared = (await inspect<ContainerState>(main())).Config.Healthcheck?.Test;
    expect(declared).toEqual(CLIENT_HEALTHCHECK.tests);
    expect(CLIENT_HEALTHCHECK.tests[0]).toBe("CMD-SHELL");
    await expect(docker(["exec", main(), "sh", "-c", CLIENT_HEALTHCHECK.tests[1]])).resolves.toContain('"status"');
  }, 180_000);

  it("keeps webui.db in WAL mode with Open WebUI's user roles, and writes to it continuously", async () => {
    expect(await sqlite("PRAGMA journal_mode")).toBe("wal");
    const columns = (await sqlite("SELECT name FROM pragma_table_info('user')")).split("\n");
    expect(columns).toEqual(expect.arrayContaining(["id", "email", "role"]));

    const first = JSON.parse((await request(target(), "/api/signup?email=owner@example.test", { method: "POST" })).body) as { role: string };
    const second = JSON.parse((await request(target(), "/api/signup?email=member@example.test", { method: "POST" })).body) as { role: string };
    expect([first.role, second.role]).toEqual(["admin", "pending"]);
    expect(await sqlite("SELECT email || ':' || role FROM user ORDER BY created_at, email")).toBe("member@example.test:pending\nowner@example.test:admin");

    const heartbeatsBefore = Number(await sqlite("SELECT count(*) FROM heartbeat"));
    const written = await request(target(), "/api/write", { method: "POST", body: Readable.from([Buffer.from("first chat")]) });
    expect(written.status).toBe(200);
    expect(await sqlite("SELECT title FROM chat")).toBe("first chat");
    // The heartbeat keeps appending on its own (every 0.3 s here): wait until it has.
    let heartbeatsAfter = heartbeatsBefore;
    const deadline = Date.now() + WAIT_MS;
    while (heartbeatsAfter <= heartbeatsBefore + 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      heartbeatsAfter = Number(await sqlite("SELECT count(*) FROM heartbeat"));
    }
    expect(heartbeatsAfter).toBeGreaterThan(heartbeatsBefore + 2);
    await expect(docker(["exec", main(), "test", "-s", `${DB}-wal`])).resolves.toBe("");
  }, 180_000);

  it("streams Server-Sent Events as they are produced", async () => {
    const timings = await timeStream(target(), "/api/stream?events=6&interval_ms=300");
    expect(timings.status).toBe(200);
    expect(timings.headers["content-type"]).toBe("text/event-stream");
    const events = timings.body.toString("utf8").match(/^data: .*$/gm) ?? [];
    expect(events).toHaveLength(7);
    expect(events[6]).toBe("data: [DONE]");
    // The server needs ~1.5 s for the whole stream; unbuffered, most events arrive well before its end.
    expect(timings.totalMs).toBeGreaterThan(1200);
    const early = timings.arrivalsMs.filter((ms) => ms < timings.totalMs - 500);
    expect(early.length, `chunk arrivals ${timings.arrivalsMs.map(Math.round).join(",")}`).toBeGreaterThanOrEqual(3);
  }, 180_000);

  it("echoes websocket messages, short and long", async () => {
    const socket = await connectWebSocket({ port: stack().port("w"), hostname: "localhost", path: "/ws/socket.io/?EIO=4&transport=websocket" });
    try {
      socket.send("hello stand-in");
      expect(await socket.nextMessage()).toBe("hello stand-in");
      const long = "x".repeat(70_000); // needs the 64-bit length form
      socket.send(long);
      expect(await socket.nextMessage(10_000)).toBe(long);
    } finally {
      socket.close();
    }
  }, 180_000);

  it("stores uploads on the stack's data volume", async () => {
    const content = randomBytes(200_000);
    const reply = await request(target(), "/api/upload?name=report.bin", {
      method: "POST",
      headers: { "Content-Length": content.length },
      body: Readable.from([content]),
    });
    expect(JSON.parse(reply.body)).toEqual({ name: "report.bin", bytes: content.length });
    // Read from the volume itself on the engine's host, not through the container.
    const mountpoint = await docker(["volume", "inspect", "-f", "{{.Mountpoint}}", `${main()}-data`]);
    const onVolume = fs.readFileSync(path.join(mountpoint, "uploads", "report.bin"));
    expect(createHash("sha256").update(onVolume).digest("hex")).toBe(createHash("sha256").update(content).digest("hex"));
  }, 180_000);

  it("burns CPU in separate processes on request", async () => {
    const reply = await request(target(), "/api/burn?seconds=2&workers=2", { method: "POST" });
    expect(reply.status).toBe(202);
    const processes = await docker(["top", main(), "-o", "pid,args"]);
    expect(processes.split("\n").filter((line) => line.includes("while time.time() < end")).length).toBe(2);
  }, 180_000);

  it("logs the names of its secrets, never their values", async () => {
    const secret = await webuiSecret();
    expect(secret.length).toBeGreaterThanOrEqual(32);
    // `docker logs` replays the container's stderr on its own stderr.
    const { stdout, stderr } = await promisify(execFile)("docker", ["logs", main()], { maxBuffer: 64 * 1024 * 1024 });
    const logs = stdout + stderr;
    expect(logs).toMatch(/environment \(names only\): .*\bWEBUI_SECRET_KEY\b/);
    expect(logs.includes(secret)).toBe(false);
  }, 180_000);

  it("stops promptly on SIGTERM with a clean exit, and keeps its data across a restart", async () => {
    const chatsBefore = await sqlite("SELECT count(*) FROM chat");
    await docker(["stop", "-t", "30", main()], 60_000);
    const stopped = await inspect<ContainerState>(main());
    // Exit 0 means the stand-in handled SIGTERM itself (as PID 1 it would otherwise ignore it
    // and be killed after the timeout with 137).
    expect(stopped.State.ExitCode).toBe(0);
    await docker(["start", main()]);
    await answering(target(), main());
    expect(await sqlite("SELECT count(*) FROM chat")).toBe(chatsBefore);
    expect(await sqlite("SELECT count(*) FROM user")).toBe("2");
  }, 180_000);

  it("is OOM-killed when it allocates past its container's memory limit", async () => {
    // A container of the test's own on the test engine (removed with it): no restart policy, so
    // the kill stays visible instead of being followed by a restart.
    const network = `mai-${id}-oom`;
    const limited = `mai-${id}-limited`;
    await docker(["network", "create", network]);
    await docker(["run", "-d", "--name", limited, "--network", network, "-p", "127.0.0.1::8080", "--memory", "96m", "--memory-swap", "96m", "--restart", "no", LOCAL_WORKSPACE_IMAGE]);
    const limitedTarget: Target = { port: await publishedPort(limited, "8080/tcp"), hostname: "localhost" };
    await answering(limitedTarget, limited);
    // Below the limit: held, the process lives on.
    const small = await request(limitedTarget, "/api/allocate?mb=16", { method: "POST" });
    expect(JSON.parse(small.body)).toEqual({ held_mb: 16 });
    // Past the limit: the kernel kills it mid-request.
    await request(limitedTarget, "/api/allocate?mb=256", { method: "POST", timeoutMs: 60_000 }).then(
      (reply) => expect.fail(`allocation past the limit was answered: ${reply.status} ${reply.body}`),
      () => undefined,
    );
    await docker(["wait", limited], 60_000);
    const state = (await inspect<ContainerState>(limited)).State;
    expect(state.OOMKilled).toBe(true);
    expect(state.ExitCode).toBe(137);
  }, 180_000);

  it("runs on the test engine only: the machine's engine has no object of this run", async () => {
    const onMachine = async (args: string[]) => {
      const { stdout } = await promisify(execFile)("docker", args, { env: { ...process.env, DOCKER_HOST: MACHINE_DOCKER_HOST } });
      return stdout.split("\n").filter((name) => name.includes(id));
    };
    expect(await docker(["ps", "-a", "--format", "{{.Names}}"])).toContain(main());
    expect(await onMachine(["ps", "-a", "--format", "{{.Names}}"])).toEqual([]);
    expect(await onMachine(["volume", "ls", "--format", "{{.Name}}"])).toEqual([]);
    expect(await onMachine(["network", "ls", "--format", "{{.Name}}"])).toEqual([]);
  }, 180_000);
});
