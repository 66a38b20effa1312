#!/usr/bin/env bash
# mai-sample: record each mAI client container's CPU and memory use, for right-sizing.
# Installed as /usr/local/sbin/mai-sample; mai-sample.timer runs it every minute.
#
#   mai-sample               take one sample of every running client container, then prune
#   mai-sample --summary     per client, over the stored window: sample count, first and last
#                            time, CPU % and memory bytes at the 95th percentile (nearest rank)
#                            and at the maximum, the last memory limit; one JSON document
#
# Store: SQLite table `samples(ts, slug, cpu_percent, memory_bytes, memory_limit_bytes)`, one row
# per client per run (about 1440 a day per client). Rows older than the retention are deleted on
# every run, so the store never holds more than the retention window.
# CPU % is Docker's: 100 = one full vCPU.
#
# Environment (production defaults; the tests run this very script):
#   MAI_DOCKER (docker), MAI_LABEL_FILTER (extra label=... filter), MAI_STATE_DIR (/var/lib/mai),
#   MAI_SAMPLES_DB ($MAI_STATE_DIR/samples.db), MAI_SAMPLE_RETENTION_DAYS (14), MAI_NOW (epoch
#   seconds used as "now", for tests of the retention)
set -uo pipefail
umask 077

DOCKER=${MAI_DOCKER:-docker}
LABEL_FILTER=${MAI_LABEL_FILTER:-}
STATE_DIR=${MAI_STATE_DIR:-/var/lib/mai}
DB=${MAI_SAMPLES_DB:-$STATE_DIR/samples.db}
RETENTION_DAYS=${MAI_SAMPLE_RETENTION_DAYS:-14}
NOW=${MAI_NOW:-$(date -u +%s)}

fail() { echo "mai-sample: $*" >&2; exit 1; }
[[ $RETENTION_DAYS =~ ^[1-9][0-9]{0,3}$ ]] || fail "MAI_SAMPLE_RETENTION_DAYS must be a whole number of days >= 1 (got '$RETENTION_DAYS')"
[[ $NOW =~ ^[0-9]+$ ]] || fail "MAI_NOW must be epoch seconds"
for tool in sqlite3 jq; do command -v "$tool" >/dev/null || fail "'$tool' is not installed"; done

sq() { sqlite3 -batch -init /dev/null "$@" </dev/null; }

SCHEMA="PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS samples (
  ts INTEGER NOT NULL, slug TEXT NOT NULL, cpu_percent REAL NOT NULL,
  memory_bytes INTEGER NOT NULL, memory_limit_bytes INTEGER);
CREATE INDEX IF NOT EXISTS samples_slug_ts ON samples (slug, ts);
CREATE INDEX IF NOT EXISTS samples_ts ON samples (ts);"
cutoff=$((NOW - RETENTION_DAYS * 86400))

if [[ ${1:-} == --summary ]]; then
  if [[ ! -f $DB ]]; then
    printf '{"retentionDays":%d,"clients":[]}\n' "$RETENTION_DAYS"
    exit 0
  fi
  # Nearest-rank percentile: the smallest value with at least 95 % of the samples at or below it.
  # One pass: each row's rank by CPU and by memory within its client, then per client the
  # smallest value ranked at or above 95 %.
  rows=$(sq -json "$DB" "
    WITH ranked AS (
      SELECT slug, ts, cpu_percent, memory_bytes,
        ROW_NUMBER() OVER (PARTITION BY slug ORDER BY cpu_percent) AS cpu_rank,
        ROW_NUMBER() OVER (PARTITION BY slug ORDER BY memory_bytes) AS memory_rank,
        COUNT(*) OVER (PARTITION BY slug) AS n
      FROM samples WHERE ts >= $cutoff)
    SELECT slug, MAX(n) AS samples, MIN(ts) AS first, MAX(ts) AS last,
      MIN(CASE WHEN cpu_rank * 100 >= n * 95 THEN cpu_percent END) AS cpuP95,
      MAX(cpu_percent) AS cpuMax,
      MIN(CASE WHEN memory_rank * 100 >= n * 95 THEN memory_bytes END) AS memoryP95,
      MAX(memory_bytes) AS memoryMax,
      (SELECT memory_limit_bytes FROM samples l WHERE l.slug = ranked.slug ORDER BY ts DESC LIMIT 1) AS memoryLimit
    FROM ranked GROUP BY slug ORDER BY slug;") || fail "cannot read $DB"
  jq -c -n --argjson retention "$RETENTION_DAYS" --argjson rows "${rows:-[]}" '{
    retentionDays: $retention, percentile: 95,
    clients: [$rows[] | {slug, samples, first: (.first | todate), last: (.last | todate),
      cpuPercent: {p95: .cpuP95, max: .cpuMax}, memoryBytes: {p95: .memoryP95, max: .memoryMax},
      memoryLimitBytes: .memoryLimit}]}'
  exit 0
fi
[[ $# -eq 0 ]] || fail "usage: mai-sample [--summary]"

mkdir -p "$(dirname "$DB")" || fail "cannot create $(dirname "$DB")"
filters=(--filter label=mai.client --filter status=running)
[[ -n $LABEL_FILTER ]] && filters+=(--filter "label=$LABEL_FILTER")
mapfile -t ids < <("$DOCKER" ps -q --no-trunc "${filters[@]}") || fail "docker ps failed"

inserts=
if ((${#ids[@]} > 0)); then
  # Slug by container id from the label; CPU and memory from one `docker stats` reading.
  labels=$("$DOCKER" inspect --format '{{.Id}} {{index .Config.Labels "mai.client"}}' "${ids[@]}") || fail "docker inspect failed"
  stats=$("$DOCKER" stats --no-stream --no-trunc --format '{{json .}}' "${ids[@]}") || fail "docker stats failed"
  inserts=$(jq -r -n --arg labels "$labels" --arg now "$NOW" --arg stats "$stats" '
    def bytes: (capture("^(?<n>[0-9.]+)\\s*(?<u>[A-Za-z]*)$") // null) as $m
      | if $m == null then null else ($m.n | tonumber) * ({"B":1,"":1,"KiB":1024,"MiB":1048576,"GiB":1073741824,"TiB":1099511627776,
        "kB":1000,"KB":1000,"MB":1000000,"GB":1000000000,"TB":1000000000000}[$m.u] // 1) | floor end;
    ($labels | split("\n") | map(select(. != "") | split(" ") | {key: .[0], value: .[1]}) | from_entries) as $slugs
    | $stats | split("\n")[] | select(. != "") | fromjson
    | ($slugs[.ID] // empty) as $slug
    | select($slug | test("^[a-z0-9-]+$"))
    | (.MemUsage | split(" / ")) as $mem
    | "INSERT INTO samples VALUES (\($now), '\''\($slug)'\'', \(.CPUPerc | rtrimstr("%") | tonumber? // 0), \($mem[0] | bytes // 0), \($mem[1] | bytes // "NULL"));"') ||
    fail "cannot parse docker stats"
fi

sq -cmd ".timeout 10000" "$DB" "$SCHEMA
BEGIN;
$inserts
DELETE FROM samples WHERE ts < $cutoff;
COMMIT;" >/dev/null || fail "cannot write $DB"
