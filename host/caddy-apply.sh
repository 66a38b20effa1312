#!/usr/bin/env bash
# Installs a freshly uploaded Caddyfile and reloads the proxy gracefully: open websockets and streams
# are kept; a request arriving within ~50 ms of the reload can be lost (docs/runbook.md: "Proxy reloads").
#
# Contract
#   Input:  "$CADDY_HOST_DIR/Caddyfile.next", the rendered Caddyfile uploaded by the deployment.
#   Effect: the file is validated by Caddy itself; if valid it atomically replaces
#           "$CADDY_HOST_DIR/Caddyfile" (a rename inside the directory: the proxy bind-mounts the
#           directory, so it sees the new inode) and, when the proxy is running, Caddy reloads it
#           gracefully (`caddy reload`; in-flight requests finish and websockets are kept by the
#           config; a few requests arriving during the switch-over get no response).
#           The reload goes to the admin address of the configuration the proxy runs (the
#           `admin` line of the installed Caddyfile; Caddy's default localhost:2019 when it has
#           none), never to a default: two proxies on one machine each have their own socket,
#           and a proxy moving to a new address is reached at its old one this last time.
#           When the proxy is not running yet the file is only installed: the container starts
#           with it.
#           Without a new file (a re-run after only this script changed, or after a deployment
#           that died between the install and recording it), the installed file is applied again.
#   Refusal: an invalid file exits non-zero and leaves "Caddyfile" untouched. If the reload itself
#           fails, the previous Caddyfile is put back and the script exits non-zero.
#   Proxy gone meanwhile: when a caddy command fails because the proxy stopped or restarted while
#           it ran, it is retried every second for up to CADDY_PROXY_WAIT seconds (60) while the
#           proxy comes back, so that the new file is served and the deploy step succeeds. A crash,
#           an OOM kill or a daemon restart is undone by the restart policy; a `docker kill` or
#           `docker stop` Docker takes for a deliberate stop, which no policy undoes: a proxy
#           found stopped twice in a row is started again (the deploy wants it serving).
#   Environment (defaults are the production host):
#     CADDY_HOST_DIR      directory holding the Caddyfile on this host     (/opt/mai/caddy)
#     CADDY_CONFIG_DIR    the same directory as Caddy sees it              (/etc/caddy)
#     CADDY               runs caddy inside the running proxy              (docker exec mai-proxy caddy)
#     CADDY_OFFLINE       runs caddy when the proxy is not running, with CADDY_CONFIG_DIR
#                         visible; default: a throw-away container of CADDY_IMAGE
#     CADDY_IMAGE         image for the default CADDY_OFFLINE (required only in that case)
#     CADDY_PROXY_RUNNING shell command that succeeds when the proxy is running
#                         (default: docker inspect of mai-proxy)
#     CADDY_PROXY_STATE   shell command printing the proxy's status and start time
#                         (default: docker inspect of mai-proxy; with CADDY_PROXY_RUNNING given,
#                         "running" or "stopped" as that command says)
#     CADDY_PROXY_START   shell command starting a stopped proxy (default: docker start mai-proxy;
#                         none when CADDY_PROXY_RUNNING is given)
set -euo pipefail

host_dir="${CADDY_HOST_DIR:-/opt/mai/caddy}"
config_dir="${CADDY_CONFIG_DIR:-/etc/caddy}"
proxy_running="${CADDY_PROXY_RUNNING:-[ \"\$(docker inspect -f '{{.State.Running}}' mai-proxy 2>/dev/null)\" = true ]}"
if [ -n "${CADDY_PROXY_RUNNING:-}" ]; then
  proxy_state_command="${CADDY_PROXY_STATE:-if $proxy_running; then echo running; else echo stopped; fi}"
  proxy_start="${CADDY_PROXY_START:-}"
else
  proxy_state_command="${CADDY_PROXY_STATE:-docker inspect -f '{{.State.Status}} {{.State.StartedAt}}' mai-proxy 2>/dev/null}"
  proxy_start="${CADDY_PROXY_START-docker start mai-proxy}"
fi
proxy_wait="${CADDY_PROXY_WAIT:-60}"

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

proxy_state() { bash -c "$proxy_state_command" 2>/dev/null || true; }
proxy_was=$(proxy_state)
proxy_went_away=no

# in_proxy <caddy arguments>: runs caddy (in the proxy), its output in $caddy_output. A failure
# while the same proxy keeps running is Caddy's own answer, final (after 3 s). A failure because the
# proxy stopped or restarted meanwhile is retried every second while it comes back (Caddy then
# runs the live file; the retry loads it again), up to $proxy_wait seconds.
caddy_output=
in_proxy() {
  local deadline=$((SECONDS + proxy_wait)) state stopped=0
  until caddy_output="$("${caddy[@]}" "$@" 2>&1)"; do
    state=$(proxy_state)
    if [ "$proxy_went_away" = no ]; then
      # The exec can fail before Docker has recorded the proxy's end: look again for a moment.
      for _ in 1 2 3 4 5 6; do
        [ "$state" = "$proxy_was" ] || break
        sleep 0.5
        state=$(proxy_state)
      done
      [ "$state" != "$proxy_was" ] || return 1
    fi
    [ "$SECONDS" -lt "$deadline" ] || return 1
    [ "$proxy_went_away" = yes ] ||
      echo "caddy-apply: the proxy stopped or restarted during 'caddy $1'; retrying while it comes back (up to ${proxy_wait}s)" >&2
    proxy_went_away=yes
    case "$state" in
      exited* | created*) stopped=$((stopped + 1)) ;;
      *) stopped=0 ;;
    esac
    if [ "$stopped" -ge 2 ] && [ -n "$proxy_start" ]; then
      echo "caddy-apply: the proxy is stopped (no restart policy restarts a docker kill or stop); starting it" >&2
      bash -c "$proxy_start" >/dev/null 2>&1 || echo "caddy-apply: could not start the proxy" >&2
      stopped=0
    fi
    sleep 1
  done
}

# Validation provisions every module (TLS, proxy, matchers), not just the syntax.
if ! in_proxy validate --config "$config_dir/Caddyfile.next" --adapter caddyfile; then
  echo "$caddy_output" | grep -v '"level":"info"' >&2 || true
  [ "$proxy_went_away" = no ] || fail "the proxy did not come back within ${proxy_wait}s to validate the new Caddyfile; $live was left untouched"
  fail "the new Caddyfile is invalid; $live was left untouched"
fi

# The admin address in a Caddyfile's global options; Caddy's default when there is none.
admin_address_of() {
  local found
  found=$(sed -n 's/^[[:space:]]*admin[[:space:]]\{1,\}\([^[:space:]{]\{1,\}\).*/\1/p' "$1" 2>/dev/null | head -n 1)
  echo "${found:-localhost:2019}"
}

if [ -f "$live" ]; then
  running_admin=$(admin_address_of "$live")
  cp -p "$live" "$previous"
else
  running_admin=$(admin_address_of "$next")
fi
mv -f "$next" "$live"

if [ "$running" = false ]; then
  rm -f "$previous"
  echo "caddy-apply: installed $live (proxy not running; it starts with this file)"
  exit 0
fi

if ! in_proxy reload --config "$config_dir/Caddyfile" --adapter caddyfile --address "$running_admin"; then
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
