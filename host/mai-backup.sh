#!/usr/bin/env bash
# mai-backup <slug>: take one consistent, verified, compressed backup of a client's SQLite
# database, prune that client's backups older than the retention, and optionally copy the
# client's backups off the host. Installed as /usr/local/sbin/mai-backup and run nightly by
# mai-backup@<slug>.timer; safe to run by hand at any time, also while the workspace is in use.
#
# Steps: lock (one run per client) -> snapshot with `VACUUM INTO` (one read transaction, so the
# copy is a consistent point in time while the app keeps writing) -> `PRAGMA integrity_check`
# on the copy -> zstd -> `zstd -t` -> rename into place (a crash never leaves a file with the
# final name) -> usage snapshot for the invoice (usage-YYYY-MM-DD.json: active users, volume and
# database bytes; kept, they are tiny) -> prune -> off-host rsync.
#
# Exit codes (also written to the log):
#   0 backup written (and copied off the host when configured)
#   2 usage error (missing or malformed slug)
#   3 backup written and kept, but the off-host copy failed
#   4 the client's data volume or database was not found
#   5 the snapshot, its verification or its compression failed; nothing was kept
#   6 configuration error in the env files
#   7 another backup or restore of this client is running
#
# Configuration (shell-style KEY=value files, read in this order, later wins):
#   $MAI_CONFIG_DIR/backup.env        written by the stack: RETENTION_DAYS
#   $MAI_CONFIG_DIR/backup.local.env  the operator's own: OFFSITE_TARGET, OFFSITE_SSH_PORT,
#                                     OFFSITE_SSH_KEY, OFFSITE_MIRROR (see docs/runbook.md, "Backups and restore")
# Host paths, each overridable from the environment (the tests run this very script on temp dirs):
#   MAI_CONFIG_DIR (/etc/mai), MAI_BACKUP_ROOT (/srv/mai/backups), MAI_LOCK_DIR (/run/lock),
#   MAI_DOCKER (docker), MAI_STATE_DIR (/var/lib/mai)
#
# Every run except a busy one (exit 7) records its outcome in $MAI_STATE_DIR/backup/<slug>.json
# ({"time","result":"ok"|"failed"|"offsite-failed","exitCode","file","sizeBytes","message"}),
# which mai-status reports and mai-alert alerts on.
set -uo pipefail
umask 077

readonly PROG=mai-backup
readonly EX_USAGE=2 EX_OFFSITE=3 EX_NOINPUT=4 EX_FAILED=5 EX_CONFIG=6 EX_BUSY=7
# shellcheck source=mai-lib.sh
source "${MAI_LIB:-$(dirname -- "${BASH_SOURCE[0]}")/mai-lib.sh}" 2>/dev/null ||
  { echo "$PROG: ERROR: mai-lib.sh not found" >&2; exit 6; }

CONFIG_DIR=${MAI_CONFIG_DIR:-/etc/mai}
BACKUP_ROOT=${MAI_BACKUP_ROOT:-/srv/mai/backups}
STATE_DIR=${MAI_STATE_DIR:-/var/lib/mai}

# The outcome of this run for mai-status; written on exit, never fails the backup itself.
RECORD_FILE= RECORD_SIZE=
record_run() {
  local code=$1 result=failed dir="$STATE_DIR/backup"
  [[ $code -eq $EX_BUSY ]] && return 0
  [[ $code -eq 0 ]] && result=ok
  [[ $code -eq $EX_OFFSITE ]] && result=offsite-failed
  mkdir -p "$dir" 2>/dev/null || return 0
  local message=${LAST_ERROR:0:300} file=null
  message=${message//\\/\\\\}
  message=${message//\"/\\\"}
  message=${message//[$'\001'-$'\037']/ }
  [[ -n $RECORD_FILE ]] && file="\"$RECORD_FILE\""
  printf '{"time":"%s","result":"%s","exitCode":%d,"file":%s,"sizeBytes":%s,"message":"%s"}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$result" "$code" "$file" "${RECORD_SIZE:-null}" "$message" \
    >"$dir/.$SLUG.json.tmp" 2>/dev/null && mv -f "$dir/.$SLUG.json.tmp" "$dir/$SLUG.json" 2>/dev/null
  return 0
}

usage() {
  cat <<EOF
Usage: $PROG <slug>
Back up the database of client <slug> (volume mai-<slug>-data) into $BACKUP_ROOT/<slug>/.
EOF
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac
[[ $# -eq 1 ]] || { usage >&2; exit "$EX_USAGE"; }
require_slug "$1" "$EX_USAGE"
SLUG=$1
trap 'record_run $?' EXIT

# --- configuration ---------------------------------------------------------------------------
RETENTION_DAYS=30
OFFSITE_TARGET=
OFFSITE_SSH_PORT=23
OFFSITE_SSH_KEY=
OFFSITE_MIRROR=no
for env_file in "$CONFIG_DIR/backup.env" "$CONFIG_DIR/backup.local.env"; do
  if [[ -f $env_file ]]; then
    # shellcheck disable=SC1090 # root-owned config in /etc, same trust as the script itself
    source "$env_file" || fail "$EX_CONFIG" "cannot read $env_file"
  fi
done
[[ $RETENTION_DAYS =~ ^[1-9][0-9]{0,4}$ ]] ||
  fail "$EX_CONFIG" "RETENTION_DAYS must be a whole number of days >= 1 (got '$RETENTION_DAYS')"
[[ $OFFSITE_SSH_PORT =~ ^[0-9]+$ ]] ||
  fail "$EX_CONFIG" "OFFSITE_SSH_PORT must be a port number (got '$OFFSITE_SSH_PORT')"
[[ $OFFSITE_MIRROR == yes || $OFFSITE_MIRROR == no ]] ||
  fail "$EX_CONFIG" "OFFSITE_MIRROR must be 'yes' or 'no' (got '$OFFSITE_MIRROR')"

require_tools "$EX_CONFIG" sqlite3 zstd flock

# --- one run per client (shared with restores, exports and imports) ----------------------------
lock_client "$SLUG" 0 "$EX_BUSY" "another backup, restore, export or import of '$SLUG' is running; nothing done"

# --- locate the database -----------------------------------------------------------------------
VOLUME="mai-$SLUG-data"
DATA_DIR=$(volume_dir "$SLUG") ||
  fail "$EX_NOINPUT" "Docker volume $VOLUME not found; is '$SLUG' a client on this host?"
DB="$DATA_DIR/webui.db"
[[ -f $DB ]] || fail "$EX_NOINPUT" "no database at $DB (volume $VOLUME)"

DEST_DIR="$BACKUP_ROOT/$SLUG"
mkdir -p "$DEST_DIR" || fail "$EX_FAILED" "cannot create $DEST_DIR"
chmod 0750 "$DEST_DIR" 2>/dev/null || true

# Leftovers of a run that crashed (we hold the lock, so nobody else is using them).
rm -rf "$DEST_DIR"/.mai-backup-tmp.* 2>/dev/null
WORK=$(mktemp -d "$DEST_DIR/.mai-backup-tmp.XXXXXX") || fail "$EX_FAILED" "cannot create a temp dir in $DEST_DIR"
trap 'code=$?; rm -rf "$WORK"; record_run $code' EXIT

# Names sort by time; two runs in the same second would collide, so wait for the next second.
while :; do
  STAMP=$(date -u +%Y%m%dT%H%M%SZ)
  NAME="$SLUG-$STAMP.db.zst"
  [[ -e $DEST_DIR/$NAME ]] || break
  sleep 1
done

started=$SECONDS
log "backing up $DB"

# --- snapshot + verify + compress ----------------------------------------------------------------
SNAPSHOT="$WORK/webui.db"
if ! err=$(snapshot_db "$DB" "$SNAPSHOT"); then
  fail "$EX_FAILED" "$err; nothing kept"
fi

PART="$WORK/$NAME"
# Default level, two threads: the clients share these CPUs at night too.
# zstd's own words in the message (and the status record): "No space left on device" says what to do.
err=$(zstd -q -T2 "$SNAPSHOT" -o "$PART" 2>&1) || fail "$EX_FAILED" "zstd compression failed: ${err:0:300}; nothing kept"
err=$(zstd -q -t "$PART" 2>&1) || fail "$EX_FAILED" "the compressed file failed its zstd test: ${err:0:300}; nothing kept"
chmod 0640 "$PART"
sync "$PART" 2>/dev/null || true
if ! mv -n "$PART" "$DEST_DIR/$NAME" || [[ -e $PART ]]; then
  fail "$EX_FAILED" "cannot move the backup into $DEST_DIR"
fi
sync "$DEST_DIR" 2>/dev/null || true

size=$(stat -c %s "$DEST_DIR/$NAME")
RECORD_FILE=$NAME RECORD_SIZE=$size
log "wrote $DEST_DIR/$NAME ($size bytes, integrity ok) in $((SECONDS - started))s"

# --- usage snapshot for the invoice (npm run invoice); never fails the backup ---------------------
# Active users: Open WebUI's `user` table holds every account; role 'pending' is a sign-up not yet
# approved by the client's admin, removed users are deleted. Sizes as the host sees them.
usage_snapshot() {
  local users=null tables volume_bytes db_bytes=0 size
  command -v jq >/dev/null || return 1
  tables=$(sq "$SNAPSHOT" "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='user';" 2>/dev/null) || return 1
  if [[ $tables == 1 ]]; then
    users=$(sq "$SNAPSHOT" "SELECT count(*) FROM \"user\" WHERE role IS NOT 'pending';" 2>/dev/null) || return 1
  fi
  # The workspace keeps writing: files (a -wal) may vanish while they are measured, which du and
  # stat report as errors; what they could measure is what counts.
  volume_bytes=$(du -sb -- "$DATA_DIR" 2>/dev/null | cut -f1)
  [[ $volume_bytes =~ ^[0-9]+$ ]] || return 1
  for size in $(stat -c %s -- "$DB" "$DB-wal" 2>/dev/null); do
    db_bytes=$((db_bytes + size))
  done
  jq -n --arg slug "$SLUG" --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --argjson users "$users" \
    --argjson volume "$volume_bytes" --argjson db "$db_bytes" \
    '{slug: $slug, takenAt: $at, activeUsers: $users, volumeBytes: $volume, databaseBytes: $db}' >"$WORK/usage.json" &&
    chmod 0640 "$WORK/usage.json" && mv -f "$WORK/usage.json" "$DEST_DIR/usage-$(date -u +%Y-%m-%d).json"
}
if usage_snapshot; then
  log "usage snapshot written (usage-$(date -u +%Y-%m-%d).json)"
else
  warn "could not write the usage snapshot for invoicing; the backup is fine"
fi

# --- retention: this client's own backups only, by the time in their name -----------------------
cutoff=$(date -u -d "@$(($(date -u +%s) - RETENTION_DAYS * 86400))" +%Y%m%dT%H%M%SZ)
pruned=0
for file in "$DEST_DIR/$SLUG"-$STAMP_GLOB.db.*; do
  base=${file##*/}
  [[ $base =~ ^$SLUG-([0-9]{8}T[0-9]{6}Z)\.db\.(zst|gz)$ ]] || continue
  [[ $base == "$NAME" ]] && continue
  if [[ ${BASH_REMATCH[1]} < $cutoff ]]; then
    rm -f -- "$file" && pruned=$((pruned + 1)) && log "pruned $base (older than $RETENTION_DAYS days)"
  fi
done
kept=$(find "$DEST_DIR" -maxdepth 1 -type f \( -name "$SLUG-$STAMP_GLOB.db.zst" -o -name "$SLUG-$STAMP_GLOB.db.gz" \) | wc -l)
log "retention $RETENTION_DAYS days: pruned $pruned, kept $kept"

# --- optional off-host copy --------------------------------------------------------------------
if [[ -n $OFFSITE_TARGET ]]; then
  command -v rsync >/dev/null || fail "$EX_OFFSITE" "OFFSITE_TARGET is set but rsync is not installed; the local backup is kept"
  ssh_cmd="ssh -p $OFFSITE_SSH_PORT -o BatchMode=yes -o ConnectTimeout=30"
  [[ -n $OFFSITE_SSH_KEY ]] && ssh_cmd+=" -i $OFFSITE_SSH_KEY"
  rsync_args=(-rt --partial-dir=.rsync-partial -e "$ssh_cmd"
    --include="$SLUG-$STAMP_GLOB.db.zst" --include="$SLUG-$STAMP_GLOB.db.gz"
    --include='usage-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9].json' --exclude='*')
  [[ $OFFSITE_MIRROR == yes ]] && rsync_args+=(--delete)
  if out=$(rsync "${rsync_args[@]}" "$DEST_DIR/" "${OFFSITE_TARGET%/}/$SLUG/" 2>&1); then
    log "copied backups of '$SLUG' to ${OFFSITE_TARGET%/}/$SLUG/"
  else
    fail "$EX_OFFSITE" "off-host copy to ${OFFSITE_TARGET%/}/$SLUG/ failed; the local backup is kept: ${out:0:500}"
  fi
fi
exit 0
