-- Roles: a pipeline belongs to its creator, runs with its owner's
-- privileges whoever calls it, and other roles neither see nor touch it.
CALL number_ids_from(80000);
SET client_min_messages = warning;
CREATE SCHEMA pr;
CREATE ROLE pr_alice;
CREATE ROLE pr_bob;
GRANT USAGE, CREATE ON SCHEMA pr TO pr_alice, pr_bob;
CREATE TABLE pr.alice_src (id int, secret_id int);
ALTER TABLE pr.alice_src OWNER TO pr_alice;
CREATE TABLE pr.secrets (id int, value text);      -- alice may not read it
INSERT INTO pr.secrets VALUES (1, 'classified');
CREATE TABLE pr.shared_src (id int, v int);        -- owned by the superuser

SET ROLE pr_alice;
SELECT pipeline.create_pipeline('pr_alice', 'pr.alice_src', 'pr.alice_tgt', key => ARRAY['id']) > 0 AS created;
INSERT INTO pr.alice_src VALUES (1, 1);
CALL pipeline.run('pr_alice');
-- a mapping that reads a table alice may not read is refused at definition
\set VERBOSITY terse
SELECT pipeline.create_pipeline('pr_sneaky', 'pr.alice_src', 'pr.alice_sneaky', key => ARRAY['id'],
    columns => '{"stolen": "(SELECT value FROM pr.secrets s WHERE s.id = secret_id)"}');
-- alice may not build on a table she cannot read
SELECT pipeline.create_pipeline('pr_shared', 'pr.shared_src', 'pr.alice_shared', key => ARRAY['id']);
\set VERBOSITY default
RESET ROLE;

-- bob sees no pipeline and may not run, alter or drop alice's.
SET ROLE pr_bob;
SELECT count(*) AS visible_pipelines FROM pipeline.pipelines;
SELECT count(*) AS visible_runs FROM pipeline.runs;
\set VERBOSITY terse
CALL pipeline.run('pr_alice');
SELECT pipeline.alter_pipeline('pr_alice', batch_size => 5);
SELECT pipeline.drop_pipeline('pr_alice');
SELECT pipeline.pause('pr_alice');
-- and may not write the catalog directly
UPDATE pipeline.pipeline_defs SET batch_size = 1;
DELETE FROM pipeline.cursors;
INSERT INTO pipeline.run_log (pipeline_id, run_as) VALUES (1, 'pr_bob');
\set VERBOSITY default
RESET ROLE;

-- A superuser sees and may run every pipeline, but the run executes as the
-- owner: after alice loses SELECT on her source, the superuser's run fails.
SELECT name, owner FROM pipeline.pipelines WHERE name LIKE 'pr\_%';
CALL pipeline.run('pr_alice');
REVOKE SELECT ON pr.alice_src FROM pr_alice;
INSERT INTO pr.alice_src VALUES (2, 1);
\set VERBOSITY terse
CALL pipeline.run('pr_alice');
\set VERBOSITY default
SELECT status, error_sqlstate, error_message, run_as = 'pr_alice'::regrole AS run_by_alice FROM pipeline.runs
 WHERE pipeline = 'pr_alice' ORDER BY run_id;
GRANT SELECT ON pr.alice_src TO pr_alice;
CALL pipeline.run('pr_alice');

-- Reading is not enough to make a table a source: that is its owner's call.
GRANT SELECT ON pr.shared_src TO pr_alice;
SET ROLE pr_alice;
\set VERBOSITY terse
SELECT pipeline.create_pipeline('pr_shared', 'pr.shared_src', 'pr.alice_shared', key => ARRAY['id']);
\set VERBOSITY default
RESET ROLE;
-- The owner of a table lets another role build on it with prepare_source.
SELECT pipeline.prepare_source('pr.shared_src');
SET ROLE pr_alice;
SELECT pipeline.create_pipeline('pr_shared', 'pr.shared_src', 'pr.alice_shared', key => ARRAY['id']) > 0 AS created;
RESET ROLE;
INSERT INTO pr.shared_src VALUES (1, 10);
SET ROLE pr_alice;
CALL pipeline.run('pr_shared');
SELECT * FROM pr.alice_shared;
SELECT name FROM pipeline.pipelines ORDER BY name;
RESET ROLE;

SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines WHERE name LIKE 'pr\_%' ORDER BY name;
DROP SCHEMA pr CASCADE;
DROP ROLE pr_alice;
DROP ROLE pr_bob;
