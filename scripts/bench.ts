/**
 * `npm run bench`: wall time of the plan (the real program under the mock runtime, as a
 * fresh process, the way a user or CI runs it) for 20, 100 and 200 generated clients, and the
 * growth ratio t200/t20. Targets: 20 clients <= 1.5 s, linear growth (ratio <= 11). Then 200
 * clients over 10 servers (goal <= 5 s on 2 cores). Then `npm run status` over 20 and 100
 * containers and the sampler's cost (scripts/bench-status.ts), the move benchmark
 * (scripts/bench-move.ts: a real `pulumi up` moving a client between two private engines).
 * A benchmark, not a test: it prints figures and never fails on them. Then runs the proxy
 * benchmark of scripts/bench-proxy.ts when that file exists, the workspace stand-in's latency
 * directly and through Caddy (scripts/bench-standin.ts), and the real-engine benchmark of
 * scripts/bench-engine.ts (real `pulumi up` on a private Docker engine). Each part catches its own
 * failure and prints "not measured: <why>". `npm run bench -- --only engine,move` runs only the
 * parts named (plan, move, proxy, standin, status, engine).
 */
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";

const root = path.join(__dirname, "..");
const run = promisify(execFile);
const SIZES = [20, 100, 200];
const REPEATS = 3;

/** Small clients so that 200 fit a ccx53 (the capacity check is part of the plan). */
export function generatedClient(index: number): string {
  return [
    `name: Benchmark Client ${index}`,
    `port: ${20000 + index}`,
    "resources:",
    "  cpus: 0.1",
    "  memory: 512M",
    "  reservations:",
    "    cpus: 0.1",
    "    memory: 64M",
    "",
  ].join("\n");
}

/** Writes `count` client files into a new temporary directory. */
function generateClients(count: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mai-bench-${count}-`));
  for (let i = 1; i <= count; i++) fs.writeFileSync(path.join(dir, `bench-${String(i).padStart(3, "0")}.yaml`), generatedClient(i));
  return dir;
}

/** Names of the generated servers of the multi-server case. */
const SERVER_COUNT = 10;
const serverName = (index: number) => `bench-${String(index).padStart(2, "0")}`;

/** The production stack file with `count` Hetzner servers added, in a new temporary directory. */
function generateServersStack(count: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-bench-servers-"));
  const servers = Array.from({ length: count }, (_, i) => `    ${serverName(i)}: { serverType: ccx53 }`).join("\n");
  const stack = fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8").trimEnd();
  fs.writeFileSync(path.join(dir, "Pulumi.prod.yaml"), `${stack}\n  mai-hosting:servers:\n${servers}\n`);
  return path.join(dir, "Pulumi.prod.yaml");
}

/** One plan run as a process; returns wall seconds and the number of declared resources. */
async function timePlan(clientsDir: string, stackFile?: string): Promise<{ seconds: number; resources: number }> {
  const started = process.hrtime.bigint();
  const stackArgs = stackFile === undefined ? [] : ["--stack-file", stackFile];
  const { stdout } = await run(process.execPath, ["--import", "tsx", path.join(root, "scripts", "plan.ts"), "--clients", clientsDir, ...stackArgs, "--json"], {
    cwd: root,
    maxBuffer: 256 * 1024 * 1024,
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { seconds, resources: (JSON.parse(stdout) as { resources: unknown[] }).resources.length };
}

/** The plan's wall time for 20, 100 and 200 clients, and for 200 clients over 10 servers. */
async function planBench(): Promise<string[]> {
  const lines: string[] = [];
  lines.push(`plan benchmark: wall time of one plan process, \`node --import tsx scripts/plan.ts --json\` (best of ${REPEATS}), ${os.cpus().length} CPUs, Node ${process.version}`);
  const best = new Map<number, number>();
  for (const size of SIZES) {
    const dir = generateClients(size);
    try {
      const times: number[] = [];
      let resources = 0;
      for (let i = 0; i < REPEATS; i++) {
        const result = await timePlan(dir);
        times.push(result.seconds);
        resources = result.resources;
      }
      best.set(size, Math.min(...times));
      lines.push(
        `  ${String(size).padStart(3)} clients: ${Math.min(...times).toFixed(2)} s  (${resources} resources; runs: ${times.map((t) => t.toFixed(2)).join(", ")} s)`,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const t20 = best.get(20)!;
  const ratio = best.get(200)! / t20;
  lines.push(`  ratio t200/t20: ${ratio.toFixed(2)}  (target <= 11; 20 clients target <= 1.5 s: ${t20 <= 1.5 ? "met" : "not met"})`);

  // 200 clients over 10 servers, pinned round-robin.
  const serversDir = generateClients(200);
  const stackFile = generateServersStack(SERVER_COUNT);
  try {
    for (const file of fs.readdirSync(serversDir)) {
      const index = Number(/(\d+)/.exec(file)![1]);
      fs.appendFileSync(path.join(serversDir, file), `server: ${serverName(index % SERVER_COUNT)}\n`);
    }
    const times: number[] = [];
    let resources = 0;
    for (let i = 0; i < REPEATS; i++) {
      const result = await timePlan(serversDir, stackFile);
      times.push(result.seconds);
      resources = result.resources;
    }
    const bestTime = Math.min(...times);
    lines.push(
      `  200 clients on ${SERVER_COUNT} servers: ${bestTime.toFixed(2)} s  (${resources} resources; runs: ${times.map((t) => t.toFixed(2)).join(", ")} s; goal <= 5 s: ${bestTime <= 5 ? "met" : "not met"})`,
    );
  } finally {
    fs.rmSync(serversDir, { recursive: true, force: true });
    fs.rmSync(path.dirname(stackFile), { recursive: true, force: true });
  }
  return lines;
}

/** The parts, in the order they run; `npm run bench -- --only engine,move` runs some of them. */
const PARTS = ["plan", "move", "proxy", "standin", "status", "engine"] as const;
type Part = (typeof PARTS)[number];

function selectedParts(argv: string[]): Set<Part> {
  const at = argv.indexOf("--only");
  if (at < 0) return new Set(PARTS);
  const names = (argv[at + 1] ?? "").split(",").filter(Boolean);
  const unknown = names.filter((name) => !(PARTS as readonly string[]).includes(name));
  if (names.length === 0 || unknown.length > 0) throw new Error(`--only takes a comma-separated list of ${PARTS.join(", ")}; got "${argv[at + 1] ?? ""}"`);
  return new Set(names as Part[]);
}

async function main(): Promise<void> {
  const parts = selectedParts(process.argv.slice(2));
  if (parts.has("plan")) await part("plan benchmark", planBench);
  // A real `pulumi up` moving a client between two private engines (scripts/bench-move.ts).
  if (parts.has("move")) await part("move benchmark", async () => (await import("./bench-move")).runMoveBench());

  const proxyBench = path.join(__dirname, "bench-proxy.ts");
  if (parts.has("proxy") && fs.existsSync(proxyBench)) {
    await part("proxy benchmark", async () => {
      // Loaded by path: the file is optional.
      const mod = require(proxyBench) as { runProxyBench?: () => unknown };
      if (typeof mod.runProxyBench !== "function") return [];
      const lines = await mod.runProxyBench();
      return Array.isArray(lines) ? lines.map(String) : typeof lines === "string" ? [lines] : [];
    });
  }

  // The workspace stand-in's /health, directly and through Caddy (goal p50 <= 2 ms through Caddy).
  if (parts.has("standin")) await part("workspace stand-in benchmark", async () => (await import("./bench-standin")).runStandInBench());
  // The operator's view on the local engine (status over 20/100 clients, sampler cost).
  if (parts.has("status")) await part("status benchmark", async () => (await import("./bench-status")).runStatusBench());
  // Real `pulumi up` on a private engine: ups for 3 and 20 clients, idle memory, noisy neighbour,
  // reloads under load (scripts/bench-engine.ts).
  if (parts.has("engine")) await part("real-engine benchmark", async () => (await import("./bench-engine")).runEngineBench());
}

/** Runs one benchmark part and prints its lines; a failure prints "not measured" and the bench goes on. */
async function part(name: string, measure: () => Promise<string[]>): Promise<void> {
  try {
    for (const line of await measure()) console.log(line);
  } catch (error) {
    console.log(`${name}: not measured: ${(error instanceof Error ? error.message : String(error)).split("\n")[0]}`);
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  });
}
