#!/usr/bin/env bash
# mai-backup <slug>: take one consistent, verified, compressed backup of a client's SQLite
# database, prune that client's backups older than the retention, and optionally copy the
# client's backups off the host. Installed as /usr/local/sbin/mai-backup and run nightly by
# mai-backup@<slug>.timer; safe to run by hand at any time, also while the workspace is in use.
#
# Steps: lock (one run per client) -> snapshot with `VACUUM INTO` (one read transaction, so the
# copy is a consistent point in time while the app keeps writing) -> `PRAGMA integrity_check`
# on the copy -> zstd -> `zstd -t` -> rename into place (a crash never leaves a file with the
# final name) -> prune -> off-host rsync.
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
#                                     OFFSITE_SSH_KEY, OFFSITE_MIRROR (see README, "Backups")
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

CONFIG_DIR=${MAI_CONFIG_DIR:-/etc/mai}
BACKUP_ROOT=${MAI_BACKUP_ROOT:-/srv/mai/backups}
LOCK_DIR=${MAI_LOCK_DIR:-/run/lock}
DOCKER=${MAI_DOCKER:-docker}
STATE_DIR=${MAI_STATE_DIR:-/var/lib/mai}

# Every line names the client: the journal of 20 clients' runs stays readable with `-t mai-backup`.
log() { printf '%s: %s\n' "${SLUG:-$PROG}" "$*"; }
LAST_ERROR=
fail() { # fail <exit code> <message>
  LAST_ERROR=$2
  printf '%s: ERROR: %s\n' "${SLUG:-$PROG}" "$2" >&2
  exit "$1"
}

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

# sqlite3 without ~/.sqliterc and never interactive: on a terminal it would print banners
# into the output that the checks compare with "ok".
sq() { sqlite3 -batch -init /dev/null "$@" </dev/null; }

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
[[ $1 =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] ||
  fail "$EX_USAGE" "'$1' is not a client slug (lowercase letters, digits and inner hyphens)"
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

for tool in sqlite3 zstd flock; do
  command -v "$tool" >/dev/null || fail "$EX_CONFIG" "'$tool' is not installed"
done

# --- one run per client: backups and restores of a client share this lock ----------------------
mkdir -p "$LOCK_DIR" || fail "$EX_CONFIG" "cannot create lock directory $LOCK_DIR"
exec 9>"$LOCK_DIR/mai-backup-$SLUG.lock" || fail "$EX_CONFIG" "cannot open lock file in $LOCK_DIR"
flock -n 9 || fail "$EX_BUSY" "another backup or restore of '$SLUG' is running; nothing done"

# --- locate the database -----------------------------------------------------------------------
VOLUME="mai-$SLUG-data"
DATA_DIR=$("$DOCKER" volume inspect -f '{{.Mountpoint}}' "$VOLUME" 2>/dev/null) ||
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
sql_path=${SNAPSHOT//\'/\'\'}
# .timeout: wait for a writer's lock instead of failing at once (rollback-journal databases).
if ! err=$(sq -bail -cmd ".timeout 60000" "$DB" "VACUUM INTO '$sql_path';" 2>&1); then
  fail "$EX_FAILED" "snapshot of $DB failed: $err"
fi
check=$(sq "$SNAPSHOT" "PRAGMA integrity_check;" 2>&1)
[[ $check == ok ]] || fail "$EX_FAILED" "the snapshot failed PRAGMA integrity_check; nothing kept: ${check:0:500}"
# A restored file must not expect a -wal next to it: store it in rollback-journal mode.
sq "$SNAPSHOT" "PRAGMA journal_mode=DELETE;" >/dev/null 2>&1 ||
  fail "$EX_FAILED" "cannot normalise the journal mode of the snapshot"

PART="$WORK/$NAME"
# Default level, two threads: the clients share these CPUs at night too.
zstd -q -T2 "$SNAPSHOT" -o "$PART" 2>&1 || fail "$EX_FAILED" "zstd compression failed"
zstd -q -t "$PART" 2>&1 || fail "$EX_FAILED" "the compressed file failed its zstd test"
chmod 0640 "$PART"
sync "$PART" 2>/dev/null || true
if ! mv -n "$PART" "$DEST_DIR/$NAME" || [[ -e $PART ]]; then
  fail "$EX_FAILED" "cannot move the backup into $DEST_DIR"
fi
sync "$DEST_DIR" 2>/dev/null || true

size=$(stat -c %s "$DEST_DIR/$NAME")
RECORD_FILE=$NAME RECORD_SIZE=$size
log "wrote $DEST_DIR/$NAME ($size bytes, integrity ok) in $((SECONDS - started))s"

# --- retention: this client's own backups only, by the time in their name -----------------------
cutoff=$(date -u -d "@$(($(date -u +%s) - RETENTION_DAYS * 86400))" +%Y%m%dT%H%M%SZ)
pruned=0
for file in "$DEST_DIR/$SLUG"-*; do
  base=${file##*/}
  [[ $base =~ ^$SLUG-([0-9]{8}T[0-9]{6}Z)\.db\.(zst|gz)$ ]] || continue
  [[ $base == "$NAME" ]] && continue
  if [[ ${BASH_REMATCH[1]} < $cutoff ]]; then
    rm -f -- "$file" && pruned=$((pruned + 1)) && log "pruned $base (older than $RETENTION_DAYS days)"
  fi
done
kept=$(find "$DEST_DIR" -maxdepth 1 -type f -name "$SLUG-*.db.*" | wc -l)
log "retention $RETENTION_DAYS days: pruned $pruned, kept $kept"

# --- optional off-host copy --------------------------------------------------------------------
if [[ -n $OFFSITE_TARGET ]]; then
  command -v rsync >/dev/null || fail "$EX_OFFSITE" "OFFSITE_TARGET is set but rsync is not installed; the local backup is kept"
  ssh_cmd="ssh -p $OFFSITE_SSH_PORT -o BatchMode=yes -o ConnectTimeout=30"
  [[ -n $OFFSITE_SSH_KEY ]] && ssh_cmd+=" -i $OFFSITE_SSH_KEY"
  rsync_args=(-rt --partial-dir=.rsync-partial -e "$ssh_cmd"
    --include="$SLUG-*.db.zst" --include="$SLUG-*.db.gz" --exclude='*')
  [[ $OFFSITE_MIRROR == yes ]] && rsync_args+=(--delete)
  if out=$(rsync "${rsync_args[@]}" "$DEST_DIR/" "${OFFSITE_TARGET%/}/$SLUG/" 2>&1); then
    log "copied backups of '$SLUG' to ${OFFSITE_TARGET%/}/$SLUG/"
  else
    fail "$EX_OFFSITE" "off-host copy to ${OFFSITE_TARGET%/}/$SLUG/ failed; the local backup is kept: ${out:0:500}"
  fi
fi
exit 0
