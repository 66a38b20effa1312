/**
 * Moving a client between two servers with one real `pulumi up`: two private Docker engines on
 * one machine stand for two servers (`local`, the test engine, and `b`, a second private engine),
 * a stack of both with clients on each. A client file saying `server: b` + `moveFrom: local` is
 * deployed once; afterwards the client runs on `b` with all of its data, served by b's Caddy, its
 * container and network on `local` are gone and its volume there kept, no other container
 * restarted, and a preview shows nothing to do; removing `moveFrom` afterwards replaces nothing.
 * A move whose transfer arrives corrupted fails the `pulumi up` and leaves the client running on
 * `local`; once the fault is gone, the next `pulumi up` completes it; or, with `server:` set back
 * instead, one `pulumi up` settles the stack with the client where it was.
 *
 * Both proxies run on this machine's network: each must have an admin endpoint of its own, or a
 * reload of one loads its configuration into the other (the first assertion says so).
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { describe, expect, it } from "vitest";
import { newRunId } from "./support/engine";
import { request } from "./support/httpClient";
import type { PrivateEngine } from "./support/privateEngine";
import { RealStack, foldSteps, isComponentKey, proxyRootCa, type Step } from "./support/realStack";
import { localServerName, startSecondTestEngine, useRealEngineSuite } from "./support/testEngine";

const run = promisify(execFile);
const id = newRunId();
const LOCAL = localServerName();
const TARGET = "b";
let second: PrivateEngine | undefined;

/** m1 moves; stay stays on local; far runs on b; f1 and f2 are moves that fail first (f2's is then cancelled). */
const clientFile = (key: string, server: string, moveFrom?: string) =>
  `name: Test ${key}\nserver: ${server}\n${moveFrom ? `moveFrom: ${moveFrom}\n` : ""}`;

const suite = useRealEngineSuite({
  runId: id,
  clients: [
    { key: "m1", yaml: clientFile("m1", LOCAL) },
    { key: "stay", yaml: clientFile("stay", LOCAL) },
    { key: "f1", yaml: clientFile("f1", LOCAL) },
    { key: "f2", yaml: clientFile("f2", LOCAL) },
  ],
  ready: async (s) => {
    second = await startSecondTestEngine(fs.mkdtempSync("/tmp/mai-mv-"));
    s.stack.setServer(TARGET, { dockerHost: second.host }, await RealStack.proxyPortsFor());
    await s.stack.writeClient({ key: "far", yaml: clientFile("far", TARGET) });
    await s.stack.up();
    await Promise.all(["m1", "stay", "f1", "f2", "far"].map((key) => answering(key)));
  },
  teardown: async () => {
    await second?.close();
  },
});
const stack = () => suite.stack;
const hostOf = (server: string) => stack().dockerHost(server);

/** Runs the docker CLI against one server's engine; trimmed stdout, or throws with stderr. */
async function dockerOn(server: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run("docker", args, { env: { ...process.env, DOCKER_HOST: hostOf(server) }, maxBuffer: 16 * 1024 * 1024, timeout: 60_000 });
    return stdout.trim();
  } catch (error) {
    const failure = error as Error & { stderr?: string };
    throw new Error(`docker ${args.join(" ")} on ${server}: ${failure.stderr?.trim() || failure.message}`);
  }
}
const existsOn = (server: string, kind: string, name: string) => dockerOn(server, [kind, "inspect", name]).then(() => true, () => false);
const identity = (server: string, name: string) => dockerOn(server, ["inspect", "-f", "{{.Id}} {{.State.StartedAt}}", name]);

const container = (key: string) => stack().container(key);
const volume = (key: string) => `${container(key)}-data`;
const key = (type: string, name: string) => `${type}::${name}`;
const CONTAINER = "docker:index/container:Container";
const VOLUME = "docker:index/volume:Volume";
const NETWORK = "docker:index/network:Network";
const COMMAND = "command:local:Command";

/** Runs sqlite3 in a client's container on its live database on `server`. */
const sql = (server: string, clientKey: string, statement: string) =>
  dockerOn(server, ["exec", container(clientKey), "sqlite3", "-cmd", ".timeout 10000", "/app/backend/data/webui.db", statement]);

/** Writes a marker file into the client's volume and a row into its database. */
async function seed(clientKey: string): Promise<{ marker: string; row: string }> {
  const marker = `marker ${id} ${clientKey}`;
  await dockerOn(LOCAL, ["exec", container(clientKey), "sh", "-c", `printf '%s' '${marker}' > /app/backend/data/move-marker`]);
  await sql(LOCAL, clientKey, `CREATE TABLE IF NOT EXISTS move_marker (v TEXT); INSERT INTO move_marker VALUES ('row-${id}-${clientKey}');`);
  return { marker, row: `row-${id}-${clientKey}` };
}
/** The marker file and the rows of the client's data as its container on `server` sees it. */
async function dataOf(server: string, clientKey: string): Promise<{ marker: string; row: string }> {
  return {
    marker: await dockerOn(server, ["exec", container(clientKey), "cat", "/app/backend/data/move-marker"]),
    row: await sql(server, clientKey, "SELECT group_concat(v) FROM move_marker;"),
  };
}

async function answering(clientKey: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await health(stack().port(clientKey)))) {
    if (Date.now() > deadline) throw new Error(`${container(clientKey)} does not answer /health`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
const health = (port: number) => request({ port, hostname: "localhost" }, "/health", { timeoutMs: 1000 }).then((r) => r.status === 200, () => false);

async function healthyOn(server: string, clientKey: string, timeoutMs = 90_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await dockerOn(server, ["inspect", "-f", "{{.State.Status}} {{.State.Health.Status}}", container(clientKey)]).catch((e: Error) => e.message);
    if (state === "running healthy" || Date.now() > deadline) return state;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Answers of a client's site through a server's Caddy (HTTPS, that server's internal CA). */
async function throughProxy(server: string, clientKey: string): Promise<number | string> {
  const ca = await proxyRootCa(hostOf(server));
  return request({ port: stack().httpsPort(server), hostname: stack().hostname(clientKey), ca }, "/health", { timeoutMs: 5000 }).then(
    (r) => r.status,
    (e: Error) => e.message,
  );
}

/** A real `pulumi up` with its engine events kept (for the order of the steps) and its output. */
interface Up {
  ok: boolean;
  steps: Step[];
  events: EngineEvent[];
  output: string;
  error?: string;
  seconds: number;
}
async function upWithEvents(): Promise<Up> {
  const events: EngineEvent[] = [];
  let output = "";
  const started = Date.now();
  try {
    await stack().stack.up({ onEvent: (e) => events.push(e), onOutput: (o) => (output += o), color: "never" });
    return { ok: true, steps: foldSteps(events), events, output, seconds: (Date.now() - started) / 1000 };
  } catch (error) {
    const e = error as { stderr?: string; message?: string };
    return { ok: false, steps: foldSteps(events), events, output, error: e.stderr ?? e.message ?? String(error), seconds: (Date.now() - started) / 1000 };
  }
}
const changedOf = (steps: Step[]) => steps.filter((s) => s.op !== "same" && !isComponentKey(s.key)).map((s) => `${s.op} ${s.key}`).sort();

/** Index in the event stream where a resource's step starts or finishes (by `type::name`). */
function eventIndex(events: EngineEvent[], resourceKey: string, phase: "start" | "done", op?: string): number {
  return events.findIndex((e) => {
    const metadata = phase === "start" ? e.resourcePreEvent?.metadata : e.resOutputsEvent?.metadata;
    if (!metadata) return false;
    const [, , typeChain, ...name] = metadata.urn.split("::");
    return `${typeChain.split("$").pop()}::${name.join("::")}` === resourceKey && (op === undefined || metadata.op === op);
  });
}

/** The engine's operations on one client's resources, in the order they started. */
function operationsOn(events: EngineEvent[], slug: string): string[] {
  return events
    .map((e) => e.resourcePreEvent?.metadata)
    .filter((m): m is NonNullable<typeof m> => !!m && m.urn.includes(`::${slug}-`) && m.op !== "same")
    .map((m) => `${m.op} ${m.urn.split("::").pop()}`);
}

/**
 * Polls a client's loopback port (the same on both engines: one machine) every 100 ms while
 * `during` runs; the longest time without an answer is the move's downtime.
 */
async function watchDowntime<T>(port: number, during: () => Promise<T>): Promise<{ result: T; downtimeSeconds: number; answeredAfter: boolean }> {
  let stop = false;
  let lastOk = Date.now();
  let longest = 0;
  let lastAnswer = false;
  const poller = (async () => {
    while (!stop) {
      const ok = await health(port);
      const now = Date.now();
      if (ok) {
        longest = Math.max(longest, now - lastOk);
        lastOk = now;
      }
      lastAnswer = ok;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    const result = await during();
    // Until it answers again (or a minute passed): the outage ends when the target serves.
    const deadline = Date.now() + 60_000;
    while (!lastAnswer && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    return { result, downtimeSeconds: longest / 1000, answeredAfter: lastAnswer };
  } finally {
    stop = true;
    await poller;
  }
}

const caddyfile = (server: string) => fs.readFileSync(path.join(stack().stateDir(server), "caddy", "Caddyfile"), "utf8");

/** Every container but the moving client's, on both engines, with its id and start time. */
async function bystanders(except: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const server of [LOCAL, TARGET]) {
    const names = (await dockerOn(server, ["ps", "-a", "--format", "{{.Names}}"])).split("\n").filter((n) => n && !except.includes(n));
    for (const name of names) out[`${server}/${name}`] = await identity(server, name);
  }
  return out;
}

/** Where a volume's files are on an engine's host (the private engines run on this machine). */
const mountpoint = (server: string, name: string) => dockerOn(server, ["volume", "inspect", "-f", "{{.Mountpoint}}", name]);
/** The record a finished move leaves on the source host (`<state>/moved/<slug>`). */
const movedRecord = (server: string, clientKey: string) => path.join(stack().stateDir(server), "state", "moved", stack().slug(clientKey));

/** The deployed move command of a client (its script, interpreter and environment), from the state. */
async function deployedMove(clientKey: string): Promise<{ create: string; interpreter: string[]; environment: Record<string, string> }> {
  const state = await stack().stack.exportStack();
  const resources = (state.deployment as { resources: Array<{ urn: string; inputs?: Record<string, unknown> }> }).resources;
  const move = resources.find((r) => r.urn.endsWith(`::${stack().slug(clientKey)}-move-run`));
  if (!move?.inputs) throw new Error(`no move command of ${clientKey} in the state`);
  return move.inputs as { create: string; interpreter: string[]; environment: Record<string, string> };
}

/**
 * The source's mai-export passes its stream through a filter that flips one byte of its second
 * 64 KiB block (or of its first, for a small archive): the transfer arrives corrupted and the
 * target's mai-import refuses it. Returns the function that removes the fault.
 */
function corruptTransfersFrom(server: string): () => void {
  const bin = path.join(stack().stateDir(server), "bin");
  const real = path.join(bin, "mai-export.real");
  fs.renameSync(path.join(bin, "mai-export"), real);
  fs.writeFileSync(
    path.join(bin, "mai-export"),
    `#!/usr/bin/env bash\nset -o pipefail\n"${real}" "$@" | perl -e 'binmode STDIN; binmode STDOUT; my $n = 0; while (my $got = read(STDIN, my $b, 65536)) { substr($b, $got > 100 ? 100 : 0, 1) ^= "\\xff" if $n++ == 0; print $b }'\n`,
    { mode: 0o755 },
  );
  return () => fs.renameSync(real, path.join(bin, "mai-export"));
}

const NOTHING_TO_DO = { created: [], updated: [], replaced: [], deleted: [] };

describe("a move is one pulumi up", () => {
  it("moves m1 from local to b with its data: created on b by the stack, served by b's Caddy, nothing else restarted; a preview after is clean", async () => {
    const slug = stack().slug("m1");
    const data = await seed("m1");
    const others = await bystanders([container("m1")]);
    expect(Object.keys(others).sort()).toEqual(
      [...["stay", "f1", "f2"].map((k) => `${LOCAL}/${container(k)}`), `${LOCAL}/mai-proxy`, `${TARGET}/${container("far")}`, `${TARGET}/mai-proxy`].sort(),
    );
    // Each server's Caddy serves its own sites with its own CA (two proxies on one machine sharing
    // one admin endpoint would load each other's configuration on reload).
    expect(await throughProxy(LOCAL, "m1"), "local's Caddy serves m1 with local's CA").toBe(200);
    expect(await throughProxy(TARGET, "far"), "b's Caddy serves far with b's CA").toBe(200);
    expect(caddyfile(TARGET)).not.toContain(stack().hostname("m1"));

    await stack().writeClient({ key: "m1", yaml: clientFile("m1", TARGET, LOCAL) });
    const { result: up, downtimeSeconds, answeredAfter } = await watchDowntime(stack().port("m1"), upWithEvents);
    console.log(`move of m1: pulumi up ${up.seconds.toFixed(1)} s, the client answered on no port for ${downtimeSeconds.toFixed(1)} s`);
    expect(up.error, up.output).toBeUndefined();

    // The client's objects are recreated on b (their trigger is the server), the move runs once,
    // and both proxies get their new configuration; nothing of any other client changes.
    const changed = changedOf(up.steps);
    const own = changed.filter((c) => c.includes(`::${slug}-`));
    expect(changed.filter((c) => !own.includes(c))).toEqual(
      [LOCAL, TARGET].flatMap((server) => [`replace ${key(COMMAND, `${server}-proxy-caddyfile`)}`, `replace ${key(COMMAND, `${server}-proxy-reload`)}`]).sort(),
    );
    const expectedOwn = [
      `create ${key(COMMAND, `${slug}-move-run`)}`,
      `replace ${key(CONTAINER, `${slug}-container`)}`,
      `replace ${key(NETWORK, `${slug}-network`)}`,
      `replace ${key(VOLUME, `${slug}-data`)}`,
    ];
    expect(own).toEqual(expect.arrayContaining(expectedOwn));
    // Besides those, only commands the client runs for each new container of its own (none, or
    // e.g. one applying a setting the provider cannot) may follow the container's replacement.
    expect(own.filter((c) => !expectedOwn.includes(c)).every((c) => c.startsWith(`replace ${COMMAND}::${slug}-`))).toBe(true);
    // In this order: b's volume by the stack, the move, b's network, the container on b, b's
    // route; local's route goes after the move, local's network after local's container.
    const done = (k: string, op?: string) => eventIndex(up.events, k, "done", op);
    const started = (k: string, op?: string) => eventIndex(up.events, k, "start", op);
    const moveDone = done(key(COMMAND, `${slug}-move-run`));
    expect(done(key(VOLUME, `${slug}-data`), "create-replacement")).toBeLessThan(started(key(COMMAND, `${slug}-move-run`)));
    expect(moveDone).toBeLessThan(started(key(NETWORK, `${slug}-network`), "create-replacement"));
    expect(done(key(NETWORK, `${slug}-network`), "create-replacement")).toBeLessThan(started(key(CONTAINER, `${slug}-container`), "create-replacement"));
    expect(done(key(CONTAINER, `${slug}-container`), "create-replacement")).toBeLessThan(started(key(COMMAND, `${TARGET}-proxy-reload`), "create-replacement"));
    expect(moveDone).toBeLessThan(started(key(COMMAND, `${LOCAL}-proxy-reload`), "create-replacement"));
    expect(done(key(CONTAINER, `${slug}-container`), "delete-replaced")).toBeLessThan(started(key(NETWORK, `${slug}-network`), "delete-replaced"));
    // The import found the volume the stack had made (it would say "created volume" otherwise).
    expect(up.output).toContain(`[${TARGET}] ${slug}: received`);
    expect(up.output).not.toContain(`created volume ${volume("m1")}`);
    expect(answeredAfter).toBe(true);

    // On b: the volume and network of the stack, the data, the container running and healthy.
    expect(await dockerOn(TARGET, ["volume", "inspect", "-f", "{{json .Labels}}", volume("m1")])).toBe(JSON.stringify({ "mai.client": slug }));
    expect(await dockerOn(TARGET, ["network", "inspect", "-f", "{{json .Labels}}", container("m1")])).toBe(JSON.stringify({ "mai.client": slug }));
    expect(await healthyOn(TARGET, "m1")).toBe("running healthy");
    expect(await dataOf(TARGET, "m1")).toEqual(data);
    expect(fs.readFileSync(movedRecord(LOCAL, "m1"), "utf8")).toMatch(new RegExp(`^to ${TARGET} at \\d{4}-`));
    // Served through b's Caddy (its internal CA), no longer by local's.
    expect(caddyfile(TARGET)).toContain(stack().hostname("m1"));
    expect(caddyfile(LOCAL)).not.toContain(stack().hostname("m1"));
    expect(await throughProxy(TARGET, "m1")).toBe(200);
    expect(await throughProxy(LOCAL, "m1")).not.toBe(200);
    // On local: the container and network are gone, the volume stays with the data as it was.
    expect(await existsOn(LOCAL, "container", container("m1"))).toBe(false);
    expect(await existsOn(LOCAL, "network", container("m1"))).toBe(false);
    expect(fs.readFileSync(path.join(await mountpoint(LOCAL, volume("m1")), "move-marker"), "utf8")).toBe(data.marker);
    // Nobody else restarted, the proxies included (reloaded, not restarted).
    expect(await bystanders([container("m1")])).toEqual(others);
    for (const other of ["stay", "f1"]) expect(await throughProxy(LOCAL, other)).toBe(200);
    expect(await throughProxy(TARGET, "far")).toBe(200);

    expect(await stack().preview()).toMatchObject(NOTHING_TO_DO);
  }, 300_000);

  it("the deployed move command, run again, refuses: a move never runs two copies", async () => {
    const before = { id: await identity(TARGET, container("m1")), data: await dataOf(TARGET, "m1") };
    const move = await deployedMove("m1");
    const [shell, ...flags] = move.interpreter;
    const replay = await run(shell, [...flags, move.create], { env: { ...process.env, ...move.environment }, timeout: 120_000 }).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code?: number; stderr?: string }) => ({ code: e.code, stderr: e.stderr ?? "" }),
    );
    expect(replay.code).toBe(4);
    expect(replay.stderr).toContain("a move never runs two copies");
    expect({ id: await identity(TARGET, container("m1")), data: await dataOf(TARGET, "m1") }).toEqual(before);
  }, 180_000);

  it("removing moveFrom afterwards only drops the move command from the stack; nothing is replaced", async () => {
    const before = await identity(TARGET, container("m1"));
    await stack().writeClient({ key: "m1", yaml: clientFile("m1", TARGET) });
    const preview = await stack().preview();
    expect(changedOf(preview.steps)).toEqual([`delete ${key(COMMAND, `${stack().slug("m1")}-move-run`)}`]);
    await stack().up();
    expect(await stack().preview()).toMatchObject(NOTHING_TO_DO);
    expect(await identity(TARGET, container("m1"))).toBe(before);
    expect(await throughProxy(TARGET, "m1")).toBe(200);
  }, 180_000);

  it("a move whose transfer arrives corrupted fails pulumi up and leaves f1 running on local; the next up after the fix completes it", async () => {
    const slug = stack().slug("f1");
    const data = await seed("f1");
    const f1Id = (await identity(LOCAL, container("f1"))).split(" ")[0];
    const others = await bystanders([container("f1")]);
    const targetCaddyfile = caddyfile(TARGET);

    await stack().writeClient({ key: "f1", yaml: clientFile("f1", TARGET, LOCAL) });
    const removeFault = corruptTransfersFrom(LOCAL);
    let failed: Up;
    let downtime: number;
    try {
      const watched = await watchDowntime(stack().port("f1"), upWithEvents);
      failed = watched.result;
      downtime = watched.downtimeSeconds;
      expect(watched.answeredAfter).toBe(true);
    } finally {
      removeFault();
    }
    console.log(`failed move of f1: pulumi up ${failed.seconds.toFixed(1)} s, f1 answered on no port for ${downtime.toFixed(1)} s`);
    expect(failed.ok).toBe(false);
    expect(failed.error).toContain(`mai-import on ${TARGET} failed`);
    expect(failed.error).toContain(`mai-${slug} is running on ${LOCAL} again`);
    // The stack stopped at the move: the volume on b is made (empty), the network and container
    // are not touched, and no proxy reloaded.
    const failedChanges = changedOf(failed.steps);
    expect(failedChanges).toContain(`replace ${key(VOLUME, `${slug}-data`)}`);
    expect(failedChanges.filter((c) => /proxy-reload$|-network$|-container$/.test(c))).toEqual([]);
    expect(await existsOn(TARGET, "network", container("f1"))).toBe(false);
    expect(await dockerOn(LOCAL, ["inspect", "-f", "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}", container("f1")])).toBe(container("f1"));

    // f1 runs on local again: the same container, its data, its route on local's Caddy.
    expect((await identity(LOCAL, container("f1"))).split(" ")[0]).toBe(f1Id);
    expect(await healthyOn(LOCAL, "f1")).toBe("running healthy");
    expect(await dataOf(LOCAL, "f1")).toEqual(data);
    expect(caddyfile(LOCAL)).toContain(stack().hostname("f1"));
    expect(await throughProxy(LOCAL, "f1")).toBe(200);
    expect(fs.existsSync(movedRecord(LOCAL, "f1"))).toBe(false);
    // Nothing of f1 runs on b, and b's Caddy serves what it served before.
    expect(await existsOn(TARGET, "container", container("f1"))).toBe(false);
    expect(caddyfile(TARGET)).toBe(targetCaddyfile);
    expect(await bystanders([container("f1")])).toEqual(others);

    // The next up (fault removed) runs the move again and completes it.
    const retryPreview = await stack().preview();
    console.log(`preview after the failed move:\n${changedOf(retryPreview.steps).join("\n")}`);
    expect(changedOf(retryPreview.steps)).toContain(`create ${key(COMMAND, `${slug}-move-run`)}`);
    const { result: retry, downtimeSeconds } = await watchDowntime(stack().port("f1"), upWithEvents);
    console.log(`move of f1 after the fix: pulumi up ${retry.seconds.toFixed(1)} s, f1 answered on no port for ${downtimeSeconds.toFixed(1)} s`);
    console.log(changedOf(retry.steps).join("\n"));
    const retryOps = operationsOn(retry.events, slug);
    console.log(retryOps.join("\n"));
    expect(retryOps.indexOf(`create ${slug}-move-run`)).toBeLessThan(retryOps.indexOf(`create-replacement ${slug}-network`));
    expect(retryOps.indexOf(`delete-replaced ${slug}-container`)).toBeLessThan(retryOps.indexOf(`delete-replaced ${slug}-network`));
    expect(retry.error, retry.output).toBeUndefined();
    expect(await healthyOn(TARGET, "f1")).toBe("running healthy");
    expect(await dataOf(TARGET, "f1")).toEqual(data);
    expect(await throughProxy(TARGET, "f1")).toBe(200);
    expect(await existsOn(LOCAL, "container", container("f1"))).toBe(false);
    expect(await existsOn(LOCAL, "network", container("f1"))).toBe(false);
    expect(fs.readFileSync(path.join(await mountpoint(LOCAL, volume("f1")), "move-marker"), "utf8")).toBe(data.marker);
    expect(await bystanders([container("f1")])).toEqual(others);
    expect(await stack().preview()).toMatchObject(NOTHING_TO_DO);
  }, 420_000);
  it("a failed move cancelled (server back, moveFrom removed) settles with one pulumi up: f2 on local as before, nothing of it on b but an empty volume", async () => {
    const slug = stack().slug("f2");
    const data = await seed("f2");
    const f2Id = (await identity(LOCAL, container("f2"))).split(" ")[0];
    const others = await bystanders([container("f2")]);
    const targetCaddyfile = caddyfile(TARGET);

    await stack().writeClient({ key: "f2", yaml: clientFile("f2", TARGET, LOCAL) });
    const removeFault = corruptTransfersFrom(LOCAL);
    let failed: Up;
    try {
      failed = await upWithEvents();
    } finally {
      removeFault();
    }
    expect(failed.ok).toBe(false);
    expect(failed.error).toContain(`mai-${slug} is running on ${LOCAL} again`);

    await stack().writeClient({ key: "f2", yaml: clientFile("f2", LOCAL) });
    const cancel = await upWithEvents();
    console.log(`cancel of f2's move: pulumi up ${cancel.seconds.toFixed(1)} s\n${changedOf(cancel.steps).join("\n")}`);
    expect(cancel.error, cancel.output).toBeUndefined();
    // Of f2 only the volume's place in the state goes back to local (the existing volume, adopted);
    // its container and network are not touched.
    expect(changedOf(cancel.steps).filter((c) => c.includes(`::${slug}-`))).toEqual([`replace ${key(VOLUME, `${slug}-data`)}`]);
    expect((await identity(LOCAL, container("f2"))).split(" ")[0]).toBe(f2Id);
    expect(await healthyOn(LOCAL, "f2")).toBe("running healthy");
    expect(await dataOf(LOCAL, "f2")).toEqual(data);
    expect(await throughProxy(LOCAL, "f2")).toBe(200);
    expect(caddyfile(TARGET)).toBe(targetCaddyfile);
    expect(await existsOn(TARGET, "container", container("f2"))).toBe(false);
    expect(await existsOn(TARGET, "network", container("f2"))).toBe(false);
    // Left on b: the empty volume the failed move had made (retained, as every client volume).
    expect(fs.existsSync(path.join(await mountpoint(TARGET, volume("f2")), "webui.db"))).toBe(false);
    expect(await bystanders([container("f2")])).toEqual(others);
    expect(await stack().preview()).toMatchObject(NOTHING_TO_DO);
  }, 420_000);
});
