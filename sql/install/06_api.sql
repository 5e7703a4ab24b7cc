/* ---------------------------------------------------------------- API */

CREATE FUNCTION pipeline.create_pipeline(
    name                text,
    source              regclass,
    target              text,
    key                 text[] DEFAULT NULL,
    strategy            text DEFAULT 'merge',
    sequence_by         text DEFAULT NULL,
    delete_when         text DEFAULT NULL,
    columns             jsonb DEFAULT '{}',
    filter              text DEFAULT NULL,
    on_schema_change    text DEFAULT 'ignore',
    batch_size          bigint DEFAULT 100000,
    schedule            text DEFAULT 'manual',
    tombstone_retention interval DEFAULT '7 days',
    statement_timeout   interval DEFAULT NULL,
    track_history       text[] DEFAULT NULL,
    source_key          text[] DEFAULT NULL,
    group_filter        text DEFAULT NULL,
    joins               jsonb DEFAULT NULL,
    format              text DEFAULT NULL,
    ignore_null_updates text[] DEFAULT NULL,
    except_columns      text[] DEFAULT NULL,
    hard_deletes        text DEFAULT NULL,
    max_delete_share    real DEFAULT NULL,
    on_truncate         text DEFAULT NULL,
    extract_id          text DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'pipeline_create_pipeline'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.create_pipeline(text, regclass, text, text[], text, text, text, jsonb, text, text, bigint, text, interval, interval, text[], text[], text, jsonb, text, text[], text[], text, real, text, text) IS
    'defines a pipeline from a staging table to a curated table (created from the mapping when missing); returns its id';

CREATE FUNCTION pipeline.alter_pipeline(
    name                text,
    key                 text[] DEFAULT NULL,
    sequence_by         text DEFAULT NULL,
    delete_when         text DEFAULT NULL,
    columns             jsonb DEFAULT NULL,
    filter              text DEFAULT NULL,
    on_schema_change    text DEFAULT NULL,
    batch_size          bigint DEFAULT NULL,
    schedule            text DEFAULT NULL,
    tombstone_retention interval DEFAULT NULL,
    new_name            text DEFAULT NULL,
    statement_timeout   interval DEFAULT NULL,
    track_history       text[] DEFAULT NULL)
    RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_alter_pipeline'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.alter_pipeline(text, text[], text, text, jsonb, text, text, bigint, text, interval, text, interval, text[]) IS
    'changes the given settings of a pipeline (NULL keeps a setting; an empty string clears sequence_by, delete_when and filter, statement_timeout 0 removes the limit, an empty track_history restores the default)';

CREATE FUNCTION pipeline.next_run_after(schedule text, after timestamptz DEFAULT now())
    RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'pipeline_next_run_after'
    LANGUAGE C STABLE STRICT PARALLEL UNSAFE;  -- parsing an interval uses a subtransaction
COMMENT ON FUNCTION pipeline.next_run_after(text, timestamptz) IS
    'when a schedule (an interval or cron text, UTC) runs next after a time; NULL for manual and continuous; checks the schedule';

CREATE FUNCTION pipeline.drop_pipeline(name text, if_exists boolean DEFAULT false)
    RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_drop_pipeline'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.drop_pipeline(text, boolean) IS
    'removes a pipeline, its cursor, history, quarantine and tombstones; source and target tables stay';

CREATE FUNCTION pipeline.prepare_source(source regclass) RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_prepare_source'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION pipeline.prepare_source(regclass) IS
    'makes a table a pipeline source: adds _xid and _seq with their defaults and an index (create_pipeline does this itself when its caller owns the table)';

CREATE FUNCTION pipeline.pause(name text) RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_pause'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION pipeline.pause(text) IS
    'stops a pipeline from running until resume(); staged rows keep accumulating';

CREATE FUNCTION pipeline.resume(name text) RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_resume'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION pipeline.resume(text) IS
    'lets a paused pipeline run again';

/*
 * run is a procedure so that a large backlog commits batch by batch (CALL
 * outside a transaction block).  Called inside a transaction block it still
 * works, in that one transaction.  The INOUT parameters are its result row.
 */
CREATE PROCEDURE pipeline.run(
    pipeline_name       text,
    max_rows            bigint DEFAULT NULL,
    INOUT run_id        bigint DEFAULT NULL,
    INOUT status        text DEFAULT NULL,
    INOUT rows_read     bigint DEFAULT NULL,
    INOUT rows_inserted bigint DEFAULT NULL,
    INOUT rows_updated  bigint DEFAULT NULL,
    INOUT rows_deleted  bigint DEFAULT NULL,
    INOUT rows_stale    bigint DEFAULT NULL,
    INOUT rows_filtered bigint DEFAULT NULL,
    INOUT rows_quarantined bigint DEFAULT NULL,
    INOUT batches       integer DEFAULT NULL)
    AS 'MODULE_PATHNAME', 'pipeline_run'
    LANGUAGE C;
COMMENT ON PROCEDURE pipeline.run(text, bigint, bigint, text, bigint, bigint, bigint, bigint, bigint, bigint, bigint, integer) IS
    'merges the pipeline''s pending staged rows (at most max_rows) into its target, exactly once; returns the run''s counts';

CREATE PROCEDURE pipeline.requeue_quarantine(
    pipeline_name       text,
    ids                 bigint[] DEFAULT NULL,
    INOUT run_id        bigint DEFAULT NULL,
    INOUT status        text DEFAULT NULL,
    INOUT rows_read     bigint DEFAULT NULL,
    INOUT rows_inserted bigint DEFAULT NULL,
    INOUT rows_updated  bigint DEFAULT NULL,
    INOUT rows_deleted  bigint DEFAULT NULL,
    INOUT rows_stale    bigint DEFAULT NULL,
    INOUT rows_filtered bigint DEFAULT NULL,
    INOUT rows_quarantined bigint DEFAULT NULL,
    INOUT batches       integer DEFAULT NULL)
    AS 'MODULE_PATHNAME', 'pipeline_requeue_quarantine'
    LANGUAGE C;
COMMENT ON PROCEDURE pipeline.requeue_quarantine(text, bigint[], bigint, text, bigint, bigint, bigint, bigint, bigint, bigint, bigint, integer) IS
    'puts quarantined rows (all of the pipeline''s, or the given ids) back through the pipeline; rows that fail again are quarantined anew';

/*
 * replay merges again the rows that earlier runs consumed, from the archive
 * and from the staging table, without moving the cursor (see replay.c).
 */
CREATE PROCEDURE pipeline.replay(
    pipeline_name       text,
    since               timestamptz DEFAULT NULL,
    until               timestamptz DEFAULT NULL,
    first_run           bigint DEFAULT NULL,
    last_run            bigint DEFAULT NULL,
    INOUT run_id        bigint DEFAULT NULL,
    INOUT status        text DEFAULT NULL,
    INOUT rows_read     bigint DEFAULT NULL,
    INOUT rows_inserted bigint DEFAULT NULL,
    INOUT rows_updated  bigint DEFAULT NULL,
    INOUT rows_deleted  bigint DEFAULT NULL,
    INOUT rows_stale    bigint DEFAULT NULL,
    INOUT rows_filtered bigint DEFAULT NULL,
    INOUT rows_quarantined bigint DEFAULT NULL,
    INOUT batches       integer DEFAULT NULL)
    AS 'MODULE_PATHNAME', 'pipeline_replay'
    LANGUAGE C;
COMMENT ON PROCEDURE pipeline.replay(text, timestamptz, timestamptz, bigint, bigint, bigint, text, bigint, bigint, bigint, bigint, bigint, bigint, bigint, integer) IS
    'merges again, through the pipeline''s current definition, the rows its runs started in [since, until) and numbered first_run to last_run consumed (archived or still staged); the cursor stays';

CREATE FUNCTION pipeline.discard_quarantine(pipeline_name text, ids bigint[] DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'pipeline_discard_quarantine'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.discard_quarantine(text, bigint[]) IS
    'deletes quarantined rows of a pipeline (all, or the given ids); returns how many';

/* Internal: watch a batch statement row by row (poison-row isolation, tallies; see row_watch.c). */
CREATE FUNCTION pipeline.mark_row(xid8, bigint) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pipeline_mark_row'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION pipeline.mark_row(xid8, bigint) IS
    'internal: records the staged row being evaluated so that a failing row can be quarantined';
CREATE FUNCTION pipeline.mark_value(xid8, bigint, anyelement) RETURNS anyelement
    AS 'MODULE_PATHNAME', 'pipeline_mark_value'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pipeline.mark_value(xid8, bigint, anyelement) IS
    'internal: records the row being written and returns the value unchanged';

CREATE TYPE pipeline.debezium_event AS (
    op      text,
    record  jsonb,
    lsn     bigint,
    ts_ms   bigint,
    source  jsonb,
    before  jsonb,
    after   jsonb);
COMMENT ON TYPE pipeline.debezium_event IS
    'a Debezium change event as a pipeline with format => ''debezium'' reads it';
CREATE FUNCTION pipeline.debezium_event(event jsonb, known_columns text[] DEFAULT NULL,
                                        apply_truncates boolean DEFAULT false)
    RETURNS pipeline.debezium_event
    AS 'MODULE_PATHNAME', 'pipeline_debezium_event'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION pipeline.debezium_event(jsonb, text[], boolean) IS
    'reads a Debezium change event (envelope, with or without schema, or flattened record; NULL: a tombstone): its op, its row (after, or before for a delete; {} for a truncate, an error unless apply_truncates) with logical types decoded, lsn, ts_ms, source and images; errors for an event it cannot follow exactly';

CREATE FUNCTION pipeline.allow_extract(pipeline_name text, extract_xid xid8) RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_allow_extract'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.allow_extract(text, xid8) IS
    'lets an extract of a format snapshot pipeline (the source transaction that staged it) delete more than max_delete_share of the target';
CREATE FUNCTION pipeline.skip_extract(pipeline_name text, extract_xid xid8) RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_skip_extract'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.skip_extract(text, xid8) IS
    'makes a format snapshot pipeline pass over an extract (the source transaction that staged it) without applying it';
CREATE FUNCTION pipeline.close_extract(pipeline_name text, extract_id text) RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_close_extract'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.close_extract(text, text) IS
    'says that an extract of a format snapshot pipeline with extract_id (and every earlier one) is staged whole: it is applied without waiting for the next';
CREATE FUNCTION pipeline.run_shard_statement(source_shard text, target_shard text, statement text,
                                             statement_search_path text, timeout_ms integer,
                                             skipped_shards text[], batch_size bigint)
    RETURNS text
    AS 'MODULE_PATHNAME', 'pipeline_run_shard_statement'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pipeline.run_shard_statement(text, text, text, text, integer, text[], bigint) IS
    'internal: on a Citus worker, a sharded pipeline''s batch over one pair of co-located shards (none for a shard among skipped_shards), as the caller in a security-restricted operation; rows failing alone are left out and returned';
CREATE FUNCTION pipeline.refuse_extract_row(row_extract text, current_extract text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pipeline_refuse_extract_row'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pipeline.refuse_extract_row(text, text) IS
    'internal: the error of a row staged for an extract other than the one being applied (quarantined with it)';
CREATE FUNCTION pipeline.refuse_extract(pipeline_name text, extract_xid xid8, deleting bigint, live bigint,
                                        max_delete_share real)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pipeline_refuse_extract'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION pipeline.refuse_extract(text, xid8, bigint, bigint, real) IS
    'internal: the error of an extract that would delete more than max_delete_share of the target';

CREATE FUNCTION pipeline.keep_row(boolean) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pipeline_keep_row'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pipeline.keep_row(boolean) IS
    'internal: whether the filter keeps a row (false for NULL); counts the rows it skips';
CREATE FUNCTION pipeline.changes_row(boolean, boolean) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pipeline_changes_row'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pipeline.changes_row(boolean, boolean) IS
    'internal: whether an upsert writes over a stored row: it may (first) and would change it (second); counts the rows it may but would not change';
CREATE FUNCTION pipeline.reject_row(xid8, bigint, integer) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pipeline_reject_row'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION pipeline.reject_row(xid8, bigint, integer) IS
    'internal: records a row that failed a row rule, for the quarantine; returns false';

/* Internal: the cursor after consuming every pending row up to one transaction. */
CREATE FUNCTION pipeline.snapshot_prefix(consumed pg_snapshot, upto pg_snapshot, boundary xid8)
    RETURNS pg_snapshot
    AS 'MODULE_PATHNAME', 'pipeline_snapshot_prefix'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pipeline.snapshot_prefix(pg_snapshot, pg_snapshot, xid8) IS
    'internal: a snapshot that sees what upto sees below boundary and what consumed sees above it';

CREATE FUNCTION pipeline.capture(relation regclass) RETURNS regclass
    AS 'MODULE_PATHNAME', 'pipeline_capture'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION pipeline.capture(regclass) IS
    'makes a table with a primary key a source: its inserts, updates, deletes and truncates, ordinary or replicated, go to <table>_changes from the capture on, which pipelines on the table read; returns the change log';

CREATE FUNCTION pipeline.uncapture(relation regclass, if_exists boolean DEFAULT false) RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_uncapture'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.uncapture(regclass, boolean) IS
    'stops capturing a table: drops its triggers and change log (refused while pipelines read it)';

CREATE FUNCTION pipeline.capture_changes() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pipeline_capture_changes'
    LANGUAGE C;
COMMENT ON FUNCTION pipeline.capture_changes() IS
    'internal: the trigger function that copies a captured table''s changes into its change log';

CREATE FUNCTION pipeline.zstd_compress(data bytea, level integer DEFAULT 3) RETURNS bytea
    AS 'MODULE_PATHNAME', 'pipeline_zstd_compress'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pipeline.zstd_compress(bytea, integer) IS
    'a zstd frame of the data, with its size and a checksum (level -131072 to 22, not 0; default 3)';

CREATE FUNCTION pipeline.zstd_decompress(data bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'pipeline_zstd_decompress'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pipeline.zstd_decompress(bytea) IS
    'the content of zstd frames; an error for anything that is not valid, complete zstd';
