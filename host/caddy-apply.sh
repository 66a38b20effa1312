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
#   Refusal: an invalid file exits non-zero and leaves "Caddyfile" untouched. If the reload itself
#           fails, the previous Caddyfile is put back and the script exits non-zero.
#   Proxy gone meanwhile: when a caddy command fails because the proxy stopped or restarted while
#           it ran (killed, OOM-killed, its daemon restarted), it is retried every second, up to
#           CADDY_PROXY_WAIT seconds (60), while the restart policy brings the proxy back: the new
#           file is then served, and the deploy step succeeds instead of leaving the old routes.
#   Environment (defaults are the production host):
#     CADDY_HOST_DIR      directory holding the Caddyfile on this host     (/opt/mai/caddy)
#     CADDY_CONFIG_DIR    the same directory as Caddy sees it              (/etc/caddy)
#     CADDY               runs caddy inside the running proxy              (docker exec mai-proxy caddy)
#     CADDY_OFFLINE       runs caddy when the proxy is not running, with CADDY_CONFIG_DIR
#                         visible; default: a throw-away container of CADDY_IMAGE
#     CADDY_IMAGE         image for the default CADDY_OFFLINE (required only in that case)
#     CADDY_PROXY_RUNNING shell command that succeeds when the proxy is running
#                         (default: docker inspect of mai-proxy)
#     CADDY_PROXY_STATE   shell command printing what identifies the running proxy (default: the
#                         container's running flag and start time; with CADDY_PROXY_RUNNING given,
#                         whether that succeeds)
set -euo pipefail

host_dir="${CADDY_HOST_DIR:-/opt/mai/caddy}"
config_dir="${CADDY_CONFIG_DIR:-/etc/caddy}"
proxy_running="${CADDY_PROXY_RUNNING:-[ \"\$(docker inspect -f '{{.State.Running}}' mai-proxy 2>/dev/null)\" = true ]}"
if [ -n "${CADDY_PROXY_STATE:-}" ]; then
  proxy_state_command=$CADDY_PROXY_STATE
elif [ -n "${CADDY_PROXY_RUNNING:-}" ]; then
  proxy_state_command="if $proxy_running; then echo running; else echo stopped; fi"
else
  proxy_state_command="docker inspect -f '{{.State.Running}} {{.State.StartedAt}}' mai-proxy 2>/dev/null"
fi
proxy_wait="${CADDY_PROXY_WAIT:-60}"

next="$host_dir/Caddyfile.next"
live="$host_dir/Caddyfile"
previous="$host_dir/Caddyfile.previous"

fail() {
  echo "caddy-apply: $*" >&2
  exit 1
}

[ -f "$next" ] || fail "no new configuration at $next"

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

proxy_state() { bash -c "$proxy_state_command" 2>/dev/null || true; }
proxy_was=$(proxy_state)
proxy_went_away=no

# in_proxy <caddy arguments>: runs caddy (in the proxy), its output in $caddy_output. A failure
# while the same proxy keeps running is Caddy's own answer and final. A failure because the proxy
# stopped or restarted meanwhile is retried every second while its restart policy brings it back
# (Caddy then runs the live file; the retry loads it again), up to $proxy_wait seconds.
caddy_output=
in_proxy() {
  local deadline=$((SECONDS + proxy_wait))
  until caddy_output="$("${caddy[@]}" "$@" 2>&1)"; do
    if { [ "$proxy_went_away" = no ] && [ "$(proxy_state)" = "$proxy_was" ]; } || [ "$SECONDS" -ge "$deadline" ]; then
      return 1
    fi
    [ "$proxy_went_away" = yes ] ||
      echo "caddy-apply: the proxy stopped or restarted during 'caddy $1'; retrying while it comes back (up to ${proxy_wait}s)" >&2
    proxy_went_away=yes
    sleep 1
  done
}

# Validation provisions every module (TLS, proxy, matchers), not just the syntax.
if ! in_proxy validate --config "$config_dir/Caddyfile.next" --adapter caddyfile; then
  echo "$caddy_output" | grep -v '"level":"info"' >&2 || true
  [ "$proxy_went_away" = no ] || fail "the proxy did not come back within ${proxy_wait}s to validate the new Caddyfile; $live was left untouched"
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

if ! in_proxy reload --config "$config_dir/Caddyfile" --adapter caddyfile; then
  echo "$caddy_output" | grep -v '"level":"info"' >&2 || true
  if [ -f "$previous" ]; then
    mv -f "$previous" "$live"
    fail "reload failed; the previous Caddyfile was restored and is still being served"
  fi
  fail "reload failed"
fi
rm -f "$previous"
if [ "$proxy_went_away" = yes ]; then
  echo "caddy-apply: installed $live and reloaded the proxy (after it came back)"
else
  echo "caddy-apply: installed $live and reloaded the proxy"
fi
