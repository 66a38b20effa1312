/**
 * The Caddy release the proxy runs: one place for the version so the production image, the
 * locally built test binary (`scripts/install-caddy.sh` reads CADDY_VERSION from this file) and
 * the Caddyfile renderer's assumptions never drift apart.
 */

/** Caddy release (without the leading "v"); `go install …/caddy/v2/cmd/caddy@v<version>`. */
export const CADDY_VERSION = "2.11.9";

/** Pinned proxy container image of the same release. */
export const CADDY_IMAGE = "caddy:2.11.9-alpine";
