/**
 * The rule for an API base URL the stack or its tools call (the OpenRouter provisioning API):
 * HTTPS, or plain HTTP only to a loopback address (a stand-in on the machine running Pulumi), so a
 * typo can never send the provisioning key in clear text over a network. No imports: the OpenRouter
 * key provider, which Pulumi serializes into the state, uses it too.
 */

/**
 * OpenRouter's API: where the stack manages client keys (provisioning API) and `npm run usage`
 * reads their usage, unless the stack's `openrouterApiBaseUrl` points elsewhere.
 */
export const DEFAULT_OPENROUTER_API_BASE_URL = "https://openrouter.ai/api/v1";

/** Hosts plain HTTP is allowed to: the machine itself. */
function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host.endsWith(".localhost") || host === "::1" || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * Why `value` is not a usable API base URL, or undefined. The reason never quotes the value (it may
 * hold credentials or a pasted key); callers show it in their own, redacting way.
 */
export function apiBaseUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return "not a URL";
  }
  if (url.username !== "" || url.password !== "") return "credentials do not belong in the URL";
  if (url.search !== "" || url.hash !== "") return "a base URL has no query or fragment";
  if (url.protocol === "https:") return undefined;
  if (url.protocol === "http:") {
    return isLoopbackHost(url.hostname) ? undefined : `plain http would send the provisioning key unencrypted to ${url.hostname}; use https`;
  }
  return `the scheme must be https (or http for a loopback host), not ${url.protocol.replace(/:$/, "")}`;
}

/** The URL without trailing slashes, as clients join paths to it. */
export function normalizeApiBaseUrl(value: string): string {
  return value.trim().replace(/\/+$/, "");
}
