/**
 * `npm run plan` end to end, as a process: the real program under the mock runtime, against a
 * throw-away git repository holding a copy of the production stack file and example clients.
 * Covers the acceptance scenarios: plain plan, add / resize / re-env / remove a client with
 * --base, JSON shape without secrets, Markdown, artifacts, and invalid configuration.
 */
import { execFile, execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { pathToFileURL } from "url";
import { promisify } from "util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPlanRepo, type PlanRepo } from "./support/planRepo";

const root = path.join(__dirname, "..");
const run = promisify(execFile);
let fixture: PlanRepo;
let repo: string;
let stackFile: string;
let clientsDir: string;

/** Fake ciphertexts: the plan never decrypts, so any `secure:` string works. */
const CIPHERTEXTS = {
  acme: "v1:cGxhbi10ZXN0LWFjbWUta2V5LWNpcGhlcnRleHQ=",
  mueller: "v1:cGxhbi10ZXN0LW11ZWxsZXIta2V5LWNpcGhlcnRleHQ=",
  ssh: "v1:cGxhbi10ZXN0LXNzaC1rZXktY2lwaGVydGV4dA==",
};

/** Runs the plan CLI with no cloud credentials in the environment. */
function plan(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return fixture.plan(...args);
}

type Change = { op: string; type: string; name: string; fields: string[]; client?: string; retained?: boolean; rerun?: boolean; restart?: boolean };
async function changes(): Promise<Change[]> {
  const result = await plan("--base", "HEAD", "--json");
  expect(result.stderr).toBe("");
  return JSON.parse(result.stdout).changes;
}

function reset(): void {
  fixture.reset();
}

beforeAll(() => {
  fixture = createPlanRepo(
    "plan-cli-",
    `  mai-hosting:openrouterApiKeys:\n    acme:\n      secure: ${CIPHERTEXTS.acme}\n    mueller-steuerberatung:\n      secure: ${CIPHERTEXTS.mueller}\n` +
      `  mai-hosting:sshPrivateKey:\n    secure: ${CIPHERTEXTS.ssh}\n`,
  );
  ({ dir: repo, stackFile, clientsDir } = fixture);
});

afterAll(() => fixture.remove());

describe("npm run plan", () => {
  it("plans the committed local stack: no Hetzner or Cloudflare resources, one container per active client, all on server local", async () => {
    const { stdout, stderr } = await run(
      process.execPath,
      ["--import", "tsx", path.join(root, "scripts", "plan.ts"), "--stack", "local", "--clients", path.join(root, "clients"), "--json"],
      { cwd: root, maxBuffer: 32 * 1024 * 1024 },
    );
    expect(stderr).toBe("");
    const json = JSON.parse(stdout);
    const types: string[] = json.resources.map((r: { type: string }) => r.type);
    expect(types.filter((type) => /^(hcloud|cloudflare):/.test(type))).toEqual([]);
    const containers = json.resources.filter((r: { type: string }) => r.type === "docker:index/container:Container");
    const active = json.clients.filter((c: { status: string }) => c.status === "active").map((c: { slug: string }) => `mai-${c.slug}`);
    expect(containers.map((c: { inputs: { name: string } }) => c.inputs.name).sort()).toEqual([...active, "mai-proxy"].sort());
    expect(json.servers).toEqual(["local"]);
    expect(json.resources.filter((r: { server: string | null }) => r.server !== "local")).toEqual([]);
    expect(json.clients.map((c: { url: string }) => c.url)).toContain("https://mueller-steuerberatung.localhost:8443");
  });

  it("prints clients, capacity and resource counts, labelled as declared state", async () => {
    const { code, stdout, stderr } = await plan();
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(stdout).toContain("not the cloud's actual state");
    expect(stdout).toMatch(/acme\s+https:\/\/chat\.acme-industrie\.de\s+3002\s+active\s+4 \/ 2\s+8 GiB \/ 4 GiB\s+1024\n/);
    expect(stdout).toMatch(/CLIENT\s+URL\s+PORT\s+STATUS\s+CPU LIMIT \/ RESERVED\s+MEMORY LIMIT \/ RESERVED\s+PIDS\n/);
    expect(stdout).toMatch(/nordlicht-design\s+\S+\s+3003\s+suspended/);
    expect(stdout).toMatch(/^Server host: 3 client\(s\)$/m);
    expect(stdout).toMatch(/Server host \(ccx53\): 32 vCPU, 128 GiB/);
    expect(stdout).toMatch(/^  server host \(\d+\)$/m);
    expect(stdout).toMatch(/reserved: 3 vCPU \(10%\), 6 GiB \(5%\)/);
    expect(stdout).toMatch(/^\s+\d+\s+docker:index\/container:Container$/m);
  });

  it("adding a client creates only that client's resources and re-runs the proxy configuration", async () => {
    fs.writeFileSync(path.join(clientsDir, "newco.yaml"), "name: New Co\nport: 3010\n");
    try {
      const list = await changes();
      const creates = list.filter((c) => c.op === "create");
      expect(creates.length).toBeGreaterThan(3);
      expect(creates.every((c) => c.client === "newco")).toBe(true);
      expect(creates.map((c) => c.type)).toEqual(expect.arrayContaining(["docker:index/container:Container", "cloudflare:index/dnsRecord:DnsRecord", "docker:index/volume:Volume"]));
      // The engine's provider of the dynamic (OpenRouter) resources takes the project config as its
      // inputs: the new client's key in the config updates it (nothing runs on a server).
      expect(list.filter((c) => c.type === "pulumi:providers:pulumi-nodejs").map((c) => c.op)).toEqual(["update"]);
      const others = list.filter((c) => c.op !== "create" && c.type !== "pulumi:providers:pulumi-nodejs");
      expect(others.length).toBeGreaterThan(0);
      expect(others.every((c) => c.op === "update" && c.client === undefined && c.name.startsWith("proxy-") && c.type.startsWith("command:"))).toBe(true);
      expect(others.map((c) => c.name)).toContain("proxy-caddyfile");
    } finally {
      reset();
    }
  });

  it("listing today's single server under servers (the first step of adding one) changes nothing on any server", async () => {
    fs.appendFileSync(stackFile, "  mai-hosting:servers:\n    host: { serverType: ccx53, location: nbg1 }\n");
    try {
      // Only the engine's provider of the dynamic resources, whose inputs are the project config.
      expect((await changes()).map((c) => `${c.op} ${c.type}`)).toEqual(["update pulumi:providers:pulumi-nodejs"]);
    } finally {
      reset();
    }
  });

  it("a memory reservation change replaces that container (the provider's update would never apply it)", async () => {
    fs.writeFileSync(path.join(clientsDir, "acme.yaml"), fs.readFileSync(path.join(clientsDir, "acme.yaml"), "utf8").replace("    memory: 4G", "    memory: 3G"));
    try {
      const list = await changes();
      expect(list.map((c) => `${c.op} ${c.name}`).sort()).toEqual(["replace acme-container", "replace acme-pids-limit"]);
      expect(list.find((c) => c.name === "acme-container")).toMatchObject({ type: "docker:index/container:Container", client: "acme", fields: ["memoryReservation"], restart: true });
      // The new container gets its pids limit again.
      expect(list.find((c) => c.name === "acme-pids-limit")).toMatchObject({ type: "command:remote:Command", fields: ["replaceWith"] });
    } finally {
      reset();
    }
  });

  it("a memory change updates that container in place, nothing else", async () => {
    fs.writeFileSync(path.join(clientsDir, "acme.yaml"), fs.readFileSync(path.join(clientsDir, "acme.yaml"), "utf8").replace("memory: 8G", "memory: 10G"));
    try {
      const list = await changes();
      expect(list).toHaveLength(1);
      expect(list[0]).toMatchObject({ op: "update", type: "docker:index/container:Container", client: "acme" });
      expect(list[0].fields).toContain("memory");
    } finally {
      reset();
    }
  });

  it("an env change replaces (restarts) that container only, and says so", async () => {
    const file = path.join(clientsDir, "acme.yaml");
    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace('ENABLE_COMMUNITY_SHARING: "false"', 'ENABLE_COMMUNITY_SHARING: "true"'));
    try {
      const list = await changes();
      expect(list.filter((c) => c.name !== "acme-pids-limit")).toEqual([
        expect.objectContaining({ op: "replace", type: "docker:index/container:Container", client: "acme", fields: ["envs"], restart: true }),
      ]);
      expect(list.find((c) => c.name === "acme-pids-limit")).toMatchObject({ op: "replace", client: "acme", fields: ["replaceWith"] });
      const text = (await plan("--base", "HEAD")).stdout;
      expect(text).toContain("restart of acme");
      expect(text).toContain("Clients: 0 added, 0 changed, 1 restarted (acme), 0 removed.");
    } finally {
      reset();
    }
  });

  it("removing a client deletes its container, DNS records and route, and retains its data volume", async () => {
    fs.rmSync(path.join(clientsDir, "mueller-steuerberatung.yaml"));
    try {
      const list = await changes();
      const deletes = list.filter((c) => c.op === "delete");
      expect(deletes.every((c) => c.client === "mueller-steuerberatung")).toBe(true);
      expect(deletes.map((c) => c.type)).toEqual(expect.arrayContaining(["docker:index/container:Container", "cloudflare:index/dnsRecord:DnsRecord"]));
      expect(deletes.find((c) => c.type === "docker:index/volume:Volume")).toMatchObject({ retained: true });
      expect(list.find((c) => c.name === "proxy-caddyfile")).toMatchObject({ op: "update", fields: expect.arrayContaining(["source"]) });
      expect(list.filter((c) => c.op !== "delete").every((c) => c.op === "update" && c.name.startsWith("proxy-"))).toBe(true);
      const text = (await plan("--base", "HEAD")).stdout;
      expect(text).toContain("1 removed (mueller-steuerberatung). Data volumes of removed clients are retained on the host (mueller-steuerberatung-data)");
    } finally {
      reset();
    }
  });

  it("--json has the documented shape and no secret value, not even a placeholder or ciphertext", async () => {
    fs.writeFileSync(path.join(clientsDir, "newco.yaml"), "name: New Co\nport: 3010\n");
    try {
      const { code, stdout } = await plan("--json", "--base", "HEAD");
      expect(code).toBe(0);
      const json = JSON.parse(stdout);
      expect(json).toMatchObject({ stack: "prod", capacity: [expect.objectContaining({ serverName: "host", serverType: "ccx53" })], servers: ["host"] });
      expect(Object.keys(json.clients[0]).sort()).toEqual(
        ["cpus", "hostname", "memoryMb", "pidsLimit", "port", "reservedCpus", "reservedMemoryMb", "server", "slug", "status", "url"].sort(),
      );
      for (const r of json.resources) expect(Object.keys(r).sort()).toEqual(["inputs", "name", "parent", "server", "type", "urn"]);
      expect(json.resources.filter((r: { server: string | null }) => r.server !== "host")).toEqual([]);
      for (const c of json.changes) expect(c).toMatchObject({ op: expect.stringMatching(/^(create|update|replace|delete)$/), urn: expect.any(String), type: expect.any(String), name: expect.any(String), fields: expect.any(Array) });
      const container = json.resources.find((r: { type: string; name: string }) => r.type === "docker:index/container:Container" && r.name === "acme-container");
      expect(JSON.stringify(container.inputs.envs)).toContain("[secret]");
      // Computed outputs are mocked faithfully: Hetzner ids reach the server as numbers.
      const server = json.resources.find((r: { type: string }) => r.type === "hcloud:index/server:Server");
      expect(Number.isInteger(server.inputs.publicNets[0].ipv4)).toBe(true);
      expect(stdout).not.toMatch(/placeholder-/);
      for (const ciphertext of Object.values(CIPHERTEXTS)) expect(stdout).not.toContain(ciphertext.slice(3));
    } finally {
      reset();
    }
  });

  it("--markdown gives a PR comment and --out writes the Caddyfile and cloud-init", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "plan-out-"));
    try {
      const { code, stdout } = await plan("--markdown", "--base", "HEAD", "--out", out);
      expect(code).toBe(0);
      expect(stdout.startsWith("<!-- mai-hosting-plan -->\n### Plan for stack `prod`")).toBe(true);
      expect(stdout).toContain("No declared resource changes against `HEAD`.");
      expect(fs.readFileSync(path.join(out, "Caddyfile"), "utf8")).toContain("chat.acme-industrie.de");
      expect(fs.readFileSync(path.join(out, "cloud-init-host-server.yaml"), "utf8")).toMatch(/^#cloud-config/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it("fails with the same validation errors as npm run check", async () => {
    fs.writeFileSync(path.join(clientsDir, "broken.yaml"), "name: Broken\nport: 80\nprot: 1\n");
    try {
      const result = await plan();
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      // check reads Pulumi.<stack>.yaml from the working directory: run it inside the copy.
      const tsx = pathToFileURL(require.resolve("tsx")).href;
      const check = await run(process.execPath, ["--import", tsx, path.join(root, "scripts", "check.ts"), "--clients", clientsDir], { cwd: repo }).catch(
        (err: { stderr: string }) => err,
      );
      const issueLines = (text: string) => text.split("\n").filter((line) => line.includes("broken.yaml"));
      expect(issueLines(result.stderr).length).toBeGreaterThanOrEqual(2);
      expect(issueLines(result.stderr)).toEqual(issueLines(check.stderr));
      expect(result.stderr).not.toMatch(/\n\s+at /);
    } finally {
      reset();
    }
  });

  it("refuses an unknown git ref clearly", async () => {
    const result = await plan("--base", "no-such-ref");
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe('plan: --base: "no-such-ref" is not a commit in this repository (fetch it first, e.g. `git fetch origin main`)');
  });
});

describe("--base runs the program as it was at the base", () => {
  let project: string;

  beforeAll(() => {
    // A copy of this project (tracked files as they are now) in its own repository.
    project = fs.mkdtempSync(path.join(os.tmpdir(), "plan-project-"));
    const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: root, encoding: "utf8" }).split("\0").filter(Boolean);
    for (const file of files) {
      if (!fs.existsSync(path.join(root, file))) continue;
      fs.mkdirSync(path.dirname(path.join(project, file)), { recursive: true });
      fs.copyFileSync(path.join(root, file), path.join(project, file));
    }
    fs.symlinkSync(path.join(root, "node_modules"), path.join(project, "node_modules"), "dir");
    const stack = fs.readFileSync(path.join(project, "Pulumi.prod.yaml"), "utf8");
    fs.writeFileSync(
      path.join(project, "Pulumi.prod.yaml"),
      `${stack.trimEnd()}\n  mai-hosting:openrouterApiKeys:\n    acme:\n      secure: ${CIPHERTEXTS.acme}\n    mueller-steuerberatung:\n      secure: ${CIPHERTEXTS.mueller}\n`,
    );
    execFileSync("bash", ["-c", 'git init -q -b main && echo node_modules >> .git/info/exclude && git add -A && git -c user.email=p@example.invalid -c user.name=p commit -qm base'], { cwd: project });
  });

  afterAll(() => fs.rmSync(project, { recursive: true, force: true }));

  it("shows a change of the program's code (a stack-managed variable) as a restart of every active client", async () => {
    const policy = path.join(project, "policy", "clientContainer.ts");
    const source = fs.readFileSync(policy, "utf8");
    expect(source).toContain('ENV: "prod",');
    fs.writeFileSync(policy, source.replace('ENV: "prod",', 'ENV: "production",'));
    const { stdout } = await run(process.execPath, ["--import", "tsx", path.join(project, "scripts", "plan.ts"), "--base", "HEAD"], {
      cwd: project,
      maxBuffer: 32 * 1024 * 1024,
    });
    expect(stdout).toMatch(/replace\s+docker:Container acme-container \(envs\)/);
    expect(stdout).toMatch(/replace\s+docker:Container mueller-steuerberatung-container \(envs\)/);
    expect(stdout).toContain("Every active client restarts once (2 workspaces");
    expect(stdout).not.toContain("evaluated with the current program");
  });
});
