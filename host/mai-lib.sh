# shellcheck shell=bash
# mai-lib.sh: what mai-backup, mai-restore, mai-export and mai-import share. Sourced, never run;
# installed next to the scripts (the host's bin directory, /usr/local/sbin on a server).
#
# The sourcing script sets PROG first; SLUG once it knows the client. Host paths come from the
# environment with production defaults (the tests run the scripts on temp dirs):
#   MAI_LOCK_DIR (/run/lock), MAI_DOCKER (docker)

LOCK_DIR=${MAI_LOCK_DIR:-/run/lock}
DOCKER=${MAI_DOCKER:-docker}
# Where log lines go: 1 (stdout) unless a script streams its product to stdout.
MAI_LOG_FD=${MAI_LOG_FD:-1}

# Every line names the client: the journal of 20 clients' runs stays readable with `-t <prog>`.
log() { printf '%s: %s\n' "${SLUG:-$PROG}" "$*" >&"$MAI_LOG_FD"; }
warn() { printf '%s: WARNING: %s\n' "${SLUG:-$PROG}" "$*" >&2; }
LAST_ERROR=
fail() { # fail <exit code> <message>; the message stays in LAST_ERROR for an exit trap
  LAST_ERROR=$2
  printf '%s: ERROR: %s\n' "${SLUG:-$PROG}" "$2" >&2
  exit "$1"
}

# sqlite3 without ~/.sqliterc and never interactive: on a terminal it would print banners
# into the output that the checks compare with "ok".
sq() { sqlite3 -batch -init /dev/null "$@" </dev/null; }

# The time in every backup and export name (YYYYmmddTHHMMSSZ), as a glob. A client's files are
# matched as "$SLUG-$STAMP_GLOB..." and never as "$SLUG-*": that would also match the files of
# a client whose slug starts with this one's (acme-corp's for acme). Upper-case T and Z cannot
# occur in a slug, so the match is exact.
STAMP_GLOB='[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z'

# Client slugs are DNS labels; anything else could escape a path or a unit name.
is_slug() { [[ $1 =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]]; }
require_slug() { # require_slug <value> <exit code>
  is_slug "$1" || fail "$2" "'$1' is not a client slug (lowercase letters, digits and inner hyphens)"
}

require_tools() { # require_tools <exit code> <tool>...
  local code=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || fail "$code" "'$tool' is not installed"
  done
}

# One run per client: backups, restores, exports and imports of a client share this lock.
# lock_client <slug> <seconds to wait> <exit code when busy> <what is busy, for the message>
lock_client() {
  mkdir -p "$LOCK_DIR" || fail 6 "cannot create lock directory $LOCK_DIR"
  exec 9>"$LOCK_DIR/mai-backup-$1.lock" || fail 6 "cannot open lock file in $LOCK_DIR"
  if [[ $2 -gt 0 ]] && ! flock -n 9; then
    log "waiting up to $2s for another backup, restore, export or import of '$1'"
    flock -w "$2" 9 && return 0
  elif flock -n 9; then
    return 0
  fi
  fail "$3" "$4"
}

# Prints the host directory of the client's data volume; fails when there is none.
volume_dir() { "$DOCKER" volume inspect -f '{{.Mountpoint}}' "mai-$1-data" 2>/dev/null; }

# Prints "ok" when the file is a sound SQLite database with at least one table.
verify_db() {
  local check tables
  check=$(sq "$1" "PRAGMA integrity_check;" 2>&1) || check=${check:-unreadable}
  [[ $check == ok ]] || { printf '%s' "${check:0:300}"; return 1; }
  tables=$(sq "$1" "SELECT count(*) FROM sqlite_master WHERE type='table';" 2>&1)
  [[ $tables =~ ^[1-9][0-9]*$ ]] || { printf 'no tables (an empty database)'; return 1; }
  printf 'ok'
}

# snapshot_db <live db> <new file>: a consistent copy taken online with `VACUUM INTO` (one read
# transaction, so a point in time while the app keeps writing), checked with PRAGMA
# integrity_check and stored in rollback-journal mode (a restored file must not expect a -wal
# next to it). Prints why on failure.
snapshot_db() {
  local err check
  # .timeout: wait for a writer's lock instead of failing at once (rollback-journal databases).
  if ! err=$(sq -bail -cmd ".timeout 60000" "$1" "VACUUM INTO '${2//\'/\'\'}';" 2>&1); then
    printf 'snapshot of %s failed: %s' "$1" "${err:0:300}"
    return 1
  fi
  check=$(sq "$2" "PRAGMA integrity_check;" 2>&1)
  [[ $check == ok ]] || { printf 'the snapshot failed PRAGMA integrity_check: %s' "${check:0:300}"; return 1; }
  sq "$2" "PRAGMA journal_mode=DELETE;" >/dev/null 2>&1 || { printf 'cannot normalise the journal mode of the snapshot'; return 1; }
}

# ---------------------------------------------------------------------------------------------
# Export archives (mai-export writes them, mai-import reads them)
#
# An archive is one tar stream compressed with zstd, members in this order:
#   data/...              the client's volume; data/webui.db is the VACUUM INTO snapshot
#   manifest.json         format, formatVersion, slug, name, exportedAt, image, database,
#                         files: [{path, size, sha256}] for every data/ file
#   manifest.sha256       `sha256sum` line of manifest.json (so `sha256sum -c` works by hand)
# The manifest comes last because its checksums are taken from the very stream that is written.
# ---------------------------------------------------------------------------------------------
readonly ARCHIVE_FORMAT=mai-export ARCHIVE_FORMAT_VERSION=1

# Run by `tar --to-command` for each regular member: "<sha256>\t<size>\t<path>\0".
# shellcheck disable=SC2016 # expanded by the shell tar starts, not here
readonly MEMBER_HASHER='h=$(sha256sum) && printf "%s\t%s\t%s\0" "${h%% *}" "$TAR_SIZE" "$TAR_FILENAME"'

# verify_archive <archive> <work dir>: checks an export archive without extracting the data.
# On success leaves <work dir>/manifest.json and prints nothing; on failure prints the reason.
# Refused: a damaged or truncated file (zstd and tar errors), members other than regular files
# and directories, a missing or edited manifest (manifest.sha256), an unknown format or version,
# paths outside data/, no data/webui.db, and any file missing, extra, or of other size or content
# than the manifest says.
verify_archive() {
  local archive=$1 work=$2 types listing wanted got problem manifest_sum
  if ! problem=$(zstd -q -t -- "$archive" 2>&1); then
    printf 'damaged or truncated (zstd: %s)' "${problem:0:200}"
    return 1
  fi
  if ! listing=$(zstd -q -d -c -- "$archive" | tar -t -v --numeric-owner -f - 2>&1); then
    printf 'not a readable tar archive: %s' "${listing:0:200}"
    return 1
  fi
  types=$(cut -c1 <<<"$listing" | LC_ALL=C sort -u | tr -d '\n')
  [[ $types =~ ^[-d]+$ ]] || { printf 'holds links or special files (member types "%s"); only files and directories are accepted' "$types"; return 1; }

  if ! problem=$(zstd -q -d -c -- "$archive" | tar -x -f - --to-command="$MEMBER_HASHER" 2>&1 >"$work/members"); then
    printf 'cannot read its members: %s' "${problem:0:200}"
    return 1
  fi
  if ! problem=$(zstd -q -d -c -- "$archive" | tar -x -f - -C "$work" manifest.json manifest.sha256 2>&1); then
    printf 'has no manifest.json and manifest.sha256 (not a mai-export archive?): %s' "${problem:0:200}"
    return 1
  fi
  manifest_sum=$(sha256sum <"$work/manifest.json") manifest_sum=${manifest_sum%% *}
  [[ $(<"$work/manifest.sha256") == "$manifest_sum  manifest.json" ]] ||
    { printf 'manifest.json does not match manifest.sha256 (edited or damaged)'; return 1; }

  if ! problem=$(jq -r --arg format "$ARCHIVE_FORMAT" --argjson version "$ARCHIVE_FORMAT_VERSION" '
      if type != "object" then "not a JSON object"
      elif .format != $format then "format is \(.format | tojson), expected \($format | tojson)"
      elif .formatVersion != $version then "format version \(.formatVersion | tojson) is not supported (this tool reads \($version))"
      elif (.slug | type) != "string" then "no slug"
      elif (.files | type) != "array" then "no file list"
      elif any(.files[]; (.path | type) != "string" or (.path | startswith("data/") | not) or (.path | test("(^|/)\\.\\.?(/|$)"))
               or (.size | type) != "number" or (.sha256 | type) != "string") then "a file entry is malformed or outside data/"
      elif ([.files[].path] | length) != ([.files[].path] | unique | length) then "a file is listed twice"
      elif all(.files[]; .path != "data/webui.db") then "no data/webui.db"
      else "ok" end' "$work/manifest.json" 2>&1); then
    problem="not valid JSON"
  fi
  [[ $problem == ok ]] || { printf 'manifest: %s' "${problem:0:300}"; return 1; }

  compare_members "$work/members" "$work/manifest.json"
}

# compare_members <members> <manifest.json>: the files MEMBER_HASHER saw (the manifest files
# themselves left out) must be exactly those the manifest lists, same size and SHA-256.
compare_members() {
  local wanted got problem
  # One line per file, "<sha256>\t<size>\t<path>" (a newline inside a name shows as '?').
  wanted=$(jq -j '.files[] | "\(.sha256)\t\(.size)\t\(.path)\u0000"' "$2" | LC_ALL=C sort -z | tr '\0\n' '\n?')
  got=$(LC_ALL=C sort -z <"$1" | tr '\0\n' '\n?' | grep -v -P '\t(manifest\.json|manifest\.sha256)$')
  [[ $wanted == "$got" ]] && return 0
  local wanted_paths got_paths
  wanted_paths=$(cut -f3- <<<"$wanted" | LC_ALL=C sort)
  got_paths=$(cut -f3- <<<"$got" | LC_ALL=C sort)
  problem=$(
    LC_ALL=C comm -23 <(echo "$wanted_paths") <(echo "$got_paths") | sed 's/^/missing from the archive: /'
    LC_ALL=C comm -13 <(echo "$wanted_paths") <(echo "$got_paths") | sed 's/^/not in the manifest: /'
    LC_ALL=C comm -23 <(echo "$wanted") <(echo "$got") | cut -f3- | LC_ALL=C sort | LC_ALL=C comm -12 - <(echo "$got_paths") |
      sed 's/^/other size or content than the manifest says: /'
  )
  printf 'files do not match the manifest (%s)' "$(head -n 3 <<<"$problem" | paste -sd ';' | sed 's/;/; /g')"
  return 1
}