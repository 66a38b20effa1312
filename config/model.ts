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

/** One client, resolved from `clients/<slug>.yaml` plus the stack defaults. */
export interface ClientSpec {
  /** DNS label taken from the file name; names every resource of the client. */
  slug: string;
  /** Path of the client file, as given to the loader (used in messages). */
  file: string;
  /** Display name of the organisation ("Company ABC"). */
  name: string;
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
  resources: ResourceSpec;
  /** Extra non-secret environment from the client file. */
  env: Record<string, string>;
  /** OpenRouter key provisioning settings, when the client file asks for a managed key. */
  openrouter?: { monthlyLimitUsd?: number };
}

/** Stack-wide settings read from `Pulumi.<stack>.yaml` (non-secret values only). */
export interface StackSettings {
  /** Base domain in the Cloudflare zone; clients default to `<slug>.<domain>`. */
  domain: string;
  /** Cloudflare zone id of `domain`. */
  cloudflareZoneId: string;
  /** Hetzner CCX server type, e.g. `ccx53`. */
  serverType: string;
  /** Hetzner location, e.g. `nbg1`. */
  location: string;
  /** Hetzner OS image for the server, e.g. `ubuntu-24.04`. */
  serverImage: string;
  /** OpenSSH public keys allowed to log in as root. */
  sshPublicKeys: string[];
  /** CIDRs allowed to reach SSH (22/tcp). */
  adminCidrs: string[];
  /** Image used by clients that do not override `image`. */
  defaultImage: string;
  /** Resources used for every value a client file leaves out. */
  defaultResources: ResourceSpec;
  /** CPU and memory kept back for the OS, Docker and Caddy when checking capacity. */
  hostReserve: { cpus: number; memoryMb: number };
  /** Contact address for ACME (Let's Encrypt) accounts. */
  acmeEmail: string;
  /** Days a client's nightly database backups are kept on the host. */
  backupRetentionDays: number;
  /**
   * OpenRouter API base URL the stack manages client keys through (provisioning API) and
   * `npm run usage` reads usage from; not the workspaces' chat API base URL. Always set by
   * `parseStackSettings`; absent only in hand-built settings, meaning https://openrouter.ai/api/v1.
   */
  openrouterApiBaseUrl?: string;
}
