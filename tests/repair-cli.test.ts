/**
 * `npm run repair` as a command, with stand-in `pulumi` and `docker` on PATH that serve a stack
 * state and engine objects and record every call: the refusals (usage, locked stack, engine out of
 * reach, objects it cannot resolve, a state that changed meanwhile) change nothing; a dry run
 * changes nothing; a repair writes the state first (the write takes Pulumi's lock), then removes
 * half-made objects, then re-reads what it adopted; a volume is never named to docker. The same
 * command against a real engine and a real `pulumi up`: tests/repair.engine.test.ts.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { StackExport } from "../policy/repair";
import { runRepair } from "../scripts/repair";

const STACK = "urn:pulumi:test::mai-hosting::";
const providerUrn = `${STACK}mai:index:Host$pulumi:providers:docker::local-docker`;
const clientUrn = `${STACK}mai:index:ClientInstance::acme`;
const urnOf = (type: string, name: string) => `${STACK}mai:index:ClientInstance$${type}::${name}`;
const NETWORK = urnOf("docker:index/network:Network", "acme-network");
const CONTAINER = urnOf("docker:index/container:Container", "acme-container");
const VOLUME = urnOf("docker:index/volume:Volume", "acme-data");
const SECRET = urnOf("random:index/randomPassword:RandomPassword", "acme-webui-secret");
const DNS = urnOf("cloudflare:index/dnsRecord:DnsRecord", "acme-dns-a");
const ENGINE = "unix:///run/repair-test/docker.sock";

const labels = [
  { label: "mai.client", value: "acme" },
  { label: "mai.managed-by", value: "pulumi" },
];
const creating = (urn: string, type: string, inputs: Record<string, unknown>) => ({
  type: "creating",
  resource: { urn, type, custom: true, inputs, parent: clientUrn, provider: `${providerUrn}::p-1` },
});

function state(pending: StackExport["deployment"]["pending_operations"]): StackExport {
  return {
    version: 3,
    deployment: {
      manifest: { time: "2026-12-01T10:00:00Z", magic: "m", version: "v3.248.0" },
      resources: [
        { urn: providerUrn, type: "pulumi:providers:docker", custom: true, id: "p-1", inputs: { host: ENGINE }, parent: `${STACK}mai:index:Host::local` },
        { urn: clientUrn, type: "mai:index:ClientInstance" },
      ],
      pending_operations: pending,
    },
  };
}

const INTERRUPTED = [
  creating(VOLUME, "docker:index/volume:Volume", { name: "mai-acme-data", labels: labels.slice(0, 1) }),
  creating(NETWORK, "docker:index/network:Network", { name: "mai-acme", driver: "bridge", labels: labels.slice(0, 1) }),
  creating(CONTAINER, "docker:index/container:Container", { name: "mai-acme", image: "mai-local/workspace:1", labels }),
  creating(SECRET, "random:index/randomPassword:RandomPassword", { length: 48 }),
];

const PULUMI = `#!/bin/bash
echo "pulumi $*" >> "$REPAIR_TEST_LOG"
case "$1" in
  whoami) echo "{\\"user\\":\\"t\\",\\"url\\":\\"$REPAIR_TEST_BACKEND\\"}" ;;
  stack)
    if [ "$2" = export ]; then
      cat "$REPAIR_TEST_STATE"
      n=$(( $(cat "$REPAIR_TEST_STATE.count" 2>/dev/null || echo 0) + 1 )); echo $n > "$REPAIR_TEST_STATE.count"
      if [ -n "$REPAIR_TEST_CHANGE" ] && [ $n -ge 2 ]; then echo " "; fi
    elif [ "$2" = import ]; then
      while [ $# -gt 0 ]; do [ "$1" = --file ] && cp "$2" "$REPAIR_TEST_STATE.imported"; shift; done
      echo "Import complete."
    fi ;;
  refresh) echo "Resources: 1 unchanged" ;;
esac
exit 0
`;
const DOCKER = `#!/bin/bash
echo "docker $* [DOCKER_HOST=$DOCKER_HOST]" >> "$REPAIR_TEST_LOG"
case "$1" in
  version) [ -n "$REPAIR_TEST_DOCKER_DOWN" ] && { echo "Cannot connect to the Docker daemon at $DOCKER_HOST. Is the docker daemon running?" >&2; exit 1; }; echo 20.10.24 ;;
  inspect) f="$REPAIR_TEST_OBJECTS/\${@: -1}.$3.json"; [ -f "$f" ] && cat "$f" || { echo "Error: No such $3: \${@: -1}" >&2; exit 1; } ;;
esac
`;

let dir: string;
let stateFile: string;
let log: string;
const saved: Record<string, string | undefined> = {};

function setEnv(name: string, value: string | undefined) {
  if (!(name in saved)) saved[name] = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-repair-cli-"));
  fs.mkdirSync(path.join(dir, "bin"));
  fs.mkdirSync(path.join(dir, "objects"));
  fs.writeFileSync(path.join(dir, "bin", "pulumi"), PULUMI, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, "bin", "docker"), DOCKER, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, "objects", "mai-acme.network.json"), JSON.stringify([{ Id: "net-1", Driver: "bridge", Labels: { "mai.client": "acme" } }]));
  fs.writeFileSync(path.join(dir, "objects", "mai-acme.container.json"), JSON.stringify([{ Id: "ctr-1", Config: { Labels: { "mai.client": "acme", "mai.managed-by": "pulumi" } } }]));
  stateFile = path.join(dir, "state.json");
  log = path.join(dir, "calls.log");
  setEnv("PATH", `${path.join(dir, "bin")}:${process.env.PATH}`);
  setEnv("REPAIR_TEST_STATE", stateFile);
  setEnv("REPAIR_TEST_LOG", log);
  setEnv("REPAIR_TEST_OBJECTS", path.join(dir, "objects"));
  setEnv("REPAIR_TEST_BACKEND", `file://${path.join(dir, "backend")}`);
});
afterAll(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  fs.rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  for (const file of [log, `${stateFile}.imported`, `${stateFile}.count`]) fs.rmSync(file, { force: true });
  fs.rmSync(path.join(dir, "backend"), { recursive: true, force: true });
  setEnv("REPAIR_TEST_DOCKER_DOWN", undefined);
  setEnv("REPAIR_TEST_CHANGE", undefined);
  fs.writeFileSync(stateFile, JSON.stringify(state(INTERRUPTED)));
});

function repair(...argv: string[]) {
  let stdout = "";
  let stderr = "";
  const code = runRepair(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  const calls = fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [];
  return { code, stdout, stderr, calls };
}

/** Calls that change something: the state write, the refresh, a removal on an engine. */
const changes = (calls: string[]) => calls.filter((c) => /^pulumi (stack import|refresh)|^docker (rm|network rm)/.test(c));

function lock(holder: Record<string, unknown>) {
  const locks = path.join(dir, "backend", ".pulumi", "locks", "organization", "mai-hosting", "test");
  fs.mkdirSync(locks, { recursive: true });
  fs.writeFileSync(path.join(locks, "6b1c.json"), JSON.stringify(holder));
}

describe("npm run repair", () => {
  it("needs --stack and knows its flags", () => {
    expect(repair()).toMatchObject({ code: 2, stderr: expect.stringContaining("--stack <name> is required") });
    expect(repair("--stack", "test", "--frobnicate")).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown argument "--frobnicate"') });
    expect(repair("--stack", "test", "--forget", "acme-dns")).toMatchObject({ code: 2, stderr: expect.stringContaining("expects a resource URN") });
  });

  it("changes nothing and says so when nothing was interrupted", () => {
    fs.writeFileSync(stateFile, JSON.stringify(state([])));
    const r = repair("--stack", "test");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Nothing to repair; nothing was changed.");
    expect(r.calls.filter((c) => c.startsWith("docker"))).toEqual([]);
    expect(changes(r.calls)).toEqual([]);
  });

  it("refuses a locked stack before it looks at any engine: pulumi cancel for a dead deployment, wait for a live one", () => {
    lock({ pid: 2 ** 22 + 17, username: "root", hostname: os.hostname(), timestamp: "2026-12-01T10:00:00Z" });
    const dead = repair("--stack", "test");
    expect(dead.code).toBe(1);
    expect(dead.stderr).toContain("That process no longer runs on this machine: run `pulumi cancel --stack test`");
    expect(dead.calls.filter((c) => c.startsWith("docker"))).toEqual([]);
    expect(changes(dead.calls)).toEqual([]);

    lock({ pid: process.pid, username: "root", hostname: os.hostname(), timestamp: "2026-12-01T10:00:00Z" });
    const live = repair("--stack", "test");
    expect(live.code).toBe(1);
    expect(live.stderr).toContain("still running");
    expect(live.stderr).not.toContain("pulumi cancel");
    expect(changes(live.calls)).toEqual([]);
  });

  it("refuses, changing nothing, when a server's engine cannot be reached", () => {
    setEnv("REPAIR_TEST_DOCKER_DOWN", "1");
    const r = repair("--stack", "test");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`server local (${ENGINE}): Cannot connect to the Docker daemon`);
    expect(r.stderr).toContain("Nothing was changed.");
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(changes(r.calls)).toEqual([]);
  });

  it("--dry-run prints what it would do per object and changes nothing", () => {
    const r = repair("--stack", "test", "--dry-run");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("would adopt   network mai-acme (server local)");
    expect(r.stdout).toContain("would remove  container mai-acme (server local)");
    expect(r.stdout).toContain("would clear   volume acme-data: never touched");
    expect(r.stdout).toContain("Dry run: nothing was changed.");
    expect(changes(r.calls)).toEqual([]);
  });

  it("writes the state first, then removes the half-made container, then re-reads the adopted network; never names a volume", () => {
    const r = repair("--stack", "test");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("adopted       network mai-acme (server local)");
    expect(r.stdout).toContain("removed       container mai-acme (server local)");
    expect(r.stdout).toContain("cleared       secret acme-webui-secret");
    expect(r.stdout).toContain("Now run: pulumi up --stack test");
    const [write, removal, reread, ...more] = changes(r.calls);
    expect(write).toMatch(/^pulumi stack import --stack test --file \S+ --non-interactive$/);
    expect(removal).toBe(`docker rm -f ctr-1 [DOCKER_HOST=${ENGINE}]`);
    expect(reread).toBe(`pulumi refresh --yes --skip-preview --color never --stack test --target ${NETWORK} --non-interactive`);
    expect(more).toEqual([]);
    expect(r.calls.filter((c) => c.startsWith("docker")).join("\n")).not.toMatch(/volume|acme-data/);

    const imported = JSON.parse(fs.readFileSync(`${stateFile}.imported`, "utf8")) as StackExport;
    expect(imported.deployment.pending_operations).toEqual([]);
    expect(imported.deployment.resources!.map((res) => [res.urn, res.id])).toEqual([
      [providerUrn, "p-1"],
      [clientUrn, undefined],
      [NETWORK, "net-1"],
    ]);
    expect(imported.deployment.manifest).toEqual(state([]).deployment.manifest);
  });

  it("changes nothing while an interrupted create it cannot check is pending, until it is forgotten by URN", () => {
    fs.writeFileSync(stateFile, JSON.stringify(state([...INTERRUPTED, creating(DNS, "cloudflare:index/dnsRecord:DnsRecord", { name: "acme" })])));
    const blocked = repair("--stack", "test");
    expect(blocked.code).toBe(1);
    expect(blocked.stdout).toContain(`left alone    cloudflare:index/dnsRecord:DnsRecord acme-dns-a: repair cannot see this provider's objects`);
    expect(blocked.stderr).toContain("Nothing was changed.");
    expect(changes(blocked.calls)).toEqual([]);

    const forgotten = repair("--stack", "test", "--forget", DNS);
    expect(forgotten.code).toBe(0);
    expect(forgotten.stdout).toContain("cleared as you asked (--forget)");
  });

  it("refuses when the state changed while it was looking", () => {
    setEnv("REPAIR_TEST_CHANGE", "1");
    const r = repair("--stack", "test");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("changed while repair was looking");
    expect(changes(r.calls)).toEqual([]);
  });
});
