#!/usr/bin/env bash
# Installs a freshly uploaded Caddyfile and reloads the proxy gracefully: open websockets and streams
# are kept; a request arriving within ~50 ms of the reload can be lost (README: "Proxy reloads").
#
# Contract
#   Input:  "$CADDY_HOST_DIR/Caddyfile.next", the rendered Caddyfile uploaded by the deployment.
#   Effect: the file is validated by Caddy itself; if valid it atomically replaces
#           "$CADDY_HOST_DIR/Caddyfile" (a rename inside the directory: the proxy bind-mounts the
#           directory, so it sees the new inode) and, when the proxy is running, Caddy reloads it
#           gracefully (`caddy reload`; in-flight requests finish and websockets are kept by the
#           config; a few requests arriving during the switch-over get no response).
#           When the proxy is not running yet the file is only installed: the container starts
#           with it.
#           Without a new file (a re-run after only this script changed, or after a deployment
#           that died between the install and recording it), the installed file is applied again.
#   Refusal: an invalid file exits non-zero and leaves "Caddyfile" untouched. If the reload itself
#           fails, the previous Caddyfile is put back and the script exits non-zero.
#   Environment (defaults are the production host):
#     CADDY_HOST_DIR      directory holding the Caddyfile on this host     (/opt/mai/caddy)
#     CADDY_CONFIG_DIR    the same directory as Caddy sees it              (/etc/caddy)
#     CADDY               runs caddy inside the running proxy              (docker exec mai-proxy caddy)
#     CADDY_OFFLINE       runs caddy when the proxy is not running, with CADDY_CONFIG_DIR
#                         visible; default: a throw-away container of CADDY_IMAGE
#     CADDY_IMAGE         image for the default CADDY_OFFLINE (required only in that case)
#     CADDY_PROXY_RUNNING shell command that succeeds when the proxy is running
#                         (default: docker inspect of mai-proxy)
set -euo pipefail

host_dir="${CADDY_HOST_DIR:-/opt/mai/caddy}"
config_dir="${CADDY_CONFIG_DIR:-/etc/caddy}"
proxy_running="${CADDY_PROXY_RUNNING:-[ \"\$(docker inspect -f '{{.State.Running}}' mai-proxy 2>/dev/null)\" = true ]}"

next="$host_dir/Caddyfile.next"
live="$host_dir/Caddyfile"
previous="$host_dir/Caddyfile.previous"

fail() {
  echo "caddy-apply: $*" >&2
  exit 1
}

if [ ! -f "$next" ]; then
  # This step runs again without a new upload when only this script changed, or after a deployment
  # died between installing the file and recording that it had: the file it wants is the live one.
  [ -f "$live" ] || fail "no new configuration at $next"
  echo "caddy-apply: no new configuration at $next; applying the installed $live again" >&2
  cp -p "$live" "$next"
fi

if bash -c "$proxy_running"; then
  running=true
  read -r -a caddy <<<"${CADDY:-docker exec mai-proxy caddy}"
else
  running=false
  if [ -n "${CADDY_OFFLINE:-}" ]; then
    read -r -a caddy <<<"$CADDY_OFFLINE"
  else
    [ -n "${CADDY_IMAGE:-}" ] || fail "the proxy is not running and CADDY_IMAGE is not set to validate with"
    caddy=(docker run --rm --network none -v "$host_dir:$config_dir:ro" "$CADDY_IMAGE" caddy)
  fi
fi

# Validation provisions every module (TLS, proxy, matchers), not just the syntax.
if ! validation_output="$("${caddy[@]}" validate --config "$config_dir/Caddyfile.next" --adapter caddyfile 2>&1)"; then
  echo "$validation_output" | grep -v '"level":"info"' >&2 || true
  fail "the new Caddyfile is invalid; $live was left untouched"
fi

if [ -f "$live" ]; then
  cp -p "$live" "$previous"
fi
mv -f "$next" "$live"

if [ "$running" = false ]; then
  rm -f "$previous"
  echo "caddy-apply: installed $live (proxy not running; it starts with this file)"
  exit 0
fi

if ! reload_output="$("${caddy[@]}" reload --config "$config_dir/Caddyfile" --adapter caddyfile 2>&1)"; then
  echo "$reload_output" | grep -v '"level":"info"' >&2 || true
  if [ -f "$previous" ]; then
    mv -f "$previous" "$live"
    fail "reload failed; the previous Caddyfile was restored and is still being served"
  fi
  fail "reload failed"
fi
rm -f "$previous"
echo "caddy-apply: installed $live and reloaded the proxy"
