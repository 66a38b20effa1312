/**
 * The validated configuration model: what a client file and the stack config mean once every
 * default is applied and every check has passed. Pure types, no Pulumi imports: the Caddyfile
 * renderer, the capacity maths, the plan and the components all speak this language.
 */

/** Whether a client's workspace is served. */
export type ClientStatus = "active" | "suspended";

/** CPU and memory for one container, memory in MiB (Docker's `memory` input unit). */
export interface ResourceSpec {
  /** CPU limit in vCPUs (fractions allowed); Docker `--cpus`. */
  cpus: number;
  /** Hard memory limit in MiB; Docker `--memory`. */
  memoryMb: number;
  /** CPUs the client is guaranteed under contention (Docker CPU shares, 1024 per vCPU). */
  reservedCpus: number;
  /** Memory the kernel tries to keep for the client under pressure; Docker `--memory-reservation`. */
  reservedMemoryMb: number;
}

/**
 * Everything Docker limits for one client's container: CPU and memory, and how many processes
 * (threads included) it may run at once.
 */
export interface ClientResources extends ResourceSpec {
  /** Most processes and threads the container may run at once; Docker `--pids-limit`. */
  pidsLimit: number;
}

/** One client, resolved from `clients/<slug>.yaml` plus the stack defaults. */
export interface ClientSpec {
  /** DNS label taken from the file name; names every resource of the client. */
  slug: string;
  /** Path of the client file, as given to the loader (used in messages). */
  file: string;
  /** Display name of the organisation ("Company ABC"). */
  name: string;
  /** E-mail of the first admin the workspace creates at its first start (the file's `admin`, else `admin@<defaultHostname>`). */
  admin: string;
  /** Host port published on 127.0.0.1 only; unique across clients. */
  port: number;
  /** Public hostname the workspace is served on. */
  hostname: string;
  /** `<slug>.<domain>`: always has a DNS record; redirects to `hostname` when they differ. */
  defaultHostname: string;
  /** active: container runs and Caddy proxies; suspended: no container, data kept, 503 page. */
  status: ClientStatus;
  /** Server the client leaves in this deployment (a move); absent otherwise. */
  moveFrom?: string;
  /** Container image reference (the client's override or the stack default). */
  image: string;
  /** Limits and reservations after stack defaults are applied. */
  resources: ClientResources;
  /** Extra non-secret environment from the client file. */
  env: Record<string, string>;
  /** OpenRouter key provisioning settings, when the client file asks for a managed key. */
  openrouter?: { monthlyLimitUsd?: number };
  /** Name of the server the client runs on (a key of the stack's `servers`). */
  server: string;
}

/** A Hetzner Cloud server the stack creates (the default kind). */
export interface HetznerServerSpec {
  /** Server name: a DNS label, unique in the stack; names its resources (`mai-<name>` at Hetzner). */
  name: string;
  kind: "hetzner";
  /** Hetzner CCX server type, e.g. `ccx53`. */
  serverType: string;
  /** Hetzner location, e.g. `nbg1`. */
  location: string;
}

/** The Docker Engine of the machine running Pulumi: for trying the stack out and for tests. */
export interface LocalServerSpec {
  /** Server name: a DNS label, unique in the stack. */
  name: string;
  kind: "local";
  /** Caddy's plain-HTTP port on 127.0.0.1. */
  httpPort: number;
  /** Caddy's HTTPS port on 127.0.0.1 (TCP, and UDP for HTTP/3). */
  httpsPort: number;
  /** Absolute directory holding the stack's host files (Caddyfile, scripts, backups). */
  stateDir: string;
  /** Docker Engine endpoint, e.g. `unix:///var/run/docker.sock`. */
  dockerHost: string;
  /** CPUs of the machine, when given: client CPU limits above it are lowered to it. */
  cpus?: number;
}

/** One server of the stack. (`kind: ssh`, an existing host over SSH, is reserved, not built.) */
export type ServerSpec = HetznerServerSpec | LocalServerSpec;

/** Stack-wide settings read from `Pulumi.<stack>.yaml` (non-secret values only). */
export interface StackSettings {
  /** Base domain in the Cloudflare zone (`localhost` for a local-only stack); clients default to `<slug>.<domain>`. */
  domain: string;
  /** Cloudflare zone id of `domain`; absent only in a stack without Hetzner servers. */
  cloudflareZoneId?: string;
  /** The servers, in configuration order (the program gets them in name order: decide nothing by it). */
  servers: ServerSpec[];
  /** Where clients without `server:` run (config/servers.ts `chooseDefaultServer`); none: each must name one. */
  defaultServer?: string;
  /** Hetzner CCX server type of a Hetzner server that does not name one, e.g. `ccx53`. */
  serverType: string;
  /** Hetzner location of a Hetzner server that does not name one, e.g. `nbg1`. */
  location: string;
  /** Hetzner OS image for the server, e.g. `ubuntu-24.04`. */
  serverImage: string;
  /** OpenSSH public keys allowed to log in as root (empty in a stack without Hetzner servers). */
  sshPublicKeys: string[];
  /** CIDRs allowed to reach SSH (22/tcp) (empty in a stack without Hetzner servers). */
  adminCidrs: string[];
  /** Image used by clients that do not override `image`. */
  defaultImage: string;
  /** Resources used for every value a client file leaves out. */
  defaultResources: ClientResources;
  /** CPU and memory kept back for the OS, Docker and Caddy when checking capacity. */
  hostReserve: { cpus: number; memoryMb: number };
  /** Contact address for ACME (Let's Encrypt) accounts; absent only in a stack without Hetzner servers. */
  acmeEmail?: string;
  /** Caddy image the proxy runs (stack `proxyImage`, default the pinned release). */
  proxyImage: string;
  /** Days a client's nightly database backups are kept on the host. */
  backupRetentionDays: number;
  /**
   * OpenRouter API base URL the stack manages client keys through (provisioning API) and
   * `npm run usage` reads usage from; not the workspaces' chat API base URL. Always set by
   * `parseStackSettings`; absent only in hand-built settings, meaning https://openrouter.ai/api/v1.
   */
  openrouterApiBaseUrl?: string;
  /** What `npm run invoice` charges; absent: the invoice shows usage only. */
  pricing?: PricingSpec;
  /**
   * Per client slug, the refused-by-default environment variables its file may set anyway
   * (`mai-hosting:allowedClientEnv`); absent or empty: none.
   */
  allowedClientEnv?: Readonly<Record<string, readonly string[]>>;
}

/** Monthly prices per client (stack config `pricing`). */
export interface PricingSpec {
  /** ISO 4217 code of the amounts, e.g. `EUR`. */
  currency: string;
  /** Fixed monthly fee per client. */
  baseFeePerClient: number;
  /** Monthly fee per active (not pending) user. */
  feePerActiveUser: number;
  /** Added to the OpenRouter spend, in percent. */
  usageMarkupPercent: number;
  /** Value of 1 USD in `currency` (1 when the currency is USD). */
  usdExchangeRate: number;
}
