/**
 * What one client's runtime looks like on the host: names, environment, limits, health check,
 * ports and mounts. Pure functions of the validated `ClientSpec`, so every declared input is
 * deterministic (an unchanged client shows no diff) and testable without Pulumi.
 */
import type { ClientSpec, ServerSpec } from "../config/model";
import { HOST_PATHS } from "./cloudInit";
import { shellQuote } from "./localHost";
import { NO_NEW_PRIVILEGES, dockerCapabilities, dockerCpus, dockerHealthcheck } from "./dockerCanonical";

/** Port Open WebUI listens on inside its container. */
export const APP_PORT = 8080;

/** Where OpenRouter's OpenAI-compatible API lives. */
export const OPENROUTER_API_BASE_URL = "https://openrouter.ai/api/v1";

/** Where a client's workspace answers: its hostname, with the proxy's HTTPS port unless it is 443. */
export function clientUrl(client: Pick<ClientSpec, "hostname">, httpsPort = 443): string {
  return `https://${client.hostname}${httpsPort === 443 ? "" : `:${httpsPort}`}`;
}

/** The HTTPS port the proxy of `server` listens on: a local server's setting, 443 elsewhere. */
export function serverHttpsPort(server: ServerSpec | undefined): number {
  return server?.kind === "local" ? server.httpsPort : 443;
}

/** Docker object names of a client; every host-side script and the Caddyfile use the same ones. */
export function clientNames(slug: string) {
  return {
    container: `mai-${slug}`,
    network: `mai-${slug}`,
    dataVolume: `mai-${slug}-data`,
    backupsDir: `${HOST_PATHS.backupsDir}/${slug}`,
  };
}

/**
 * When Open WebUI takes a variable from the environment. `every start`: a restart applies it.
 * `first start`: read only when the database has no stored value yet, i.e. on the first start of
 * an instance; afterwards the value in its `config` table wins (PersistentConfig), so a change
 * restarts the container without changing the running workspace. `no account yet`: used only
 * while the workspace has no account at all. `not read`: the upstream release ignores it (the
 * mAI fork reads it). Checked against Open WebUI 0.12.4 (config.py DEFAULT_CONFIG, env.py,
 * main.py) and its running app.
 */
export type EnvApplication = "every start" | "first start" | "no account yet" | "not read upstream";

/**
 * Environment the stack manages for every client, with when Open WebUI applies each (and, for
 * those stored at the first start, the key in its `config` table); the plan and the runbook say so.
 */
export const STACK_ENV: Record<string, { applied: EnvApplication; description: string; configKey?: string }> = {
  WEBUI_NAME: { applied: "every start", description: '"mAI - <name>" (upstream Open WebUI shows "mAI - <name> (Open WebUI)")' },
  ORGANIZATION_NAME: { applied: "not read upstream", description: "the client's display name" },
  ENV: { applied: "every start", description: "prod" },
  ENABLE_SIGNUP: { applied: "first start", description: "false: the client's admin invites users", configKey: "ui.enable_signup" },
  WEBUI_URL: { applied: "first start", description: "https://<hostname>", configKey: "webui.url" },
  WEBUI_SECRET_KEY: { applied: "every start", description: "generated per client (secret)" },
  OPENAI_API_BASE_URL: { applied: "first start", description: OPENROUTER_API_BASE_URL, configKey: "openai.api_base_urls" },
  OPENAI_API_KEY: { applied: "first start", description: "the client's OpenRouter key (secret)", configKey: "openai.api_keys" },
  OPENROUTER_EXTERNAL_USER: { applied: "not read upstream", description: "mai_client_<slug>: the organisation id of the fork's organisation model access" },
  WEBUI_SESSION_COOKIE_SECURE: { applied: "every start", description: "true: every client is served over HTTPS" },
  WEBUI_SESSION_COOKIE_SAME_SITE: { applied: "every start", description: "lax" },
  WEBUI_ADMIN_EMAIL: { applied: "no account yet", description: "the client file's admin (default admin@<slug>.<domain>)" },
  WEBUI_ADMIN_PASSWORD: { applied: "no account yet", description: "generated per client (secret; stack output clientAdmins)" },
};

/** Stack-managed variables a running workspace keeps as it first saw them (first start, or no account yet). */
export function keptAfterFirstStart(): string[] {
  return Object.keys(STACK_ENV).filter((key) => STACK_ENV[key].applied === "first start" || STACK_ENV[key].applied === "no account yet");
}

/** The organisation id the mAI fork keys its `organization_models` / `organization_members` rows on. */
export function organisationId(slug: string): string {
  return `mai_client_${slug}`;
}

/**
 * Defaults a client file may override: no Ollama runs on the host, so the UI should not try
 * to reach one; organisation model access (the production guide) is on unless a client opts out.
 * In Open WebUI 0.12.4 ENABLE_OLLAMA_API is read on the first start only (config key
 * ollama.enable), BYPASS_MODEL_ACCESS_CONTROL on every start, and ENABLE_MODEL_FILTER only by the
 * mAI fork.
 */
export const OVERRIDABLE_ENV_DEFAULTS: Record<string, string> = {
  ENABLE_OLLAMA_API: "false",
  ENABLE_MODEL_FILTER: "true",
  BYPASS_MODEL_ACCESS_CONTROL: "false",
};

/** Secret values that go into a client's environment. */
export interface ClientSecrets {
  /** The client's OpenRouter API key. */
  openrouterApiKey: string;
  /** Session-signing key of the Open WebUI instance. */
  webuiSecretKey: string;
  /** Generated password of the client's first admin (`ClientSpec.admin`). */
  adminPassword: string;
}

/**
 * The container's environment as Docker `KEY=value` strings, sorted by key so that the declared
 * input is stable. Stack-managed keys win over the client's `env` (validation already refuses
 * them there; this order makes that a guarantee).
 */
export function clientEnvironment(client: ClientSpec, secrets: ClientSecrets): string[] {
  const managed: Record<string, string> = {
    WEBUI_NAME: `mAI - ${client.name}`,
    ORGANIZATION_NAME: client.name,
    ENV: "prod",
    ENABLE_SIGNUP: "false",
    WEBUI_URL: `https://${client.hostname}`,
    WEBUI_SECRET_KEY: secrets.webuiSecretKey,
    OPENAI_API_BASE_URL: OPENROUTER_API_BASE_URL,
    OPENAI_API_KEY: secrets.openrouterApiKey,
    OPENROUTER_EXTERNAL_USER: organisationId(client.slug),
    WEBUI_SESSION_COOKIE_SECURE: "true",
    WEBUI_SESSION_COOKIE_SAME_SITE: "lax",
    // Open WebUI creates this admin at start-up, before it listens, when it has no account yet:
    // no moment in which a visitor's sign-up could become the first (and so admin) account.
    WEBUI_ADMIN_EMAIL: client.admin,
    WEBUI_ADMIN_PASSWORD: secrets.adminPassword,
  };
  const merged = { ...OVERRIDABLE_ENV_DEFAULTS, ...client.env, ...managed };
  return Object.keys(merged)
    .sort()
    .map((key) => `${key}=${merged[key]}`);
}

/** What the operator hands over for one client (stack output `clientAdmins`). */
export interface ClientAdminAccount {
  /** The first admin's e-mail (login name). */
  email: string;
  /** Its generated initial password. */
  password: string;
}

/** The secret stack output `clientAdmins`: `{ <slug>: { email, password } }`, sorted by slug. */
export function clientAdminsOutput(accounts: readonly ({ slug: string } & ClientAdminAccount)[]): Record<string, ClientAdminAccount> {
  return Object.fromEntries(
    [...accounts].sort((a, b) => (a.slug < b.slug ? -1 : a.slug > b.slug ? 1 : 0)).map(({ slug, email, password }) => [slug, { email, password }]),
  );
}

/** Labels that let an operator find the stack's containers (`docker ps --filter label=mai.client`). */
export function clientLabels(client: ClientSpec): { label: string; value: string }[] {
  return [
    { label: "mai.client", value: client.slug },
    { label: "mai.managed-by", value: "pulumi" },
  ];
}

/**
 * CPU and memory inputs for Docker. Docker has no CPU reservation for plain containers; the
 * reservation becomes CPU shares (1024 per vCPU), which is what a busy host divides by. Swap is
 * set equal to memory, so a client at its limit is killed and restarted instead of swapping
 * the whole host to a crawl.
 */
export function clientLimits(client: ClientSpec) {
  const r = client.resources;
  return {
    cpus: dockerCpus(r.cpus),
    cpuShares: Math.max(2, Math.round(r.reservedCpus * 1024)),
    memory: r.memoryMb,
    memorySwap: r.memoryMb,
    memoryReservation: r.reservedMemoryMb,
  };
}

/** Docker health check against Open WebUI's /health endpoint; first start runs migrations, hence the grace. */
export const CLIENT_HEALTHCHECK = dockerHealthcheck({
  tests: ["CMD-SHELL", `curl -fsS http://localhost:${APP_PORT}/health || exit 1`],
  intervalSeconds: 30,
  timeoutSeconds: 5,
  startPeriodSeconds: 120,
  retries: 3,
});

/** json-file rotation per container (the daemon default too, stated here so the plan shows it). */
export const CONTAINER_LOG_OPTS = { "max-size": "10m", "max-file": "5" };

/** The app port, published on loopback only: the world reaches clients through Caddy. */
export function clientPorts(client: ClientSpec) {
  return [{ internal: APP_PORT, external: client.port, ip: "127.0.0.1", protocol: "tcp" }];
}

/**
 * Capabilities the workspace needs back after all are dropped: none. It listens on 8080 (no
 * NET_BIND_SERVICE), only writes files its own user owns (its volume, /tmp), so it needs neither
 * DAC_OVERRIDE nor FOWNER, and it never changes owners or users (no CHOWN, SETUID, SETGID).
 * Measured on the real engine with the stand-in (root in the container) and Open WebUI 0.12.4
 * (its image's user 10001).
 */
export const CLIENT_ADDED_CAPABILITIES: readonly string[] = [];

/**
 * The container's only writable places besides its volume: /tmp, a tmpfs (Docker's own default
 * options, spelled out as the engine stores them). Its pages count against the container's memory
 * limit, so it needs no size of its own. The Open WebUI image keeps HOME and its static files
 * there; uploads are spooled there.
 */
export const CLIENT_TMPFS: Readonly<Record<string, string>> = { "/tmp": "rw,noexec,nosuid,nodev" };

/**
 * How a client's container is confined. Every workspace runs untrusted code (an Open WebUI admin
 * can add Python Functions and Tools), so: no capabilities beyond what the image needs (none),
 * `no-new-privileges` (a setuid binary or file capability cannot raise a process above that), a
 * read-only root file system (code cannot replace the app's own files or leave anything outside
 * its volume and /tmp), and an init process as PID 1 that reaps orphans (a tool's forgotten
 * children stay no zombies that count against the pids limit, and `docker stop` reaches the app).
 * Measured on the real engine with the stand-in and Open WebUI 0.12.4 (`mai-local/open-webui`):
 * both serve with all of it. The pids limit itself is applied by `pidsLimitCommand`: the Docker
 * provider has no input for it.
 */
export function clientContainment() {
  return {
    init: true,
    securityOpts: [NO_NEW_PRIVILEGES],
    capabilities: dockerCapabilities({ drop: ["ALL"], add: CLIENT_ADDED_CAPABILITIES }),
    readOnly: true,
    tmpfs: { ...CLIENT_TMPFS },
  };
}

/** Where the client's nightly backups appear inside its container: read-only (see clientMounts). */
export const BACKUPS_CONTAINER_PATH = "/app/backups";

/**
 * The container's mounts: its data volume, and its backups directory read-only. The backups and
 * the daily usage snapshots the invoice counts users from live there; code running in the
 * workspace may read its own backups but must not rewrite or delete them.
 */
export function clientMounts(slug: string, hostBackupsDir: string, dataVolumeName: string) {
  return [
    { volumeName: dataVolumeName, containerPath: "/app/backend/data" },
    { hostPath: `${hostBackupsDir}/${slug}`, containerPath: BACKUPS_CONTAINER_PATH, readOnly: true },
  ];
}

/**
 * The host command that gives a container its pids limit (`docker update --pids-limit`) and
 * checks that the engine holds it. The Docker provider has no pids-limit input; the limit is part
 * of the container's stored host configuration, so it survives restarts of the container and of
 * dockerd and in-place updates (`docker update` of memory or CPU leaves it as it is); the
 * command runs again whenever the container is replaced (`replaceWith` in the component).
 */
export function pidsLimitCommand(container: string, limit: number): string {
  if (!Number.isInteger(limit) || limit < 1) throw new Error(`not a pids limit: ${limit}`);
  const id = shellQuote(container);
  return [
    "set -eu",
    `docker update --pids-limit ${limit} ${id} >/dev/null`,
    `found=$(docker inspect -f '{{.HostConfig.PidsLimit}}' ${id})`,
    `[ "$found" = ${limit} ] || { echo "pids limit of container ${id}: the engine holds $found, expected ${limit}" >&2; exit 1; }`,
    `echo "pids limit ${limit}"`,
  ].join("\n");
}
