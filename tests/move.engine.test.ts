/**
 * Moving a client between servers on real Docker engines: two engines on one machine stand for
 * two servers. Engine A is the machine's engine; engine B is a second `dockerd` with its own
 * socket, data root, exec root, pid file and address pool, without iptables (why: see
 * tests/support/secondEngine.ts), removed afterwards.
 *
 * The moves are the commands the stack declares: the real program runs under the mock runtime
 * for a stack of two local servers (engine A's and engine B's sockets) with the moving clients'
 * files saying `server: engine-b` and `moveFrom: engine-a`, and each declared move command
 * (script, interpreter, environment) is run as Pulumi's command provider would. Around it the
 * test does what Pulumi does before (the target's volume) and after (the target container, the
 * source container's removal). The host scripts are the repository's own, installed into each
 * server's bin directory as the stack's host tooling does.
 */
import { execFileSync, spawnSync } from "child_process";
import { createHash, randomBytes } from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCAL_WORKSPACE_IMAGE } from "../policy/localImages";
import { acquireEngineLock, cleanupByLabel, newRunId, requireEngine, requireImages, runLabel } from "./support/engine";
import type { HeldLock } from "../scripts/lib/fileLock";
import { runtimeConfigFromStackFile } from "../plan/stackConfig";
import { runProgram } from "./support/programHarness";
import { dockerOkOn, dockerOn, engineEnv, installMoveScripts } from "./support/moveHosts";
import { startSecondEngine, type SecondEngine } from "./support/secondEngine";

const ROOT = path.join(__dirname, "..");
/** The workspace stand-in built by `npm run local:images`. */
const WORKSPACE_IMAGE = LOCAL_WORKSPACE_IMAGE;
const RUN_ID = newRunId();
const LABEL = runLabel(RUN_ID);

// --- engines ---------------------------------------------------------------------------------

const docker = dockerOn;
const dockerOk = dockerOkOn;

// --- the fixture clients ---------------------------------------------------------------------

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function mountpoint(host: string | undefined, volume: string): string {
  return docker(host, ["volume", "inspect", "-f", "{{.Mountpoint}}", volume]);
}

function sqlite(db: string, sql: string): string {
  return execFileSync("sqlite3", ["-batch", "-init", "/dev/null", db, sql], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

function sha256(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** Starts `mai-<slug>` like the stack does (own network, data volume, loopback port). */
function runClient(host: string | undefined, slug: string, port: number): void {
  if (!dockerOk(host, ["network", "inspect", `mai-${slug}`])) docker(host, ["network", "create", "--label", LABEL, `mai-${slug}`]);
  docker(host, ["volume", "create", "--label", LABEL, `mai-${slug}-data`]);
  docker(host, [
    "run", "-d", "--name", `mai-${slug}`, "--label", LABEL, "--restart", "unless-stopped",
    "--network", `mai-${slug}`, "-p", `127.0.0.1:${port}:8080`,
    "-v", `mai-${slug}-data:/app/backend/data`, WORKSPACE_IMAGE,
  ]);
}

interface ClientData {
  /** Chat rows (count and titles) in the client's database. */
  chats: string;
  /** SHA-256 of the uploaded file. */
  uploadSha: string;
}

async function post(port: number, pathAndQuery: string, body: Buffer | string): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${port}${pathAndQuery}`, { method: "POST", body });
  if (!response.ok) throw new Error(`POST ${pathAndQuery}: ${response.status} ${await response.text()}`);
}

/** Gives a client chats and an uploaded file through its own API, as its users would. */
async function seedClient(slug: string): Promise<ClientData> {
  const port = ports[slug];
  expect(await healthy(port)).toBe(true);
  for (let i = 1; i <= 25; i++) await post(port, "/api/write", `${slug} chat ${i}`);
  const upload = randomBytes(1024 * 1024 + 17);
  await post(port, "/api/upload?name=quarterly-report.pdf", upload);
  return { chats: chatsIn(undefined, slug), uploadSha: createHash("sha256").update(upload).digest("hex") };
}

function chatsIn(host: string | undefined, slug: string): string {
  return sqlite(path.join(mountpoint(host, `mai-${slug}-data`), "webui.db"), "SELECT count(*) || ':' || group_concat(title, ',') FROM (SELECT title FROM chat ORDER BY title);");
}

function readClient(host: string | undefined, slug: string): ClientData {
  return { chats: chatsIn(host, slug), uploadSha: sha256(path.join(mountpoint(host, `mai-${slug}-data`), "uploads", "quarterly-report.pdf")) };
}

function containerState(host: string | undefined, name: string): { id: string; running: boolean; startedAt: string } | undefined {
  if (!dockerOk(host, ["container", "inspect", name])) return undefined;
  const [id, running, startedAt] = docker(host, ["inspect", "-f", "{{.Id}} {{.State.Running}} {{.State.StartedAt}}", name]).split(" ");
  return { id, running: running === "true", startedAt };
}

async function healthy(port: number): Promise<boolean> {
  for (let i = 0; i < 60; i++) {
    const result = spawnSync("curl", ["-fsS", "-o", "/dev/null", `http://127.0.0.1:${port}/health`]);
    if (result.status === 0) return true;
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}

// --- the declared move commands --------------------------------------------------------------

interface DeclaredMove {
  interpreter: string[];
  create: string;
  environment: Record<string, string>;
}

/**
 * Runs the real program under the mock runtime for a stack of two local servers (engine A's and
 * engine B's sockets) whose moving clients name `server: engine-b` and `moveFrom: engine-a`, and
 * returns the move command each of them declares, by slug.
 */
async function declaredMoves(): Promise<Map<string, DeclaredMove>> {
  const server = (name: string, dockerHost: string, httpPort: number) =>
    `    ${name}:\n      kind: local\n      httpPort: ${httpPort}\n      httpsPort: ${httpPort + 1}\n      stateDir: ${path.join(work, name)}\n      dockerHost: ${dockerHost}\n`;
  const stack = runtimeConfigFromStackFile(
    "config:\n  mai-hosting:domain: localhost\n  mai-hosting:servers:\n" +
      server("engine-a", "unix:///var/run/docker.sock", 18080) +
      server("engine-b", engineB!.host, 18090) +
      `  mai-hosting:proxyImage: mai-local/caddy:2.11.9\n  mai-hosting:defaultImage: ${WORKSPACE_IMAGE}\n`,
    "Pulumi.move-test.yaml",
  );
  const clientsDir = path.join(work, "clients");
  fs.mkdirSync(clientsDir);
  const file = (s: string, lines: string) => fs.writeFileSync(path.join(clientsDir, `${s}.yaml`), `name: ${s}\nport: ${ports[s]}\n${lines}`);
  file(slug, "server: engine-b\nmoveFrom: engine-a\n");
  file(failing, "server: engine-b\nmoveFrom: engine-a\n");
  file(bystander, "server: engine-a\n");
  const run = await runProgram({ config: stack.values, secretKeys: stack.secretKeys, clientsDir });
  return new Map(
    run.resources.filter((r) => r.type === "command:local:Command" && r.name.endsWith("-move-run")).map((r) => [r.name.replace(/-move-run$/, ""), r.inputs as DeclaredMove]),
  );
}

/**
 * Runs a declared move as Pulumi's command provider does: the interpreter with the script, the
 * runner's environment plus the declared one (each local server's shell prefix points the host
 * scripts at its own lock and spool directories).
 */
function runMove(move: DeclaredMove): { code: number | null; stdout: string; stderr: string } {
  const [shell, ...flags] = move.interpreter;
  const env = { ...engineEnv(undefined), ...move.environment };
  const result = spawnSync(shell, [...flags, move.create], { env, encoding: "utf8", timeout: 300_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

// --- the test --------------------------------------------------------------------------------

let lock: HeldLock | undefined;
let engineB: SecondEngine | undefined;
let work: string;
let moves: Map<string, DeclaredMove>;
const slug = `${RUN_ID}-acme`;
const bystander = `${RUN_ID}-other`;
const failing = `${RUN_ID}-beta`;
const ports: Record<string, number> = {};
const binDirOf = (server: string) => path.join(work, server, "bin");
const stateDirOf = (server: string) => path.join(work, server, "state");

beforeAll(async () => {
  requireEngine();
  requireImages([WORKSPACE_IMAGE]);
  lock = await acquireEngineLock();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "mai-move-test-"));
  engineB = await startSecondEngine();
  engineB.loadImages([WORKSPACE_IMAGE]);
  for (const s of [slug, bystander, failing]) ports[s] = await freePort();

  moves = await declaredMoves();
  // What the stack's host tooling puts on each server.
  for (const server of ["engine-a", "engine-b"]) installMoveScripts(ROOT, binDirOf(server));
  for (const s of [slug, bystander, failing]) runClient(undefined, s, ports[s]);
}, 11 * 60_000);

afterAll(async () => {
  if (!lock) return; // never reached the engine: nothing of ours is on it
  try {
    if (engineB) await engineB.remove();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  } finally {
    try {
      await cleanupByLabel(LABEL);
    } finally {
      await lock.release();
    }
  }
}, 120_000);

describe("moving a client between two engines", () => {
  it("moves the database and uploads intact, stops the source first, keeps the source volume, restarts nobody else", async () => {
    const data = await seedClient(slug);
    await seedClient(bystander);
    const other = containerState(undefined, `mai-${bystander}`)!;
    expect(other.running).toBe(true);

    // What Pulumi does before the move: the client's (empty) volume and network on the target.
    docker(engineB!.host, ["volume", "create", "--label", LABEL, `mai-${slug}-data`]);
    docker(engineB!.host, ["network", "create", "--label", LABEL, `mai-${slug}`]);

    const result = runMove(moves.get(slug)!);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`moved from engine-a to engine-b`);

    // The move stopped the source itself; Pulumi removes the container after the target runs.
    expect(containerState(undefined, `mai-${slug}`)).toMatchObject({ running: false });
    expect(readClient(engineB!.host, slug)).toEqual(data);
    expect(fs.readFileSync(path.join(stateDirOf("engine-a"), "moved", slug), "utf8")).toMatch(/^to engine-b at \d{4}-/);

    // What Pulumi does after the move: the target container (same port), then the source's removal.
    docker(engineB!.host, [
      "run", "-d", "--name", `mai-${slug}`, "--label", LABEL, "--restart", "unless-stopped",
      "--network", `mai-${slug}`, "-p", `127.0.0.1:${ports[slug]}:8080`, "-v", `mai-${slug}-data:/app/backend/data`, WORKSPACE_IMAGE,
    ]);
    expect(await healthy(ports[slug])).toBe(true);
    docker(undefined, ["rm", `mai-${slug}`]);

    expect(containerState(undefined, `mai-${slug}`)).toBeUndefined();
    expect(dockerOk(undefined, ["volume", "inspect", `mai-${slug}-data`])).toBe(true);
    expect(readClient(undefined, slug)).toEqual(data);
    expect(containerState(undefined, `mai-${bystander}`)).toEqual(other);
    expect(readClient(engineB!.host, slug)).toEqual(data);
  }, 300_000);

  it("refuses to move again from the source's old copy, changing nothing", async () => {
    const before = readClient(engineB!.host, slug);
    const result = runMove(moves.get(slug)!);
    expect(result.code).toBe(4);
    expect(result.stderr).toContain("a move never runs two copies");
    expect(containerState(engineB!.host, `mai-${slug}`)).toMatchObject({ running: true });
    expect(readClient(engineB!.host, slug)).toEqual(before);
  }, 120_000);

  it("a move whose stream arrives corrupted leaves the client running on the source", async () => {
    const data = await seedClient(failing);
    const other = containerState(undefined, `mai-${bystander}`)!;
    // For this move, engine A's mai-export passes its stream through a filter that flips one byte
    // in the second block; the declared command itself is unchanged.
    const bin = binDirOf("engine-a");
    fs.renameSync(path.join(bin, "mai-export"), path.join(bin, "mai-export.real"));
    fs.writeFileSync(
      path.join(bin, "mai-export"),
      `#!/usr/bin/env bash\n"${path.join(bin, "mai-export.real")}" "$@" | perl -e 'binmode STDIN; binmode STDOUT; my $n = 0; while (read(STDIN, my $b, 65536)) { substr($b, 100, 1) = chr(ord(substr($b, 100, 1)) ^ 0xff) if $n++ == 1 && length($b) > 100; print $b }'\n`,
      { mode: 0o755 },
    );
    docker(engineB!.host, ["volume", "create", "--label", LABEL, `mai-${failing}-data`]);

    let result: ReturnType<typeof runMove>;
    try {
      result = runMove(moves.get(failing)!);
    } finally {
      fs.renameSync(path.join(bin, "mai-export.real"), path.join(bin, "mai-export"));
    }
    expect(result.code).toBe(5);
    expect(result.stderr).toContain("mai-import on engine-b failed");
    expect(result.stderr).toContain(`mai-${failing} is running on engine-a again`);
    expect(containerState(undefined, `mai-${failing}`)).toMatchObject({ running: true });
    expect(containerState(engineB!.host, `mai-${failing}`)).toBeUndefined();
    expect(readClient(undefined, failing)).toEqual(data);
    expect(fs.existsSync(path.join(stateDirOf("engine-a"), "moved", failing))).toBe(false);
    expect(containerState(undefined, `mai-${bystander}`)).toEqual(other);
  }, 300_000);
});
