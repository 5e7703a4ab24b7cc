-- Partitioned staging tables and partitioned targets.
CALL number_ids_from(70000);
SET client_min_messages = warning;
CREATE SCHEMA pt;
CREATE TABLE pt.events (id int, day date, amount int) PARTITION BY RANGE (day);
CREATE TABLE pt.events_1 PARTITION OF pt.events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE pt.events_2 PARTITION OF pt.events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
CREATE TABLE pt.daily (id int, day date, amount int, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE pt.daily_1 PARTITION OF pt.daily FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE pt.daily_2 PARTITION OF pt.daily FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
SELECT pipeline.create_pipeline('pt_daily', 'pt.events', 'pt.daily', key => ARRAY['id', 'day'],
    batch_size => 3) > 0 AS created;
-- the staging table's partitions got _xid and _seq too
SELECT attrelid::regclass, attname FROM pg_attribute
 WHERE attrelid IN ('pt.events_1'::regclass, 'pt.events_2'::regclass) AND attname IN ('_xid', '_seq')
 ORDER BY 1, 2;
INSERT INTO pt.events VALUES (1, '2026-01-05', 10), (2, '2026-02-05', 20), (1, '2026-01-05', 11),
                             (3, '2026-02-07', 30), (4, '2026-01-09', 40);
-- a writer inserting into a partition directly is consumed too
INSERT INTO pt.events_2 (id, day, amount) VALUES (5, '2026-02-09', 50);
CALL pipeline.run('pt_daily');
SELECT tableoid::regclass AS partition, * FROM pt.daily ORDER BY id;
-- a row for which the target has no partition is quarantined
INSERT INTO pt.events_1 (id, day, amount) VALUES (6, '2026-01-10', 60);
ALTER TABLE pt.daily DETACH PARTITION pt.daily_1;
CALL pipeline.run('pt_daily');
SELECT reason, sqlstate FROM pipeline.quarantine WHERE pipeline = 'pt_daily';

SELECT pipeline.drop_pipeline('pt_daily');
DROP SCHEMA pt CASCADE;
