/*
 * Logical transaction clock.
 *
 * Staged rows are stamped with pipeline.current_xid(), the writing
 * transaction's 64-bit id plus an offset kept in pipeline.clock.  The offset
 * is zero until a logical restore brings cursors taken on another cluster;
 * then it jumps past every id of the old cluster, so rows written after the
 * restore can never be mistaken for rows the old cluster already consumed.
 * The table is deliberately not dumped: each installation has its own
 * generation, which is how a restored cursor is recognised.
 */
CREATE TABLE pipeline.clock (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation  bigint NOT NULL,
    xid_offset  bigint NOT NULL DEFAULT 0 CHECK (xid_offset >= 0)
);
COMMENT ON TABLE pipeline.clock IS
    'logical transaction clock: this installation''s generation and the offset added to transaction ids after a restore';
INSERT INTO pipeline.clock (generation)
    VALUES ((random() * 9007199254740991)::bigint);

CREATE FUNCTION pipeline.current_xid() RETURNS xid8
    AS 'MODULE_PATHNAME', 'pipeline_current_xid'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION pipeline.current_xid() IS
    'the current transaction''s id on the logical clock; the default of every staging table''s _xid column';

CREATE FUNCTION pipeline.current_snapshot() RETURNS pg_snapshot
    AS 'MODULE_PATHNAME', 'pipeline_current_snapshot'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pipeline.current_snapshot() IS
    'the current snapshot on the logical clock (pg_current_snapshot() shifted by the clock offset)';
