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
 * host's network settings (sysctls live on the host, see cloudInit.ts) and its admin API must
 * stay on the loopback (Caddy's default, localhost:2019).
 */
import { createHash } from "crypto";
import type { CaddyfileOptions } from "./caddyfile";
import type { HostPaths } from "./hostPaths";
import { HOST_PATHS } from "./cloudInit";
import { dockerHealthcheck } from "./dockerCanonical";
import { CADDY_ADMIN_PORT } from "./hostPorts";
import { PROXY_CONTAINER } from "./sharedNames";

export { PROXY_CONTAINER };

/** The proxy's network mode: the host's own network namespace. */
export const PROXY_NETWORK_MODE = "host";

/** Short, stable content hash: a changed hash is what triggers an upload and a reload. */
export function contentHash(content: string): string {
  return createHash("sha256").update(content).digest("hex").slice(0, 16);
}

/** Caddy's admin endpoint answers once the config is loaded (busybox wget is in the image). */
export const PROXY_HEALTHCHECK = dockerHealthcheck({
  tests: ["CMD-SHELL", `wget -q -O /dev/null http://127.0.0.1:${CADDY_ADMIN_PORT}/config/ || exit 1`],
  intervalSeconds: 30,
  timeoutSeconds: 5,
  startPeriodSeconds: 10,
  retries: 3,
});

/** How the proxy listens on a host (see the Host seam). */
export interface ProxyListenerSettings {
  bindAddress?: string;
  httpPort: number;
  httpsPort: number;
  issuer: "acme" | "internal";
}

/**
 * Caddyfile options for a host's listeners. The public defaults (every address, 80 and 443,
 * ACME) are left out of the file, so a production Caddyfile says only what differs.
 */
export function caddyfileOptionsFor(listeners: ProxyListenerSettings, acmeEmail: string | undefined): CaddyfileOptions {
  return {
    ...(acmeEmail === undefined ? {} : { acmeEmail }),
    ...(listeners.bindAddress === undefined ? {} : { bindAddress: listeners.bindAddress }),
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

/** First start only: the container needs a Caddyfile to boot with; later changes go through the apply step. */
export function proxySeedCommand(paths: HostPaths): string {
  return `cd ${paths.caddyDir} && { [ -f Caddyfile ] || cp Caddyfile.next Caddyfile; }`;
}
