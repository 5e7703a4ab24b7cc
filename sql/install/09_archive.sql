/* -------------------------------------------------------------- archive */

/*
 * Retention of consumed staging rows (archive.c).  Rows leave a staging
 * table once every pipeline reading it has consumed them and at least
 * `keep` has passed since; they are written to the archive first (zstd
 * batches, archive_format.c), in the transaction that deletes them, unless
 * archive is false.  Roles see the settings and archives of the tables
 * they may SELECT; only the API functions write them.
 */
CREATE TABLE pipeline.retention (
    source              regclass PRIMARY KEY,
    keep                interval NOT NULL CHECK (keep >= interval '0'),
    archive             boolean NOT NULL DEFAULT true,
    compression_level   integer NOT NULL DEFAULT 3,
    dictionary_size     integer NOT NULL DEFAULT 0
                        CHECK (dictionary_size = 0 OR dictionary_size BETWEEN 1024 AND 1048576),
    batch_rows          integer NOT NULL DEFAULT 10000 CHECK (batch_rows BETWEEN 1 AND 1000000),
    archive_keep        interval CHECK (archive_keep > interval '0'),
    last_pass_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    altered_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (archive OR (archive_keep IS NULL AND dictionary_size = 0))
);
COMMENT ON TABLE pipeline.retention IS
    'per staging table: how long consumed rows stay, and how they are archived; change it with set_retention and drop_retention';
COMMENT ON COLUMN pipeline.retention.keep IS
    'rows leave the staging table this long after the last pipeline reading it consumed them';
COMMENT ON COLUMN pipeline.retention.archive IS
    'false: rows leaving the staging table are deleted without being archived';
COMMENT ON COLUMN pipeline.retention.dictionary_size IS
    'bytes of the zstd dictionary trained on the table''s rows for its batches; 0: none';
COMMENT ON COLUMN pipeline.retention.archive_keep IS
    'archive batches older than this are dropped at the archive pass; NULL: kept forever';
COMMENT ON COLUMN pipeline.retention.last_pass_at IS
    'when the last archive pass on the table ran';

/*
 * What every reader had consumed, and when: a pass archives what the
 * newest mark at least `keep` old says.  Runtime state, not dumped.
 */
CREATE TABLE pipeline.archive_marks (
    source      regclass NOT NULL REFERENCES pipeline.retention (source) ON DELETE CASCADE,
    taken_at    timestamptz NOT NULL,
    consumed    pg_snapshot NOT NULL,
    PRIMARY KEY (source, taken_at)
);
COMMENT ON TABLE pipeline.archive_marks IS
    'marks of the archive passes: rows whose _xid consumed sees were consumed by every pipeline reading source at taken_at';

CREATE TABLE pipeline.archive_dictionaries (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source              regclass,
    source_name         text NOT NULL,
    schema_fingerprint  text NOT NULL,
    trained_at          timestamptz NOT NULL DEFAULT now(),
    sample_rows         integer NOT NULL,
    sample_bytes        bigint NOT NULL,
    dictionary          bytea NOT NULL
);
CREATE INDEX ON pipeline.archive_dictionaries (source, schema_fingerprint, id);
COMMENT ON TABLE pipeline.archive_dictionaries IS
    'zstd dictionaries trained on a staging table''s newest rows, for its archive batches; kept while a batch uses one';

CREATE TABLE pipeline.archive_batches (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source              regclass,
    source_name         text NOT NULL,
    first_xid           xid8 NOT NULL,
    first_seq           bigint NOT NULL,
    last_xid            xid8 NOT NULL,
    last_seq            bigint NOT NULL,
    row_count           integer NOT NULL CHECK (row_count > 0),
    raw_bytes           bigint NOT NULL,
    compressed_bytes    bigint NOT NULL,
    columns             jsonb NOT NULL,
    schema_fingerprint  text NOT NULL,
    checksum            bigint NOT NULL,
    compression_level   integer NOT NULL,
    dictionary_id       bigint REFERENCES pipeline.archive_dictionaries (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    payload             bytea NOT NULL
);
/* the payload is compressed already: TOAST stores it out of line as it is */
ALTER TABLE pipeline.archive_batches ALTER COLUMN payload SET STORAGE EXTERNAL;
CREATE INDEX ON pipeline.archive_batches (source, last_xid);
CREATE INDEX ON pipeline.archive_batches (source, created_at);
CREATE INDEX ON pipeline.archive_batches (dictionary_id);
COMMENT ON TABLE pipeline.archive_batches IS
    'archived staging rows: zstd-compressed batches in (_xid, _seq) order; read them with archived_rows or archived_rows_jsonb';
COMMENT ON COLUMN pipeline.archive_batches.source IS
    'the staging table the rows came from; NULL once it was dropped (source_name keeps its name)';
COMMENT ON COLUMN pipeline.archive_batches.columns IS
    'the staging table''s columns when archived: name, type, and how archived_rows_jsonb renders them (kind)';
COMMENT ON COLUMN pipeline.archive_batches.schema_fingerprint IS
    'md5 of the staging table''s column names and types when archived; typed read-back needs the table''s to match';
COMMENT ON COLUMN pipeline.archive_batches.checksum IS
    'CRC-32C of the uncompressed payload (raw_bytes bytes), verified on every read';

SELECT pg_catalog.pg_extension_config_dump('pipeline.retention', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.archive_dictionaries', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.archive_dictionaries_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.archive_batches', '');
SELECT pg_catalog.pg_extension_config_dump('pipeline.archive_batches_id_seq', '');

CREATE FUNCTION pipeline.may_read_every_row(relation regclass, quiet boolean DEFAULT true)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'pipeline_may_read_every_row'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pipeline.may_read_every_row(regclass, boolean) IS
    'true when the current role may read every row and column of the relation (USAGE on its schema, SELECT on every column, no row-level security applying to it); with quiet => false, an error saying why not';

ALTER TABLE pipeline.retention ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.archive_marks ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.archive_dictionaries ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline.archive_batches ENABLE ROW LEVEL SECURITY;
CREATE POLICY source_readers ON pipeline.retention
    USING (pg_catalog.has_table_privilege(source::oid, 'SELECT'));
CREATE POLICY source_readers ON pipeline.archive_marks
    USING (pg_catalog.has_table_privilege(source::oid, 'SELECT'));
/*
 * Batches and dictionaries hold every row and column of their table: only
 * a role that may read the whole table reads them (see read_access.c).
 */
CREATE POLICY source_readers ON pipeline.archive_dictionaries
    USING (pipeline.may_read_every_row(source));
CREATE POLICY source_readers ON pipeline.archive_batches
    USING (pipeline.may_read_every_row(source));
GRANT SELECT ON pipeline.retention, pipeline.archive_marks, pipeline.archive_dictionaries,
    pipeline.archive_batches TO PUBLIC;

CREATE FUNCTION pipeline.set_retention(
    source              regclass,
    keep                interval,
    archive             boolean DEFAULT true,
    compression_level   integer DEFAULT 3,
    dictionary_size     integer DEFAULT 0,
    batch_rows          integer DEFAULT 10000,
    archive_keep        interval DEFAULT NULL)
    RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_set_retention'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.set_retention(regclass, interval, boolean, integer, integer, integer, interval) IS
    'sets how long consumed rows stay in a staging table and how they are archived when they leave it (replaces earlier settings)';

CREATE FUNCTION pipeline.drop_retention(source regclass, if_exists boolean DEFAULT false)
    RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_drop_retention'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.drop_retention(regclass, boolean) IS
    'stops removing consumed rows from a staging table; its archive stays';

CREATE FUNCTION pipeline.archive(
    source                  regclass,
    OUT batches_written     integer,
    OUT rows_archived       bigint,
    OUT rows_removed        bigint,
    OUT raw_bytes           bigint,
    OUT compressed_bytes    bigint,
    OUT batches_dropped     integer)
    RETURNS record
    AS 'MODULE_PATHNAME', 'pipeline_archive'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.archive(regclass) IS
    'archive pass: in one transaction, archives and deletes the staging rows every reader consumed at least keep ago, and drops batches older than archive_keep';

CREATE FUNCTION pipeline.train_archive_dictionary(source regclass) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pipeline_train_archive_dictionary'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pipeline.train_archive_dictionary(regclass) IS
    'trains a new zstd dictionary on the staging table''s newest rows for its next archive batches; returns its id';

CREATE FUNCTION pipeline.archived_rows(batch_id bigint, row_type anyelement)
    RETURNS SETOF anyelement
    AS 'MODULE_PATHNAME', 'pipeline_archived_rows'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION pipeline.archived_rows(bigint, anyelement) IS
    'the rows of an archive batch as the staging table''s row type (pass NULL::the_table), exactly as they were; refused when the table''s columns changed since';

CREATE FUNCTION pipeline.archived_rows_jsonb(batch_id bigint)
    RETURNS TABLE (_xid xid8, _seq bigint, raw_row jsonb)
    AS 'MODULE_PATHNAME', 'pipeline_archived_rows_jsonb'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION pipeline.archived_rows_jsonb(bigint) IS
    'the rows of an archive batch as jsonb objects of their columns when archived, whatever the table became since';

CREATE FUNCTION pipeline.archive_unpack(batch pipeline.archive_batches, dictionary bytea,
                                        row_type anyelement)
    RETURNS SETOF anyelement
    AS 'MODULE_PATHNAME', 'pipeline_archive_unpack'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION pipeline.archive_unpack(pipeline.archive_batches, bytea, anyelement) IS
    'internal: the rows of a batch (read by a replay) as a row type, columns matched by name';

CREATE VIEW pipeline.archives WITH (security_invoker = true) AS
SELECT r.source, r.keep, r.archive, r.compression_level, r.dictionary_size, r.batch_rows,
       r.archive_keep, r.last_pass_at,
       coalesce(b.batches, 0) AS batches, coalesce(b.rows, 0) AS rows,
       coalesce(b.raw_bytes, 0) AS raw_bytes, coalesce(b.compressed_bytes, 0) AS compressed_bytes,
       round(b.raw_bytes::numeric / nullif(b.compressed_bytes, 0), 2) AS ratio,
       b.oldest_batch_at, b.newest_batch_at
  FROM pipeline.retention r
  LEFT JOIN LATERAL (SELECT count(*) AS batches, sum(a.row_count) AS rows,
                            sum(a.raw_bytes) AS raw_bytes, sum(a.compressed_bytes) AS compressed_bytes,
                            min(a.created_at) AS oldest_batch_at, max(a.created_at) AS newest_batch_at
                       FROM pipeline.archive_batches a WHERE a.source = r.source) b ON true;
COMMENT ON VIEW pipeline.archives IS
    'per staging table with a retention setting: the setting, and its archive''s batches, rows, sizes and compression ratio';
GRANT SELECT ON pipeline.archives TO PUBLIC;
