-- A pipeline follows its source and target by identity, not by name: after
-- a rename, the statements a session keeps for the pipeline must not find
-- whatever table has taken the old name (rows read from the wrong table,
-- rows of the right one passed over for good).
SET client_min_messages = warning;
CREATE SCHEMA rn;
CREATE TABLE rn.src (id int PRIMARY KEY, v int);
SELECT pipeline.create_pipeline('rn_p', 'rn.src', 'rn.tgt', key => ARRAY['id']) > 0 AS created;
INSERT INTO rn.src VALUES (1, 1);
CALL pipeline.run('rn_p') \gset run_
SELECT :'run_status' AS status, :run_rows_read AS rows_read;
-- warm this session's kept statements (backlog keeps its own from the second use)
SELECT pending_rows FROM pipeline.backlog('rn_p');
SELECT pending_rows FROM pipeline.backlog('rn_p');
INSERT INTO rn.src VALUES (2, 2);
CALL pipeline.run('rn_p') \gset run_
SELECT :'run_status' AS status, :run_rows_read AS rows_read;

-- the source and the target are renamed; tables of the same shape take their names
ALTER TABLE rn.src RENAME TO src_old;
ALTER TABLE rn.tgt RENAME TO tgt_old;
CREATE TABLE rn.src (id int, v int, _xid xid8 DEFAULT pipeline.current_xid(),
                     _seq bigint DEFAULT 1);
CREATE TABLE rn.tgt (id int PRIMARY KEY, v int);
INSERT INTO rn.src (id, v) VALUES (90, 90);
INSERT INTO rn.src_old VALUES (3, 3);

SELECT pending_rows FROM pipeline.backlog('rn_p');
CALL pipeline.run('rn_p') \gset run_
SELECT :'run_status' AS status, :run_rows_read AS rows_read;
-- the renamed target has every row of the renamed source, the impostors none
SELECT 'tgt_old' AS t, id, v FROM rn.tgt_old UNION ALL SELECT 'tgt', id, v FROM rn.tgt ORDER BY 1, 2;
SELECT pending_rows FROM pipeline.backlog('rn_p');

SELECT pipeline.drop_pipeline('rn_p');
DROP SCHEMA rn CASCADE;
