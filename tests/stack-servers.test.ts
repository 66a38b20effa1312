/**
 * Several servers in one stack, under Pulumi's mocks: the fixture clients spread over two Hetzner
 * servers. Each server gets its own server, firewall, primary IPs, Docker provider, shared
 * network, backup tooling and Caddy with only its clients; DNS points at the client's server;
 * the SSH keys are registered once. Wrong server names and a full server stop the program before
 * anything is declared, naming file, field and server.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { mockOutputs } from "../plan/mockRuntime";
import { FIXTURE_CONFIG, FIXTURE_SECRET_KEYS } from "./fixtures/stack/config";
import { type DeclaredResource, type ProgramRun, promiseOf, runProgram } from "./support/programHarness";

const FIXTURE_CLIENTS = path.join(__dirname, "fixtures", "stack", "clients");
const SERVERS = { "nbg1-a": { serverType: "ccx33" }, "fsn1-b": { serverType: "ccx23", location: "fsn1" } };
const CONFIG = { ...FIXTURE_CONFIG, "mai-hosting:servers": JSON.stringify(SERVERS), "mai-hosting:defaultServer": "nbg1-a" };
/** The mocked provider's addresses of each server (the plan's own mocks). */
const ipv4Of = (server: string) => mockOutputs("hcloud:index/server:Server", `${server}-server`, {}).state.ipv4Address as string;

const dirs: string[] = [];
let run: ProgramRun;

/** The fixture clients with `server:` lines added (file name -> server). */
function clientsDir(pins: Record<string, string>, extra: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-servers-"));
  dirs.push(dir);
  for (const file of fs.readdirSync(FIXTURE_CLIENTS)) {
    const text = fs.readFileSync(path.join(FIXTURE_CLIENTS, file), "utf8");
    const server = pins[file.replace(/\.yaml$/, "")];
    fs.writeFileSync(path.join(dir, file), server === undefined ? text : `${text.trimEnd()}\nserver: ${server}\n`);
  }
  for (const [file, text] of Object.entries(extra)) fs.writeFileSync(path.join(dir, file), text);
  return dir;
}

const ofType = (type: string) => run.resources.filter((r) => r.type === type);
const named = (name: string): DeclaredResource => {
  const found = run.resources.find((r) => r.name === name);
  if (!found) throw new Error(`no resource ${name}; have: ${run.resources.map((r) => r.name).join(", ")}`);
  return found;
};
/** Name of the last URN segment of the resource's parent. */
const parentName = (resource: DeclaredResource) => resource.options.parent.split("::").pop();

beforeAll(async () => {
  run = await runProgram({ config: CONFIG, secretKeys: FIXTURE_SECRET_KEYS, clientsDir: clientsDir({ globex: "fsn1-b", umbrella: "fsn1-b" }) });
});
afterAll(() => dirs.splice(0).forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

describe("two Hetzner servers", () => {
  it("gives each server its own server, firewall, primary IPs and Docker provider, named after it", () => {
    const servers = ofType("hcloud:index/server:Server").map((s) => `${s.name} ${s.inputs.name} ${s.inputs.serverType} ${s.inputs.location}`);
    expect(servers.sort()).toEqual(["fsn1-b-server mai-fsn1-b ccx23 fsn1", "nbg1-a-server mai-nbg1-a ccx33 nbg1"]);
    expect(ofType("hcloud:index/firewall:Firewall").map((f) => f.inputs.name).sort()).toEqual(["mai-fsn1-b", "mai-nbg1-a"]);
    expect(ofType("hcloud:index/primaryIp:PrimaryIp").map((ip) => ip.inputs.name).sort()).toEqual([
      "mai-fsn1-b-ipv4",
      "mai-fsn1-b-ipv6",
      "mai-nbg1-a-ipv4",
      "mai-nbg1-a-ipv6",
    ]);
    for (const server of ["nbg1-a", "fsn1-b"]) {
      expect(named(`${server}-docker`).inputs.host).toBe(`ssh://root@${ipv4Of(server)}`);
      expect(named(`${server}-ipv4`).inputs.location).toBe(server === "nbg1-a" ? "nbg1" : "fsn1");
    }
  });

  it("registers the SSH keys once (Hetzner refuses a key twice) and gives both servers the same keys", () => {
    // Without a server named host, the first by name registers them (Pulumi hands the program the
    // servers in key order, whatever the file's order).
    expect(ofType("hcloud:index/sshKey:SshKey").map((k) => k.name)).toEqual(["fsn1-b-ssh-0"]);
    expect(named("fsn1-b-server").inputs.sshKeys).toEqual(named("nbg1-a-server").inputs.sshKeys);
  });

  it("gives each server a shared network, backup tooling and a proxy, on its own engine", () => {
    for (const server of ["nbg1-a", "fsn1-b"]) {
      expect(named(`${server}-shared-network`).inputs.name).toBe("mai-network");
      expect(named(`${server}-backup-tooling-install`).type).toBe("command:remote:Command");
      expect(named(`${server}-proxy-container`).inputs.name).toBe("mai-proxy");
    }
  });

  it("renders each server's Caddyfile with only its own clients", async () => {
    const caddyfile = (server: string) => named(`${server}-proxy-caddyfile`).inputs.source.text as Promise<string>;
    const a = await caddyfile("nbg1-a");
    const b = await caddyfile("fsn1-b");
    expect(a).toContain("acme.mai.example.net {");
    expect(a).toContain("initech.mai.example.net {");
    expect(a).not.toMatch(/globex|umbrella/);
    expect(b).toContain("chat.globex.example {");
    expect(b).toContain("ki.umbrella.mai.example.net {");
    expect(b).not.toMatch(/acme|initech/);
  });

  it("points each client's DNS at its own server", () => {
    const records = ofType("cloudflare:index/dnsRecord:DnsRecord").filter((r) => r.inputs.type === "A");
    const byName = Object.fromEntries(records.map((r) => [r.inputs.name, r.inputs.content]));
    expect(ipv4Of("nbg1-a")).not.toBe(ipv4Of("fsn1-b"));
    expect(byName["acme.mai.example.net"]).toBe(ipv4Of("nbg1-a"));
    expect(byName["initech.mai.example.net"]).toBe(ipv4Of("nbg1-a"));
    expect(byName["globex.mai.example.net"]).toBe(ipv4Of("fsn1-b"));
    expect(byName["ki.umbrella.mai.example.net"]).toBe(ipv4Of("fsn1-b"));
  });

  it("runs each client's Docker resources and backup timer on its server", () => {
    expect(parentName(named("globex-container"))).toBe("globex");
    expect(named("globex-backup-timer").inputs.connection.value.host).toBe(ipv4Of("fsn1-b"));
    expect(named("acme-backup-timer").inputs.connection.value.host).toBe(ipv4Of("nbg1-a"));
  });

  it("exports every server and each client's server", async () => {
    const servers = run.outputs.servers as Record<string, { kind: string; shell: pulumi.Output<string> }>;
    expect(Object.keys(servers)).toEqual(["nbg1-a", "fsn1-b"]);
    expect(await promiseOf(servers["fsn1-b"].shell)).toBe(`ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o ServerAliveInterval=30 root@${ipv4Of("fsn1-b")}`);
    expect(run.outputs.clientEndpoints).toMatchObject({ acme: { server: "nbg1-a" }, globex: { server: "fsn1-b" } });
  });
});

describe("the server named host", () => {
  it("keeps the single-server names and the SSH keys wherever it is listed", async () => {
    vi.resetModules();
    const reordered = await runProgram({
      config: { ...FIXTURE_CONFIG, "mai-hosting:servers": JSON.stringify({ "nbg1-b": { serverType: "ccx33" }, host: { serverType: "ccx33" } }) },
      secretKeys: FIXTURE_SECRET_KEYS,
      clientsDir: clientsDir({}),
    });
    const names = reordered.resources.map((r) => r.name);
    expect(names).toEqual(expect.arrayContaining(["host-server", "mai-network", "backup-tooling", "proxy", "nbg1-b-server", "nbg1-b-proxy"]));
    expect(reordered.resources.filter((r) => r.type === "hcloud:index/sshKey:SshKey").map((r) => r.name)).toEqual(["host-ssh-0"]);
  });
});

describe("adding a client on one server", () => {
  it("changes nothing on the other server", async () => {
    vi.resetModules();
    const keys = { ...JSON.parse(FIXTURE_CONFIG["mai-hosting:openrouterApiKeys"]), hooli: "sk-or-v1-fixture-hooli-0000000000000000000000000000" };
    const after = await runProgram({
      config: { ...CONFIG, "mai-hosting:openrouterApiKeys": JSON.stringify(keys) },
      secretKeys: FIXTURE_SECRET_KEYS,
      clientsDir: clientsDir({ globex: "fsn1-b", umbrella: "fsn1-b" }, { "hooli.yaml": "name: Hooli\nport: 8010\nserver: fsn1-b\nresources:\n  reservations:\n    cpus: 0.25\n" }),
    });
    const key = (r: DeclaredResource) => `${r.type}::${r.name}`;
    const now = new Map(after.resources.map((r) => [key(r), r]));
    const changed = run.resources
      .filter((r) => JSON.stringify(r.inputs) !== JSON.stringify(now.get(key(r))?.inputs))
      .map((r) => r.name)
      .sort();
    // Only fsn1-b's Caddyfile and its reload; nbg1-a and its clients are untouched.
    expect(changed).toEqual(["fsn1-b-proxy-caddyfile", "fsn1-b-proxy-reload"]);
    const added = after.resources.filter((r) => !run.resources.some((before) => key(before) === key(r))).map((r) => r.name);
    expect(added.every((name) => name.startsWith("hooli"))).toBe(true);
  });
});

describe("refused server configurations", () => {
  async function refusal(config: Record<string, string>, dir: string) {
    vi.resetModules();
    let registered: string[] = [];
    const error = await runProgram({ config, secretKeys: FIXTURE_SECRET_KEYS, clientsDir: dir }).then(
      (result) => {
        registered = result.resources.map((r) => r.name);
        return undefined;
      },
      (caught: unknown) => caught,
    );
    return { error, registered };
  }

  it("names file, field and the known servers for an unknown server name", async () => {
    const { error, registered } = await refusal(CONFIG, clientsDir({ globex: "hel1-c" }));
    expect(pulumi.RunError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(
      /globex\.yaml:\d+: server: unknown server "hel1-c"; expected one of the stack's servers: nbg1-a, fsn1-b \(mai-hosting:servers in Pulumi\.test\.yaml\)/,
    );
    expect(registered).toEqual([]);
  });

  it("checks capacity per server and names the server that is full", async () => {
    const big = "resources:\n  cpus: 2\n  memory: 8G\n  reservations:\n    cpus: 1\n    memory: 6G\nserver: fsn1-b\n";
    const { error } = await refusal(CONFIG, clientsDir({}, { "hooli.yaml": `name: Hooli\nport: 8010\n${big}`, "pied.yaml": `name: Pied\nport: 8011\n${big}` }));
    expect(pulumi.RunError.isInstance(error)).toBe(true);
    const message = (error as Error).message;
    expect(message).toContain("mai-hosting:servers.fsn1-b.serverType: memory limits of 2 active clients total 16G, but server fsn1-b (ccx23) offers 12G (16G minus 4G host reserve)");
    expect(message).not.toContain("server nbg1-a");
  });

  it("refuses an existing host over SSH (reserved) with the fields it will take", async () => {
    const config = { ...CONFIG, "mai-hosting:servers": JSON.stringify({ ...SERVERS, "old-box": { kind: "ssh", address: "203.0.113.9" } }) };
    const { error, registered } = await refusal(config, clientsDir({}));
    expect((error as Error).message).toContain(
      'mai-hosting:servers.old-box.kind: "ssh" (an existing host reached over SSH, with address, user, port) is reserved and not supported yet',
    );
    expect(registered).toEqual([]);
  });
});
