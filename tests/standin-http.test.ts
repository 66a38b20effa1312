/**
 * The workspace stand-in's program (images/workspace/workspace.py) as an HTTP server, run with
 * the machine's python3 on a loopback port and a temporary data directory: what a proxy needs of
 * an upstream (keep-alive, HEAD, each answer framed and sent in one piece, unread bodies that do
 * not poison the connection, a listen backlog for bursts) and the endpoints the stack's tests
 * use. Its image on the real engine is tested in standin.engine.test.ts; its latency is a
 * benchmark (scripts/bench-standin.ts), not a test.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "./support/caddyProcess";
import { request, timeStream, type Target } from "./support/httpClient";
import { connectWebSocket } from "./support/httpWebSocket";
import { RawHttpConnection } from "./support/rawHttp";

const SCRIPT = path.join(__dirname, "..", "images", "workspace", "workspace.py");

let child: ChildProcess;
let port: number;
let dataDir: string;
let logs = "";
let target: Target;
const exited = (): Promise<number | null> =>
  child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once("exit", (code) => resolve(code)));

beforeAll(async () => {
  if (spawnSync("python3", ["--version"]).error) throw new Error("python3 is needed to run the workspace stand-in: apt-get install python3");
  dataDir = mkdtempSync(path.join(os.tmpdir(), "mai-standin-http-"));
  port = await freePort();
  target = { port, hostname: "localhost" };
  child = spawn("python3", ["-u", SCRIPT], {
    env: { PATH: process.env.PATH, DATA_DIR: dataDir, PORT: String(port), WEBUI_NAME: "mAI - Raw Test", STANDIN_HEARTBEAT_SECONDS: "60" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr!.on("data", (chunk: Buffer) => (logs += chunk.toString()));
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) throw new Error(`the stand-in exited with ${child.exitCode}:\n${logs}`);
    if (await request(target, "/health", { timeoutMs: 1000 }).then((reply) => reply.status === 200, () => false)) break;
    if (attempt > 100) throw new Error(`the stand-in never answered /health:\n${logs}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
});

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill("SIGKILL");
    await exited();
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const get = (pathname: string, extra = ""): string => `GET ${pathname} HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`;

describe("workspace stand-in as an upstream server", () => {
  it("answers HEAD wherever GET answers: same status and headers, no body, connection kept", async () => {
    const connection = await RawHttpConnection.open(port);
    try {
      for (const pathname of ["/health", "/api/config", "/health/db"]) {
        connection.send(get(pathname));
        const full = await connection.readResponse("GET");
        connection.send(get(pathname).replace(/^GET/, "HEAD"));
        const head = await connection.readResponse("HEAD");
        expect(head.status, pathname).toBe(200);
        expect(head.headers["content-type"]).toBe(full.headers["content-type"]);
        expect(head.headers["content-length"]).toBe(String(full.body.length));
        expect(full.body.length).toBeGreaterThan(0);
      }
      // Had a body followed the HEAD answer, it would be read as the start of this one.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(connection.pending).toBe(0);
      connection.send(get("/health"));
      const after = await connection.readResponse();
      expect([after.status, after.body.toString()]).toEqual([200, '{"status":true}']);

      connection.send("HEAD /api/stream?events=3&interval_ms=0 HTTP/1.1\r\nHost: localhost\r\n\r\n");
      const stream = await connection.readResponse("HEAD");
      expect([stream.status, stream.headers["content-type"]]).toEqual([200, "text/event-stream"]);
      connection.send(get("/health"));
      expect((await connection.readResponse()).status).toBe(200);
      expect(connection.ended).toBe(false);
    } finally {
      connection.close();
    }
  });

  it("keeps one connection for many requests, in sequence and pipelined, each answer with its length", async () => {
    const connection = await RawHttpConnection.open(port);
    try {
      for (const pathname of ["/health", "/api/config", "/api/stats", "/nope"]) {
        connection.send(get(pathname));
        const reply = await connection.readResponse();
        expect(reply.status, pathname).toBe(pathname === "/nope" ? 404 : 200);
        expect(reply.headers["content-length"], pathname).toBe(String(reply.body.length));
        expect(reply.headers.connection ?? "").not.toMatch(/close/i);
      }
      connection.send(get("/health") + get("/api/config") + get("/health"));
      const answers = [await connection.readResponse(), await connection.readResponse(), await connection.readResponse()];
      expect(answers.map((reply) => reply.body.toString())).toEqual(['{"status":true}', '{"status":true,"name":"mAI - Raw Test"}', '{"status":true}']);
      expect(connection.ended).toBe(false);
    } finally {
      connection.close();
    }
  });

  it("sends each answer, status line to body, in one piece (no small write left waiting for an ACK)", async () => {
    const connection = await RawHttpConnection.open(port);
    try {
      for (let i = 0; i < 10; i++) {
        connection.send(get(i % 2 ? "/health" : "/api/config"));
        const reply = await connection.readResponse();
        expect(reply.status).toBe(200);
        expect(reply.reads, `answer ${i} came in ${reply.reads} reads`).toBe(1);
      }
    } finally {
      connection.close();
    }
  });

  it("discards a request body the endpoint did not read, so the next request on the connection is answered", async () => {
    const connection = await RawHttpConnection.open(port);
    try {
      // A body that would read as a request if the server took it for the next one.
      const smuggled = get("/api/free").replace(/^GET/, "POST");
      connection.send(`POST /nope HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`);
      expect((await connection.readResponse()).status).toBe(404);
      connection.send(`PUT /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
      expect((await connection.readResponse()).status).toBe(405);
      connection.send(`GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nbody`);
      expect((await connection.readResponse()).status).toBe(200);
      connection.send(get("/api/config"));
      const next = await connection.readResponse();
      expect([next.status, next.body.toString()]).toEqual([200, '{"status":true,"name":"mAI - Raw Test"}']);
      expect(connection.pending).toBe(0);
    } finally {
      connection.close();
    }
  });

  it("answers another method on a known path with 405 and Allow, an unknown path with 404, both as JSON", async () => {
    const connection = await RawHttpConnection.open(port);
    try {
      connection.send("PUT /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n");
      const put = await connection.readResponse();
      expect([put.status, put.headers.allow, put.body.toString()]).toEqual([405, "GET, HEAD", '{"detail":"Method Not Allowed"}']);
      connection.send("DELETE /api/write HTTP/1.1\r\nHost: localhost\r\n\r\n");
      expect((await connection.readResponse()).headers.allow).toBe("POST");
      connection.send("OPTIONS /missing HTTP/1.1\r\nHost: localhost\r\n\r\n");
      const missing = await connection.readResponse();
      expect([missing.status, missing.headers["content-type"], missing.body.toString()]).toEqual([404, "application/json", '{"detail":"Not Found"}']);
      expect(connection.ended).toBe(false);
    } finally {
      connection.close();
    }
  });

  it("asks for a body with 100 Continue before reading it", async () => {
    const connection = await RawHttpConnection.open(port);
    try {
      connection.send("POST /api/write HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n");
      expect((await connection.readResponse()).status).toBe(100);
      connection.send("asked chat");
      const written = await connection.readResponse();
      expect(written.status).toBe(200);
      expect(JSON.parse(written.body.toString())).toMatchObject({ title: "asked chat" });
    } finally {
      connection.close();
    }
  });

  it("ends the connection after the answer when the client asks to, or speaks HTTP/1.0", async () => {
    for (const requestText of [get("/health", "Connection: close\r\n"), "GET /health HTTP/1.0\r\n\r\n"]) {
      const connection = await RawHttpConnection.open(port);
      try {
        connection.send(requestText);
        expect((await connection.readResponse()).status).toBe(200);
        await connection.waitEnded();
      } finally {
        connection.close();
      }
    }
    const keepAlive10 = await RawHttpConnection.open(port);
    try {
      keepAlive10.send("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
      expect((await keepAlive10.readResponse()).status).toBe(200);
      keepAlive10.send("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
      expect((await keepAlive10.readResponse()).status).toBe(200);
    } finally {
      keepAlive10.close();
    }
  });

  it("refuses a malformed request line, a header without a colon, too many or too long header fields, then closes", async () => {
    const cases: [string, number][] = [
      ["NONSENSE\r\n\r\n", 400],
      ["GET /health HTTP/2.0\r\n\r\n", 505],
      ["GET /health HTTP/1.1\r\nno colon here\r\n\r\n", 400],
      // Exactly what the server reads before it refuses: unread bytes would turn its close into a reset.
      [`GET /health HTTP/1.1\r\n${"X-Repeated: 1\r\n".repeat(101)}`, 431],
      [`GET /health HTTP/1.1\r\nX-Long: ${"x".repeat(65_537 - "X-Long: ".length)}`, 431],
    ];
    for (const [requestText, status] of cases) {
      const connection = await RawHttpConnection.open(port);
      try {
        connection.send(requestText);
        expect((await connection.readResponse()).status, JSON.stringify(requestText.slice(0, 40))).toBe(status);
        await connection.waitEnded();
      } finally {
        connection.close();
      }
    }
    expect((await request(target, "/health")).status).toBe(200);
  });

  it("listens with a backlog for a burst of new connections, not Python's default of 5", () => {
    const listing = spawnSync("ss", ["-Hltn", `sport = :${port}`], { encoding: "utf8" });
    expect(listing.error, "ss (iproute2) is needed").toBeUndefined();
    // Listening sockets: Send-Q is the backlog.
    const backlog = Number(listing.stdout.trim().split(/\s+/)[2]);
    expect(backlog).toBeGreaterThanOrEqual(128);
  });
});

describe("workspace stand-in endpoints the tests use", () => {
  it("keeps users, chats and uploads in its database and data directory", async () => {
    const signup = async (email: string) => JSON.parse((await request(target, `/api/signup?email=${email}`, { method: "POST" })).body) as { role: string };
    expect([(await signup("owner@example.test")).role, (await signup("member@example.test")).role]).toEqual(["admin", "pending"]);
    expect((await request(target, "/api/signup", { method: "POST" })).status).toBe(400);
    const stats = async (): Promise<Record<string, unknown>> => JSON.parse((await request(target, "/api/stats")).body) as Record<string, unknown>;
    const chatsBefore = (await stats()).chats as number;
    const connection = await RawHttpConnection.open(port);
    try {
      connection.send("POST /api/write HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nchunky\r\n5\r\n chat\r\n0\r\n\r\n");
      expect(JSON.parse((await connection.readResponse()).body.toString())).toMatchObject({ title: "chunky chat" });
      connection.send("POST /api/upload?name=notes.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nnotes");
      expect(JSON.parse((await connection.readResponse()).body.toString())).toEqual({ name: "notes.txt", bytes: 5 });
      connection.send("POST /api/upload?name=.. HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nbad");
      expect((await connection.readResponse()).status).toBe(400);
    } finally {
      connection.close();
    }
    expect(await stats()).toMatchObject({ journal_mode: "wal", users: 2, chats: chatsBefore + 1, held_mb: 0 });
  });

  it("streams Server-Sent Events chunked, and echoes websockets", async () => {
    const stream = await timeStream(target, "/api/stream?events=4&interval_ms=50");
    expect(stream.headers["content-type"]).toBe("text/event-stream");
    expect(stream.body.toString().match(/^data: .*$/gm)).toHaveLength(5);
    const socket = await connectWebSocket({ port, hostname: "localhost", path: "/ws/socket.io/?EIO=4&transport=websocket" });
    try {
      socket.send("hello stand-in");
      expect(await socket.nextMessage()).toBe("hello stand-in");
    } finally {
      socket.close();
    }
  });

  it("allocates and frees memory on request, and rejects out-of-range parameters with 400", async () => {
    expect(JSON.parse((await request(target, "/api/allocate?mb=2", { method: "POST" })).body)).toEqual({ held_mb: 2 });
    expect(JSON.parse((await request(target, "/api/free", { method: "POST" })).body)).toEqual({ held_mb: 0 });
    const refused = await request(target, "/api/allocate?mb=0", { method: "POST" });
    expect([refused.status, JSON.parse(refused.body)]).toEqual([400, { detail: "mb must be between 1 and 65536" }]);
  });

  it("logs requests other than health checks, and stops with exit 0 on SIGTERM", async () => {
    expect(logs).toContain("POST /api/write HTTP/1.1");
    expect(logs).not.toMatch(/"(GET|HEAD) \/health[^"]*" 200/);
    child.kill("SIGTERM");
    expect(await exited()).toBe(0);
    expect(logs).toContain("workspace-standin: stopped");
  });
});
