/**
 * A small local HTTP server standing in for one client's mAI container: identifies itself in
 * every answer, streams (SSE, chunked, fixed length), counts uploads and echoes websockets the way
 * Open WebUI's /ws/socket.io/ is used (both directions).
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { acceptWebSocket, type WebSocketConnection } from "./httpWebSocket";

/** A running fake workspace. */
export interface FakeWorkspace {
  /** Client slug it answers for. */
  slug: string;
  /** Port on 127.0.0.1. */
  port: number;
  /** Requests received, health checks excluded. */
  requestCount: number;
  /** Open websockets accepted by this workspace. */
  sockets: Set<WebSocketConnection>;
  /** Stops the server and drops every open connection. */
  close(): Promise<void>;
}

/** Header every fake workspace answer carries, naming the client. */
export const WORKSPACE_HEADER = "x-workspace";

/**
 * Starts a fake workspace. Routes:
 * - `/health`: 200.
 * - `/sse`, `/chunked`, `/fixed` `?chunks=N&interval=MS`: N chunks, one every MS milliseconds, as
 *   text/event-stream, chunked text/plain, or text/plain with a Content-Length.
 * - `POST /upload`: reads the body and answers `{"bytes": n}`.
 * - upgrade on `/ws/socket.io/`: sends `hello:<slug>`, echoes `<slug>:<message>`.
 * - anything else: `workspace:<slug> host:<Host>`.
 */
export async function startFakeWorkspace(slug: string, port = 0): Promise<FakeWorkspace> {
  const sockets = new Set<WebSocketConnection>();
  const workspace: FakeWorkspace = {
    slug,
    port: 0,
    requestCount: 0,
    sockets,
    close: () => Promise.resolve(),
  };
  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://workspace");
    response.setHeader(WORKSPACE_HEADER, slug);
    response.setHeader("Server", "uvicorn");
    if (url.pathname === "/health") {
      response.end('{"status":true}');
      return;
    }
    workspace.requestCount++;
    if (url.pathname === "/upload" && request.method === "POST") {
      let bytes = 0;
      request.on("data", (chunk: Buffer) => (bytes += chunk.length));
      request.on("end", () => {
        response.setHeader("Content-Type", "application/json");
        response.end(JSON.stringify({ bytes }));
      });
      request.on("error", () => response.destroy());
      return;
    }
    const stream = streamShape(url.pathname);
    if (stream) {
      const chunks = Number(url.searchParams.get("chunks") ?? "10");
      const interval = Number(url.searchParams.get("interval") ?? "100");
      const chunk = (i: number): string =>
        stream === "sse" ? `data: ${slug} ${String(i).padStart(4, "0")}\n\n` : `${slug}-${String(i).padStart(4, "0")}\n`;
      response.setHeader("Content-Type", stream === "sse" ? "text/event-stream" : "text/plain; charset=utf-8");
      response.setHeader("Cache-Control", "no-cache");
      if (stream === "fixed") response.setHeader("Content-Length", chunk(0).length * chunks);
      response.flushHeaders();
      let sent = 0;
      const timer = setInterval(() => {
        response.write(chunk(sent++));
        if (sent === chunks) {
          clearInterval(timer);
          response.end();
        }
      }, interval);
      response.on("close", () => clearInterval(timer));
      return;
    }
    response.setHeader("Content-Type", "text/plain; charset=utf-8");
    response.end(`workspace:${slug} host:${request.headers.host ?? ""}`);
  });
  server.on("upgrade", (request, socket, head) => {
    if (!(request.url ?? "").startsWith("/ws/socket.io/")) {
      socket.destroy();
      return;
    }
    workspace.requestCount++;
    const connection = acceptWebSocket(request, socket, head);
    sockets.add(connection);
    void connection.closed.then(() => sockets.delete(connection));
    connection.send(`hello:${slug}`);
    socket.on("data", () => undefined);
    const echo = async (): Promise<void> => {
      while (!connection.isClosed) {
        const message = await connection.nextMessage(60_000).catch(() => undefined);
        if (message === undefined) return;
        connection.send(`${slug}:${message}`);
      }
    };
    void echo();
  });
  // Every raw socket, upgraded ones included (server.close() waits for those too).
  const rawSockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    rawSockets.add(socket);
    socket.once("close", () => rawSockets.delete(socket));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  workspace.port = (server.address() as AddressInfo).port;
  workspace.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of rawSockets) socket.destroy();
    });
  return workspace;
}

function streamShape(pathname: string): "sse" | "chunked" | "fixed" | undefined {
  if (pathname === "/sse") return "sse";
  if (pathname === "/chunked") return "chunked";
  if (pathname === "/fixed") return "fixed";
  return undefined;
}
