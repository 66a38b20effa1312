/**
 * Renders the proxy's Caddyfile from the resolved clients. Pure: no Pulumi, no I/O.
 *
 * Production and the integration tests render through this same function; the only knobs are the
 * listener ports and bind address, the admin address, the upstream addresses and the certificate
 * issuer, so the site blocks exercised by the tests are byte-for-byte the production ones.
 */
import type { ClientSpec } from "../config/model";

/** How the Caddyfile is rendered: production sets `acmeEmail`, a local host its listeners. */
export interface CaddyfileOptions {
  /** Contact address for the ACME account (Let's Encrypt / ZeroSSL); none with the internal issuer. */
  acmeEmail?: string;
  /** Address every site binds to (`default_bind`); all addresses when absent. */
  bindAddress?: string;
  /** Plain-HTTP listener port; default 80 (omitted from the file). */
  httpPort?: number;
  /** HTTPS listener port; default 443 (omitted from the file). */
  httpsPort?: number;
  /**
   * Where Caddy reaches a client's workspace; default `127.0.0.1:<port>`, the client's loopback
   * port (Caddy runs in the host's network namespace).
   */
  upstream?: (client: ClientSpec) => string;
  /** Certificate issuer: public ACME (default) or Caddy's internal CA for local tests. */
  issuer?: "acme" | "internal";
  /**
   * Admin API listen address: `unix/<absolute socket path>` (every proxy of the stack: its own
   * socket, see proxyPolicy.ts) or `host:port`; default is Caddy's own (localhost:2019).
   */
  adminAddress?: string;
}

/** Longest path a unix socket may have: `sun_path` holds 108 bytes including the final NUL. */
export const MAX_UNIX_SOCKET_PATH_BYTES = 107;

/**
 * Path the proxy container's health check requests on the plain-HTTP port, as host 127.0.0.1.
 * Answered by a site of its own: every other plain-HTTP request is redirected to HTTPS.
 */
export const PROXY_HEALTH_PATH = "/mai-proxy-health";

/** Largest request body accepted (document uploads to Open WebUI); larger ones get 413. */
export const MAX_REQUEST_BODY_BYTES = 100 * 1024 * 1024;

/**
 * How long proxied websockets (Open WebUI's /ws/socket.io/) of the old configuration stay open
 * after a reload; without it every reload would drop them at once (caddy#5471, caddy#6420).
 */
export const STREAM_CLOSE_DELAY = "1h";

/** Seconds announced in Retry-After on a suspended client's 503 page. */
export const SUSPENDED_RETRY_AFTER_SECONDS = 3600;

const SLUG_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const HOSTNAME_PATTERN =
  /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const UPSTREAM_PATTERN = /^(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]):[0-9]{1,5}$/i;
const EMAIL_PATTERN = /^[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const BIND_ADDRESS_PATTERN = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f:]+)$/i;
const ADMIN_ADDRESS_PATTERN = /^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\]):[0-9]{1,5}$/i;
const ADMIN_SOCKET_PATTERN = /^unix\/(\/[A-Za-z0-9._/-]+)$/;

/**
 * Renders the complete Caddyfile: global options, shared snippets, then per client (sorted by
 * slug) its site block and, when it has a custom hostname, the redirect from its default one.
 * Throws one error listing every value that cannot be rendered safely.
 */
export function renderCaddyfile(clients: ClientSpec[], options: CaddyfileOptions): string {
  const upstreamOf = options.upstream ?? loopbackUpstream;
  const sorted = [...clients].sort((a, b) => (a.slug < b.slug ? -1 : a.slug > b.slug ? 1 : 0));
  const problems = [...checkOptions(options), ...checkClients(sorted, upstreamOf)];
  if (problems.length > 0) {
    throw new Error(`Cannot render the Caddyfile:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }

  const blocks = [renderGlobalOptions(options), renderSnippets(), renderHealthSite()];
  for (const client of sorted) {
    blocks.push(
      client.status === "active"
        ? renderActiveSite(client, upstreamOf(client))
        : renderSuspendedSite(client),
    );
    if (client.defaultHostname !== client.hostname) blocks.push(renderRedirectSite(client, options.httpsPort));
  }
  return `${blocks.join("\n\n")}\n`;
}

/** The default upstream: the client's port on the host's loopback, where its container publishes 8080. */
export function loopbackUpstream(client: ClientSpec): string {
  return `127.0.0.1:${client.port}`;
}

function checkOptions(options: CaddyfileOptions): string[] {
  const problems: string[] = [];
  if (options.acmeEmail === undefined ? options.issuer !== "internal" : !EMAIL_PATTERN.test(options.acmeEmail)) {
    problems.push(`acmeEmail: expected an e-mail address like ops@example.com`);
  }
  if (options.bindAddress !== undefined && !BIND_ADDRESS_PATTERN.test(options.bindAddress)) {
    problems.push(`bindAddress: expected an IP address, got ${JSON.stringify(options.bindAddress)}`);
  }
  for (const key of ["httpPort", "httpsPort"] as const) {
    const port = options[key];
    if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
      problems.push(`${key}: expected an integer port between 1 and 65535, got ${port}`);
    }
  }
  if (options.adminAddress !== undefined) {
    const socket = ADMIN_SOCKET_PATTERN.exec(options.adminAddress)?.[1];
    if (socket === undefined && !ADMIN_ADDRESS_PATTERN.test(options.adminAddress)) {
      problems.push(`adminAddress: expected unix/<absolute socket path> or host:port, got ${JSON.stringify(options.adminAddress)}`);
    } else if (socket !== undefined && Buffer.byteLength(socket) > MAX_UNIX_SOCKET_PATH_BYTES) {
      problems.push(
        `adminAddress: the socket path ${socket} has ${Buffer.byteLength(socket)} bytes; a unix socket path has at most ${MAX_UNIX_SOCKET_PATH_BYTES}`,
      );
    }
  }
  return problems;
}

function checkClients(clients: ClientSpec[], upstreamOf: (client: ClientSpec) => string): string[] {
  const problems: string[] = [];
  const owners = new Map<string, string>();
  for (const client of clients) {
    const where = client.file || `client ${JSON.stringify(client.slug)}`;
    if (!SLUG_PATTERN.test(client.slug)) {
      problems.push(`${where}: slug ${JSON.stringify(client.slug)} is not a lowercase DNS label`);
    }
    for (const field of ["hostname", "defaultHostname"] as const) {
      const host = client[field];
      if (!HOSTNAME_PATTERN.test(host)) {
        problems.push(`${where}: ${field} ${JSON.stringify(host)} is not a lowercase DNS name`);
        continue;
      }
      const owner = owners.get(host);
      if (owner !== undefined && owner !== where) {
        problems.push(`${where}: ${field} ${host} is already used by ${owner}`);
      }
      owners.set(host, where);
    }
    if (client.status !== "active" && client.status !== "suspended") {
      problems.push(`${where}: status must be active or suspended`);
    }
    if (client.status === "active") {
      const upstream = upstreamOf(client);
      if (!UPSTREAM_PATTERN.test(upstream)) {
        problems.push(`${where}: upstream ${JSON.stringify(upstream)} is not host:port`);
      }
    }
  }
  return problems;
}

function renderGlobalOptions(options: CaddyfileOptions): string {
  const lines = ["{"];
  if (options.acmeEmail !== undefined) lines.push(`\temail ${options.acmeEmail}`);
  if (options.bindAddress !== undefined) lines.push(`\tdefault_bind ${options.bindAddress}`);
  if (options.adminAddress !== undefined) lines.push(`\tadmin ${options.adminAddress}`);
  if (options.httpPort !== undefined) lines.push(`\thttp_port ${options.httpPort}`);
  if (options.httpsPort !== undefined) lines.push(`\thttps_port ${options.httpsPort}`);
  if (options.issuer === "internal") {
    // Test-only: certificates from Caddy's own CA, whose root is not installed system-wide.
    lines.push("\tlocal_certs", "\tskip_install_trust");
  }
  // No grace_period: Caddy's default lets in-flight requests of the old config finish.
  lines.push(
    "\tservers {",
    "\t\tprotocols h1 h2 h3",
    "\t}",
    "}",
  );
  return lines.join("\n");
}

function renderSnippets(): string {
  const maxBodyMiB = MAX_REQUEST_BODY_BYTES / (1024 * 1024);
  return [
    "(mai_security_headers) {",
    "\theader {",
    '\t\tStrict-Transport-Security "max-age=31536000"',
    '\t\tX-Content-Type-Options "nosniff"',
    '\t\tReferrer-Policy "strict-origin-when-cross-origin"',
    '\t\tX-Frame-Options "SAMEORIGIN"',
    "\t\t-Server",
    "\t}",
    "}",
    "",
    "(mai_site) {",
    "\timport mai_security_headers",
    "\trequest_body {",
    `\t\tmax_size ${maxBodyMiB}MiB`,
    "\t}",
    "\t# Caddy flushes the encoder with every proxied flush, so streams stay unbuffered.",
    "\tencode zstd gzip",
    "\thandle_errors {",
    "\t\timport mai_security_headers",
    '\t\trespond "{err.status_code} {err.status_text}"',
    "\t}",
    "}",
  ].join("\n");
}

/**
 * The proxy container's health check target: a plain-HTTP site for host 127.0.0.1 on the HTTP
 * port. It proves Caddy serves its loaded configuration, through this proxy's own port, without
 * the admin API (a unix socket the container's busybox cannot speak to).
 */
function renderHealthSite(): string {
  return [
    "# Health check of the proxy container (busybox wget on the HTTP port).",
    "http://127.0.0.1 {",
    `\trespond ${PROXY_HEALTH_PATH} "OK" 200`,
    "\trespond 404",
    "}",
  ].join("\n");
}

function renderActiveSite(client: ClientSpec, upstream: string): string {
  return [
    `# ${client.slug}: active`,
    `${client.hostname} {`,
    "\timport mai_site",
    `\treverse_proxy ${upstream} {`,
    "\t\t# Forward every chunk at once (chat completions stream).",
    "\t\tflush_interval -1",
    "\t\t# Keep websockets open across reloads instead of dropping them.",
    `\t\tstream_close_delay ${STREAM_CLOSE_DELAY}`,
    "\t\t# Ride out a container restart instead of answering 502 at once.",
    "\t\tlb_try_duration 10s",
    "\t\tlb_try_interval 250ms",
    "\t}",
    "}",
  ].join("\n");
}

function renderSuspendedSite(client: ClientSpec): string {
  const name = htmlText(client.name);
  return [
    `# ${client.slug}: suspended (no upstream is contacted)`,
    `${client.hostname} {`,
    "\timport mai_site",
    "\theader {",
    `\t\tRetry-After "${SUSPENDED_RETRY_AFTER_SECONDS}"`,
    '\t\tContent-Type "text/html; charset=utf-8"',
    '\t\tCache-Control "no-store"',
    "\t}",
    "\trespond <<HTML",
    "\t\t<!DOCTYPE html>",
    '\t\t<html lang="en">',
    '\t\t<head><meta charset="utf-8"><title>Workspace unavailable</title></head>',
    '\t\t<body style="font-family:sans-serif;max-width:40em;margin:4em auto;padding:0 1em">',
    "\t\t<h1>Workspace unavailable</h1>",
    `\t\t<p>The workspace of ${name} is suspended.</p>`,
    "\t\t<p>Your data is kept. Please contact your administrator.</p>",
    "\t\t</body>",
    "\t\t</html>",
    "\t\tHTML 503",
    "}",
  ].join("\n");
}

function renderRedirectSite(client: ClientSpec, httpsPort: number | undefined): string {
  const port = httpsPort === undefined || httpsPort === 443 ? "" : `:${httpsPort}`;
  return [
    `# ${client.slug}: default hostname, redirects to the canonical one`,
    `${client.defaultHostname} {`,
    "\timport mai_security_headers",
    `\tredir https://${client.hostname}${port}{uri} 308`,
    "}",
  ].join("\n");
}

/**
 * Escapes text for the HTML page inside a Caddyfile heredoc: every character outside a small safe
 * set becomes a numeric entity, so quotes, braces (Caddy placeholders and `{$ENV}` substitution),
 * angle brackets and line breaks can never reach the Caddyfile or the page raw.
 */
export function htmlText(text: string): string {
  let out = "";
  for (const char of text) {
    out += /^[A-Za-z0-9 .,_-]$/.test(char) ? char : `&#${char.codePointAt(0)};`;
  }
  return out;
}
