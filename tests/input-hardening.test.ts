/**
 * Inputs that look valid but would open a workspace, move its data off the volume, break its
 * routing, take a name or port the zone or host owns, or fail only at `pulumi up`: each class is
 * refused by the configuration loader with the file, the field and what it would do.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, describe, expect, it } from "vitest";
import { STACK_MANAGED_ENV } from "../config/clientFile";
import { type ConfigIssue, ConfigError, describeValue, formatIssue } from "../config/configIssues";
import { type ClientSource, type StackConfigSource, readStackFile, resolveConfiguration } from "../config/configuration";
import { parseStackSettings } from "../config/stackSettings";
import { clientEnvRefusal, clientEnvRuleNames, optInClientEnvNames, upstreamTrue } from "../policy/clientEnvPolicy";
import { STACK_ENV } from "../policy/clientContainer";
import { hostServicePorts } from "../policy/hostPorts";

const SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPSC1l/62VRwD1a2oO5ETlwMnjE84napWFyJKnqj306o ops@mai-hosting.eu";
const OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGM4MGOX7YbdfdC7p0G4DIPbftY1bSSP2p00HLXL047q alice@mai-hosting.eu";

const STACK_VALUES: Record<string, unknown> = {
  domain: "mai-hosting.eu",
  cloudflareZoneId: "0123456789abcdef0123456789abcdef",
  sshPublicKeys: [SSH_KEY],
  adminCidrs: ["203.0.113.10/32"],
  defaultImage: "ghcr.io/mai-hosting/mai:1.4.2",
  acmeEmail: "ops@mai-hosting.eu",
};

const LOCAL_STACK: Record<string, unknown> = {
  domain: "localhost",
  defaultImage: "mai-local/workspace:1",
  servers: { local: { kind: "local", httpPort: 8080, httpsPort: 8443 }, other: { kind: "local", httpPort: 9080, httpsPort: 9443, stateDir: "/var/tmp/x", dockerHost: "tcp://127.0.0.1:2375" } },
  defaultServer: "local",
};

function stack(overrides: Record<string, unknown> = {}, base = STACK_VALUES): StackConfigSource {
  const values = { ...base, ...overrides };
  for (const [key, value] of Object.entries(values)) if (value === undefined) delete values[key];
  return { file: "Pulumi.test.yaml", values };
}

function client(slug: string, text: string): ClientSource {
  return { file: `clients/${slug}.yaml`, text };
}

function issuesOf(action: () => unknown): ConfigIssue[] {
  try {
    action();
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

/** Formatted issues of client files checked with a valid stack (or `overrides` of it). */
function issues(clients: ClientSource[], overrides: Record<string, unknown> = {}, base = STACK_VALUES): string[] {
  return issuesOf(() => resolveConfiguration(stack(overrides, base), clients)).map(formatIssue);
}

/** The issues of one env entry in `clients/acme.yaml` (line 4), with an optional stack. */
function envIssues(name: string, value: string, overrides: Record<string, unknown> = {}): string[] {
  return issues([client("acme", `name: Acme\nport: 3001\nenv:\n  ${name}: ${JSON.stringify(value)}\n`)], overrides);
}

/** Whether the env entry passes (the configuration resolves). */
function envAccepted(name: string, value: string, overrides: Record<string, unknown> = {}): boolean {
  try {
    resolveConfiguration(stack(overrides), [client("acme", `name: Acme\nport: 3001\nenv:\n  ${name}: ${JSON.stringify(value)}\n`)]);
    return true;
  } catch (error) {
    if (error instanceof ConfigError) return false;
    throw error;
  }
}

function stackIssues(overrides: Record<string, unknown>): string[] {
  const result = parseStackSettings(stack(overrides));
  return result.ok ? [] : result.issues.map(formatIssue);
}

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

describe("environment that opens a workspace", () => {
  it.each(["False", "false", "FALSE", "0", "no", "off", "1", "yes", " true", "true ", ""])('refuses WEBUI_AUTH=%j (login off)', (value) => {
    const found = envIssues("WEBUI_AUTH", value);
    expect(found).toEqual([expect.stringMatching(/^clients\/acme\.yaml:4: env\.WEBUI_AUTH: WEBUI_AUTH=.* turns login off/)]);
  });

  it.each(["true", "True", "TRUE"])("accepts WEBUI_AUTH=%j (Open WebUI reads it as on)", (value) => {
    expect(upstreamTrue(value)).toBe(true);
    expect(envAccepted("WEBUI_AUTH", value)).toBe(true);
  });

  it.each([
    "WEBUI_AUTH_TRUSTED_EMAIL_HEADER",
    "WEBUI_AUTH_TRUSTED_NAME_HEADER",
    "WEBUI_AUTH_TRUSTED_GROUPS_HEADER",
    "WEBUI_AUTH_TRUSTED_ROLE_HEADER",
    "WEBUI_AUTH_TRUSTED_SOMETHING_NEW",
  ])("refuses the trusted-header login variable %s whatever its value", (name) => {
    for (const value of ["X-Forwarded-Email", "Remote-User", ""]) {
      const found = envIssues(name, value);
      expect(found).toEqual([expect.stringContaining(`env.${name}: ${name} is trusted-header login`)]);
      expect(found[0]).toContain("Caddy passes request headers through");
      // Stack allowances cannot open it either.
      expect(envAccepted(name, value, { allowedClientEnv: { acme: [] } })).toBe(false);
    }
  });

  it.each(["false", "False", "0", "", "no"])("refuses WEBUI_AUTH_COOKIE_SECURE=%j and accepts only true", (value) => {
    expect(envIssues("WEBUI_AUTH_COOKIE_SECURE", value)).toEqual([expect.stringContaining("login cookie over plain HTTP")]);
    expect(envAccepted("WEBUI_AUTH_COOKIE_SECURE", "true")).toBe(true);
  });

  it("refuses a SameSite=none login cookie unless allowed, and any other value but lax or strict", () => {
    for (const value of ["none", "None", "NONE"]) {
      const found = envIssues("WEBUI_AUTH_COOKIE_SAME_SITE", value);
      expect(found).toEqual([expect.stringContaining("cross-site request forgery")]);
      expect(found[0]).toContain("mai-hosting:allowedClientEnv: { acme: [WEBUI_AUTH_COOKIE_SAME_SITE] }");
      expect(envAccepted("WEBUI_AUTH_COOKIE_SAME_SITE", value, { allowedClientEnv: { acme: ["WEBUI_AUTH_COOKIE_SAME_SITE"] } })).toBe(true);
    }
    for (const value of ["lax", "Strict"]) expect(envAccepted("WEBUI_AUTH_COOKIE_SAME_SITE", value)).toBe(true);
    expect(envIssues("WEBUI_AUTH_COOKIE_SAME_SITE", "sometimes")).toEqual([expect.stringContaining('expects "lax" or "strict"')]);
    expect(envAccepted("WEBUI_AUTH_COOKIE_SAME_SITE", "sometimes", { allowedClientEnv: { acme: ["WEBUI_AUTH_COOKIE_SAME_SITE"] } })).toBe(false);
  });

  it("says why an unquoted refused value is refused, instead of only asking to quote it", () => {
    expect(issues([client("acme", "name: Acme\nport: 3001\nenv:\n  WEBUI_AUTH: false\n  ENABLE_SIGNUP: true\n  DEFAULT_LOCALE: 5\n")])).toEqual([
      expect.stringMatching(/^clients\/acme\.yaml:4: env\.WEBUI_AUTH: WEBUI_AUTH="false" turns login off.*\(and values are quoted strings\)$/),
      expect.stringMatching(/^clients\/acme\.yaml:5: env\.ENABLE_SIGNUP: ENABLE_SIGNUP is managed by the stack/),
      'clients/acme.yaml:6: env.DEFAULT_LOCALE: expected a string, got 5 (quote it: "5", so YAML keeps it as text)',
    ]);
  });

  it("keeps the stack's own session cookie and sign-up settings", () => {
    for (const [name, value] of [["WEBUI_SESSION_COOKIE_SECURE", "false"], ["WEBUI_SESSION_COOKIE_SAME_SITE", "none"], ["ENABLE_SIGNUP", "true"], ["ENABLE_SIGNUP", "True"]]) {
      expect(envIssues(name, value)).toEqual([expect.stringContaining(`${name} is managed by the stack`)]);
    }
  });

  it.each([
    ["ENABLE_OAUTH_SIGNUP", "true", "anyone with an account at the configured OAuth provider"],
    ["ENABLE_OAUTH_SIGNUP", "True", "anyone with an account at the configured OAuth provider"],
    ["ENABLE_OAUTH_SIGNUP", "1", "anyone with an account at the configured OAuth provider"],
    ["OAUTH_MERGE_ACCOUNTS_BY_EMAIL", "true", "hands a stranger that account"],
    ["OAUTH_MERGE_ACCOUNTS_BY_EMAIL", "TRUE", "hands a stranger that account"],
    ["DEFAULT_USER_ROLE", "admin", "makes every new account an admin"],
    ["DEFAULT_USER_ROLE", " Admin", "makes every new account an admin"],
  ])("refuses %s=%j unless the stack allows it for the client", (name, value, what) => {
    const found = envIssues(name, value);
    expect(found).toEqual([expect.stringContaining(what)]);
    expect(found[0]).toMatch(new RegExp(`^clients/acme\\.yaml:4: env\\.${name}: `));
    expect(found[0]).toContain(`Refused unless allowed for this client on purpose: list it in the stack file (Pulumi.<stack>.yaml) as mai-hosting:allowedClientEnv: { acme: [${name}] }`);
    // Allowed for acme: accepted, and said so on every run.
    const configuration = resolveConfiguration(stack({ allowedClientEnv: { acme: [name] } }), [
      client("acme", `name: Acme\nport: 3001\nenv:\n  ${name}: ${JSON.stringify(value)}\n`),
    ]);
    expect(configuration.clients[0].env[name]).toBe(value);
    expect(configuration.warnings).toContainEqual(expect.stringMatching(new RegExp(`^clients/acme\\.yaml: env\\.${name} .*allowed for "acme" by mai-hosting:allowedClientEnv in Pulumi\\.test\\.yaml`)));
    // Allowed for another client only: still refused for acme.
    expect(envAccepted(name, value, { allowedClientEnv: { beta: [name] } })).toBe(false);
  });

  it.each([
    ["ENABLE_OAUTH_SIGNUP", "false"],
    ["OAUTH_MERGE_ACCOUNTS_BY_EMAIL", "False"],
    ["DEFAULT_USER_ROLE", "pending"],
    ["DEFAULT_USER_ROLE", "user"],
    ["ENABLE_API_KEYS", "true"],
    ["ENABLE_LOGIN_FORM", "false"],
  ])("accepts %s=%j", (name, value) => {
    expect(envAccepted(name, value)).toBe(true);
  });

  it.each(["WEBUI_ADMIN_PASSWORD", "ADMIN_USER_PASSWORD"])("refuses an admin password in %s, numbers included, without showing it", (name) => {
    for (const value of ["123456", "hunter2", "Winter2026!"]) {
      const found = envIssues(name, value);
      // WEBUI_ADMIN_PASSWORD is the stack's own (the generated first admin); either way it is refused.
      expect(found).toEqual([
        expect.stringMatching(/creates an admin account with a password written in the repository \(value not shown\)|is managed by the stack \(the stack generates the first admin's password/),
      ]);
      expect(found[0]).not.toContain(value);
    }
  });

  it("takes no number for harmless in a password variable", () => {
    expect(envIssues("SMTP_PASSWORD", "123456")).toEqual([expect.stringContaining("looks like it holds a secret (value not shown)")]);
    expect(envAccepted("SMTP_PASSWORD", "")).toBe(true);
    expect(envAccepted("MAX_TOKEN", "4096")).toBe(true);
  });

  it("refuses every variable the stack sets for a client, not only the listed ones", () => {
    for (const name of Object.keys(STACK_ENV)) expect(STACK_MANAGED_ENV, name).toContain(name);
  });
});

describe("environment that moves data off the volume or breaks routing", () => {
  it.each([
    ["DATABASE_URL", "sqlite:////tmp/webui.db"],
    ["DATABASE_URL", "sqlite:////app/backend/data/webui.db"],
    ["DATABASE_URL", "postgresql://db:5432/mai"],
    ["DATABASE_TYPE", "sqlite+sqlcipher"],
    ["DATABASE_HOST", "db.internal"],
    ["DATABASE_PASSWORD", "hunter2"],
    ["DATA_DIR", "/tmp/data"],
  ])("refuses %s whatever its value (%j)", (name, value) => {
    const found = envIssues(name, value);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(new RegExp(`^clients/acme\\.yaml:4: env\\.${name}: `));
    expect(found[0]).toMatch(/off the data volume|the data volume is mounted by the stack/);
    expect(found[0]).not.toContain(value);
    expect(envAccepted(name, value, { allowedClientEnv: { acme: [] } })).toBe(false);
  });

  it.each(["127.0.0.1", "0.0.0.0", "::", "localhost"])("refuses HOST=%j: the workspace must listen on every address", (value) => {
    expect(envIssues("HOST", value)).toEqual([expect.stringContaining("HOST changes the address the workspace listens on")]);
  });

  it("refuses PORT and the Hugging Face Space switches of the start script", () => {
    expect(envIssues("PORT", "3000")).toEqual([expect.stringContaining("PORT is managed by the stack")]);
    for (const name of ["SPACE_ID", "SPACE_HOST"]) expect(envIssues(name, "x")).toEqual([expect.stringContaining("replaces the stack's WEBUI_URL")]);
  });

  it.each([
    ["STORAGE_PROVIDER", "s3", "local"],
    ["STORAGE_PROVIDER", "gcs", "Local"],
    ["VECTOR_DB", "pgvector", "chroma"],
    ["VECTOR_DB", "qdrant", "chroma"],
    ["CHROMA_HTTP_HOST", "chroma.internal", ""],
    ["UPLOAD_DIR", "/tmp/uploads", "/app/backend/data/uploads"],
    ["CACHE_DIR", "/app/backend/data/../cache", "/app/backend/data/cache"],
    ["AUDIT_LOGS_FILE_PATH", "audit.log", "/app/backend/data/audit.log"],
    ["MILVUS_URI", "http://milvus:19530", "/app/backend/data/vector_db/milvus.db"],
    ["WHISPER_MODEL_DIR", "/models", "/app/backend/data/cache/whisper/models"],
    ["HF_HOME", "/root/.cache", "/app/backend/data/cache/embedding/models"],
  ])("refuses %s=%j unless allowed, accepts %j", (name, refused, accepted) => {
    const found = envIssues(name, refused);
    expect(found).toEqual([expect.stringMatching(/outside the data volume|instead of the data volume/)]);
    expect(found[0]).toContain(`allowedClientEnv: { acme: [${name}] }`);
    expect(envAccepted(name, refused, { allowedClientEnv: { acme: [name] } })).toBe(true);
    expect(envAccepted(name, accepted)).toBe(true);
  });
});

describe("values Docker cannot take", () => {
  it("refuses a NUL byte in a value without printing the value or the byte", () => {
    const found = issues([client("acme", 'name: Acme\nport: 3001\nenv:\n  GREETING: "hello\\0world"\n')]);
    expect(found).toEqual([
      "clients/acme.yaml:4: env.GREETING: the value contains a NUL byte (\\0) at character 6 (value not shown): Docker creates the container but it can never start; remove it",
    ]);
    expect(found[0]).not.toContain("\u0000");
    expect(found[0]).not.toContain("world");
  });

  it("checks the Docker rule before every other env rule, so even a managed name says why", () => {
    expect(envIssues("WEBUI_AUTH", "tr\u0000ue")).toEqual([expect.stringContaining("NUL byte")]);
  });

  it("refuses an unpaired surrogate (the engine would store U+FFFD) and accepts newlines and non-ASCII text", () => {
    expect(issues([client("acme", 'name: Acme\nport: 3001\nenv:\n  GREETING: "a\\uD800b"\n')])).toEqual([
      expect.stringContaining("env.GREETING: the value contains an unpaired surrogate (\\ud800) at character 2"),
    ]);
    expect(envAccepted("GREETING", "line one\nline two")).toBe(true);
    expect(envAccepted("GREETING", "Grüße 😀")).toBe(true);
  });

  it("escapes a NUL or bidi character in a refused variable name", () => {
    const found = issues([client("acme", 'name: Acme\nport: 3001\nenv:\n  "A\\0B": "x"\n  "C\\u202eD": "y"\n')]);
    expect(found).toHaveLength(2);
    expect(found.join("\n")).not.toMatch(/[\u0000\u202e]/);
    expect(found[0]).toContain('got "A\\u0000B"');
    expect(found[1]).toContain('got "C\\u202eD"');
  });
});

describe("names and ports the zone or the host owns", () => {
  it("refuses the zone apex and www as a client's hostname", () => {
    expect(issues([client("acme", "name: Acme\nport: 3001\nhostname: mai-hosting.eu\n")])).toEqual([
      "clients/acme.yaml:3: hostname: mai-hosting.eu is the zone apex: the domain itself (its website and mail are the domain owner's, not a client's); use the default acme.mai-hosting.eu or another name below mai-hosting.eu",
    ]);
    expect(issues([client("acme", "name: Acme\nport: 3001\nhostname: www.mai-hosting.eu\n")])).toEqual([
      expect.stringContaining("www.mai-hosting.eu is the zone's own web address"),
    ]);
  });

  it("refuses a hostname above or below another client's name, and accepts one below the client's own", () => {
    expect(
      issues([client("acme", "name: A\nport: 3001\n"), client("beta", "name: B\nport: 3002\nhostname: chat.acme.mai-hosting.eu\n")]),
    ).toEqual([expect.stringContaining("clients/beta.yaml:3: hostname: chat.acme.mai-hosting.eu is below acme.mai-hosting.eu, which clients/acme.yaml serves")]);
    expect(
      issues([
        client("acme", "name: A\nport: 3001\nhostname: chat.acme-industrie.de\n"),
        client("beta", "name: B\nport: 3002\nhostname: acme-industrie.de\n"),
      ]),
    ).toEqual([expect.stringContaining("clients/beta.yaml:3: hostname: acme-industrie.de is above chat.acme-industrie.de, which clients/acme.yaml serves")]);
    expect(() => resolveConfiguration(stack(), [client("acme", "name: A\nport: 3001\nhostname: chat.acme.mai-hosting.eu\n")])).not.toThrow();
  });

  it.each(["xn--mller-kva", "xn--pple-43d", "ab--cd", "xn--80ak6aa92e"])("refuses the IDNA-reserved slug %s", (slug) => {
    const found = issues([client(slug, "name: X\nport: 3001\n")]);
    expect(found).toEqual([expect.stringMatching(new RegExp(`^clients/${slug}\\.yaml: file name: the file name is the client's slug; "${slug}" (is a punycode label|has "--" as its 3rd and 4th characters)`))]);
  });

  it("shows what a punycode slug would look like, escaped", () => {
    expect(issues([client("xn--pple-43d", "name: X\nport: 3001\n")])[0]).toContain('(browsers show it as "аpple")');
  });

  it("accepts slugs with hyphens elsewhere", () => {
    expect(() => resolveConfiguration(stack(), [client("a-b--c", "name: X\nport: 3001\n"), client("abc-d", "name: Y\nport: 3002\n")])).not.toThrow();
  });

  it("refuses a punycode label below our domain, accepts one in the client's own domain", () => {
    expect(issues([client("acme", "name: A\nport: 3001\nhostname: xn--pple-43d.mai-hosting.eu\n")])).toEqual([
      expect.stringContaining('clients/acme.yaml:3: hostname: "xn--pple-43d" is a punycode label'),
    ]);
    expect(issues([client("acme", "name: A\nport: 3001\nhostname: chat.xn--80ak6aa92e.mai-hosting.eu\n")])).toHaveLength(1);
    expect(() => resolveConfiguration(stack(), [client("acme", "name: A\nport: 3001\nhostname: chat.xn--mller-kva.de\n")])).not.toThrow();
  });

  it("refuses Caddy's admin port on a Hetzner server", () => {
    expect(issues([client("acme", "name: A\nport: 2019\n")])).toEqual([
      "clients/acme.yaml:2: port: port 2019 is taken by Caddy's admin API (localhost:2019) on every server: Docker could not publish the workspace there, or the two would share it; choose another port",
    ]);
  });

  it.each([
    [8080, 'the proxy\'s HTTP port of local server "local"'],
    [8443, 'the proxy\'s HTTPS port of local server "local"'],
    [9443, 'the proxy\'s HTTPS port of local server "other"'],
    [2375, 'the Docker Engine of local server "other"'],
    [2019, "Caddy's admin API"],
  ])("refuses port %i on a local stack (%s)", (port, owner) => {
    const found = issues([client("acme", `name: A\nport: ${port}\n`)], {}, LOCAL_STACK);
    expect(found).toEqual([expect.stringContaining(`clients/acme.yaml:2: port: port ${port} is taken by ${owner}`)]);
  });

  it("lists sshd and Caddy's listeners for a Hetzner server", () => {
    const ports = hostServicePorts({ name: "host", kind: "hetzner", serverType: "ccx53", location: "nbg1" }, []).map((p) => p.port);
    expect(ports.sort((a, b) => a - b)).toEqual([22, 80, 443, 2019]);
  });

  it.each([
    ["\u0085", "U+0085 (NEXT LINE)"],
    ["\u009b", "U+009B"],
    ["\u202e", "U+202E (RIGHT-TO-LEFT OVERRIDE)"],
    ["\u2067", "U+2067 (RIGHT-TO-LEFT ISOLATE)"],
    ["\u200b", "U+200B (ZERO WIDTH SPACE)"],
    ["\ufeff", "U+FEFF (BYTE ORDER MARK)"],
    ["\u2028", "U+2028 (LINE SEPARATOR)"],
    ["\u00ad", "U+00AD (SOFT HYPHEN)"],
    ["\ue000", "U+E000"],
  ])("refuses the invisible character %j in a display name, naming it", (character, described) => {
    const found = issues([client("acme", `name: "Acme${character}GmbH"\nport: 3001\n`)]);
    expect(found).toEqual([expect.stringContaining(`clients/acme.yaml:1: name: expected a display name without control or invisible characters, got ${described} at character 5`)]);
    expect(found[0]).not.toContain(character);
  });

  it("accepts names in any script, with emoji", () => {
    expect(() => resolveConfiguration(stack(), [client("acme", 'name: "Müller & Söhne — Ελληνικά 株式会社 🚀"\nport: 3001\n')])).not.toThrow();
  });

  it("escapes invisible characters in every value a message shows", () => {
    expect(describeValue("a\u202eb\u0085c")).toBe('"a\\u202eb\\u0085c"');
    expect(formatIssue({ file: "x\u202e.yaml", path: "", message: "m" })).toBe("x\\u202e.yaml: m");
  });
});

describe("stack settings", () => {
  it.each([
    [["0.0.0.0/1", "128.0.0.0/1"], [0, 1], "50 % of all IPv4 addresses"],
    [["2000::/3"], [0], "of all IPv6 addresses"],
    [["::/1", "8000::/1"], [0, 1], "of all IPv6 addresses"],
    [["1.0.0.0/8"], [0], "at most an IPv4 /16"],
    [["8.0.0.0/15"], [0], "at most an IPv4 /16"],
    [["2a01::/16"], [0], "at most an IPv6 /32"],
  ])("refuses admin CIDRs %j that open SSH to much of the internet", (cidrs, indexes, expected) => {
    const found = stackIssues({ adminCidrs: cidrs });
    expect(found).toHaveLength(indexes.length);
    indexes.forEach((index, i) => {
      expect(found[i]).toContain(`mai-hosting:adminCidrs[${index}]: `);
      expect(found[i]).toContain(expected);
    });
  });

  it("refuses admin CIDRs that together cover too much, counting overlaps once", () => {
    const slash16 = (i: number) => `${1 + Math.floor(i / 256)}.${i % 256}.0.0/16`;
    expect(stackIssues({ adminCidrs: Array.from({ length: 256 }, (_, i) => slash16(i)) })).toEqual([]);
    expect(stackIssues({ adminCidrs: Array.from({ length: 257 }, (_, i) => slash16(i)) })).toEqual([
      expect.stringMatching(/^Pulumi\.test\.yaml: mai-hosting:adminCidrs: the IPv4 entries together cover 16842752 addresses .*more than 256 networks/),
    ]);
    // The same network many times, or smaller ones inside it, is one network.
    expect(stackIssues({ adminCidrs: [...Array(300).fill("1.2.0.0/16"), "1.2.3.0/24"] })).toEqual([]);
  });

  it.each([
    ["10.0.0.0/8", "a private range"],
    ["172.16.5.0/24", "a private range"],
    ["192.168.1.0/24", "a private range"],
    ["100.64.0.0/10", "carrier-grade NAT"],
    ["127.0.0.1/32", "loopback"],
    ["169.254.169.254/32", "link-local"],
    ["224.0.0.0/4", "multicast"],
    ["255.255.255.255/32", "reserved"],
    ["fd12:3456:789a::/48", "unique local addresses"],
    ["fe80::/64", "link-local"],
    ["::1/128", "loopback"],
    ["ff02::1/128", "multicast"],
    ["::ffff:198.51.100.1/128", "IPv4-mapped"],
    ["4000::/16", "outside IPv6's global unicast space"],
  ])("refuses the admin CIDR %s that can never match at Hetzner's firewall (%s)", (cidr, what) => {
    const found = stackIssues({ adminCidrs: ["203.0.113.10/32", cidr] });
    expect(found).toEqual([expect.stringContaining(`mai-hosting:adminCidrs[1]: "${cidr}" is ${what}`)]);
    expect(found[0]).toContain("can never let anyone reach SSH");
    // Private ranges only: nothing could ever reach SSH.
    expect(stackIssues({ adminCidrs: [cidr] })).toHaveLength(1);
  });

  it("accepts public office, VPN and provider networks, and the documentation placeholders", () => {
    expect(stackIssues({ adminCidrs: ["198.51.100.0/24", "203.0.113.10/32", "1.2.0.0/16", "2001:db8:4d2::/48", "2a01:4f8::/32", "2a01:4f8:c0c:1234::/64"] })).toEqual([]);
  });

  it("refuses the same SSH key twice, with or without the same comment", () => {
    expect(stackIssues({ sshPublicKeys: [SSH_KEY, OTHER_KEY, SSH_KEY] })).toEqual([
      "Pulumi.test.yaml: mai-hosting:sshPublicKeys[2]: is the same key as sshPublicKeys[0] (comments aside): Hetzner refuses a public key twice at pulumi up; remove one of them",
    ]);
    expect(stackIssues({ sshPublicKeys: [SSH_KEY, SSH_KEY.replace("ops@mai-hosting.eu", "laptop")] })).toEqual([
      expect.stringContaining("mai-hosting:sshPublicKeys[1]: is the same key as sshPublicKeys[0]"),
    ]);
  });

  it("refuses two keys with the same comment or the same Hetzner key name", () => {
    const sameComment = OTHER_KEY.replace("alice@mai-hosting.eu", "ops@mai-hosting.eu");
    expect(stackIssues({ sshPublicKeys: [SSH_KEY, sameComment] })).toEqual([
      'Pulumi.test.yaml: mai-hosting:sshPublicKeys[1]: has the same comment "ops@mai-hosting.eu" as sshPublicKeys[0]: the stack names each Hetzner SSH key after its comment ("mai-ops@mai-hosting.eu") and Hetzner refuses two keys with one name at pulumi up; give each key its own comment',
    ]);
    expect(stackIssues({ sshPublicKeys: [SSH_KEY, OTHER_KEY.replace("alice@mai-hosting.eu", "OPS@mai-hosting.eu")] })).toEqual([
      expect.stringContaining('sshPublicKeys[1]: gets the same Hetzner key name "mai-ops@mai-hosting.eu" as sshPublicKeys[0]'),
    ]);
    // A key without a comment is named by its position: a comment spelling that name collides too.
    const noComment = SSH_KEY.split(" ").slice(0, 2).join(" ");
    expect(stackIssues({ sshPublicKeys: [OTHER_KEY.replace("alice@mai-hosting.eu", "admin 2"), noComment] })).toEqual([
      expect.stringContaining('sshPublicKeys[1]: gets the same Hetzner key name "mai-admin-2" as sshPublicKeys[0]'),
    ]);
    expect(stackIssues({ sshPublicKeys: [SSH_KEY, OTHER_KEY] })).toEqual([]);
  });

  it.each([0, -1, Infinity, -Infinity, NaN])("refuses the exchange rate %s", (rate) => {
    const found = stackIssues({ pricing: { currency: "EUR", usdExchangeRate: rate } });
    expect(found).toEqual([expect.stringContaining("mai-hosting:pricing.usdExchangeRate: expected the value of 1 USD in the pricing currency")]);
    expect(found[0]).toContain("a number above 0");
  });

  it("says what a rate of 0 would do, refuses a rate other than 1 for USD, accepts real rates", () => {
    expect(stackIssues({ pricing: { currency: "EUR", usdExchangeRate: 0 } })[0]).toContain("drops every client's OpenRouter spend from the invoice");
    expect(stackIssues({ pricing: { currency: "USD", usdExchangeRate: 0.9 } })).toEqual([expect.stringContaining("with currency USD the rate must be 1")]);
    expect(stackIssues({ pricing: { currency: "USD" } })).toEqual([]);
    expect(stackIssues({ pricing: { currency: "EUR", usdExchangeRate: 0.92 } })).toEqual([]);
    expect(stackIssues({ pricing: JSON.stringify({ currency: "CHF", usdExchangeRate: 0.88 }) })).toEqual([]);
  });

  it("refuses an ACME e-mail address with a control or invisible character", () => {
    expect(stackIssues({ acmeEmail: "ops\u0000@mai-hosting.eu" })).toEqual([expect.stringContaining("mai-hosting:acmeEmail: expected an e-mail address")]);
    expect(stackIssues({ acmeEmail: "ops\u202e@mai-hosting.eu" })).toEqual([expect.stringContaining('got "ops\\u202e@mai-hosting.eu"')]);
  });

  it("checks the allowances themselves: only opt-in variables, named per client slug", () => {
    expect(stackIssues({ allowedClientEnv: { acme: ["WEBUI_AUTH", "DATABASE_URL", "ENABLE_SIGNUP", "DEFAULT_LOCALE", "OAUTH_MERGE_ACCOUNTS_BY_EMAIL"] } })).toEqual([
      expect.stringContaining("allowedClientEnv.acme[0]: WEBUI_AUTH cannot be allowed: the stack refuses it for every client (it would open the workspace"),
      expect.stringContaining("allowedClientEnv.acme[1]: DATABASE_URL cannot be allowed: the stack refuses it for every client (it would move the client's data off its volume"),
      expect.stringContaining("allowedClientEnv.acme[2]: ENABLE_SIGNUP cannot be allowed: the stack manages it"),
      expect.stringContaining("allowedClientEnv.acme[3]: DEFAULT_LOCALE is not refused in client files, so there is nothing to allow"),
    ]);
    expect(stackIssues({ allowedClientEnv: ["OAUTH_MERGE_ACCOUNTS_BY_EMAIL"] })).toEqual([
      expect.stringContaining("allowedClientEnv: expected a mapping of client slugs to variable names"),
    ]);
    expect(stackIssues({ allowedClientEnv: { Acme: ["VECTOR_DB"] } })).toEqual([expect.stringContaining("allowedClientEnv.Acme: expected a client slug")]);
    expect(stackIssues({ allowedClientEnv: JSON.stringify({ acme: ["VECTOR_DB"] }) })).toEqual([]);
  });

  it("applies allowances even when another stack setting is wrong, and warns about one for no client", () => {
    const file = client("acme", 'name: A\nport: 3001\nenv:\n  VECTOR_DB: "qdrant"\n');
    expect(issues([file], { allowedClientEnv: { acme: ["VECTOR_DB"] }, acmeEmail: "nope" })).toEqual([expect.stringContaining("mai-hosting:acmeEmail")]);
    const configuration = resolveConfiguration(stack({ allowedClientEnv: { acme: ["VECTOR_DB"], ghost: ["STORAGE_PROVIDER"] } }), [file]);
    expect(configuration.warnings).toContain(
      'Pulumi.test.yaml: mai-hosting:allowedClientEnv.ghost names no client file; remove it (a future client "ghost" would get its allowances)',
    );
  });

  it("documents every opt-in variable in clients/README.md", () => {
    const readme = fs.readFileSync(path.join(__dirname, "..", "clients", "README.md"), "utf8");
    for (const name of optInClientEnvNames()) expect(readme, name).toContain(`\`${name}\``);
    const never = Object.values(clientEnvRuleNames()).flatMap((bucket) => bucket.never);
    for (const name of never) expect(readme.includes(name) || readme.includes(name.replace(/^WEBUI_AUTH_TRUSTED_/, "..._")) || readme.includes(`_${name.split("_").pop()}`), name).toBe(true);
    expect(clientEnvRefusal("OAUTH_MERGE_ACCOUNTS_BY_EMAIL", "true")).toMatchObject({ class: "opens-workspace", optIn: true });
  });
});

describe("plaintext credentials in the stack file", () => {
  function stackFile(lines: string[]): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-hardening-"));
    tempDirs.push(dir);
    const file = path.join(dir, "Pulumi.prod.yaml");
    fs.writeFileSync(file, ["config:", "  mai-hosting:domain: mai-hosting.eu", ...lines, ""].join("\n"));
    return file;
  }

  it("refuses credentials of any provider's namespace stored in plain text, without showing them", () => {
    const file = stackFile([
      "  hcloud:token: 0123456789abcdefPLAIN",
      "  cloudflare:apiToken: cf-PLAIN-token",
      "  aws:secretKey: PLAINsecretKey",
      "  aws:accessKey:",
      "    secure: v1:ENCRYPTED",
      "  gcp:credentials: '{\"type\": \"service_account\"}'",
      "  azure:clientSecret: PLAINclientSecret",
      "  docker:registryAuth:",
      "    - address: ghcr.io",
      "      password: PLAINpassword",
      "  github:owner: ghp_0123456789abcdefABCDEF0123456789abcd",
      "  aws:region: eu-central-1",
      "  tls:publicKey: ssh-ed25519 AAAA",
      "  hcloud:pollInterval: 500ms",
    ]);
    const found = readStackFile(file).issues.map(formatIssue);
    const expected = [
      [3, "hcloud:token", "pulumi config set --secret hcloud:token <value>"],
      [4, "cloudflare:apiToken", "pulumi config set --secret cloudflare:apiToken <value>"],
      [5, "aws:secretKey", "pulumi config set --secret aws:secretKey <value>"],
      [8, "gcp:credentials", "pulumi config set --secret gcp:credentials <value>"],
      [9, "azure:clientSecret", "pulumi config set --secret azure:clientSecret <value>"],
      [12, "docker:registryAuth", "--path 'docker:registryAuth[0].password'"],
      [13, "github:owner", "pulumi config set --secret github:owner <value>"],
    ] as const;
    expect(found).toHaveLength(expected.length);
    expected.forEach(([line, key, command], index) => {
      expect(found[index]).toMatch(new RegExp(`^${file.replace(/[.\\/]/g, "\\$&")}:${line}: ${key.replace(/[.]/g, "\\.")}`));
      expect(found[index]).toContain("is stored in plain text (value not shown)");
      expect(found[index]).toContain(command);
    });
    expect(found.join("\n")).not.toMatch(/PLAIN|ghp_|service_account/);
  });

  it("accepts encrypted values and keys that hold no credential", () => {
    const file = stackFile(["  hcloud:token:", "    secure: v1:AAAA", "  aws:region: eu-central-1", "  tls:publicKey: ssh-ed25519 AAAA"]);
    expect(readStackFile(file).issues).toEqual([]);
  });
});
