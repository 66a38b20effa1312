#!/usr/bin/env bash
# mai-alert: tell the operator when something on this host breaks, and when it is fixed.
# Installed as /usr/local/sbin/mai-alert; mai-alert.timer runs it every 5 minutes.
#
# Takes the `conditions` of mai-status (unhealthy, restarting, OOM-killed or stopped client
# containers; a failed or stale backup; a full disk; an expiring certificate; the proxy or Docker
# down), compares them with the state kept from the last run, and POSTs one JSON message per
# change to the webhook: "firing" once when a condition starts, "resolved" once when it ends.
# A message that cannot be delivered is logged and sent again on the next run; a condition that
# ends before its "firing" was delivered sends nothing. Never blocks: each delivery has a 10 s
# limit, the whole run holds a lock and skips when the previous run is still going.
#
# Message (one format for ntfy, Slack-compatible and generic webhooks):
#   {"text": "<title>\n<message>",             Slack-compatible incoming webhooks
#    "title": ..., "message": ..., "priority", "tags"   ntfy: a topic URL with its message
#                                               templates, ?tpl=1&t={{.title}}&m={{.message}} (docs/runbook.md)
#    "source": "mai-hosting", "host", "condition", "subject", "key", "state": "firing"|"resolved",
#    "since", "at"}
#
# Configuration:
#   $MAI_CONFIG_DIR/alerts.env (0600, written by the stack): ALERT_WEBHOOK_URL
#   thresholds: see mai-status (status.env, status.local.env)
# Environment: MAI_CONFIG_DIR (/etc/mai), MAI_STATE_DIR (/var/lib/mai), MAI_STATUS (mai-status
# next to this script), MAI_LOCK_DIR (/run/lock), MAI_NOW (for tests).
# The webhook URL is a secret: it is passed to curl on stdin, never on a command line or in a log.
set -uo pipefail
umask 077

CONFIG_DIR=${MAI_CONFIG_DIR:-/etc/mai}
STATE_DIR=${MAI_STATE_DIR:-/var/lib/mai}
LOCK_DIR=${MAI_LOCK_DIR:-/run/lock}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ -n ${MAI_STATUS:-} ]]; then STATUS=$MAI_STATUS
elif [[ -x $here/mai-status ]]; then STATUS=$here/mai-status
else STATUS=$here/mai-status.sh; fi
STATE_FILE="$STATE_DIR/alerts/state.json"

log() { printf 'mai-alert: %s\n' "$*"; }
fail() { printf 'mai-alert: ERROR: %s\n' "$*" >&2; exit 1; }

ALERT_WEBHOOK_URL=
if [[ -f $CONFIG_DIR/alerts.env ]]; then
  # shellcheck disable=SC1091 # root-owned, 0600, written by the stack
  source "$CONFIG_DIR/alerts.env" || fail "cannot read $CONFIG_DIR/alerts.env"
fi
[[ -n $ALERT_WEBHOOK_URL ]] || { log "no webhook configured (ALERT_WEBHOOK_URL in $CONFIG_DIR/alerts.env); nothing to do"; exit 0; }
[[ $ALERT_WEBHOOK_URL =~ ^https?:// ]] || fail "ALERT_WEBHOOK_URL must be an http(s) URL"
for tool in jq curl flock; do command -v "$tool" >/dev/null || fail "'$tool' is not installed"; done

mkdir -p "$LOCK_DIR" "$STATE_DIR/alerts" || fail "cannot create $LOCK_DIR or $STATE_DIR/alerts"
exec 9>"$LOCK_DIR/mai-alert.lock" || fail "cannot open the lock file"
flock -n 9 || { log "the previous run is still going; skipped"; exit 0; }

WORK=$(mktemp -d) || fail "cannot create a temp dir"
trap 'rm -rf "$WORK"' EXIT

NOW=${MAI_NOW:-$(date -u +%s)}
state='{}'
[[ -f $STATE_FILE ]] && state=$(jq -c 'if type == "object" then . else {} end' "$STATE_FILE" 2>/dev/null || echo '{}')

# A status that cannot be read is itself worth an alert (the host is in a bad way). What was
# firing stays firing: nothing is known to be resolved. (Volume sizes are not alerted on: the
# disk walk is skipped.)
if ! MAI_VOLUME_SIZES=no "$STATUS" >"$WORK/status.json" 2>"$WORK/status.err" || ! jq -e '.conditions | type == "array"' "$WORK/status.json" >/dev/null 2>&1; then
  err=$(head -c 300 "$WORK/status.err" | tr -d '\000-\037"\\')
  jq -n --arg err "$err" --argjson state "$state" '{host: {hostname: null}, conditions: (
    [$state | to_entries[] | select(.value.state == "firing" and .key != "status-failed")
      | {key, condition: .value.condition, subject: .value.subject, message: .value.message}]
    + [{key: "status-failed", condition: "status-failed", subject: "mai-status", message: "mai-status failed: \($err)"}])}' >"$WORK/status.json"
fi

# New state: every current condition is firing (kept `since` and `sent`); a known condition that
# is gone becomes resolved if its firing was sent, and is forgotten otherwise.
jq -c -n --argjson state "$state" --slurpfile status "$WORK/status.json" --argjson now "$NOW" '
  ($status[0].conditions | map({key: .key, value: .}) | from_entries) as $current
  | ($state | with_entries(select(.key as $k | $current[$k] == null and .value.firingSent == true)
      | .value += {state: "resolved", resolvedAt: (.value.resolvedAt // ($now | todate))}))
  + ($current | with_entries(.key as $k | .value = (.value + {
      state: "firing",
      since: ($state[$k].since // ($now | todate)),
      firingSent: ($state[$k].firingSent // false)})))
' >"$WORK/next.json" || fail "cannot evaluate the conditions"

hostname=$(jq -r '.host.hostname // empty' "$WORK/status.json")
[[ -n $hostname ]] || hostname=$(hostname)

# One message per pending change: firing not yet sent, or resolved (sent, then forgotten).
jq -c --arg host "$hostname" --argjson now "$NOW" '
  to_entries[] | select((.value.state == "firing" and (.value.firingSent | not)) or .value.state == "resolved")
  | .value as $c
  | (if $c.state == "firing" then "[\($host)] \($c.condition): \($c.subject)" else "[\($host)] resolved: \($c.condition): \($c.subject)" end) as $title
  | ($c.message + (if $c.state == "resolved" then " (resolved; since \($c.since))" else "" end)) as $message
  | {key: .key, body: ({
      text: "\($title)\n\($message)",
      title: $title,
      message: $message,
      priority: (if $c.state == "firing" then 4 else 3 end),
      tags: (if $c.state == "firing" then ["warning"] else ["white_check_mark"] end),
      source: "mai-hosting",
      host: $host,
      key: .key,
      condition: $c.condition,
      subject: $c.subject,
      state: $c.state,
      since: $c.since,
      at: ($now | todate)
    })}
' "$WORK/next.json" >"$WORK/pending.jsonl" || fail "cannot build the messages"

delivered=()
failed=0
while IFS= read -r line; do
  key=$(jq -r .key <<<"$line")
  jq -c .body <<<"$line" >"$WORK/body.json"
  # URL on stdin (curl --config -), never in argv or the log; bounded time; no redirects;
  # --globoff: braces of ntfy's message templates are part of the URL, not a curl pattern.
  escaped=${ALERT_WEBHOOK_URL//\\/\\\\}
  escaped=${escaped//\"/\\\"}
  code=$(printf 'url = "%s"\n' "$escaped" | curl --config - --globoff -sS -o /dev/null -w '%{http_code}' \
    --connect-timeout 5 --max-time 10 -X POST -H 'Content-Type: application/json' \
    --data-binary "@$WORK/body.json" 2>/dev/null) || code=${code:-000}
  if [[ $code =~ ^2[0-9][0-9]$ ]]; then
    delivered+=("$key")
    log "sent $(jq -r .state "$WORK/body.json") $key"
  else
    failed=$((failed + 1))
    log "could not deliver $(jq -r .state "$WORK/body.json") $key (HTTP ${code:-000}); will retry next run"
    # No connection at all: the others would wait for the same timeout; all go next run.
    if [[ $code == 000 ]]; then
      pending=$(wc -l <"$WORK/pending.jsonl")
      log "receiver unreachable; $((pending - ${#delivered[@]} - failed)) more message(s) left for the next run"
      break
    fi
  fi
done <"$WORK/pending.jsonl"

# Delivered firings are marked sent; delivered resolutions are forgotten.
if ((${#delivered[@]} > 0)); then printf '%s\n' "${delivered[@]}" | jq -R . | jq -s . >"$WORK/delivered.json"
else echo '[]' >"$WORK/delivered.json"; fi
jq -c --slurpfile delivered "$WORK/delivered.json" '
  ($delivered[0] | map({key: ., value: true}) | from_entries) as $done
  | with_entries(
      if $done[.key] then (if .value.state == "resolved" then empty else .value.firingSent = true end) else . end)
'  "$WORK/next.json" >"$STATE_FILE.tmp" || fail "cannot update the state"
mv -f "$STATE_FILE.tmp" "$STATE_FILE" || fail "cannot write $STATE_FILE"

firing=$(jq '[.[] | select(.state == "firing")] | length' "$STATE_FILE")
log "$firing condition(s) firing; sent ${#delivered[@]}, failed $failed"
exit 0
