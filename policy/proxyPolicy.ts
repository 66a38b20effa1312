/**
 * Pure pieces of the proxy: its container's name, ports and health check, the commands that
 * join it to client networks, and the content hash that decides when Caddy reloads.
 */
import { createHash } from "crypto";
import { dockerHealthcheck } from "./dockerCanonical";
import { PROXY_CONTAINER } from "./sharedNames";

export { PROXY_CONTAINER };

/** Short, stable content hash: a changed hash is what triggers an upload and a reload. */
export function contentHash(content: string): string {
  return createHash("sha256").update(content).digest("hex").slice(0, 16);
}

/**
 * Public ports: 80 for ACME and redirects, 443 over TCP and UDP (HTTP/3). Docker's provider binds
 * 0.0.0.0 unless told otherwise, so IPv6 gets its own bindings for the AAAA records to work.
 */
export function proxyPorts() {
  const bindings: { internal: number; external: number; ip: string; protocol: string }[] = [];
  for (const ip of ["0.0.0.0", "::"]) {
    bindings.push({ internal: 80, external: 80, ip, protocol: "tcp" });
    bindings.push({ internal: 443, external: 443, ip, protocol: "tcp" });
    bindings.push({ internal: 443, external: 443, ip, protocol: "udp" });
  }
  return bindings;
}

/** Caddy's admin endpoint answers once the config is loaded (busybox wget is in the alpine image). */
export const PROXY_HEALTHCHECK = dockerHealthcheck({
  tests: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:2019/config/ || exit 1"],
  intervalSeconds: 30,
  timeoutSeconds: 5,
  startPeriodSeconds: 10,
  retries: 3,
});

/**
 * Join / leave one client network. Idempotent: connecting twice fails in Docker, so an existing
 * membership counts as success; leaving a network that is already gone is not an error.
 */
export function proxyAttachCommands(network: string): { create: string; delete: string } {
  const member = `docker inspect -f '{{json .NetworkSettings.Networks}}' ${PROXY_CONTAINER} | grep -q '"${network}"'`;
  return {
    create: `${member} || docker network connect ${network} ${PROXY_CONTAINER}`,
    delete: `docker network disconnect --force ${network} ${PROXY_CONTAINER} 2>/dev/null || true`,
  };
}
