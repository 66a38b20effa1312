/**
 * The applier refuses what it cannot map, before it touches any engine: a resource type it does
 * not know, or an input of a known type that it would otherwise drop.
 */
import { describe, expect, it } from "vitest";
import { EngineApplier } from "./support/applier";
import type { DeclaredResource } from "./support/programHarness";

const declared = (type: string, name: string, inputs: Record<string, unknown>): DeclaredResource => ({
  type,
  name,
  inputs,
  options: { protect: false, deleteBeforeReplace: true, ignoreChanges: [], replaceOnChanges: [], dependsOn: [], parent: "" },
});

describe("applier", () => {
  it("throws on a resource type it does not map", async () => {
    await expect(new EngineApplier().up([declared("docker:index/service:Service", "svc", { name: "x" })])).rejects.toThrow(
      /resource type docker:index\/service:Service \(svc\) is not mapped/,
    );
  });

  it("leaves out only the types it is told to", async () => {
    const applier = new EngineApplier({ outOfScope: [/^cloudflare:/] });
    await expect(applier.up([declared("cloudflare:index/dnsRecord:DnsRecord", "dns", {})])).resolves.toMatchObject({ created: [] });
    await expect(applier.up([declared("hcloud:index/server:Server", "server", {})])).rejects.toThrow(/not mapped/);
  });

  it("throws on an input it does not map, naming it", async () => {
    const applier = new EngineApplier();
    await expect(applier.up([declared("docker:index/container:Container", "c", { name: "x", image: "y", gpus: "all" })])).rejects.toThrow(
      /docker:index\/container:Container::c declares input\(s\) the applier does not map: gpus/,
    );
    await expect(applier.up([declared("docker:index/network:Network", "n", { name: "x", ipamConfigs: [] })])).rejects.toThrow(/ipamConfigs/);
    await expect(applier.up([declared("command:local:Command", "cmd", { create: "true", assetPaths: ["x"] })])).rejects.toThrow(/assetPaths/);
  });
});
