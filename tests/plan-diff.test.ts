import { describe, expect, it } from "vitest";
import { diffDeclarations, summariseChanges } from "../plan/diff";
import { forcesReplacement } from "../plan/replaceRules";
import { describeChange, renderJson, renderMarkdown, renderText, summaryLine, type PlanReport } from "../plan/report";
import type { DeclaredResource } from "../plan/types";

const stackUrn = "urn:pulumi:prod::mai-hosting::";
const noOptions = { protect: false, retainOnDelete: false, deleteBeforeReplace: false, replaceOnChanges: [], ignoreChanges: [] };

function clientResources(slug: string, over: { memory?: number; envs?: string[]; image?: string } = {}): DeclaredResource[] {
  const parent = `${stackUrn}mai:index:ClientInstance::${slug}`;
  const child = (type: string, name: string, inputs: Record<string, unknown>, options = {}): DeclaredResource => ({
    urn: `${stackUrn}mai:index:ClientInstance$${type}::${name}`,
    type,
    name,
    parent,
    custom: true,
    inputs,
    options: { ...noOptions, ...options },
  });
  return [
    { urn: parent, type: "mai:index:ClientInstance", name: slug, custom: false, inputs: {}, options: noOptions },
    child("docker:index/network:Network", `mai-${slug}`, { name: `mai-${slug}` }),
    child("docker:index/volume:Volume", `mai-${slug}-data`, { name: `mai-${slug}-data` }, { retainOnDelete: true }),
    child("docker:index/container:Container", `mai-${slug}`, {
      name: `mai-${slug}`,
      image: over.image ?? "mai:1",
      memory: over.memory ?? 2048,
      envs: over.envs ?? ["A=1"],
    }, { deleteBeforeReplace: true }),
    child("cloudflare:index/dnsRecord:DnsRecord", `${slug}-dns`, { zoneId: "z", name: slug, type: "A", content: "203.0.113.1" }),
  ];
}

function proxy(caddyfile: string): DeclaredResource {
  return {
    urn: `${stackUrn}command:remote:CopyToRemote::caddyfile`,
    type: "command:remote:CopyToRemote",
    name: "caddyfile",
    custom: true,
    inputs: { source: { asset: { text: caddyfile } }, remotePath: "/opt/mai/caddy/Caddyfile" },
    options: { ...noOptions, replaceOnChanges: ["triggers[*]"] },
  };
}

describe("replace-field tables", () => {
  it("follows the Docker container schema: env, image, ports, cpus replace; memory and restart update", () => {
    for (const field of ["envs", "image", "ports", "volumes", "networksAdvanced", "labels", "cpus", "name"]) {
      expect(forcesReplacement("docker:index/container:Container", field)).toBe(true);
    }
    for (const field of ["memory", "memoryReservation", "restart", "healthcheck", "cpuShares"]) {
      expect(forcesReplacement("docker:index/container:Container", field)).toBe(false);
    }
  });

  it("knows the other providers' forcing fields and honours replaceOnChanges", () => {
    expect(forcesReplacement("hcloud:index/server:Server", "userData")).toBe(true);
    expect(forcesReplacement("hcloud:index/server:Server", "serverType")).toBe(false);
    expect(forcesReplacement("cloudflare:index/dnsRecord:DnsRecord", "zoneId")).toBe(true);
    expect(forcesReplacement("cloudflare:index/dnsRecord:DnsRecord", "content")).toBe(false);
    expect(forcesReplacement("random:index/randomPassword:RandomPassword", "length")).toBe(true);
    expect(forcesReplacement("command:remote:Command", "create")).toBe(false);
    expect(forcesReplacement("command:remote:Command", "triggers")).toBe(true);
    expect(forcesReplacement("some:index/other:Thing", "x", ["x"])).toBe(true);
    expect(forcesReplacement("some:index/other:Thing", "x")).toBe(false);
  });
});

describe("diffDeclarations", () => {
  const base = [...clientResources("acme"), ...clientResources("beta"), proxy("acme beta")];

  it("reports nothing for identical declarations", () => {
    expect(diffDeclarations(base, structuredClone(base))).toEqual([]);
  });

  it("adding a client creates only its resources and updates the proxy config", () => {
    const head = [...clientResources("acme"), ...clientResources("beta"), ...clientResources("gamma"), proxy("acme beta gamma")];
    const changes = diffDeclarations(base, head);
    expect(changes.filter((c) => c.op === "create").every((c) => c.client === "gamma")).toBe(true);
    expect(changes.filter((c) => c.op === "create")).toHaveLength(5);
    expect(changes.filter((c) => c.op !== "create")).toEqual([
      expect.objectContaining({ op: "update", name: "caddyfile", fields: ["source"] }),
    ]);
    expect(summariseChanges(changes)).toMatchObject({ added: ["gamma"], changed: [], restarted: [], removed: [] });
  });

  it("a memory change is an in-place update of that container only", () => {
    const head = [...clientResources("acme", { memory: 4096 }), ...clientResources("beta"), proxy("acme beta")];
    const changes = diffDeclarations(base, head);
    expect(changes).toEqual([expect.objectContaining({ op: "update", name: "mai-acme", client: "acme", fields: ["memory"] })]);
    expect(summariseChanges(changes)).toMatchObject({ changed: ["acme"], restarted: [] });
  });

  it("an env change replaces (restarts) that container only", () => {
    const head = [...clientResources("acme", { envs: ["A=2"] }), ...clientResources("beta"), proxy("acme beta")];
    const changes = diffDeclarations(base, head);
    expect(changes).toEqual([
      expect.objectContaining({ op: "replace", type: "docker:index/container:Container", client: "acme", fields: ["envs"], replaceFields: ["envs"] }),
    ]);
    expect(summariseChanges(changes)).toMatchObject({ restarted: ["acme"], changed: [] });
  });

  it("replaces a resource with what it names in replaceWith, and only when that is replaced", () => {
    const containerUrn = (slug: string) => `${stackUrn}mai:index:ClientInstance$docker:index/container:Container::mai-${slug}`;
    const withLimit = (slug: string, over: { memory?: number; envs?: string[] } = {}): DeclaredResource[] => [
      ...clientResources(slug, over),
      {
        urn: `${stackUrn}mai:index:ClientInstance$command:local:Command::${slug}-pids-limit`,
        type: "command:local:Command",
        name: `${slug}-pids-limit`,
        parent: `${stackUrn}mai:index:ClientInstance::${slug}`,
        custom: true,
        inputs: { create: `docker update --pids-limit 1024 mai-${slug}` },
        options: { ...noOptions, replaceWith: [containerUrn(slug)] },
      },
    ];
    const limitBase = [...withLimit("acme"), ...withLimit("beta")];
    const restarted = diffDeclarations(limitBase, [...withLimit("acme", { envs: ["A=2"] }), ...withLimit("beta")]);
    expect(restarted.map((c) => `${c.op} ${c.name}`)).toEqual(["replace mai-acme", "replace acme-pids-limit"]);
    expect(restarted[1]).toMatchObject({ fields: ["replaceWith"], replaceFields: ["replaceWith"] });
    expect(describeChange(restarted[1])).toContain("recreated with the resource it belongs to (replaceWith)");
    // An in-place update of the container leaves the command alone.
    const updated = diffDeclarations(limitBase, [...withLimit("acme", { memory: 4096 }), ...withLimit("beta")]);
    expect(updated.map((c) => `${c.op} ${c.name}`)).toEqual(["update mai-acme"]);
  });

  it("removing a client deletes its container and DNS record and retains its data volume", () => {
    const head = [...clientResources("acme"), proxy("acme")];
    const changes = diffDeclarations(base, head);
    const deletes = changes.filter((c) => c.op === "delete");
    expect(deletes.map((c) => c.name).sort()).toEqual(["beta", "beta-dns", "mai-beta", "mai-beta", "mai-beta-data"]);
    expect(deletes.find((c) => c.name === "mai-beta-data")).toMatchObject({ retained: true, client: "beta" });
    const summary = summariseChanges(changes);
    expect(summary).toMatchObject({ removed: ["beta"], retained: ["mai-beta-data"], dataLost: [] });
    expect(summaryLine(summary)).toContain("Data volumes of removed clients are retained on the host (mai-beta-data)");
  });

  it("compares masked values by fingerprint, and ignores inputs listed in ignoreChanges", () => {
    const secretBase = clientResources("acme", { envs: ["[secret]"] as string[] });
    const secretHead = clientResources("acme", { envs: ["[secret]"] as string[] });
    const container = secretHead.find((r) => r.type === "docker:index/container:Container")!;
    const prints = (value: string) => new Map([[container.urn, { envs: value }]]);
    expect(diffDeclarations(secretBase, secretHead, { base: prints("a"), head: prints("a") })).toEqual([]);
    expect(diffDeclarations(secretBase, secretHead, { base: prints("a"), head: prints("b") })).toEqual([
      expect.objectContaining({ op: "replace", fields: ["envs"] }),
    ]);
    container.options = { ...container.options, ignoreChanges: ["envs"] };
    expect(diffDeclarations(secretBase, secretHead, { base: prints("a"), head: prints("b") })).toEqual([]);
  });

  it("flags protected resources and data volumes deleted without retainOnDelete", () => {
    const server: DeclaredResource = {
      urn: `${stackUrn}hcloud:index/server:Server::host`,
      type: "hcloud:index/server:Server",
      name: "host",
      custom: true,
      inputs: { userData: "a" },
      options: { ...noOptions, protect: true },
    };
    const changes = diffDeclarations([server], [{ ...server, inputs: { userData: "b" } }]);
    expect(changes).toEqual([expect.objectContaining({ op: "replace", protected: true })]);
    const volume = clientResources("acme")[2];
    const lost = summariseChanges(diffDeclarations([{ ...volume, options: noOptions }], []));
    expect(lost.dataLost).toEqual(["mai-acme-data"]);
    expect(summaryLine(lost)).toContain("DATA LOSS");
  });
});

describe("renderings", () => {
  const base = [...clientResources("acme"), proxy("acme")];
  const head = [...clientResources("acme", { envs: ["A=2"] }), ...clientResources("gamma"), proxy("acme gamma")];
  const report: PlanReport = {
    stack: "prod",
    clients: [
      { slug: "acme", hostname: "acme.example.com", url: "https://acme.example.com", port: 8001, status: "active", cpus: 2, memoryMb: 4096, reservedCpus: 0.5, reservedMemoryMb: 1024, pidsLimit: 1024, server: "host" },
    ],
    capacity: [{
      serverName: "host",
      serverType: "ccx53",
      checked: true,
      server: { cpus: 32, memoryMb: 131072 },
      reserve: { cpus: 2, memoryMb: 4096 },
      allocatable: { cpus: 30, memoryMb: 126976 },
      totals: { cpuLimits: 2, memoryLimitsMb: 4096, reservedCpus: 0.5, reservedMemoryMb: 1024 },
      activeClients: 1,
      suspendedClients: 0,
      warnings: [],
    }],
    resources: head,
    changes: diffDeclarations(base, head),
    base: "origin/main",
    warnings: [],
  };

  it("text shows the clients table, capacity percentages, counts, and restart call-outs", () => {
    const text = renderText(report);
    expect(text).toContain("not the cloud's actual state");
    expect(text).toMatch(/acme\s+https:\/\/acme\.example\.com\s+8001\s+active\s+2 \/ 0\.5\s+4 GiB \/ 1 GiB/);
    expect(text).toContain("reserved: 0.5 vCPU (2%), 1 GiB (1%)");
    expect(text).toMatch(/\s+2\s+docker:index\/container:Container/);
    expect(text).toContain("replace docker:Container mai-acme (envs) — restart of acme");
    expect(text).toContain("Clients: 1 added (gamma), 0 changed, 1 restarted (acme), 0 removed.");
  });

  it("groups clients, capacity and resources by server and names the server of a shared change", () => {
    const proxyChange = report.changes!.find((c) => c.client === undefined)!;
    const twoServers: PlanReport = {
      ...report,
      clients: [...report.clients, { ...report.clients[0], slug: "gamma", url: "https://gamma.example.com", port: 8002, server: "nbg1-b" }],
      capacity: [report.capacity[0], { ...report.capacity[0], serverName: "nbg1-b", serverType: "ccx33" }],
      resourceServer: Object.fromEntries(head.map((r) => [r.urn, r.name.includes("gamma") ? "nbg1-b" : "host"])),
    };
    const text = renderText(twoServers);
    expect(text).toMatch(/^Server host: 1 client\(s\)\n[\s\S]*acme[\s\S]*^Server nbg1-b: 1 client\(s\)\n[\s\S]*gamma/m);
    expect(text).toContain("Server nbg1-b (ccx33):");
    expect(text).toMatch(/^  server nbg1-b \(\d+\)$/m);
    expect(text).toContain(`${describeChange(proxyChange)} [server host]`);
  });

  it("calls out in-place updates that still interrupt service", () => {
    const server: DeclaredResource = {
      urn: `${stackUrn}hcloud:index/server:Server::host`, type: "hcloud:index/server:Server", name: "host", custom: true,
      inputs: { serverType: "ccx53" }, options: noOptions,
    };
    const [change] = diffDeclarations([server], [{ ...server, inputs: { serverType: "ccx63" } }]);
    expect(describeChange(change)).toBe("~  update  hcloud:Server host (serverType) — serverType: the server is powered off for the resize");
  });

  it("markdown starts with the update marker and lists each change", () => {
    const md = renderMarkdown(report);
    expect(md.startsWith("<!-- mai-hosting-plan -->")).toBe(true);
    expect(md).toContain("| +- | replace (**restart**) | `docker:Container` | `mai-acme` | `envs` | acme |");
  });

  it("json has the documented shape", () => {
    const json = JSON.parse(renderJson(report));
    expect(Object.keys(json)).toEqual(expect.arrayContaining(["stack", "clients", "capacity", "resources", "changes"]));
    expect(json.resources[0]).toEqual({ urn: expect.any(String), type: expect.any(String), name: expect.any(String), parent: null, server: null, inputs: expect.any(Object) });
    expect(json.servers).toEqual(["host"]);
    expect(json.changes.find((c: { name: string }) => c.name === "mai-acme")).toMatchObject({ op: "replace", fields: ["envs"], restart: true });
    const withoutBase = JSON.parse(renderJson({ ...report, changes: undefined, base: undefined }));
    expect(withoutBase.changes).toBeUndefined();
  });
});

describe("notes on what a change does beyond the cloud", () => {
  it("says a removed client's managed OpenRouter key is disabled, not deleted", () => {
    const change = { op: "delete" as const, urn: "urn:k", type: "pulumi-nodejs:dynamic/openrouter:Key", name: "acme-openrouter", fields: [], client: "acme" };
    expect(describeChange(change)).toContain("disabled at OpenRouter, not deleted");
  });

  it("warns that a restart for changed env does not reach Open WebUI's stored settings", () => {
    const change = { op: "replace" as const, urn: "urn:c", type: "docker:index/container:Container", name: "acme-container", fields: ["envs"], replaceFields: ["envs"], client: "acme" };
    const text = describeChange(change);
    expect(text).toContain("restart of acme");
    expect(text).toMatch(/keeps its stored .*OPENAI_API_KEY/);
    // A changed admin e-mail or password restarts the container and changes no account.
    expect(text).toMatch(/keeps its stored .*WEBUI_ADMIN_EMAIL, WEBUI_ADMIN_PASSWORD .*the admin account only while it has none/);
    expect(text).not.toMatch(/stored [^(]*WEBUI_SECRET_KEY/);
    const memory = { ...change, op: "update" as const, fields: ["memory"], replaceFields: undefined };
    expect(describeChange(memory)).not.toContain("keeps its stored");
  });
});

describe("what the provider would see", () => {
  const container = (inputs: Record<string, unknown>, urn = `${stackUrn}docker:index/container:Container::mai-acme`): DeclaredResource => ({
    urn,
    type: "docker:index/container:Container",
    name: "mai-acme",
    custom: true,
    inputs: { name: "mai-acme", ...inputs },
    options: noOptions,
  });

  it("compares CPU amounts and health check durations in the provider's read-back form", () => {
    const before = container({ cpus: "2", healthcheck: { tests: ["CMD"], interval: "30s", timeout: "5s", startPeriod: "120s", retries: 3 } });
    const after = container({ cpus: "2.0", healthcheck: { tests: ["CMD"], interval: "30s", timeout: "5s", startPeriod: "2m0s", retries: 3 } });
    expect(diffDeclarations([before], [after])).toEqual([]);
    const resized = container({ cpus: "1.5", healthcheck: { tests: ["CMD"], interval: "1m0s", timeout: "5s", startPeriod: "2m0s", retries: 3 } });
    expect(diffDeclarations([before], [resized]).map((c) => [c.op, c.fields])).toEqual([["replace", ["cpus", "healthcheck"]]]);
  });

  it("treats a resource under an alias of its old URN as the same resource, not a delete and a create", () => {
    const oldUrn = `${stackUrn}mai:index:Host$docker:index/container:Container::mai-acme`;
    const before = container({ cpus: "2.0" }, oldUrn);
    const moved = { ...container({ cpus: "2.0" }, `${stackUrn}mai:index:Server$docker:index/container:Container::mai-acme`), aliases: [oldUrn] };
    expect(diffDeclarations([before], [moved])).toEqual([]);
    const withoutAlias = { ...moved, aliases: undefined };
    expect(diffDeclarations([before], [withoutAlias]).map((c) => c.op).sort()).toEqual(["create", "delete"]);
  });

  it("says so when every active client restarts", () => {
    const base = [...clientResources("a"), ...clientResources("b")];
    const head = [...clientResources("a", { envs: ["A=2"] }), ...clientResources("b", { envs: ["A=2"] })];
    const summary = summariseChanges(diffDeclarations(base, head));
    expect(summaryLine(summary, ["a", "b"])).toContain("Every active client restarts once (2 workspaces");
    expect(summaryLine(summary, ["a", "b", "c"])).not.toContain("Every active client");
  });
});
