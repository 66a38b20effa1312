/**
 * Ports a server's own services listen on. A client's port is published on the host's loopback,
 * so it must not be one of them: Docker would fail to publish it, or (with SO_REUSEPORT or an
 * address it does not bind) the two would share the port. Pure: no Pulumi imports.
 */
import type { ServerSpec } from "../config/model";

/** Caddy's admin API, on the loopback of every server (Caddy's default, `localhost:2019`). */
export const CADDY_ADMIN_PORT = 2019;

/** A port a host service owns, and what owns it (for messages). */
export interface HostPort {
  port: number;
  owner: string;
}

/** The port of a `tcp://` Docker endpoint on this machine's loopback, if `dockerHost` is one. */
function loopbackDockerPort(dockerHost: string): number | undefined {
  const match = /^tcp:\/\/(?:127\.\d+\.\d+\.\d+|localhost|\[::1\]):(\d+)\/?$/.exec(dockerHost);
  return match === null ? undefined : Number(match[1]);
}

/**
 * The ports taken on the machine a client of `server` runs on. A Hetzner server runs sshd and
 * Caddy; local servers all share the machine running Pulumi, so every local server's proxy ports
 * (and a Docker endpoint on its loopback) are taken for each of them.
 */
export function hostServicePorts(server: ServerSpec, servers: readonly ServerSpec[]): HostPort[] {
  const ports: HostPort[] = [{ port: CADDY_ADMIN_PORT, owner: `Caddy's admin API (localhost:${CADDY_ADMIN_PORT}) on every server` }];
  if (server.kind === "hetzner") {
    ports.push(
      { port: 22, owner: `sshd on server "${server.name}"` },
      { port: 80, owner: `Caddy's HTTP listener on server "${server.name}"` },
      { port: 443, owner: `Caddy's HTTPS listener on server "${server.name}"` },
    );
    return ports;
  }
  for (const local of servers) {
    if (local.kind !== "local") continue;
    ports.push(
      { port: local.httpPort, owner: `the proxy's HTTP port of local server "${local.name}" (servers.${local.name}.httpPort) on this machine` },
      { port: local.httpsPort, owner: `the proxy's HTTPS port of local server "${local.name}" (servers.${local.name}.httpsPort) on this machine` },
    );
    const docker = loopbackDockerPort(local.dockerHost);
    if (docker !== undefined) ports.push({ port: docker, owner: `the Docker Engine of local server "${local.name}" (servers.${local.name}.dockerHost)` });
  }
  return ports;
}

/**
 * Ports a host of any stack may own without the stack file saying so (Caddy's admin API and the
 * default proxy ports of a local server): `npm run new-client` never hands them out.
 */
export const WELL_KNOWN_HOST_PORTS: readonly number[] = [CADDY_ADMIN_PORT, 8080, 8443];
