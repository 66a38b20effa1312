/**
 * Move benchmark (part of `npm run bench`; figures, never pass/fail): one real `pulumi up` moving
 * a client with a volume of N MB (default 200; `npx tsx scripts/bench-move.ts <MB>`) between two
 * private Docker engines on this machine standing for two servers (the test engine and a second
 * one, tests/support/privateEngine.ts; never the machine's engine). The client file gets
 * `server: <second>` + `moveFrom: <first>`, as the runbook's move procedure says. Measured: the
 * `up`'s wall time, and the client's downtime as its loopback port sees it (probed every 100 ms;
 * both engines publish the same port on this machine), and whether the data arrived intact. The
 * volume holds chats in the database and incompressible uploads, a worst case for the transfer.
 * Runs in a network namespace of its own where it can (why: scripts/bench-engine.ts). Holds the
 * engine lock; removes both engines' objects and the second engine afterwards.
 */
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { request } from "../tests/support/httpClient";
import { newRunId } from "../tests/support/engine";
import { localServerName, startSecondTestEngine, type PrivateEngine } from "../tests/support/privateEngine";
import { RealStack } from "../tests/support/realStack";
import { changeSummary, longestOutage, notMeasured, seconds, type Probe } from "./lib/benchFigures";
import { clientYaml, dockerOn, holdTestEngine, inOwnNetworkNamespace, runsInOwnNetworkNamespace, sharedAdminHazard, sleep, timed, untilAnswering } from "./lib/realEngineBench";

const DEFAULT_MB = 200;
const FILE_MB = 10;
const TARGET_SERVER = "second";
const RESOURCES = { cpus: 0.5, memory: "512M", reservedCpus: 0.1, reservedMemory: "64M" };

const progress = (message: string) => console.error(`bench-move: ${message}`);

/** Posts a body to the client's own API (as its users would write data). */
async function post(port: number, pathAndQuery: string, body: Buffer | string): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${port}${pathAndQuery}`, { method: "POST", body });
  if (!response.ok) throw new Error(`POST ${pathAndQuery}: HTTP ${response.status} ${await response.text()}`);
}

/** Gives the client chats and `megabytes` of incompressible uploads; returns the uploads' checksum. */
async function fill(port: number, megabytes: number): Promise<string> {
  for (let i = 1; i <= 200; i++) await post(port, "/api/write", `bench chat ${i} ${"lorem ipsum ".repeat(8)}`);
  const hash = createHash("sha256");
  for (let i = 0; i < Math.ceil(megabytes / FILE_MB); i++) {
    const body = randomBytes(FILE_MB * 1024 * 1024);
    await post(port, `/api/upload?name=file-${i}.bin`, body);
    hash.update(createHash("sha256").update(body).digest("hex"));
  }
  return hash.digest("hex");
}

/** The uploads' checksum as they are in a volume on an engine (read from its mount point). */
async function uploadsChecksum(host: string, volume: string, megabytes: number): Promise<string> {
  const dir = path.join(await dockerOn(host, ["volume", "inspect", "-f", "{{.Mountpoint}}", volume]), "uploads");
  const hash = createHash("sha256");
  for (let i = 0; i < Math.ceil(megabytes / FILE_MB); i++) {
    hash.update(createHash("sha256").update(fs.readFileSync(path.join(dir, `file-${i}.bin`))).digest("hex"));
  }
  return hash.digest("hex");
}

/** Probes /health on a loopback port every 100 ms until `stop()`; resolves with the probes. */
async function probe(port: number, stop: () => boolean): Promise<Probe[]> {
  const probes: Probe[] = [];
  while (!stop()) {
    const at = performance.now();
    const ok = await request({ port, hostname: "localhost" }, "/health", { timeoutMs: 1000 }).then((r) => r.status === 200, () => false);
    probes.push({ at, ok });
    await sleep(Math.max(0, 100 - (performance.now() - at)));
  }
  return probes;
}

/** Runs the move benchmark; returns the lines to print. */
export async function runMoveBench(megabytes: number = DEFAULT_MB): Promise<string[]> {
  const isolated = await inOwnNetworkNamespace(__filename, [String(megabytes)]);
  if (isolated) return isolated;
  const where = runsInOwnNetworkNamespace() ? ", in a network namespace of their own" : "";
  const title = `move benchmark: one real \`pulumi up\` moving a client with ${megabytes} MB of data between two private Docker engines on this machine${where} (${os.cpus().length} CPUs)`;
  const hazard = await sharedAdminHazard(undefined, (who) => progress(`waiting for another Caddy on the default admin address to go (${who})`));
  if (hazard) return [title, `  move: not measured: ${hazard}`];
  let held: Awaited<ReturnType<typeof holdTestEngine>>;
  try {
    held = await holdTestEngine(() => progress("waiting for the engine lock (another engine test or bench holds it)"));
  } catch (error) {
    return [title, notMeasured("move", error)];
  }
  const appeared = await sharedAdminHazard(0);
  if (appeared) {
    await held.release();
    return [title, `  move: not measured: ${appeared}`];
  }
  const secondDir = fs.mkdtempSync("/tmp/mai-bench-move-");
  let second: PrivateEngine | undefined;
  let stack: RealStack | undefined;
  const lines = [title];
  try {
    progress("second engine");
    second = await startSecondTestEngine(secondDir);
    const source = localServerName();
    stack = await RealStack.create({
      runId: newRunId(),
      clients: [{ key: "m", yaml: clientYaml("Moving client", RESOURCES) }],
      servers: { [source]: { dockerHost: held.engine.host }, [TARGET_SERVER]: { dockerHost: second.host } },
    });
    progress("first up (both servers, the client on the first)");
    const first = await timed(stack, "up");
    await untilAnswering([stack.port("m")]);
    lines.push(`  first up of the two-server stack: ${seconds(first.ms)} (${changeSummary(first)})`);
    progress(`writing ${megabytes} MB into the client`);
    const expected = await fill(stack.port("m"), megabytes);

    await stack.writeClient({ key: "m", yaml: clientYaml("Moving client", RESOURCES, `server: ${TARGET_SERVER}\nmoveFrom: ${source}\n`) });
    let probing = true;
    const probes = probe(stack.port("m"), () => !probing);
    await sleep(500);
    progress("the move's up");
    let moveError: unknown;
    let move: Awaited<ReturnType<typeof timed>> | undefined;
    try {
      move = await timed(stack, "up");
    } catch (error) {
      moveError = error;
    }
    // The client back (on the target, or on the source after a failed move), then stop probing.
    const back = await untilAnswering([stack.port("m")], 120_000).then(() => true, () => false);
    await sleep(500);
    probing = false;
    const outage = longestOutage(await probes);
    const downtime =
      outage === undefined
        ? "none seen (no probe failed)"
        : outage.ms === undefined
          ? `not back within 120 s (${outage.failedProbes} failed probes)`
          : `${seconds(outage.ms)} (${outage.failedProbes} failed probes, 100 ms apart)`;
    if (moveError !== undefined || move === undefined) {
      progress(`the move's up failed: ${String(moveError)}`);
      lines.push(notMeasured("move", moveError));
      lines.push(`  client ${back ? "answers again" : "does NOT answer"} on its port after the failed move; outage meanwhile ${downtime}`);
      return lines;
    }
    const slug = stack.slug("m");
    const onTarget = await dockerOn(second.host, ["inspect", "-f", "{{.State.Running}}", stack.container("m")]).catch(() => "missing");
    const onSource = await dockerOn(held.engine.host, ["ps", "-q", "--filter", `name=^mai-${slug}$`]);
    const arrived = await uploadsChecksum(second.host, `mai-${slug}-data`, megabytes).catch((error: unknown) => `unreadable: ${error instanceof Error ? error.message : String(error)}`);
    lines.push(
      `  move up: ${seconds(move.ms)} (${changeSummary(move)}); downtime on the client's port: ${downtime}; ` +
        `target container running: ${onTarget}, source container ${onSource ? "STILL RUNNING" : "gone"}, uploads ${arrived === expected ? "intact" : "DIFFERENT"} on the target`,
    );
    lines.push("  a real move's downtime adds DNS caching (TTL 300 s) and the target's first certificate");
  } catch (error) {
    lines.push(notMeasured("move", error));
  } finally {
    stack?.dispose();
    if (second) await second.remove().catch((error: unknown) => lines.push(notMeasured("cleanup of the second engine", error)));
    fs.rmSync(secondDir, { recursive: true, force: true });
    await held.release().catch((error: unknown) => lines.push(notMeasured("cleanup of the test engine", error)));
  }
  return lines;
}

if (require.main === module) {
  const megabytes = process.argv[2] === undefined ? DEFAULT_MB : Number(process.argv[2]);
  if (!Number.isInteger(megabytes) || megabytes < 0) {
    console.error(`bench-move: the volume size must be a whole number of MB, got "${process.argv[2]}"`);
    process.exitCode = 2;
  } else {
    runMoveBench(megabytes).then(
      (lines) => console.log(lines.join("\n")),
      (err: unknown) => {
        console.error(`bench-move: ${err instanceof Error ? err.message : String(err)}`);
        process.exitCode = 1;
      },
    );
  }
}
