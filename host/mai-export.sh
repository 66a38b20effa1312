#!/usr/bin/env bash
# mai-export <slug> [<archive>|-]: write all of a client's data into one portable archive (tar +
# zstd), for handing over to the client when it leaves and for moving it to another server:
#   ssh old-host mai-export acme - | ssh new-host mai-import acme -
# Installed as /usr/local/sbin/mai-export. Safe to run while the workspace is in use, and for a
# suspended client (no container: the volume is read on the host, as mai-backup does).
#
# What the archive holds (format in mai-lib.sh): data/webui.db, a consistent copy of the
# database taken online with `VACUUM INTO` and checked with PRAGMA integrity_check; every other
# file of the volume mai-<slug>-data (uploads, vector store, cache) as it is read; and a
# manifest (slug, name, export time, image, size and SHA-256 of every file) written last, from
# the very bytes that went into the archive. Left out: the live database's -wal/-shm/-journal
# (the snapshot has their rows) and what mai-restore and mai-import kept aside
# (webui.db.pre-restore-*, mai-pre-import-*). Only the database is a point-in-time copy while the
# workspace runs; suspend the client first for a frozen copy of the other files (offboarding and
# moves do).
#
# A file target is written as <archive>.part-*, re-read and verified in full (every checksum),
# then linked into place: an existing archive is never overwritten and a failed export leaves
# nothing behind. A killed one (SIGKILL, power loss: no clean-up ran) leaves its hidden work
# directory (.mai-export-tmp.<slug>.*, with a copy of the database) and its .part file, never a
# file with the archive's name; the client's next export removes them. With `-` the archive streams to stdout (the log goes to stderr) and the reader
# (mai-import) verifies it.
#
# Exit codes:
#   0 archive written and verified (or streamed)
#   2 usage error, or the archive already exists
#   4 the client's data volume or database was not found
#   5 the export or its verification failed; nothing was kept
#   6 configuration error (missing tool)
#   7 another backup, restore, export or import of this client kept running (waited MAI_LOCK_WAIT s)
#
# Environment: MAI_EXPORT_ROOT (/srv/mai/exports: default archive directory), MAI_LOCK_WAIT
# (600), MAI_CLIENT_NAME / MAI_CLIENT_IMAGE (name and image for the manifest when there is no
# container to read them from), and the paths of mai-lib.sh.
# shellcheck disable=SC2317 # the clean-up function runs from a trap
set -uo pipefail
umask 077

readonly PROG=mai-export
readonly EX_USAGE=2 EX_NOINPUT=4 EX_FAILED=5 EX_CONFIG=6 EX_BUSY=7
# shellcheck source=mai-lib.sh
source "${MAI_LIB:-$(dirname -- "${BASH_SOURCE[0]}")/mai-lib.sh}" 2>/dev/null ||
  { echo "$PROG: ERROR: mai-lib.sh not found" >&2; exit 6; }

EXPORT_ROOT=${MAI_EXPORT_ROOT:-/srv/mai/exports}
LOCK_WAIT=${MAI_LOCK_WAIT:-600}

usage() {
  cat <<EOF
Usage: $PROG <slug> [<archive>|-]
Export all data of client <slug> (volume mai-<slug>-data) into one verified archive:
<archive> (never overwritten; default $EXPORT_ROOT/<slug>-<time>.tar.zst), or '-' for stdout.
EOF
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac
[[ $# -ge 1 && $# -le 2 ]] || { usage >&2; exit "$EX_USAGE"; }
require_slug "$1" "$EX_USAGE"
SLUG=$1
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
TARGET=${2:-$EXPORT_ROOT/$SLUG-$STAMP.tar.zst}
[[ $LOCK_WAIT =~ ^[0-9]+$ ]] || fail "$EX_CONFIG" "MAI_LOCK_WAIT must be a number of seconds (got '$LOCK_WAIT')"

if [[ $TARGET == - ]]; then
  MAI_LOG_FD=2
  [[ -t 1 ]] && fail "$EX_USAGE" "stdout is a terminal; redirect it to a file or a pipe (mai-export $SLUG - > file)"
else
  [[ $TARGET == *.tar.zst ]] || fail "$EX_USAGE" "the archive name must end in .tar.zst (got '$TARGET')"
  [[ -e $TARGET ]] && fail "$EX_USAGE" "$TARGET already exists; not overwritten"
  [[ -z ${2:-} ]] && { mkdir -p "$EXPORT_ROOT" || fail "$EX_FAILED" "cannot create $EXPORT_ROOT"; }
  [[ -d $(dirname -- "$TARGET") ]] || fail "$EX_USAGE" "directory $(dirname -- "$TARGET") does not exist"
fi

require_tools "$EX_CONFIG" sqlite3 zstd tar jq sha256sum flock
lock_client "$SLUG" "$LOCK_WAIT" "$EX_BUSY" "another backup, restore, export or import of '$SLUG' is running; nothing done"

DATA_DIR=$(volume_dir "$SLUG") || fail "$EX_NOINPUT" "Docker volume mai-$SLUG-data not found; is '$SLUG' a client on this host?"
DB="$DATA_DIR/webui.db"
[[ -f $DB ]] || fail "$EX_NOINPUT" "no database at $DB (volume mai-$SLUG-data)"

# --- name and image for the manifest: from the container, or given for a suspended client -------
CONTAINER="mai-$SLUG"
NAME=${MAI_CLIENT_NAME:-}
IMAGE=${MAI_CLIENT_IMAGE:-}
if container_env=$("$DOCKER" inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$CONTAINER" 2>/dev/null); then
  [[ -n $NAME ]] || NAME=$(sed -n 's/^ORGANIZATION_NAME=//p' <<<"$container_env" | head -n 1)
  [[ -n $IMAGE ]] || IMAGE=$("$DOCKER" inspect -f '{{.Config.Image}}' "$CONTAINER" 2>/dev/null)
else
  log "no container $CONTAINER (suspended client?): reading the volume only${NAME:+; name '$NAME' as given}"
fi

# --- leftovers of this client's killed exports: we hold its lock, so none is in use -------------
# remove_leftovers <dir>: each work directory .mai-export-tmp.<slug>.<id> and its <archive>.part-<slug>.<id>.
remove_leftovers() {
  local work id
  for work in "$1/.mai-export-tmp.$SLUG."*; do
    [[ -d $work ]] || continue
    id=${work##*/.mai-export-tmp.}
    rm -f -- "$1"/*.part-"$id" && rm -rf -- "$work" &&
      log "removed the leftovers of an interrupted export ($id) in $1"
  done
}
[[ -d $EXPORT_ROOT ]] && remove_leftovers "$EXPORT_ROOT"
[[ $TARGET == - || $(dirname -- "$TARGET") -ef $EXPORT_ROOT ]] || remove_leftovers "$(dirname -- "$TARGET")"

# --- work space: next to the archive (same filesystem, so the final step is a link) -------------
# Named after the client, so that its next run can tell its own leftovers from another client's.
if [[ $TARGET == - ]]; then
  mkdir -p "$EXPORT_ROOT" || fail "$EX_FAILED" "cannot create $EXPORT_ROOT"
  WORK=$(mktemp -d "$EXPORT_ROOT/.mai-export-tmp.$SLUG.XXXXXX") || fail "$EX_FAILED" "cannot create a temp dir in $EXPORT_ROOT"
  OUT=/dev/stdout
else
  WORK=$(mktemp -d "$(dirname -- "$TARGET")/.mai-export-tmp.$SLUG.XXXXXX") || fail "$EX_FAILED" "cannot create a temp dir next to $TARGET"
  OUT="$TARGET.part-${WORK##*/.mai-export-tmp.}"
fi
cleanup() {
  rm -rf -- "$WORK"
  [[ $OUT == /dev/stdout ]] || rm -f -- "$OUT"
}
trap cleanup EXIT
trap 'fail "$EX_FAILED" "interrupted; nothing kept"' INT TERM HUP PIPE

started=$SECONDS
log "exporting volume mai-$SLUG-data ($DATA_DIR)"

# --- the database: a consistent snapshot ---------------------------------------------------------
mkdir "$WORK/snapshot"
if ! err=$(snapshot_db "$DB" "$WORK/snapshot/webui.db"); then
  fail "$EX_FAILED" "$err; nothing kept"
fi
chown --reference="$DB" "$WORK/snapshot/webui.db" && chmod --reference="$DB" "$WORK/snapshot/webui.db" &&
  touch -r "$DB" "$WORK/snapshot/webui.db" || fail "$EX_FAILED" "cannot copy owner and mode of $DB to the snapshot"
log "database snapshot taken (integrity ok)"

# --- the rest of the volume ----------------------------------------------------------------------
# Leftovers of restores and imports stay out; so does the live database (the snapshot replaces it).
# -ignore_readdir_race: SQLite creates and deletes webui.db-wal while the workspace writes; a name
# that vanishes between listing and looking at it is no error.
skip=(-path ./webui.db -o -path ./webui.db-wal -o -path ./webui.db-shm -o -path ./webui.db-journal
  -o -path './webui.db.pre-restore-*' -o -path './.webui.db.restore.*' -o -path './mai-pre-import-*'
  -o -path './.mai-import.*')
others=$(cd "$DATA_DIR" && find . -ignore_readdir_race -mindepth 1 \( "${skip[@]}" \) -prune -o ! -type f ! -type d -print | head -n 5)
[[ -z $others ]] || fail "$EX_FAILED" "the volume holds links or special files, which an export cannot carry: $(paste -sd ' ' <<<"$others"); nothing kept"
(cd "$DATA_DIR" && find . -ignore_readdir_race -mindepth 1 \( "${skip[@]}" \) -prune -o \( -type f -o -type d \) -print0) >"$WORK/files" ||
  fail "$EX_FAILED" "cannot list the files of $DATA_DIR"

# --- one pass: tar -> (checksums of each member) and -> zstd -----------------------------------
# `-b 1` ends the tar with exactly two zero blocks; they are cut off so that the manifest, written
# once every checksum is known, continues the same tar stream (in a second zstd frame).
mkfifo "$WORK/stream" || fail "$EX_FAILED" "cannot create a pipe in $WORK"
tar -x -f "$WORK/stream" --to-command="$MEMBER_HASHER" >"$WORK/members" 2>"$WORK/hasher.err" &
hasher=$!
# --ignore-failed-read: a file the running workspace deletes meanwhile (a cache entry) is left out
# with a warning instead of failing the export; the manifest lists what was archived.
tar -c -b 1 -f - --numeric-owner --no-recursion --ignore-failed-read --transform='s,^\./,data/,' \
  -C "$WORK/snapshot" ./webui.db -C "$DATA_DIR" --null -T "$WORK/files" 2>"$WORK/tar.err" |
  tee "$WORK/stream" | head -c -1024 | zstd -q -T2 -c >"$OUT"
pipe=("${PIPESTATUS[@]}")
wait "$hasher"
hashed=$?
if [[ ${pipe[0]} -le 1 && -s $WORK/tar.err ]]; then
  # GNU tar's "file changed as we read it" or a vanished file: the archive holds the bytes read,
  # and the manifest their checksums.
  warn "files changed or vanished while they were read (the workspace is running): $(head -c 300 "$WORK/tar.err" | tr '\n' ' ')"
elif [[ ${pipe[0]} -gt 1 ]]; then
  fail "$EX_FAILED" "tar failed: $(head -c 300 "$WORK/tar.err"); nothing kept"
fi
[[ ${pipe[1]} -eq 0 && ${pipe[2]} -eq 0 && ${pipe[3]} -eq 0 && $hashed -eq 0 ]] ||
  fail "$EX_FAILED" "writing the archive failed (tee ${pipe[1]}, head ${pipe[2]}, zstd ${pipe[3]}, checksums $hashed: $(head -c 200 "$WORK/hasher.err")); nothing kept"

# --- manifest, appended as the end of the tar stream ---------------------------------------------
jq -n --arg format "$ARCHIVE_FORMAT" --argjson version "$ARCHIVE_FORMAT_VERSION" --arg slug "$SLUG" \
  --arg name "$NAME" --arg image "$IMAGE" --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg host "$(hostname)" \
  --rawfile members "$WORK/members" '
  ($members | split("\u0000") | map(select(. != "") | split("\t") | {path: (.[2:] | join("\t")), size: (.[1] | tonumber), sha256: .[0]})
    | sort_by(.path)) as $files
  | {format: $format, formatVersion: $version, slug: $slug, name: (if $name == "" then null else $name end),
     exportedAt: $at, exportedFrom: $host, image: (if $image == "" then null else $image end),
     database: "data/webui.db", fileCount: ($files | length), totalBytes: ([$files[].size] | add), files: $files}' \
  >"$WORK/manifest.json" || fail "$EX_FAILED" "cannot write the manifest; nothing kept"
(cd "$WORK" && sha256sum manifest.json >manifest.sha256 && chmod 0644 manifest.json manifest.sha256) ||
  fail "$EX_FAILED" "cannot checksum the manifest; nothing kept"
{ tar -c -b 1 -f - --numeric-owner --owner=0 --group=0 -C "$WORK" manifest.json manifest.sha256 | zstd -q -c >>"$OUT"; } 2>"$WORK/tar.err" ||
  fail "$EX_FAILED" "cannot append the manifest: $(head -c 300 "$WORK/tar.err"); nothing kept"
count=$(jq .fileCount "$WORK/manifest.json")
bytes=$(jq .totalBytes "$WORK/manifest.json")

if [[ $TARGET == - ]]; then
  log "streamed $count files ($bytes bytes of data) in $((SECONDS - started))s; the reader verifies the checksums"
  exit 0
fi

# --- re-read what was written, then put it in place without ever overwriting ---------------------
mkdir "$WORK/verify"
if ! err=$(verify_archive "$OUT" "$WORK/verify"); then
  fail "$EX_FAILED" "the written archive failed verification ($err); nothing kept"
fi
chmod 0600 "$OUT"
sync "$OUT" 2>/dev/null || true
ln -- "$OUT" "$TARGET" 2>/dev/null || fail "$EX_USAGE" "$TARGET appeared meanwhile; not overwritten, nothing kept"
rm -f -- "$OUT"
sync "$(dirname -- "$TARGET")" 2>/dev/null || true
log "wrote $TARGET ($count files, $bytes bytes of data, $(stat -c %s "$TARGET") bytes compressed, every checksum verified) in $((SECONDS - started))s"
exit 0
