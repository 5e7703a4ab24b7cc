-- Bad input gets a clear error (SQLSTATE, message, detail, hint) and
-- changes nothing.
CALL number_ids_from(30000);
SET client_min_messages = warning;
CREATE SCHEMA e;
CREATE TABLE e.src (id int, name text, doc json, pt point, ts timestamptz, flag int);
CREATE TABLE e.no_key_index (id int, name text);
CREATE VIEW e.a_view AS SELECT * FROM e.src;
SELECT pipeline.create_pipeline('e_ok', 'e.src', 'e.ok', key => ARRAY['id']) > 0 AS created;

-- Each error with its SQLSTATE, message, detail and hint (error_of: see 00_install).
\x on
-- unknown source (the regclass argument itself)
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.missing', 'e.t1', key => ARRAY['id'])$sql$);
-- unknown target schema
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'nowhere.t1', key => ARRAY['id'])$sql$);
-- key column that does not exist
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['nope'])$sql$);
-- sequence_by of types that cannot be ordered
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], sequence_by => 'doc')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], sequence_by => 'pt')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], sequence_by => 'nope')$sql$);
-- mapping expressions that do not parse, or name a missing column
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], columns => '{"name": "upper(name"}')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], columns => '{"name": "upper(nom)"}')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], columns => '{"name": 42}')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], columns => '["name"]')$sql$);
-- delete_when and filter must be boolean
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], delete_when => 'flag')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], filter => 'name || ''x''')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], filter => 'flag >')$sql$);
-- options
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e_ok', 'e.src', 'e.t1', key => ARRAY['id'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], strategy => 'scd9')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], on_schema_change => 'maybe')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], batch_size => 0)$sql$);
-- malformed schedules: not a schedule, a cron field out of range, a date
-- that never comes, months in an interval, less than a second, a bad @ form
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], schedule => 'every five minutes')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], schedule => '61 * * * *')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], schedule => '0 0 31 2 *')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], schedule => '1 month')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], schedule => '500 milliseconds')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], schedule => '@reboot')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id'], schedule => '*/0 * * * *')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', key => ARRAY['id', NULL])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.t1', strategy => 'append', sequence_by => 'ts')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('', 'e.src', 'e.t1', key => ARRAY['id'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline(NULL, 'e.src', 'e.t1', key => ARRAY['id'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', NULL, 'e.t1', key => ARRAY['id'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', NULL, key => ARRAY['id'])$sql$);
-- targets and sources of the wrong kind
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.no_key_index', key => ARRAY['id'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.src', key => ARRAY['id'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.a_view', 'e.t1', key => ARRAY['id'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.a_view', key => ARRAY['id'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.no_key_index', key => ARRAY['id'],
    columns => '{"extra": "1"}', strategy => 'append')$sql$);
-- a mapped expression whose type does not fit the existing target column
SELECT * FROM error_of($sql$CREATE TABLE e.typed (id int PRIMARY KEY, name int)$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('e1', 'e.src', 'e.typed', key => ARRAY['id'], columns => '{"name": "doc"}')$sql$);
-- functions given a missing pipeline, and bad run arguments
SELECT * FROM error_of($sql$SELECT pipeline.alter_pipeline('nope', batch_size => 10)$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.drop_pipeline('nope')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.pause('nope')$sql$);
SELECT * FROM error_of($sql$CALL pipeline.run('nope')$sql$);
SELECT * FROM error_of($sql$CALL pipeline.run(NULL)$sql$);
SELECT * FROM error_of($sql$CALL pipeline.run('e_ok', max_rows => 0)$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.alter_pipeline('e_ok', key => ARRAY['name'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.alter_pipeline('e_ok', new_name => 'e_ok')$sql$);
-- dropping a table a pipeline uses
SELECT * FROM error_of($sql$DROP TABLE e.ok$sql$);
SELECT * FROM error_of($sql$DROP TABLE e.src$sql$);
\x off

-- Nothing was created by the failed calls.
SELECT name FROM pipeline.pipelines ORDER BY name;
SELECT relname FROM pg_class WHERE relnamespace = 'e'::regnamespace AND relkind = 'r' ORDER BY 1;
SELECT pipeline.drop_pipeline('nope', if_exists => true);

-- DROP ... CASCADE takes the pipeline with it.
SET client_min_messages = notice;
DROP TABLE e.ok CASCADE;
SELECT count(*) AS pipelines_left FROM pipeline.pipelines;
SET client_min_messages = warning;
DROP SCHEMA e CASCADE;
