/**
 * How the plan shows a client moving between servers: the client's Docker resources change
 * provider (another server's engine) and their `replacementTrigger` (the server), which the engine
 * carries out as replacements (a provider change alone would only repoint the state); the plan groups
 * them as one move with its steps and a downtime warning, and counts the source volume as
 * retained, not lost.
 */
import { describe, expect, it } from "vitest";
import { annotateMoves, diffDeclarations, summariseChanges } from "../plan/diff";
import { renderJson, renderMarkdown, renderText, summaryLine, type PlanReport } from "../plan/report";
import type { DeclaredResource } from "../plan/types";
import { reviewPlacements } from "../policy/move";

const stackUrn = "urn:pulumi:prod::mai-hosting::";
const noOptions = { protect: false, retainOnDelete: false, deleteBeforeReplace: false, replaceOnChanges: [], ignoreChanges: [] };
const dockerProvider = (server: string) => `${stackUrn}mai:index:Host$pulumi:providers:docker::${server}-docker`;
const ipOf: Record<string, string> = { "nbg1-a": "203.0.113.10", "nbg1-b": "203.0.113.20" };

function clientOn(slug: string, server: string, opts: { moving?: boolean } = {}): DeclaredResource[] {
  const parent = `${stackUrn}mai:index:ClientInstance::${slug}`;
  const child = (type: string, name: string, inputs: Record<string, unknown>, options = {}, provider?: string): DeclaredResource => ({
    urn: `${stackUrn}mai:index:ClientInstance$${type}::${name}`,
    type,
    name,
    parent,
    custom: true,
    inputs,
    options: { ...noOptions, ...options },
    ...(provider ? { provider } : {}),
  });
  const resources: DeclaredResource[] = [
    { urn: parent, type: "mai:index:ClientInstance", name: slug, custom: false, inputs: {}, options: noOptions },
    child("docker:index/network:Network", `${slug}-network`, { name: `mai-${slug}` }, { replacementTrigger: server }, dockerProvider(server)),
    child("docker:index/volume:Volume", `${slug}-data`, { name: `mai-${slug}-data` }, { retainOnDelete: true, replacementTrigger: server }, dockerProvider(server)),
    child("docker:index/container:Container", `${slug}-container`, { name: `mai-${slug}`, image: "mai:1" }, { deleteBeforeReplace: true, replacementTrigger: server }, dockerProvider(server)),
    child("cloudflare:index/dnsRecord:DnsRecord", `${slug}-dns-a`, { zoneId: "z", name: slug, type: "A", content: ipOf[server] }, {}, `${stackUrn}pulumi:providers:cloudflare::default`),
  ];
  if (opts.moving) {
    resources.push(
      { urn: `${parent}$mai:index:ClientMove::${slug}-move`, type: "mai:index:ClientMove", name: `${slug}-move`, parent, custom: false, inputs: {}, options: noOptions },
      child("command:local:Command", `${slug}-move-run`, { create: "#!/usr/bin/env bash ...", triggers: ["nbg1-a", server] }, {}, `${stackUrn}pulumi:providers:command::default`),
    );
  }
  return resources;
}

const base = [...clientOn("acme", "nbg1-a"), ...clientOn("beta", "nbg1-a")];
const head = [...clientOn("acme", "nbg1-b", { moving: true }), ...clientOn("beta", "nbg1-a")];
const placements = reviewPlacements(
  [{ slug: "acme", server: "nbg1-a", status: "active" }, { slug: "beta", server: "nbg1-a", status: "active" }],
  [{ slug: "acme", server: "nbg1-b", moveFrom: "nbg1-a", status: "active" }, { slug: "beta", server: "nbg1-a", status: "active" }],
);
const changes = annotateMoves(diffDeclarations(base, head), placements.moves);

describe("a client's move in the diff", () => {
  it("replaces the client's Docker resources because their server (replacement trigger) changes, and touches no other client", () => {
    const replaced = changes.filter((c) => c.op === "replace");
    expect(replaced.map((c) => c.name).sort()).toEqual(["acme-container", "acme-data", "acme-network"]);
    for (const change of replaced) expect(change).toMatchObject({ replaceFields: ["replacementTrigger"], client: "acme", move: { from: "nbg1-a", to: "nbg1-b" } });
    expect(changes.find((c) => c.name === "acme-dns-a")).toMatchObject({ op: "update", fields: ["content"] });
    expect(changes.filter((c) => c.op === "create").map((c) => c.name)).toEqual(["acme-move", "acme-move-run"]);
    expect(changes.every((c) => c.client === "acme")).toBe(true);
  });

  it("is summarised as a move: not added, removed or restarted; the source volume is retained, nothing lost", () => {
    const summary = summariseChanges(changes);
    expect(summary).toMatchObject({ added: [], removed: [], restarted: [], changed: [], moved: ["acme (nbg1-a -> nbg1-b)"], dataLost: [], retained: ["acme-data"] });
    expect(summaryLine(summary)).toBe(
      "Clients: 0 added, 0 changed, 0 restarted, 0 removed, 1 moved (acme (nbg1-a -> nbg1-b)). Data volumes of moved clients are retained on the server they leave (acme-data).",
    );
  });

  it("a renamed provider with an alias is the same provider: nothing is replaced", () => {
    const providerResource = (urn: string, aliases?: string[]): DeclaredResource => ({
      urn, type: "pulumi:providers:docker", name: urn.split("::").pop()!, custom: true, inputs: {}, options: noOptions, ...(aliases ? { aliases } : {}),
    });
    const oldProvider = `${stackUrn}mai:index:Host$pulumi:providers:docker::host-docker`;
    const renamedProvider = `${stackUrn}mai:index:Host$pulumi:providers:docker::nbg1-a-docker`;
    const withProvider = (provider: string) => clientOn("acme", "nbg1-a").map((r) => (r.provider?.includes("providers:docker") ? { ...r, provider } : r));
    const aliased = diffDeclarations(
      [providerResource(oldProvider), ...withProvider(oldProvider)],
      [providerResource(renamedProvider, [oldProvider]), ...withProvider(renamedProvider)],
    );
    expect(aliased).toEqual([]);
    // Without the alias the provider itself is new (created) and the old one deleted; the client's
    // resources are still not replaced: the engine only repoints them (their inputs are the same).
    const unaliased = diffDeclarations([providerResource(oldProvider), ...withProvider(oldProvider)], [providerResource(renamedProvider), ...withProvider(renamedProvider)]);
    expect(unaliased.map((c) => `${c.op} ${c.name}`).sort()).toEqual(["create nbg1-a-docker", "delete host-docker"]);
  });

  it("a provider change alone (same inputs, same trigger) replaces nothing, as on the real engine", () => {
    const onProvider = (server: string) => clientOn("acme", "nbg1-a").map((r) => (r.provider?.includes("providers:docker") ? { ...r, provider: dockerProvider(server) } : r));
    expect(diffDeclarations(onProvider("nbg1-a"), onProvider("nbg1-b"))).toEqual([]);
  });

  it("a data volume replaced without a move is still data loss", () => {
    const volumeOnly = (server: string) => clientOn("acme", server).filter((r) => r.type === "docker:index/volume:Volume");
    const summary = summariseChanges(diffDeclarations(volumeOnly("nbg1-a"), volumeOnly("nbg1-b")));
    expect(summary.dataLost).toEqual(["acme-data"]);
  });
});

describe("a client's move in the report", () => {
  const report: PlanReport = {
    stack: "prod",
    clients: [],
    capacity: ["nbg1-a", "nbg1-b"].map((serverName) => ({
      serverName,
      serverType: "ccx53",
      checked: true,
      server: { cpus: 32, memoryMb: 131072 },
      reserve: { cpus: 2, memoryMb: 4096 },
      allocatable: { cpus: 30, memoryMb: 126976 },
      totals: { cpuLimits: 0, memoryLimitsMb: 0, reservedCpus: 0, reservedMemoryMb: 0 },
      activeClients: 0,
      suspendedClients: 0,
      warnings: [],
    })),
    resources: head,
    changes,
    base: "origin/main",
    moves: placements.moves,
    warnings: placements.moves.map((m) => m.downtime),
  };

  it("text lists the move's steps in order and warns about the downtime", () => {
    const text = renderText(report);
    expect(text).toContain("  Moves (1)\n    acme: nbg1-a -> nbg1-b\n      1. create volume mai-acme-data on nbg1-b (empty)\n      2. stop mai-acme on nbg1-a");
    expect(text).toContain("DOWNTIME: acme is offline from the stop on nbg1-a until DNS answers with nbg1-b");
    expect(text).toContain("client acme (moves nbg1-a -> nbg1-b)");
    expect(text).toMatch(/replace docker:Container acme-container \(replacementTrigger\) — recreated on nbg1-b, removed from nbg1-a; starts on nbg1-b after the data has moved/);
    expect(text).toMatch(/replace docker:Volume acme-data \(replacementTrigger\) — .*filled by the move on nbg1-b; the one on nbg1-a is kept \(retained\)/);
    expect(text).toMatch(/create\s+command:Command acme-move-run — runs the move: stops the client on nbg1-a, streams its data to nbg1-b, verifies/);
    expect(text).not.toContain("restart of acme");
  });

  it("markdown and JSON carry the move, its steps and the warning", () => {
    const md = renderMarkdown(report);
    expect(md).toContain("**Move `acme`: nbg1-a → nbg1-b.** DOWNTIME:");
    expect(md).toContain("| +- | replace (**move** nbg1-a → nbg1-b) | `docker:Container` | `acme-container` | `replacementTrigger` | acme |");
    const json = JSON.parse(renderJson(report));
    expect(json.moves).toEqual([
      expect.objectContaining({ slug: "acme", from: "nbg1-a", to: "nbg1-b", suspended: false, steps: expect.any(Array), downtime: expect.stringContaining("DOWNTIME") }),
    ]);
    expect(json.summary.moved).toEqual(["acme (nbg1-a -> nbg1-b)"]);
    expect(json.changes.find((c: { name: string }) => c.name === "acme-container")).toMatchObject({ op: "replace", move: { from: "nbg1-a", to: "nbg1-b" } });
  });
});
