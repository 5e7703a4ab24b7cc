-- Events of one key with the same sequence_by value (ties), for merge and
-- scd2: the later arrival wins, and a delete never erases history.  First
-- the case that erased it: a captured table's deletes carry the row's last
-- updated_at, the start of its current version.  Then each tie rule, then
-- a property test: random event streams (out of order, duplicates, ties,
-- deletes, late events, several runs of small batches) merged by both
-- strategies and compared with a reference computation in plain SQL.
CALL number_ids_from(240000);
SET client_min_messages = warning;
CREATE SCHEMA st;

-- A captured table read by an scd2 and a merge pipeline.
CREATE TABLE st.accounts (id int PRIMARY KEY, owner text, updated_at int);
SELECT pipeline.capture('st.accounts');
SELECT pipeline.create_pipeline('st_accounts_dim', 'st.accounts', 'st.account_history',
    key => ARRAY['id'], strategy => 'scd2', sequence_by => 'updated_at') > 0 AS created;
SELECT pipeline.create_pipeline('st_accounts_now', 'st.accounts', 'st.accounts_now',
    key => ARRAY['id'], sequence_by => 'updated_at') > 0 AS created;
SELECT name, delete_when FROM pipeline.pipelines WHERE name LIKE 'st\_accounts\_%' ORDER BY name;
INSERT INTO st.accounts VALUES (1, 'ann', 10), (2, 'bob', 10), (3, 'cy', 10);
CALL pipeline.run('st_accounts_dim');
UPDATE st.accounts SET owner = 'amy', updated_at = 20 WHERE id = 1;
-- an update that leaves updated_at alone: the later arrival at 10 wins
UPDATE st.accounts SET owner = 'cyd' WHERE id = 3;
CALL pipeline.run('st_accounts_dim');
SELECT * FROM st.account_history ORDER BY id, __start_at;
-- Deleting the rows closes each current version at its start: [20, 20)
-- and [10, 10), empty versions that keep what the key was.
DELETE FROM st.accounts WHERE id IN (1, 2);
SELECT _op, id, owner, updated_at FROM st.accounts_changes WHERE _for IS NULL ORDER BY _xid, _seq;
CALL pipeline.run('st_accounts_dim');
SELECT * FROM st.account_history ORDER BY id, __start_at;
SELECT * FROM st.account_history
 WHERE __start_at <= 15 AND (__end_at > 15 OR __end_at IS NULL) ORDER BY id;
SELECT run_id, rows_read, rows_inserted, rows_updated, rows_deleted, rows_stale
  FROM pipeline.runs WHERE pipeline = 'st_accounts_dim' ORDER BY run_id;
-- The merge reader agrees with the current versions.
CALL pipeline.run('st_accounts_now');
SELECT * FROM st.accounts_now ORDER BY id;
SELECT (SELECT count(*) FROM (SELECT id, owner, updated_at FROM st.account_history
                               WHERE __end_at IS NULL EXCEPT TABLE st.accounts_now) a)
     + (SELECT count(*) FROM (TABLE st.accounts_now EXCEPT SELECT id, owner, updated_at
                               FROM st.account_history WHERE __end_at IS NULL) b) AS differences;
-- A key inserted again after its delete, at the same updated_at, reopens
-- there: the later arrival wins.
INSERT INTO st.accounts VALUES (2, 'bea', 10);
CALL pipeline.run('st_accounts_dim');
CALL pipeline.run('st_accounts_now');
SELECT * FROM st.account_history WHERE id = 2 ORDER BY __start_at;
SELECT * FROM st.accounts_now WHERE id = 2;

-- Each tie rule, in one batch and across batches, for both strategies.
CREATE TABLE st.changes (id int, name text, v int, op text);
SELECT pipeline.create_pipeline('st_dim', 'st.changes', 'st.dim', key => ARRAY['id'],
    strategy => 'scd2', sequence_by => 'v', delete_when => $$op = 'd'$$,
    columns => '{"op": null}') > 0 AS created;
SELECT pipeline.create_pipeline('st_now', 'st.changes', 'st.now', key => ARRAY['id'],
    sequence_by => 'v', delete_when => $$op = 'd'$$, columns => '{"op": null}') > 0 AS created;
\set history 'SELECT id, name, v, __start_at, __end_at FROM st.dim ORDER BY id, __start_at'
-- In one batch: upsert then delete (1), delete then upsert (2), two
-- upserts (3), an older version then upsert and delete at one value (4).
INSERT INTO st.changes VALUES (1, 'a', 10, 'u'), (1, NULL, 10, 'd'),
                              (2, NULL, 10, 'd'), (2, 'b', 10, 'u'),
                              (3, 'c1', 10, 'u'), (3, 'c2', 10, 'u'),
                              (4, 'd0', 5, 'u'), (4, 'd1', 10, 'u'), (4, NULL, 10, 'd');
CALL pipeline.run('st_dim');
CALL pipeline.run('st_now');
:history;
SELECT * FROM st.now ORDER BY id;
SELECT id, v FROM st.dim_tombstones ORDER BY id, v;
SELECT id, v FROM st.now_tombstones ORDER BY id, v;
-- Across batches: an upsert at the value of an empty version replaces it
-- (1); a delete at the value of a version closes it (2, 3); a second
-- delete changes nothing (4: stale); a late event falls before the empty
-- version (4).
INSERT INTO st.changes VALUES (1, 'a2', 10, 'u'), (2, NULL, 10, 'd'), (3, NULL, 10, 'd'),
                              (4, NULL, 10, 'd'), (4, 'd2', 7, 'u');
CALL pipeline.run('st_dim');
CALL pipeline.run('st_now');
:history;
SELECT * FROM st.now ORDER BY id;
-- A remembered delete, then an upsert at its value: the key exists again
-- from there, in both strategies (merge used to keep the older tombstone
-- winning).
INSERT INTO st.changes VALUES (5, NULL, 10, 'd');
CALL pipeline.run('st_dim');
CALL pipeline.run('st_now');
INSERT INTO st.changes VALUES (5, 'e', 10, 'u');
CALL pipeline.run('st_dim');
CALL pipeline.run('st_now');
SELECT * FROM st.dim WHERE id = 5;
SELECT * FROM st.now WHERE id = 5;
SELECT id, v FROM st.dim_tombstones ORDER BY id, v;
SELECT pipeline, run_id, rows_read, rows_inserted, rows_updated, rows_deleted, rows_stale
  FROM pipeline.runs WHERE pipeline IN ('st_dim', 'st_now') ORDER BY pipeline, run_id;

-- An existing target whose own CHECK forbids empty versions: such a
-- delete fails it and is quarantined with the reason; the version stays.
CREATE TABLE st.strict (id int, name text, v int, __start_at int, __end_at int,
                        CHECK (__end_at > __start_at), PRIMARY KEY (id, __start_at));
CREATE UNIQUE INDEX ON st.strict (id) WHERE __end_at IS NULL;
CREATE TABLE st.strict_changes (LIKE st.changes);
SELECT pipeline.create_pipeline('st_strict', 'st.strict_changes', 'st.strict', key => ARRAY['id'],
    strategy => 'scd2', sequence_by => 'v', delete_when => $$op = 'd'$$,
    columns => '{"op": null}') > 0 AS created;
INSERT INTO st.strict_changes VALUES (1, 'a', 10, 'u');
CALL pipeline.run('st_strict');
INSERT INTO st.strict_changes VALUES (1, NULL, 10, 'd');
CALL pipeline.run('st_strict');
SELECT * FROM st.strict;
SELECT reason, sqlstate, raw_row->>'op' AS op FROM pipeline.quarantine WHERE pipeline = 'st_strict';

-- The property test.  400 streams of 3 keys, each key 6 events with
-- sequence values 1 to 5 (so, many ties), 30% deletes, 15% delivered
-- twice, each delivery in one of 6 rounds; a round is staged in one
-- transaction, then both pipelines run in batches of 25 rows.  Odd
-- streams arrive in sequence order per key (ties in any order), even ones
-- in any order (late events).  Every upsert has a value of its own, so
-- that each one opens a version.  Everything is computed from
-- generate_series in one scan, so that the streams do not depend on plans.
SELECT setseed(0.1212);
CREATE TABLE st.events AS
SELECT n / 18 + 1 AS g, n / 6 % 3 + 1 AS k, n AS id, 1 + floor(random() * 5)::int AS s,
       random() < 0.3 AS del, random() < 0.15 AS twice,
       random() AS round1, random() AS r1, random() AS round2, random() AS r2
  FROM generate_series(0, 400 * 18 - 1) n;
CREATE VIEW st.arrivals AS
SELECT g, k, s, CASE WHEN del THEN 'd' ELSE 'u' END AS op, CASE WHEN NOT del THEN id END AS v,
       round, row_number() OVER (ORDER BY round, CASE WHEN g % 2 = 1 THEN s END, r) AS ord
  FROM (SELECT e.*, CASE WHEN g % 2 = 1 THEN s + floor(c.round * 2)::int
                         ELSE 1 + floor(c.round * 6)::int END AS round, c.r
          FROM st.events e
         CROSS JOIN LATERAL (VALUES (1, round1, r1), (2, round2, r2)) c(copy, round, r)
         WHERE c.copy = 1 OR twice) d;
CREATE TABLE st.feed (g int, k int, s int, op text, v int, ord bigint);
SELECT pipeline.create_pipeline('st_merge', 'st.feed', 'st.merged', key => ARRAY['g', 'k'],
    sequence_by => 's', delete_when => $$op = 'd'$$, columns => '{"op": null, "ord": null}',
    batch_size => 25) > 0 AS created;
SELECT pipeline.create_pipeline('st_scd2', 'st.feed', 'st.history', key => ARRAY['g', 'k'],
    strategy => 'scd2', sequence_by => 's', delete_when => $$op = 'd'$$,
    columns => '{"op": null, "ord": null}', batch_size => 25) > 0 AS created;
CREATE PROCEDURE st.stage(r int) LANGUAGE sql AS $$
    INSERT INTO st.feed SELECT g, k, s, op, v, ord FROM st.arrivals WHERE round = r ORDER BY ord;
$$;
\o /dev/null
CALL st.stage(1); CALL pipeline.run('st_merge'); CALL pipeline.run('st_scd2');
CALL st.stage(2); CALL pipeline.run('st_merge'); CALL pipeline.run('st_scd2');
CALL st.stage(3); CALL pipeline.run('st_merge'); CALL pipeline.run('st_scd2');
CALL st.stage(4); CALL pipeline.run('st_merge'); CALL pipeline.run('st_scd2');
CALL st.stage(5); CALL pipeline.run('st_merge'); CALL pipeline.run('st_scd2');
CALL st.stage(6); CALL pipeline.run('st_merge'); CALL pipeline.run('st_scd2');
\o
SELECT pipeline, count(*) AS runs, sum(batches) AS batches, sum(rows_read) AS rows_read,
       bool_and(status = 'succeeded') AS succeeded, sum(rows_quarantined) AS quarantined,
       sum(rows_inserted + rows_updated + rows_deleted + rows_stale + rows_unchanged) AS accounted
  FROM pipeline.runs WHERE pipeline IN ('st_merge', 'st_scd2') GROUP BY 1 ORDER BY 1;
-- ord is the staging order, so the order in which the runs read the rows
SELECT count(*) FILTER (WHERE ord <> staged) AS out_of_staging_order
  FROM (SELECT ord, row_number() OVER (ORDER BY _xid, _seq) AS staged FROM st.feed) f;
-- What the streams hold: duplicates, ties (a delete arriving after an
-- upsert at its value, an upsert after a delete, two upserts), late
-- arrivals (after an event of the key with a later value), by mode.
SELECT CASE WHEN g % 2 = 1 THEN 'in order' ELSE 'any order' END AS arrival,
       count(DISTINCT g) AS streams, count(*) AS deliveries,
       count(*) FILTER (WHERE op = 'd') AS deletes,
       count(*) FILTER (WHERE same_before > 0) AS duplicates,
       count(*) FILTER (WHERE op = 'd' AND upserts_before > 0) AS delete_after_upsert,
       count(*) FILTER (WHERE op = 'u' AND deletes_before > 0) AS upsert_after_delete,
       count(*) FILTER (WHERE op = 'u' AND upserts_before > same_before) AS upsert_after_upsert,
       count(*) FILTER (WHERE later_before > s) AS late
  FROM (SELECT f.*,
               count(*) FILTER (WHERE op = 'u') OVER at_value AS upserts_before,
               count(*) FILTER (WHERE op = 'd') OVER at_value AS deletes_before,
               count(*) OVER (PARTITION BY g, k, s, op, v ORDER BY ord ROWS BETWEEN UNBOUNDED PRECEDING
                              AND 1 PRECEDING) AS same_before,
               max(s) OVER (PARTITION BY g, k ORDER BY ord ROWS BETWEEN UNBOUNDED PRECEDING
                            AND 1 PRECEDING) AS later_before
          FROM st.feed f
        WINDOW at_value AS (PARTITION BY g, k, s ORDER BY ord ROWS BETWEEN UNBOUNDED PRECEDING
                            AND 1 PRECEDING)) x
 GROUP BY 1 ORDER BY 1;

-- The reference for merge: the last event of each key in (sequence_by,
-- arrival) order, when it is an upsert.
CREATE VIEW st.merge_expected AS
SELECT g, k, s, v FROM (SELECT DISTINCT ON (g, k) * FROM st.feed ORDER BY g, k, s DESC, ord DESC) l
 WHERE op = 'u';
-- The reference for scd2: at each value of a key, the last upsert to
-- arrive, and the last delete to arrive when no upsert arrived after it
-- (after the upsert at its value); the points in (value, upsert first)
-- order; a point changes the state when the key's existence or its
-- tracked column (v) differs from the point before; the changing points
-- start stretches, each ending where the next one starts; the stretches
-- where the key exists are the versions, with the values of their last
-- point.
CREATE VIEW st.scd2_expected AS
WITH upserts AS (SELECT DISTINCT ON (g, k, s) g, k, s, v, ord FROM st.feed WHERE op = 'u'
                  ORDER BY g, k, s, ord DESC),
     deletes AS (SELECT DISTINCT ON (g, k, s) g, k, s, ord FROM st.feed WHERE op = 'd'
                  ORDER BY g, k, s, ord DESC),
     points AS (SELECT g, k, s, true AS live, v FROM upserts
                UNION ALL
                SELECT d.g, d.k, d.s, false, NULL FROM deletes d LEFT JOIN upserts u USING (g, k, s)
                 WHERE u.ord IS NULL OR u.ord < d.ord),
     changes AS (SELECT p.*, live IS DISTINCT FROM lag(live, 1, false) OVER w
                             OR (live AND v IS DISTINCT FROM lag(v) OVER w) AS change
                   FROM points p WINDOW w AS (PARTITION BY g, k ORDER BY s, live DESC)),
     stretches AS (SELECT c.*, count(*) FILTER (WHERE change) OVER w AS stretch
                     FROM changes c WINDOW w AS (PARTITION BY g, k ORDER BY s, live DESC)),
     grouped AS (SELECT g, k, stretch, bool_and(live) AS live, min(s) AS start_at, max(s) AS s,
                        (array_agg(v ORDER BY s DESC))[1] AS v
                   FROM stretches GROUP BY g, k, stretch)
SELECT g, k, s, v, start_at, end_at
  FROM (SELECT g.*, lead(start_at) OVER (PARTITION BY g, k ORDER BY stretch) AS end_at
          FROM grouped g) v
 WHERE live;
SELECT count(*) AS versions, count(*) FILTER (WHERE end_at = start_at) AS empty_versions,
       count(*) FILTER (WHERE end_at IS NULL) AS current
  FROM st.scd2_expected;
-- No differences, both ways.
SELECT (SELECT count(*) FROM (TABLE st.merged EXCEPT ALL TABLE st.merge_expected) a) AS merge_unexpected,
       (SELECT count(*) FROM (TABLE st.merge_expected EXCEPT ALL TABLE st.merged) a) AS merge_missing,
       (SELECT count(*) FROM (TABLE st.history EXCEPT ALL TABLE st.scd2_expected) a) AS scd2_unexpected,
       (SELECT count(*) FROM (TABLE st.scd2_expected EXCEPT ALL TABLE st.history) a) AS scd2_missing;

SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines WHERE name LIKE 'st\_%' ORDER BY name;
SELECT pipeline.uncapture('st.accounts');
DROP SCHEMA st CASCADE;
