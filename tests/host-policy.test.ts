import { describe, expect, it } from "vitest";
import { firewallRules, sshKeyName } from "../policy/hostPolicy";
import { dnsRecordsFor, externalHostnames, isInZone } from "../policy/dns";
import { clientEnvironment, clientLimits } from "../policy/clientContainer";
import { proxyAttachCommands, proxyPorts } from "../policy/proxyPolicy";
import { lifecycle } from "../policy/lifecycle";
import type { ClientSpec } from "../config/model";

const client = (over: Partial<ClientSpec> = {}): ClientSpec => ({
  slug: "acme",
  file: "clients/acme.yaml",
  name: "Acme",
  port: 8001,
  hostname: "acme.mai.example.net",
  defaultHostname: "acme.mai.example.net",
  status: "active",
  image: "ghcr.io/mai-hosting/mai:1.4.2",
  resources: { cpus: 2, memoryMb: 4096, reservedCpus: 0.25, reservedMemoryMb: 2048 },
  env: {},
  ...over,
});

describe("firewall", () => {
  it("never opens SSH wider than the admin networks", () => {
    const ssh = firewallRules(["198.51.100.7/32"]).filter((r) => r.port === "22");
    expect(ssh).toEqual([expect.objectContaining({ protocol: "tcp", sourceIps: ["198.51.100.7/32"] })]);
  });
  it("has no rule for client ports", () => {
    expect(firewallRules(["198.51.100.7/32"]).map((r) => r.port).filter(Boolean).sort()).toEqual(["22", "443", "443", "80"]);
  });
});

describe("ssh key names", () => {
  it("use the key comment, sanitised, or a numbered fallback", () => {
    expect(sshKeyName("ssh-ed25519 AAAA ops@example.net", 0)).toBe("mai-ops@example.net");
    expect(sshKeyName("ssh-ed25519 AAAA Jane Doe (laptop)", 0)).toBe("mai-jane-doe-laptop");
    expect(sshKeyName("ssh-ed25519 AAAA", 1)).toBe("mai-admin-2");
  });
});

describe("dns", () => {
  it("records the default name always and a custom name only inside the zone", () => {
    expect(dnsRecordsFor(client(), "mai.example.net").map((r) => `${r.type} ${r.name}`)).toEqual(["A acme.mai.example.net", "AAAA acme.mai.example.net"]);
    const inZone = client({ hostname: "ki.acme.mai.example.net" });
    expect(dnsRecordsFor(inZone, "mai.example.net").map((r) => r.name)).toContain("ki.acme.mai.example.net");
    const outside = client({ hostname: "chat.acme.example" });
    expect(dnsRecordsFor(outside, "mai.example.net").map((r) => r.name)).not.toContain("chat.acme.example");
    expect(externalHostnames([outside], "mai.example.net")).toEqual([{ slug: "acme", hostname: "chat.acme.example", target: "acme.mai.example.net" }]);
  });
  it("does not mistake a look-alike domain for the zone", () => {
    expect(isInZone("evilmai.example.net", "mai.example.net")).toBe(false);
    expect(isInZone("x.mai.example.net", "mai.example.net")).toBe(true);
  });
});

describe("client container", () => {
  it("turns a CPU reservation into CPU shares and pins swap to the memory limit", () => {
    expect(clientLimits(client())).toEqual({ cpus: "2.0", cpuShares: 256, memory: 4096, memorySwap: 4096, memoryReservation: 2048 });
  });
  it("lets stack-managed variables win over the file's env and keeps defaults overridable", () => {
    const env = clientEnvironment(client({ env: { ENABLE_SIGNUP: "true", ENABLE_OLLAMA_API: "true" } }), { openrouterApiKey: "k", webuiSecretKey: "s" });
    expect(env).toContain("ENABLE_SIGNUP=false");
    expect(env).toContain("ENABLE_OLLAMA_API=true");
    expect(env).toEqual([...env].sort());
  });
});

describe("proxy", () => {
  it("binds the web ports on both address families", () => {
    expect(proxyPorts().filter((p) => p.ip === "::").map((p) => `${p.external}/${p.protocol}`)).toEqual(["80/tcp", "443/tcp", "443/udp"]);
  });
  it("attaches idempotently and detaches without failing when already gone", () => {
    const cmd = proxyAttachCommands("mai-acme");
    expect(cmd.create).toMatch(/grep -q '"mai-acme"' \|\| docker network connect mai-acme mai-proxy$/);
    expect(cmd.delete).toMatch(/\|\| true$/);
  });
});

describe("lifecycle policy", () => {
  it("protects the server and IPs, retains data, replaces containers delete-first", () => {
    expect(lifecycle.server.protect).toBe(true);
    expect(lifecycle.primaryIp.protect).toBe(true);
    expect(lifecycle.dataVolume.retainOnDelete).toBe(true);
    expect(lifecycle.proxyVolume.retainOnDelete).toBe(true);
    expect(lifecycle.container.deleteBeforeReplace).toBe(true);
  });
});
