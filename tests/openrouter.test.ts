/**
 * OpenRouter key provisioning: the retry policy, the API client and both dynamic providers,
 * all against a loopback stand-in that speaks the documented API over real HTTP.
 */
import * as pulumi from "@pulumi/pulumi";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  DEFAULT_RETRY_POLICY,
  backoffDelayMs,
  createOpenRouterClient,
  isOpenRouterApiError,
  isRetryableStatus,
  openRouterKeyName,
  parseOpenRouterKeyName,
  parseRetryAfterMs,
  planRetry,
  redactSecrets,
  type OpenRouterApiError,
  type RetryPolicy,
} from "../components/openrouter/api";
import {
  createOpenRouterKeyProvider,
  createOpenRouterKeySettingsProvider,
  openRouterKeyProvider,
  type OpenRouterKeyOutputs,
  type OpenRouterKeySettingsOutputs,
} from "../components/openrouter/keyProvider";
import { OPENROUTER_KEY_SETTINGS_TYPE, OPENROUTER_KEY_TYPE } from "../components/openrouter/key";
import { diffDeclarations } from "../plan/diff";
import { providerCompares } from "../plan/replaceRules";
import type { DeclaredResource as PlanResource } from "../plan/types";
import { startOpenRouterStandIn, type OpenRouterStandIn } from "./support/openrouterStandIn";

const FAST: Partial<RetryPolicy> = { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5, timeoutMs: 2_000 };

let standIn: OpenRouterStandIn;
beforeAll(async () => {
  standIn = await startOpenRouterStandIn({ pageSize: 2 });
});
afterAll(async () => {
  await standIn.close();
});
afterEach(() => {
  standIn.faults.length = 0;
  standIn.requests.length = 0;
  standIn.keys.clear();
  standIn.resetProvisioningKeys();
});

/** Every secret the stand-in knows: the provisioning keys and all key values ever created. */
function knownSecrets(): string[] {
  return [...standIn.issuedProvisioningKeys, standIn.inferenceOnlyKey, ...[...standIn.keys.values()].map((k) => k.key)];
}

function expectNoSecret(text: string, extra: string[] = []): void {
  for (const secret of [...knownSecrets(), ...extra]) expect(text).not.toContain(secret);
  expect(text).not.toMatch(/sk-or-v1-[0-9a-f]{16}/);
}

async function failure(promise: Promise<unknown>): Promise<OpenRouterApiError> {
  try {
    await promise;
  } catch (error) {
    expect(isOpenRouterApiError(error)).toBe(true);
    const apiError = error as OpenRouterApiError;
    expectNoSecret(apiError.message);
    expectNoSecret(String(apiError.stack));
    return apiError;
  }
  throw new Error("expected a failure");
}

function client(options: { key?: string; retry?: Partial<RetryPolicy>; delays?: number[] } = {}) {
  return createOpenRouterClient({
    provisioningKey: options.key ?? standIn.provisioningKey,
    apiBaseUrl: standIn.baseUrl,
    retry: options.retry ?? FAST,
    random: () => 0.5,
    sleep: async (ms) => {
      options.delays?.push(ms);
    },
  });
}

describe("retry policy", () => {
  const policy = DEFAULT_RETRY_POLICY;
  const ctx = { idempotent: true, nowMs: 0, random: () => 0 };

  it("retries rate limits and server failures, not client errors", () => {
    expect([408, 429, 500, 502, 503, 504].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 409, 501].some(isRetryableStatus)).toBe(false);
  });

  it("backs off exponentially with jitter, capped", () => {
    expect([1, 2, 3].map((n) => backoffDelayMs(n, policy, () => 0))).toEqual([250, 500, 1000]);
    expect([1, 2, 3].map((n) => backoffDelayMs(n, policy, () => 1))).toEqual([500, 1000, 2000]);
    expect(backoffDelayMs(10, policy, () => 1)).toBe(policy.maxDelayMs);
  });

  it("reads Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfterMs("3", 0)).toBe(3000);
    expect(parseRetryAfterMs(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(parseRetryAfterMs("soon", 0)).toBeUndefined();
    expect(parseRetryAfterMs(null, 0)).toBeUndefined();
  });

  it("waits at least Retry-After, and gives up when it is longer than allowed", () => {
    expect(planRetry(1, { kind: "status", status: 429, retryAfter: "7" }, policy, ctx)).toEqual({ retry: true, delayMs: 7000 });
    expect(planRetry(1, { kind: "status", status: 429, retryAfter: "3600" }, policy, ctx)).toEqual({
      retry: false,
      retryAfterTooLongMs: 3_600_000,
    });
  });

  it("stops after the last attempt", () => {
    expect(planRetry(policy.maxAttempts, { kind: "status", status: 503 }, policy, ctx)).toEqual({ retry: false });
    expect(planRetry(policy.maxAttempts - 1, { kind: "timeout" }, policy, ctx).retry).toBe(true);
  });

  it("does not repeat a create that may have happened", () => {
    const create = { ...ctx, idempotent: false };
    expect(planRetry(1, { kind: "status", status: 502 }, policy, create).retry).toBe(false);
    expect(planRetry(1, { kind: "timeout" }, policy, create).retry).toBe(false);
    expect(planRetry(1, { kind: "network", connected: true }, policy, create).retry).toBe(false);
    expect(planRetry(1, { kind: "status", status: 429 }, policy, create).retry).toBe(true);
    expect(planRetry(1, { kind: "network", connected: false }, policy, create).retry).toBe(true);
  });

  it("redacts key-shaped strings and given secrets", () => {
    expect(redactSecrets("bad key sk-or-v1-abcdef123456 and hunter2-secret", ["hunter2-secret"])).toBe(
      "bad key [redacted] and [redacted]",
    );
  });

  it("keeps the masked display form of a key (the dashboard's label), and only that", () => {
    expect(redactSecrets("key sk-or-v1-6c9...0bf6 is disabled", [])).toBe("key sk-or-v1-6c9...0bf6 is disabled");
    expect(redactSecrets("key sk-or-v1-6c9…0bf6", [])).toBe("key sk-or-v1-6c9…0bf6");
    const full = `sk-or-v1-${"ab12".repeat(16)}`;
    // A whole key stays secret whatever follows it, an ellipsis or the end of a sentence.
    expect(redactSecrets(`invalid key ${full}...`, [])).toBe("invalid key [redacted]...");
    expect(redactSecrets(`invalid key ${full}.`, [])).toBe("invalid key [redacted].");
    expect(redactSecrets("short sk-or-v1-abc.", [])).toBe("short [redacted].");
  });
});

describe("key naming convention", () => {
  it("round-trips stack and slug", () => {
    expect(openRouterKeyName("acme", "prod")).toBe("mai-hosting/prod/acme");
    expect(parseOpenRouterKeyName("mai-hosting/prod/acme")).toEqual({ stack: "prod", slug: "acme" });
    expect(parseOpenRouterKeyName("mai-hosting/staging-2/big-co")).toEqual({ stack: "staging-2", slug: "big-co" });
  });

  it("ignores names that do not follow it", () => {
    for (const name of ["acme", "mai-acme", "mai-hosting/prod", "mai-hosting/prod/Acme", "mai-hosting/prod/acme/x", "other/prod/acme"]) {
      expect(parseOpenRouterKeyName(name)).toBeUndefined();
    }
  });
});

describe("API client against the stand-in", () => {
  it("creates, reads, updates, lists (across pages) and deletes keys", async () => {
    const api = client();
    const created = await api.createKey({ name: "mai-hosting/test/acme", limitUsd: 25, limitReset: "monthly" });
    expect(created.key).toMatch(/^sk-or-v1-/);
    expect(created.info).toMatchObject({ name: "mai-hosting/test/acme", limitUsd: 25, limitReset: "monthly", disabled: false });
    expect(standIn.requests[0]).toMatchObject({
      method: "POST",
      path: "/api/v1/keys",
      body: { name: "mai-hosting/test/acme", limit: 25, limit_reset: "monthly" },
      authorized: true,
    });

    const updated = await api.updateKey(created.info.hash, { limitUsd: 40, limitReset: "none" });
    expect(updated).toMatchObject({ limitUsd: 40, limitReset: "none" });
    expect(standIn.keys.get(created.info.hash)?.limit_reset).toBeNull();

    standIn.seed({ name: "other", disabled: true });
    standIn.seed({ name: "third", usage: 12.5, usage_monthly: 2.25 });
    const all = await api.listKeys();
    expect(all.map((k) => k.name).sort()).toEqual(["mai-hosting/test/acme", "other", "third"]);
    expect(all.find((k) => k.name === "third")).toMatchObject({ usageUsd: 12.5, usageMonthlyUsd: 2.25 });
    expect(standIn.requests.filter((r) => r.method === "GET").map((r) => r.path)).toEqual([
      "/api/v1/keys?include_disabled=true&offset=0",
      "/api/v1/keys?include_disabled=true&offset=2",
      "/api/v1/keys?include_disabled=true&offset=3",
    ]);

    await api.deleteKey(created.info.hash);
    expect(standIn.keys.has(created.info.hash)).toBe(false);
    expect((await failure(api.getKey(created.info.hash))).kind).toBe("not-found");
  });

  it("401: a wrong provisioning key, never echoed back", async () => {
    const wrong = "sk-or-v1-this-is-the-wrong-provisioning-key";
    const error = await failure(client({ key: wrong }).listKeys());
    expect(error).toMatchObject({ kind: "unauthorized", status: 401, attempts: 1 });
    expect(error.message).toContain("rejected the provisioning key (HTTP 401)");
    expect(error.message).not.toContain(wrong);
    expect(standIn.requests).toHaveLength(1);
  });

  it("403: an ordinary key instead of a provisioning key", async () => {
    const error = await failure(client({ key: standIn.inferenceOnlyKey }).createKey({ name: "x", limitUsd: 1, limitReset: "monthly" }));
    expect(error).toMatchObject({ kind: "forbidden", status: 403 });
    expect(error.message).toContain("not a provisioning key");
  });

  it("429 with Retry-After: waits as told, then succeeds", async () => {
    const delays: number[] = [];
    standIn.fail({ method: "GET", times: 2, status: 429, retryAfter: "2" });
    expect(await client({ delays }).listKeys()).toEqual([]);
    expect(delays).toEqual([2000, 2000]);
    expect(standIn.requests).toHaveLength(3);
  });

  it("429 asking for a longer wait than allowed: stops at once with a clear message", async () => {
    standIn.fail({ times: 1, status: 429, retryAfter: "3600" });
    const error = await failure(client().listKeys());
    expect(error).toMatchObject({ kind: "rate-limited", attempts: 1 });
    expect(error.message).toContain("asked to wait 3600s");
  });

  it("5xx then success", async () => {
    const delays: number[] = [];
    standIn.fail({ method: "PATCH", times: 2, status: 502 });
    const seeded = standIn.seed({ name: "k" });
    const info = await client({ delays, retry: { ...FAST, baseDelayMs: 100, maxDelayMs: 1000 } }).updateKey(seeded.hash, { disabled: true });
    expect(info.disabled).toBe(true);
    expect(delays).toEqual([75, 150]); // 100 ms then 200 ms backoff, equal jitter at 0.5
  });

  it("5xx forever: bounded attempts and the status in the message", async () => {
    standIn.fail({ times: 100, status: 503, body: { error: { code: 503, message: `upstream down, token ${standIn.provisioningKey}` } } });
    const error = await failure(client().getKey("abc"));
    expect(error).toMatchObject({ kind: "server", status: 503, attempts: 3 });
    expect(error.message).toContain("HTTP 503 (3 attempts)");
    expect(error.message).toContain("upstream down");
    expect(standIn.requests).toHaveLength(3);
  });

  it("a create failing with 5xx is not repeated, and says a key may exist", async () => {
    standIn.fail({ method: "POST", times: 5, status: 500 });
    const error = await failure(client().createKey({ name: "x", limitUsd: 5, limitReset: "monthly" }));
    expect(error.attempts).toBe(1);
    expect(error.message).toContain("may or may not have been created");
    expect(standIn.requests).toHaveLength(1);
  });

  it("a create that is rate-limited is retried", async () => {
    standIn.fail({ method: "POST", times: 1, status: 429, retryAfter: "1" });
    const created = await client().createKey({ name: "x", limitUsd: 5, limitReset: "monthly" });
    expect(standIn.keys.get(created.info.hash)?.name).toBe("x");
  });

  it("timeouts: each attempt is aborted, attempts are bounded", async () => {
    standIn.fail({ method: "GET", times: 2, hang: true });
    const started = Date.now();
    const error = await failure(client({ retry: { ...FAST, maxAttempts: 2, timeoutMs: 150 } }).listKeys());
    expect(error).toMatchObject({ kind: "timeout", attempts: 2 });
    expect(error.message).toContain("within 0.15s");
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("timeout then success", async () => {
    standIn.fail({ method: "GET", times: 1, hang: true });
    expect(await client({ retry: { ...FAST, timeoutMs: 150 } }).listKeys()).toEqual([]);
  });

  it("an unreachable API names the URL, not the key", async () => {
    const api = createOpenRouterClient({
      provisioningKey: standIn.provisioningKey,
      apiBaseUrl: "http://127.0.0.1:9/api/v1",
      retry: { ...FAST, maxAttempts: 2 },
    });
    const error = await failure(api.listKeys());
    expect(error).toMatchObject({ kind: "network", attempts: 2 });
    expect(error.message).toContain("http://127.0.0.1:9/api/v1");
  });
});

describe("key provider", () => {
  const keyProvider = createOpenRouterKeyProvider(FAST);
  const settingsProvider = createOpenRouterKeySettingsProvider(FAST);

  async function createKey(name = "mai-hosting/test/acme", limitUsd: number | undefined = 25) {
    const checked = await keyProvider.check!({}, { name, limitUsd, provisioningKey: standIn.provisioningKey, apiBaseUrl: standIn.baseUrl });
    expect(checked.failures).toEqual([]);
    const created = await keyProvider.create(checked.inputs);
    return { id: created.id, outs: created.outs as OpenRouterKeyOutputs, inputs: checked.inputs };
  }

  async function createSettings(hash: string, limitUsd: number, disabled = false) {
    const checked = await settingsProvider.check!(
      {},
      { hash, name: "mai-hosting/test/acme", limitUsd, disabled, provisioningKey: standIn.provisioningKey, apiBaseUrl: standIn.baseUrl },
    );
    expect(checked.failures).toEqual([]);
    const created = await settingsProvider.create(checked.inputs);
    return { id: created.id, outs: created.outs as OpenRouterKeySettingsOutputs, inputs: checked.inputs };
  }

  it("check applies defaults and reports every bad input at once, without the key", async () => {
    const ok = await keyProvider.check!({}, { name: "n", provisioningKey: "p" });
    expect(ok.inputs).toMatchObject({ limitUsd: null, limitReset: "monthly", apiBaseUrl: "https://openrouter.ai/api/v1" });
    const bad = await keyProvider.check!({}, { name: "", limitUsd: -5, limitReset: "yearly", provisioningKey: "", apiBaseUrl: "ftp://x" });
    expect(bad.failures!.map((f) => f.property).sort()).toEqual(["apiBaseUrl", "limitReset", "limitUsd", "name", "provisioningKey"]);
    const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
    expect((await keyProvider.check!({}, { name: unknown, provisioningKey: unknown })).failures).toEqual([]);
    // Plain http only to the machine itself: the provisioning key never crosses a network unencrypted.
    const base = async (apiBaseUrl: string) => (await keyProvider.check!({}, { name: "n", provisioningKey: "p", apiBaseUrl })).failures;
    expect(await base("http://127.0.0.1:8123/api/v1")).toEqual([]);
    expect(await base("http://[::1]:8123/api/v1")).toEqual([]);
    expect(await base("https://openrouter.example/api/v1")).toEqual([]);
    expect((await base("http://openrouter.example/api/v1"))![0].reason).toContain("unencrypted");
  });

  it("create: a key named as asked, with its limit, value only in the (secret) outputs", async () => {
    const { id, outs } = await createKey();
    const stored = standIn.keys.get(id)!;
    expect(outs).toMatchObject({ hash: id, name: "mai-hosting/test/acme", limitUsd: 25, limitReset: "monthly" });
    expect(outs.key).toBe(stored.key);
    expect(stored).toMatchObject({ limit: 25, limit_reset: "monthly", disabled: false });
  });

  it("diff: a limit change is not the key's business; renames update in place; only a lost value replaces", async () => {
    const { id, outs, inputs } = await createKey();
    const same = await keyProvider.diff!(id, outs, inputs);
    expect(same).toMatchObject({ changes: false, replaces: [] });
    expect(await keyProvider.diff!(id, outs, { ...inputs, limitUsd: 99, limitReset: "weekly" })).toMatchObject({ changes: false, replaces: [] });
    expect(await keyProvider.diff!(id, outs, { ...inputs, name: "mai-hosting/test/renamed" })).toMatchObject({ changes: true, replaces: [] });
    expect(await keyProvider.diff!(id, { ...outs, key: "" }, inputs)).toMatchObject({ changes: true, replaces: ["key"] });
  });

  it("a provisioning-key rotation is no change of the key, and an in-place update of its settings", async () => {
    const { id, outs, inputs } = await createKey();
    const settings = await createSettings(id, 25);
    const rotated = standIn.issueProvisioningKey();
    const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

    // The key resource: no diff at all, so the engine keeps its outputs (hash, key) as they are
    // and nothing that consumes them moves. Also when the new key is still unknown in a preview.
    for (const provisioningKey of [rotated, unknown]) {
      const news = (await keyProvider.check!(outs, { ...inputs, provisioningKey })).inputs;
      expect(await keyProvider.diff!(id, outs, news)).toMatchObject({ changes: false, replaces: [] });
    }
    // Pointing the stack at another API base URL is a change of credentials too.
    expect(await keyProvider.diff!(id, outs, { ...inputs, apiBaseUrl: "https://openrouter.example/api/v1" })).toMatchObject({ changes: false });

    // The settings: an in-place update that proves the new key and keeps it.
    const news = (await settingsProvider.check!(settings.outs, { ...settings.inputs, provisioningKey: rotated })).inputs as typeof settings.inputs;
    expect(await settingsProvider.diff!(id, settings.outs, news)).toMatchObject({ changes: true, replaces: [] });
    standIn.revokeProvisioningKey(standIn.provisioningKey);
    const updated = await settingsProvider.update!(id, settings.outs, news);
    expect(updated.outs).toMatchObject({ hash: id, provisioningKey: rotated, limitUsd: 25 });
    expect(standIn.requests.at(-1)).toMatchObject({ method: "PATCH", authorized: true });
    expect(standIn.keys.size).toBe(1);
  });

  it("the plan compares exactly the key inputs the provider compares", async () => {
    const { id, outs, inputs } = await createKey();
    const variants: Record<string, unknown> = {
      name: "mai-hosting/test/renamed",
      limitUsd: 99,
      limitReset: "weekly",
      provisioningKey: standIn.issueProvisioningKey(),
      apiBaseUrl: "https://openrouter.example/api/v1",
    };
    for (const [field, value] of Object.entries(variants)) {
      const diff = await keyProvider.diff!(id, outs, { ...inputs, [field]: value });
      expect({ field, compared: diff.changes }).toEqual({ field, compared: providerCompares(OPENROUTER_KEY_TYPE, field) });
    }
    // And so the plan shows a rotation as an update of the settings only. Secrets are masked in
    // declared inputs; the plan tells them apart by per-input fingerprints.
    const declared = (type: string, name: string): PlanResource => ({
      urn: `urn:pulumi:test::mai-hosting::${type}::${name}`,
      type,
      name,
      custom: true,
      inputs: { name: "k", provisioningKey: "[secret]", limitUsd: 25 },
      options: { protect: false, retainOnDelete: false, deleteBeforeReplace: false, replaceOnChanges: [], ignoreChanges: [] },
    });
    const run = () => [declared(OPENROUTER_KEY_TYPE, "acme-openrouter"), declared(OPENROUTER_KEY_SETTINGS_TYPE, "acme-openrouter-settings")];
    const [before, after] = [run(), run()];
    const fingerprints = (resources: PlanResource[], provisioningKey: string) => new Map(resources.map((r) => [r.urn, { provisioningKey }]));
    const changes = diffDeclarations(before, after, { base: fingerprints(before, "digest-old"), head: fingerprints(after, "digest-rotated") });
    expect(changes.map((c) => [c.name, c.op, c.fields])).toEqual([["acme-openrouter-settings", "update", ["provisioningKey"]]]);
  });

  it("settings: an unknown hash in a preview is not read as another key", async () => {
    const { id } = await createKey();
    const settings = await createSettings(id, 25);
    const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
    expect(await settingsProvider.diff!(id, settings.outs, { ...settings.inputs, hash: unknown })).toMatchObject({ changes: true, replaces: [] });
    expect(await settingsProvider.diff!(id, settings.outs, { ...settings.inputs, hash: "another-key" })).toMatchObject({ replaces: ["hash"] });
  });

  it("update with a wrong provisioning key fails, naming the setting, and stores nothing", async () => {
    const { id, outs, inputs } = await createKey();
    const wrong = "sk-or-v1-wrong-rotated-provisioning-key-0000";
    for (const news of [{ ...inputs, provisioningKey: wrong }, { ...inputs, provisioningKey: wrong, name: "mai-hosting/test/renamed" }]) {
      const error = await failure(keyProvider.update!(id, outs, news));
      expect(error.kind).toBe("unauthorized");
      expect(error.message).toContain("openrouterProvisioningKey");
      expectNoSecret(error.message, [wrong]);
      expectNoSecret(String(error.stack), [wrong]);
    }
    expect(standIn.keys.get(id)?.name).toBe("mai-hosting/test/acme");

    const settings = await createSettings(id, 25);
    const error = await failure(settingsProvider.update!(id, settings.outs, { ...settings.inputs, provisioningKey: wrong, limitUsd: 5 }));
    expect(error.message).toContain("openrouterProvisioningKey");
    expectNoSecret(error.message, [wrong]);
    expect(standIn.keys.get(id)?.limit).toBe(25);
  });

  it("limitUsd of the key resource is the limit in force at OpenRouter, not the stack's input", async () => {
    const { id, outs, inputs } = await createKey("mai-hosting/test/acme", 25);
    expect(outs.limitUsd).toBe(25);
    // The settings move the limit to 40; the stack's input now says 99 (a pending settings update).
    await createSettings(id, 40);
    const renamed = await keyProvider.update!(id, outs, { ...inputs, limitUsd: 99, name: "mai-hosting/test/renamed" });
    expect(renamed.outs).toMatchObject({ limitUsd: 40, limitReset: "monthly", key: outs.key, hash: id });
  });

  it("label reads like the dashboard: the masked key, not a redaction marker", async () => {
    const { id, outs } = await createKey();
    const stored = standIn.keys.get(id)!;
    expect(outs.label).toBe(`${stored.key.slice(0, 12)}...${stored.key.slice(-4)}`);
    expect(outs.label).toMatch(/^sk-or-v1-[0-9a-f]{3}\.\.\.[0-9a-f]{4}$/);
    expect((await keyProvider.read!(id, outs)).props).toMatchObject({ label: outs.label });
  });

  it("refresh and delete use the stack's current provisioning key once the stored one is revoked", async () => {
    const { id, outs } = await createKey();
    const settings = await createSettings(id, 25);
    const rotated = standIn.issueProvisioningKey();
    standIn.revokeProvisioningKey(standIn.provisioningKey);
    // Without the stack's configuration only the stored (revoked) key is at hand.
    expect((await failure(createOpenRouterKeyProvider(FAST).read!(id, outs))).kind).toBe("unauthorized");

    const config = (values: Record<string, string>) => ({ config: { get: (key: string) => values[key] } });
    const keys = createOpenRouterKeyProvider(FAST);
    const settingsOnly = createOpenRouterKeySettingsProvider(FAST);
    const current = config({ "mai-hosting:openrouterProvisioningKey": rotated, "mai-hosting:openrouterApiBaseUrl": standIn.baseUrl });
    await keys.configure!(current as any);
    await settingsOnly.configure!(current as any);
    expect((await keys.read!(id, outs)).props).toMatchObject({ hash: id, key: outs.key });
    // A host that has no configuration to give leaves the stored credentials in use.
    const unconfigured = createOpenRouterKeyProvider(FAST);
    await unconfigured.configure!({ config: { get: () => { throw new TypeError("no configuration"); } } } as any);
    expect((await failure(unconfigured.read!(id, outs))).kind).toBe("unauthorized");
    expect((await settingsOnly.read!(id, settings.outs)).props).toMatchObject({ limitUsd: 25 });
    await keys.delete!(id, outs);
    expect(standIn.keys.get(id)?.disabled).toBe(true);
  });

  it("update renames the same key and keeps its value", async () => {
    const { id, outs, inputs } = await createKey();
    const result = await keyProvider.update!(id, outs, { ...inputs, name: "mai-hosting/test/renamed" });
    expect(standIn.requests.at(-1)).toMatchObject({ method: "PATCH", body: { name: "mai-hosting/test/renamed" } });
    expect(result.outs).toMatchObject({ hash: id, key: outs.key, name: "mai-hosting/test/renamed" });
    expect(standIn.keys.get(id)?.name).toBe("mai-hosting/test/renamed");
    expect(standIn.keys.size).toBe(1);
  });

  it("delete disables the key and keeps it (usage history); an already deleted key is fine", async () => {
    const { id, outs } = await createKey();
    await keyProvider.delete!(id, outs);
    expect(standIn.keys.get(id)?.disabled).toBe(true);
    standIn.keys.delete(id);
    await keyProvider.delete!(id, outs);
  });

  it("read refreshes the name and reports a key deleted outside the stack", async () => {
    const { id, outs } = await createKey();
    standIn.keys.get(id)!.name = "renamed-in-dashboard";
    const read = await keyProvider.read!(id, outs);
    expect(read).toMatchObject({ id, props: { name: "renamed-in-dashboard", key: outs.key } });

    standIn.keys.delete(id);
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const gone = await keyProvider.read!(id, outs);
    expect(gone.id).toBe("");
    expect(warn.mock.calls[0][0]).toContain("deleted outside this stack");
    expectNoSecret(String(warn.mock.calls[0][0]));
    warn.mockRestore();
  });

  it("update of a key deleted outside the stack fails with what to do", async () => {
    const { id, outs, inputs } = await createKey();
    standIn.keys.delete(id);
    const error = await failure(keyProvider.update!(id, outs, { ...inputs, name: "mai-hosting/test/new" }));
    expect(error.message).toContain("deleted outside this stack");
    expect(error.message).toContain("pulumi refresh");
  });

  it("a bad provisioning key fails create with a hint at the stack secret", async () => {
    const checked = await keyProvider.check!({}, { name: "n", provisioningKey: "sk-or-v1-wrong-wrong-wrong", apiBaseUrl: standIn.baseUrl });
    const error = await failure(keyProvider.create(checked.inputs));
    expect(error.message).toContain("openrouterProvisioningKey");
    expectNoSecret(error.message, ["sk-or-v1-wrong-wrong-wrong"]);
  });

  it("a failed refresh prints its message once where Pulumi's dynamic-provider host logs it", async () => {
    const { id, outs } = await createKey();
    standIn.revokeProvisioningKey(standIn.provisioningKey);
    const error = await failure(keyProvider.read!(id, outs));
    // The host logs a failed read, check, diff or delete with console.error(`${e}: ${e.stack}`).
    const printed = `${error}: ${error.stack}`;
    expect(printed).toBe(`OpenRouterApiError: ${error.message}`);
    expect(printed.split("rejected the provisioning key").length - 1).toBe(1);
    expectNoSecret(printed);
  });

  it("settings: create and update change the limit of the same key in place", async () => {
    const { id } = await createKey();
    const settings = await createSettings(id, 30);
    expect(standIn.keys.get(id)).toMatchObject({ limit: 30, limit_reset: "monthly", disabled: false });

    const news = { ...settings.inputs, limitUsd: 50 };
    expect(await settingsProvider.diff!(id, settings.outs, news)).toMatchObject({ changes: true, replaces: [] });
    const updated = await settingsProvider.update!(id, settings.outs, news);
    expect(updated.outs).toMatchObject({ hash: id, limitUsd: 50 });
    expect(standIn.keys.get(id)?.limit).toBe(50);
    expect(standIn.keys.size).toBe(1);
    expect(standIn.requests.filter((r) => r.method === "POST")).toHaveLength(1);
  });

  it("settings: refresh picks up drift (limit, disabled, usage) and the next diff restores the stack's values", async () => {
    const { id } = await createKey();
    const settings = await createSettings(id, 30);
    Object.assign(standIn.keys.get(id)!, { limit: 500, disabled: true, usage: 42.5, usage_monthly: 7.25 });
    const read = await settingsProvider.read!(id, settings.outs);
    expect(read.props).toMatchObject({ limitUsd: 500, disabled: true, usageUsd: 42.5, usageMonthlyUsd: 7.25 });
    expect(await settingsProvider.diff!(id, read.props as OpenRouterKeySettingsOutputs, settings.inputs)).toMatchObject({
      changes: true,
      replaces: [],
    });
  });

  it("settings: only a different key replaces them; deleting them leaves the key alone", async () => {
    const { id } = await createKey();
    const settings = await createSettings(id, 30);
    expect(await settingsProvider.diff!(id, settings.outs, { ...settings.inputs, hash: "other" })).toMatchObject({ replaces: ["hash"] });
    await settingsProvider.delete!(id, settings.outs);
    expect(standIn.keys.get(id)).toMatchObject({ disabled: false, limit: 30 });
  });

  it("settings: an update on a key deleted outside the stack explains itself", async () => {
    const { id } = await createKey();
    const settings = await createSettings(id, 30);
    standIn.keys.delete(id);
    const error = await failure(settingsProvider.update!(id, settings.outs, { ...settings.inputs, limitUsd: 10 }));
    expect(error.kind).toBe("not-found");
    expect(error.message).toContain("deleted outside this stack");
    expect((await settingsProvider.read!(id, settings.outs)).id).toBe("");
  });
});

describe("provider serialization", () => {
  it("serializes without capturing secrets and runs on its own against the API", async () => {
    const started = Date.now();
    const serialized = await pulumi.runtime.serializeFunction(() => openRouterKeyProvider, { allowSecrets: true });
    const firstMs = Date.now() - started;
    expect(serialized.containsSecrets).toBe(false);
    expect(serialized.text).not.toContain("require(");
    // Evaluate the text as the dynamic provider host does, in a module of its own.
    const module = { exports: {} as Record<string, any> };
    new Function("module", "exports", serialized.text)(module, module.exports);
    const provider = module.exports.handler();
    const checked = await provider.check({}, { name: "mai-hosting/test/ser", limitUsd: 3, provisioningKey: standIn.provisioningKey, apiBaseUrl: standIn.baseUrl });
    const created = await provider.create(checked.inputs);
    expect(standIn.keys.get(created.id)).toMatchObject({ name: "mai-hosting/test/ser", limit: 3 });
    await provider.delete(created.id, created.outs);
    expect(standIn.keys.get(created.id)?.disabled).toBe(true);
    const error = await provider.create({ ...checked.inputs, provisioningKey: "sk-or-v1-nope-nope-nope" }).catch((e: Error) => e);
    expect(error.message).toContain("HTTP 401");
    expect(error.message).not.toContain("sk-or-v1-nope");
    expect(`${error}: ${error.stack}`).toBe(`OpenRouterApiError: ${error.message}`);

    // The host configures the provider with the stack's configuration: refresh then uses the
    // current provisioning key even when the one stored with the resource has been revoked.
    const again = await provider.create(checked.inputs);
    const rotated = standIn.issueProvisioningKey();
    standIn.revokeProvisioningKey(standIn.provisioningKey);
    await provider.configure({ config: { get: (key: string) => ({ "mai-hosting:openrouterProvisioningKey": rotated, "mai-hosting:openrouterApiBaseUrl": standIn.baseUrl })[key] } });
    expect((await provider.read(again.id, again.outs)).props).toMatchObject({ hash: again.id });
    console.info(`serializing the key provider: ${firstMs} ms, ${serialized.text.length} characters`);
  });
});

describe("OpenRouterKey under the mock runtime", () => {
  it("registers a key and its settings child quickly, key and provisioning key secret", async () => {
    const registered: { type: string; name: string; inputs: Record<string, any> }[] = [];
    await pulumi.runtime.setMocks(
      {
        newResource(args) {
          registered.push({ type: args.type, name: args.name, inputs: args.inputs });
          const state = args.type === OPENROUTER_KEY_TYPE ? { ...args.inputs, hash: `hash-${args.name}`, key: `value-${args.name}` } : args.inputs;
          return { id: `${args.name}-id`, state };
        },
        call() {
          throw new Error("unexpected call");
        },
      },
      "mai-hosting",
      "test",
      false,
    );
    const secretOutputs = new Map<string, string[]>();
    const monitor = pulumi.runtime.getMonitor() as any;
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: any, callback: any) => {
      secretOutputs.set(req.getName(), req.getAdditionalsecretoutputsList());
      return register(req, callback);
    };
    const { OpenRouterKey, openRouterKeyName } = await import("../components/openrouter/key");
    const make = (slug: string) =>
      new OpenRouterKey(`openrouter-${slug}`, {
        name: openRouterKeyName(slug, "test"),
        limitUsd: 25,
        provisioningKey: pulumi.secret("sk-or-v1-provisioning-under-mocks"),
      });
    const settled = (key: InstanceType<typeof OpenRouterKey>) =>
      new Promise<void>((resolve) => pulumi.all([key.urn, key.settings.urn, key.key]).apply(() => resolve()));

    let started = Date.now();
    const first = make("first");
    await settled(first);
    const firstMs = Date.now() - started;

    const count = 20;
    started = Date.now();
    const keys = Array.from({ length: count }, (_, i) => make(`client-${i}`));
    await Promise.all(keys.map(settled));
    const perKeyMs = (Date.now() - started) / count;
    console.info(`OpenRouterKey under mocks: first ${firstMs} ms (serializes the providers), then ${perKeyMs.toFixed(1)} ms per key (2 resources)`);
    expect(perKeyMs).toBeLessThan(100);

    const keyInputs = registered.find((r) => r.name === "openrouter-first")!;
    expect(keyInputs.type).toBe(OPENROUTER_KEY_TYPE);
    expect(keyInputs.inputs).toMatchObject({ name: "mai-hosting/test/first", limitUsd: 25 });
    expect(typeof keyInputs.inputs.__provider).toBe("string");
    expect(keyInputs.inputs.__provider).not.toContain("sk-or-v1-provisioning-under-mocks");
    const settings = registered.find((r) => r.name === "openrouter-first-settings")!;
    expect(settings.type).toBe(OPENROUTER_KEY_SETTINGS_TYPE);
    expect(settings.inputs).toMatchObject({ hash: "hash-openrouter-first", limitUsd: 25 });

    // The mock monitor ignores additionalSecretOutputs, so check the registration asked for them.
    expect(secretOutputs.get("openrouter-first")).toEqual(["key", "provisioningKey"]);
    expect(secretOutputs.get("openrouter-first-settings")).toEqual(["provisioningKey"]);
    expect(await pulumi.isSecret((first as any).provisioningKey as pulumi.Output<string>)).toBe(true);
  });
});
