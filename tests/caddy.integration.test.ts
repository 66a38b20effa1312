/**
 * The rendered Caddyfile served by the real Caddy release on loopback, with small local servers
 * standing in for the clients' mAI containers. Only ports, upstream addresses, admin address and
 * the certificate issuer differ from production; configs are installed and reloaded with the
 * production script host/caddy-apply.sh.
 */
import http from "node:http";
import http2 from "node:http2";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_REQUEST_BODY_BYTES, renderCaddyfile, SUSPENDED_RETRY_AFTER_SECONDS } from "../policy/caddyfile";
import type { ClientSpec } from "../config/model";
import { freePort, startCaddy, type CaddyInstance } from "./support/caddyProcess";
import { fixtureClient, fixtureClients } from "./support/caddyFixtures";
import { Http2Client, request, runLoad, timeStream, type Target } from "./support/httpClient";
import { connectWebSocket } from "./support/httpWebSocket";
import { startFakeWorkspace, WORKSPACE_HEADER, type FakeWorkspace } from "./support/httpWorkspace";

const clients = fixtureClients();
const newcomer = fixtureClient("foxtrot", { port: 3006, name: "Foxtrot AG" });
const late = fixtureClient("golf", { port: 3007, name: "Golf SE" });
const activeClients = clients.filter((client) => client.status === "active");
const BROWSER_ACCEPT_ENCODING = "gzip, deflate, br, zstd";

const workspaces = new Map<string, FakeWorkspace>();
let caddy: CaddyInstance | undefined;
let httpPort = 0;
let httpsPort = 0;
let adminAddress = "";

function render(list: ClientSpec[]): string {
  return renderCaddyfile(list, {
    acmeEmail: "ops@example.com",
    httpPort,
    httpsPort,
    adminAddress,
    issuer: "internal",
    upstream: (client) => `127.0.0.1:${workspaces.get(client.slug)?.port ?? 9}`,
  });
}

function proxy(): CaddyInstance {
  if (!caddy) throw new Error("Caddy is not running");
  return caddy;
}

function site(hostname: string, agent?: http.Agent): Target {
  return { port: httpsPort, hostname, ca: proxy().rootCa, agent };
}

function counts(): Record<string, number> {
  return Object.fromEntries([...workspaces].map(([slug, workspace]) => [slug, workspace.requestCount]));
}

/** Internal certificates are issued in the background right after a (re)load. */
async function waitUntilServed(hostname: string, slug: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const reply = await request(site(hostname), "/whoami").catch(() => undefined);
    if (reply?.headers[WORKSPACE_HEADER] === slug) return;
    if (Date.now() > deadline) throw new Error(`${hostname} is not served:\n${proxy().logs().slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function zeroes(bytes: number): Readable {
  const block = Buffer.alloc(1024 * 1024);
  let left = bytes;
  return new Readable({
    read() {
      if (left <= 0) {
        this.push(null);
        return;
      }
      const size = Math.min(left, block.length);
      left -= size;
      this.push(size === block.length ? block : block.subarray(0, size));
    },
  });
}

beforeAll(async () => {
  for (const client of [...clients, newcomer, late]) {
    workspaces.set(client.slug, await startFakeWorkspace(client.slug));
  }
  [httpPort, httpsPort] = [await freePort(), await freePort()];
  adminAddress = `127.0.0.1:${await freePort()}`;
  caddy = await startCaddy(render(clients), adminAddress);
  for (const client of activeClients) await waitUntilServed(client.hostname, client.slug);
});

afterAll(async () => {
  await caddy?.stop();
  await Promise.all([...workspaces.values()].map((workspace) => workspace.close()));
});

describe("Caddy serving the rendered Caddyfile", () => {
  it("routes each client's hostname to that client's workspace only", async () => {
    for (const client of activeClients) {
      const before = counts();
      const reply = await request(site(client.hostname), "/whoami");
      expect(reply.status).toBe(200);
      expect(reply.body).toBe(`workspace:${client.slug} host:${client.hostname}`);
      const after = counts();
      for (const slug of workspaces.keys()) {
        expect(after[slug] - before[slug], `requests reaching ${slug}`).toBe(slug === client.slug ? 1 : 0);
      }
    }
  });

  it("gives an unknown hostname no client's content, over HTTPS or HTTP", async () => {
    const before = counts();
    const overTls = await request(site("unknown.mai.test"), "/whoami").catch((error: Error) => error);
    if (!(overTls instanceof Error)) {
      expect(overTls.body).not.toMatch(/workspace:/);
      expect(overTls.headers[WORKSPACE_HEADER]).toBeUndefined();
    }
    const plain = await request({ port: httpPort, hostname: "unknown.mai.test" }, "/whoami");
    expect(plain.body).not.toMatch(/workspace:/);
    expect(plain.headers[WORKSPACE_HEADER]).toBeUndefined();
    expect(counts()).toEqual(before);
  });

  it("redirects plain HTTP to HTTPS and a default hostname to the custom one", async () => {
    const plain = await request({ port: httpPort, hostname: "alpha.mai.test" }, "/c/1?x=1");
    expect(plain.status).toBe(308);
    expect(plain.headers.location).toMatch(/^https:\/\/alpha\.mai\.test(:\d+)?\/c\/1\?x=1$/);

    const custom = clients.find((client) => client.hostname !== client.defaultHostname);
    if (!custom) throw new Error("fixture needs a client with a custom hostname");
    const before = counts();
    const moved = await request(site(custom.defaultHostname), "/c/1?x=1");
    expect(moved.status).toBe(308);
    // On a non-standard HTTPS port (a local stack) the redirect keeps it: the same listener answers.
    expect(moved.headers.location).toBe(`https://${custom.hostname}:${httpsPort}/c/1?x=1`);
    expect(counts()).toEqual(before);
  });

  it("answers a suspended client with the 503 page and never contacts its workspace", async () => {
    const suspended = clients.find((client) => client.status === "suspended");
    if (!suspended) throw new Error("fixture needs a suspended client");
    const reply = await request(site(suspended.hostname), "/api/chats", {
      headers: { "Accept-Encoding": "identity" },
    });
    expect(reply.status).toBe(503);
    expect(reply.headers["retry-after"]).toBe(String(SUSPENDED_RETRY_AFTER_SECONDS));
    expect(reply.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(reply.body).toContain("<h1>Workspace unavailable</h1>");
    // The name reaches the page escaped; Caddy placeholders in it are not expanded.
    expect(reply.body).toContain("Delta &#123;env.SECRET&#125; &#34;Ltd&#34;");
    const upgrade = await connectWebSocket({
      port: httpsPort,
      hostname: suspended.hostname,
      path: "/ws/socket.io/?EIO=4&transport=websocket",
      ca: proxy().rootCa,
    }).catch((error: Error) => error);
    expect(upgrade).toBeInstanceOf(Error);
    expect(workspaces.get(suspended.slug)?.requestCount).toBe(0);
  });

  it.each(["sse", "chunked", "fixed"])(
    "forwards every chunk of a %s stream as it is produced, compression accepted",
    async (shape) => {
      const timings = await timeStream(site("alpha.mai.test"), `/${shape}?chunks=10&interval=100`, {
        "Accept-Encoding": BROWSER_ACCEPT_ENCODING,
      });
      expect(timings.status).toBe(200);
      // The backend needs ~1 s for the whole stream; its first chunk leaves after ~100 ms.
      expect(timings.totalMs).toBeGreaterThan(900);
      expect(timings.firstChunkMs).toBeLessThan(400);
      const early = timings.arrivalsMs.filter((ms) => ms < timings.totalMs - 300);
      expect(early.length, `chunk arrivals ${timings.arrivalsMs.map(Math.round).join(",")}`).toBeGreaterThanOrEqual(5);
    },
  );

  it("carries a websocket upgrade end to end in both directions", async () => {
    const socket = await connectWebSocket({
      port: httpsPort,
      hostname: "bravo.mai.test",
      path: "/ws/socket.io/?EIO=4&transport=websocket",
      ca: proxy().rootCa,
    });
    try {
      expect(await socket.nextMessage()).toBe("hello:bravo");
      socket.send("ping-1");
      expect(await socket.nextMessage()).toBe("bravo:ping-1");
      const large = "x".repeat(70_000);
      socket.send(large);
      expect(await socket.nextMessage()).toBe(`bravo:${large}`);
    } finally {
      socket.close();
    }
  });

  it("sends the security headers and hides the Server header", async () => {
    const suspended = clients.find((client) => client.status === "suspended");
    const replies = [
      await request(site("alpha.mai.test"), "/whoami"),
      await request(site(suspended?.hostname ?? ""), "/"),
      await request(site("echo.mai.test"), "/"),
    ];
    for (const reply of replies) {
      expect(reply.headers["strict-transport-security"]).toBe("max-age=31536000");
      expect(reply.headers["x-content-type-options"]).toBe("nosniff");
      expect(reply.headers["referrer-policy"]).toBe("strict-origin-when-cross-origin");
      expect(reply.headers["x-frame-options"]).toBe("SAMEORIGIN");
      expect(reply.headers.server).toBeUndefined();
    }
  });

  it(`accepts uploads up to ${MAX_REQUEST_BODY_BYTES} bytes and refuses larger ones with 413`, async () => {
    const headers = (bytes?: number): Record<string, string | number> =>
      bytes === undefined
        ? { "content-type": "application/octet-stream" }
        : { "content-type": "application/octet-stream", "content-length": bytes };
    const atLimit = await request(site("charlie.mai.test"), "/upload", {
      method: "POST",
      headers: headers(MAX_REQUEST_BODY_BYTES),
      body: zeroes(MAX_REQUEST_BODY_BYTES),
      timeoutMs: 30_000,
    });
    expect(atLimit.status).toBe(200);
    expect(JSON.parse(atLimit.body)).toEqual({ bytes: MAX_REQUEST_BODY_BYTES });

    // Declared too large: refused before the workspace sees it, without reading the body.
    const before = counts();
    const declared = await request(site("charlie.mai.test"), "/upload", {
      method: "POST",
      headers: headers(MAX_REQUEST_BODY_BYTES + 1),
      body: zeroes(MAX_REQUEST_BODY_BYTES + 1),
      expectContinue: true,
    });
    expect(declared.status).toBe(413);
    expect(declared.headers["x-content-type-options"]).toBe("nosniff");
    expect(counts()).toEqual(before);

    // Undeclared length (chunked): cut at the limit while streaming.
    const streamed = await request(site("charlie.mai.test"), "/upload", {
      method: "POST",
      headers: headers(),
      body: zeroes(MAX_REQUEST_BODY_BYTES + 1),
      timeoutMs: 30_000,
    });
    expect(streamed.status).toBe(413);
  });

  it("serves HTTP/2 over TLS with the site certificate", async () => {
    const session = http2.connect(`https://127.0.0.1:${httpsPort}`, {
      servername: "alpha.mai.test",
      ca: proxy().rootCa,
    });
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({ ":path": "/whoami", ":authority": "alpha.mai.test" });
        let status = 0;
        let body = "";
        stream.on("response", (headers) => (status = Number(headers[":status"])));
        stream.setEncoding("utf8");
        stream.on("data", (chunk: string) => (body += chunk));
        stream.on("end", () => resolve({ status, body }));
        stream.on("error", reject);
        session.on("error", reject);
      });
      expect(session.alpnProtocol).toBe("h2");
      expect(status).toBe(200);
      expect(body).toBe("workspace:alpha host:alpha.mai.test");
    } finally {
      session.close();
    }
  });

  it("refuses an invalid Caddyfile and keeps the running one", async () => {
    const { readFileSync } = await import("node:fs");
    const live = readFileSync(`${proxy().configDir}/Caddyfile`, "utf8");
    const result = await proxy().apply(`${render(clients)}\nbroken.mai.test {\n\treverse_proxy {\n`);
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/invalid/);
    expect(readFileSync(`${proxy().configDir}/Caddyfile`, "utf8")).toBe(live);
    expect((await request(site("alpha.mai.test"), "/whoami")).status).toBe(200);
  });

  it("reloads gracefully under load: no failed request, the new client is served", async () => {
    // Browsers reach Caddy over HTTP/2: one shared connection per site, refused requests retried.
    const sessions = activeClients.map((client) => new Http2Client(site(client.hostname)));
    let reloaded = false;
    let afterReload = 0;
    const load = runLoad(
      { concurrency: 8, maxRequests: 20_000, maxDurationMs: 8_000, stop: () => afterReload >= 300 },
      async (index) => {
        const client = activeClients[index % activeClients.length];
        const reply = await sessions[index % activeClients.length].get("/whoami");
        if (reloaded) afterReload++;
        const expected = `workspace:${client.slug} host:${client.hostname}`;
        return reply.body === expected ? undefined : `HTTP ${reply.status} ${reply.body.slice(0, 80)}`;
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    const applied = await proxy().apply(render([...clients, newcomer]));
    reloaded = true;
    expect(applied.output).toContain("reloaded");
    expect(applied.code).toBe(0);
    await waitUntilServed(newcomer.hostname, newcomer.slug);
    const result = await load;
    for (const session of sessions) session.close();
    expect(result.failures).toEqual([]);
    expect(result.failed).toBe(0);
    expect(result.ok).toBeGreaterThan(300);
    const retried = sessions.reduce((sum, session) => sum + session.retried, 0);
    console.info(`reload under load: ${result.ok} ok, ${retried} refused-and-retried`);
  });

  it("keeps an open websocket and an in-flight stream working across a reload", async () => {
    const socket = await connectWebSocket({
      port: httpsPort,
      hostname: "bravo.mai.test",
      path: "/ws/socket.io/?EIO=4&transport=websocket",
      ca: proxy().rootCa,
    });
    try {
      expect(await socket.nextMessage()).toBe("hello:bravo");
      socket.send("before");
      expect(await socket.nextMessage()).toBe("bravo:before");
      const stream = timeStream(site("charlie.mai.test"), "/sse?chunks=15&interval=100", {
        "Accept-Encoding": "identity",
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const applied = await proxy().apply(render([...clients, newcomer, late]));
      expect(applied.code).toBe(0);
      expect(applied.output).toContain("reloaded");
      await waitUntilServed(late.hostname, late.slug);

      socket.send("after");
      expect(await socket.nextMessage()).toBe("bravo:after");
      const finished = await stream;
      expect(finished.status).toBe(200);
      const events = finished.body.toString("utf8").match(/^data: charlie \d{4}$/gm) ?? [];
      expect(events).toHaveLength(15);
      expect(socket.isClosed).toBe(false);
    } finally {
      socket.close();
    }
  });
});
