/**
 * `npm run invoice`: the real script against the loopback OpenRouter stand-in, usage snapshots
 * written by the real mai-backup from real SQLite databases, and the stack file's `pricing`.
 */
import { execFile, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { openRouterKeyName, type OpenRouterKeyInfo } from "../components/openrouter/api";
import { buildInvoice, monthOf, nextMonth, recordReadings, spendInMonth, usageInMonth, type Invoice } from "../policy/invoice";
import { runInvoice } from "../scripts/invoice";
import { startOpenRouterStandIn, type OpenRouterStandIn } from "./support/openrouterStandIn";

const ROOT = path.resolve(__dirname, "..");
const TSX = path.join(ROOT, "node_modules", ".bin", "tsx");
const BACKUP = path.join(ROOT, "host", "mai-backup.sh");

const FAKE_DOCKER = `#!/usr/bin/env bash
dir="$FAKE_DOCKER_VOLUMES/\${!#}"
[[ $1 == volume && -d $dir ]] && echo "$dir" || exit 1
`;

const PRICING = `  mai-hosting:pricing:
    currency: EUR
    baseFeePerClient: 49
    feePerActiveUser: 5
    usageMarkupPercent: 10
    usdExchangeRate: 0.9
`;

let standIn: OpenRouterStandIn;
let work: string;
let now: Date;
let current: string;
let previous: string;

function previousMonth(month: string): string {
  const [year, mon] = month.split("-").map(Number);
  return mon === 1 ? `${year - 1}-12` : `${year}-${String(mon - 1).padStart(2, "0")}`;
}

beforeAll(async () => {
  standIn = await startOpenRouterStandIn({ pageSize: 2 });
});
afterAll(async () => {
  await standIn.close();
});

beforeEach(() => {
  work = fs.mkdtempSync(path.join(tmpdir(), "mai-invoice-test-"));
  for (const dir of ["clients", "snapshots", "volumes", "bin", "lock"]) fs.mkdirSync(path.join(work, dir));
  fs.writeFileSync(path.join(work, "bin", "docker"), FAKE_DOCKER, { mode: 0o755 });
  fs.writeFileSync(path.join(work, "Pulumi.prod.yaml"), fs.readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8") + PRICING);
  for (const slug of ["acme", "beta", "gamma"]) fs.writeFileSync(path.join(work, "clients", `${slug}.yaml`), `name: ${slug}\nport: 3001\n`);
  now = new Date();
  current = monthOf(now);
  previous = previousMonth(current);
  seedAccount();
  return () => fs.rmSync(work, { recursive: true, force: true });
});

/** Keys of the account; the readings file holds what an invoice run last month recorded. */
function seedAccount(): void {
  standIn.keys.clear();
  const longAgo = "2024-01-05T10:00:00Z";
  const acme = standIn.seed({ name: openRouterKeyName("acme", "prod"), usage: 100, usage_monthly: 10, created_at: longAgo });
  standIn.seed({ name: openRouterKeyName("beta", "prod"), usage: 30, usage_monthly: 5, created_at: `${previous}-15T08:00:00Z` });
  const removed = standIn.seed({ name: openRouterKeyName("old-client", "prod"), usage: 50, usage_monthly: 0, disabled: true, created_at: longAgo });
  standIn.seed({ name: openRouterKeyName("gamma", "prod"), usage: 7, usage_monthly: 1, created_at: longAgo });
  standIn.seed({ name: openRouterKeyName("acme", "staging"), usage: 999, usage_monthly: 999, created_at: longAgo });
  standIn.seed({ name: "someone's playground key", usage: 99 });
  const readings = [
    // acme had spent 45 before last month began (60 - 15); old-client 40 (48 - 8); none for gamma.
    { keyHash: acme.hash, at: `${previous}-20T09:00:00.000Z`, usageUsd: 60, usageMonthlyUsd: 15 },
    { keyHash: removed.hash, at: `${previous}-03T09:00:00.000Z`, usageUsd: 48, usageMonthlyUsd: 8 },
  ];
  fs.writeFileSync(path.join(work, "readings.json"), JSON.stringify({ format: "mai-invoice-readings", version: 1, readings }));
}

function snapshot(slug: string, day: string, activeUsers: number | null, volumeBytes: number): void {
  fs.mkdirSync(path.join(work, "snapshots", slug), { recursive: true });
  fs.writeFileSync(
    path.join(work, "snapshots", slug, `usage-${day}.json`),
    JSON.stringify({ slug, takenAt: `${day}T01:30:00Z`, activeUsers, volumeBytes, databaseBytes: Math.floor(volumeBytes / 2) }),
  );
}

/** A client volume whose database has Open WebUI's user table with the given roles. */
function clientWithUsers(slug: string, roles: string[]): void {
  const dir = path.join(work, "volumes", `mai-${slug}-data`);
  fs.mkdirSync(dir, { recursive: true });
  const values = roles.map((role, i) => `('${i}', 'User ${i}', 'u${i}@${slug}.test', '${role}')`).join(", ");
  const r = spawnSync("sqlite3", [
    "-init",
    "/dev/null",
    path.join(dir, "webui.db"),
    `PRAGMA journal_mode=WAL; CREATE TABLE user(id TEXT PRIMARY KEY, name TEXT, email TEXT, role TEXT); INSERT INTO user VALUES ${values};`,
  ]);
  expect(r.status).toBe(0);
}

function nightlyBackup(slug: string): void {
  const r = spawnSync("bash", [BACKUP, slug], {
    encoding: "utf8",
    env: {
      ...process.env,
      PATH: `${path.join(work, "bin")}:${process.env.PATH}`,
      MAI_BACKUP_ROOT: path.join(work, "snapshots"),
      MAI_LOCK_DIR: path.join(work, "lock"),
      MAI_CONFIG_DIR: path.join(work, "none"),
      FAKE_DOCKER_VOLUMES: path.join(work, "volumes"),
    },
  });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
}

const env = () => ({ OPENROUTER_PROVISIONING_KEY: standIn.provisioningKey, OPENROUTER_API_BASE: standIn.baseUrl });
const args = (month: string, ...more: string[]) => [
  "--month",
  month,
  "--snapshots",
  path.join(work, "snapshots"),
  "--readings",
  path.join(work, "readings.json"),
  "--clients",
  path.join(work, "clients"),
  ...more,
];

function capture() {
  const out = { stdout: "", stderr: "" };
  return { out, io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t) } };
}

function runCli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      TSX,
      [path.join(ROOT, "scripts", "invoice.ts"), ...argv],
      { cwd: work, env: { PATH: process.env.PATH ?? "", HOME: work, ...env() }, timeout: 30_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("npm run invoice (as a process)", () => {
  it("last month: spend from the readings, peak active users and storage from the snapshots, amounts and totals", async () => {
    snapshot("acme", `${previous}-10`, 3, 4_000_000_000);
    snapshot("acme", `${previous}-28`, 5, 5_000_000_000);
    snapshot("acme", `${current}-01`, 9, 9_000_000_000); // another month: ignored
    snapshot("beta", `${previous}-20`, 2, 1_000_000_000);
    snapshot("old-client", `${previous}-02`, 1, 2_000_000_000);
    const { code, stdout, stderr } = await runCli([...args(previous), "--json"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const invoice = JSON.parse(stdout) as Invoice;
    expect(invoice.pricing).toEqual({ currency: "EUR", baseFeePerClient: 49, feePerActiveUser: 5, usageMarkupPercent: 10, usdExchangeRate: 0.9 });
    expect(invoice.rows.map((r) => [r.client, r.openrouterUsd, r.activeUsers, r.volumeBytes, r.charges?.total])).toEqual([
      // 49 + 5 * 5 + 45 USD * 0.9 * 1.1
      ["acme", 45, 5, 5_000_000_000, 118.55],
      // key created last month: started at 0, 25 spent before this month began (49 + 2 * 5 + 25 * 0.9 * 1.1)
      ["beta", 25, 2, 1_000_000_000, 83.75],
      // no reading from last month: unknown, flagged, not billed as usage
      ["gamma", null, null, null, 49],
      // removed client: its disabled key still bills its last month
      ["old-client", 10, 1, 2_000_000_000, 63.9],
    ]);
    expect(invoice.rows.find((r) => r.client === "gamma")!.note).toContain(`no OpenRouter reading from ${previous}`);
    expect(invoice.rows.find((r) => r.client === "old-client")!.note).toBe("no client file; disabled");
    expect(invoice.totals).toEqual({
      openrouterUsd: 80,
      activeUsers: 8,
      volumeBytes: 8_000_000_000,
      charges: { baseFee: 196, userFees: 40, usage: 79.2, total: 315.2 },
    });
    expect(stdout).not.toContain(standIn.provisioningKey);
    expect(stdout).not.toContain("999"); // the staging stack's key is not billed

    // This run recorded today's reading of every key, so next month's invoice for this month has its start.
    const saved = JSON.parse(fs.readFileSync(path.join(work, "readings.json"), "utf8"));
    expect(saved.readings.filter((r: { at: string }) => monthOf(r.at) === current)).toHaveLength(6);
  });

  it("this month: spend to date, and users counted by the nightly backup from the real database (pending excluded)", async () => {
    clientWithUsers("acme", ["admin", "user", "user", "pending"]);
    clientWithUsers("beta", ["admin", "pending", "pending"]);
    nightlyBackup("acme");
    nightlyBackup("beta");
    const csv = await runCli([...args(current), "--csv"]);
    expect(csv.stderr).toBe("");
    expect(csv.code).toBe(0);
    const [header, ...rows] = csv.stdout.trim().split("\n");
    expect(header).toBe("month,client,openrouter_usd,active_users,volume_bytes,last_snapshot,currency,base_fee,user_fees,usage_charge,total,note");
    const today = now.toISOString().slice(0, 10);
    expect(rows.map((row) => row.split(",").slice(1, 4).join(","))).toEqual(["acme,10,3", "beta,5,1", "gamma,1,", "old-client,0,"]);
    expect(rows[0]).toMatch(new RegExp(`^${current},acme,10,3,\\d+,${today},EUR,49,15,9.9,73.9,month to date$`));
    expect(rows[2]).toContain("no usage snapshot in this month");

    const table = await runCli(args(current));
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(`Invoice ${current}, stack prod (pricing: 49 EUR/client, 5 EUR/active user, OpenRouter spend +10% at 0.9 EUR/USD)`);
    expect(table.stdout.trim().split("\n").at(-1)).toMatch(/^TOTAL\s+\$16\.00\s+4\s/);
  });
});

describe("npm run invoice --host", () => {
  it("reads the usage snapshots over SSH from every server of the stack", async () => {
    // Two servers, each with its own backup directory; ssh is a stand-in that runs the remote command locally.
    for (const server of ["nbg1-a", "nbg1-b"]) fs.mkdirSync(path.join(work, server));
    const write = (server: string, slug: string, day: string, users: number) => {
      fs.mkdirSync(path.join(work, server, slug), { recursive: true });
      fs.writeFileSync(path.join(work, server, slug, `usage-${day}.json`), JSON.stringify({ slug, activeUsers: users, volumeBytes: 10, databaseBytes: 5 }) + "\n");
    };
    write("nbg1-a", "acme", `${previous}-05`, 4);
    write("nbg1-a", "acme", `${current}-01`, 40); // another month: not even sent
    write("nbg1-b", "beta", `${previous}-06`, 2);
    const ssh = path.join(work, "bin", "ssh");
    fs.writeFileSync(
      ssh,
      `#!/usr/bin/env bash
host=\${@: -2:1}
printf '%s\\n' "$*" >> "${work}/ssh.log"
cd "${work}/\${host#root@}" && bash -c "$(printf '%s' "\${@: -1}" | sed "s|cd /srv/mai/backups|cd .|")"
`,
      { mode: 0o755 },
    );
    const { out, io } = capture();
    const argv = ["--month", previous, "--host", "root@nbg1-a", "--host", "root@nbg1-b", "--readings", path.join(work, "readings.json"), "--clients", path.join(work, "clients"), "--json"];
    expect(await runInvoice(argv, { ...env(), MAI_SSH: ssh }, io, { cwd: work })).toBe(0);
    expect(out.stderr).toBe("");
    const invoice = JSON.parse(out.stdout) as Invoice;
    expect(invoice.rows.filter((r) => r.activeUsers !== null).map((r) => [r.client, r.activeUsers, r.lastSnapshot])).toEqual([
      ["acme", 4, `${previous}-05`],
      ["beta", 2, `${previous}-06`],
    ]);
    const calls = fs.readFileSync(path.join(work, "ssh.log"), "utf8").trim().split("\n");
    expect(calls).toHaveLength(2);
    expect(calls[0]).toContain("-o BatchMode=yes");
    expect(calls[0]).toContain(`root@nbg1-a cd /srv/mai/backups 2>/dev/null || exit 0; for f in */usage-${previous}-*.json;`);

    const failing = capture();
    fs.writeFileSync(ssh, "#!/usr/bin/env bash\necho 'Permission denied (publickey).' >&2\nexit 255\n");
    expect(await runInvoice(argv, { ...env(), MAI_SSH: ssh }, failing.io, { cwd: work })).toBe(2);
    expect(failing.out.stderr).toContain("--host root@nbg1-a: reading the usage snapshots over SSH failed (exit 255): Permission denied (publickey).");
  });
});

describe("runInvoice (in process)", () => {
  it("refuses a bad pricing block naming file, field and expectation, before calling OpenRouter", async () => {
    fs.writeFileSync(
      path.join(work, "Pulumi.prod.yaml"),
      fs.readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8") + "  mai-hosting:pricing:\n    currency: CHF\n    feePerActiveUser: \"5\"\n",
    );
    standIn.requests.length = 0;
    const { out, io } = capture();
    expect(await runInvoice(args(previous), env(), io, { cwd: work })).toBe(1);
    const line = fs.readFileSync(path.join(work, "Pulumi.prod.yaml"), "utf8").split("\n").findIndex((text) => text.includes("feePerActiveUser")) + 1;
    expect(out.stderr).toContain(`Pulumi.prod.yaml:${line}: mai-hosting:pricing.feePerActiveUser: expected a monthly fee per active user: a number from 0 to 100000, like 12.5, got "5" (remove the quotes)`);
    expect(out.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
    fs.writeFileSync(
      path.join(work, "Pulumi.prod.yaml"),
      fs.readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8") + "  mai-hosting:pricing:\n    currency: CHF\n",
    );
    const rate = capture();
    expect(await runInvoice(args(previous), env(), rate.io, { cwd: work })).toBe(1);
    expect(rate.out.stderr).toContain("mai-hosting:pricing.usdExchangeRate: missing; expected the value of 1 USD in CHF (OpenRouter bills in USD), or currency: USD");
    expect(standIn.requests).toEqual([]);
  });

  it("without pricing: usage only; usage mistakes exit 2 with every problem", async () => {
    fs.writeFileSync(path.join(work, "Pulumi.prod.yaml"), fs.readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8"));
    const { out, io } = capture();
    expect(await runInvoice([...args(previous), "--json"], env(), io, { cwd: work })).toBe(0);
    const invoice = JSON.parse(out.stdout) as Invoice;
    expect(invoice.pricing).toBeNull();
    expect(invoice.rows.every((r) => r.charges === undefined)).toBe(true);
    expect(invoice.totals.charges).toBeUndefined();

    const bad = capture();
    expect(await runInvoice(["--month", "2026-13", "--csv", "--json"], {}, bad.io, { cwd: work })).toBe(2);
    expect(bad.out.stderr).toContain('--month: expected a month like 2026-10, got "2026-13"');
    expect(bad.out.stderr).toContain("--host <server> or --snapshots <dir> is required");
    expect(bad.out.stderr).toContain("choose one of --json and --csv");
    const future = capture();
    expect(await runInvoice(args(nextMonth(current)), env(), future.io, { cwd: work })).toBe(2);
    expect(future.out.stderr).toContain("has not started yet");
    const noKey = capture();
    expect(await runInvoice(args(previous), {}, noKey.io, { cwd: work })).toBe(2);
    expect(noKey.out.stderr).toContain("OPENROUTER_PROVISIONING_KEY=$(pulumi config get openrouterProvisioningKey) npm run invoice");
  });

  it("names a malformed snapshot file", async () => {
    fs.mkdirSync(path.join(work, "snapshots", "acme"));
    fs.writeFileSync(path.join(work, "snapshots", "acme", `usage-${previous}-03.json`), '{"slug":"acme","activeUsers":"many"}');
    const { out, io } = capture();
    expect(await runInvoice(args(previous), env(), io, { cwd: work })).toBe(2);
    expect(out.stderr).toContain(`usage-${previous}-03.json: expected {slug: "acme", activeUsers, volumeBytes, databaseBytes}`);
  });
});

describe("invoice logic", () => {
  const key = (fields: Partial<OpenRouterKeyInfo>): OpenRouterKeyInfo => ({
    hash: "h1",
    name: "mai-hosting/prod/acme",
    label: "",
    disabled: false,
    limitUsd: null,
    limitRemainingUsd: null,
    limitReset: "monthly",
    usageUsd: 0,
    usageMonthlyUsd: 0,
    usageDailyUsd: null,
    createdAt: "2024-01-01T00:00:00Z",
    ...fields,
  });
  const at = new Date("2026-11-24T10:00:00Z");

  it("derives a past month's spend from readings in that month and the next, and says what is missing", () => {
    const k = key({ usageUsd: 100, usageMonthlyUsd: 10 });
    const readings = [
      { keyHash: "h1", at: "2026-09-30T23:00:00Z", usageUsd: 40, usageMonthlyUsd: 20 },
      { keyHash: "h1", at: "2026-10-02T00:00:00Z", usageUsd: 61, usageMonthlyUsd: 1 },
    ];
    expect(spendInMonth("2026-11", k, readings, at)).toEqual({ usd: 10, note: "month to date" });
    expect(spendInMonth("2026-10", k, readings, at)).toEqual({ usd: 30, note: "" }); // 90 - 60
    expect(spendInMonth("2026-09", k, readings, at)).toEqual({ usd: 40, note: "" }); // 60 - 20
    expect(spendInMonth("2026-08", k, readings, at).usd).toBeNull();
    expect(spendInMonth("2026-08", k, readings, at).note).toBe("no OpenRouter reading from 2026-08 (each invoice run records one)");
    // A key created during the month started it at 0.
    expect(spendInMonth("2026-10", key({ usageUsd: 12, usageMonthlyUsd: 2, createdAt: "2026-10-20T00:00:00Z" }), [], at).usd).toBe(10);
  });

  it("keeps one reading per key and day; peak users and last storage of the month", () => {
    const first = recordReadings([], [key({ usageUsd: 1 })], new Date("2026-11-24T01:00:00Z"));
    const second = recordReadings(first, [key({ usageUsd: 2 })], new Date("2026-11-24T05:00:00Z"));
    expect(second).toEqual([{ keyHash: "h1", at: "2026-11-24T05:00:00.000Z", usageUsd: 2, usageMonthlyUsd: 0 }]);
    expect(recordReadings(second, [key({ usageUsd: 3 })], new Date("2026-11-25T05:00:00Z"))).toHaveLength(2);

    const usage = usageInMonth("2026-10", [
      { slug: "a", day: "2026-10-31", activeUsers: 4, volumeBytes: 30, databaseBytes: 3 },
      { slug: "a", day: "2026-10-05", activeUsers: 6, volumeBytes: 10, databaseBytes: 1 },
      { slug: "a", day: "2026-11-01", activeUsers: 9, volumeBytes: 99, databaseBytes: 9 },
    ]);
    expect(usage).toEqual({ activeUsers: 6, volumeBytes: 30, databaseBytes: 3, lastSnapshot: "2026-10-31", snapshotDays: 2 });
  });

  it("a client with a hand-set key has no spend and is flagged", () => {
    const invoice = buildInvoice(
      "2026-10",
      "prod",
      [{ client: "manual", spends: [], keyNotes: [], usage: usageInMonth("2026-10", []) }],
      { currency: "USD", baseFeePerClient: 10, feePerActiveUser: 1, usageMarkupPercent: 0, usdExchangeRate: 1 },
      at,
    );
    expect(invoice.rows[0]).toMatchObject({ openrouterUsd: null, charges: { total: 10 } });
    expect(invoice.rows[0].note).toBe("no stack-managed OpenRouter key: spend not available; no usage snapshot in this month");
  });
});
