/**
 * The client file `clients/<slug>.yaml`: its zod schema (also the source of the editor JSON Schema),
 * the slug rules for its file name, and the checks that keep secrets and stack-managed settings out
 * of it. Every message says what is expected and shows what was found (secrets are never shown).
 */
import * as path from "path";
import { domainToUnicode } from "url";
import { z } from "zod";
import { clientEnvRefusal, dockerEnvValueProblem } from "../policy/clientEnvPolicy";
import { dockerCpusProblem } from "../policy/dockerCanonical";
import { reservedSlugs } from "../policy/sharedNames";
import {
  type ConfigIssue,
  describeCodePoint,
  describeValue,
  firstInvisibleCharacter,
  secretKind,
  unknownKeyMessage,
} from "./configIssues";
import { MEMORY_FORMAT, MEMORY_PATTERN, parseMemory } from "./units";
import { type FieldPath, type YamlMapping, formatPath, parseYamlMapping } from "./yamlSource";

// ---------------------------------------------------------------------------------------------
// File names and slugs
// ---------------------------------------------------------------------------------------------

/** Extensions of client files; other files in the clients directory are ignored. */
export const CLIENT_FILE_EXTENSIONS: readonly string[] = [".yaml", ".yml"];

/** Longest slug: it prefixes container, network and volume names and is a DNS label. */
export const MAX_SLUG_LENGTH = 40;


const SLUG_PATTERN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** Whether `fileName` is a client file (by extension). */
export function isClientFileName(fileName: string): boolean {
  return CLIENT_FILE_EXTENSIONS.includes(path.extname(fileName));
}

/** Why `slug` is not a valid slug, or undefined when it is. */
export function slugProblem(slug: string): string | undefined {
  const expected = `expected a DNS label of 1-${MAX_SLUG_LENGTH} characters a-z, 0-9 and "-", not starting or ending with "-"`;
  if (slug.length === 0) return `${expected}, got an empty name`;
  if (slug.length > MAX_SLUG_LENGTH) return `${expected}, got ${slug.length} characters`;
  if (!SLUG_PATTERN.test(slug)) {
    const lower = slug.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "");
    const hint = lower !== "" && SLUG_PATTERN.test(lower) && lower.length <= MAX_SLUG_LENGTH ? ` (e.g. "${lower}")` : "";
    return `${expected}, got ${describeValue(slug)}${hint}`;
  }
  const reservedLabel = idnaLabelProblem(slug);
  if (reservedLabel !== undefined) return `${reservedLabel}; choose another file name`;
  const collision = reservedSlugs().find((reserved) => reserved.slug === slug);
  if (collision !== undefined) {
    const what = collision.kind === "hostPath" ? "host path" : `Docker ${collision.kind}`;
    return `"${slug}" is reserved: the client's ${what} would be ${collision.sharedName}, which the host shares between clients; choose another file name`;
  }
  return undefined;
}

/**
 * Why the DNS label `label` is reserved by IDNA, or undefined. `xn--` starts a punycode label:
 * browsers show it as an internationalised name, so `xn--…` under our domain can pass for another
 * client's name. Any other label with "--" in its 3rd and 4th characters is reserved for such
 * encodings (RFC 5891, 4.2.3.1).
 */
export function idnaLabelProblem(label: string): string | undefined {
  if (/^xn--/i.test(label)) {
    const shown = domainToUnicode(label.toLowerCase());
    const display = shown !== "" && shown !== label.toLowerCase() ? ` (browsers show it as ${describeValue(shown)})` : "";
    return `"${label}" is a punycode label ("xn--...")${display}: under our domain it passes for another name, a look-alike of a client's address`;
  }
  if (label.length >= 4 && label[2] === "-" && label[3] === "-") {
    return `"${label}" has "--" as its 3rd and 4th characters, which DNS reserves for encoded names such as punycode (IDNA)`;
  }
  return undefined;
}

/** Longest server name (`mai-hosting:servers` key): it prefixes resource names and is a DNS label. */
export const MAX_SERVER_NAME_LENGTH = 30;

/** Why `name` is not a usable server name, or undefined. */
export function serverNameProblem(name: string): string | undefined {
  if (name.length > MAX_SERVER_NAME_LENGTH || !SLUG_PATTERN.test(name)) {
    return `expected a server name of 1-${MAX_SERVER_NAME_LENGTH} characters a-z, 0-9 and "-" (a DNS label, e.g. "nbg1-a"), got ${describeValue(name)}`;
  }
  return undefined;
}

/** The slug of a client file (its name without extension), or why the name is not usable. */
export function slugFromFileName(fileName: string): { slug: string } | { problem: string } {
  const base = path.basename(fileName);
  const slug = base.slice(0, base.length - path.extname(base).length);
  const problem = slugProblem(slug);
  return problem === undefined ? { slug } : { problem: `file name: the file name is the client's slug; ${problem}` };
}

// ---------------------------------------------------------------------------------------------
// Value checks shared with the stack settings
// ---------------------------------------------------------------------------------------------

/** Why `value` is not a bare lower-case DNS name with at least two labels, or undefined. */
export function hostnameProblem(value: string, example = "chat.example.com"): string | undefined {
  const expected = `expected a bare lower-case host name like "${example}"`;
  const got = describeValue(value);
  if (value === "") return `${expected}, got an empty string`;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(value);
  if (scheme !== null) return `${expected}, got ${got} (remove "${scheme[0]}")`;
  if (value.includes("/")) return `${expected}, got ${got} (remove the path)`;
  if (value.includes(":")) return `${expected}, got ${got} (remove the port)`;
  if (value.includes("*")) return `${expected}, got ${got} (wildcards are not supported)`;
  if (value.endsWith(".")) return `${expected}, got ${got} (remove the trailing dot)`;
  if (/[A-Z]/.test(value)) return `${expected}, got ${got} (write it in lower case)`;
  if (/[^\x00-\x7f]/.test(value)) return `${expected}, got ${got} (use the punycode "xn--" form)`;
  if (value.length > 253) return `${expected}, got ${value.length} characters (at most 253)`;
  const labels = value.split(".");
  if (labels.length < 2) return `${expected} with at least two labels, got ${got}`;
  for (const label of labels) {
    if (label.length === 0 || label.length > 63 || !SLUG_PATTERN.test(label)) {
      return `${expected} (labels of 1-63 characters a-z, 0-9, "-", not starting or ending with "-"), got ${got}`;
    }
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1])) return `${expected}, got ${got} (IP addresses are not host names)`;
  return undefined;
}

const EMAIL_EXAMPLE = "it-admin@example.com";
const EMAIL_LOCAL_PART = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;

/**
 * Why `value` is not a plain lower-case e-mail address, or undefined. Lower case because Open
 * WebUI stores and matches addresses in lower case: the address handed to the client is the one
 * that signs in.
 */
export function emailProblem(value: string): string | undefined {
  const expected = `expected an e-mail address like "${EMAIL_EXAMPLE}"`;
  const got = describeValue(value);
  if (value.trim() === "") return `${expected}, got an empty string`;
  if (/[<>]/.test(value)) return `${expected}, got ${got} (only the address, without a name or angle brackets)`;
  if (/\s/.test(value)) return `${expected}, got ${got} (no spaces)`;
  if (value.length > 254) return `${expected}, got ${value.length} characters (at most 254)`;
  const at = value.split("@");
  if (at.length !== 2) return `${expected}, got ${got} (exactly one "@")`;
  if (/[A-Z]/.test(value)) return `${expected}, got ${got} (write it in lower case: Open WebUI stores addresses in lower case)`;
  const [local, domain] = at;
  if (local.length === 0 || local.length > 64 || !EMAIL_LOCAL_PART.test(local)) {
    return `${expected}, got ${got} (the part before "@" must be 1-64 characters a-z, 0-9, dots between them, and !#$%&'*+/=?^_\`{|}~-)`;
  }
  const domainProblem = hostnameProblem(domain, "example.com");
  if (domainProblem !== undefined) return `${expected}, got ${got} (after "@" ${domainProblem.replace(/^expected /, "")})`;
  return undefined;
}

/** The first admin's e-mail when a client file names none: a login name on the client's own default host name. */
export function defaultAdminEmail(defaultHostname: string): string {
  return `admin@${defaultHostname}`;
}

const IMAGE_EXAMPLE = "ghcr.io/mai-hosting/mai:1.4.2";
const REGISTRY = "(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?";
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const IMAGE_PATTERN = new RegExp(
  `^(?:${REGISTRY}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(sha256:[a-f0-9]{64}))?$`,
);

/**
 * Why `value` is not a pinned container image reference, or undefined. A tag or digest is
 * required and `latest` is refused: a moving tag would change a client's software without a diff.
 */
export function imageProblem(value: string): string | undefined {
  const expected = `expected a container image with a pinned version, like "${IMAGE_EXAMPLE}"`;
  const got = describeValue(value);
  if (value.length > 255) return `${expected}, got ${value.length} characters (at most 255)`;
  const match = IMAGE_PATTERN.exec(value);
  if (match === null) return `${expected}, got ${got}`;
  const [, tag, digest] = match;
  if (tag === undefined && digest === undefined) return `${expected}, got ${got} (add ":<version>")`;
  if (tag === "latest" && digest === undefined) return `${expected}, got ${got} ("latest" moves; pin a version)`;
  return undefined;
}

/** Environment variables the stack sets for every client, with the reason they cannot be overridden. */
const STACK_MANAGED_ENV_REASONS: Readonly<Record<string, string>> = {
  WEBUI_SECRET_KEY: "the stack generates a per-client session secret",
  OPENAI_API_KEY: "the client's OpenRouter key comes from Pulumi secret config (openrouterApiKeys.<slug>)",
  OPENAI_API_KEYS: "the client's OpenRouter key comes from Pulumi secret config (openrouterApiKeys.<slug>)",
  OPENAI_API_BASE_URL: "the stack points every client at OpenRouter",
  OPENAI_API_BASE_URLS: "the stack points every client at OpenRouter",
  ENABLE_SIGNUP: "the stack controls sign-up",
  WEBUI_URL: "it is derived from the client's hostname",
  WEBUI_NAME: "it is derived from the client's name",
  ENV: "the stack runs every client in production mode",
  ORGANIZATION_NAME: "it is derived from the client's name",
  OPENROUTER_EXTERNAL_USER: "the stack sets it to mai_client_<slug>, the client's organisation id",
  WEBUI_ADMIN_EMAIL: "the client's first admin comes from the `admin` field",
  WEBUI_ADMIN_PASSWORD: "the stack generates the first admin's password (stack output clientAdmins)",
  WEBUI_SESSION_COOKIE_SECURE: "every client is served over HTTPS, so session cookies are always Secure",
  WEBUI_SESSION_COOKIE_SAME_SITE: "the stack sets lax for every client",
  PORT: "the container always listens on 8080",
  DATA_DIR: "the data volume is mounted by the stack",
  ENABLE_PERSISTENT_CONFIG: "the stack decides which settings persist",
};

/** Environment variables a client file may not set: the stack manages them. */
export const STACK_MANAGED_ENV: readonly string[] = Object.keys(STACK_MANAGED_ENV_REASONS);

/** Environment variable names: upper case, digits and underscores, not starting with a digit. */
export const ENV_NAME_PATTERN = /^[A-Z_][A-Z0-9_]*$/;

const SECRET_NAME_PATTERN = /(SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY|SECRET_KEY|ACCESS_KEY|ENCRYPTION_KEY)$/;
const HARMLESS_VALUE_PATTERN = /^(true|false|yes|no|on|off|enabled|disabled|none|-?\d+(\.\d+)?)$/i;

/** Where secrets go instead, for messages. */
export const SECRETS_HINT = "secrets belong in Pulumi secret config (pulumi config set --secret ...), never in a client file";

/** The stack setting that allows a refused variable for one client, for messages and the README. */
export const ALLOWED_CLIENT_ENV_KEY = "allowedClientEnv";

/** `WEBUI_AUTH="False"` when the value is what the rule is about, else just the name. */
function envSubject(name: string, value: string, showValue: boolean): string {
  return showValue ? `${name}=${describeValue(value)}` : name;
}

/**
 * Why the env entry `name=value` may never be in a client file, or undefined: values Docker cannot
 * take, stack-managed variables, settings that open the workspace, move its data off the volume
 * or break its routing (the hard rules of policy/clientEnvPolicy.ts), and secrets. Never echoes a
 * value that could be secret. Refusals a stack may allow are `envOptInProblem`'s.
 */
export function envEntryProblem(name: string, value: string): string | undefined {
  const docker = dockerEnvValueProblem(value);
  if (docker !== undefined) return docker;
  const reason = STACK_MANAGED_ENV_REASONS[name];
  if (reason !== undefined) return `${name} is managed by the stack (${reason}); remove it from the client file`;
  const refusal = clientEnvRefusal(name, value);
  if (refusal !== undefined && !refusal.optIn) return `${envSubject(name, value, refusal.showValue)} ${refusal.reason}`;
  if (refusal !== undefined) return undefined;
  const kind = secretKind(value);
  if (kind !== undefined) return `the value looks like ${kind} (not shown); ${SECRETS_HINT}`;
  const trimmed = value.trim();
  // A number is no harmless value for a password: "123456" is one.
  const harmless = HARMLESS_VALUE_PATTERN.test(trimmed) && !(/(PASSWORD|PASSWD)$/.test(name) && /\d/.test(trimmed));
  if (SECRET_NAME_PATTERN.test(name) && trimmed !== "" && !harmless) {
    return `${name} looks like it holds a secret (value not shown); ${SECRETS_HINT}`;
  }
  return undefined;
}

/**
 * Why the env entry `name=value` is refused unless the stack allows it for this client
 * (`allowed`: the names `mai-hosting:allowedClientEnv` lists for it), or undefined.
 */
export function envOptInProblem(name: string, value: string, allowed: readonly string[], slug = "<slug>"): string | undefined {
  if (dockerEnvValueProblem(value) !== undefined || STACK_MANAGED_ENV_REASONS[name] !== undefined) return undefined;
  const refusal = clientEnvRefusal(name, value);
  if (refusal === undefined || !refusal.optIn || allowed.includes(name)) return undefined;
  return (
    `${envSubject(name, value, refusal.showValue)} ${refusal.reason}. Refused unless allowed for this client on purpose: ` +
    `list it in the stack file (Pulumi.<stack>.yaml) as mai-hosting:${ALLOWED_CLIENT_ENV_KEY}: { ${slug}: [${name}] }`
  );
}

// ---------------------------------------------------------------------------------------------
// zod building blocks with user-facing messages
// ---------------------------------------------------------------------------------------------

/** zod error callback: "expected <expectation>, got <what was there>" (or "missing" when absent). */
export function expecting(expectation: string, hint?: (input: unknown) => string | undefined) {
  return (issue: { input?: unknown; code?: string }): string | undefined => {
    if (issue.code === "unrecognized_keys") return undefined;
    if (issue.input === undefined) return `missing; expected ${expectation}`;
    const extra = hint?.(issue.input);
    return `expected ${expectation}, got ${describeValue(issue.input)}${extra === undefined ? "" : ` (${extra})`}`;
  };
}

/** A string field validated by `problem` (which returns the full message), with JSON Schema metadata. */
export function checkedString(expectation: string, problem: (value: string) => string | undefined) {
  const quoteHint = (input: unknown) =>
    typeof input === "number" || typeof input === "boolean" ? "quote it so YAML keeps it as text" : undefined;
  return z.string({ error: expecting(expectation, quoteHint) }).check(
    z.superRefine((value: string, ctx) => {
      const message = problem(value);
      if (message !== undefined) ctx.addIssue({ code: "custom", message, input: value });
    }),
  );
}

/** An integer in [min, max]. */
export function integerIn(min: number, max: number) {
  const error = expecting(`an integer from ${min} to ${max}`, (input) =>
    typeof input === "string" && /^\d+$/.test(input.trim()) ? "remove the quotes" : undefined,
  );
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

/** A number of vCPUs above 0 with at most two decimals (Docker `--cpus` granularity we care about). */
export function cpuAmount() {
  const expectation = "a number of vCPUs above 0 with at most 2 decimals, like 2 or 0.5";
  const error = expecting(expectation);
  return z
    .number({ error })
    .positive({ error })
    .max(1024, { error })
    .check(
      z.superRefine((value: number, ctx) => {
        if (Math.abs(value * 100 - Math.round(value * 100)) > 1e-6) {
          ctx.addIssue({ code: "custom", message: `expected ${expectation}, got ${value}`, input: value });
          return;
        }
        // Only for amounts that passed the range checks above (zod runs every check).
        const unstable = value > 0 && value <= 1024 ? dockerCpusProblem(value) : undefined;
        if (unstable !== undefined) ctx.addIssue({ code: "custom", message: unstable, input: value });
      }),
    );
}

/** A memory size `<number><M|G>` of at least `minMb` MiB. */
export function memoryAmount(minMb: number, minText: string) {
  const expectation = `${MEMORY_FORMAT}, at least ${minText}`;
  const error = expecting(expectation, (input) => (typeof input === "number" ? `add a unit: "${input}M" or "${input}G"` : undefined));
  return z
    .string({ error })
    .check(
      z.superRefine((value: string, ctx) => {
        const parsed = parseMemory(value);
        if ("problem" in parsed) {
          const hint = MEMORY_PATTERN.test(value.trim()) ? ` (${parsed.problem})` : "";
          ctx.addIssue({ code: "custom", message: `expected ${expectation}, got ${describeValue(value)}${hint}`, input: value });
        } else if (parsed.mb < minMb) {
          ctx.addIssue({ code: "custom", message: `expected at least ${minText}, got ${describeValue(value)}`, input: value });
        }
      }),
    )
    .meta({ pattern: "^[0-9]+(\\.[0-9]+)?[MG]$", examples: ["4G", "1536M"] });
}

/** A strict mapping: unknown keys are errors (reported one per key with a suggestion). */
export function mapping<Shape extends z.ZodRawShape>(shape: Shape, expectation: string) {
  return z.strictObject(shape, { error: expecting(expectation) });
}

// ---------------------------------------------------------------------------------------------
// The client file schema
// ---------------------------------------------------------------------------------------------

const resourceLimitsDescription =
  "Left-out values come from the stack's defaultResources (mai-hosting:defaultResources in Pulumi.<stack>.yaml).";

/** Smallest memory limit: Open WebUI needs about this much to start. */
export const MIN_MEMORY_MB = 512;
/** Smallest memory reservation. */
export const MIN_RESERVED_MEMORY_MB = 64;

/**
 * Fewest processes a container may be limited to: Open WebUI runs a thread pool, the embedding
 * model's worker threads and the code its admins add; far fewer makes it fail to start.
 */
export const MIN_PIDS_LIMIT = 64;
/** Most processes a container may be allowed: a limit far above what one workspace needs is no limit. */
export const MAX_PIDS_LIMIT = 65536;

/** Schema of the resources block shared by client files and the stack's defaultResources. */
export function resourcesSchema() {
  return mapping(
    {
      cpus: cpuAmount()
        .describe("CPU limit in vCPUs (fractions allowed, e.g. 1.5); the container never uses more.")
        .optional(),
      memory: memoryAmount(MIN_MEMORY_MB, "512M")
        .describe('Hard memory limit, e.g. "4G" or "1536M"; the container is killed above it.')
        .optional(),
      reservations: mapping(
        {
          cpus: cpuAmount()
            .describe("vCPUs guaranteed under contention (CPU shares); at most the CPU limit.")
            .optional(),
          memory: memoryAmount(MIN_RESERVED_MEMORY_MB, "64M")
            .describe('Memory the kernel tries to keep for the client under pressure, e.g. "2G"; at most the memory limit.')
            .optional(),
        },
        "a mapping with cpus and/or memory",
      )
        .describe("Guaranteed share under contention; counted against the server's capacity.")
        .optional(),
      pids: integerIn(MIN_PIDS_LIMIT, MAX_PIDS_LIMIT)
        .describe(
          "Most processes and threads the container may run at once (Docker --pids-limit); a process flood inside the workspace stops there instead of exhausting the server.",
        )
        .optional(),
    },
    "a mapping with cpus, memory, reservations and/or pids",
  );
}

const envSchema = z
  .record(
    z
      .string()
      .regex(ENV_NAME_PATTERN, {
        error: (issue) =>
          `expected an environment variable name of A-Z, 0-9 and _ (not starting with a digit), got ${describeValue(issue.input)}`,
      }),
    z
      .string({
        error: expecting("a string", (input) =>
          input === null
            ? 'write "" for an empty value'
            : typeof input === "object"
              ? undefined
              : `quote it: "${String(input)}", so YAML keeps it as text`,
        ),
      })
      .max(4096, { error: "expected at most 4096 characters" }),
    { error: expecting("a mapping of NAME: \"value\" pairs") },
  )
  .check(
    z.superRefine(
      (env: Record<string, unknown>, ctx) => {
        if (typeof env !== "object" || env === null || Array.isArray(env)) return;
        for (const [name, value] of Object.entries(env)) {
          // A value of another type has its own issue (explainUnquotedEnv says what quoting it would meet).
          if (typeof value !== "string") continue;
          const problem = envEntryProblem(name, value);
          if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem, path: [name] });
        }
      },
      // Run even when a sibling entry failed, so every mistake is reported at once.
      { when: (payload) => typeof payload.value === "object" && payload.value !== null },
    ),
  );

/** Schema of `clients/<slug>.yaml`. Strict: unknown keys are errors. No transforms (JSON Schema friendly). */
export const clientFileSchema = mapping(
  {
    name: checkedString("the organisation's display name (1-64 characters)", (value) => {
      if (value.trim() === "") return "expected the organisation's display name (1-64 characters), got an empty name";
      if (value.length > 64) return `expected the organisation's display name (1-64 characters), got ${value.length} characters`;
      if (/[\u0000-\u001f\u007f]/.test(value)) return "expected a single-line display name without control characters";
      const invisible = firstInvisibleCharacter(value);
      if (invisible !== undefined) {
        return `expected a display name without control or invisible characters, got ${describeCodePoint(invisible.codePoint)} at character ${invisible.position} (it hides or reorders the text around it wherever the name is shown: the workspace's title, its tab, the invoice)`;
      }
      return undefined;
    })
      .meta({ minLength: 1, maxLength: 64 })
      .describe('Display name of the organisation, e.g. "Company ABC GmbH"; shown in the workspace. No control or invisible characters.'),
    port: integerIn(1024, 65535).describe(
      "Host port the container is published on (127.0.0.1 only; Caddy proxies to it). Unique across clients, and not a port a host service listens on (2019: Caddy's admin API; a local server's proxy ports).",
    ),
    hostname: checkedString('a bare lower-case host name like "chat.example.com"', (value) => hostnameProblem(value))
      .describe(
        "Public host name; defaults to <slug>.<domain>. A custom name needs a DNS record (CNAME) at the client's provider; <slug>.<domain> then redirects to it.",
      )
      .optional(),
    status: z
      .enum(["active", "suspended"], { error: expecting('"active" or "suspended"') })
      .default("active")
      .describe("active: the workspace runs. suspended: the container is removed, data and DNS are kept, visitors get a 503 page."),
    admin: checkedString(`an e-mail address like "${EMAIL_EXAMPLE}"`, emailProblem)
      .describe(
        "E-mail of the client's first admin. The stack creates this account with a generated password at the workspace's first start (pulumi stack output clientAdmins --show-secrets), so nobody else can take a new workspace. Defaults to admin@<slug>.<domain>. Open WebUI uses it only while the workspace has no account: a change later does nothing.",
      )
      .optional(),
    image: checkedString(`a container image with a pinned version, like "${IMAGE_EXAMPLE}"`, imageProblem)
      .describe("Container image override; defaults to the stack's defaultImage. Must pin a version (no :latest).")
      .optional(),
    resources: resourcesSchema().describe(`CPU and memory for this client. ${resourceLimitsDescription}`).optional(),
    env: envSchema
      .describe(
        "Extra non-secret environment variables (NAME: \"value\"). Values must be strings: quote numbers and booleans. Refused: stack-managed variables, secrets, and settings that open the workspace, move its data off the volume or break its routing (clients/README.md; a few only unless the stack's allowedClientEnv allows them for this client).",
      )
      .optional(),
    server: checkedString('a server name of the stack, like "nbg1-a"', serverNameProblem)
      .describe(
        "Server the client runs on: a name from the stack's servers (mai-hosting:servers in Pulumi.<stack>.yaml); defaults to the stack's first server. A stack of local servers only runs a client whose server it does not have on its first server.",
      )
      .optional(),
    moveFrom: checkedString('the name of the server the client leaves, like "nbg1-a"', (value) =>
      value.length <= 63 && SLUG_PATTERN.test(value) ? undefined : `expected the name of the server the client leaves (a DNS label like "nbg1-a"), got "${value.slice(0, 64)}"`,
    )
      .describe(
        "Only for the deployment that moves the client to another server: the server it leaves. `pulumi up` then stops the client there, carries its whole volume to `server` and starts it there. Remove it after the move.",
      )
      .optional(),
    openrouter: mapping(
      {
        monthlyLimitUsd: z
          .number({ error: expecting("a US dollar amount above 0, like 50") })
          .positive({ error: expecting("a US dollar amount above 0, like 50") })
          .describe("Monthly spending limit of the client's managed OpenRouter key, in USD.")
          .optional(),
      },
      "a mapping with monthlyLimitUsd",
    )
      .describe("Managed OpenRouter key: with monthlyLimitUsd and the stack's openrouterProvisioningKey set, the key is created for the client.")
      .optional(),
  },
  "a mapping of client fields (name, port, ...)",
).meta({
  title: "mAI client",
  description: "One client organisation served by the mai-hosting stack. The file name (without .yaml) is the client's slug.",
});

/** A client file after schema validation (stack defaults not applied yet). */
export type ClientFile = z.output<typeof clientFileSchema>;

// ---------------------------------------------------------------------------------------------
// zod issues -> ConfigIssues
// ---------------------------------------------------------------------------------------------

/** Keys a strict object accepts at `path` inside `schema` (for "did you mean" suggestions). */
function knownKeysAt(schema: z.ZodType, fieldPath: FieldPath): string[] {
  let current: unknown = schema;
  const unwrap = (node: unknown): unknown => {
    for (let guard = 0; guard < 16; guard++) {
      const def = (node as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
      if (def === undefined) return node;
      if ("innerType" in def) node = def.innerType;
      else if (def.type === "pipe") {
        // z.preprocess is a pipe from a transform into the real schema.
        const input = def.in as { _zod?: { def?: { type?: string } } };
        node = input._zod?.def?.type === "transform" ? def.out : def.in;
      }
      else return node;
    }
    return node;
  };
  for (const segment of [...fieldPath, undefined]) {
    current = unwrap(current);
    const def = (current as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
    if (def === undefined) return [];
    if (segment === undefined) {
      return def.type === "object" ? Object.keys(def.shape as object) : [];
    }
    if (def.type === "object") current = (def.shape as Record<string, unknown>)[String(segment)];
    else if (def.type === "record") current = def.valueType;
    else if (def.type === "array") current = def.element;
    else return [];
    if (current === undefined) return [];
  }
  return [];
}

/** Converts zod issues into located, one-problem-per-entry config issues. */
export function zodIssuesToConfigIssues(
  file: string,
  schema: z.ZodType,
  issues: readonly z.core.$ZodIssue[],
  lineOf: (fieldPath: FieldPath) => number | undefined,
  pathPrefix: FieldPath = [],
): ConfigIssue[] {
  const result: ConfigIssue[] = [];
  for (const issue of issues) {
    const issuePath = issue.path.filter((segment): segment is string | number => typeof segment !== "symbol");
    const fullPath = [...pathPrefix, ...issuePath];
    if (issue.code === "unrecognized_keys") {
      const allowed = knownKeysAt(schema, issuePath);
      for (const key of issue.keys) {
        const keyPath = [...fullPath, key];
        result.push({ file, line: lineOf(keyPath), path: formatPath(keyPath), message: unknownKeyMessage(key, allowed) });
      }
      continue;
    }
    let message = issue.message;
    if (issue.code === "invalid_key" && issue.issues.length > 0) message = issue.issues[0].message;
    result.push({ file, line: lineOf(fullPath), path: formatPath(fullPath), message });
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Reading one client file
// ---------------------------------------------------------------------------------------------

/** A client file that passed every single-file check. */
export interface ValidClientFile {
  /** Slug from the file name. */
  slug: string;
  /** Path of the file as given. */
  file: string;
  /** Validated content, stack defaults not applied. */
  content: ClientFile;
  /** Line lookup for later (cross-file) messages. */
  lineOf: (fieldPath: FieldPath) => number | undefined;
}

/** Result of checking one client file: the valid file, or all its issues (plus the raw port when readable, for cross-file checks). */
export type ClientFileResult =
  | { ok: true; client: ValidClientFile }
  | { ok: false; issues: ConfigIssue[]; partial?: { slug?: string; port?: number; lineOf?: (fieldPath: FieldPath) => number | undefined } };

/**
 * Checks one client file in isolation: file name, YAML, schema, env rules. `allowedEnv` names the
 * refused-by-default variables the stack allows for this client (`mai-hosting:allowedClientEnv`).
 */
export function validateClientFile(file: string, text: string, sizeBytes?: number, allowedEnv: readonly string[] = []): ClientFileResult {
  const issues: ConfigIssue[] = [];
  const slugResult = slugFromFileName(file);
  if ("problem" in slugResult) issues.push({ file, path: "", message: slugResult.problem });
  const slug = "slug" in slugResult ? slugResult.slug : undefined;

  const parsed = parseYamlMapping(file, text, {
    sizeBytes,
    emptyMessage: "file is empty; expected at least name and port (see clients/README.md)",
    expected: "client fields (name: ..., port: ...)",
  });
  if (!parsed.ok) return { ok: false, issues: [...issues, ...parsed.issues], partial: { slug } };

  const mapping: YamlMapping = parsed.mapping;
  const result = clientFileSchema.safeParse(mapping.value);
  if (!result.success) {
    issues.push(...explainUnquotedEnv(zodIssuesToConfigIssues(file, clientFileSchema, result.error.issues, mapping.lineOf), mapping, allowedEnv, slug));
  }
  issues.push(...envOptInIssues(file, mapping, allowedEnv, slug));
  if (!result.success || issues.length > 0) {
    const rawPort = mapping.value.port;
    const port = integerIn(1024, 65535).safeParse(rawPort).success ? (rawPort as number) : undefined;
    return { ok: false, issues, partial: { slug, port, lineOf: mapping.lineOf } };
  }
  return { ok: true, client: { slug: slug!, file, content: result.data, lineOf: mapping.lineOf } };
}

/** The opt-in env refusals of a file (see `envOptInProblem`), read from the raw mapping so they show next to any other mistake. */
function envOptInIssues(file: string, mapping: YamlMapping, allowedEnv: readonly string[], slug: string | undefined): ConfigIssue[] {
  const env = mapping.value.env;
  if (typeof env !== "object" || env === null || Array.isArray(env)) return [];
  const issues: ConfigIssue[] = [];
  for (const [name, value] of Object.entries(env as Record<string, unknown>)) {
    if (!ENV_NAME_PATTERN.test(name) || typeof value !== "string") continue;
    const message = envOptInProblem(name, value, allowedEnv, slug);
    if (message !== undefined) issues.push({ file, line: mapping.lineOf(["env", name]), path: formatPath(["env", name]), message });
  }
  return issues;
}

/**
 * `WEBUI_AUTH: false` unquoted: the schema asks to quote it, but quoted it is refused too, so the
 * message says why right away instead of leading to a second round.
 */
function explainUnquotedEnv(issues: ConfigIssue[], mapping: YamlMapping, allowedEnv: readonly string[], slug: string | undefined): ConfigIssue[] {
  const env = mapping.value.env;
  if (typeof env !== "object" || env === null || Array.isArray(env)) return issues;
  return issues.map((found) => {
    const name = found.path.startsWith("env.") ? found.path.slice("env.".length) : undefined;
    const value = name === undefined ? undefined : (env as Record<string, unknown>)[name];
    if (typeof value !== "number" && typeof value !== "boolean") return found;
    const text = String(value);
    const refused = envEntryProblem(name!, text) ?? envOptInProblem(name!, text, allowedEnv, slug);
    return refused === undefined ? found : { ...found, message: `${refused} (and values are quoted strings)` };
  });
}
