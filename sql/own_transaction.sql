-- A run called in the transaction that staged rows leaves them for the
-- first run after the commit, and says so with a NOTICE (issue 12, item 8).
CALL number_ids_from(320000);
CREATE SCHEMA own_tx;
CREATE TABLE own_tx.raw (id int);
CREATE TABLE own_tx.other (id int);
SELECT pipeline.create_pipeline('own_tx', 'own_tx.raw', 'own_tx.copy', strategy => 'append') > 0 AS created;

-- staged and run in one transaction: nothing read, a NOTICE
BEGIN;
INSERT INTO own_tx.raw VALUES (1), (2);
CALL pipeline.run('own_tx');
COMMIT;
SELECT count(*) AS copied FROM own_tx.copy;

-- after the commit: merged, no NOTICE
CALL pipeline.run('own_tx');
SELECT count(*) AS copied FROM own_tx.copy;

-- a transaction that wrote elsewhere, or nothing: no NOTICE
BEGIN;
INSERT INTO own_tx.other VALUES (1);
CALL pipeline.run('own_tx');
COMMIT;
BEGIN;
CALL pipeline.run('own_tx');
COMMIT;

SELECT pipeline.drop_pipeline('own_tx');
DROP SCHEMA own_tx CASCADE;
