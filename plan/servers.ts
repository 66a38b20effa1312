/**
 * Which server each declared resource belongs to, for grouping the plan by server. Pure: reads
 * the component tree (a client's resources follow its `server`, a host's children its name, the
 * per-server shared components their names from `serverResourceNames`).
 */
import { serverResourceNames } from "../policy/serverNaming";
import type { DeclaredResource } from "./types";

/** Server name per resource URN; resources of no server (none today) are left out. */
export function resourceServers(
  resources: readonly DeclaredResource[],
  servers: readonly string[],
  clientServer: Readonly<Record<string, string>>,
): Map<string, string> {
  const byUrn = new Map(resources.map((r) => [r.urn, r]));
  const rootNames = new Map<string, string>();
  for (const server of servers) {
    const names = serverResourceNames(server);
    for (const name of Object.values(names)) rootNames.set(name, server);
  }
  const result = new Map<string, string>();
  for (const resource of resources) {
    let current: DeclaredResource | undefined = resource;
    let server: string | undefined;
    for (let guard = 0; current && guard < 64 && server === undefined; guard++) {
      if (current.type === "mai:index:ClientInstance") server = clientServer[current.name];
      else if (current.type === "mai:index:Host" && servers.includes(current.name)) server = current.name;
      else if (!current.parent || !byUrn.has(current.parent)) server = rootNames.get(current.name);
      current = current.parent ? byUrn.get(current.parent) : undefined;
    }
    // Providers are top-level: a host's Docker provider is named `<host>-docker`. The longest
    // matching name wins: `nbg1-a-docker` is server nbg1-a's, not nbg1's.
    if (server === undefined && resource.type.startsWith("pulumi:providers:")) {
      server = servers
        .filter((name) => resource.name.startsWith(`${name}-`))
        .reduce<string | undefined>((longest, name) => (longest === undefined || name.length > longest.length ? name : longest), undefined);
    }
    if (server !== undefined) result.set(resource.urn, server);
  }
  return result;
}
