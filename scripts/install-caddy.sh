#!/usr/bin/env bash
# Builds the Caddy release pinned in policy/caddyRelease.ts (the one the proxy image runs)
# into a cache outside the repository, unless it is already there, and prints the binary's path.
# The integration tests and the proxy benchmark use it (or $CADDY_BIN when set).
# Needs Go and access to the Go module proxy on the first run only.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(sed -n 's/^export const CADDY_VERSION = "\([0-9][0-9.]*\)";$/\1/p' "$repo_dir/policy/caddyRelease.ts")"
[ -n "$version" ] || { echo "install-caddy: cannot read CADDY_VERSION from policy/caddyRelease.ts" >&2; exit 1; }

cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/mai-hosting/caddy-$version"
binary="$cache_dir/caddy"
module="github.com/caddyserver/caddy/v2"

# `caddy version` prints "unknown" for a binary built this way (caddy is the main module);
# the embedded build info names the module version reliably.
built_version() {
  go version -m "$1" 2>/dev/null | awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }'
}

if [ -x "$binary" ] && [ "$(built_version "$binary")" = "v$version" ]; then
  echo "$binary"
  exit 0
fi

command -v go >/dev/null || { echo "install-caddy: Go is required to build Caddy $version" >&2; exit 1; }
mkdir -p "$cache_dir"
echo "install-caddy: building Caddy v$version (first run only)..." >&2
GOBIN="$cache_dir" CGO_ENABLED=0 go install "$module/cmd/caddy@v$version"

found="$(built_version "$binary")"
if [ "$found" != "v$version" ]; then
  echo "install-caddy: built $binary reports module version '${found:-none}', expected v$version" >&2
  exit 1
fi
echo "$binary"
