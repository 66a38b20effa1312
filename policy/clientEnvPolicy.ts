/**
 * Which environment a client file may give its workspace, beyond what the stack manages itself
 * (`STACK_ENV` in clientContainer.ts). Open WebUI reads hundreds of variables; a few of them undo
 * what the hosting guarantees: that only the client's invited accounts get in, that all of the
 * client's data lives on its volume (where backups, exports and moves read it), and that the
 * container answers on the port Caddy proxies to. Pure: no Pulumi imports.
 *
 * The rules follow the upstream code (open-webui `backend/open_webui/env.py`, `config.py`,
 * `routers/auths.py`, `utils/oauth.py`, and the image's `start.sh`): booleans there are true only
 * for the text "true" in any case, so `WEBUI_AUTH: "0"` turns login off as surely as "False".
 * A refusal marked `optIn` has rare legitimate uses (a client's own identity provider, its own
 * object storage): the stack setting `mai-hosting:allowedClientEnv` allows it for a named client.
 */

/** What a refused variable would break. */
export type EnvRefusalClass = "opens-workspace" | "moves-data" | "breaks-routing";

/** Why a client's environment entry is refused. */
export interface EnvRefusal {
  class: EnvRefusalClass;
  /** What the setting would do, as a sentence part ("turns login off: ..."). */
  reason: string;
  /** Whether `mai-hosting:allowedClientEnv` may allow it for one client. */
  optIn: boolean;
  /** Whether the refusal depends on the value (and a message should show it); false when any value is refused. */
  showValue: boolean;
}

/** Where a client's data volume is mounted in its container (Open WebUI's DATA_DIR). */
export const CLIENT_DATA_PATH = "/app/backend/data";

/** Open WebUI's reading of a boolean: true only for "true" in any case (no trimming). */
export function upstreamTrue(value: string): boolean {
  return value.toLowerCase() === "true";
}

/** A value that clearly leaves a switch off in every reading (upstream's and common variants). */
function clearlyOff(value: string): boolean {
  return /^(false|0|no|off)?$/i.test(value.trim());
}

/** Whether `value` is an absolute path inside the data volume (after resolving `.` and `..`). */
export function isInsideDataVolume(value: string): boolean {
  if (!value.startsWith("/")) return false;
  const parts: string[] = [];
  for (const part of value.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  const resolved = `/${parts.join("/")}`;
  return resolved === CLIENT_DATA_PATH || resolved.startsWith(`${CLIENT_DATA_PATH}/`);
}

interface EnvRule {
  /** The variables the rule is about. */
  matches: (name: string) => boolean;
  /** Names for documentation and the allow-list check (patterns are described by `label`). */
  names: readonly string[];
  class: EnvRefusalClass;
  optIn: boolean;
  /** Every value is refused (messages then name the variable only; the value may be secret). */
  anyValue?: true;
  /** The reason when `value` is refused, undefined when this value is fine. */
  refuse: (name: string, value: string) => string | undefined;
}

const named = (...names: string[]) => (name: string) => names.includes(name);

const DATABASE_LOCATION_ENV = [
  "DATABASE_URL",
  "DATABASE_TYPE",
  "DATABASE_HOST",
  "DATABASE_PORT",
  "DATABASE_NAME",
  "DATABASE_USER",
  "DATABASE_PASSWORD",
  "DATABASE_SCHEMA",
];

/**
 * Variables whose default lies on the data volume (env.py, config.py and the image's Dockerfile):
 * a value elsewhere puts that data in the container's own file system, lost at every replacement
 * and missing from backups and exports. UPLOAD_DIR and CACHE_DIR are derived from DATA_DIR
 * upstream; they are listed because a fork or another version may read them.
 */
const DATA_LOCATION_ENV: Readonly<Record<string, string>> = {
  UPLOAD_DIR: "uploaded files",
  CACHE_DIR: "the cache",
  AUDIT_LOGS_FILE_PATH: "the audit log",
  LICENSE_BLOB_PATH: "the licence data",
  MILVUS_URI: "the Milvus vector store",
  TIKTOKEN_CACHE_DIR: "the tokenizer cache",
  WHISPER_MODEL_DIR: "the speech-to-text models",
  SENTENCE_TRANSFORMERS_HOME: "the embedding models",
  HF_HOME: "the Hugging Face model cache",
};

const DATA_OFF_VOLUME = "backups, exports and moves copy only the data volume and would miss it";

const RULES: readonly EnvRule[] = [
  // --- who gets in -------------------------------------------------------------------------
  {
    matches: named("WEBUI_AUTH"),
    names: ["WEBUI_AUTH"],
    class: "opens-workspace",
    optIn: false,
    refuse: (_, value) =>
      upstreamTrue(value)
        ? undefined
        : 'turns login off (Open WebUI keeps it on only for exactly "true"): anyone who reaches the workspace uses it, and the client\'s OpenRouter key, without an account; remove it (login is on by default)',
  },
  {
    matches: (name) => name.startsWith("WEBUI_AUTH_TRUSTED_"),
    names: ["WEBUI_AUTH_TRUSTED_EMAIL_HEADER", "WEBUI_AUTH_TRUSTED_NAME_HEADER", "WEBUI_AUTH_TRUSTED_GROUPS_HEADER", "WEBUI_AUTH_TRUSTED_ROLE_HEADER"],
    anyValue: true,
    class: "opens-workspace",
    optIn: false,
    refuse: () =>
      "is trusted-header login: Open WebUI then logs in whoever sends that request header as any user (admins included; the role header even picks the role), and Caddy passes request headers through from the internet",
  },
  {
    matches: named("WEBUI_AUTH_COOKIE_SECURE"),
    names: ["WEBUI_AUTH_COOKIE_SECURE"],
    class: "opens-workspace",
    optIn: false,
    refuse: (_, value) =>
      upstreamTrue(value)
        ? undefined
        : "lets browsers send the login cookie over plain HTTP, where anyone on the way can take the session; every client is served over HTTPS and the cookie follows the stack's WEBUI_SESSION_COOKIE_SECURE=true: remove it",
  },
  {
    matches: named("WEBUI_AUTH_COOKIE_SAME_SITE"),
    names: ["WEBUI_AUTH_COOKIE_SAME_SITE"],
    class: "opens-workspace",
    optIn: false,
    refuse: (_, value) =>
      ["lax", "strict", "none"].includes(value.toLowerCase())
        ? undefined
        : 'expects "lax" or "strict" (the login cookie follows the stack\'s WEBUI_SESSION_COOKIE_SAME_SITE=lax when it is left out)',
  },
  {
    matches: named("WEBUI_AUTH_COOKIE_SAME_SITE"),
    names: ["WEBUI_AUTH_COOKIE_SAME_SITE"],
    class: "opens-workspace",
    optIn: true,
    refuse: (_, value) =>
      value.toLowerCase() === "none"
        ? "sends the login cookie with requests from every other site (cross-site request forgery against the workspace); only for embedding the workspace in the client's own site"
        : undefined,
  },
  {
    matches: named("ENABLE_OAUTH_SIGNUP"),
    names: ["ENABLE_OAUTH_SIGNUP"],
    class: "opens-workspace",
    optIn: true,
    refuse: (_, value) =>
      clearlyOff(value)
        ? undefined
        : "lets anyone with an account at the configured OAuth provider create an account in the workspace (OAUTH_ALLOWED_DOMAINS admits every domain by default)",
  },
  {
    matches: named("OAUTH_MERGE_ACCOUNTS_BY_EMAIL"),
    names: ["OAUTH_MERGE_ACCOUNTS_BY_EMAIL"],
    class: "opens-workspace",
    optIn: true,
    refuse: (_, value) =>
      clearlyOff(value)
        ? undefined
        : "logs an OAuth login into the existing account with the same e-mail address: a provider that does not verify addresses hands a stranger that account, an admin's included",
  },
  {
    matches: named("DEFAULT_USER_ROLE"),
    names: ["DEFAULT_USER_ROLE"],
    class: "opens-workspace",
    optIn: true,
    refuse: (_, value) =>
      value.trim().toLowerCase() === "admin" ? "makes every new account an admin of the workspace (its users, settings, Functions and Tools)" : undefined,
  },
  {
    matches: named("WEBUI_ADMIN_PASSWORD", "ADMIN_USER_PASSWORD"),
    names: ["WEBUI_ADMIN_PASSWORD", "ADMIN_USER_PASSWORD"],
    anyValue: true,
    class: "opens-workspace",
    optIn: false,
    refuse: (_, value) =>
      value === ""
        ? undefined
        : "creates an admin account with a password written in the repository (value not shown): everyone who can read the file can log in as admin; the client's first admin creates the account at first login",
  },
  // --- where the data lives ----------------------------------------------------------------
  {
    matches: named(...DATABASE_LOCATION_ENV),
    names: DATABASE_LOCATION_ENV,
    anyValue: true,
    class: "moves-data",
    optIn: false,
    refuse: () =>
      `moves the database off the data volume (${CLIENT_DATA_PATH}/webui.db): backups, exports and moves read the database there and would copy an empty one, and a database inside the container is lost at its next replacement`,
  },
  {
    matches: named("STORAGE_PROVIDER"),
    names: ["STORAGE_PROVIDER"],
    class: "moves-data",
    optIn: true,
    refuse: (_, value) =>
      value === "" || value.toLowerCase() === "local"
        ? undefined
        : `stores uploaded files outside the data volume: ${DATA_OFF_VOLUME}`,
  },
  {
    matches: named("VECTOR_DB"),
    names: ["VECTOR_DB"],
    class: "moves-data",
    optIn: true,
    refuse: (_, value) =>
      value === "" || value.toLowerCase() === "chroma"
        ? undefined
        : `keeps the vector store (document search) outside the data volume: ${DATA_OFF_VOLUME}`,
  },
  {
    matches: named("CHROMA_HTTP_HOST"),
    names: ["CHROMA_HTTP_HOST"],
    class: "moves-data",
    optIn: true,
    refuse: (_, value) => (value === "" ? undefined : `keeps the vector store on a Chroma server instead of the data volume: ${DATA_OFF_VOLUME}`),
  },
  {
    matches: (name) => Object.hasOwn(DATA_LOCATION_ENV, name),
    names: Object.keys(DATA_LOCATION_ENV),
    class: "moves-data",
    optIn: true,
    refuse: (name, value) =>
      isInsideDataVolume(value)
        ? undefined
        : `puts ${DATA_LOCATION_ENV[name]} outside the data volume (expected an absolute path below ${CLIENT_DATA_PATH}): it is lost at every replacement of the container and ${DATA_OFF_VOLUME}`,
  },
  // --- where the container answers ---------------------------------------------------------
  {
    matches: named("HOST"),
    names: ["HOST"],
    anyValue: true,
    class: "breaks-routing",
    optIn: false,
    refuse: () =>
      "changes the address the workspace listens on inside its container: it must listen on every address so the published port reaches it (with 127.0.0.1 the health check stays green inside and Caddy answers 502)",
  },
  {
    matches: named("SPACE_ID", "SPACE_HOST"),
    names: ["SPACE_ID", "SPACE_HOST"],
    anyValue: true,
    class: "breaks-routing",
    optIn: false,
    refuse: () =>
      "makes the image's start script configure a Hugging Face Space: it replaces the stack's WEBUI_URL with SPACE_HOST (wrong links and OAuth redirects) and may create an admin account",
  },
];

/** Why the client's environment entry `name=value` is refused, or undefined when it may stay. */
export function clientEnvRefusal(name: string, value: string): EnvRefusal | undefined {
  for (const rule of RULES) {
    if (!rule.matches(name)) continue;
    const reason = rule.refuse(name, value);
    if (reason !== undefined) return { class: rule.class, reason, optIn: rule.optIn, showValue: rule.anyValue !== true };
  }
  return undefined;
}

/** Variables `mai-hosting:allowedClientEnv` may allow (the opt-in refusals), sorted. */
export function optInClientEnvNames(): string[] {
  return [...new Set(RULES.filter((rule) => rule.optIn).flatMap((rule) => rule.names))].sort();
}

/** The class of the hard (never allowed) rule about `name`, when only such rules are about it. */
export function hardRuleFor(name: string): EnvRefusalClass | undefined {
  const rules = RULES.filter((rule) => rule.matches(name));
  return rules.length > 0 && rules.every((rule) => !rule.optIn) ? rules[0].class : undefined;
}

/** Every variable a rule is about, by class (README reference and tests). */
export function clientEnvRuleNames(): Record<EnvRefusalClass, { optIn: string[]; never: string[] }> {
  const result: Record<EnvRefusalClass, { optIn: string[]; never: string[] }> = {
    "opens-workspace": { optIn: [], never: [] },
    "moves-data": { optIn: [], never: [] },
    "breaks-routing": { optIn: [], never: [] },
  };
  for (const rule of RULES) {
    const bucket = result[rule.class][rule.optIn ? "optIn" : "never"];
    for (const name of rule.names) if (!bucket.includes(name)) bucket.push(name);
  }
  return result;
}

/**
 * Why Docker cannot take `value` as given, or undefined. Measured on Docker Engine 20.10 (runc):
 * a NUL byte makes the container fail at every start ("environment variable value can't contain
 * null"), and a lone UTF-16 surrogate is replaced with U+FFFD by the engine's JSON decoding.
 */
export function dockerEnvValueProblem(value: string): string | undefined {
  const nul = value.indexOf("\u0000");
  if (nul >= 0) {
    return `the value contains a NUL byte (\\0) at character ${nul + 1} (value not shown): Docker creates the container but it can never start; remove it`;
  }
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = value.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
    } else if (unit < 0xdc00 || unit > 0xdfff) {
      continue;
    }
    return `the value contains an unpaired surrogate (\\u${unit.toString(16).padStart(4, "0")}) at character ${i + 1}, which is not text (value not shown): Docker would store U+FFFD instead`;
  }
  return undefined;
}
