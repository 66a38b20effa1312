#!/usr/bin/env bash
# mai-import [--yes] [--from <source-slug>] <slug> <archive>|-: put a mai-export archive into
# client <slug>'s data volume mai-<slug>-data (created when missing, e.g. on the target of a
# move), then start the workspace and check it. Installed as /usr/local/sbin/mai-import.
#   ssh old-host mai-export acme - | ssh new-host mai-import acme -
#   mai-import --from acme acme-eu /srv/mai/exports/acme-20261124T010000Z.tar.zst
#
# Safe by default:
#   - the whole archive is verified BEFORE anything is touched (stdin is spooled to a temp file
#     first): refused when damaged or truncated, when it holds links or special files, when the
#     manifest is missing, edited (manifest.sha256), of another format or version, or lists
#     files that are missing, extra, or of another size or SHA-256; and when it is an export of
#     another client, unless --from names that client (importing into a new client is deliberate);
#   - the data is unpacked next to the live data (same filesystem), checked again against the
#     manifest and the database with PRAGMA integrity_check, and only then swapped in;
#   - only the client's own container (mai-<slug>) is stopped; everything that was in the volume
#     is kept aside in mai-pre-import-<time>/ inside the volume until you delete it;
#   - the container, when it exists, is started and must answer /health (Docker's health status
#     or curl inside it) within MAI_HEALTH_TIMEOUT seconds, or the previous data is put back.
# Replacing a volume that holds data needs --yes without a terminal; an empty or new volume does not.
#
# Exit codes:
#   0 imported (and the workspace is healthy, when it has a container)
#   2 usage error, or not confirmed
#   4 the archive was not found
#   5 the archive was refused; nothing was changed
#   6 configuration error (missing tool)
#   7 a backup, restore, export or import of this client kept running (waited MAI_LOCK_WAIT s)
#   8 the import failed after stopping or was not healthy; the previous data is back in place
#   9 needs the operator: rolling back or starting the container failed (see the log)
#
# Environment: MAI_EXPORT_ROOT (/srv/mai/exports: spool and work space), MAI_LOCK_WAIT (600),
# MAI_HEALTH_TIMEOUT (180), and the paths of mai-lib.sh.
# shellcheck disable=SC2317 # the clean-up functions run from traps
set -uo pipefail
umask 077

readonly PROG=mai-import
readonly EX_USAGE=2 EX_NOINPUT=4 EX_REFUSED=5 EX_CONFIG=6 EX_BUSY=7 EX_ROLLED_BACK=8 EX_ATTENTION=9
# shellcheck source=mai-lib.sh
source "${MAI_LIB:-$(dirname -- "${BASH_SOURCE[0]}")/mai-lib.sh}" 2>/dev/null ||
  { echo "$PROG: ERROR: mai-lib.sh not found" >&2; exit 6; }

EXPORT_ROOT=${MAI_EXPORT_ROOT:-/srv/mai/exports}
LOCK_WAIT=${MAI_LOCK_WAIT:-600}
HEALTH_TIMEOUT=${MAI_HEALTH_TIMEOUT:-180}

usage() {
  cat <<EOF
Usage: $PROG [--yes] [--from <source-slug>] <slug> <archive>|-
Import a mai-export archive (a file, or '-' for stdin) into client <slug>'s volume mai-<slug>-data.
The archive is verified before anything changes; the current data is kept aside in the volume as
mai-pre-import-<time>/. --from is required when the archive is another client's export.
EOF
}

ASSUME_YES=no
FROM=
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -y | --yes) ASSUME_YES=yes ;;
    --from) [[ $# -ge 2 ]] || fail "$EX_USAGE" "--from needs the slug of the exported client"; FROM=$2; shift ;;
    --from=*) FROM=${1#--from=} ;;
    -h | --help) usage; exit 0 ;;
    -) args+=("$1") ;;
    -*) usage >&2; fail "$EX_USAGE" "unknown option '$1'" ;;
    *) args+=("$1") ;;
  esac
  shift
done
[[ ${#args[@]} -eq 2 ]] || { usage >&2; exit "$EX_USAGE"; }
require_slug "${args[0]}" "$EX_USAGE"
[[ -z $FROM ]] || require_slug "$FROM" "$EX_USAGE"
SLUG=${args[0]}
SOURCE_ARG=${args[1]}
for number in "$LOCK_WAIT" "$HEALTH_TIMEOUT"; do
  [[ $number =~ ^[0-9]+$ ]] || fail "$EX_CONFIG" "MAI_LOCK_WAIT and MAI_HEALTH_TIMEOUT must be numbers of seconds (got '$number')"
done
if [[ $SOURCE_ARG == - ]]; then
  [[ -t 0 ]] && fail "$EX_USAGE" "stdin is a terminal; pipe the archive in (mai-export <slug> - | $PROG $SLUG -)"
else
  [[ -f $SOURCE_ARG ]] || fail "$EX_NOINPUT" "archive $SOURCE_ARG not found"
fi

require_tools "$EX_CONFIG" sqlite3 zstd tar jq sha256sum flock
lock_client "$SLUG" "$LOCK_WAIT" "$EX_BUSY" "a backup, restore, export or import of '$SLUG' is running; nothing changed"

mkdir -p "$EXPORT_ROOT" || fail "$EX_CONFIG" "cannot create $EXPORT_ROOT"
WORK=$(mktemp -d "$EXPORT_ROOT/.mai-import-tmp.XXXXXX") || fail "$EX_CONFIG" "cannot create a temp dir in $EXPORT_ROOT"
STAGE=
CREATED_VOLUME=no
remove_work() {
  rm -rf -- "$WORK"
  [[ -z $STAGE ]] || rm -rf -- "$STAGE"
  if [[ $CREATED_VOLUME == yes && $FINISHED != yes ]]; then
    "$DOCKER" volume rm "mai-$SLUG-data" >/dev/null 2>&1 || warn "could not remove the volume mai-$SLUG-data created for this import"
  fi
}
FINISHED=no
trap remove_work EXIT
trap 'fail "$EX_REFUSED" "interrupted; nothing changed"' INT TERM HUP

# --- the archive, verified before anything is touched -------------------------------------------
if [[ $SOURCE_ARG == - ]]; then
  ARCHIVE="$WORK/incoming.tar.zst"
  cat >"$ARCHIVE" || fail "$EX_REFUSED" "cannot spool stdin to $ARCHIVE; nothing changed"
  log "received $(stat -c %s "$ARCHIVE") bytes on stdin"
  LABEL=stdin
else
  ARCHIVE=$SOURCE_ARG
  LABEL=$SOURCE_ARG
fi
mkdir "$WORK/check"
log "verifying $LABEL"
if ! err=$(verify_archive "$ARCHIVE" "$WORK/check"); then
  fail "$EX_REFUSED" "refused $LABEL: $err; nothing changed"
fi
MANIFEST="$WORK/check/manifest.json"
EXPORTED=$(jq -r .slug "$MANIFEST")
if [[ -n $FROM && $FROM != "$EXPORTED" ]]; then
  fail "$EX_REFUSED" "$LABEL is an export of client '$EXPORTED', not of '$FROM' (--from); nothing changed"
fi
if [[ $EXPORTED != "$SLUG" && $FROM != "$EXPORTED" ]]; then
  fail "$EX_REFUSED" "$LABEL is an export of client '$EXPORTED', not '$SLUG'; to import it into '$SLUG', add --from $EXPORTED; nothing changed"
fi
log "archive verified: export of '$EXPORTED' from $(jq -r '.exportedAt' "$MANIFEST"), $(jq -r '.fileCount' "$MANIFEST") files, $(jq -r '.totalBytes' "$MANIFEST") bytes, every checksum matches"

# --- the target volume ---------------------------------------------------------------------------
VOLUME="mai-$SLUG-data"
CONTAINER="mai-$SLUG"
DATA_DIR=$(volume_dir "$SLUG") || DATA_DIR=
# Entries of the volume that are the client's data (not what earlier imports/restores left).
current_entries() {
  find "$DATA_DIR" -mindepth 1 -maxdepth 1 ! -name 'mai-pre-import-*' ! -name '.mai-import.*' -printf '%f\0'
}
if [[ -n $DATA_DIR && -n $(current_entries | head -c 1) ]]; then
  if [[ $ASSUME_YES != yes ]]; then
    [[ -t 0 && $SOURCE_ARG != - ]] ||
      fail "$EX_USAGE" "volume $VOLUME holds data: pass --yes to replace it (it is kept aside); nothing changed"
    printf 'Replace the data of %s with the export of %s?\nThe workspace %s is stopped for the swap; the current data is kept aside.\nType the slug to confirm: ' \
      "$SLUG" "$EXPORTED" "$CONTAINER" >&2
    read -r answer || answer=
    [[ $answer == "$SLUG" ]] || fail "$EX_USAGE" "not confirmed; nothing changed"
  fi
fi
if [[ -z $DATA_DIR ]]; then
  # Same name and label as the stack declares, so a later `pulumi up` adopts it as it is.
  "$DOCKER" volume create --label "mai.client=$SLUG" "$VOLUME" >/dev/null ||
    fail "$EX_REFUSED" "cannot create the volume $VOLUME; nothing changed"
  CREATED_VOLUME=yes
  DATA_DIR=$(volume_dir "$SLUG") || fail "$EX_REFUSED" "cannot find the new volume $VOLUME"
  log "created volume $VOLUME"
fi
[[ -d $DATA_DIR ]] || fail "$EX_REFUSED" "data directory $DATA_DIR of volume $VOLUME does not exist; nothing changed"
DB="$DATA_DIR/webui.db"

# --- unpack next to the live data and check again what landed on disk -------------------------------
STAGE=$(mktemp -d "$DATA_DIR/.mai-import.XXXXXX") || fail "$EX_REFUSED" "cannot create a temp dir in $DATA_DIR"
if ! err=$({ zstd -q -d -c -- "$ARCHIVE" | tar -x -f - -C "$STAGE" --numeric-owner data; } 2>&1); then
  fail "$EX_REFUSED" "cannot unpack $LABEL: ${err:0:300}; nothing changed"
fi
mkdir "$WORK/unpacked"
cp "$MANIFEST" "$WORK/unpacked/manifest.json"
specials=$(find "$STAGE" -mindepth 1 ! -type f ! -type d -print -quit)
[[ -z $specials ]] || fail "$EX_REFUSED" "unpacked a link or special file ($specials); nothing changed"
if ! err=$(tar -c -f - -C "$STAGE" data | tar -x -f - --to-command="$MEMBER_HASHER" 2>&1 >"$WORK/unpacked/members"); then
  fail "$EX_REFUSED" "cannot read back the unpacked files: ${err:0:300}; nothing changed"
fi
if ! err=$(compare_members "$WORK/unpacked/members" "$MANIFEST"); then
  fail "$EX_REFUSED" "the unpacked files differ from the manifest ($err; the archive changed while read?); nothing changed"
fi
if ! result=$(verify_db "$STAGE/data/webui.db"); then
  fail "$EX_REFUSED" "the exported database failed verification ($result); nothing changed"
fi
# Owners and modes travel with the archive; set-id bits do not.
find "$STAGE" -perm /6000 -exec chmod ug-s {} + 2>/dev/null
log "unpacked and checked again in $STAGE"

# --- stop, swap, start, check ----------------------------------------------------------------------
running=$("$DOCKER" inspect -f '{{.State.Running}}' "$CONTAINER" 2>/dev/null) || running=absent
STOPPED=no
ASIDE=
MOVED_ASIDE=() # names moved from the volume into $ASIDE
MOVED_IN=()    # names moved from the stage into the volume

start_container() {
  if "$DOCKER" start "$CONTAINER" >/dev/null 2>&1; then
    log "started $CONTAINER"
  else
    printf '%s: ERROR: could not start %s; run: docker start %s\n' "$SLUG" "$CONTAINER" "$CONTAINER" >&2
    return 1
  fi
}

# Waits for /health: Docker's health status, or curl inside the container; fails if it stops.
wait_healthy() {
  local deadline=$((SECONDS + HEALTH_TIMEOUT)) state
  while :; do
    state=$("$DOCKER" inspect -f '{{.State.Running}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$CONTAINER" 2>/dev/null) ||
      state="absent"
    [[ $state == "true healthy" ]] && return 0
    [[ $state == true* ]] || { printf 'the container is not running (%s)' "$state"; return 1; }
    "$DOCKER" exec "$CONTAINER" curl -fsS -m 5 -o /dev/null http://127.0.0.1:8080/health >/dev/null 2>&1 && return 0
    ((SECONDS < deadline)) || { printf 'no healthy answer from /health within %ss' "$HEALTH_TIMEOUT"; return 1; }
    sleep 2
  done
}

# Puts the previous data back; prints nothing and succeeds when there is nothing to undo.
roll_back() {
  local name ok=yes
  for name in "${MOVED_IN[@]}"; do
    rm -rf -- "${DATA_DIR:?}/$name" || ok=no
  done
  for name in "${MOVED_ASIDE[@]}"; do
    mv -- "$ASIDE/$name" "$DATA_DIR/$name" || ok=no
  done
  [[ $ok == yes && -n $ASIDE ]] && rmdir -- "$ASIDE" 2>/dev/null
  if [[ $ok == yes ]]; then
    [[ ${#MOVED_ASIDE[@]} -gt 0 || ${#MOVED_IN[@]} -gt 0 ]] && log "rolled back: the previous data is in place again"
    return 0
  fi
  printf '%s: ERROR: rollback incomplete; the previous data is kept in %s: move it back into %s by hand\n' \
    "$SLUG" "$ASIDE" "$DATA_DIR" >&2
  return 1
}

on_exit() {
  local code=$? status=0
  if [[ $FINISHED != yes && ( ${#MOVED_ASIDE[@]} -gt 0 || ${#MOVED_IN[@]} -gt 0 ) ]]; then
    # A container started on the imported data must not keep writing while it goes away.
    [[ $running != absent ]] && "$DOCKER" stop -t 60 "$CONTAINER" >/dev/null 2>&1
    roll_back || status=$EX_ATTENTION
    [[ $running == true ]] && { start_container || status=$EX_ATTENTION; }
  elif [[ $FINISHED != yes && $STOPPED == yes ]]; then
    start_container || status=$EX_ATTENTION
  fi
  remove_work
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
fi

while :; do
  ASIDE="$DATA_DIR/mai-pre-import-$(date -u +%Y%m%dT%H%M%SZ)"
  [[ -e $ASIDE ]] || break
  sleep 1
done
while IFS= read -r -d '' name; do
  [[ ${#MOVED_ASIDE[@]} -gt 0 ]] || mkdir -m 0700 -- "$ASIDE" || fail "$EX_ROLLED_BACK" "cannot create $ASIDE"
  mv -- "$DATA_DIR/$name" "$ASIDE/$name" || fail "$EX_ROLLED_BACK" "cannot move $name aside"
  MOVED_ASIDE+=("$name")
done < <(current_entries)
[[ ${#MOVED_ASIDE[@]} -gt 0 ]] && log "kept the current data as $ASIDE"

while IFS= read -r -d '' name; do
  mv -- "$STAGE/data/$name" "$DATA_DIR/$name" || fail "$EX_ROLLED_BACK" "cannot move $name into $DATA_DIR"
  MOVED_IN+=("$name")
done < <(find "$STAGE/data" -mindepth 1 -maxdepth 1 -printf '%f\0')
if ! result=$(verify_db "$DB"); then
  fail "$EX_ROLLED_BACK" "the imported database failed verification in place ($result)"
fi

if [[ $running == absent ]]; then
  log "no container $CONTAINER on this host: data imported; the stack starts the workspace when it is deployed"
else
  start_container || fail "$EX_ROLLED_BACK" "could not start $CONTAINER on the imported data"
  STOPPED=no
  log "waiting for $CONTAINER to answer /health (up to ${HEALTH_TIMEOUT}s)"
  if ! result=$(wait_healthy); then
    fail "$EX_ROLLED_BACK" "$CONTAINER is not healthy on the imported data: $result"
  fi
  log "$CONTAINER is healthy"
fi
FINISHED=yes
log "imported the export of '$EXPORTED' into $VOLUME"
[[ ${#MOVED_ASIDE[@]} -gt 0 ]] && log "the previous data stays in $ASIDE until you delete it"
exit 0
