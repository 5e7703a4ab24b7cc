-- on_schema_change: what a run does when the source's columns change.
CALL number_ids_from(110000);
SET client_min_messages = notice;
CREATE SCHEMA sc;
CREATE TABLE sc.src (id int, a text);
SELECT pipeline.create_pipeline('sc_ignore', 'sc.src', 'sc.t_ignore', key => ARRAY['id']) > 0 AS created;
SELECT pipeline.create_pipeline('sc_fail', 'sc.src', 'sc.t_fail', key => ARRAY['id'],
    on_schema_change => 'fail') > 0 AS created;
SELECT pipeline.create_pipeline('sc_append', 'sc.src', 'sc.t_append', key => ARRAY['id'],
    on_schema_change => 'append_new_columns') > 0 AS created;
SELECT pipeline.create_pipeline('sc_sync', 'sc.src', 'sc.t_sync', key => ARRAY['id'],
    on_schema_change => 'sync_all_columns') > 0 AS created;
INSERT INTO sc.src VALUES (1, 'x');

-- The source gains a column.
ALTER TABLE sc.src ADD COLUMN b int;
INSERT INTO sc.src (id, a, b) VALUES (2, 'y', 20);
CALL pipeline.run('sc_ignore');
SELECT * FROM sc.t_ignore ORDER BY id;
\set VERBOSITY default
CALL pipeline.run('sc_fail');
SELECT count(*) AS nothing_merged FROM sc.t_fail;
CALL pipeline.run('sc_append');
SELECT * FROM sc.t_append ORDER BY id;
CALL pipeline.run('sc_sync');
SELECT * FROM sc.t_sync ORDER BY id;

-- Accepting the change: alter_pipeline records the source's columns.
SELECT pipeline.alter_pipeline('sc_fail', on_schema_change => 'fail');
CALL pipeline.run('sc_fail');
SELECT * FROM sc.t_fail ORDER BY id;

-- The source drops a column and changes a type.
ALTER TABLE sc.src DROP COLUMN a;
ALTER TABLE sc.src ALTER COLUMN b TYPE bigint;
INSERT INTO sc.src (id, b) VALUES (3, 30);
CALL pipeline.run('sc_sync');
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_schema = 'sc' AND table_name = 't_sync' ORDER BY ordinal_position;
SELECT * FROM sc.t_sync ORDER BY id;
CALL pipeline.run('sc_append');
SELECT * FROM sc.t_append ORDER BY id;

SET client_min_messages = warning;
SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines WHERE name LIKE 'sc\_%' ORDER BY name;
DROP SCHEMA sc CASCADE;
