/**
 * Every name a host shares between clients, by namespace: Docker containers, networks, volumes,
 * and host paths. A client's own names are derived from its slug (`clientNames`), so a slug can
 * make a client's name equal a shared one: `caddy` would make the data volume `mai-caddy-data`,
 * Caddy's certificate storage. The reserved slugs are computed from this list instead of kept by
 * hand, and a test checks that every shared Docker object the program declares is listed here.
 * Pure: no Pulumi imports.
 */
import { HOST_PATHS } from "./cloudInit";
import { clientNames } from "./clientContainer";
import type { HostPaths } from "./hostPaths";

/** The proxy's container; reload and status commands address it by this name. */
export const PROXY_CONTAINER = "mai-proxy";
/** The bridge network every host has besides the clients' own. */
export const SHARED_NETWORK = "mai-network";
/** Caddy's storage: certificates, ACME account, autosaved config. */
export const PROXY_VOLUMES = { data: "mai-caddy-data", config: "mai-caddy-config" } as const;

/** Directory of the proxy's admin socket on a host; mounted into the proxy at the same path. */
export function proxyAdminDir(paths: HostPaths): string {
  return `${paths.stateDir}/caddy-admin`;
}

/** The namespaces in which a client's name could meet a shared one. */
export type NameKind = "container" | "network" | "volume" | "hostPath";

/** Shared names per namespace. */
export const SHARED_NAMES: Readonly<Record<NameKind, readonly string[]>> = {
  container: [PROXY_CONTAINER],
  network: [SHARED_NETWORK],
  volume: [PROXY_VOLUMES.data, PROXY_VOLUMES.config],
  hostPath: [HOST_PATHS.caddyDir, HOST_PATHS.backupsDir, HOST_PATHS.etcDir, proxyAdminDir(HOST_PATHS)],
};

/** A client's name in each namespace, as a template around the slug. */
function clientNameTemplates(): Record<NameKind, (slug: string) => string> {
  return {
    container: (slug) => clientNames(slug).container,
    network: (slug) => clientNames(slug).network,
    volume: (slug) => clientNames(slug).dataVolume,
    hostPath: (slug) => clientNames(slug).backupsDir,
  };
}

/** What a reserved slug would collide with. */
export interface ReservedSlug {
  slug: string;
  kind: NameKind;
  sharedName: string;
}

/**
 * Slugs whose client names would equal a shared name: for each namespace, the client's name
 * template is matched against every shared name of that namespace.
 */
export function reservedSlugs(): ReservedSlug[] {
  const marker = "\u0000";
  const reserved: ReservedSlug[] = [];
  for (const [kind, template] of Object.entries(clientNameTemplates()) as Array<[NameKind, (slug: string) => string]>) {
    const [prefix, suffix] = template(marker).split(marker);
    for (const sharedName of SHARED_NAMES[kind]) {
      if (sharedName.length <= prefix.length + suffix.length) continue;
      if (!sharedName.startsWith(prefix) || !sharedName.endsWith(suffix)) continue;
      reserved.push({ slug: sharedName.slice(prefix.length, sharedName.length - suffix.length), kind, sharedName });
    }
  }
  return reserved;
}
