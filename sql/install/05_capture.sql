/*
 * Captured tables: an application's table whose inserts, updates and
 * deletes statement-level triggers copy into its change log (capture.c).
 */
CREATE TABLE pipeline.captures (
    relation    regclass PRIMARY KEY,
    change_log  regclass NOT NULL UNIQUE,
    key         text[] NOT NULL,
    captured_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pipeline.captures IS
    'tables captured with pipeline.capture: their change log and primary key';
SELECT pg_catalog.pg_extension_config_dump('pipeline.captures', '');
GRANT SELECT ON pipeline.captures TO PUBLIC;
