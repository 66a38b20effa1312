#!/usr/bin/env bash
# mai-move: move one client's data from a source server to a target server. Runs on the machine
# running Pulumi (a `command.local.Command` of the ClientMove component; see policy/move.ts for
# the design), reaching each server through its shell prefix (`ssh ... root@<ip>` or `bash -c`).
#
# Order, chosen so that two copies of a client never run and a failure loses nothing:
#   1. preflight, nothing changed yet: both engines answer, the source volume exists, the target
#      has no container of the client, the source's data has not been moved away before;
#   2. stop mai-<slug> on the source (if it runs);
#   3. `mai-export <slug> -` on the source | `mai-import --yes <slug> -` on the target, with
#      pipefail: the import verifies the archive (manifest, checksums) before it writes anything;
#      --yes because a volume left on the target by an earlier move is replaced on purpose (the
#      import keeps its content aside in the volume);
#   4. check the database on the target; record the move on the source host
#      (<state>/moved/<slug>), clear any old record on the target;
#   5. on any failure after the stop: start mai-<slug> on the source again and exit non-zero.
# The target container is started afterwards by Pulumi (it depends on this command); the source
# container stays stopped until Pulumi removes it; the source volume is never touched.
#
# Environment (set by the stack, see moveEnvironment in policy/move.ts):
#   MAI_MOVE_SLUG, MAI_MOVE_SUSPENDED (yes|no)
#   MAI_SOURCE_NAME, MAI_SOURCE_SHELL, MAI_SOURCE_BIN, MAI_SOURCE_STATE
#   MAI_TARGET_NAME, MAI_TARGET_SHELL, MAI_TARGET_BIN, MAI_TARGET_STATE
#   MAI_MOVE_STOP_TIMEOUT (seconds docker stop waits, default 60)
#
# Exit codes:
#   0 moved (the data is on the target and verified)
#   2 usage or configuration error; nothing changed
#   4 refused by the preflight; nothing changed
#   5 the move failed; the client runs on the source again (or was not running before)
#   9 the move failed AND the source container could not be started again: needs the operator
# shellcheck disable=SC2317 # the clean-up functions run from traps
set -uo pipefail
umask 077

readonly PROG=mai-move
readonly EX_USAGE=2 EX_REFUSED=4 EX_FAILED=5 EX_ATTENTION=9

SLUG=${MAI_MOVE_SLUG:-}
log() { printf '%s: %s\n' "${SLUG:-$PROG}" "$*"; }
fail() { # fail <exit code> <message>
  printf '%s: ERROR: %s\n' "${SLUG:-$PROG}" "$2" >&2
  exit "$1"
}

[[ $SLUG =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] ||
  fail "$EX_USAGE" "MAI_MOVE_SLUG must be a client slug (got '$SLUG')"
for var in MAI_SOURCE_NAME MAI_SOURCE_SHELL MAI_SOURCE_BIN MAI_SOURCE_STATE \
  MAI_TARGET_NAME MAI_TARGET_SHELL MAI_TARGET_BIN MAI_TARGET_STATE; do
  [[ -n ${!var:-} ]] || fail "$EX_USAGE" "$var is not set"
done
for var in MAI_SOURCE_BIN MAI_SOURCE_STATE MAI_TARGET_BIN MAI_TARGET_STATE; do
  [[ ${!var} =~ ^/[A-Za-z0-9._/-]*$ ]] || fail "$EX_USAGE" "$var must be an absolute path of plain characters (got '${!var}')"
done
STOP_TIMEOUT=${MAI_MOVE_STOP_TIMEOUT:-60}
[[ $STOP_TIMEOUT =~ ^[0-9]+$ ]] || fail "$EX_USAGE" "MAI_MOVE_STOP_TIMEOUT must be whole seconds"
SUSPENDED=${MAI_MOVE_SUSPENDED:-no}
FROM=$MAI_SOURCE_NAME
TO=$MAI_TARGET_NAME
CONTAINER="mai-$SLUG"
VOLUME="mai-$SLUG-data"

# Runs one command string on a host through its shell prefix. The prefix is shell syntax written
# by the stack (it may quote its own arguments), hence eval; the command is passed as one word.
on_source() { eval "$MAI_SOURCE_SHELL"' "$1"'; }
on_target() { eval "$MAI_TARGET_SHELL"' "$1"'; }

WORK=$(mktemp -d) || fail "$EX_USAGE" "cannot create a temp directory"
STOPPED=no
FINISHED=no
STEP="preflight"

# Last lines of a captured stderr, on one line, for the failure message.
tail_of() { [[ -s $1 ]] && tail -n 5 "$1" | tr '\n' ' ' | cut -c1-600; }

on_exit() {
  local code=$?
  if [[ $FINISHED != yes && $STOPPED == yes ]]; then
    if on_source "docker start $CONTAINER" >/dev/null 2>"$WORK/restart.err" </dev/null &&
      [[ $(on_source "docker container inspect -f '{{.State.Running}}' $CONTAINER" 2>/dev/null </dev/null) == true ]]; then
      printf '%s: the move failed during "%s"; %s is running on %s again, nothing on %s was changed. Fix the cause and run `pulumi up` again, or cancel the move (docs/runbook.md: "Move a client to another server").\n' \
        "$SLUG" "$STEP" "$CONTAINER" "$FROM" "$FROM" >&2
    else
      printf '%s: ATTENTION: the move failed during "%s" and %s could not be started again on %s: start it by hand (docker start %s on %s): %s\n' \
        "$SLUG" "$STEP" "$CONTAINER" "$FROM" "$CONTAINER" "$FROM" "$(tail_of "$WORK/restart.err")" >&2
      code=$EX_ATTENTION
    fi
  elif [[ $FINISHED != yes && $code -ne 0 ]]; then
    printf '%s: the move failed during "%s" before anything was stopped; %s is unchanged on %s.\n' "$SLUG" "$STEP" "$CONTAINER" "$FROM" >&2
  fi
  rm -rf "$WORK"
  exit "$code"
}
trap on_exit EXIT
trap 'fail "$EX_FAILED" "interrupted"' INT TERM HUP

started=$SECONDS
log "moving from $FROM to $TO"

# --- 1. preflight: nothing is changed until every check passed ---------------------------------
for side in source target; do
  name=$FROM
  [[ $side == target ]] && name=$TO
  if ! "on_$side" "docker version --format '{{.Server.Version}}'" >/dev/null 2>"$WORK/$side.err" </dev/null; then
    fail "$EX_REFUSED" "cannot reach Docker on $name ($side): $(tail_of "$WORK/$side.err")"
  fi
done
on_source "docker volume inspect $VOLUME" >/dev/null 2>&1 </dev/null ||
  fail "$EX_REFUSED" "there is no volume $VOLUME on $FROM: nothing to move (is moveFrom right?)"
on_source "test -x $MAI_SOURCE_BIN/mai-export" </dev/null ||
  fail "$EX_REFUSED" "$MAI_SOURCE_BIN/mai-export is not installed on $FROM"
on_target "test -x $MAI_TARGET_BIN/mai-import" </dev/null ||
  fail "$EX_REFUSED" "$MAI_TARGET_BIN/mai-import is not installed on $TO"
if on_target "docker container inspect $CONTAINER" >/dev/null 2>&1 </dev/null; then
  fail "$EX_REFUSED" "a container $CONTAINER already exists on $TO; a move never runs two copies of a client. Remove it on $TO if it is not the live workspace"
fi
running=$(on_source "docker container inspect -f '{{.State.Running}}' $CONTAINER" 2>/dev/null </dev/null) || running=absent
moved_record=$(on_source "cat $MAI_SOURCE_STATE/moved/$SLUG 2>/dev/null" </dev/null) || moved_record=
if [[ $running == absent && -n $moved_record ]]; then
  fail "$EX_REFUSED" "the data of $SLUG on $FROM was moved away before ($moved_record) and $FROM runs no $CONTAINER: its volume there is an old copy, not the live one. Check which server the client runs on"
fi
if [[ $running == absent ]]; then
  log "no container $CONTAINER on $FROM ($([[ $SUSPENDED == yes ]] && echo suspended || echo 'not running')): moving its volume"
fi

# --- 2. stop the source: from here on only one copy exists and it does not change --------------
if [[ $running == true ]]; then
  STEP="stop on $FROM"
  log "stopping $CONTAINER on $FROM"
  STOPPED=yes # even a failed stop may have stopped it: the exit handler starts it again
  on_source "docker stop -t $STOP_TIMEOUT $CONTAINER" >/dev/null 2>"$WORK/stop.err" </dev/null ||
    fail "$EX_FAILED" "could not stop $CONTAINER on $FROM: $(tail_of "$WORK/stop.err")"
fi

# --- 3. stream the verified export into the import ----------------------------------------------
STEP="transfer from $FROM to $TO"
log "streaming mai-export on $FROM into mai-import on $TO"
on_source "$MAI_SOURCE_BIN/mai-export $SLUG -" 2>"$WORK/export.err" </dev/null |
  on_target "$MAI_TARGET_BIN/mai-import --yes $SLUG -" >"$WORK/import.out" 2>"$WORK/import.err"
status=("${PIPESTATUS[@]}")
sed "s/^/  [$TO] /" "$WORK/import.out"
if [[ ${status[1]} -ne 0 ]]; then
  fail "$EX_FAILED" "mai-import on $TO failed (exit ${status[1]}): $(tail_of "$WORK/import.err") $( [[ ${status[0]} -ne 0 ]] && echo "[mai-export on $FROM: exit ${status[0]}: $(tail_of "$WORK/export.err")]")"
fi
if [[ ${status[0]} -ne 0 ]]; then
  fail "$EX_FAILED" "mai-export on $FROM failed (exit ${status[0]}): $(tail_of "$WORK/export.err")"
fi

# --- 4. check on the target, record on the source -----------------------------------------------
STEP="check on $TO"
check=$(on_target "d=\$(docker volume inspect -f '{{.Mountpoint}}' $VOLUME) && sqlite3 -batch -init /dev/null \"\$d/webui.db\" 'PRAGMA integrity_check;'" 2>&1 </dev/null) || true
[[ $check == ok ]] || fail "$EX_FAILED" "the database in $VOLUME on $TO failed its check: ${check:0:300}"

STEP="record the move"
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
on_source "mkdir -p $MAI_SOURCE_STATE/moved && printf '%s\n' 'to $TO at $stamp' >$MAI_SOURCE_STATE/moved/$SLUG" </dev/null ||
  fail "$EX_FAILED" "cannot record the move in $MAI_SOURCE_STATE/moved on $FROM"
on_target "rm -f $MAI_TARGET_STATE/moved/$SLUG" </dev/null ||
  fail "$EX_FAILED" "cannot clear $MAI_TARGET_STATE/moved/$SLUG on $TO"

FINISHED=yes
# The source's nightly backup of the old copy would only produce misleading backups; Pulumi may
# re-point the timer resource to the target without disabling it on the source.
on_source "if command -v systemctl >/dev/null && systemctl cat mai-backup@$SLUG.timer >/dev/null 2>&1; then systemctl disable --now mai-backup@$SLUG.timer; fi" >/dev/null 2>&1 </dev/null ||
  log "WARNING: could not disable mai-backup@$SLUG.timer on $FROM; disable it by hand"

log "moved from $FROM to $TO in $((SECONDS - started))s (database integrity ok)"
[[ $STOPPED == yes ]] && log "$CONTAINER stays stopped on $FROM until Pulumi removes it"
log "volume $VOLUME stays on $FROM until you delete it"
exit 0
