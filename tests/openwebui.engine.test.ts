/**
 * The real Open WebUI (the local image `mai-local/open-webui:<version>`, built from PyPI) deployed
 * by a real `pulumi up`: what the stack claims about the app, checked against the app itself.
 * The first admin is created by the app at its first start (WEBUI_ADMIN_EMAIL/PASSWORD, the
 * secret output `clientAdmins`), so a stranger never owns a new workspace; sign-up stays off; a
 * session outlives a container replacement and a suspend/resume (the session secret lives as
 * long as the client); backup and restore keep the real `webui.db`'s users.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { STACK_ENV } from "../policy/clientContainer";
import { LOCAL_OPEN_WEBUI_IMAGE, OPEN_WEBUI_VERSION } from "../policy/localImages";
import { localHostPaths } from "../policy/localHost";
import { answering, runHostTool, runStatus, until } from "./support/deployedHost";
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

/** Open WebUI's API through the stack's Caddy (HTTPS), or with `direct` on the client's loopback port. */
async function api(path: string, options: { method?: string; body?: unknown; token?: string; direct?: boolean } = {}): Promise<Reply & { json: () => any }> {
  ca ??= await proxyRootCa(stack().dockerHost());
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const target = options.direct ? { port: stack().port("a"), hostname: "localhost" } : { port: stack().httpsPort(), hostname: stack().hostname("a"), ca };
  const reply = await request(target, path, {
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

const sqlite = (statement: string) => docker(["exec", stack().container("a"), "sqlite3", "-cmd", ".timeout 10000", "/app/backend/data/webui.db", statement]);
const userCount = async () => Number(await sqlite("SELECT count(*) FROM user;"));
/** `docker inspect` of client a's container. */
const inspect = async () => JSON.parse(await docker(["container", "inspect", stack().container("a")]))[0];

/** Rows of every table of the live database, by table. */
async function rowCounts(): Promise<Record<string, number>> {
  const tables = (await sqlite("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name;")).split("\n").filter(Boolean);
  const counts: Record<string, number> = {};
  for (const table of tables) counts[table] = Number(await sqlite(`SELECT count(*) FROM "${table}";`));
  return counts;
}

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

  it("a changed session secret ends every session; the admin signs in again", async () => {
    const secret = await stack().urnOf(`random:index/randomPassword:RandomPassword::${slug()}-webui-secret`);
    const result = await stack().up({ replace: [secret] });
    expect(result.replaced).toEqual(expect.arrayContaining([`docker:index/container:Container::${slug()}-container`]));
    await answering(stack(), "a", 300_000);
    expect((await api("/api/v1/auths/", { token: adminToken })).status).toBe(401);
    const account = await admin();
    const signin = await api("/api/v1/auths/signin", { body: { email: account.email, password: account.password } });
    expect(signin.status, signin.body).toBe(200);
    adminToken = signin.json().token;
    expect((await api("/api/v1/auths/", { token: adminToken })).status).toBe(200);
  }, 900_000);

  it("backup and restore of the real webui.db keep every row; the invoice's user count is the real user table's", async () => {
    const chat = await api("/api/v1/chats/new", { token: adminToken, body: { chat: { title: `Quarterly plan ${id}`, messages: [] } } });
    expect(chat.status, chat.body).toBe(200);
    expect(Number(await sqlite("SELECT count(*) FROM chat;"))).toBe(1);
    const rows = await rowCounts();
    const backup = await runHostTool(stack(), "mai-backup", [slug()], { timeoutMs: 300_000 });
    expect(backup.code, backup.output).toBe(0);
    const file = /\S+\.db\.zst/.exec(backup.output)?.[0];
    expect(file, backup.output).toBeDefined();
    // The usage snapshot the invoice counts: every account that is not a pending sign-up.
    const backups = path.join(localHostPaths(stack().stateDir()).backupsDir, slug());
    const snapshot = fs.readdirSync(backups).filter((f) => f.startsWith("usage-")).sort().pop();
    expect(snapshot, `no usage snapshot in ${backups}`).toBeDefined();
    const activeUsers = Number(await sqlite("SELECT count(*) FROM user WHERE role IS NOT 'pending';"));
    expect(activeUsers).toBe(2);
    expect(JSON.parse(fs.readFileSync(path.join(backups, snapshot!), "utf8")).activeUsers).toBe(activeUsers);

    const restore = await runHostTool(stack(), "mai-restore", ["--yes", slug(), file!.startsWith("/") ? file! : path.join(backups, file!)], { timeoutMs: 300_000 });
    expect(restore.code, restore.output).toBe(0);
    await answering(stack(), "a", 300_000);
    expect(await rowCounts()).toEqual(rows);
    const signin = await api("/api/v1/auths/signin", { body: { email: `colleague-${id}@example.org`, password: "colleague-password-1" } });
    expect(signin.status).toBe(200);
  }, 900_000);

  it("export and import of the real webui.db keep every row; the app starts on the imported data", async () => {
    const rows = await rowCounts();
    const exported = await runHostTool(stack(), "mai-export", [slug()], { timeoutMs: 300_000 });
    expect(exported.code, exported.output).toBe(0);
    const exportsDir = path.join(localHostPaths(stack().stateDir()).stateDir, "exports");
    const archive = fs.readdirSync(exportsDir).filter((f) => f.startsWith(`${slug()}-`) && f.endsWith(".tar.zst")).sort().pop();
    expect(archive, `no archive in ${exportsDir}`).toBeDefined();
    // Written after the export: the import puts the exported state back (this chat is kept aside).
    const later = await api("/api/v1/chats/new", { token: adminToken, body: { chat: { title: `After the export ${id}`, messages: [] } } });
    expect(later.status, later.body).toBe(200);
    const imported = await runHostTool(stack(), "mai-import", ["--yes", slug(), path.join(exportsDir, archive!)], { timeoutMs: 600_000 });
    expect(imported.code, imported.output).toBe(0);
    await answering(stack(), "a", 300_000);
    expect(await rowCounts()).toEqual(rows);
    const account = await admin();
    const signin = await api("/api/v1/auths/signin", { body: { email: account.email, password: account.password } });
    expect(signin.status, signin.body).toBe(200);
    const chats = (await api("/api/v1/chats/", { token: signin.json().token })).json() as { title: string }[];
    expect(chats.map((c) => c.title)).toEqual([`Quarterly plan ${id}`]);
  }, 900_000);

  it("npm run status reports the real app's health check as Docker runs it", async () => {
    // Just imported and restarted: Docker's own probe (curl /health in the container) decides.
    await until("Docker's health check of the real app to pass", async () => (await inspect()).State.Health.Status === "healthy", 300_000, 1000);
    const run = await runStatus(stack(), ["--json"]);
    expect(run.stderr).toBe("");
    const row = JSON.parse(run.stdout).clients.find((c: { slug: string }) => c.slug === slug());
    const live = await inspect();
    expect(live.State.Health.Status).toBe("healthy");
    expect(live.State.Health.Log.at(-1).ExitCode).toBe(0);
    expect(row).toMatchObject({ state: "running", health: "healthy", expected: "active" });
    expect(row.memoryBytes).toBeGreaterThan(50 << 20); // the real app, not a stand-in's few MiB
  }, 300_000);

  it("what a restart applies, per stack-managed variable the files can change, is what STACK_ENV and the runbook say", async () => {
    const envOf = async (): Promise<Record<string, string>> =>
      Object.fromEntries(((await inspect()).Config.Env as string[]).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
    // Open WebUI 0.12.4's PersistentConfig: one row per key (`key` TEXT, `value` JSON), seeded at
    // startup with the keys the database does not have yet.
    const stored = async (): Promise<Record<string, string>> => {
      const rows = await sqlite("SELECT key || char(9) || json(value) FROM config;");
      expect(rows, "Open WebUI's config table is empty").not.toBe("");
      return Object.fromEntries(rows.split("\n").map((line) => [line.slice(0, line.indexOf("\t")), line.slice(line.indexOf("\t") + 1)]));
    };
    // A stored value as the environment spells it: lists (OPENAI_API_BASE_URLS, …) hold the one
    // value the stack sets, booleans are JSON's.
    const storedValue = (data: Record<string, string>, key: string) => {
      expect(data, `config key ${key}`).toHaveProperty([key]);
      return String([JSON.parse(data[key])].flat()[0] ?? "");
    };
    const kept = Object.entries(STACK_ENV).filter(([, spec]) => spec.applied === "first start");
    const envBefore = await envOf();
    const before = await stored();
    // Each first-start variable is stored at the first start, with the value the stack gave it.
    for (const [name, spec] of kept) expect(storedValue(before, spec.configKey!), name).toBe(envBefore[name]);
    const account = await admin();
    const users = await userCount();

    // Change what the files reach: display name (WEBUI_NAME), hostname (WEBUI_URL), the OpenRouter
    // key (OPENAI_API_KEY) and the admin's e-mail (WEBUI_ADMIN_EMAIL).
    await stack().setSecret(`openrouterApiKeys.${slug()}`, `sk-or-v1-${"7".repeat(64)}`);
    await stack().writeClient({ key: "a", yaml: `name: Renamed a\nhostname: renamed-${slug()}.localhost\nadmin: renamed-${id}@example.org\nenv:\n  DEFAULT_LOCALE: de-DE\n` });
    const result = await stack().up();
    expect(result.replaced).toContain(`docker:index/container:Container::${slug()}-container`);
    await answering(stack(), "a", 300_000);
    const envAfter = await envOf();
    for (const name of ["WEBUI_NAME", "WEBUI_URL", "OPENAI_API_KEY", "WEBUI_ADMIN_EMAIL"]) expect(envAfter[name], name).not.toBe(envBefore[name]);

    // Every start: the new name is the app's.
    expect(STACK_ENV.WEBUI_NAME.applied).toBe("every start");
    expect((await api("/api/config", { direct: true })).json().name).toMatch(/^mAI - Renamed a/);
    // First start: the stored values stay as they were, whatever the environment says now.
    const after = await stored();
    for (const [name, spec] of kept) expect(storedValue(after, spec.configKey!), name).toBe(storedValue(before, spec.configKey!));
    // No account yet: the admin stays who it was; the new e-mail is no account.
    expect(STACK_ENV.WEBUI_ADMIN_EMAIL.applied).toBe("no account yet");
    expect(await userCount()).toBe(users);
    expect((await api("/api/v1/auths/signin", { direct: true, body: { email: `renamed-${id}@example.org`, password: account.password } })).status).not.toBe(200);
    expect((await api("/api/v1/auths/signin", { direct: true, body: { email: account.email, password: account.password } })).status).toBe(200);
  }, 900_000);
});
