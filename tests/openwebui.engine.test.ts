/**
 * The real Open WebUI (the local image `mai-local/open-webui:<version>`, built from PyPI) deployed
 * by a real `pulumi up`: what the stack claims about the app, checked against the app itself.
 * The first admin is created by the app at its first start (WEBUI_ADMIN_EMAIL/PASSWORD, the
 * secret output `clientAdmins`), so a stranger never owns a new workspace; sign-up stays off; a
 * session outlives a container replacement and a suspend/resume (the session secret lives as
 * long as the client); backup and restore keep the real `webui.db`'s users.
 */
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { LOCAL_OPEN_WEBUI_IMAGE, OPEN_WEBUI_VERSION } from "../policy/localImages";
import { answering, runHostTool } from "./support/deployedHost";
import { docker, newRunId } from "./support/engine";
import { request, type Reply } from "./support/httpClient";
import { proxyRootCa } from "./support/realStack";
import { useRealEngineSuite } from "./support/testEngine";

const id = newRunId();
const suite = useRealEngineSuite({
  runId: id,
  clients: [{ key: "a" }],
  config: { defaultImage: LOCAL_OPEN_WEBUI_IMAGE },
  // First start of the real app: 20-60 s on a busy 2-core machine.
  ready: async ({ stack }) => answering(stack, "a", 300_000),
});
const stack = () => suite.stack;
const slug = () => stack().slug("a");
let ca: Buffer;

async function api(path: string, options: { method?: string; body?: unknown; token?: string } = {}): Promise<Reply & { json: () => any }> {
  ca ??= await proxyRootCa(stack().dockerHost());
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const reply = await request({ port: stack().httpsPort(), hostname: stack().hostname("a"), ca }, path, {
    method: options.method ?? (body ? "POST" : "GET"),
    headers: {
      ...(body ? { "content-type": "application/json", "content-length": Buffer.byteLength(body) } : {}),
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    },
    ...(body ? { body: Readable.from([body]) } : {}),
    timeoutMs: 60_000,
  });
  return { ...reply, json: () => JSON.parse(reply.body) };
}

async function admin(): Promise<{ email: string; password: string }> {
  const outputs = await stack().outputs();
  return (outputs.clientAdmins as Record<string, { email: string; password: string }>)[slug()];
}

const userCount = async () => Number(await docker(["exec", stack().container("a"), "sqlite3", "/app/backend/data/webui.db", "SELECT count(*) FROM user;"]));

let adminToken: string;

describe("the real Open WebUI on the real engine", () => {
  it("is Open WebUI at the pinned version, named for the client, with login on and sign-up off", async () => {
    const config = (await api("/api/config")).json();
    expect(config.version).toBe(OPEN_WEBUI_VERSION);
    expect(config.name).toMatch(new RegExp(`^mAI - Test a`));
    expect(config.features).toMatchObject({ auth: true, enable_signup: false, auth_trusted_header: false });
  }, 180_000);

  it("refuses a stranger's sign-up on the new workspace; the stack's admin signs in as admin", async () => {
    const stranger = await api("/api/v1/auths/signup", { body: { name: "Stranger", email: `stranger-${id}@example.org`, password: "stranger-password-1" } });
    expect(stranger.status).toBe(403);
    const account = await admin();
    expect(account.email).toMatch(/@/);
    const signin = await api("/api/v1/auths/signin", { body: { email: account.email, password: account.password } });
    expect(signin.status, signin.body).toBe(200);
    expect(signin.json().role).toBe("admin");
    adminToken = signin.json().token;
    expect(await userCount()).toBe(1);
  }, 180_000);

  it("the admin creates a user through the admin API; a later self sign-up is still refused", async () => {
    const added = await api("/api/v1/auths/add", {
      token: adminToken,
      body: { name: "Colleague", email: `colleague-${id}@example.org`, password: "colleague-password-1", role: "user" },
    });
    expect(added.status, added.body).toBe(200);
    const colleague = await api("/api/v1/auths/signin", { body: { email: `colleague-${id}@example.org`, password: "colleague-password-1" } });
    expect(colleague.status).toBe(200);
    expect(colleague.json().role).toBe("user");
    const late = await api("/api/v1/auths/signup", { body: { name: "Late", email: `late-${id}@example.org`, password: "late-password-1" } });
    expect(late.status).toBe(403);
    expect(await userCount()).toBe(2);
  }, 180_000);

  it("a signed-in session survives a replacement of the container and a suspend and resume", async () => {
    const before = await docker(["inspect", "-f", "{{.Id}}", stack().container("a")]);
    await stack().writeClient({ key: "a", yaml: "name: Test a\nenv:\n  DEFAULT_LOCALE: de-DE\n" });
    const replaced = await stack().up();
    expect(replaced.replaced).toContain(`docker:index/container:Container::${slug()}-container`);
    await answering(stack(), "a", 300_000);
    expect(await docker(["inspect", "-f", "{{.Id}}", stack().container("a")])).not.toBe(before);
    expect((await api("/api/v1/auths/", { token: adminToken })).status).toBe(200);

    await stack().writeClient({ key: "a", yaml: "name: Test a\nstatus: suspended\nenv:\n  DEFAULT_LOCALE: de-DE\n" });
    await stack().up();
    expect((await api("/api/v1/auths/", { token: adminToken })).status).toBe(503);
    await stack().writeClient({ key: "a", yaml: "name: Test a\nenv:\n  DEFAULT_LOCALE: de-DE\n" });
    await stack().up();
    await answering(stack(), "a", 300_000);
    expect((await api("/api/v1/auths/", { token: adminToken })).status).toBe(200);
    expect(await userCount()).toBe(2);
  }, 900_000);

  it("backup and restore of the real webui.db keep every user", async () => {
    const backup = await runHostTool(stack(), "mai-backup", [slug()], { timeoutMs: 300_000 });
    expect(backup.code, backup.output).toBe(0);
    const file = /\S+\.db\.zst/.exec(backup.output)?.[0];
    expect(file, backup.output).toBeDefined();
    const users = await userCount();
    const restore = await runHostTool(stack(), "mai-restore", ["--yes", slug(), file!.startsWith("/") ? file! : `${stack().stateDir()}/backups/${slug()}/${file}`], { timeoutMs: 300_000 });
    expect(restore.code, restore.output).toBe(0);
    await answering(stack(), "a", 300_000);
    expect(await userCount()).toBe(users);
    const signin = await api("/api/v1/auths/signin", { body: { email: `colleague-${id}@example.org`, password: "colleague-password-1" } });
    expect(signin.status).toBe(200);
  }, 900_000);
});
