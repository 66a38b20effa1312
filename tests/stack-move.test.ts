/**
 * A client moving between two Hetzner servers, under Pulumi's mocks: `server: fsn1-b` with
 * `moveFrom: nbg1-a`. The program declares the move command on the machine running Pulumi with
 * both servers' shell prefixes, and the order that makes a move safe: the target's volume and
 * host tools before the move; the move before the target's network and container; the container
 * before DNS; the source proxy's reload after the move, the target proxy's after the container and
 * DNS. Nothing is declared for clients that
 * stay. A wrong `moveFrom` stops the program naming file and field.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { mockOutputs } from "../plan/mockRuntime";
import { FIXTURE_CONFIG, FIXTURE_SECRET_KEYS } from "./fixtures/stack/config";
import { type DeclaredResource, type ProgramRun, runProgram } from "./support/programHarness";

const FIXTURE_CLIENTS = path.join(__dirname, "fixtures", "stack", "clients");
const SERVERS = { "nbg1-a": { serverType: "ccx33" }, "fsn1-b": { serverType: "ccx23", location: "fsn1" } };
const CONFIG = { ...FIXTURE_CONFIG, "mai-hosting:servers": JSON.stringify(SERVERS), "mai-hosting:defaultServer": "nbg1-a" };
const ipv4Of = (server: string) => mockOutputs("hcloud:index/server:Server", `${server}-server`, {}).state.ipv4Address as string;

const dirs: string[] = [];
let run: ProgramRun;

/** The fixture clients; `extra` lines appended per slug. */
function clientsDir(extra: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-move-stack-"));
  dirs.push(dir);
  for (const file of fs.readdirSync(FIXTURE_CLIENTS)) {
    const text = fs.readFileSync(path.join(FIXTURE_CLIENTS, file), "utf8");
    const lines = extra[file.replace(/\.yaml$/, "")];
    fs.writeFileSync(path.join(dir, file), lines === undefined ? text : `${text.trimEnd()}\n${lines}\n`);
  }
  return dir;
}

const named = (name: string): DeclaredResource => {
  const found = run.resources.find((r) => r.name === name);
  if (!found) throw new Error(`no resource ${name}; have: ${run.resources.map((r) => r.name).join(", ")}`);
  return found;
};
/** Whether `resource` waits for a resource whose URN ends with `::<name>` (directly or via a component's children). */
const waitsFor = (resource: DeclaredResource, name: string) =>
  resource.options.dependsOn.some((urn) => urn.endsWith(`::${name}`) || urn.includes(`::${name}-`));

beforeAll(async () => {
  run = await runProgram({ config: CONFIG, secretKeys: FIXTURE_SECRET_KEYS, clientsDir: clientsDir({ globex: "server: fsn1-b\nmoveFrom: nbg1-a" }) });
});
afterAll(() => dirs.splice(0).forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

describe("a client moving to another server", () => {
  it("declares one move command on the machine running Pulumi, with both servers' shells and host paths", () => {
    const move = named("globex-move-run");
    expect(move.type).toBe("command:local:Command");
    expect(named("globex-move").type).toBe("mai:index:ClientMove");
    expect(move.inputs.interpreter).toEqual(["/bin/bash", "-c"]);
    expect(move.inputs.create).toBe(fs.readFileSync(path.join(__dirname, "..", "host", "mai-move.sh"), "utf8"));
    expect(move.inputs.update).not.toMatch(/mai-(export|import)/);
    expect(move.inputs.triggers).toEqual(["nbg1-a", "fsn1-b"]);
    expect(move.inputs.environment).toMatchObject({
      MAI_MOVE_SLUG: "globex",
      MAI_MOVE_SUSPENDED: "no",
      MAI_SOURCE_NAME: "nbg1-a",
      MAI_TARGET_NAME: "fsn1-b",
      MAI_SOURCE_BIN: "/usr/local/sbin",
      MAI_TARGET_STATE: "/var/lib/mai",
    });
    expect(move.inputs.environment.MAI_SOURCE_SHELL).toMatch(new RegExp(`^ssh .*root@${ipv4Of("nbg1-a").replace(/\./g, "\\.")}$`));
    expect(move.inputs.environment.MAI_TARGET_SHELL).toMatch(new RegExp(`^ssh .*root@${ipv4Of("fsn1-b").replace(/\./g, "\\.")}$`));
  });

  it("moves after the target's volume and both servers' host tools exist; the target's network waits for the move", () => {
    const move = named("globex-move-run");
    for (const dependency of ["globex-data", "nbg1-a-backup-tooling", "fsn1-b-backup-tooling"]) {
      expect(waitsFor(move, dependency), dependency).toBe(true);
    }
    // So that a failed move leaves the network in the state where it was (a cancel then works).
    expect(waitsFor(move, "globex-network")).toBe(false);
    expect(waitsFor(named("globex-network"), "globex-move")).toBe(true);
    expect(named("acme-network").options.dependsOn).toEqual([]);
  });

  it("starts the target container only after the move, and switches DNS only after the container", () => {
    const container = named("globex-container");
    expect(container.options.dependsOn.some((urn) => urn.includes("globex-move"))).toBe(true);
    const dns = run.resources.filter((r) => r.type === "cloudflare:index/dnsRecord:DnsRecord" && r.name.startsWith("globex-dns-"));
    expect(dns.length).toBeGreaterThan(0);
    for (const record of dns) {
      expect(waitsFor(record, "globex-container")).toBe(true);
      if (record.inputs.type === "A") expect(record.inputs.content).toBe(ipv4Of("fsn1-b"));
    }
  });

  it("reloads the source's proxy (without the client) after the move, the target's (with it) after its container and DNS", () => {
    const source = named("nbg1-a-proxy-reload");
    expect(source.options.dependsOn.some((urn) => urn.includes("globex-move"))).toBe(true);
    expect(waitsFor(source, "globex-container")).toBe(false);
    const target = named("fsn1-b-proxy-reload");
    expect(waitsFor(target, "globex-move")).toBe(true);
    expect(waitsFor(target, "globex-container")).toBe(true);
    const dns = run.resources.filter((r) => r.type === "cloudflare:index/dnsRecord:DnsRecord" && r.name.startsWith("globex-dns-"));
    for (const record of dns) expect(target.options.dependsOn.some((urn) => urn.endsWith(`::${record.name}`)), record.name).toBe(true);
    // Clients that stay add no wait to either reload.
    expect(waitsFor(target, "acme-container") || waitsFor(source, "acme-container")).toBe(false);
  });

  it("declares no move for clients that stay", () => {
    const moves = run.resources.filter((r) => r.type === "mai:index:ClientMove").map((r) => r.name);
    expect(moves).toEqual(["globex-move"]);
    expect(named("acme-container").options.dependsOn.some((urn) => urn.includes("-move"))).toBe(false);
  });
});

describe("a wrong moveFrom", () => {
  it("stops the program naming the file, the field and the servers", async () => {
    vi.resetModules();
    const dir = clientsDir({ globex: "server: fsn1-b\nmoveFrom: nbg9", acme: "server: nbg1-a\nmoveFrom: nbg1-a" });
    const failure = await runProgram({ config: CONFIG, secretKeys: FIXTURE_SECRET_KEYS, clientsDir: dir }).then(
      () => undefined,
      (err: unknown) => err,
    );
    const message = failure instanceof Error ? failure.message : String(failure);
    expect(message).toMatch(/globex\.yaml:\d+: moveFrom: expected one of the stack's servers \(nbg1-a, fsn1-b\), got "nbg9"/);
    expect(message).toMatch(/acme\.yaml:\d+: moveFrom: names the server the client is on \("nbg1-a"\)/);
  });
});
