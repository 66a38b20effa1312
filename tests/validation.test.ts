import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { STACK_MANAGED_ENV, clientFileSchema, validateClientFile } from "../config/clientFile";
import { type ConfigIssue, ConfigError, closestMatch, describeValue, formatIssue } from "../config/configIssues";
import {
  type ClientSource,
  type StackConfigSource,
  clientKeyCommand,
  missingClientKeys,
  readClientSources,
  readStackFile,
  resolveConfiguration,
} from "../config/configuration";
import { PROJECT, SECRET_CONFIG_KEYS, parseStackSettings } from "../config/stackSettings";
import { findServerType } from "../config/serverTypes";
import { formatMemory, parseMemory } from "../config/units";
import { parseYamlMapping, readYamlFile } from "../config/yamlSource";

const SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPSC1l/62VRwD1a2oO5ETlwMnjE84napWFyJKnqj306o ops@mai-hosting.eu";

const STACK_VALUES: Record<string, unknown> = {
  domain: "mai-hosting.eu",
  cloudflareZoneId: "0123456789abcdef0123456789abcdef",
  sshPublicKeys: [SSH_KEY],
  adminCidrs: ["203.0.113.10/32"],
  defaultImage: "ghcr.io/mai-hosting/mai:1.4.2",
  acmeEmail: "ops@mai-hosting.eu",
};

function stack(overrides: Record<string, unknown> = {}): StackConfigSource {
  const values = { ...STACK_VALUES, ...overrides };
  for (const [key, value] of Object.entries(values)) if (value === undefined) delete values[key];
  return { file: "Pulumi.test.yaml", values };
}

function client(slug: string, text: string, extension = ".yaml"): ClientSource {
  return { file: `clients/${slug}${extension}`, text };
}

/** Runs `action`, which must throw a ConfigError, and returns its issues. */
function issuesOf(action: () => unknown): ConfigIssue[] {
  try {
    action();
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

/** Issues of a single client file checked together with a valid stack. */
function clientIssues(text: string, slug = "acme"): string[] {
  return issuesOf(() => resolveConfiguration(stack(), [client(slug, text)])).map(formatIssue);
}

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-validation-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

describe("memory units", () => {
  it("parses M and G into MiB, fractions only when whole", () => {
    expect(parseMemory("4G")).toEqual({ mb: 4096 });
    expect(parseMemory("1536M")).toEqual({ mb: 1536 });
    expect(parseMemory("1.5G")).toEqual({ mb: 1536 });
    expect(parseMemory("0.3G")).toEqual({ problem: expect.stringContaining("307.2 MiB") });
    for (const bad of ["4g", "4GB", "4096", "G", "-1G", "1e3M"]) expect(parseMemory(bad)).toHaveProperty("problem");
  });

  it("formats MiB back into the config spelling", () => {
    expect(formatMemory(4096)).toBe("4G");
    expect(formatMemory(1536)).toBe("1536M");
    expect(formatMemory(126976)).toBe("124G");
  });
});

describe("issue formatting", () => {
  it("names file, line, field and message", () => {
    expect(formatIssue({ file: "clients/acme.yaml", line: 3, path: "port", message: "expected x" })).toBe(
      "clients/acme.yaml:3: port: expected x",
    );
    expect(formatIssue({ file: "clients/acme.yaml", path: "", message: "file is empty" })).toBe("clients/acme.yaml: file is empty");
  });

  it("suggests close field names, including swapped letters", () => {
    expect(closestMatch("prot", ["name", "port"])).toBe("port");
    expect(closestMatch("hostnmae", ["hostname", "status"])).toBe("hostname");
    expect(closestMatch("banana", ["name", "port"])).toBeUndefined();
  });

  it("never shows secret-looking values", () => {
    expect(describeValue("sk-or-v1-0123456789abcdef0123456789abcdef")).not.toContain("sk-or");
    expect(describeValue("x".repeat(100)).length).toBeLessThan(70);
  });
});

describe("YAML reading", () => {
  it("reports malformed YAML with its line", () => {
    const issues = clientIssues("name: Acme\nport: 3001\nenv:\n  A: \"unterminated\n");
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^clients\/acme\.yaml:\d+: invalid YAML/);
    const tab = clientIssues("name: Acme\n\tport: 3001\n");
    expect(tab[0]).toMatch(/^clients\/acme\.yaml:2: /);
  });

  it("refuses an empty file and a comment-only file", () => {
    expect(clientIssues("")).toEqual([expect.stringMatching(/^clients\/acme\.yaml: file is empty; expected at least name and port/)]);
    expect(clientIssues("# nothing yet\n")).toEqual([expect.stringContaining("file is empty")]);
  });

  it("refuses documents that are not a mapping", () => {
    expect(clientIssues("- name: Acme\n- port: 3001\n")[0]).toContain("expected a mapping of client fields");
    expect(clientIssues("just a sentence\n")[0]).toContain("got a single line of text (15 characters, not shown)");
    expect(clientIssues("just a sentence\n")[0]).not.toContain("just a");
    expect(clientIssues("name: a\n---\nport: 3001\n")[0]).toContain("only one YAML document");
  });

  it("reports duplicate keys with both lines", () => {
    const issues = clientIssues("name: Acme\nport: 3001\nname: Other\n");
    expect(issues).toEqual(['clients/acme.yaml:3: name: duplicate key "name" (first defined on line 1)']);
  });

  it("refuses a billion-laughs alias bomb quickly", () => {
    let text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
    for (let i = 0; i < 9; i++) text += `b${i}: &b${i} [${Array(9).fill(i === 0 ? "*a" : `*b${i - 1}`).join(",")}]\n`;
    const started = performance.now();
    const issues = clientIssues(text);
    expect(performance.now() - started).toBeLessThan(500);
    expect(issues.join("\n")).toContain("too many aliases");
  });

  it("refuses deep nesting and complex keys quickly", () => {
    const cases = [
      "name: " + "[".repeat(50_000),
      "? ".repeat(30_000) + "x",
      Array.from({ length: 120 }, (_, i) => `${" ".repeat(i * 4)}? - `).join("\n") + "x",
      Array.from({ length: 300 }, (_, i) => `${" ".repeat(i)}k:`).join("\n"),
      "[a, b]: 1\n",
    ];
    for (const text of cases) {
      const started = performance.now();
      const result = parseYamlMapping("x.yaml", text);
      expect(performance.now() - started).toBeLessThan(500);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.issues[0].message).toMatch(/nested too deeply|keys must be plain names/);
    }
  });

  it("refuses files above the size cap without parsing them", () => {
    const result = parseYamlMapping("big.yaml", `name: "${"x".repeat(10 * 1024 * 1024)}"\n`);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.issues[0].message).toMatch(/file is 10\.0 MiB; configuration files are limited to 64 KiB/);
  });

  it("caps the problems listed for one file", () => {
    const text = Array.from({ length: 500 }, (_, i) => `key${i}: 1`).join("\n");
    let error: unknown;
    try {
      resolveConfiguration(stack(), [client("acme", text)]);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toHaveLength(502);
    const lines = (error as ConfigError).message.split("\n");
    expect(lines).toHaveLength(26);
    expect(lines[25]).toBe("clients/acme.yaml: 477 more problems in this file not shown");
  });

  it("maps field paths to lines, missing fields to their parent", () => {
    const result = parseYamlMapping("x.yaml", "a: 1\nb:\n  c: 2\n  d: [x, y]\nl:\n  - one\n  - two\n");
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.mapping.lineOf(["b", "c"])).toBe(3);
    expect(result.mapping.lineOf(["b", "missing"])).toBe(2);
    expect(result.mapping.lineOf(["l", 1])).toBe(7);
    expect(result.mapping.lineOf(["missing"])).toBeUndefined();
  });
});

describe("client file names", () => {
  it("accepts DNS-label slugs with .yaml and .yml", () => {
    const configuration = resolveConfiguration(stack(), [
      client("acme", "name: Acme\nport: 3001\n"),
      client("b2b-42", "name: B2B\nport: 3002\n", ".yml"),
    ]);
    expect(configuration.clients.map((c) => c.slug)).toEqual(["acme", "b2b-42"]);
  });

  it.each([
    ["Acme", /got "Acme" \(e\.g\. "acme"\)/],
    ["acme_corp", /got "acme_corp" \(e\.g\. "acme-corp"\)/],
    ["-acme", /not starting or ending with "-"/],
    ["a".repeat(41), /got 41 characters/],
    ["proxy", /"proxy" is reserved: the client's Docker container would be mai-proxy/],
    ["network", /"network" is reserved: the client's Docker network would be mai-network/],
    ["caddy", /"caddy" is reserved: the client's Docker volume would be mai-caddy-data/],
  ])("refuses the file name %s", (slug, expected) => {
    const issues = clientIssues("name: Acme\nport: 3001\n", slug);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(new RegExp(`^clients/${slug}\\.yaml: file name: the file name is the client's slug; `));
    expect(issues[0]).toMatch(expected);
  });

  it("reads only visible .yaml/.yml files from a directory, sorted, paths as given", () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, "zeta.yaml"), "name: Z\nport: 3002\n");
    fs.writeFileSync(path.join(dir, "alpha.yml"), "name: A\nport: 3001\n");
    fs.writeFileSync(path.join(dir, "README.md"), "# not a client\n");
    fs.writeFileSync(path.join(dir, "notes.json"), "{}");
    fs.mkdirSync(path.join(dir, "sub.yaml"));
    fs.symlinkSync("user@host.1234", path.join(dir, ".#zeta.yaml"));
    const sources = readClientSources(dir);
    expect(sources.map((source) => source.file)).toEqual([path.join(dir, "alpha.yml"), path.join(dir, "zeta.yaml")]);
  });

  it("refuses a client file that is a symbolic link or not a regular file, without reading or showing it", () => {
    const dir = tempDir();
    const secret = path.join(tempDir(), "environ");
    fs.writeFileSync(secret, "OPENROUTER_PROVISIONING_KEY=sk-or-v1-abcdef\nHOME=/root\n");
    fs.symlinkSync(secret, path.join(dir, "leak.yaml"));
    fs.symlinkSync("/proc/self/environ", path.join(dir, "env.yaml"));
    execFileSync("mkfifo", [path.join(dir, "pipe.yaml")]);
    fs.writeFileSync(path.join(dir, "acme.yaml"), "name: A\nport: 3001\n");
    const issues = issuesOf(() => readClientSources(dir)).map(formatIssue);
    expect(issues).toEqual([
      `${path.join(dir, "env.yaml")}: is a symbolic link; client files must be regular files (the link was not followed)`,
      `${path.join(dir, "leak.yaml")}: is a symbolic link; client files must be regular files (the link was not followed)`,
      `${path.join(dir, "pipe.yaml")}: is not a regular file; client files must be regular files (nothing was read)`,
    ]);
    expect(issues.join("\n")).not.toMatch(/OPENROUTER|HOME=|PATH=/);
  });

  it("never follows a link even when it appears between listing and reading", () => {
    const dir = tempDir();
    const target = path.join(tempDir(), "target.yaml");
    fs.writeFileSync(target, "name: A\nport: 3001\n");
    fs.symlinkSync(target, path.join(dir, "acme.yaml"));
    expect(() => readYamlFile(path.join(dir, "acme.yaml"))).toThrow(expect.objectContaining({ code: "ELOOP" }));
  });

  it("reports a missing clients directory", () => {
    const issues = issuesOf(() => readClientSources(path.join(tempDir(), "nope")));
    expect(issues[0].message).toContain("directory not found");
  });

  it("reports two files with the same slug", () => {
    const issues = issuesOf(() =>
      resolveConfiguration(stack(), [client("acme", "name: A\nport: 3001\n"), client("acme", "name: B\nport: 3002\n", ".yml")]),
    ).map(formatIssue);
    expect(issues).toEqual(['clients/acme.yml: same slug "acme" as clients/acme.yaml; keep one of the two files']);
  });
});

describe("client fields", () => {
  it("requires name and port", () => {
    expect(clientIssues("status: active\n")).toEqual([
      "clients/acme.yaml: name: missing; expected the organisation's display name (1-64 characters)",
      "clients/acme.yaml: port: missing; expected an integer from 1024 to 65535",
    ]);
  });

  it.each([
    ["port: 80", "clients/acme.yaml:2: port: expected an integer from 1024 to 65535, got 80"],
    ["port: 65536", "port: expected an integer from 1024 to 65535, got 65536"],
    ["port: 3001.5", "port: expected an integer from 1024 to 65535, got 3001.5"],
    ['port: "3001"', 'got "3001" (remove the quotes)'],
    ["port: [3001]", "got a list"],
  ])("port %s", (line, expected) => {
    expect(clientIssues(`name: Acme\n${line}\n`)).toEqual([expect.stringContaining(expected)]);
  });

  it.each([
    ["name: ''", "got an empty name"],
    [`name: ${"x".repeat(65)}`, "got 65 characters"],
    ["name: 42", "got 42 (quote it so YAML keeps it as text)"],
    ['name: "a\\nb"', "without control characters"],
  ])("name %s", (line, expected) => {
    expect(clientIssues(`${line}\nport: 3001\n`)).toEqual([expect.stringContaining(expected)]);
  });

  it.each([
    ["https://chat.acme.de", 'remove "https://"'],
    ["chat.acme.de:8443", "remove the port"],
    ["chat.acme.de/app", "remove the path"],
    ["chat.acme.de.", "remove the trailing dot"],
    ["'*.acme.de'", "wildcards are not supported"],
    ["Chat.Acme.de", "write it in lower case"],
    ["localhost", "at least two labels"],
    ["-chat.acme.de", "labels of 1-63 characters"],
    ["10.0.0.1", "IP addresses are not host names"],
  ])("hostname %s", (value, expected) => {
    const issues = clientIssues(`name: Acme\nport: 3001\nhostname: ${value}\n`);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^clients\/acme\.yaml:3: hostname: expected a bare lower-case host name like "chat\.example\.com"/);
    expect(issues[0]).toContain(expected);
  });

  it.each([
    ['""', "got an empty string"],
    ['"Anna Admin <anna@acme.de>"', "without a name or angle brackets"],
    ['"anna @acme.de"', "no spaces"],
    ["anna", 'exactly one "@"'],
    ["anna@b@acme.de", 'exactly one "@"'],
    ["Anna@Acme.de", "write it in lower case"],
    ["anna..b@acme.de", 'the part before "@"'],
    [".anna@acme.de", 'the part before "@"'],
    ["anna@acme", 'after "@" a bare lower-case host name like "example.com" with at least two labels'],
    ["anna@-acme.de", 'after "@" a bare lower-case host name'],
    ["anna@10.0.0.1", "IP addresses are not host names"],
    [`${"a".repeat(65)}@acme.de`, 'the part before "@"'],
    [`anna@${"a".repeat(62)}.${"b".repeat(62)}.${"c".repeat(62)}.${"d".repeat(62)}.de`, "at most 254"],
    ["42", "quote it so YAML keeps it as text"],
  ])("admin %s", (value, expected) => {
    const issues = clientIssues(`name: Acme\nport: 3001\nadmin: ${value}\n`);
    expect(issues).toEqual([expect.stringMatching(/^clients\/acme\.yaml:3: admin: expected an e-mail address like "it-admin@example\.com"/)]);
    expect(issues[0]).toContain(expected);
  });

  it("accepts a plain lower-case admin e-mail and defaults it to admin@<slug>.<domain>", () => {
    const configuration = resolveConfiguration(stack(), [
      client("acme", "name: Acme\nport: 3001\nadmin: it.admin+mai@acme-industrie.de\n"),
      client("beta", "name: Beta\nport: 3002\nhostname: chat.beta.de\n"),
    ]);
    expect(configuration.clients.map((c) => c.admin)).toEqual(["it.admin+mai@acme-industrie.de", "admin@beta.mai-hosting.eu"]);
  });

  it("status must be active or suspended", () => {
    expect(clientIssues("name: Acme\nport: 3001\nstatus: paused\n")).toEqual([
      'clients/acme.yaml:3: status: expected "active" or "suspended", got "paused"',
    ]);
  });

  it.each([
    ["ghcr.io/mai-hosting/mai", 'add ":<version>"'],
    ["ghcr.io/mai-hosting/mai:latest", '"latest" moves; pin a version'],
    ["GHCR.io/Mai/MAI:1.0", "like"],
    ["ghcr.io/mai-hosting/mai:1.4 extra", "like"],
  ])("image %s", (value, expected) => {
    const issues = clientIssues(`name: Acme\nport: 3001\nimage: ${value}\n`);
    expect(issues).toEqual([expect.stringMatching(/^clients\/acme\.yaml:3: image: expected a container image with a pinned version/)]);
    expect(issues[0]).toContain(expected);
  });

  it("accepts pinned images by tag or digest", () => {
    for (const image of ["ghcr.io/mai-hosting/mai:1.4.2", "registry.example.com:5000/team/mai:2025-01", `mai@sha256:${"a".repeat(64)}`]) {
      const configuration = resolveConfiguration(stack(), [client("acme", `name: Acme\nport: 3001\nimage: "${image}"\n`)]);
      expect(configuration.clients[0].image).toBe(image);
    }
  });

  it.each([
    ["cpus: 0", "resources.cpus: expected a number of vCPUs above 0"],
    ["cpus: -1", "got -1"],
    ["cpus: 0.333", "with at most 2 decimals"],
    ['cpus: "2"', 'got "2"'],
    ["memory: 4096", 'resources.memory: expected a size like "4G" or "1536M" (M = MiB, G = GiB), at least 512M, got 4096 (add a unit'],
    ["memory: 256M", 'got "256M"'],
    ["memory: 4GB", 'got "4GB"'],
    ["memory: 0.3G", "not a whole number of MiB"],
  ])("resources %s", (line, expected) => {
    const issues = clientIssues(`name: Acme\nport: 3001\nresources:\n  ${line}\n`);
    expect(issues).toEqual([expect.stringMatching(/^clients\/acme\.yaml:4: resources\./)]);
    expect(issues[0]).toContain(expected);
  });

  it("refuses unknown fields at every level with a suggestion", () => {
    const issues = clientIssues(
      "name: Acme\nprot: 3001\nport: 3001\nresources:\n  memroy: 4G\n  reservations:\n    cpu: 1\nopenrouter:\n  monthlyLimit: 5\nfoo: bar\n",
    );
    expect(issues).toEqual([
      'clients/acme.yaml:2: prot: unknown field "prot"; did you mean "port"? (allowed: name, port, hostname, status, admin, image, resources, env, server, moveFrom, openrouter)',
      'clients/acme.yaml:5: resources.memroy: unknown field "memroy"; did you mean "memory"? (allowed: cpus, memory, reservations, pids)',
      'clients/acme.yaml:7: resources.reservations.cpu: unknown field "cpu"; did you mean "cpus"? (allowed: cpus, memory)',
      'clients/acme.yaml:9: openrouter.monthlyLimit: unknown field "monthlyLimit"; did you mean "monthlyLimitUsd"? (allowed: monthlyLimitUsd)',
      'clients/acme.yaml:10: foo: unknown field "foo" (allowed: name, port, hostname, status, admin, image, resources, env, server, moveFrom, openrouter)',
    ]);
  });

  it("openrouter.monthlyLimitUsd must be above 0", () => {
    expect(clientIssues("name: Acme\nport: 3001\nopenrouter:\n  monthlyLimitUsd: 0\n")).toEqual([
      "clients/acme.yaml:4: openrouter.monthlyLimitUsd: expected a US dollar amount above 0, like 50, got 0",
    ]);
  });
});

describe("client env", () => {
  it("accepts plain non-secret strings", () => {
    const configuration = resolveConfiguration(stack(), [
      client("acme", 'name: Acme\nport: 3001\nenv:\n  DEFAULT_LOCALE: "de-DE"\n  ENABLE_API_KEY: "true"\n  MAX_TOKEN: "4096"\n  SMTP_PASSWORD: ""\n'),
    ]);
    expect(configuration.clients[0].env).toEqual({ DEFAULT_LOCALE: "de-DE", ENABLE_API_KEY: "true", MAX_TOKEN: "4096", SMTP_PASSWORD: "" });
  });

  it("asks to quote non-string values", () => {
    expect(clientIssues("name: Acme\nport: 3001\nenv:\n  ENABLE_X: true\n  LIMIT: 5\n  EMPTY:\n")).toEqual([
      'clients/acme.yaml:4: env.ENABLE_X: expected a string, got true (quote it: "true", so YAML keeps it as text)',
      'clients/acme.yaml:5: env.LIMIT: expected a string, got 5 (quote it: "5", so YAML keeps it as text)',
      'clients/acme.yaml:6: env.EMPTY: expected a string, got an empty value (write "" for an empty value)',
    ]);
  });

  it("refuses bad variable names", () => {
    expect(clientIssues('name: Acme\nport: 3001\nenv:\n  lower_case: "x"\n  9LIVES: "x"\n')).toEqual([
      'clients/acme.yaml:4: env.lower_case: expected an environment variable name of A-Z, 0-9 and _ (not starting with a digit), got "lower_case"',
      'clients/acme.yaml:5: env.9LIVES: expected an environment variable name of A-Z, 0-9 and _ (not starting with a digit), got "9LIVES"',
    ]);
  });

  it.each(STACK_MANAGED_ENV.map((name) => [name]))("refuses the stack-managed variable %s", (name) => {
    const issues = clientIssues(`name: Acme\nport: 3001\nenv:\n  ${name}: "x"\n`);
    expect(issues).toEqual([expect.stringContaining(`clients/acme.yaml:4: env.${name}: ${name} is managed by the stack`)]);
  });

  it("lists exactly the stack-managed variables of the brief", () => {
    expect([...STACK_MANAGED_ENV].sort()).toEqual(
      [
        "WEBUI_SECRET_KEY",
        "OPENAI_API_KEY",
        "OPENAI_API_KEYS",
        "OPENAI_API_BASE_URL",
        "OPENAI_API_BASE_URLS",
        "ENABLE_SIGNUP",
        "WEBUI_URL",
        "WEBUI_NAME",
        "ENV",
        "ORGANIZATION_NAME",
        "OPENROUTER_EXTERNAL_USER",
        "WEBUI_SESSION_COOKIE_SECURE",
        "WEBUI_SESSION_COOKIE_SAME_SITE",
        "PORT",
        "DATA_DIR",
        "ENABLE_PERSISTENT_CONFIG",
        "WEBUI_ADMIN_EMAIL",
        "WEBUI_ADMIN_PASSWORD",
      ].sort(),
    );
  });

  const secrets: Array<[string, string]> = [
    ["MY_KEY", "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef"],
    ["OTHER", "sk-proj-0123456789abcdefABCDEF0123"],
    ["CERT", "-----BEGIN RSA PRIVATE KEY-----\\nMIIEow"],
    ["GH", "ghp_0123456789abcdefABCDEF0123456789abcd"],
    ["SLACK", "xoxb-1234-5678-abcdef"],
    ["AWS", "AKIAIOSFODNN7EXAMPLE"],
    ["DB_URL", "postgres://app:hunter2@db.internal/app"],
    ["SMTP_PASSWORD", "hunter2"],
    ["GITHUB_TOKEN", "abc123"],
    ["OAUTH_CLIENT_SECRET", "s3cr3t"],
    ["SEARCH_API_KEY", "0f3c-key"],
  ];
  it.each(secrets)("refuses the secret-looking %s without showing it", (name, value) => {
    const issues = clientIssues(`name: Acme\nport: 3001\nenv:\n  ${name}: "${value}"\n`);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toContain(`clients/acme.yaml:4: env.${name}:`);
    expect(issues[0]).toContain("secrets belong in Pulumi secret config");
    expect(issues[0]).not.toContain(value.replace(/\\n.*/, "").slice(0, 12));
  });
});

describe("resolution with stack defaults", () => {
  it("applies hostname, image and resource defaults", () => {
    const configuration = resolveConfiguration(stack(), [
      client("acme", "name: Acme\nport: 3001\nresources:\n  memory: 6G\n"),
      client("beta", "name: Beta\nport: 3002\nhostname: chat.beta.de\nstatus: suspended\nimage: ghcr.io/mai-hosting/mai:2.0.0\n"),
    ]);
    const [acme, beta] = configuration.clients;
    expect(acme).toMatchObject({
      slug: "acme",
      file: "clients/acme.yaml",
      hostname: "acme.mai-hosting.eu",
      defaultHostname: "acme.mai-hosting.eu",
      status: "active",
      image: "ghcr.io/mai-hosting/mai:1.4.2",
      resources: { cpus: 2, memoryMb: 6144, reservedCpus: 1, reservedMemoryMb: 2048 },
      env: {},
    });
    expect(beta).toMatchObject({ hostname: "chat.beta.de", defaultHostname: "beta.mai-hosting.eu", status: "suspended", image: "ghcr.io/mai-hosting/mai:2.0.0" });
    expect(configuration.settings.backupRetentionDays).toBe(30);
  });

  it("orders clients by slug whatever the input order", () => {
    const configuration = resolveConfiguration(stack(), [client("zulu", "name: Z\nport: 3001\n"), client("alpha", "name: A\nport: 3002\n")]);
    expect(configuration.clients.map((c) => c.slug)).toEqual(["alpha", "zulu"]);
  });

  it("refuses reservations above limits and says when a value is the stack default", () => {
    expect(clientIssues("name: Acme\nport: 3001\nresources:\n  memory: 1G\n")).toEqual([
      "clients/acme.yaml:4: resources.memory: memory reservation 2G (stack default mai-hosting:defaultResources.reservations.memory) exceeds the memory limit 1G; a reservation must not exceed its limit",
    ]);
    expect(clientIssues("name: Acme\nport: 3001\nresources:\n  reservations:\n    cpus: 3\n")).toEqual([
      "clients/acme.yaml:5: resources.reservations.cpus: CPU reservation 3 exceeds the CPU limit 2 (stack default mai-hosting:defaultResources.cpus); a reservation must not exceed its limit",
    ]);
    expect(clientIssues("name: Acme\nport: 3001\nresources:\n  memory: 2G\n  reservations:\n    memory: 3G\n")).toEqual([
      "clients/acme.yaml:6: resources.reservations.memory: memory reservation 3G exceeds the memory limit 2G; a reservation must not exceed its limit",
    ]);
  });
});

describe("cross-file rules", () => {
  it("refuses duplicate ports, naming both files", () => {
    const issues = issuesOf(() =>
      resolveConfiguration(stack(), [client("beta", "name: B\n\nport: 3001\n"), client("alpha", "name: A\nport: 3001\n")]),
    ).map(formatIssue);
    expect(issues).toEqual([
      'clients/beta.yaml:3: port: port 3001 is already used by clients/alpha.yaml ("alpha"); every client needs its own port',
    ]);
  });

  it("checks ports even in files with other mistakes", () => {
    const issues = issuesOf(() =>
      resolveConfiguration(stack(), [client("alpha", "name: A\nport: 3001\n"), client("beta", "name: B\nport: 3001\nstatus: off\n")]),
    ).map(formatIssue);
    expect(issues).toContain('clients/beta.yaml:2: port: port 3001 is already used by clients/alpha.yaml ("alpha"); every client needs its own port');
    expect(issues).toHaveLength(2);
  });

  it("refuses a hostname served by another client (explicit or default)", () => {
    const issues = issuesOf(() =>
      resolveConfiguration(stack(), [
        client("alpha", "name: A\nport: 3001\nhostname: chat.shared.de\n"),
        client("beta", "name: B\nport: 3002\nhostname: chat.shared.de\n"),
        client("gamma", "name: G\nport: 3003\nhostname: alpha.mai-hosting.eu\n"),
        client("delta", "name: D\nport: 3004\nhostname: delta.mai-hosting.eu\n"),
      ]),
    ).map(formatIssue);
    expect(issues).toEqual([
      "clients/beta.yaml:3: hostname: chat.shared.de is already served by clients/alpha.yaml (its hostname); every host name belongs to one client",
      "clients/gamma.yaml:3: hostname: alpha.mai-hosting.eu is already served by clients/alpha.yaml (its default host name); every host name belongs to one client",
    ]);
  });

  it("reports all errors of all files and the stack at once, stack first, then by file and line", () => {
    const issues = issuesOf(() =>
      resolveConfiguration(stack({ domain: undefined, adminCidrs: ["0.0.0.0/0"] }), [
        client("beta", "name: B\nport: 80\n"),
        client("alpha", "name: A\nport: 3001\nstatus: paused\nenv:\n  PORT: \"1\"\n"),
        client("Bad", "name: C\nport: 3003\n"),
        client("empty", ""),
      ]),
    ).map(formatIssue);
    expect(issues).toEqual([
      'Pulumi.test.yaml: mai-hosting:domain: missing; expected a domain like "mai-hosting.eu"',
      'Pulumi.test.yaml: mai-hosting:adminCidrs[0]: "0.0.0.0/0" would open SSH to the whole internet; list the administrators\' addresses instead',
      expect.stringMatching(/^clients\/Bad\.yaml: file name: /),
      'clients/alpha.yaml:3: status: expected "active" or "suspended", got "paused"',
      "clients/alpha.yaml:5: env.PORT: PORT is managed by the stack (the container always listens on 8080); remove it from the client file",
      "clients/beta.yaml:2: port: expected an integer from 1024 to 65535, got 80",
      expect.stringMatching(/^clients\/empty\.yaml: file is empty/),
    ]);
  });
});

describe("stack settings", () => {
  it("applies the defaults of the brief", () => {
    const result = parseStackSettings(stack());
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.settings).toMatchObject({
      serverType: "ccx53",
      location: "nbg1",
      serverImage: "ubuntu-24.04",
      defaultResources: { cpus: 2, memoryMb: 4096, reservedCpus: 1, reservedMemoryMb: 2048 },
      hostReserve: { cpus: 2, memoryMb: 4096 },
      backupRetentionDays: 30,
    });
  });

  it("accepts Pulumi runtime config strings (numbers as text, lists and objects as JSON)", () => {
    const result = parseStackSettings(
      stack({
        sshPublicKeys: JSON.stringify([SSH_KEY]),
        adminCidrs: "2001:db8::/48",
        backupRetentionDays: "14",
        defaultResources: JSON.stringify({ cpus: "3", memory: "6G", reservations: { cpus: 1.5 } }),
        hostReserve: '{"cpus":4,"memory":"8G"}',
        openrouterApiKeys: '{"acme":"sk-or-v1-abc"}',
        openrouterProvisioningKey: "sk-or-v1-def",
      }),
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.settings.adminCidrs).toEqual(["2001:db8::/48"]);
    expect(result.settings.backupRetentionDays).toBe(14);
    expect(result.settings.defaultResources).toEqual({ cpus: 3, memoryMb: 6144, reservedCpus: 1.5, reservedMemoryMb: 2048, pidsLimit: 1024 });
    expect(result.settings.hostReserve).toEqual({ cpus: 4, memoryMb: 8192 });
    expect(JSON.stringify(result.settings)).not.toContain("sk-or");
  });

  it("reports a missing domain and every other mistake at once", () => {
    const result = parseStackSettings(
      stack({
        domain: undefined,
        cloudflareZoneId: "not-a-zone",
        serverType: "cx22",
        location: "fra1",
        sshPublicKeys: [],
        acmeEmail: "ops",
        backupRetentionDays: 0,
        defaultImage: "mai:latest",
      }),
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues.map(formatIssue)).toEqual([
      'Pulumi.test.yaml: mai-hosting:domain: missing; expected a domain like "mai-hosting.eu"',
      'Pulumi.test.yaml: mai-hosting:cloudflareZoneId: expected the Cloudflare zone id of the domain (32 lower-case hex characters, from the zone\'s overview page), got "not-a-zone"',
      'Pulumi.test.yaml: mai-hosting:serverType: expected a Hetzner CCX server type (ccx13, ccx23, ccx33, ccx43, ccx53, ccx63), got "cx22"',
      'Pulumi.test.yaml: mai-hosting:location: expected a Hetzner location (nbg1, fsn1, hel1, ash, hil, sin), got "fra1"',
      "Pulumi.test.yaml: mai-hosting:sshPublicKeys: expected at least one OpenSSH public key (root logins use it)",
      'Pulumi.test.yaml: mai-hosting:defaultImage: expected a container image with a pinned version, like "ghcr.io/mai-hosting/mai:1.4.2", got "mai:latest" ("latest" moves; pin a version)',
      'Pulumi.test.yaml: mai-hosting:acmeEmail: expected an e-mail address for Let\'s Encrypt notices, like "ops@example.com", got "ops"',
      "Pulumi.test.yaml: mai-hosting:backupRetentionDays: expected an integer from 1 to 3650, got 0",
    ]);
  });

  it.each([
    ["0.0.0.0/0", "would open SSH to the whole internet"],
    ["::/0", "would open SSH to the whole internet"],
    ["203.0.113.10", 'add "/32" for a single address'],
    ["203.0.113.10/33", "an IPv4 prefix is at most /32"],
    ["203.0.113.10/24", 'did you mean "203.0.113.0/24"?'],
    ["2001:db8::1/48", 'did you mean "2001:db8::/48"?'],
    ["300.1.1.1/32", "not an IP address"],
    ["office", 'expected a CIDR like "203.0.113.7/32"'],
  ])("refuses the admin CIDR %s", (cidr, expected) => {
    const result = parseStackSettings(stack({ adminCidrs: ["198.51.100.0/24", cidr] }));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues.map(formatIssue)).toEqual([expect.stringContaining("mai-hosting:adminCidrs[1]: ")]);
    expect(result.issues[0].message).toContain(expected);
  });

  it("accepts valid IPv4 and IPv6 CIDRs", () => {
    const result = parseStackSettings(stack({ adminCidrs: ["198.51.100.0/24", "203.0.113.10/32", "2001:db8:4d2::/48", "2001:db8::1/128"] }));
    expect(result.ok).toBe(true);
  });

  it("refuses broken SSH public keys and never shows a private key", () => {
    const privateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----";
    const result = parseStackSettings(stack({ sshPublicKeys: [SSH_KEY.slice(0, 50), "ssh-dss AAAAB3 x", privateKey] }));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const lines = result.issues.map(formatIssue);
    expect(lines[0]).toContain("sshPublicKeys[0]: expected an OpenSSH public key");
    expect(lines[0]).toContain("damaged or truncated");
    expect(lines[1]).toContain("sshPublicKeys[1]: expected an OpenSSH public key");
    expect(lines[2]).toContain("sshPublicKeys[2]: this is a private key (not shown)");
    expect(lines.join("\n")).not.toContain("b3BlbnNzaC1rZXktdjEAAAAA");
  });

  it("refuses unknown keys with a suggestion, and ignores the secret keys", () => {
    const result = parseStackSettings(
      stack({ domian: "x", openrouterApiKey: "sk-or-v1-zzz", defaultResources: { memroy: "4G" }, openrouterApiKeys: { acme: "x" }, sshPrivateKey: "x" }),
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const lines = result.issues.map(formatIssue);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^Pulumi\.test\.yaml: mai-hosting:domian: unknown field "domian"; did you mean "domain"\?/);
    expect(lines[1]).toMatch(/mai-hosting:openrouterApiKey: unknown field "openrouterApiKey"; did you mean "openrouterApiKeys"\?/);
    expect(lines[2]).toMatch(/mai-hosting:defaultResources\.memroy: unknown field "memroy"; did you mean "memory"\?/);
    expect(lines.join("\n")).not.toContain("sk-or-v1-zzz");
  });

  it("refuses a default reservation above the default limit", () => {
    const result = parseStackSettings(stack({ defaultResources: { memory: "1G" } }));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues.map(formatIssue)).toEqual([
      "Pulumi.test.yaml: mai-hosting:defaultResources.reservations.memory: memory reservation 2G (built-in default) exceeds the memory limit 1G",
    ]);
  });

  it("exports the project name and the secret keys", () => {
    expect(PROJECT).toBe("mai-hosting");
    expect([...SECRET_CONFIG_KEYS]).toEqual(["openrouterApiKeys", "openrouterProvisioningKey", "sshPrivateKey", "alertWebhookUrl"]);
    expect(findServerType("ccx53")).toEqual({ name: "ccx53", cpus: 32, memoryMb: 131072 });
  });
});

describe("stack file reading", () => {
  const stackFileText = [
    "secretsprovider: passphrase",
    "config:",
    "  hcloud:token:",
    "    secure: v1:AAAA",
    "  mai-hosting:domain: mai-hosting.eu",
    "  mai-hosting:cloudflareZoneId: \"0123456789abcdef0123456789abcdef\"",
    "  mai-hosting:sshPublicKeys:",
    `    - ${SSH_KEY}`,
    "  mai-hosting:adminCidrs:",
    "    - 203.0.113.10/24",
    "  mai-hosting:defaultImage: ghcr.io/mai-hosting/mai:1.4.2",
    "  acmeEmail: ops@mai-hosting.eu",
    "  mai-hosting:openrouterProvisioningKey:",
    "    secure: v1:BBBB",
    "  mai-hosting:openrouterApiKeys:",
    "    acme:",
    "      secure: v1:CCCC",
    "    beta: sk-or-v1-plaintext-oops",
    "",
  ].join("\n");

  it("lists secret paths, ignores other namespaces and flags plain-text secrets", () => {
    const file = path.join(tempDir(), "Pulumi.prod.yaml");
    fs.writeFileSync(file, stackFileText);
    const read = readStackFile(file);
    expect(read.secretPaths).toEqual(["openrouterApiKeys.acme", "openrouterProvisioningKey"]);
    expect(Object.keys(read.values).sort()).toEqual(
      ["acmeEmail", "adminCidrs", "cloudflareZoneId", "defaultImage", "domain", "openrouterApiKeys", "openrouterProvisioningKey", "sshPublicKeys"].sort(),
    );
    expect(read.issues.map(formatIssue)).toEqual([
      `${file}:18: mai-hosting:openrouterApiKeys.beta: is stored in plain text (value not shown); remove it and set it with: pulumi config set --secret --path 'openrouterApiKeys.beta' <value>`,
    ]);
    // Line numbers reach the settings messages.
    const issues = issuesOf(() => resolveConfiguration(read, [])).map(formatIssue);
    expect(issues).toEqual([expect.stringMatching(new RegExp(`^${file.replace(/[.\\]/g, "\\$&")}:10: mai-hosting:adminCidrs\\[0\\]: .*did you mean "203\\.0\\.113\\.0/24"`))]);
  });

  it("reports a missing or broken stack file as a ConfigError", () => {
    const dir = tempDir();
    expect(issuesOf(() => readStackFile(path.join(dir, "Pulumi.nope.yaml")))[0].message).toContain("stack config not found");
    const broken = path.join(dir, "Pulumi.broken.yaml");
    fs.writeFileSync(broken, "config:\n  mai-hosting:domain: x\n  mai-hosting:domain: y\n");
    expect(issuesOf(() => readStackFile(broken)).map(formatIssue)).toEqual([
      `${broken}:3: config.mai-hosting:domain: duplicate key "mai-hosting:domain" (first defined on line 2)`,
    ]);
  });
});

describe("OpenRouter keys", () => {
  const configuration = resolveConfiguration(stack(), [
    client("alpha", "name: A\nport: 3001\n"),
    client("beta", "name: B\nport: 3002\nopenrouter:\n  monthlyLimitUsd: 50\n"),
    client("gamma", "name: G\nport: 3003\nstatus: suspended\n"),
    client("delta", "name: D\nport: 3004\n"),
  ]);

  it("lists active clients without a key or a managed key", () => {
    expect(missingClientKeys(configuration.clients, [])).toEqual(["alpha", "beta", "delta"]);
    expect(missingClientKeys(configuration.clients, ["openrouterApiKeys.alpha"])).toEqual(["beta", "delta"]);
    expect(missingClientKeys(configuration.clients, ["openrouterApiKeys.alpha", "openrouterProvisioningKey"])).toEqual(["delta"]);
  });

  it("gives the exact command", () => {
    expect(clientKeyCommand("acme")).toBe("pulumi config set --secret --path 'openrouterApiKeys.acme' <key>");
  });
});

describe("editor JSON Schema", () => {
  it("can be generated from the client schema", () => {
    const schema = z.toJSONSchema(clientFileSchema, { io: "input" }) as {
      additionalProperties: boolean;
      required: string[];
      properties: Record<string, { description?: string }>;
    };
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required.sort()).toEqual(["name", "port"]);
    for (const [field, property] of Object.entries(schema.properties)) {
      expect(property.description, field).toBeTruthy();
    }
  });

  it("validates a single file on its own", () => {
    const result = validateClientFile("clients/acme.yaml", "name: Acme\nport: 3001\n");
    expect(result.ok).toBe(true);
  });
});
