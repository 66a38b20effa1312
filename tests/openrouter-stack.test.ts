/**
 * OpenRouter keys in the whole program: the `openrouterApiBaseUrl` stack setting, and what a
 * preview of a provisioning-key rotation shows. The preview is reproduced the way the engine makes
 * it: the real program runs under the mock runtime twice (before and after the rotation, the second
 * time as a preview), and each OpenRouter resource's step is decided by the real providers' `check`
 * and `diff` against the first run's state. A resource the engine would update gets its inputs as
 * outputs, as the engine hands back for a dynamic provider (which cannot preview an update), so
 * every output the provider computes is unknown to its consumers, exactly as in `pulumi preview`.
 */
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it, vi } from "vitest";
import { createOpenRouterKeyProvider, createOpenRouterKeySettingsProvider } from "../components/openrouter/keyProvider";
import { OPENROUTER_KEY_SETTINGS_TYPE, OPENROUTER_KEY_TYPE } from "../components/openrouter/key";
import { formatIssue } from "../config/configIssues";
import { parseStackSettings } from "../config/stackSettings";
import { mockOutputs } from "../plan/mockRuntime";
import { FIXTURE_CONFIG, FIXTURE_SECRET_KEYS } from "./fixtures/stack/config";

const CLIENTS_DIR = path.join(__dirname, "fixtures", "stack", "clients");
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE_SIG = "1b47061264138c4ac30d75fd1eb44270";
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** Plain values, as a provider receives them (secrets unwrapped). */
function reveal(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reveal);
  if (value && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    if (obj[SECRET_SIG] === SECRET_VALUE_SIG) return reveal(obj.value);
    // The mock monitor's unknown; the engine gives a dynamic provider Pulumi's marker string instead.
    if (isUnknownValue(obj)) return UNKNOWN;
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, reveal(v)]));
  }
  return value;
}

/** How an unknown value reaches the mocks in a preview. */
function isUnknownValue(value: unknown): boolean {
  return value === UNKNOWN || (typeof value === "object" && value !== null && (value as { __pulumiUnknown?: unknown }).__pulumiUnknown === true);
}

/** Whether anything inside `value` is unknown. */
function containsUnknown(value: unknown): boolean {
  if (isUnknownValue(value)) return true;
  if (Array.isArray(value)) return value.some(containsUnknown);
  if (value && typeof value === "object") return Object.values(value).some(containsUnknown);
  return false;
}

type Step = "create" | "same" | "update" | "replace";
interface Recorded {
  type: string;
  name: string;
  /** Inputs as registered (secrets still wrapped, unknowns as Pulumi's marker). */
  inputs: Record<string, unknown>;
  step?: Step;
}
/** What the engine keeps of a dynamic resource between runs: checked inputs and outputs. */
type DynamicState = Map<string, { id: string; inputs: Record<string, unknown>; outputs: Record<string, unknown> }>;

/** Runs index.ts once under the mock runtime; OpenRouter resources go through the real providers' check and diff. */
async function runProgram(config: Record<string, string>, options: { preview: boolean; state: DynamicState }): Promise<Recorded[]> {
  const providers: Record<string, pulumi.dynamic.ResourceProvider> = {
    [OPENROUTER_KEY_TYPE]: createOpenRouterKeyProvider(),
    [OPENROUTER_KEY_SETTINGS_TYPE]: createOpenRouterKeySettingsProvider(),
  };
  const recorded: Recorded[] = [];
  await pulumi.runtime.setMocks(
    {
      async newResource(args) {
        const entry: Recorded = { type: args.type, name: args.name, inputs: args.inputs };
        recorded.push(entry);
        const provider = providers[args.type];
        if (provider === undefined) return mockOutputs(args.type, args.name, args.inputs);
        const news = reveal(args.inputs) as Record<string, unknown>;
        delete news.__provider;
        const prior = options.state.get(args.name);
        const checkResult = await provider.check!(prior?.inputs ?? {}, news);
        expect(checkResult.failures ?? []).toEqual([]);
        const checked = checkResult.inputs as Record<string, unknown>;
        if (prior === undefined) {
          entry.step = "create";
          // The plan's mocked outputs (hash, ...), with the key value as the plain string a provider returns.
          const made = mockOutputs(args.type, args.name, checked);
          const outputs: Record<string, unknown> = { ...made.state };
          if (args.type === OPENROUTER_KEY_TYPE) Object.assign(outputs, { key: `placeholder-key-${args.name}`, label: "sk-or-v1-abc...wxyz" });
          options.state.set(args.name, { id: made.id, inputs: checked, outputs });
          return { id: made.id, state: outputs };
        }
        const diff = await provider.diff!(prior.id, prior.outputs, checked);
        entry.step = (diff.replaces ?? []).length > 0 ? "replace" : diff.changes ? "update" : "same";
        // Same: the engine keeps the outputs. Update or replace in a preview: a dynamic provider
        // cannot preview, so the engine hands back the inputs and every computed output is unknown.
        if (entry.step === "same") return { id: prior.id, state: prior.outputs };
        return { id: prior.id, state: checked };
      },
      call(args) {
        throw new Error(`unexpected provider function call: ${args.token}`);
      },
    },
    "mai-hosting",
    "test",
    options.preview,
  );
  pulumi.runtime.setAllConfig(config, FIXTURE_SECRET_KEYS);
  process.env.MAI_CLIENTS_DIR = CLIENTS_DIR;
  vi.resetModules();
  await import("../index");
  // Let every registration reach the mocks.
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  return recorded;
}

const byName = (run: Recorded[]) => new Map(run.map((r) => [`${r.type}::${r.name}`, r]));

describe("rotating openrouterProvisioningKey", () => {
  it("previews as an in-place update of the key settings only: no key, no container changes", async () => {
    const state: DynamicState = new Map();
    const before = await runProgram(FIXTURE_CONFIG, { preview: false, state });
    const rotatedKey = "sk-or-v1-fixture-provisioning-rotated-0000000000000";
    const after = await runProgram({ ...FIXTURE_CONFIG, "mai-hosting:openrouterProvisioningKey": rotatedKey }, { preview: true, state });

    const keySteps = Object.fromEntries(after.filter((r) => r.step !== undefined).map((r) => [r.name, r.step]));
    expect(keySteps).toEqual({
      "acme-openrouter": "same",
      "acme-openrouter-settings": "update",
      "initech-openrouter": "same",
      "initech-openrouter-settings": "update",
    });

    // Every other resource is declared exactly as before: nothing unknown, nothing replaced.
    const old = byName(before);
    const moved = after
      .filter((r) => r.step === undefined)
      .filter((r) => JSON.stringify(r.inputs) !== JSON.stringify(old.get(`${r.type}::${r.name}`)?.inputs))
      .map((r) => r.name);
    expect(moved).toEqual([]);
    const acmeContainer = after.find((r) => r.name === "acme-container")!;
    expect(containsUnknown(acmeContainer.inputs)).toBe(false);
    expect(JSON.stringify(acmeContainer.inputs)).toContain("OPENAI_API_KEY=placeholder-key-acme-openrouter");
    // The settings carry the new key, as a secret.
    const settings = after.find((r) => r.name === "acme-openrouter-settings")!;
    expect(settings.inputs.provisioningKey).toEqual({ [SECRET_SIG]: SECRET_VALUE_SIG, value: rotatedKey });
    expect(JSON.stringify(before)).not.toContain(rotatedKey);
  });
});

describe("openrouterApiBaseUrl", () => {
  const base = {
    domain: "mai.example.net",
    cloudflareZoneId: "0123456789abcdef0123456789abcdef",
    sshPublicKeys: JSON.parse(FIXTURE_CONFIG["mai-hosting:sshPublicKeys"]),
    adminCidrs: ["198.51.100.0/24"],
    defaultImage: "ghcr.io/mai-hosting/mai:1.4.2",
    acmeEmail: "ops@example.net",
  };
  const parse = (openrouterApiBaseUrl?: string) =>
    parseStackSettings({ file: "Pulumi.test.yaml", values: openrouterApiBaseUrl === undefined ? base : { ...base, openrouterApiBaseUrl } });
  const issues = (value: string) => {
    const result = parse(value);
    return result.ok ? [] : result.issues.map(formatIssue);
  };

  it("points both OpenRouter resources of every managed client at the configured API", async () => {
    const standIn = "http://127.0.0.1:8123/api/v1";
    for (const [config, expected] of [
      [FIXTURE_CONFIG, "https://openrouter.ai/api/v1"],
      [{ ...FIXTURE_CONFIG, "mai-hosting:openrouterApiBaseUrl": `${standIn}/` }, standIn],
    ] as const) {
      const run = await runProgram(config, { preview: false, state: new Map() });
      const managed = run.filter((r) => r.type === OPENROUTER_KEY_TYPE || r.type === OPENROUTER_KEY_SETTINGS_TYPE);
      expect(managed).toHaveLength(4);
      for (const resource of managed) expect(resource.inputs.apiBaseUrl).toBe(expected);
      // The workspaces' chat API is another setting of another network: the containers keep OpenRouter's.
      const env = reveal(run.find((r) => r.name === "acme-container")!.inputs.envs) as string[];
      expect(env).toContain("OPENAI_API_BASE_URL=https://openrouter.ai/api/v1");
    }
  });

  it("defaults to OpenRouter's API and accepts https anywhere, http only on loopback", () => {
    const url = (value?: string) => {
      const result = parse(value);
      if (!result.ok) throw new Error(result.issues.map(formatIssue).join("\n"));
      return result.settings.openrouterApiBaseUrl;
    };
    expect(url()).toBe("https://openrouter.ai/api/v1");
    expect(url("https://openrouter.example/api/v1/")).toBe("https://openrouter.example/api/v1");
    expect(url("http://127.0.0.1:8123/api/v1")).toBe("http://127.0.0.1:8123/api/v1");
    expect(url("http://localhost:8123/api/v1")).toBe("http://localhost:8123/api/v1");
  });

  it("refuses anything else with file, setting and reason, never echoing credentials", () => {
    expect(issues("http://openrouter.example/api/v1")).toEqual([
      'Pulumi.test.yaml: mai-hosting:openrouterApiBaseUrl: expected the OpenRouter API base URL, https like "https://openrouter.ai/api/v1" (http only for a loopback host such as 127.0.0.1), got "http://openrouter.example/api/v1": plain http would send the provisioning key unencrypted to openrouter.example; use https',
    ]);
    expect(issues("openrouter.ai/api/v1")[0]).toContain("not a URL");
    expect(issues("ftp://127.0.0.1/api")[0]).toContain("the scheme must be https");
    const withPassword = issues("https://admin:hunter2@openrouter.example/api/v1");
    expect(withPassword[0]).toContain("credentials do not belong in the URL");
    expect(withPassword[0]).not.toContain("hunter2");
  });
});
