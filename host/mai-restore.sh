#!/usr/bin/env bash
# mai-restore [--yes] <slug> <backup-file|latest>: put one of a client's backups back as its
# live database. Installed as /usr/local/sbin/mai-restore.
#
# Safe by default:
#   - the backup is decompressed next to the database and must pass PRAGMA integrity_check
#     (and hold at least one table) BEFORE anything is stopped: a corrupt backup changes nothing;
#   - only the client's own container (mai-<slug>) is stopped, and only if it is running;
#   - the current database and its -wal/-shm/-journal files are kept aside as
#     webui.db.pre-restore-<time>[-wal|-shm|-journal] (a -wal left next to the restored file
#     would be replayed into it), then the verified copy is renamed into place and checked again;
#   - if anything fails after the stop, the previous files are put back; the container is
#     started again in every case when it was running before.
# Without a terminal (cron, ssh without -t, scripts) it does nothing unless --yes is given.
#
# Exit codes:
#   0 restored (and the container is running again if it was before)
#   2 usage error, or not confirmed
#   4 the backup file, or the client's data volume, was not found
#   5 the backup was refused (unreadable or failed verification); nothing was changed
#   6 configuration error (missing tool)
#   7 a backup or restore of this client is running
#   8 the restore failed after stopping; the previous database is back in place
#   9 needs the operator: rolling back or starting the container failed (see the log)
#
# Host paths, each overridable from the environment (the tests run this very script on temp dirs):
#   MAI_BACKUP_ROOT (/srv/mai/backups), MAI_LOCK_DIR (/run/lock), MAI_DOCKER (docker)
# shellcheck disable=SC2317 # the clean-up functions run from traps
set -uo pipefail
umask 077

readonly PROG=mai-restore
readonly EX_USAGE=2 EX_NOINPUT=4 EX_REFUSED=5 EX_CONFIG=6 EX_BUSY=7 EX_ROLLED_BACK=8 EX_ATTENTION=9

# shellcheck source=mai-lib.sh
source "${MAI_LIB:-$(dirname -- "${BASH_SOURCE[0]}")/mai-lib.sh}" 2>/dev/null ||
  { echo "$PROG: ERROR: mai-lib.sh not found" >&2; exit 6; }

BACKUP_ROOT=${MAI_BACKUP_ROOT:-/srv/mai/backups}

usage() {
  cat <<EOF
Usage: $PROG [--yes] <slug> <backup-file|latest>
Restore client <slug>'s database from a backup in $BACKUP_ROOT/<slug>/ (a file name there, a
path, or 'latest'). Stops only the container mai-<slug> for the swap; the current database is
kept aside as webui.db.pre-restore-<time>. Without a terminal, --yes is required.
Run '$PROG <slug>' to list the client's backups.
EOF
}

ASSUME_YES=no
args=()
for arg in "$@"; do
  case "$arg" in
    -y | --yes) ASSUME_YES=yes ;;
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; fail "$EX_USAGE" "unknown option '$arg'" ;;
    *) args+=("$arg") ;;
  esac
done
[[ ${#args[@]} -ge 1 && ${#args[@]} -le 2 ]] || { usage >&2; exit "$EX_USAGE"; }
require_slug "${args[0]}" "$EX_USAGE"
SLUG=${args[0]}
BACKUP_DIR="$BACKUP_ROOT/$SLUG"

list_backups() { # newest last; only this client's well-named backups
  find "$BACKUP_DIR" -maxdepth 1 -type f -regextype posix-extended \
    -regex ".*/$SLUG-[0-9]{8}T[0-9]{6}Z\.db\.(zst|gz)" -printf '%f\n' 2>/dev/null | LC_ALL=C sort
}

if [[ ${#args[@]} -eq 1 ]]; then
  backups=$(list_backups)
  [[ -n $backups ]] || fail "$EX_NOINPUT" "no backups in $BACKUP_DIR"
  log "backups in $BACKUP_DIR (oldest first):"
  printf '%s\n' "$backups"
  exit 0
fi

# --- which backup ------------------------------------------------------------------------------
WANTED=${args[1]}
if [[ $WANTED == latest ]]; then
  newest=$(list_backups | tail -n 1)
  [[ -n $newest ]] || fail "$EX_NOINPUT" "no backups of '$SLUG' in $BACKUP_DIR"
  BACKUP="$BACKUP_DIR/$newest"
elif [[ $WANTED == */* ]]; then
  BACKUP=$WANTED
else
  BACKUP="$BACKUP_DIR/$WANTED"
fi
[[ -f $BACKUP ]] || fail "$EX_NOINPUT" "backup file $BACKUP not found"
base=${BACKUP##*/}
# Another client's data must never land in this workspace by a slip of the tab key.
if [[ $base =~ ^(.+)-[0-9]{8}T[0-9]{6}Z\.db\.(zst|gz)$ && ${BASH_REMATCH[1]} != "$SLUG" ]]; then
  fail "$EX_REFUSED" "$base is a backup of client '${BASH_REMATCH[1]}', not '$SLUG'; nothing changed"
fi
case "$base" in
  *.zst) DECOMPRESS=zstd ;;
  *.gz) DECOMPRESS=gzip ;;
  # A plain database, e.g. a webui.db.pre-restore-<time> to undo a restore: copied through
  # SQLite, so rows still in its -wal are included.
  *.db | *.sqlite | *.pre-restore-[0-9]*Z) DECOMPRESS=sqlite3 ;;
  *) fail "$EX_REFUSED" "$base: expected a .db.zst, .db.gz, .db or webui.db.pre-restore-<time> file; nothing changed" ;;
esac

require_tools "$EX_CONFIG" sqlite3 flock "$DECOMPRESS"

# --- same lock as mai-backup: no backup reads the database while it is swapped ------------------
lock_client "$SLUG" 0 "$EX_BUSY" "a backup, restore, export or import of '$SLUG' is running; nothing changed"

VOLUME="mai-$SLUG-data"
DATA_DIR=$(volume_dir "$SLUG") ||
  fail "$EX_NOINPUT" "Docker volume $VOLUME not found; is '$SLUG' a client on this host?"
[[ -d $DATA_DIR ]] || fail "$EX_NOINPUT" "data directory $DATA_DIR of volume $VOLUME does not exist"
DB="$DATA_DIR/webui.db"
CONTAINER="mai-$SLUG"

# --- stage and verify next to the database (same filesystem: the swap is a rename) --------------
STAGE=$(mktemp "$DATA_DIR/.webui.db.restore.XXXXXX") || fail "$EX_REFUSED" "cannot create a temp file in $DATA_DIR"
remove_stage() { rm -f -- "$STAGE" "$STAGE-wal" "$STAGE-shm" "$STAGE-journal"; }
trap remove_stage EXIT

# Writes the backup's database into the (empty) staging file.
unpack() {
  case "$DECOMPRESS" in
    zstd) { zstd -q -d -c -- "$BACKUP" >"$STAGE"; } 2>&1 ;;
    gzip) { gzip -d -c -- "$BACKUP" >"$STAGE"; } 2>&1 ;;
    sqlite3) sq -bail -cmd ".timeout 10000" "$BACKUP" "VACUUM INTO '${STAGE//\'/\'\'}';" 2>&1 ;;
  esac
}

log "verifying $BACKUP"
if ! err=$(unpack); then
  fail "$EX_REFUSED" "cannot decompress $BACKUP; nothing changed: ${err:0:300}"
fi
if ! result=$(verify_db "$STAGE"); then
  fail "$EX_REFUSED" "$BACKUP failed verification ($result); nothing changed"
fi
rm -f -- "$STAGE-wal" "$STAGE-shm" "$STAGE-journal"
if [[ -e $DB ]]; then
  chown --reference="$DB" "$STAGE" && chmod --reference="$DB" "$STAGE"
else
  chown --reference="$DATA_DIR" "$STAGE" && chmod 0644 "$STAGE"
fi || fail "$EX_REFUSED" "cannot set owner and mode of the staged database; nothing changed"
log "backup verified (integrity ok)"

# --- confirmation ------------------------------------------------------------------------------
if [[ $ASSUME_YES != yes ]]; then
  [[ -t 0 ]] || fail "$EX_USAGE" "not confirmed: pass --yes when not running on a terminal; nothing changed"
  printf 'Restore %s from %s?\nThe workspace %s is stopped for the swap; the current database is kept aside.\nType the slug to confirm: ' \
    "$SLUG" "$base" "$CONTAINER" >&2
  read -r answer || answer=
  [[ $answer == "$SLUG" ]] || fail "$EX_USAGE" "not confirmed; nothing changed"
fi

# --- stop, swap, verify, start -----------------------------------------------------------------
running=$("$DOCKER" inspect -f '{{.State.Running}}' "$CONTAINER" 2>/dev/null) || running=absent
STOPPED=no
MOVED=()        # suffixes of the files moved aside ("" is webui.db itself)
SWAPPED=no
FINISHED=no
# Never overwrite an earlier restore's kept-aside database (two restores in one second).
while :; do
  ASIDE="$DB.pre-restore-$(date -u +%Y%m%dT%H%M%SZ)"
  [[ -e $ASIDE || -e $ASIDE-wal || -e $ASIDE-shm || -e $ASIDE-journal ]] || break
  sleep 1
done

start_again() {
  [[ $STOPPED == yes ]] || return 0
  if "$DOCKER" start "$CONTAINER" >/dev/null 2>&1; then
    log "started $CONTAINER"
  else
    printf '%s: ERROR: could not start %s; run: docker start %s\n' "$SLUG" "$CONTAINER" "$CONTAINER" >&2
    return 1
  fi
}

# Puts the previous files back; prints nothing and succeeds when there is nothing to undo.
roll_back() {
  local suffix ok=yes
  if [[ $SWAPPED == yes ]]; then
    rm -f -- "$DB" "$DB-wal" "$DB-shm" "$DB-journal" || ok=no
  fi
  for suffix in "${MOVED[@]}"; do
    mv -f -- "$ASIDE$suffix" "$DB$suffix" || ok=no
  done
  if [[ $ok == yes ]]; then
    [[ ${#MOVED[@]} -gt 0 || $SWAPPED == yes ]] && log "rolled back: the previous database is in place again"
    return 0
  fi
  printf '%s: ERROR: rollback incomplete; the previous database is kept as %s*: move it back to %s by hand\n' \
    "$SLUG" "$ASIDE" "$DB" >&2
  return 1
}

# Any exit before the end (failure, signal) undoes the swap and restarts the container.
on_exit() {
  local code=$? status=0
  if [[ $FINISHED != yes ]]; then
    roll_back || status=$EX_ATTENTION
  fi
  start_again || status=$EX_ATTENTION
  remove_stage
  [[ $status -ne 0 ]] && exit "$status"
  exit "$code"
}
trap on_exit EXIT
trap 'fail "$EX_ROLLED_BACK" "interrupted"' INT TERM HUP

if [[ $running == true ]]; then
  log "stopping $CONTAINER"
  if ! err=$("$DOCKER" stop -t 60 "$CONTAINER" 2>&1); then
    STOPPED=yes # it may have stopped anyway: start it again to be sure
    fail "$EX_ROLLED_BACK" "could not stop $CONTAINER; nothing changed: ${err:0:300}"
  fi
  STOPPED=yes
else
  log "container $CONTAINER is not running ($running); restoring without stopping anything"
fi

for suffix in "" -wal -shm -journal; do
  if [[ -e $DB$suffix ]]; then
    mv -- "$DB$suffix" "$ASIDE$suffix" ||
      fail "$EX_ROLLED_BACK" "cannot move $DB$suffix aside; previous database left in place"
    MOVED+=("$suffix")
  fi
done
[[ ${#MOVED[@]} -gt 0 ]] && log "kept the current database as $ASIDE"

mv -- "$STAGE" "$DB" || fail "$EX_ROLLED_BACK" "cannot move the restored database into place"
SWAPPED=yes
if ! result=$(verify_db "$DB"); then
  fail "$EX_ROLLED_BACK" "the restored database failed verification in place ($result)"
fi
FINISHED=yes
log "restored $DB from $base (integrity ok)"
[[ ${#MOVED[@]} -gt 0 ]] && log "the previous database stays at $ASIDE until you delete it"
exit 0
