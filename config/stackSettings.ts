/**
 * Stack-wide settings from the `mai-hosting` config namespace. Values arrive either YAML-typed
 * (read from `Pulumi.<stack>.yaml` by the CLIs) or as Pulumi runtime config strings (numbers as
 * strings, lists and objects as JSON): both spellings are accepted and mean the same.
 */
import * as net from "net";
import { z } from "zod";
import type { ClientResources, StackSettings } from "./model";
import {
  ALLOWED_CLIENT_ENV_KEY,
  ENV_NAME_PATTERN,
  MIN_MEMORY_MB,
  STACK_MANAGED_ENV,
  checkedString,
  cpuAmount,
  expecting,
  hostnameProblem,
  imageProblem,
  integerIn,
  mapping,
  memoryAmount,
  resourcesSchema,
  slugProblem,
  zodIssuesToConfigIssues,
} from "./clientFile";
import { hardRuleFor, optInClientEnvNames } from "../policy/clientEnvPolicy";
import { sshKeyName } from "../policy/hostPolicy";
import { apiBaseUrlProblem, DEFAULT_OPENROUTER_API_BASE_URL, normalizeApiBaseUrl } from "./apiBaseUrl";
import { type ConfigIssue, describeValue, unknownKeyMessage } from "./configIssues";
import { SERVER_TYPE_NAMES } from "./serverTypes";
import { chooseDefaultServer, defaultServers, parseServers, serverNameProblem } from "./servers";
import { CADDY_IMAGE } from "../policy/caddyRelease";
import { formatMemory, memoryMb } from "./units";
import {
  MAX_ADMIN_NETWORKS,
  MIN_ADMIN_PREFIX,
  type Network,
  addressToBigInt,
  maxAdminAddresses,
  networkSize,
  nonPublicRange,
  parseNetwork,
  shareOfFamily,
  unionSize,
} from "./cidrs";
import { type FieldPath, formatPath } from "./yamlSource";

/** Pulumi project name, and so the config namespace (`mai-hosting:domain`). */
export const PROJECT = "mai-hosting";

/** Secret config keys: set with `pulumi config set --secret`, never part of `StackSettings`. */
export const SECRET_CONFIG_KEYS = ["openrouterApiKeys", "openrouterProvisioningKey", "sshPrivateKey", "alertWebhookUrl"] as const;

/**
 * Processes (threads included) a client container may run unless its file or the stack says
 * otherwise: several times what Open WebUI runs (its thread pools, the embedding model's workers
 * on a 32-core server, a few Python tools), and a small share of the kernel's process table.
 */
export const DEFAULT_PIDS_LIMIT = 1024;

/** Resources a client gets for every value its file leaves out, unless the stack overrides them. */
export const DEFAULT_RESOURCES: ClientResources = { cpus: 2, memoryMb: 4096, reservedCpus: 1, reservedMemoryMb: 2048, pidsLimit: DEFAULT_PIDS_LIMIT };

/** CPU and memory kept for the OS, Docker and Caddy unless the stack overrides them. */
export const DEFAULT_HOST_RESERVE = { cpus: 2, memoryMb: 4096 };

/** The domain of a stack without Hetzner servers: clients are served as `<slug>.localhost`. */
export const LOCAL_DOMAIN = "localhost";

/** Settings a Hetzner server needs, with what is expected; optional in a stack of local servers only. */
const HETZNER_REQUIRED: ReadonlyArray<[key: "cloudflareZoneId" | "sshPublicKeys" | "adminCidrs" | "acmeEmail", expected: string]> = [
  ["cloudflareZoneId", "the Cloudflare zone id of the domain (32 lower-case hex characters)"],
  ["sshPublicKeys", "a list of OpenSSH public keys (root logins use them)"],
  ["adminCidrs", 'a list of CIDRs allowed to reach SSH, like "203.0.113.7/32"'],
  ["acmeEmail", "an e-mail address for Let's Encrypt notices"],
];

/** Hetzner Cloud locations. */
export const HETZNER_LOCATIONS: readonly string[] = ["nbg1", "fsn1", "hel1", "ash", "hil", "sin"];

/** Where a stack setting comes from: a config file (or Pulumi's runtime config) and its values. */
export interface StackSettingsSource {
  /** File named in messages, e.g. `Pulumi.prod.yaml`. */
  file: string;
  /** Config values without the `mai-hosting:` prefix. */
  values: Record<string, unknown>;
  /** Line of a config path inside `file`, when known (paths without the prefix). */
  lineOf?: (fieldPath: FieldPath) => number | undefined;
}

// ---------------------------------------------------------------------------------------------
// Single-value checks
// ---------------------------------------------------------------------------------------------

const SSH_KEY_TYPES: readonly string[] = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
];

/** Why `value` is not a single-line OpenSSH public key, or undefined. */
export function sshPublicKeyProblem(value: string): string | undefined {
  const expected = 'expected an OpenSSH public key like "ssh-ed25519 AAAAC3Nz... admin@example.com"';
  if (/PRIVATE KEY/.test(value)) {
    return "this is a private key (not shown): give the public key (the .pub file); keep the private key out of config";
  }
  const words = value.trim().split(/\s+/);
  if (value.includes("\n") || words.length < 2) return `${expected}, got ${describeValue(value)}`;
  const [type, body] = words;
  if (!SSH_KEY_TYPES.includes(type)) {
    return `${expected} (types: ${SSH_KEY_TYPES.join(", ")}), got ${describeValue(value)}`;
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return `${expected}, got ${describeValue(value)} (the key data is not base64)`;
  // The blob is a sequence of length-prefixed fields starting with the key type: a truncated or
  // pasted-together key does not parse.
  const blob = Buffer.from(body, "base64");
  const fields: Buffer[] = [];
  for (let offset = 0; offset < blob.length; ) {
    if (offset + 4 > blob.length) return damagedKey(expected, type);
    const length = blob.readUInt32BE(offset);
    if (offset + 4 + length > blob.length) return damagedKey(expected, type);
    fields.push(blob.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  const minimumFields = type === "ssh-ed25519" ? 2 : 3;
  if (fields.length < minimumFields || fields[0].toString("latin1") !== type) return damagedKey(expected, type);
  if (type === "ssh-ed25519" && fields[1].length !== 32) return damagedKey(expected, type);
  return undefined;
}

function damagedKey(expected: string, type: string): string {
  return `${expected}; the key data of this ${type} key is damaged or truncated`;
}

function bigIntToIpv6(value: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((value >> BigInt(i * 16)) & 0xffffn).toString(16));
  const text = groups.join(":");
  // Compress the longest run of zero groups.
  const runs = [...text.matchAll(/(?:^|:)0(?::0)+(?::|$)/g)];
  if (runs.length === 0) return text;
  const longest = runs.reduce((a, b) => (b[0].length > a[0].length ? b : a));
  return `${text.slice(0, longest.index)}::${text.slice(longest.index! + longest[0].length)}`;
}

/** Why `value` is not a usable admin CIDR (valid, not the whole internet, no host bits), or undefined. */
export function cidrProblem(value: string): string | undefined {
  const expected = 'expected a CIDR like "203.0.113.7/32" or "2001:db8::/48"';
  const got = describeValue(value);
  const match = /^([^/\s]+)\/(\d{1,3})$/.exec(value);
  if (match === null) {
    const version = net.isIP(value);
    if (version !== 0) return `${expected}, got ${got} (add "/${version === 4 ? 32 : 128}" for a single address)`;
    return `${expected}, got ${got}`;
  }
  const [, address, prefixText] = match;
  const version = net.isIP(address);
  if (version === 0) return `${expected}, got ${got} (not an IP address)`;
  const bits = version === 4 ? 32 : 128;
  const prefix = Number(prefixText);
  if (prefix > bits) return `${expected}, got ${got} (an IPv${version} prefix is at most /${bits})`;
  if (prefix === 0) return `${got} would open SSH to the whole internet; list the administrators' addresses instead`;
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  const numeric = addressToBigInt(address);
  if ((numeric & hostMask) !== 0n) {
    const network = numeric & ~hostMask & ((1n << BigInt(bits)) - 1n);
    const networkText =
      version === 4 ? [24, 16, 8, 0].map((shift) => Number((network >> BigInt(shift)) & 0xffn)).join(".") : bigIntToIpv6(network);
    return `${expected}, got ${got} (host bits are set; did you mean "${networkText}/${prefix}"?)`;
  }
  const parsed: Network = { version: version as 4 | 6, start: numeric, prefix };
  const special = nonPublicRange(parsed);
  if (special !== undefined) {
    return `${got} is ${special}: Hetzner's firewall sees only public source addresses, so this entry can never let anyone reach SSH; list the public address your office or VPN connects from`;
  }
  const minimum = MIN_ADMIN_PREFIX[parsed.version];
  if (prefix < minimum) {
    return `${got} covers ${networkSize(parsed)} addresses (${shareOfFamily(networkSize(parsed), parsed.version)}), which would open SSH to a large part of the internet; an admin network may be at most an IPv${version} /${minimum}: list the administrators' addresses or a VPN instead`;
  }
  return undefined;
}

/**
 * Why the admin CIDRs together open too much (see config/cidrs.ts), as an issue on the list, or
 * undefined. Entries that are not valid CIDRs are left to their own messages.
 */
export function adminCidrsUnionProblem(cidrs: readonly string[]): string | undefined {
  const networks = cidrs.filter((cidr) => cidrProblem(cidr) === undefined).map((cidr) => parseNetwork(cidr)!);
  for (const version of [4, 6] as const) {
    const covered = unionSize(networks.filter((network) => network.version === version));
    const limit = maxAdminAddresses(version);
    if (covered > limit) {
      return `the IPv${version} entries together cover ${covered} addresses (${shareOfFamily(covered, version)}), more than ${MAX_ADMIN_NETWORKS} networks of the largest allowed size (/${MIN_ADMIN_PREFIX[version]}): that opens SSH to a large part of the internet; list the administrators' addresses or a VPN instead`;
    }
  }
  return undefined;
}

/** The words of a public key line: type, key data, comment. */
function sshKeyParts(key: string): { identity: string; comment: string } {
  const [type, body, ...comment] = key.trim().split(/\s+/);
  return { identity: `${type} ${body}`, comment: comment.join(" ") };
}

/**
 * Keys Hetzner would refuse at `pulumi up` although each is valid: the same public key twice
 * (whatever the comments), or two keys with the same Hetzner name, which the stack derives from
 * the comment (`sshKeyName`). Only keys that pass `sshPublicKeyProblem` take part.
 */
export function sshKeyListProblems(keys: readonly unknown[]): Array<{ index: number; message: string }> {
  const problems: Array<{ index: number; message: string }> = [];
  const byIdentity = new Map<string, number>();
  const byName = new Map<string, number>();
  keys.forEach((key, index) => {
    if (typeof key !== "string" || sshPublicKeyProblem(key) !== undefined) return;
    const { identity, comment } = sshKeyParts(key);
    const first = byIdentity.get(identity);
    if (first !== undefined) {
      problems.push({ index, message: `is the same key as sshPublicKeys[${first}] (comments aside): Hetzner refuses a public key twice at pulumi up; remove one of them` });
      return;
    }
    byIdentity.set(identity, index);
    const name = sshKeyName(key, index);
    const owner = byName.get(name);
    if (owner === undefined) {
      byName.set(name, index);
      return;
    }
    const ownerComment = sshKeyParts(keys[owner] as string).comment;
    problems.push({
      index,
      message:
        ownerComment === comment
          ? `has the same comment ${describeValue(comment)} as sshPublicKeys[${owner}]: the stack names each Hetzner SSH key after its comment ("${name}") and Hetzner refuses two keys with one name at pulumi up; give each key its own comment`
          : `gets the same Hetzner key name "${name}" as sshPublicKeys[${owner}] (names come from the comment: lower case, other characters as "-", at most 48): Hetzner refuses two keys with one name at pulumi up; give each key a distinct comment`,
    });
  });
  return problems;
}

/** Why `name` cannot be listed in `allowedClientEnv`, or undefined when it is an opt-in variable. */
export function allowedEnvNameProblem(name: string): string | undefined {
  const optIn = optInClientEnvNames();
  if (!ENV_NAME_PATTERN.test(name)) return `expected an environment variable name of A-Z, 0-9 and _, got ${describeValue(name)}`;
  if (optIn.includes(name)) return undefined;
  if (STACK_MANAGED_ENV.includes(name)) return `${name} cannot be allowed: the stack manages it for every client`;
  const hard = hardRuleFor(name);
  if (hard !== undefined) {
    const what = { "opens-workspace": "it would open the workspace", "moves-data": "it would move the client's data off its volume", "breaks-routing": "it would break the client's routing" }[hard];
    return `${name} cannot be allowed: the stack refuses it for every client (${what}; see clients/README.md)`;
  }
  return `${name} is not refused in client files, so there is nothing to allow; the variables that need an allowance: ${optIn.join(", ")}`;
}

/**
 * `allowedClientEnv`: per client, the refused-by-default variables its file may set anyway. A
 * mapping, not a list: every allowance names the one client it is for.
 */
const allowedClientEnvSchema = z
  .record(
    z.string(),
    z
      .array(z.string({ error: expecting("an environment variable name") }), {
        error: expecting('a list of variable names, like [OAUTH_MERGE_ACCOUNTS_BY_EMAIL]'),
      })
      .check(
        z.superRefine((names: string[], ctx) => {
          names.forEach((name, index) => {
            const problem = allowedEnvNameProblem(name);
            if (problem !== undefined) ctx.addIssue({ code: "custom", path: [index], message: problem, input: name });
          });
        }),
      ),
    { error: expecting("a mapping of client slugs to variable names, like { acme: [OAUTH_MERGE_ACCOUNTS_BY_EMAIL] } (an allowance names the client it is for)") },
  )
  .check(
    z.superRefine(
      (value: unknown, ctx) => {
        if (typeof value !== "object" || value === null || Array.isArray(value)) return;
        for (const slug of Object.keys(value)) {
          const problem = slugProblem(slug);
          if (problem !== undefined) ctx.addIssue({ code: "custom", path: [slug], message: `expected a client slug: ${problem}`, input: slug });
        }
      },
      { when: (payload) => typeof payload.value === "object" && payload.value !== null },
    ),
  );

/**
 * The allowances of `allowedClientEnv` in raw config values, or none when the setting is absent or
 * invalid (its own issues are reported with the stack settings): client files are checked against
 * them even when another stack setting is wrong.
 */
export function allowedClientEnvFromValues(values: Record<string, unknown>): Record<string, string[]> {
  const parsed = objectSetting(allowedClientEnvSchema).optional().safeParse(values[ALLOWED_CLIENT_ENV_KEY]);
  return parsed.success && parsed.data !== undefined ? (parsed.data as Record<string, string[]>) : {};
}

function emailProblem(value: string): string | undefined {
  const match = /^[^@\s\p{Cc}\p{Cf}]+@([^@\s]+)$/u.exec(value);
  if (match === null || hostnameProblem(match[1]) !== undefined) {
    return `expected an e-mail address for Let's Encrypt notices, like "ops@example.com", got ${describeValue(value)}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

/** Pulumi runtime config gives every value as a string; lists/objects as JSON. */
function fromConfigString(kind: "list" | "object" | "number") {
  return (value: unknown): unknown => {
    if (typeof value !== "string") return value;
    const text = value.trim();
    if (kind === "number") return /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : value;
    if (text.startsWith("[") || text.startsWith("{")) {
      try {
        return coerceNumbers(JSON.parse(text));
      } catch {
        return value;
      }
    }
    // A single key or CIDR given as a plain string means a one-element list.
    return kind === "list" && text !== "" ? [text] : value;
  };
}

/** `pulumi config set --path defaultResources.cpus 2` stores "2": read numeric `cpus` and `pids` strings as numbers. */
function coerceNumbers(value: unknown): unknown {
  if (Array.isArray(value)) return value;
  if (typeof value !== "object" || value === null) return value;
  const result: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    if (key === "cpus" && typeof inner === "string" && /^\d+(\.\d+)?$/.test(inner.trim())) result[key] = Number(inner);
    else if (key === "pids" && typeof inner === "string" && /^\d+$/.test(inner.trim())) result[key] = Number(inner);
    else result[key] = coerceNumbers(inner);
  }
  return result;
}

const objectSetting = <T extends z.ZodType>(schema: T) => z.preprocess((value) => coerceNumbers(fromConfigString("object")(value)), schema);
const listSetting = <T extends z.ZodType>(schema: T) => z.preprocess(fromConfigString("list"), schema);
const numberSetting = <T extends z.ZodType>(schema: T) => z.preprocess(fromConfigString("number"), schema);

/** A money amount or rate: a number from 0 to `max`, at most 4 decimals. */
function amountIn(max: number, what: string) {
  const error = expecting(`${what}: a number from 0 to ${max}, like 12.5`, (input) =>
    typeof input === "string" && /^\d+(\.\d+)?$/.test(input.trim()) ? "remove the quotes" : undefined,
  );
  return z.number({ error }).min(0, { error }).max(max, { error });
}

/**
 * `usdExchangeRate`: 1 USD in the pricing currency, above 0. A rate of 0 would silently drop every
 * client's OpenRouter spend from the invoices; YAML's `.inf`/`.nan` are no rates either.
 */
function exchangeRate() {
  const expectation = "the value of 1 USD in the pricing currency (OpenRouter bills in USD): a number above 0 and at most 1000, like 0.92";
  const error = expecting(expectation, (input) =>
    input === 0 ? "a rate of 0 drops every client's OpenRouter spend from the invoice" : typeof input === "string" && /^\d+(\.\d+)?$/.test(input.trim()) ? "remove the quotes" : undefined,
  );
  return z.number({ error }).positive({ error }).max(1000, { error });
}

/** `pricing`: what `npm run invoice` charges per client (optional; without it the invoice shows no amounts). */
const pricingSchema = mapping(
  {
    currency: checkedString('a currency code like "EUR"', (value) =>
      /^[A-Z]{3}$/.test(value) ? undefined : `expected a three-letter currency code like "EUR", got ${describeValue(value)}`,
    ).default("EUR"),
    baseFeePerClient: amountIn(1_000_000, "a monthly fee per client").default(0),
    feePerActiveUser: amountIn(100_000, "a monthly fee per active user").default(0),
    usageMarkupPercent: amountIn(1000, "a markup in percent on OpenRouter spend").default(0),
    usdExchangeRate: exchangeRate().optional(),
  },
  "a mapping with currency, baseFeePerClient, feePerActiveUser, usageMarkupPercent, usdExchangeRate",
).check(
  z.superRefine((value, ctx) => {
    if (value.currency === "USD" && value.usdExchangeRate !== undefined && value.usdExchangeRate !== 1) {
      ctx.addIssue({
        code: "custom",
        path: ["usdExchangeRate"],
        message: `1 USD is 1 USD: with currency USD the rate must be 1 (or left out), got ${value.usdExchangeRate}; every OpenRouter amount would be scaled by it`,
        input: value.usdExchangeRate,
      });
    }
    if (/^[A-Z]{3}$/.test(value.currency) && value.currency !== "USD" && value.usdExchangeRate === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["usdExchangeRate"],
        message: `missing; expected the value of 1 USD in ${value.currency} (OpenRouter bills in USD), or currency: USD`,
        input: undefined,
      });
    }
  }),
);

/** Schema of the non-secret `mai-hosting:*` config values (strict: unknown keys are errors). */
export const stackSettingsSchema = mapping(
  {
    // `localhost` serves clients as <slug>.localhost on a local-only stack (checked below).
    domain: checkedString('a domain like "mai-hosting.eu"', (value) =>
      value === LOCAL_DOMAIN ? undefined : hostnameProblem(value, "mai-hosting.eu"),
    ),
    cloudflareZoneId: checkedString("the Cloudflare zone id (32 hex characters)", (value) =>
      /^[0-9a-f]{32}$/.test(value)
        ? undefined
        : `expected the Cloudflare zone id of the domain (32 lower-case hex characters, from the zone's overview page), got ${describeValue(value)}`,
    ).optional(),
    servers: objectSetting(z.unknown()).optional(),
    defaultServer: checkedString("a server name of the stack", serverNameProblem).optional(),
    serverType: z
      .enum(SERVER_TYPE_NAMES as [string, ...string[]], {
        error: expecting(`a Hetzner CCX server type (${SERVER_TYPE_NAMES.join(", ")})`),
      })
      .default("ccx53"),
    location: z
      .enum(HETZNER_LOCATIONS as [string, ...string[]], {
        error: expecting(`a Hetzner location (${HETZNER_LOCATIONS.join(", ")})`),
      })
      .default("nbg1"),
    serverImage: checkedString('a Hetzner OS image name like "ubuntu-24.04"', (value) =>
      /^[a-z0-9][a-z0-9._-]{0,63}$/.test(value)
        ? undefined
        : `expected a Hetzner OS image name like "ubuntu-24.04", got ${describeValue(value)}`,
    ).default("ubuntu-24.04"),
    sshPublicKeys: listSetting(
      z
        .array(checkedString("an OpenSSH public key", sshPublicKeyProblem), {
          error: expecting("a list of OpenSSH public keys"),
        })
        .min(1, { error: "expected at least one OpenSSH public key (root logins use it)" })
        .check(
          z.superRefine(
            (keys: unknown, ctx) => {
              if (!Array.isArray(keys)) return;
              for (const found of sshKeyListProblems(keys)) ctx.addIssue({ code: "custom", path: [found.index], message: found.message, input: keys[found.index] });
            },
            { when: () => true },
          ),
        ),
    ).optional(),
    adminCidrs: listSetting(
      z
        .array(checkedString('a CIDR like "203.0.113.7/32"', cidrProblem), {
          error: expecting('a list of CIDRs like "203.0.113.7/32"'),
        })
        .min(1, { error: "expected at least one CIDR allowed to reach SSH" })
        .check(
          z.superRefine(
            (cidrs: unknown, ctx) => {
              if (!Array.isArray(cidrs)) return;
              const problem = adminCidrsUnionProblem(cidrs.filter((cidr): cidr is string => typeof cidr === "string"));
              if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem, input: cidrs });
            },
            { when: () => true },
          ),
        ),
    ).optional(),
    defaultImage: checkedString("a container image with a pinned version", imageProblem),
    defaultResources: objectSetting(resourcesSchema()).optional(),
    hostReserve: objectSetting(
      mapping(
        {
          cpus: cpuAmount().optional(),
          memory: memoryAmount(MIN_MEMORY_MB, "512M").optional(),
        },
        "a mapping with cpus and/or memory",
      ),
    ).optional(),
    acmeEmail: checkedString("an e-mail address", emailProblem).optional(),
    proxyImage: checkedString("a Caddy container image with a pinned version", imageProblem).default(CADDY_IMAGE),
    backupRetentionDays: numberSetting(integerIn(1, 3650)).default(30),
    openrouterApiBaseUrl: checkedString("the OpenRouter API base URL", (value) => {
      const problem = apiBaseUrlProblem(value);
      return problem === undefined
        ? undefined
        : `expected the OpenRouter API base URL, https like "${DEFAULT_OPENROUTER_API_BASE_URL}" (http only for a loopback host such as 127.0.0.1), got ${
            /^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(value) ? "a URL with credentials (not shown)" : describeValue(value)
          }: ${problem}`;
    }).default(DEFAULT_OPENROUTER_API_BASE_URL),
    pricing: objectSetting(pricingSchema).optional(),
    [ALLOWED_CLIENT_ENV_KEY]: objectSetting(allowedClientEnvSchema).optional(),
  },
  "a mapping of stack settings",
);

/** Result of `parseStackSettings`. */
export type StackSettingsResult = { ok: true; settings: StackSettings } | { ok: false; issues: ConfigIssue[] };

function isEncryptedValue(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 1 && "secure" in value;
}

/** Validates the stack config values and applies defaults; secret keys are ignored. */
export function parseStackSettings(source: StackSettingsSource): StackSettingsResult {
  const lineOf = source.lineOf ?? (() => undefined);
  const issue = (fieldPath: FieldPath, message: string): ConfigIssue => ({
    file: source.file,
    line: lineOf(fieldPath),
    path: `${PROJECT}:${formatPath(fieldPath)}`,
    message,
  });

  const settingKeys = Object.keys(stackSettingsSchema.shape);
  const values: Record<string, unknown> = {};
  const issues: ConfigIssue[] = [];
  for (const [key, value] of Object.entries(source.values)) {
    if ((SECRET_CONFIG_KEYS as readonly string[]).includes(key)) continue;
    if (!settingKeys.includes(key)) {
      issues.push(issue([key], unknownKeyMessage(key, [...settingKeys, ...SECRET_CONFIG_KEYS])));
      continue;
    }
    if (isEncryptedValue(value)) {
      issues.push(issue([key], "is not a secret setting; set it in plain text with pulumi config set (without --secret)"));
      continue;
    }
    values[key] = value;
  }

  const parsed = stackSettingsSchema.safeParse(values);
  if (!parsed.success) {
    for (const found of zodIssuesToConfigIssues(source.file, stackSettingsSchema, parsed.error.issues, lineOf)) {
      issues.push({ ...found, path: `${PROJECT}:${found.path}` });
    }
    return { ok: false, issues };
  }
  if (issues.length > 0) return { ok: false, issues };

  const input = parsed.data;
  const resourcesInput = input.defaultResources ?? {};
  const defaultResources: ClientResources = {
    cpus: resourcesInput.cpus ?? DEFAULT_RESOURCES.cpus,
    memoryMb: resourcesInput.memory === undefined ? DEFAULT_RESOURCES.memoryMb : memoryMb(resourcesInput.memory),
    reservedCpus: resourcesInput.reservations?.cpus ?? DEFAULT_RESOURCES.reservedCpus,
    reservedMemoryMb:
      resourcesInput.reservations?.memory === undefined ? DEFAULT_RESOURCES.reservedMemoryMb : memoryMb(resourcesInput.reservations.memory),
    pidsLimit: resourcesInput.pids ?? DEFAULT_RESOURCES.pidsLimit,
  };
  const builtIn = (given: unknown) => (given === undefined ? " (built-in default)" : "");
  if (defaultResources.reservedCpus > defaultResources.cpus) {
    issues.push(
      issue(
        ["defaultResources", "reservations", "cpus"],
        `CPU reservation ${defaultResources.reservedCpus}${builtIn(resourcesInput.reservations?.cpus)} exceeds the CPU limit ${defaultResources.cpus}${builtIn(resourcesInput.cpus)}`,
      ),
    );
  }
  if (defaultResources.reservedMemoryMb > defaultResources.memoryMb) {
    issues.push(
      issue(
        ["defaultResources", "reservations", "memory"],
        `memory reservation ${formatMemory(defaultResources.reservedMemoryMb)}${builtIn(resourcesInput.reservations?.memory)} exceeds the memory limit ${formatMemory(defaultResources.memoryMb)}${builtIn(resourcesInput.memory)}`,
      ),
    );
  }
  const serversResult =
    input.servers === undefined
      ? { servers: defaultServers(input.serverType, input.location), issues: [] }
      : parseServers(
          input.servers,
          { serverType: input.serverType, location: input.location, locations: HETZNER_LOCATIONS },
          source.file,
          lineOf,
          (path) => `${PROJECT}:${path}`,
        );
  issues.push(...serversResult.issues);
  const defaultServer = chooseDefaultServer(serversResult.servers, input.defaultServer);
  if (serversResult.issues.length === 0 && "problem" in defaultServer) issues.push(issue(["defaultServer"], defaultServer.problem));
  const hetznerNames = serversResult.servers.filter((server) => server.kind === "hetzner").map((server) => server.name);
  if (hetznerNames.length > 0) {
    const needed = `needed for the Hetzner server${hetznerNames.length === 1 ? "" : "s"} ${hetznerNames.join(", ")}`;
    for (const [key, expected] of HETZNER_REQUIRED) {
      if (input[key] === undefined) issues.push(issue([key], `missing; expected ${expected} (${needed})`));
    }
    if (input.domain === LOCAL_DOMAIN) {
      issues.push(issue(["domain"], `"${LOCAL_DOMAIN}" is only for a stack of local servers; the Hetzner servers (${hetznerNames.join(", ")}) need a domain in Cloudflare`));
    }
  }
  if (issues.length > 0) return { ok: false, issues };

  const reserveInput = input.hostReserve ?? {};
  return {
    ok: true,
    settings: {
      domain: input.domain,
      ...(input.cloudflareZoneId === undefined ? {} : { cloudflareZoneId: input.cloudflareZoneId }),
      servers: serversResult.servers,
      ...("name" in defaultServer && defaultServer.name !== undefined ? { defaultServer: defaultServer.name } : {}),
      serverType: input.serverType,
      location: input.location,
      serverImage: input.serverImage,
      sshPublicKeys: (input.sshPublicKeys ?? []).map((key) => key.trim()),
      adminCidrs: input.adminCidrs ?? [],
      defaultImage: input.defaultImage,
      defaultResources,
      hostReserve: {
        cpus: reserveInput.cpus ?? DEFAULT_HOST_RESERVE.cpus,
        memoryMb: reserveInput.memory === undefined ? DEFAULT_HOST_RESERVE.memoryMb : memoryMb(reserveInput.memory),
      },
      ...(input.acmeEmail === undefined ? {} : { acmeEmail: input.acmeEmail }),
      proxyImage: input.proxyImage,
      backupRetentionDays: input.backupRetentionDays,
      openrouterApiBaseUrl: normalizeApiBaseUrl(input.openrouterApiBaseUrl),
      ...(input.pricing === undefined ? {} : { pricing: { ...input.pricing, usdExchangeRate: input.pricing.usdExchangeRate ?? 1 } }),
      allowedClientEnv: (input[ALLOWED_CLIENT_ENV_KEY] ?? {}) as Record<string, string[]>,
    },
  };
}
