/**
 * `npm run check` as a user runs it: the real script in a child process, in a scratch working
 * directory holding a stack file and a clients directory.
 */
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, describe, expect, it } from "vitest";

const REPO = path.resolve(__dirname, "..");
// The repository's tsx (what `npx tsx` resolves to from the repository); scratch dirs have no node_modules.
const TSX = path.join(REPO, "node_modules", ".bin", "tsx");
const CHECK = path.join(REPO, "scripts", "check.ts");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  millis: number;
}

function runCheck(cwd: string, args: string[] = []): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(TSX, [CHECK, ...args], { cwd, timeout: 30_000, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout, stderr, millis: Date.now() - started });
    });
  });
}

const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) fs.rmSync(dir, { recursive: true, force: true });
});

/** A working directory with the repository's stack file and example clients, plus `files` on top. */
function workspace(files: Record<string, string> = {}, withExamples = true): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-check-"));
  scratch.push(dir);
  fs.copyFileSync(path.join(REPO, "Pulumi.prod.yaml"), path.join(dir, "Pulumi.prod.yaml"));
  fs.mkdirSync(path.join(dir, "clients"));
  if (withExamples) {
    for (const name of fs.readdirSync(path.join(REPO, "clients"))) {
      fs.copyFileSync(path.join(REPO, "clients", name), path.join(dir, "clients", name));
    }
  }
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

function expectNoStackTrace(run: Run): void {
  expect(run.stdout + run.stderr).not.toMatch(/^\s+at /m);
}

describe.concurrent("npm run check", () => {
  it("accepts the committed stack file and example clients (exit 0, one-line summary, key warnings)", async () => {
    const run = await runCheck(REPO);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split("\n");
    expect(lines[0]).toBe("OK: 3 clients (2 active, 1 suspended) on 1 server");
    expect(lines[1]).toMatch(/^  host \(ccx53\): CPU limits 6\/30 vCPUs \(20%\), memory limits 12G\/124G \(10%\)/);
    expect(lines[1]).toContain("1 suspended client not counted (no container)");
    // The examples ask for managed keys, and the committed stack file has no provisioning key.
    for (const slug of ["acme", "mueller-steuerberatung"]) {
      expect(lines).toContain(
        `warning: client "${slug}" has no OpenRouter key; set it with: pulumi config set --stack prod --secret --path 'openrouterApiKeys.${slug}' <key> (or set openrouterProvisioningKey for a managed key)`,
      );
    }
  });

  it("accepts the committed local stack with the same example clients: no keys needed, capacity not checked", async () => {
    const run = await runCheck(REPO, ["--stack", "local"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split("\n");
    expect(lines[0]).toBe("OK: 3 clients (2 active, 1 suspended) on 1 server");
    expect(lines[1]).toMatch(/^  local \(local\): 2 active clients, .*capacity not checked: a local Docker Engine shares its machine/);
    expect(lines).toContain(
      `warning: client "acme" has no OpenRouter key (a local stack runs it without one: no model answers); set it with: pulumi config set --stack local --secret --path 'openrouterApiKeys.acme' <key> (or set openrouterProvisioningKey for a managed key)`,
    );
  });

  it("takes set secrets into account and reports CPU overcommit as a warning", async () => {
    const many = Object.fromEntries(
      Array.from({ length: 14 }, (_, i) => [`clients/extra-${i}.yaml`, `name: Extra ${i}\nport: ${4000 + i}\n`]),
    );
    const dir = workspace(many);
    const stackFile = path.join(dir, "Pulumi.prod.yaml");
    const keys = ["mueller-steuerberatung", ...Array.from({ length: 14 }, (_, i) => `extra-${i}`)]
      .map((slug) => `      ${slug}:\n        secure: v1:AAAA${slug}`)
      .join("\n");
    fs.appendFileSync(stackFile, `  mai-hosting:openrouterProvisioningKey:\n    secure: v1:BBBB\n  mai-hosting:openrouterApiKeys:\n${keys.replace(/^ {2}/gm, "")}\n`);
    const run = await runCheck(dir);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^OK: 17 clients \(16 active, 1 suspended\)/);
    expect(run.stdout).toContain("warning: CPU limits of 16 active clients total 34 vCPUs, 1.13x the 30 vCPUs server host (ccx53) offers");
    expect(run.stdout).not.toContain("has no OpenRouter key");
  });

  it("reports every mistake of every file, one per line with file, line, field and expectation (exit 1)", async () => {
    const dir = workspace({
      "clients/broken.yaml": "name: Broken\nport: 80\nhostname: https://chat.broken.de\nresources:\n  memory: 4096\nenv:\n  OPENAI_API_KEY: \"x\"\n  SMTP_PASSWORD: \"hunter2\"\nprot: 1\n",
      "clients/Bad_Name.yaml": "name: Bad\nport: 3010\n",
      "clients/wagner.yaml": "name: Wagner\nport: 3001\n",
      "clients/empty.yaml": "",
      "clients/ignored.txt": "not: [a client",
    });
    const run = await runCheck(dir);
    expect(run.code).toBe(1);
    expectNoStackTrace(run);
    const lines = run.stderr.trim().split("\n");
    expect(lines).toEqual([
      expect.stringMatching(/^clients\/Bad_Name\.yaml: file name: the file name is the client's slug; .* got "Bad_Name" \(e\.g\. "bad-name"\)$/),
      "clients/broken.yaml:2: port: expected an integer from 1024 to 65535, got 80",
      'clients/broken.yaml:3: hostname: expected a bare lower-case host name like "chat.example.com", got "https://chat.broken.de" (remove "https://")',
      'clients/broken.yaml:5: resources.memory: expected a size like "4G" or "1536M" (M = MiB, G = GiB), at least 512M, got 4096 (add a unit: "4096M" or "4096G")',
      expect.stringMatching(/^clients\/broken\.yaml:7: env\.OPENAI_API_KEY: OPENAI_API_KEY is managed by the stack/),
      expect.stringMatching(/^clients\/broken\.yaml:8: env\.SMTP_PASSWORD: .*secrets belong in Pulumi secret config/),
      expect.stringMatching(/^clients\/broken\.yaml:9: prot: unknown field "prot"; did you mean "port"\?/),
      expect.stringMatching(/^clients\/empty\.yaml: file is empty/),
      'clients/wagner.yaml:2: port: port 3001 is already used by clients/mueller-steuerberatung.yaml ("mueller-steuerberatung"); every client needs its own port',
      "check failed: 9 problems",
    ]);
    expect(run.stderr).not.toContain("hunter2");
    expect(run.stdout).toBe("");
  });

  it("reports stack file mistakes with their lines, together with client mistakes", async () => {
    const dir = workspace({ "clients/late.yaml": "name: Late\nport: 99999\n" });
    const stackFile = path.join(dir, "Pulumi.prod.yaml");
    const text = fs
      .readFileSync(stackFile, "utf8")
      .replace("mai-hosting:domain: mai-hosting.eu", "mai-hosting:domian: mai-hosting.eu")
      .replace("203.0.113.10/32", "0.0.0.0/0");
    fs.writeFileSync(stackFile, text);
    const domainLine = text.split("\n").findIndex((line) => line.includes("domian")) + 1;
    const run = await runCheck(dir);
    expect(run.code).toBe(1);
    expectNoStackTrace(run);
    const lines = run.stderr.trim().split("\n");
    expect(lines).toContain(
      `Pulumi.prod.yaml:${domainLine}: mai-hosting:domian: unknown field "domian"; did you mean "domain"? (allowed: domain, cloudflareZoneId, servers, defaultServer, serverType, location, serverImage, sshPublicKeys, adminCidrs, defaultImage, defaultResources, hostReserve, acmeEmail, proxyImage, backupRetentionDays, openrouterApiBaseUrl, pricing, allowedClientEnv, openrouterApiKeys, openrouterProvisioningKey, sshPrivateKey, alertWebhookUrl)`,
    );
    expect(lines).toContain('Pulumi.prod.yaml: mai-hosting:domain: missing; expected a domain like "mai-hosting.eu"');
    expect(lines).toContainEqual(expect.stringMatching(/^Pulumi\.prod\.yaml:\d+: mai-hosting:adminCidrs\[0\]: "0\.0\.0\.0\/0" would open SSH to the whole internet/));
    expect(lines).toContain("clients/late.yaml:2: port: expected an integer from 1024 to 65535, got 99999");
  });

  it("refuses hostile YAML: alias bomb, deep nesting, complex keys, 10 MB file", async () => {
    let laughs = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
    for (let i = 0; i < 9; i++) laughs += `b${i}: &b${i} [${Array(9).fill(i === 0 ? "*a" : `*b${i - 1}`).join(",")}]\n`;
    const dir = workspace(
      {
        "clients/laughs.yaml": laughs,
        "clients/deep.yaml": "name: " + "[".repeat(60_000) + "\n",
        "clients/keys.yaml": "? ".repeat(30_000) + "x\n",
        "clients/nested.yaml": Array.from({ length: 120 }, (_, i) => `${" ".repeat(i * 4)}? - `).join("\n") + "x\n",
        "clients/huge.yaml": `name: "${"x".repeat(10 * 1024 * 1024)}"\nport: 3001\n`,
      },
      false,
    );
    const run = await runCheck(dir);
    expect(run.code).toBe(1);
    expectNoStackTrace(run);
    expect(run.stderr).toContain("clients/laughs.yaml: too many aliases");
    expect(run.stderr).toContain("clients/deep.yaml:1: nested too deeply");
    expect(run.stderr).toContain("clients/keys.yaml:1: nested too deeply");
    expect(run.stderr).toMatch(/clients\/nested\.yaml:\d+: keys must be plain names/);
    expect(run.stderr).toContain("clients/huge.yaml: file is 10.0 MiB; configuration files are limited to 64 KiB");
  });

  it("uses --clients and --stack", async () => {
    const dir = workspace({ "elsewhere/solo.yaml": "name: Solo\nport: 3100\n" }, false);
    fs.rmdirSync(path.join(dir, "clients"));
    fs.renameSync(path.join(dir, "Pulumi.prod.yaml"), path.join(dir, "Pulumi.staging.yaml"));
    const run = await runCheck(dir, ["--clients", "elsewhere", "--stack=staging"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^OK: 1 client \(1 active, 0 suspended\)/);
    expect(run.stdout).toContain("pulumi config set --stack staging --secret --path 'openrouterApiKeys.solo' <key>");

    const missing = await runCheck(dir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("Pulumi.prod.yaml: stack config not found");
    expect(missing.stderr).toContain("clients: directory not found");
    expectNoStackTrace(missing);
  });

  it("exits 2 on bad usage", async () => {
    const dir = workspace();
    for (const args of [["--bogus"], ["--clients"], ["--stack", "../etc"]]) {
      const run = await runCheck(dir, args);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr).toMatch(/^check: .*\nusage: npm run check -- \[--clients <dir>\] \[--stack <name>\]/);
    }
  });
});

// Run one after the other, not with the suite above: its timing test measures one check among
// concurrent ones on a small machine.
describe("npm run check refuses inputs that would open, break or leak", () => {
  it("refuses a client file that would open its workspace, move its data, break its routing or take a host port (exit 1)", async () => {
    const dir = workspace({
      "clients/open.yaml": [
        "name: Open",
        "port: 2019",
        "env:",
        '  WEBUI_AUTH: "False"',
        '  WEBUI_AUTH_TRUSTED_EMAIL_HEADER: "X-Email"',
        '  DATABASE_URL: "sqlite:////tmp/webui.db"',
        '  HOST: "127.0.0.1"',
        '  GREETING: "hi\\0zebra"',
        '  OAUTH_MERGE_ACCOUNTS_BY_EMAIL: "true"',
        "",
      ].join("\n"),
      "clients/xn--cme-1na.yaml": "name: Look-alike\nport: 3100\n",
      "clients/apex.yaml": "name: Apex\nport: 3101\nhostname: mai-hosting.eu\n",
      "clients/bidi.yaml": 'name: "Acme\\u202eHmbG"\nport: 3102\n',
    });
    const run = await runCheck(dir);
    expect(run.code).toBe(1);
    expectNoStackTrace(run);
    expect(run.stdout).toBe("");
    const lines = run.stderr.trim().split("\n");
    expect(lines).toEqual([
      expect.stringMatching(/^clients\/apex\.yaml:3: hostname: mai-hosting\.eu is the zone apex/),
      expect.stringMatching(/^clients\/bidi\.yaml:1: name: expected a display name without control or invisible characters, got U\+202E \(RIGHT-TO-LEFT OVERRIDE\)/),
      expect.stringMatching(/^clients\/open\.yaml:4: env\.WEBUI_AUTH: WEBUI_AUTH="False" turns login off/),
      expect.stringMatching(/^clients\/open\.yaml:5: env\.WEBUI_AUTH_TRUSTED_EMAIL_HEADER: .*trusted-header login/),
      expect.stringMatching(/^clients\/open\.yaml:6: env\.DATABASE_URL: DATABASE_URL moves the database off the data volume/),
      expect.stringMatching(/^clients\/open\.yaml:7: env\.HOST: HOST changes the address the workspace listens on/),
      "clients/open.yaml:8: env.GREETING: the value contains a NUL byte (\\0) at character 3 (value not shown): Docker creates the container but it can never start; remove it",
      expect.stringMatching(/^clients\/open\.yaml:9: env\.OAUTH_MERGE_ACCOUNTS_BY_EMAIL: .*mai-hosting:allowedClientEnv: \{ open: \[OAUTH_MERGE_ACCOUNTS_BY_EMAIL\] \}$/),
      expect.stringMatching(/^clients\/xn--cme-1na\.yaml: file name: .*"xn--cme-1na" is a punycode label/),
      "check failed: 9 problems",
    ]);
    expect(run.stderr).not.toMatch(/[\u0000\u202e]/);
    expect(run.stderr).not.toContain("zebra");
    // The port is checked once the file's own mistakes are fixed.
    fs.writeFileSync(path.join(dir, "clients", "open.yaml"), "name: Open\nport: 2019\n");
    for (const name of ["xn--cme-1na", "apex", "bidi"]) fs.rmSync(path.join(dir, "clients", `${name}.yaml`));
    const again = await runCheck(dir);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("clients/open.yaml:2: port: port 2019 is taken by Caddy's admin API (localhost:2019) on every server");
  });

  it("accepts a refused-by-default variable the stack allows for that client, with a warning", async () => {
    const dir = workspace({ "clients/sso.yaml": 'name: SSO\nport: 3100\nenv:\n  OAUTH_MERGE_ACCOUNTS_BY_EMAIL: "true"\n' });
    fs.appendFileSync(path.join(dir, "Pulumi.prod.yaml"), "  mai-hosting:allowedClientEnv:\n    sso: [OAUTH_MERGE_ACCOUNTS_BY_EMAIL]\n");
    const run = await runCheck(dir);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(
      'warning: clients/sso.yaml: env.OAUTH_MERGE_ACCOUNTS_BY_EMAIL logs an OAuth login into the existing account with the same e-mail address',
    );
    expect(run.stdout).toContain('allowed for "sso" by mai-hosting:allowedClientEnv in Pulumi.prod.yaml');
  });

  it("refuses stack settings that open SSH, fail at Hetzner or drop spend, and plaintext credentials of any namespace (exit 1)", async () => {
    const dir = workspace();
    const stackFile = path.join(dir, "Pulumi.prod.yaml");
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPSC1l/62VRwD1a2oO5ETlwMnjE84napWFyJKnqj306o ops@mai-hosting.eu";
    const text = fs
      .readFileSync(stackFile, "utf8")
      .replace("    - 203.0.113.10/32\n    - 2001:db8:4d2::/48\n", "    - 0.0.0.0/1\n    - 128.0.0.0/1\n    - 192.168.10.0/24\n")
      .replace(`    - ${key}\n`, `    - ${key}\n    - ${key}\n`)
      .concat("  mai-hosting:pricing:\n    currency: EUR\n    usdExchangeRate: 0\n  hcloud:token: hcloud-PLAINTEXT-token\n  cloudflare:apiToken: cf-PLAINTEXT\n");
    fs.writeFileSync(stackFile, text);
    const lineOf = (needle: string) => text.split("\n").findIndex((line) => line.includes(needle)) + 1;
    const run = await runCheck(dir);
    expect(run.code).toBe(1);
    expectNoStackTrace(run);
    const lines = run.stderr.trim().split("\n");
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(new RegExp(`^Pulumi\\.prod\\.yaml:${lineOf("  hcloud:token: ")}: hcloud:token: is stored in plain text \\(value not shown\\).*pulumi config set --secret hcloud:token <value>`)),
        expect.stringMatching(new RegExp(`^Pulumi\\.prod\\.yaml:${lineOf("  cloudflare:apiToken: ")}: cloudflare:apiToken: is stored in plain text`)),
        expect.stringMatching(/^Pulumi\.prod\.yaml:\d+: mai-hosting:sshPublicKeys\[1\]: is the same key as sshPublicKeys\[0\]/),
        expect.stringMatching(/^Pulumi\.prod\.yaml:\d+: mai-hosting:adminCidrs\[0\]: "0\.0\.0\.0\/1" covers 2147483648 addresses \(50 % of all IPv4 addresses\)/),
        expect.stringMatching(/^Pulumi\.prod\.yaml:\d+: mai-hosting:adminCidrs\[1\]: "128\.0\.0\.0\/1" covers/),
        expect.stringMatching(/^Pulumi\.prod\.yaml:\d+: mai-hosting:adminCidrs\[2\]: "192\.168\.10\.0\/24" is a private range .*can never let anyone reach SSH/),
        expect.stringMatching(/^Pulumi\.prod\.yaml:\d+: mai-hosting:pricing\.usdExchangeRate: .*got 0 \(a rate of 0 drops every client's OpenRouter spend from the invoice\)/),
      ]),
    );
    expect(lines[lines.length - 1]).toBe("check failed: 7 problems");
    expect(run.stderr).not.toContain("PLAINTEXT");
  });
});
