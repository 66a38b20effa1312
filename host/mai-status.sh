#!/usr/bin/env bash
# mai-status: the live state of this host's mAI clients as ONE JSON document on stdout.
# Installed as /usr/local/sbin/mai-status; read by `npm run status` (over the stack's own SSH
# connection, or locally for the local engine) and by mai-alert every few minutes.
#
# Per client (containers labelled mai.client, data volumes mai-<slug>-data): container state,
# health, restart count, OOM kill flag, start time, CPU % and memory used/limit, data volume size
# and creation time, the last backup run and the newest backup file. The proxy (label
# mai.role=proxy), the expiry of each certificate in Caddy's storage, disk, memory, load and the
# Docker daemon. `conditions` lists what is wrong right now, with the thresholds used; mai-alert
# alerts on exactly these, and `npm run status` adds what only the client files know.
#
# Never changes anything. Exit 0 whenever the document was written (also when Docker is down:
# that is a condition), 1 when it could not be.
#
# Paths and settings, each overridable from the environment (tests run this very script):
#   MAI_DOCKER (docker)                 Docker CLI
#   MAI_LABEL_FILTER ()                 extra `label=...` filter for containers and volumes
#   MAI_BACKUP_ROOT (/srv/mai/backups)  <slug>/<slug>-<UTC time>.db.zst written by mai-backup
#   MAI_STATE_DIR (/var/lib/mai)        backup/<slug>.json: mai-backup's record of its last run
#   MAI_CONFIG_DIR (/etc/mai)           status.env (stack) and status.local.env (operator): thresholds
#   MAI_TIMERS_DIR (/etc/systemd/system/timers.target.wants)  enabled mai-backup@<slug>.timer
#   MAI_CADDY_CERT_DIR ()               read certificates here instead of Caddy's data volume
#   MAI_CADDY_VOLUME (mai-caddy-data)   Caddy's data volume (certificates/<issuer>/<host>/<host>.crt)
#   MAI_EXPECT_PROXY (yes)              "no": a missing proxy is not a condition
#   MAI_CGROUP_ROOT (/sys/fs/cgroup)    where the kernel's per-container OOM kill counters are
#   MAI_SAMPLES_DB ($MAI_STATE_DIR/samples.db), MAI_USAGE_SOURCE (auto): CPU/memory from the
#                                       sampler's last reading (< 150 s old, every running client)
#                                       or, with "docker" or when not covered, from `docker stats`
#   MAI_VOLUME_SIZES (yes)              "no": skip measuring data volumes (sizeBytes null)
set -uo pipefail
umask 077

DOCKER=${MAI_DOCKER:-docker}
LABEL_FILTER=${MAI_LABEL_FILTER:-}
BACKUP_ROOT=${MAI_BACKUP_ROOT:-/srv/mai/backups}
STATE_DIR=${MAI_STATE_DIR:-/var/lib/mai}
CONFIG_DIR=${MAI_CONFIG_DIR:-/etc/mai}
TIMERS_DIR=${MAI_TIMERS_DIR:-/etc/systemd/system/timers.target.wants}
CERT_DIR=${MAI_CADDY_CERT_DIR:-}
CADDY_VOLUME=${MAI_CADDY_VOLUME:-mai-caddy-data}
EXPECT_PROXY=${MAI_EXPECT_PROXY:-yes}
CGROUP_ROOT=${MAI_CGROUP_ROOT:-/sys/fs/cgroup}
SAMPLES_DB=${MAI_SAMPLES_DB:-$STATE_DIR/samples.db}
USAGE_SOURCE=${MAI_USAGE_SOURCE:-auto}
VOLUME_SIZES=${MAI_VOLUME_SIZES:-yes}

# Thresholds (docs/runbook.md, "The operator's view"); the stack writes status.env, the operator may
# override in status.local.env.
ALERT_DISK_PERCENT=85
ALERT_BACKUP_MAX_AGE_HOURS=26
ALERT_CERT_DAYS=14
ALERT_RESTART_COUNT=3
ALERT_RESTART_WINDOW_MINUTES=15
for env_file in "$CONFIG_DIR/status.env" "$CONFIG_DIR/status.local.env"; do
  # shellcheck disable=SC1090 # root-owned config, same trust as the script
  [[ -f $env_file ]] && source "$env_file"
done
for name in ALERT_DISK_PERCENT ALERT_BACKUP_MAX_AGE_HOURS ALERT_CERT_DAYS ALERT_RESTART_COUNT ALERT_RESTART_WINDOW_MINUTES; do
  [[ ${!name} =~ ^[0-9]+$ ]] || { echo "mai-status: $name must be a whole number (got '${!name}')" >&2; exit 1; }
done

command -v jq >/dev/null || { echo "mai-status: jq is not installed" >&2; exit 1; }

WORK=$(mktemp -d) || exit 1
trap 'rm -rf "$WORK"' EXIT

filters=()
[[ -n $LABEL_FILTER ]] && filters=(--filter "label=$LABEL_FILTER")

# --- host ----------------------------------------------------------------------------------
docker_version=$("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null) || docker_version=
docker_root=
[[ -n $docker_version ]] && docker_root=$("$DOCKER" info --format '{{.DockerRootDir}}' 2>/dev/null)

# One line per file system holding / , Docker's data or the backups: "source size used mount".
df_paths=(/)
[[ -n $docker_root && -d $docker_root ]] && df_paths+=("$docker_root")
[[ -d $BACKUP_ROOT ]] && df_paths+=("$BACKUP_ROOT")
df -P -B1 "${df_paths[@]}" 2>/dev/null | awk 'NR > 1 && !seen[$1]++ { printf "{\"filesystem\":\"%s\",\"sizeBytes\":%s,\"usedBytes\":%s,\"availableBytes\":%s,\"mount\":\"%s\"}\n", $1, $2, $3, $4, $6 }' >"$WORK/disks.jsonl"

mem_total=$(awk '/^MemTotal:/ { printf "%.0f", $2 * 1024 }' /proc/meminfo)
mem_available=$(awk '/^MemAvailable:/ { printf "%.0f", $2 * 1024 }' /proc/meminfo)
read -r load1 load5 load15 _ </proc/loadavg

# --- containers --------------------------------------------------------------------------------
: >"$WORK/inspect.json"
: >"$WORK/stats.jsonl"
: >"$WORK/oom.txt"
: >"$WORK/sampled.tsv"
stats_pid=
usage_source=docker-stats
if [[ -n $docker_version ]]; then
  mapfile -t client_ids < <("$DOCKER" ps -aq --no-trunc --filter label=mai.client "${filters[@]}" 2>/dev/null)
  mapfile -t proxy_ids < <("$DOCKER" ps -aq --no-trunc --filter label=mai.role=proxy "${filters[@]}" 2>/dev/null)
  ids=("${client_ids[@]}" "${proxy_ids[@]}")
  if ((${#ids[@]} > 0)); then
    "$DOCKER" inspect "${ids[@]}" >"$WORK/inspect.json" 2>/dev/null || echo '[]' >"$WORK/inspect.json"
    mapfile -t running < <(jq -r '.[] | select(.State.Running) | .Id' "$WORK/inspect.json")
    if ((${#running[@]} > 0)); then
      # CPU and memory use: the sampler's reading of the last minute when it covers every running
      # client; otherwise `docker stats`, which takes a second or two (the daemon needs two
      # readings for CPU %) and so runs alongside the rest.
      if [[ $USAGE_SOURCE == auto && -f $SAMPLES_DB ]] && command -v sqlite3 >/dev/null; then
        sqlite3 -batch -init /dev/null -readonly -separator $'\t' "$SAMPLES_DB" \
          "SELECT slug, cpu_percent, memory_bytes, ts FROM samples WHERE ts = (SELECT MAX(ts) FROM samples) AND ts >= $(($(date -u +%s) - 150));" \
          </dev/null >"$WORK/sampled.tsv" 2>/dev/null || : >"$WORK/sampled.tsv"
        uncovered=$(jq -r --rawfile sampled "$WORK/sampled.tsv" '
          ($sampled | split("\n") | map(select(. != "") | split("\t")[0])) as $have
          | [.[] | select(.State.Running and .Config.Labels["mai.client"] != null) | .Config.Labels["mai.client"]]
          | map(select(. as $s | $have | index($s) | not)) | length' "$WORK/inspect.json")
        [[ $uncovered == 0 ]] && usage_source=sampler
      fi
      if [[ $usage_source == docker-stats ]]; then
        : >"$WORK/sampled.tsv"
        "$DOCKER" stats --no-stream --no-trunc --format '{{json .}}' "${running[@]}" >"$WORK/stats.jsonl" 2>/dev/null &
        stats_pid=$!
      fi
      # OOM kills inside the container since it started, from the kernel's counter (Docker only
      # flags a kill of the main process). cgroup v2 or v1, systemd or cgroupfs driver.
      for id in "${running[@]}"; do
        for file in "$CGROUP_ROOT/system.slice/docker-$id.scope/memory.events" "$CGROUP_ROOT/docker/$id/memory.events" \
          "$CGROUP_ROOT/memory/docker/$id/memory.oom_control" "$CGROUP_ROOT/memory/system.slice/docker-$id.scope/memory.oom_control"; do
          [[ -r $file ]] || continue
          awk -v id="$id" '$1 == "oom_kill" { print id "\t" $2 }' "$file" >>"$WORK/oom.txt"
          break
        done
      done
    fi
  fi
fi
[[ -s $WORK/inspect.json ]] || echo '[]' >"$WORK/inspect.json"

# --- data volumes --------------------------------------------------------------------------------
echo '[]' >"$WORK/volumes.json"
: >"$WORK/du.txt"
if [[ -n $docker_version ]]; then
  mapfile -t volumes < <("$DOCKER" volume ls -q "${filters[@]}" 2>/dev/null | grep -E '^mai-[a-z0-9]([a-z0-9-]*[a-z0-9])?-data$' | grep -vx "$CADDY_VOLUME")
  if ((${#volumes[@]} > 0)); then
    "$DOCKER" volume inspect "${volumes[@]}" >"$WORK/volumes.json" 2>/dev/null || echo '[]' >"$WORK/volumes.json"
    mapfile -t mounts < <(jq -r '.[].Mountpoint' "$WORK/volumes.json")
    # Readable only where the engine's files are local (root on the host); null otherwise.
    # Walks every file of every volume: skipped where nobody reads the sizes (mai-alert).
    if [[ $VOLUME_SIZES == yes ]]; then
      timeout 60 nice -n 10 du -s -B1 "${mounts[@]}" 2>/dev/null | awk '{ print $2 "\t" $1 }' >"$WORK/du.txt"
    fi
  fi
fi

# --- backups: mai-backup's record of its last run, the newest backup file, the timer ---------
slugs=$( {
  jq -r '.[] | .Config.Labels["mai.client"] // empty' "$WORK/inspect.json"
  jq -r '.[].Name | capture("^mai-(?<s>.+)-data$").s' "$WORK/volumes.json"
} | sort -u)
: >"$WORK/backups.jsonl"
for slug in $slugs; do
  [[ $slug =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] || continue
  newest=
  # The exact name pattern, never "$slug-*" (which would take acme-corp's files for acme's).
  for file in "$BACKUP_ROOT/$slug/$slug"-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z.db.*; do
    [[ $file =~ /$slug-([0-9]{8}T[0-9]{6}Z)\.db\.(zst|gz)$ ]] || continue
    [[ -z $newest || ${file##*/} > ${newest##*/} ]] && newest=$file
  done
  last_good=null
  if [[ -n $newest ]]; then
    [[ ${newest##*/} =~ ([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z ]]
    stamp="${BASH_REMATCH[1]}-${BASH_REMATCH[2]}-${BASH_REMATCH[3]}T${BASH_REMATCH[4]}:${BASH_REMATCH[5]}:${BASH_REMATCH[6]}Z"
    last_good=$(printf '{"time":"%s","file":"%s","sizeBytes":%s}' "$stamp" "${newest##*/}" "$(stat -c %s "$newest" 2>/dev/null || echo null)")
  fi
  last_run=null
  record="$STATE_DIR/backup/$slug.json"
  [[ -f $record ]] && last_run=$(jq -c 'if type == "object" then . else null end' "$record" 2>/dev/null || echo null)
  [[ -n $last_run ]] || last_run=null
  timer=false
  [[ -e $TIMERS_DIR/mai-backup@$slug.timer ]] && timer=true
  printf '{"slug":"%s","timerEnabled":%s,"lastRun":%s,"lastGood":%s}\n' "$slug" "$timer" "$last_run" "$last_good" >>"$WORK/backups.jsonl"
done

# --- certificates in Caddy's storage ---------------------------------------------------------------
proxy_id=$(jq -r '[.[] | select(.Config.Labels["mai.role"] == "proxy")][0].Id // empty' "$WORK/inspect.json")
cert_source=none
if [[ -z $CERT_DIR && -n $docker_version ]]; then
  mountpoint=$("$DOCKER" volume inspect -f '{{.Mountpoint}}' "$CADDY_VOLUME" 2>/dev/null)
  if [[ -n $mountpoint && -r $mountpoint/caddy/certificates ]]; then
    CERT_DIR=$mountpoint/caddy/certificates
  elif [[ -n $proxy_id ]] && mkdir -p "$WORK/certs" &&
    "$DOCKER" cp "$proxy_id:/data/caddy/certificates" - 2>/dev/null | tar -x -C "$WORK/certs" 2>/dev/null; then
    CERT_DIR=$WORK/certs/certificates
  fi
fi
: >"$WORK/certs.jsonl"
if [[ -n $CERT_DIR && -d $CERT_DIR ]]; then
  cert_source=caddy
  if command -v openssl >/dev/null; then
    while IFS= read -r -d '' crt; do
      rel=${crt#"$CERT_DIR"/}
      issuer=${rel%%/*}
      host=$(basename "$(dirname "$crt")")
      end=$(openssl x509 -noout -enddate -in "$crt" 2>/dev/null | sed 's/^notAfter=//')
      [[ -n $end ]] || continue
      end_epoch=$(date -u -d "$end" +%s 2>/dev/null) || continue
      printf '{"hostname":"%s","issuer":"%s","notAfter":"%s","notAfterEpoch":%s}\n' \
        "$host" "$issuer" "$(date -u -d "@$end_epoch" +%Y-%m-%dT%H:%M:%SZ)" "$end_epoch" >>"$WORK/certs.jsonl"
    done < <(find "$CERT_DIR" -type f -name '*.crt' -print0 2>/dev/null)
  else
    cert_source=no-openssl
  fi
fi

[[ -n $stats_pid ]] && wait "$stats_pid"

# --- one document ---------------------------------------------------------------------------------
jq -n \
  --arg hostname "$(hostname)" \
  --arg dockerVersion "$docker_version" \
  --argjson memTotal "${mem_total:-0}" --argjson memAvailable "${mem_available:-0}" \
  --argjson load "[${load1:-0},${load5:-0},${load15:-0}]" --argjson cpus "$(nproc)" \
  --arg certSource "$cert_source" --arg expectProxy "$EXPECT_PROXY" \
  --argjson diskPercent "$ALERT_DISK_PERCENT" --argjson backupHours "$ALERT_BACKUP_MAX_AGE_HOURS" \
  --argjson certDays "$ALERT_CERT_DAYS" --argjson restartCount "$ALERT_RESTART_COUNT" \
  --argjson restartWindow "$ALERT_RESTART_WINDOW_MINUTES" \
  --slurpfile inspect "$WORK/inspect.json" \
  --slurpfile stats <(cat "$WORK/stats.jsonl") \
  --slurpfile volumes "$WORK/volumes.json" \
  --rawfile du "$WORK/du.txt" \
  --rawfile oom "$WORK/oom.txt" \
  --rawfile sampled "$WORK/sampled.tsv" --arg usageSource "$usage_source" \
  --slurpfile backups <(cat "$WORK/backups.jsonl") \
  --slurpfile certs <(cat "$WORK/certs.jsonl") \
  --slurpfile disks <(cat "$WORK/disks.jsonl") '
  # RFC 3339 with optional fraction and offset -> seconds; Docker writes 0001-01-01 for "never".
  def epoch: if . == null or . == "" or startswith("0001-") then null
    else (capture("^(?<base>[0-9-]+T[0-9:]+)(\\.[0-9]+)?(?<tz>Z|[+-][0-9]{2}:?[0-9]{2})$") // null) as $p
      | if $p == null then null
        else ($p.base + "Z" | fromdateiso8601) - (if $p.tz == "Z" then 0 else
          ($p.tz | gsub(":"; "")) as $tz | ($tz[1:3] | tonumber) * 3600 + ($tz[3:5] | tonumber) * 60
          | if $tz[0:1] == "-" then -. else . end end) end end;
  def iso: if . == null then null else (floor | todate) end;
  # "1.5GiB" / "512kB" -> bytes (docker stats prints binary units for memory).
  def bytes: (capture("^(?<n>[0-9.]+)\\s*(?<u>[A-Za-z]*)$") // null) as $m
    | if $m == null then null else ($m.n | tonumber) * ({"B":1,"":1,"KiB":1024,"MiB":1048576,"GiB":1073741824,"TiB":1099511627776,
      "kB":1000,"KB":1000,"MB":1000000,"GB":1000000000,"TB":1000000000000}[$m.u] // 1) | floor end;
  def percent: if . == null then null else (rtrimstr("%") | tonumber? // null) end;

  now as $now
  | ($stats | map({key: .ID, value: .}) | from_entries) as $statsById
  | ($sampled | split("\n") | map(select(. != "") | split("\t")
      | {key: .[0], value: {CPUPerc: .[1], MemUsage: "\(.[2])B / ?", at: (.[3] | tonumber)}}) | from_entries) as $sampledBySlug
  | ($oom | split("\n") | map(select(. != "") | split("\t") | {key: .[0], value: (.[1] | tonumber)}) | from_entries) as $oomById
  | ($du | split("\n") | map(select(. != "") | split("\t") | {key: .[0], value: (.[1] | tonumber)}) | from_entries) as $duByPath
  | ($inspect[0] | map(
      (if .State.Running | not then null
        elif $usageSource == "sampler" then $sampledBySlug[.Config.Labels["mai.client"] // ""]
        else $statsById[.Id] end // null) as $s
      | {
          name: (.Name | ltrimstr("/")),
          id: .Id[0:12],
          slug: (.Config.Labels["mai.client"] // null),
          role: (if .Config.Labels["mai.role"] == "proxy" then "proxy" else "client" end),
          image: .Config.Image,
          state: .State.Status,
          health: (.State.Health.Status // "none"),
          restartCount: .RestartCount,
          oomKilled: .State.OOMKilled,
          oomKills: ($oomById[.Id] // null),
          exitCode: .State.ExitCode,
          startedAt: (.State.StartedAt | epoch | iso),
          finishedAt: (.State.FinishedAt | epoch | iso),
          uptimeSeconds: (if .State.Running then ($now - (.State.StartedAt | epoch)) | floor else null end),
          cpuPercent: ($s.CPUPerc | percent),
          memoryBytes: (if $s == null then null else ($s.MemUsage | split(" / ")[0] | bytes) end),
          memoryLimitBytes: (if .HostConfig.Memory > 0 then .HostConfig.Memory
            elif $s == null then null else ($s.MemUsage | split(" / ")[1] | bytes) end),
          memoryReservationBytes: (if .HostConfig.MemoryReservation > 0 then .HostConfig.MemoryReservation else null end),
          cpuLimit: (if .HostConfig.NanoCpus > 0 then .HostConfig.NanoCpus / 1e9 else null end),
          cpuShares: (if .HostConfig.CpuShares > 0 then .HostConfig.CpuShares else null end)
        })) as $containers
  | ($volumes[0] | map({
      key: (.Name | capture("^mai-(?<s>.+)-data$").s),
      value: {name: .Name, createdAt: (.CreatedAt | epoch | iso), sizeBytes: ($duByPath[.Mountpoint] // null)}
    }) | from_entries) as $volumeBySlug
  | ($backups | map({key: .slug, value: del(.slug)}) | from_entries) as $backupBySlug
  | ([$containers[] | select(.role == "client") | .slug] + ($volumeBySlug | keys) | unique) as $slugs
  | [ $slugs[] as $slug | {
      slug: $slug,
      container: ([$containers[] | select(.role == "client" and .slug == $slug)] | sort_by(.startedAt) | last),
      containers: ([$containers[] | select(.role == "client" and .slug == $slug)] | length),
      volume: ($volumeBySlug[$slug] // null),
      backup: (($backupBySlug[$slug] // {timerEnabled: false, lastRun: null, lastGood: null})
        | .ageHours = (if .lastGood == null then null else (($now - (.lastGood.time | epoch)) / 3600 * 10 | floor / 10) end))
    } ] as $clients
  | ([$containers[] | select(.role == "proxy")] | sort_by(.startedAt) | last) as $proxy
  | ($certs | map(. + {daysLeft: ((.notAfterEpoch - $now) / 86400 * 10 | floor / 10),
      internal: (.issuer == "local")} | del(.notAfterEpoch)) | sort_by(.hostname)) as $certificates
  | ($disks | map(. + {usedPercent: (if .sizeBytes > 0 then (.usedBytes * 1000 / .sizeBytes | floor) / 10 else 0 end)})) as $diskList
  | {
      schema: 1,
      generatedAt: ($now | iso),
      host: {
        hostname: $hostname,
        cpus: $cpus,
        load: $load,
        memory: {totalBytes: $memTotal, availableBytes: $memAvailable},
        disks: $diskList,
        docker: {running: ($dockerVersion != ""), version: (if $dockerVersion == "" then null else $dockerVersion end)}
      },
      usage: {source: $usageSource,
        sampledAt: (if $usageSource == "sampler" then ([$sampledBySlug[].at] | max | iso) else null end)},
      proxy: $proxy,
      clients: $clients,
      certificates: {source: $certSource, list: $certificates},
      thresholds: {diskPercent: $diskPercent, backupMaxAgeHours: $backupHours, certificateDays: $certDays,
        restartCount: $restartCount, restartWindowMinutes: $restartWindow}
    }
  | .conditions = (
      [ if .host.docker.running then empty else
          {key: "docker-down", condition: "docker-down", subject: "docker", message: "the Docker daemon does not answer"} end ]
      + [ if (.host.docker.running | not) or $expectProxy == "no" then empty
          elif .proxy == null then {key: "proxy-down", condition: "proxy-down", subject: "proxy", message: "no proxy container (label mai.role=proxy)"}
          elif .proxy.state != "running" then {key: "proxy-down", condition: "proxy-down", subject: .proxy.name, message: "proxy \(.proxy.name) is \(.proxy.state)"}
          elif .proxy.health == "unhealthy" then {key: "proxy-down", condition: "proxy-down", subject: .proxy.name, message: "proxy \(.proxy.name) is unhealthy"}
          else empty end ]
      + [ .clients[] | .slug as $slug | .container as $c | select($c != null) |
          ( if $c.state == "restarting" or ($c.restartCount >= $restartCount and $c.uptimeSeconds != null and $c.uptimeSeconds < $restartWindow * 60)
              then {key: "restarting:\($slug)", condition: "restarting", subject: $slug,
                    message: "\($c.name) is restarting in a loop (\($c.restartCount) restarts, state \($c.state))"}
            elif $c.state != "running" then {key: "container-down:\($slug)", condition: "container-down", subject: $slug,
                    message: "\($c.name) is \($c.state) (exit code \($c.exitCode))"}
            else empty end ),
          ( if $c.health == "unhealthy" then {key: "unhealthy:\($slug)", condition: "unhealthy", subject: $slug,
                    message: "\($c.name) fails its health check"} else empty end ),
          # Docker keeps the flag after the restart: it counts until the container has run a
          # restart window without one. The kernel counter covers the current run only.
          ( if ($c.oomKilled and ($c.state != "running" or ($c.uptimeSeconds // 0) < $restartWindow * 60)) or ($c.oomKills // 0) > 0 then {key: "oom-killed:\($slug)", condition: "oom-killed", subject: $slug,
                    message: "\($c.name) hit its memory limit of \(($c.memoryLimitBytes // 0) / 1048576 | floor) MiB: \(if $c.oomKilled then "its main process was OOM-killed" else "\($c.oomKills) process(es) OOM-killed since it started" end)"} else empty end ) ]
      + [ .clients[] | .slug as $slug | .backup as $b | select($b.timerEnabled) |
          ( if $b.lastRun != null and $b.lastRun.result != "ok" and $b.lastRun.result != "busy"
              then {key: "backup-failed:\($slug)", condition: "backup-failed", subject: $slug,
                    message: "last backup of \($slug) failed at \($b.lastRun.time) (exit \($b.lastRun.exitCode)): \($b.lastRun.message // "")"} else empty end ),
          ( if $b.lastGood == null then
              (if .volume != null and .volume.createdAt != null and ($now - (.volume.createdAt | epoch)) > $backupHours * 3600
                then {key: "backup-stale:\($slug)", condition: "backup-stale", subject: $slug,
                      message: "\($slug) has no backup yet (data volume created \(.volume.createdAt))"} else empty end)
            elif $b.ageHours > $backupHours then {key: "backup-stale:\($slug)", condition: "backup-stale", subject: $slug,
                    message: "last good backup of \($slug) is \($b.ageHours) h old (\($b.lastGood.time))"}
            else empty end ) ]
      + [ .host.disks[] | select(.usedPercent > $diskPercent) |
          {key: "disk:\(.mount)", condition: "disk-full", subject: .mount, message: "disk \(.mount) is \(.usedPercent) % full"} ]
      + [ .certificates.list[] | select((.internal | not) and .daysLeft < $certDays) |
          {key: "certificate:\(.hostname)", condition: "certificate-expiring", subject: .hostname,
           message: "certificate of \(.hostname) expires in \(.daysLeft) days (\(.notAfter))"} ]
    )
  | .healthy = (.conditions | length == 0)
'
