/**
 * Pulumi names of the resources each server gets. The server called `host` (the only server of a
 * stack without `servers`) keeps the names of the single-server layout, so upgrading such a
 * stack renames nothing; every other server prefixes its resources with its name. Docker object
 * names (`mai-network`, `mai-proxy`, `mai-caddy-data`) are per engine and the same everywhere.
 */
import { DEFAULT_SERVER_NAME } from "../config/servers";

/** Logical resource names of one server's shared resources. */
export interface ServerResourceNames {
  /** The host component (`mai:index:Host`); its children are named `<host>-…`. */
  host: string;
  /** The shared Docker network. */
  network: string;
  /** The backup tooling component. */
  backupTooling: string;
  /** The proxy component. */
  proxy: string;
  /** The monitoring tooling component (status, sampler, alerts). */
  monitoring: string;
}

export function serverResourceNames(server: string): ServerResourceNames {
  if (server === DEFAULT_SERVER_NAME) {
    return { host: server, network: "mai-network", backupTooling: "backup-tooling", proxy: "proxy", monitoring: "monitoring" };
  }
  return {
    host: server,
    network: `${server}-shared-network`,
    backupTooling: `${server}-backup-tooling`,
    proxy: `${server}-proxy`,
    monitoring: `${server}-monitoring`,
  };
}
