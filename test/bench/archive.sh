#!/usr/bin/env bash
# Benchmark of the archive: how much smaller the archived rows of a
# realistic event table are than the same rows in the heap, at several zstd
# levels, with and without a dictionary for small batches, and what an
# archive pass costs next to the run that merged the rows.  See README.md.
#
#   bash test/bench/archive.sh
#
# As root: installs what is missing, builds and installs the extension.
# Environment: ARCHIVE_ROWS (300000) events; ARCHIVE_SMALL_ROWS (50000)
# events of the small-batch rounds; BENCH_BUILD, BENCH_PORT (55473).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

ROWS=${ARCHIVE_ROWS:-300000}
SMALL_ROWS=${ARCHIVE_SMALL_ROWS:-50000}
PORT=${BENCH_PORT:-55473}
bench_setup

start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline'
log_min_messages = warning
shared_buffers = '512MB'
work_mem = '64MB'
max_wal_size = '8GB'
checkpoint_timeout = '30min'
autovacuum = off
synchronous_commit = on
jit = off
pipeline.archive_interval = -1"

bench_clients bench
bench_results archive

# timed STATEMENT: the milliseconds the statement took (psql's \timing).
timed() {
    { echo '\timing on'; echo "$1"; } | sql | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1
}

as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'
# Events as a product's tracking collects them: ids, two timestamps, a
# source, and a JSON payload of about 450 bytes (event type, session, user,
# device, page, properties, a random trace id), generated deterministically.
sql -v rows="$ROWS" >/dev/null <<'SQL'
CREATE EXTENSION pipeline;
SELECT setseed(0.42);
CREATE TABLE events_gen AS
SELECT g AS event_id, t AS occurred_at,
       t + floor(random() * 5000)::int * interval '1 millisecond' AS received_at,
       (ARRAY['web', 'ios', 'android', 'backend'])[1 + g % 4] AS source,
       jsonb_build_object(
         'type', (ARRAY['page_view', 'page_view', 'page_view', 'click', 'add_to_cart', 'search',
                        'purchase', 'login'])[1 + floor(random() * 8)::int],
         'session', md5('session ' || (g / 25)),
         'user', jsonb_build_object('id', 1 + floor(random() * 50000)::int,
                                    'country', (ARRAY['DE', 'FR', 'US', 'GB', 'JP', 'BR', 'IN', 'ES'])[1 + floor(random() * 8)::int],
                                    'plan', (ARRAY['free', 'free', 'free', 'pro', 'team'])[1 + floor(random() * 5)::int]),
         'device', jsonb_build_object('os', (ARRAY['Windows 11', 'macOS 14.4', 'iOS 17.4', 'Android 14', 'Linux'])[1 + floor(random() * 5)::int],
                                      'browser', (ARRAY['Chrome 123.0', 'Firefox 124.0', 'Safari 17.4', 'Edge 123.0'])[1 + floor(random() * 4)::int],
                                      'screen', (ARRAY['1920x1080', '2560x1440', '390x844', '1366x768'])[1 + floor(random() * 4)::int]),
         'page', jsonb_build_object('url', 'https://shop.example.com/'
                                           || (ARRAY['products', 'category', 'cart', 'search', 'account'])[1 + floor(random() * 5)::int]
                                           || '/' || floor(random() * 5000)::int,
                                    'referrer', (ARRAY['https://www.google.com/', 'https://t.co/', '', 'https://news.ycombinator.com/'])[1 + floor(random() * 4)::int],
                                    'title', 'Product ' || floor(random() * 5000)::int || ' - Example Shop'),
         'properties', jsonb_build_object('price', round((random() * 500)::numeric, 2), 'currency', 'EUR',
                                          'quantity', 1 + floor(random() * 3)::int,
                                          'sku', 'SKU-' || lpad(floor(random() * 100000)::text, 6, '0')),
         'trace_id', md5(random()::text),
         'client_ts', to_char(t, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) AS payload
  FROM generate_series(1, :rows) g,
       LATERAL (SELECT timestamptz '2026-11-01 00:00:00+00' + g * interval '250 milliseconds'
                       + floor(random() * 1000)::int * interval '1 millisecond') x(t);
SQL

say "pipeline archive benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(sql -Atc 'SELECT version()' | cut -d, -f1), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "events: $ROWS rows (event_id bigint, occurred_at, received_at timestamptz, source text, payload jsonb of $(sql -Atc 'SELECT round(avg(octet_length(payload::text))) FROM events_gen') bytes as text)"
say ""

# round ROWS LEVEL BATCH_ROWS DICTIONARY_SIZE [ARCHIVE]: a fresh staging
# table of the first ROWS events, merged by a run (a merge pipeline by
# event_id), then archived (or with ARCHIVE false only deleted) by one
# pass.  Sets merge_ms, archive_ms, heap (bytes of the table's heap), total
# (with its index), raw, compressed, dict, batches.
round() {
    sql >/dev/null <<SQL
SELECT pipeline.drop_pipeline('events', if_exists => true);
DROP TABLE IF EXISTS events, events_merged;
DELETE FROM pipeline.archive_batches;
DELETE FROM pipeline.archive_dictionaries;
CREATE TABLE events (event_id bigint, occurred_at timestamptz, received_at timestamptz,
                     source text, payload jsonb);
SELECT pipeline.create_pipeline('events', 'events', 'events_merged', key => ARRAY['event_id'],
                                sequence_by => 'received_at');
INSERT INTO events SELECT * FROM events_gen WHERE event_id <= $1;
SELECT pipeline.set_retention('events', keep => '0', compression_level => $2, batch_rows => $3,
                              dictionary_size => $4, archive => ${5:-true});
VACUUM ANALYZE events;
CHECKPOINT;
SQL
    merge_ms=$(timed "CALL pipeline.run('events');")
    sql -c 'CHECKPOINT' >/dev/null
    heap=$(sql -Atc "SELECT pg_relation_size('events')")
    total=$(sql -Atc "SELECT pg_total_relation_size('events')")
    archive_ms=$(timed "SELECT * FROM pipeline.archive('events');")
    read -r raw compressed batches dict < <(sql -At -F ' ' -c "
        SELECT coalesce(sum(raw_bytes), 0), coalesce(sum(compressed_bytes), 0), count(*),
               coalesce((SELECT sum(octet_length(dictionary)) FROM pipeline.archive_dictionaries), 0)
          FROM pipeline.archive_batches")
    [ "$(sql -Atc 'SELECT count(*) FROM events')" = 0 ] || { echo "rows left in the staging table" >&2; exit 1; }
}

ratio() { awk "BEGIN {printf \"%.1f\", $1 / $2}"; }
mb() { awk "BEGIN {printf \"%.1f MB\", $1 / 1048576}"; }

say "1. $ROWS events, batches of 10,000 rows: heap size against archived size"
for level in 1 3 9 19; do
    echo "level $level..."
    round "$ROWS" "$level" 10000 0
    [ "$level" = 3 ] && { merge3=$merge_ms; archive3=$archive_ms; }
    say "   level $(printf '%-2s' $level): heap $(mb "$heap") ($(mb "$total") with its index), archived $(mb "$compressed") in $batches batches (uncompressed $(mb "$raw"));" \
        "heap / archived $(ratio "$heap" "$compressed")x, heap and index / archived $(ratio "$total" "$compressed")x; pass $(printf '%.0f' "$archive_ms") ms"
done
say ""
echo "retention without archive..."
round "$ROWS" 3 10000 0 false
say "2. cost of archiving, level 3: merge run $(printf '%.0f' "$merge3") ms, archive pass $(printf '%.0f' "$archive3") ms:" \
    "archive / merge = $(awk "BEGIN {printf \"%.2f\", $archive3 / $merge3}")"
say "   the same rows deleted without archive (archive => false): merge run $(printf '%.0f' "$merge_ms") ms," \
    "pass $(printf '%.0f' "$archive_ms") ms: delete / merge = $(awk "BEGIN {printf \"%.2f\", $archive_ms / $merge_ms}")"
say ""
say "3. $SMALL_ROWS events, small batches, level 3: without and with a dictionary (its bytes counted)"
for batch in 10 100; do
    for dict in 0 16384 65536; do
        echo "batches of $batch, dictionary $dict..."
        round "$SMALL_ROWS" 3 "$batch" "$dict"
        say "   batches of $(printf '%3s' "$batch") rows, dictionary $(printf '%6s' "$dict") bytes: heap $(mb "$heap"), archived $(mb "$compressed") + dictionary $(mb "$dict");" \
            "heap / archived $(ratio "$heap" "$((compressed + dict))")x; pass $(printf '%.0f' "$archive_ms") ms"
    done
done
say "results written to $OUT"
