/**
 * Pure pieces of the proxy: its container's name, network mode and health check, the Caddyfile
 * options of a host's listeners, the reload command, and the content hash that decides when
 * Caddy reloads.
 *
 * Caddy runs in the host's network namespace (`network_mode: host`) and proxies to each client's
 * loopback port. The container declares no `ports` (nothing the provider could read back in
 * another order), Caddy sees the real client addresses of both families, serves HTTP/3 over UDP
 * directly, and joins no client network (no imperative memberships that a restart could lose).
 * Clients stay isolated: each has its own bridge network, and another container's 127.0.0.1 is
 * not the host's loopback where client ports are published. The trade-off: Caddy shares the
 * host's network settings (sysctls live on the host, see cloudInit.ts), and its admin API is a
 * unix socket of its own in the host's state directory: Caddy's default, localhost:2019, is one
 * address per network namespace, and two local servers' proxies on one machine would both bind it
 * (SO_REUSEPORT) and answer each other's reloads. The socket's directory is mounted into the proxy
 * at the same path, so the Caddyfile, `docker exec … caddy reload` and host tools all name it
 * alike; no client container mounts it.
 */
import { createHash } from "crypto";
import { type CaddyfileOptions, PROXY_HEALTH_PATH } from "./caddyfile";
import type { HostPaths } from "./hostPaths";
import { HOST_PATHS } from "./cloudInit";
import { shellQuote } from "./localHost";
import { dockerHealthcheck } from "./dockerCanonical";
import { PROXY_CONTAINER, proxyAdminDir } from "./sharedNames";

export { PROXY_CONTAINER, proxyAdminDir };

/** The proxy's network mode: the host's own network namespace. */
export const PROXY_NETWORK_MODE = "host";

/** Short, stable content hash: a changed hash is what triggers an upload and a reload. */
export function contentHash(content: string): string {
  return createHash("sha256").update(content).digest("hex").slice(0, 16);
}

/**
 * The proxy's health check: Caddy answers the health site of its loaded Caddyfile on this host's
 * plain-HTTP port (busybox wget is in the image; it cannot reach the admin API's unix socket).
 */
export function proxyHealthcheck(httpPort: number) {
  return dockerHealthcheck({
    tests: ["CMD-SHELL", `wget -q -O /dev/null http://127.0.0.1:${httpPort}${PROXY_HEALTH_PATH} || exit 1`],
    intervalSeconds: 30,
    timeoutSeconds: 5,
    startPeriodSeconds: 10,
    retries: 3,
  });
}

/** The health check of a proxy on the public HTTP port 80 (a Hetzner host's). */
export const PROXY_HEALTHCHECK = proxyHealthcheck(80);

/** The proxy's admin API socket on a host (see the module comment). */
export function proxyAdminSocket(paths: HostPaths): string {
  return `${proxyAdminDir(paths)}/admin.sock`;
}

/** How the proxy listens on a host (see the Host seam). */
export interface ProxyListenerSettings {
  bindAddress?: string;
  httpPort: number;
  httpsPort: number;
  issuer: "acme" | "internal";
  /** Unix socket of the proxy's admin API. */
  adminSocket: string;
}

/**
 * Caddyfile options for a host's listeners. The public defaults (every address, 80 and 443,
 * ACME) are left out of the file, so a production Caddyfile says only what differs; the admin
 * socket is always named (Caddy's default is shared by every proxy on one machine).
 */
export function caddyfileOptionsFor(listeners: ProxyListenerSettings, acmeEmail: string | undefined): CaddyfileOptions {
  return {
    ...(acmeEmail === undefined ? {} : { acmeEmail }),
    ...(listeners.bindAddress === undefined ? {} : { bindAddress: listeners.bindAddress }),
    adminAddress: `unix/${listeners.adminSocket}`,
    ...(listeners.httpPort === 80 ? {} : { httpPort: listeners.httpPort }),
    ...(listeners.httpsPort === 443 ? {} : { httpsPort: listeners.httpsPort }),
    ...(listeners.issuer === "acme" ? {} : { issuer: listeners.issuer }),
  };
}

/** File name of the apply script in a host's bin directory. */
export const APPLY_SCRIPT_NAME = "mai-caddy-apply";

/**
 * The reload command: runs the apply script (host/caddy-apply.sh) with the image to validate
 * with while the proxy is down, and the Caddyfile directory when it is not the script's default.
 * Variables inline, because sshd drops a command's `environment`.
 */
export function proxyApplyCommand(paths: HostPaths, image: string): string {
  const env = [
    ...(paths.caddyDir === HOST_PATHS.caddyDir ? [] : [`CADDY_HOST_DIR=${paths.caddyDir}`]),
    `CADDY_IMAGE=${image}`,
  ];
  return `${env.join(" ")} bash ${paths.binDir}/${APPLY_SCRIPT_NAME}`;
}

/**
 * Before the container starts: the admin socket's directory, root's only, and the Caddyfile to
 * boot with when there is none yet (later changes go through the apply step). Also when the
 * installed one does not name this proxy's admin socket: a proxy from before the sockets listens
 * on Caddy's default, localhost:2019, which two local servers' proxies on one machine share, so a
 * reload there could reach the other one. The same deployment replaces the proxy container (its
 * socket mount is new), and the new container starts on its own socket right away.
 */
export function proxySeedCommand(paths: HostPaths): string {
  const adminLine = `\tadmin unix/${proxyAdminSocket(paths)}`;
  return [
    `install -d -m 0700 ${proxyAdminDir(paths)}`,
    `cd ${paths.caddyDir}`,
    `{ grep -qxF ${shellQuote(adminLine)} Caddyfile 2>/dev/null || cp Caddyfile.next Caddyfile; }`,
  ].join(" && ");
}
