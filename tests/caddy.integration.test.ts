/**
 * The rendered Caddyfile served by the real Caddy release on loopback, with small local servers
 * standing in for the clients' mAI containers. Only ports, upstream addresses, the admin socket's
 * path and the certificate issuer differ from production; configs are installed and reloaded with
 * the production script host/caddy-apply.sh. Two more Caddy processes stand for the proxies of two
 * local servers on one machine (one network namespace): each has its own admin socket, and
 * reloading one never changes the other.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import os from "node:os";
import path from "node:path";
import { MAX_REQUEST_BODY_BYTES, PROXY_HEALTH_PATH, renderCaddyfile, SUSPENDED_RETRY_AFTER_SECONDS } from "../policy/caddyfile";
import type { ClientSpec } from "../config/model";
import { adminGet, freePort, startCaddy, type CaddyInstance } from "./support/caddyProcess";
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
/** Directories holding admin sockets, removed at the end. */
const socketDirs: string[] = [];

/** `unix/<path>` of a new admin socket in a directory of its own (as a host's state directory). */
function newAdminSocket(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mai-admin-"));
  socketDirs.push(dir);
  return `unix/${path.join(dir, "admin.sock")}`;
}

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
  adminAddress = newAdminSocket();
  caddy = await startCaddy(render(clients), adminAddress);
  for (const client of activeClients) await waitUntilServed(client.hostname, client.slug);
});

afterAll(async () => {
  await caddy?.stop();
  await Promise.all([...workspaces.values()].map((workspace) => workspace.close()));
  for (const dir of socketDirs) rmSync(dir, { recursive: true, force: true });
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

/** One local server's proxy: its Caddy, listeners, admin socket and clients. */
interface LocalProxy {
  caddy: CaddyInstance;
  httpPort: number;
  httpsPort: number;
  adminAddress: string;
  render(list: ClientSpec[]): string;
}

async function startLocalProxy(list: ClientSpec[], adminAddress = newAdminSocket()): Promise<LocalProxy> {
  const [ownHttp, ownHttps] = [await freePort(), await freePort()];
  const renderFor = (adminOf: string) => (serving: ClientSpec[]) =>
    renderCaddyfile(serving, {
      bindAddress: "127.0.0.1",
      httpPort: ownHttp,
      httpsPort: ownHttps,
      adminAddress: adminOf,
      issuer: "internal",
      upstream: (client) => `127.0.0.1:${workspaces.get(client.slug)?.port ?? 9}`,
    });
  const started = await startCaddy(renderFor(adminAddress)(list), adminAddress);
  return { caddy: started, httpPort: ownHttp, httpsPort: ownHttps, adminAddress, render: renderFor(adminAddress) };
}

/** Waits until `proxy` serves `slug` on `hostname` over HTTPS. */
async function waitUntilServedBy(target: LocalProxy, hostname: string, slug: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const reply = await request({ port: target.httpsPort, hostname, ca: target.caddy.rootCa }, "/whoami").catch(() => undefined);
    if (reply?.headers[WORKSPACE_HEADER] === slug) return;
    if (Date.now() > deadline) throw new Error(`${hostname} is not served:\n${target.caddy.logs().slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The host names a proxy's loaded configuration routes (from its admin API). */
async function routedHosts(target: LocalProxy): Promise<string[]> {
  const reply = await target.caddy.admin("/config/");
  expect(reply.status).toBe(200);
  return [...new Set([...reply.body.matchAll(/"host":\[([^\]]*)\]/g)].flatMap((m) => JSON.parse(`[${m[1]}]`) as string[]))].sort();
}

describe("two local servers' proxies on one machine", () => {
  const alpha = clients.find((client) => client.slug === "alpha")!;
  const bravo = clients.find((client) => client.slug === "bravo")!;
  const charlie = clients.find((client) => client.slug === "charlie")!;
  let a: LocalProxy | undefined;
  let b: LocalProxy | undefined;
  const both = () => {
    if (!a || !b) throw new Error("the two proxies are not running");
    return [a, b] as const;
  };

  beforeAll(async () => {
    a = await startLocalProxy([alpha]);
    b = await startLocalProxy([bravo]);
    await waitUntilServedBy(a, alpha.hostname, "alpha");
    await waitUntilServedBy(b, bravo.hostname, "bravo");
  });

  afterAll(async () => {
    await a?.caddy.stop();
    await b?.caddy.stop();
  });

  it("give each Caddy its own admin socket, which only its owner may use", async () => {
    const [one, two] = both();
    expect(one.adminAddress).not.toBe(two.adminAddress);
    for (const proxy of [one, two]) {
      const socket = proxy.adminAddress.slice("unix/".length);
      expect(statSync(socket).isSocket()).toBe(true);
      // Caddy creates it writable by its owner only: no other user on the host can drive it.
      expect(statSync(socket).mode & 0o077).toBe(0);
      const config = JSON.parse((await proxy.caddy.admin("/config/")).body);
      expect(config.admin.listen).toBe(proxy.adminAddress);
      expect(config.apps.http.http_port).toBe(proxy.httpPort);
    }
    expect(await routedHosts(one)).toEqual(["127.0.0.1", "alpha.mai.test"]);
    expect(await routedHosts(two)).toEqual(["127.0.0.1", "bravo.mai.test"]);
  });

  it("answer the container health check on their own HTTP port, and only there", async () => {
    const [one, two] = both();
    for (const proxy of [one, two]) {
      const reply = await request({ port: proxy.httpPort, hostname: "127.0.0.1" }, PROXY_HEALTH_PATH);
      expect([reply.status, reply.body]).toEqual([200, "OK"]);
    }
    expect((await request({ port: one.httpPort, hostname: "127.0.0.1" }, "/config/")).status).toBe(404);
  });

  it("reloading one never changes the other's configuration", async () => {
    const [one, two] = both();
    const untouched = (await two.caddy.admin("/config/")).body;
    for (let round = 0; round < 4; round++) {
      const serving = round % 2 === 0 ? [alpha, charlie] : [alpha];
      const applied = await one.caddy.apply(one.render(serving));
      expect(applied.output).toContain("reloaded");
      expect(applied.code).toBe(0);
      expect(await routedHosts(one)).toEqual(["127.0.0.1", ...serving.map((client) => client.hostname)].sort());
      expect((await two.caddy.admin("/config/")).body).toBe(untouched);
    }
    await waitUntilServedBy(two, bravo.hostname, "bravo");
    // And the other way round.
    const first = (await one.caddy.admin("/config/")).body;
    const applied = await two.caddy.apply(two.render([bravo, charlie]));
    expect(applied.code).toBe(0);
    expect(await routedHosts(two)).toEqual(["127.0.0.1", "bravo.mai.test", "charlie.mai.test"]);
    await waitUntilServedBy(two, charlie.hostname, "charlie");
    expect((await one.caddy.admin("/config/")).body).toBe(first);
    await waitUntilServedBy(one, alpha.hostname, "alpha");
  });

  it("reaches a proxy still on another admin address at that address, once, and moves it to its socket", async () => {
    // A proxy whose running Caddyfile predates the socket (here: a TCP admin port of its own).
    const tcp = `127.0.0.1:${await freePort()}`;
    const socket = newAdminSocket();
    const old = await startLocalProxy([charlie], tcp);
    try {
      const moved = renderCaddyfile([charlie], {
        bindAddress: "127.0.0.1",
        httpPort: old.httpPort,
        httpsPort: old.httpsPort,
        adminAddress: socket,
        issuer: "internal",
        upstream: (client) => `127.0.0.1:${workspaces.get(client.slug)?.port ?? 9}`,
      });
      const applied = await old.caddy.apply(moved);
      expect(applied.output).toContain("reloaded");
      expect(applied.code).toBe(0);
      expect(JSON.parse((await adminGet(socket, "/config/")).body).admin.listen).toBe(socket);
      await expect(adminGet(tcp, "/config/")).rejects.toThrow();
      // The next reload goes through the socket the running configuration names.
      const again = await old.caddy.apply(`${moved}\n# changed\n`);
      expect(again.code).toBe(0);
      expect(again.output).toContain("reloaded");
    } finally {
      await old.caddy.stop();
    }
  });
});
