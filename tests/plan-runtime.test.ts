import { describe, expect, it } from "vitest";
import { mockOutputs, SECRET_MASK, toDeclaredValue } from "../plan/mockRuntime";
import { runtimeConfigFromStackFile, secretPlaceholder, StackFileError } from "../plan/stackConfig";
import { withPlaceholderKeys } from "../scripts/lib/planRun";

const SIG = "4dabf18193072939515e22adb298388d";

describe("stack file -> runtime config", () => {
  const text = [
    "config:",
    "  mai-hosting:domain: example.net",
    "  mai-hosting:backupRetentionDays: 30",
    "  mai-hosting:sshPublicKeys: [a, b]",
    "  mai-hosting:openrouterApiKeys:",
    "    acme:",
    "      secure: v1:AAAA",
    "  hcloud:token:",
    "    secure: v1:BBBB",
  ].join("\n");

  it("passes scalars as strings and objects as JSON, like the Pulumi CLI", () => {
    const { values } = runtimeConfigFromStackFile(text, "Pulumi.prod.yaml");
    expect(values["mai-hosting:domain"]).toBe("example.net");
    expect(values["mai-hosting:backupRetentionDays"]).toBe("30");
    expect(values["mai-hosting:sshPublicKeys"]).toBe('["a","b"]');
  });

  it("replaces every secure value by a placeholder derived from the ciphertext, and marks the key secret", () => {
    const { values, secretKeys } = runtimeConfigFromStackFile(text, "Pulumi.prod.yaml");
    expect(JSON.parse(values["mai-hosting:openrouterApiKeys"])).toEqual({ acme: secretPlaceholder("v1:AAAA") });
    expect(values["hcloud:token"]).toBe(secretPlaceholder("v1:BBBB"));
    expect(secretKeys.sort()).toEqual(["hcloud:token", "mai-hosting:openrouterApiKeys"]);
    expect(secretPlaceholder("v1:AAAA")).not.toBe(secretPlaceholder("v1:AAAB"));
    expect(JSON.stringify(values)).not.toContain("v1:");
  });

  it("rejects broken YAML with the file name", () => {
    expect(() => runtimeConfigFromStackFile("config: [", "Pulumi.x.yaml")).toThrow(StackFileError);
    expect(() => runtimeConfigFromStackFile("config: [", "Pulumi.x.yaml")).toThrow(/^Pulumi\.x\.yaml: not valid YAML/);
  });
});

describe("placeholder keys for clients without one", () => {
  it("adds only the missing slugs and keeps the key secret", () => {
    const base = { values: { "mai-hosting:openrouterApiKeys": JSON.stringify({ acme: "p" }) }, secretKeys: ["mai-hosting:openrouterApiKeys"] };
    const { config } = withPlaceholderKeys(base, ["beta"]);
    expect(JSON.parse(config.values["mai-hosting:openrouterApiKeys"])).toEqual({ acme: "p", beta: "placeholder-missing-beta" });
    expect(config.secretKeys).toEqual(["mai-hosting:openrouterApiKeys"]);
    expect(withPlaceholderKeys(base, []).config).toBe(base);
  });
});

describe("wire values -> declared inputs", () => {
  it("masks secrets, shows unknowns, assets and resource references readably", () => {
    const wire = {
      env: [{ [SIG]: "1b47061264138c4ac30d75fd1eb44270", value: "sk-or-v1-real" }],
      later: "04da6b54-80e4-46f7-96ec-b56ff0331ba9",
      file: { [SIG]: "c44067f5952c0a294b673a41bacd8c17", text: "hello" },
      ref: { [SIG]: "5cf8f73096256a8f31e491e813e4eb8e", urn: "urn:pulumi:s::p::t::n", id: "x" },
    };
    const declared = toDeclaredValue(wire);
    expect(declared).toEqual({ env: [SECRET_MASK], later: "[unknown]", file: { asset: { text: "hello" } }, ref: "urn:pulumi:s::p::t::n" });
    expect(JSON.stringify(declared)).not.toContain("sk-or");
  });

  it("mocks computed outputs deterministically from the inputs", () => {
    const a = mockOutputs("hcloud:index/server:Server", "host", { serverType: "ccx53" });
    expect(a).toEqual(mockOutputs("hcloud:index/server:Server", "host", { serverType: "ccx53" }));
    expect(a.state.ipv4Address).toMatch(/^203\.0\.113\.\d+$/);
    // The program passes Hetzner ids on as numbers.
    expect(Number.isInteger(Number(mockOutputs("hcloud:index/primaryIp:PrimaryIp", "ip4", { type: "ipv4" }).id))).toBe(true);
    const image = (name: string) => mockOutputs("docker:index/remoteImage:RemoteImage", "img", { name }).state.imageId;
    expect(image("mai:1")).not.toBe(image("mai:2"));
  });
});
