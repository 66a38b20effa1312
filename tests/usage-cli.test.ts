/**
 * `npm run usage`: the real script, run as a process against the loopback OpenRouter stand-in,
 * plus in-process runs for the failure modes (fast retry policy).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { openRouterKeyName } from "../components/openrouter/api";
import { buildUsageReport, parseUsageArgs, resolveApiBaseUrl, runUsage, type UsageReport } from "../scripts/usage";
import { startOpenRouterStandIn, type OpenRouterStandIn } from "./support/openrouterStandIn";

const ROOT = path.resolve(__dirname, "..");
const TSX = path.join(ROOT, "node_modules", ".bin", "tsx");

let standIn: OpenRouterStandIn;
let clientsDir: string;
let noClientsDir: string;

beforeAll(async () => {
  standIn = await startOpenRouterStandIn({ pageSize: 2 });
  clientsDir = mkdtempSync(path.join(tmpdir(), "usage-clients-"));
  noClientsDir = mkdtempSync(path.join(tmpdir(), "usage-no-clients-"));
  writeFileSync(path.join(clientsDir, "acme.yaml"), "name: Acme\nport: 3001\nopenrouter:\n  monthlyLimitUsd: 25\n");
  writeFileSync(path.join(clientsDir, "beta.yaml"), "name: Beta\nport: 3002\nopenrouter:\n  monthlyLimitUsd: 10\n");
  writeFileSync(path.join(clientsDir, "gamma.yaml"), "name: Gamma\nport: 3003\nopenrouter: {}\n");
  writeFileSync(path.join(clientsDir, "manual.yaml"), "name: Manual keys\nport: 3004\n");
});
afterAll(async () => {
  await standIn.close();
  rmSync(clientsDir, { recursive: true, force: true });
  rmSync(noClientsDir, { recursive: true, force: true });
});
afterEach(() => {
  standIn.faults.length = 0;
  standIn.requests.length = 0;
});

function seedAccount(): void {
  standIn.keys.clear();
  standIn.seed({ name: openRouterKeyName("acme", "prod"), limit: 25, limit_reset: "monthly", usage: 42.5, usage_monthly: 7.25 });
  standIn.seed({ name: openRouterKeyName("beta", "prod"), limit: 10, limit_reset: "monthly", usage: 10, usage_monthly: 10 });
  standIn.seed({ name: openRouterKeyName("old-client", "prod"), limit: 5, limit_reset: "monthly", usage: 3, usage_monthly: 0, disabled: true });
  standIn.seed({ name: openRouterKeyName("acme", "staging"), limit: 1, limit_reset: "monthly", usage: 0.1, usage_monthly: 0.1 });
  standIn.seed({ name: "someone's playground key", usage: 99 });
}

function runCli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      TSX,
      [path.join(ROOT, "scripts", "usage.ts"), ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env }, timeout: 30_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

function capture() {
  const out = { stdout: "", stderr: "" };
  return { out, io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t) } };
}

function expectNoSecret(text: string): void {
  expect(text).not.toContain(standIn.provisioningKey);
  for (const key of standIn.keys.values()) expect(text).not.toContain(key.key);
  expect(text).not.toMatch(/sk-or-v1-[0-9a-f]{16}/);
  expect(text).not.toMatch(/\n\s+at .+:\d+:\d+/); // no stack trace
}

describe("npm run usage (as a process)", () => {
  const env = () => ({ OPENROUTER_PROVISIONING_KEY: standIn.provisioningKey, OPENROUTER_API_BASE_URL: standIn.baseUrl });

  it("--json --stack prod: per client usage, limit and remaining, across list pages", async () => {
    seedAccount();
    const { code, stdout, stderr } = await runCli(["--json", "--stack", "prod", "--clients", clientsDir], env());
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as UsageReport;
    expect(report.stack).toBe("prod");
    expect(report.rows.map((r) => [r.client, r.usageMonthUsd, r.usageTotalUsd, r.limitUsd, r.remainingUsd, r.note])).toEqual([
      ["acme", 7.25, 42.5, 25, 17.75, ""],
      ["beta", 10, 10, 10, 0, "limit reached"],
      ["gamma", null, 0, null, null, "no key found (not deployed yet?)"],
      ["old-client", 0, 3, 5, 5, "no client file; disabled"],
    ]);
    expect(report.totals).toEqual({ usageMonthUsd: 17.25, usageTotalUsd: 55.5 });
    expect(standIn.requests.every((r) => r.authorized)).toBe(true);
    expectNoSecret(stdout);
  });

  it("default table covers all stacks; --csv gives raw numbers", async () => {
    seedAccount();
    const table = await runCli(["--clients", clientsDir], env());
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split("\n");
    expect(lines[0]).toContain("all stacks");
    expect(lines.slice(2, -1).map((l) => l.split(/\s+/).slice(0, 2).join(" "))).toEqual([
      "prod acme",
      "prod beta",
      "prod old-client",
      "staging acme",
    ]);
    expect(table.stdout).toMatch(/acme\s+\S+\s+\$25\.00\s+monthly\s+\$7\.25\s+\$17\.75\s+\$42\.50/);
    expect(lines.at(-1)).toMatch(/^TOTAL\s+\$17\.35\s+\$55\.60$/);
    expect(table.stdout).not.toContain("playground");
    expectNoSecret(table.stdout);

    const csv = await runCli(["--csv", "--stack", "staging", "--clients", noClientsDir], env());
    expect(csv.code).toBe(0);
    const [header, ...rows] = csv.stdout.trim().split("\n");
    expect(header).toBe("stack,client,key_name,key_hash,disabled,limit_usd,limit_reset,usage_month_usd,usage_total_usd,remaining_usd,note");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatch(/^staging,acme,mai-hosting\/staging\/acme,[0-9a-f]{64},false,1,monthly,0\.1,0\.1,0\.9,$/);
  });

  it("a wrong provisioning key: exit 1, a clear message, no secret, no stack trace", async () => {
    const wrong = "sk-or-v1-0123456789abcdef0123456789abcdef";
    const { code, stdout, stderr } = await runCli(["--json"], { ...env(), OPENROUTER_PROVISIONING_KEY: wrong });
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toContain("HTTP 401");
    expect(stderr).toContain("OPENROUTER_PROVISIONING_KEY");
    expect(stderr).not.toContain(wrong);
    expectNoSecret(stderr);
  });
});

describe("runUsage (in process)", () => {
  const env = () => ({ OPENROUTER_PROVISIONING_KEY: standIn.provisioningKey, OPENROUTER_API_BASE_URL: standIn.baseUrl });
  const fast = { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5, timeoutMs: 200 };

  it("without the provisioning key: exit 2 and how to get it", async () => {
    const { out, io } = capture();
    expect(await runUsage([], {}, io)).toBe(2);
    expect(out.stderr).toContain("OPENROUTER_PROVISIONING_KEY=$(pulumi config get openrouterProvisioningKey) npm run usage");
  });

  it("bad arguments are all reported, exit 2", async () => {
    const { out, io } = capture();
    expect(await runUsage(["--json", "--csv", "--stack", "no/slash", "--frobnicate"], env(), io)).toBe(2);
    expect(out.stderr).toContain('unknown argument "--frobnicate"');
    expect(out.stderr).toContain("choose one of --json and --csv");
    expect(out.stderr).toContain("is not a stack name");
    const missing = capture();
    expect(await runUsage(["--clients", path.join(clientsDir, "nope")], env(), missing.io)).toBe(2);
    expect(missing.out.stderr).toContain("is not a directory");
  });

  it("403 (not a provisioning key)", async () => {
    const { out, io } = capture();
    expect(await runUsage([], { ...env(), OPENROUTER_PROVISIONING_KEY: standIn.inferenceOnlyKey }, io, fast)).toBe(1);
    expect(out.stderr).toContain("HTTP 403");
    expectNoSecret(out.stderr);
    expect(out.stderr).not.toContain(standIn.inferenceOnlyKey);
  });

  it("429 with Retry-After, then 5xx, then success", async () => {
    seedAccount();
    standIn.fail({ times: 1, status: 429, retryAfter: "0" }).fail({ times: 1, status: 502 });
    const { out, io } = capture();
    expect(await runUsage(["--json", "--stack", "prod", "--clients", noClientsDir], env(), io, fast)).toBe(0);
    expect((JSON.parse(out.stdout) as UsageReport).rows.map((r) => r.client)).toEqual(["acme", "beta", "old-client"]);
  });

  it("5xx forever: bounded attempts, exit 1", async () => {
    standIn.fail({ times: 100, status: 500 });
    const { out, io } = capture();
    expect(await runUsage([], env(), io, fast)).toBe(1);
    expect(out.stderr).toContain("HTTP 500 (3 attempts)");
    expect(standIn.requests).toHaveLength(3);
    expectNoSecret(out.stderr);
  });

  it("reads the API base URL the stack manages keys through: flag, then env, then the stack file", async () => {
    seedAccount();
    const cwd = mkdtempSync(path.join(tmpdir(), "usage-stack-"));
    const dead = "http://127.0.0.1:9/api/v1";
    const key = { OPENROUTER_PROVISIONING_KEY: standIn.provisioningKey };
    const args = ["--json", "--stack", "prod", "--clients", noClientsDir];
    try {
      writeFileSync(path.join(cwd, "Pulumi.prod.yaml"), `config:\n  mai-hosting:openrouterApiBaseUrl: ${standIn.baseUrl}/\n`);
      const fromStack = capture();
      expect(await runUsage(args, key, fromStack.io, fast, cwd)).toBe(0);
      expect((JSON.parse(fromStack.out.stdout) as UsageReport).rows.map((r) => r.client)).toEqual(["acme", "beta", "old-client"]);

      const envWins = capture();
      expect(await runUsage(args, { ...key, OPENROUTER_API_BASE_URL: dead }, envWins.io, { ...fast, maxAttempts: 1 }, cwd)).toBe(1);
      expect(envWins.out.stderr).toContain(`Could not reach OpenRouter at ${dead}`);

      const flagWins = capture();
      expect(await runUsage([...args, "--api-base-url", standIn.baseUrl], { ...key, OPENROUTER_API_BASE_URL: dead }, flagWins.io, fast, cwd)).toBe(0);

      const olderName = capture();
      expect(await runUsage(["--json"], { ...key, OPENROUTER_API_BASE: standIn.baseUrl }, olderName.io, fast, cwd)).toBe(0);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it("refuses an API base URL the stack setting would refuse, before sending the key anywhere", async () => {
    const requests = standIn.requests.length;
    const { out, io } = capture();
    const env = { OPENROUTER_PROVISIONING_KEY: standIn.provisioningKey };
    expect(await runUsage(["--api-base-url", "http://openrouter.example/api/v1"], env, io, fast)).toBe(2);
    expect(out.stderr).toContain("--api-base-url: expected the OpenRouter API base URL");
    expect(out.stderr).toContain("unencrypted");
    expect(standIn.requests.length).toBe(requests);
    expect(resolveApiBaseUrl(parseUsageArgs([]), {}, tmpdir())).toEqual({ url: "https://openrouter.ai/api/v1", source: "default" });
  });

  it("timeouts: bounded, exit 1", async () => {
    standIn.fail({ times: 2, hang: true });
    const { out, io } = capture();
    expect(await runUsage([], env(), io, { ...fast, maxAttempts: 2, timeoutMs: 100 })).toBe(1);
    expect(out.stderr).toContain("did not answer listing keys within 0.1s (2 attempts)");
  });
});

describe("report logic", () => {
  it("parses flags in both spellings", () => {
    expect(parseUsageArgs(["--csv", "--stack=prod", "--clients", "x"])).toMatchObject({ format: "csv", stack: "prod", clientsDir: "x" });
    expect(parseUsageArgs([])).toMatchObject({ format: "table", clientsDir: "clients", clientsDirGiven: false });
  });

  it("computes what is left when the API does not say, and flags keys without a client file", () => {
    const report = buildUsageReport(
      [
        {
          hash: "h1",
          name: "mai-hosting/prod/acme",
          label: "",
          disabled: false,
          limitUsd: 20,
          limitRemainingUsd: null,
          limitReset: "monthly",
          usageUsd: 30,
          usageMonthlyUsd: 4,
          usageDailyUsd: null,
          createdAt: null,
        },
      ],
      { clientSlugs: new Set(["other"]), clientsWithOpenRouter: new Set(), now: new Date("2025-06-14T10:00:00Z") },
    );
    expect(report.rows[0]).toMatchObject({ client: "acme", remainingUsd: 16, note: "no client file" });
  });
});
