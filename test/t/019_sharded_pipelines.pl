# Sharded pipelines on a Citus cluster (a coordinator and two workers on
# this machine): a hash-distributed staging table merged shard by shard,
# where the shards live, into a co-located distributed target.
#
#   1. What is refused at definition, each with its reason.
#   2. A merge (deletes, a row rule quarantining, a filter, lookups of a
#      reference table, a row raising an error found alone and
#      quarantined) and an append, with names that need quoting, each row
#      once; batches of batch_size
#      rows a shard; data quality checks judged in each shard's batch
#      (quarantine, drop, warn, a reference table looked up, a unique
#      distribution column, error_if failing a shard's batch alone), and
#      those a shard cannot judge refused; an append into a table on the
#      coordinator, each batch routed there (rules, checks and a row the
#      target refuses quarantined in the batch's transaction), read by an
#      aggregate through its change log; a reader of a target written
#      shard by shard refused; what a sharded run refuses (a transaction
#      block, a test, a replay); a plain staging table distributed after its pipeline was
#      defined, refused at the next run.
#   3. Rows a worker does not show yet -- its prepared transaction not
#      committed, while the coordinator has committed -- are not lost: they
#      are merged by the run after their commit.
#   4. A blocked shard (a lock held on a target row past the pipeline's
#      statement_timeout) fails its run, naming the shard, while the other
#      shards' rows are merged; the next run merges the rest.
#   5. One pipeline to the user, whatever the shard count: its backlog
#      and lag in pipeline.status, a background worker running it
#      continuously and on a schedule (with nothing staged, no run),
#      metrics, lineage, OpenLineage events, freshness of its target.
#   6. Exactly once under load: writers staging through the coordinator
#      (each row also written to a ledger in the same transaction) while a
#      session runs the pipelines, a shard moved to the other worker and the
#      shards rebalanced back, the coordinator's backend running them killed
#      with SIGKILL (the coordinator restarting), and a worker killed with
#      SIGKILL; at the end
#      the append targets (distributed, and on the coordinator) hold each
#      ledger row once, and the merge target each key's latest value.
#
# Needs Citus built for this server (test/install_citus.sh builds it from
# its source when the source is at hand); skipped, saying so, otherwise.
use strict;
use warnings;

use PipelineCitus;
use PipelineConsumed;
use PipelineLoad;
use PipelinePowerLoss;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($coordinator, @workers) = citus_cluster();

# ---- 1. refused at definition
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE stage (id int, v text, ts int, del boolean);
	SELECT create_distributed_table('stage', 'id', shard_count => 4);
	CREATE TABLE other_shards (id int PRIMARY KEY, v text);
	SELECT create_distributed_table('other_shards', 'id', shard_count => 3);
	CREATE TABLE plain_target (id int PRIMARY KEY, v text);
	CREATE TABLE by_v (id int, v text, PRIMARY KEY (v));
	SELECT create_distributed_table('by_v', 'v');
	CREATE TABLE colocated (id int PRIMARY KEY, v text, ts int);
	SELECT create_distributed_table('colocated', 'id', colocate_with => 'stage');
	CREATE TABLE loaded (id int, v text);
	SELECT create_distributed_table('loaded', 'id', colocate_with => 'stage');
	INSERT INTO loaded VALUES (1, 'a');
});
refused($coordinator, "SELECT pipeline.create_pipeline('p', 'stage', 'other_shards', key => ARRAY['id'])",
	qr/sharded pipeline "p" cannot write public\.other_shards, which is not distributed co-located.*colocate_with/s,
	'a target not co-located is refused');
refused($coordinator, "SELECT pipeline.create_pipeline('p', 'stage', 'plain_target', key => ARRAY['id'])",
	qr/cannot write public\.plain_target, which is not distributed co-located/, 'a plain target is refused');
refused($coordinator,
	"SELECT pipeline.create_pipeline('p', 'stage', 'colocated', key => ARRAY['id'], columns => '{\"id\": \"id + 1\"}')",
	qr/cannot feed the target's distribution column id with anything but the staging table's/,
	'a distribution column computed otherwise is refused');
refused($coordinator,
	"SELECT pipeline.create_pipeline('p', 'stage', 'colocated', strategy => 'aggregate', key => ARRAY['id'], "
	  . "columns => '{\"v\": \"max(v)\"}')",
	qr/cannot use strategy aggregate.*a table on the coordinator/s, 'an aggregate is refused, pointing to a routed append');
$coordinator->safe_psql('postgres',
	"CREATE TABLE versions (id int NOT NULL, v text, ts int NOT NULL, __start_at int NOT NULL, __end_at int, "
	  . "PRIMARY KEY (id, __start_at)); CREATE UNIQUE INDEX ON versions (id) WHERE __end_at IS NULL; "
	  . "SELECT create_distributed_table('versions', 'id', colocate_with => 'stage')");
refused($coordinator,
	"SELECT pipeline.create_pipeline('p', 'stage', 'versions', strategy => 'scd2', key => ARRAY['id'], sequence_by => 'ts', "
	  . "delete_when => 'del', except_columns => ARRAY['del'])",
	qr/sharded pipeline "p" cannot close versions by delete_when.*scd2 pipeline reading that table/s,
	'an scd2 closing versions by delete_when is refused (its deletes are remembered on the coordinator)');
refused($coordinator,
	"SELECT pipeline.create_pipeline('p', 'stage', 'colocated', key => ARRAY['id'], sequence_by => 'ts', delete_when => 'del')",
	qr/cannot keep its deletes or sequences on the coordinator/, 'a tombstone table is refused');
$coordinator->safe_psql('postgres',
	"CREATE TABLE names (id int PRIMARY KEY, name text); SELECT create_reference_table('names'); "
	  . "CREATE TABLE local_names (id int PRIMARY KEY, name text)");
refused($coordinator,
	"SELECT pipeline.create_pipeline('p', 'stage', 'colocated', key => ARRAY['id'], "
	  . "columns => '{\"v\": \"(SELECT n.name FROM local_names n WHERE n.id = ts)\"}')",
	qr/sharded pipeline "p" cannot read public\.local_names in its expressions/,
	'an expression looking up a table other than a Citus reference table is refused');
refused($coordinator, "SELECT pipeline.create_pipeline('p', 'loaded', 'colocated', key => ARRAY['id'])",
	qr/distributed source public\.loaded must be empty/, 'a distributed source with rows is refused');
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE parted (id int, v text) PARTITION BY RANGE (id);
	CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000);
	SELECT create_distributed_table('parted', 'id', colocate_with => 'stage');
	CREATE ROLE other_owner LOGIN;
	CREATE ROLE alice LOGIN;
	GRANT USAGE ON SCHEMA pipeline TO other_owner, alice;
	GRANT CREATE ON SCHEMA public TO other_owner, alice;
	CREATE TABLE theirs (id int, v text);
	SELECT create_distributed_table('theirs', 'id', colocate_with => 'stage');
	ALTER TABLE theirs OWNER TO other_owner;
	SET ROLE other_owner;
	SELECT pipeline.prepare_source('theirs');
	GRANT SELECT, DELETE ON theirs TO alice;
	RESET ROLE;
	CREATE TABLE alices (id int PRIMARY KEY, v text);
	SELECT create_distributed_table('alices', 'id', colocate_with => 'stage');
	ALTER TABLE alices OWNER TO alice;
	CREATE TABLE with_fk (id int PRIMARY KEY, v text, ts int REFERENCES names (id));
	SELECT create_distributed_table('with_fk', 'id', colocate_with => 'stage');
});
refused($coordinator, "SELECT pipeline.create_pipeline('p', 'parted', 'colocated', key => ARRAY['id'])",
	qr/cannot read public\.parted, which is partitioned/, 'a partitioned distributed staging table is refused');
refused($coordinator, "SET ROLE alice; SELECT pipeline.create_pipeline('p', 'theirs', 'alices', key => ARRAY['id'])",
	qr/cannot read public\.theirs, which role other_owner owns/,
	'a staging table of a role whose privileges the owner lacks is refused');
# the worker function runs SQL as its caller, restricted: a hostile role
# gains nothing by calling it
refused($coordinator,
	"SET ROLE alice; SELECT pipeline.run_shard_statement('a', 'b', 'DELETE FROM public.colocated RETURNING 1', "
	  . "'pg_catalog', 0, '{}', 1)",
	qr/permission denied for table colocated/, 'pipeline.run_shard_statement runs with its caller\'s privileges only');
refused($coordinator,
	"SET ROLE alice; SELECT pipeline.run_shard_statement('a', 'b', 'SELECT set_config(''role'', ''postgres'', true)', "
	  . "'pg_catalog', 0, '{}', 1)",
	qr/cannot set parameter "role" within security-restricted operation|permission denied to set role/,
	'and in a security-restricted operation');
refused($coordinator, "SELECT pipeline.create_pipeline('p', 'stage', 'with_fk', key => ARRAY['id'])",
	qr/cannot write public\.with_fk, which has foreign keys/, 'a target with foreign keys is refused');
is($coordinator->safe_psql('postgres', 'SELECT count(*) FROM pipeline.pipelines'), '0', 'nothing was defined');

# ---- 2. merge and append, names that need quoting
$coordinator->safe_psql(
	'postgres', q{
	CREATE SCHEMA "Sales";
	CREATE TABLE "Sales"."Order Items" ("Id" int, v text, ts int, note text);
	SELECT create_distributed_table('"Sales"."Order Items"', 'Id', shard_count => 4);
	CREATE TABLE "Sales"."Items" ("Id" int PRIMARY KEY, v text NOT NULL, ts int);
	SELECT create_distributed_table('"Sales"."Items"', 'Id', colocate_with => '"Sales"."Order Items"');
	SELECT pipeline.create_pipeline('items', '"Sales"."Order Items"', '"Sales"."Items"', key => ARRAY['Id'],
	    sequence_by => 'ts', except_columns => ARRAY['note'], filter => $$note IS DISTINCT FROM 'skip%'$$);
	CREATE TABLE "Sales".item_log ("Id" int, v text);
	SELECT create_distributed_table('"Sales".item_log', 'Id', colocate_with => '"Sales"."Order Items"');
	CREATE TABLE flags (id int, v text, del boolean);
	SELECT create_distributed_table('flags', 'id', colocate_with => 'stage');
	SELECT pipeline.create_pipeline('flags', 'flags', 'colocated', key => ARRAY['id'], delete_when => 'del',
	    except_columns => ARRAY['del']);
});
refused($coordinator,
	q{SELECT pipeline.create_pipeline('again', '"Sales"."Order Items"', '"Sales".item_log', strategy => 'append', except_columns => ARRAY['ts', 'note'])},
	qr/sharded pipeline "again" cannot read "Sales"\."Order Items", which pipeline "items" reads/,
	'a second pipeline reading the same distributed staging table is refused');
$coordinator->safe_psql(
	'postgres', q{
	INSERT INTO "Sales"."Order Items" ("Id", v, ts) SELECT g, 'a', 1 FROM generate_series(1, 20) g;
	INSERT INTO "Sales"."Order Items" ("Id", v, ts) SELECT g, 'b', 2 FROM generate_series(1, 10) g;
	INSERT INTO "Sales"."Order Items" ("Id", v, ts) VALUES (5, 'old', 0), (21, NULL, 1);
	INSERT INTO "Sales"."Order Items" ("Id", v, ts, note) VALUES (22, 'x', 1, 'skip%');
	INSERT INTO flags VALUES (1, 'a', false), (2, 'b', false), (3, 'c', false);
});
$coordinator->safe_psql('postgres', "CALL pipeline.run('items')");
is( $coordinator->safe_psql('postgres',
		q{SELECT count(*) || ' ' || count(*) FILTER (WHERE v = 'b') || ' ' || max("Id") FROM "Sales"."Items"}),
	'20 10 20',
	'merge: each key once, its latest version, an older one stale, the NULL value and the filtered row not merged');
is( $coordinator->safe_psql('postgres',
		q{SELECT rows_read || ' ' || rows_inserted || ' ' || rows_stale || ' ' || rows_filtered || ' ' || rows_quarantined FROM pipeline.runs WHERE pipeline = 'items'}
	),
	'33 20 11 1 1',
	'the run counts over every shard');
is( $coordinator->safe_psql('postgres',
		q{SELECT reason || ' ' || (raw_row->>'Id') FROM pipeline.quarantine WHERE pipeline = 'items'}),
	'null value in column "v" violates not-null constraint 21',
	'the row breaking the target\'s NOT NULL quarantined with its raw row');
is($coordinator->safe_psql('postgres', 'SELECT count(*) FROM "Sales"."Order Items"'),
	'0', 'the staging table is drained: merged rows claimed, the rejected one quarantined');
# A run that quarantined a row and failed before deleting it from the
# staging table (as a crash between its two commits leaves it): the next
# run deletes it first, even when the rules now let it through, and only
# the requeue merges it, once.
$coordinator->safe_psql(
	'postgres', q{
	INSERT INTO "Sales"."Order Items" ("Id", v, ts) VALUES (40, NULL, 5);
	CREATE TEMP TABLE staged AS SELECT to_jsonb(s) - '_xid' - '_seq' AS raw, s._xid, s._seq
	    FROM "Sales"."Order Items" s WHERE s."Id" = 40;
	-- the run as its session's end leaves it: running, until the next run marks it failed
	WITH crashed AS (INSERT INTO pipeline.run_log (pipeline_id, run_as)
	    SELECT id, owner FROM pipeline.pipeline_defs WHERE name = 'items' RETURNING run_id, pipeline_id)
	INSERT INTO pipeline.quarantine_log (pipeline_id, run_id, reason, sqlstate, raw_row, source_xid, source_seq)
	SELECT c.pipeline_id, c.run_id, 'null value in column "v" violates not-null constraint', '23502',
	       s.raw, s._xid, s._seq
	FROM crashed c, staged s;
	ALTER TABLE "Sales"."Items" ALTER COLUMN v DROP NOT NULL;
});
$coordinator->safe_psql('postgres', "CALL pipeline.run('items')");
is( $coordinator->safe_psql('postgres',
		q{SELECT (SELECT count(*) FROM "Sales"."Order Items") || ' ' || (SELECT count(*) FROM "Sales"."Items" WHERE "Id" = 40)}),
	'0 0', 'after a run that left a quarantined row staged, the next deletes it rather than merge it');
$coordinator->safe_psql('postgres', "CALL pipeline.requeue_quarantine('items')");
is( $coordinator->safe_psql('postgres',
		q{SELECT count(*) || ' ' || count(*) FILTER (WHERE v IS NULL) FROM "Sales"."Items" WHERE "Id" IN (21, 40)}),
	'2 2', 'the requeue merges the quarantined rows, once each');

$coordinator->safe_psql('postgres', "CALL pipeline.run('flags')");
$coordinator->safe_psql('postgres', "INSERT INTO flags VALUES (1, 'a2', false), (2, NULL, true)");
$coordinator->safe_psql('postgres', "CALL pipeline.run('flags')");
is($coordinator->safe_psql('postgres', "SELECT string_agg(id || v, ' ' ORDER BY id) FROM colocated"),
	'1a2 3c', 'merge: an update and a delete event, each on its shard');

# lookups of Citus reference tables, in the mapping and the filter: on the
# workers, their shards are read
$coordinator->safe_psql(
	'postgres', q{
	CREATE SCHEMA "Dims";
	CREATE TABLE "Dims"."Customer Names" (id int PRIMARY KEY, name text);
	SELECT create_reference_table('"Dims"."Customer Names"');
	INSERT INTO "Dims"."Customer Names" VALUES (1, 'one'), (2, 'two');
	CREATE TABLE visits (id int, customer int);
	SELECT create_distributed_table('visits', 'id', colocate_with => 'stage');
	CREATE TABLE named_visits (id int PRIMARY KEY, customer_name text);
	SELECT create_distributed_table('named_visits', 'id', colocate_with => 'stage');
	SELECT pipeline.create_pipeline('named_visits', 'visits', 'named_visits', key => ARRAY['id'],
	    columns => $${"customer_name": "coalesce((SELECT c.name FROM \"Dims\".\"Customer Names\" c WHERE c.id = customer), '?')"}$$,
	    except_columns => ARRAY['customer'],
	    filter => $$customer IN (SELECT id FROM "Dims"."Customer Names") OR customer = 3$$);
	INSERT INTO visits (id, customer) SELECT g, 1 + g % 4 FROM generate_series(1, 20) g;
});
$coordinator->safe_psql('postgres', "CALL pipeline.run('named_visits')");
is( $coordinator->safe_psql('postgres',
		"SELECT string_agg(customer_name || ':' || n, ' ' ORDER BY customer_name) FROM "
		  . "(SELECT customer_name, count(*) AS n FROM named_visits GROUP BY 1) c"),
	'?:5 one:5 two:5', 'a lookup of a reference table (a name needing quotes), in the mapping and the filter');

# a row raising an error in its shard's statement: found alone, quarantined
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE raw_numbers (id int, v text);
	SELECT create_distributed_table('raw_numbers', 'id', colocate_with => 'stage');
	CREATE TABLE numbers (id int PRIMARY KEY, n int);
	SELECT create_distributed_table('numbers', 'id', colocate_with => 'stage');
	SELECT pipeline.create_pipeline('numbers', 'raw_numbers', 'numbers', key => ARRAY['id'],
	    columns => '{"n": "v::int"}', except_columns => ARRAY['v']);
	INSERT INTO raw_numbers (id, v) SELECT g, g::text FROM generate_series(1, 20) g;
	INSERT INTO raw_numbers (id, v) VALUES (7, 'seven'), (21, '21');
});
$coordinator->safe_psql('postgres', "CALL pipeline.run('numbers')");
my ($ret, $stdout, $stderr);
is( $coordinator->safe_psql('postgres',
		"SELECT count(*) || ' ' || sum(n) FROM numbers"),
	'21 231', 'a row whose value the target refuses is left out, the rest of its shard merged');
is( $coordinator->safe_psql('postgres',
		"SELECT sqlstate || ' ' || reason || ' ' || (raw_row->>'v') FROM pipeline.quarantine WHERE pipeline = 'numbers'"),
	'22P02 invalid input syntax for type integer: "seven" seven',
	'it is quarantined with its error and raw row');
is( $coordinator->safe_psql('postgres',
		"SELECT (SELECT count(*) FROM raw_numbers) || ' ' || rows_read || ' ' || rows_quarantined "
		  . "FROM pipeline.runs WHERE pipeline = 'numbers'"),
	'0 22 1', 'the staging table drained, every row read once');

# an error every row raises is no row's: the shard fails, nothing quarantined
$coordinator->safe_psql('postgres',
	"SELECT pipeline.alter_pipeline('numbers', filter => '1 / (id - id) = 0'); "
	  . "INSERT INTO raw_numbers (id, v) VALUES (30, '30'), (31, '31')");
($ret, $stdout, $stderr) = $coordinator->psql('postgres', "CALL pipeline.run('numbers')");
like($stderr, qr/shards of pipeline "numbers" failed: .*division by zero/,
	'an error every row of a batch raises fails its shard');
$coordinator->safe_psql('postgres', "SELECT pipeline.alter_pipeline('numbers', filter => '')");
$coordinator->safe_psql('postgres', "CALL pipeline.run('numbers')");
is( $coordinator->safe_psql('postgres',
		"SELECT (SELECT count(*) FROM pipeline.quarantine WHERE pipeline = 'numbers') || ' ' || "
		  . "(SELECT count(*) FROM numbers)"),
	'1 23', 'nothing of it was quarantined; once mended, the rows are merged');

$coordinator->safe_psql('postgres',
	"SELECT pipeline.alter_pipeline('flags', batch_size => 10); "
	  . "INSERT INTO flags SELECT g, 'n', false FROM generate_series(100, 199) g");
$coordinator->safe_psql('postgres', "CALL pipeline.run('flags')");
is( $coordinator->safe_psql('postgres',
		"SELECT batches >= 3 AND rows_inserted = 100 FROM pipeline.runs WHERE pipeline = 'flags' ORDER BY run_id DESC LIMIT 1"
	),
	't', 'a run takes batch_size rows of each shard at a time, batch after batch, until none is left');
refused($coordinator, "BEGIN; CALL pipeline.run('flags'); COMMIT;",
	qr/sharded pipeline "flags" cannot run inside a transaction block/, 'a run inside a transaction block is refused');
refused($coordinator, "CALL pipeline.replay('flags')",
	qr/sharded pipeline "flags" keeps no consumed rows to replay/, 'a replay is refused');
refused($coordinator, qq{SELECT pipeline.test('flags', '[{"id": 1}]')},
	qr/pipeline.test cannot run pipeline "flags".*staging table is distributed by Citus/s,
	'a test is refused (its shards would be written on the workers)');

# a plain staging table distributed after its pipeline was defined: the
# cursor's consumed rows must not be claimed again
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE plain_stage (id int, v text);
	CREATE TABLE plain_copy (id int PRIMARY KEY, v text);
	SELECT pipeline.create_pipeline('plain', 'plain_stage', 'plain_copy', key => ARRAY['id']);
	INSERT INTO plain_stage (id, v) VALUES (1, 'a');
	CALL pipeline.run('plain');
	DO $$ DECLARE i text; BEGIN
	    SELECT indexname INTO i FROM pg_indexes WHERE tablename = 'plain_stage';
	    EXECUTE format('DROP INDEX %I', i);
	END $$;
	SET citus.enable_unsafe_triggers = on;
	SELECT create_distributed_table('plain_stage', 'id');
});
refused($coordinator, "CALL pipeline.run('plain')",
	qr/staging table public\.plain_stage of pipeline "plain" was distributed after the pipeline was defined/,
	'a staging table distributed after its pipeline was defined is refused at the next run');

# data quality checks, judged in each shard's batch by its statement
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE "Colours" (name text PRIMARY KEY);
	INSERT INTO "Colours" VALUES ('red'), ('blue');
	SELECT create_reference_table('"Colours"');
	CREATE TABLE paints (id int, colour text, litres int);
	SELECT create_distributed_table('paints', 'id', colocate_with => 'stage');
	CREATE TABLE paint_log (id int, colour text, litres int);
	SELECT create_distributed_table('paint_log', 'id', colocate_with => 'stage');
	SELECT pipeline.create_pipeline('paints', 'paints', 'paint_log', strategy => 'append');
	SELECT pipeline.add_check('paints', 'known colour', kind => 'relationships', column_name => 'colour',
	    ref_table => '"Colours"', ref_column => 'name');
	SELECT pipeline.add_check('paints', 'some paint', 'litres > 0', action => 'drop');
	SELECT pipeline.add_check('paints', 'one per id', kind => 'unique', column_name => 'id', action => 'warn');
	SELECT pipeline.add_check('paints', 'big tins red', 'litres < 100 OR colour IN '
	    '(SELECT name FROM "Colours" WHERE name = ''red'')', action => 'warn');
	INSERT INTO paints VALUES (1, 'red', 5), (2, 'green', 5), (3, 'blue', 0), (4, 'blue', 5), (4, 'red', 500),
	    (5, 'blue', 500), (6, NULL, 1);
});
$coordinator->safe_psql('postgres', "CALL pipeline.run('paints')");
is( $coordinator->safe_psql('postgres',
		"SELECT string_agg(id || coalesce(colour, '-') || litres, ' ' ORDER BY id, litres) FROM paint_log"),
	'1red5 4blue5 4red500 5blue500 6-1',
	'checks: a row of an unknown colour (a reference table) not merged, one without paint dropped, warnings merged');
is( $coordinator->safe_psql('postgres',
		"SELECT reason || ' ' || sqlstate || ' ' || (raw_row->>'colour') FROM pipeline.quarantine WHERE pipeline = 'paints'"),
	'failed data quality check "known colour" PL001 green',
	'the row failing a quarantining check is quarantined with its reason');
is( $coordinator->safe_psql('postgres',
		"SELECT rows_read || ' ' || rows_inserted || ' ' || rows_dropped || ' ' || rows_quarantined || ' ' || "
		  . "(SELECT count(*) FROM paints) FROM pipeline.runs WHERE pipeline = 'paints'"),
	'7 5 1 1 0', 'the run counts them; the staging table is drained');
is( $coordinator->safe_psql(
		'postgres',
		"SELECT string_agg(check_name || ' ' || r.status || ' ' || failing || '/' || total || '/' || missing, ', ' "
		  . "ORDER BY check_name) FROM pipeline.check_results r JOIN pipeline.runs USING (run_id) WHERE pipeline = 'paints'"
	),
	'big tins red WARN 1/7/0, known colour WARN 1/6/1, one per id WARN 2/7/0, some paint WARN 1/7/0',
	'their results over all shards: failing, checked and left out (NULL) rows');
$coordinator->safe_psql(
	'postgres', q{
	SELECT pipeline.add_check('paints', 'no giant tins', kind => 'range', column_name => 'litres',
	    max_value => '1000', error_if => '> 0');
	INSERT INTO paints SELECT g, 'red', 1 FROM generate_series(7, 30) g;
	INSERT INTO paints VALUES (7, 'red', 5000);
});
($ret, $stdout, $stderr) = $coordinator->psql('postgres', "CALL pipeline.run('paints')");
like($stderr,
	qr/ERROR:  shards of pipeline "paints" failed: shard \d+ on 127\.0\.0\.1:\d+: data quality check "no giant tins" failed on its batch, nothing of which was merged/,
	'a shard whose batch meets a check\'s error_if fails, naming the check');
is( $coordinator->safe_psql(
		'postgres',
		"SELECT r.error_sqlstate || ' ' || c.status || ' ' || (SELECT count(*) FROM paint_log WHERE id >= 7) "
		  . "FROM pipeline.runs r JOIN pipeline.check_results c USING (run_id) "
		  . "WHERE r.pipeline = 'paints' AND c.check_name = 'no giant tins'"),
	'PL001 FAIL '
	  . $coordinator->safe_psql('postgres',
		"SELECT count(*) FROM generate_series(7, 30) g WHERE get_shard_id_for_distribution_column('paints', g) "
		  . "<> get_shard_id_for_distribution_column('paints', 7)"),
	'the run fails with PL001, the check FAIL, the other shards\' rows merged');
$coordinator->safe_psql('postgres',
	"SELECT pipeline.drop_check('paints', 'no giant tins'); CALL pipeline.run('paints')");
is($coordinator->safe_psql('postgres', 'SELECT count(*) FROM paint_log WHERE id >= 7'),
	'25', 'the check dropped, the next run merges the failed shard\'s batch');
refused($coordinator, "SELECT pipeline.add_check('paints', 'rows', kind => 'row_count', min_rows => 1)",
	qr/sharded pipeline "paints" cannot have check "rows", a row_count check/,
	'a row_count check is refused: the shards commit apart');
refused($coordinator, "SELECT pipeline.add_check('paints', 'one colour', kind => 'unique', column_name => 'colour')",
	qr/cannot have check "one colour", a unique check on colour, which is not the distribution column/,
	'a unique check on another column than the distribution column is refused');
refused($coordinator,
	"SELECT pipeline.add_check('paints', 'listed', kind => 'relationships', column_name => 'colour', ref_table => 'plain_target', "
	  . "ref_column => 'v')",
	qr/cannot have check "listed", looking values up in public\.plain_target, which is not a Citus reference table/,
	'a relationships check on a plain table is refused');
refused($coordinator, "SELECT pipeline.add_check('paints', 'few', 'litres < (SELECT count(*) FROM paint_log)')",
	qr/cannot have check "few", reading public\.paint_log/,
	'an expression reading a distributed table is refused');
$coordinator->safe_psql(
	'postgres', q{
	UPDATE pipeline.quarantine SET raw_row = jsonb_set(raw_row, '{colour}', '"blue"') WHERE pipeline = 'paints';
	CALL pipeline.requeue_quarantine('paints');
});
is( $coordinator->safe_psql('postgres',
		"SELECT (SELECT count(*) FROM paint_log WHERE id = 2 AND colour = 'blue') || ' ' || "
		  . "(SELECT count(*) FROM pipeline.quarantine WHERE pipeline = 'paints') || ' ' || "
		  . "(SELECT kind || ' ' || rows_read FROM pipeline.runs WHERE pipeline = 'paints' ORDER BY run_id DESC LIMIT 1)"),
	'1 0 requeue 1',
	'a requeue stages the mended row again, and its run merges it through the checks');

# scd2: each shard's events slotted into its keys' histories where the
# shard lives -- the same versions as an scd2 pipeline on one server fed
# the same events, late ones, ties and unchanged values included, with
# batches of 4 rows a shard
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE "Hist Stage" ("Id" int, "Value" text, ts int);
	SELECT create_distributed_table('"Hist Stage"', 'Id', shard_count => 4);
	CREATE TABLE "Hist" ("Id" int NOT NULL, "Value" text NOT NULL, ts int NOT NULL, __start_at int NOT NULL,
	    __end_at int, CHECK (__end_at >= __start_at), PRIMARY KEY ("Id", __start_at));
	CREATE UNIQUE INDEX ON "Hist" ("Id") WHERE __end_at IS NULL;
	SELECT create_distributed_table('"Hist"', 'Id', colocate_with => '"Hist Stage"');
	SELECT pipeline.create_pipeline('hist', '"Hist Stage"', '"Hist"', strategy => 'scd2', key => ARRAY['Id'],
	    sequence_by => 'ts', batch_size => 4, filter => $$"Value" IS DISTINCT FROM 'skip'$$);
	SELECT pipeline.add_check('hist', 'known value', $$"Value" <> 'bad'$$);
	CREATE TABLE hist_stage_plain ("Id" int, "Value" text, ts int);
	CREATE TABLE hist_plain (LIKE "Hist" INCLUDING ALL);
	CREATE UNIQUE INDEX ON hist_plain ("Id") WHERE __end_at IS NULL;
	SELECT pipeline.create_pipeline('hist_plain', 'hist_stage_plain', 'hist_plain', strategy => 'scd2',
	    key => ARRAY['Id'], sequence_by => 'ts', batch_size => 4, filter => $$"Value" IS DISTINCT FROM 'skip'$$);
	SELECT pipeline.add_check('hist_plain', 'known value', $$"Value" <> 'bad'$$);
});
my @hist_rounds = (
	"SELECT g, 'a' || g, 10 FROM generate_series(1, 30) g UNION ALL SELECT g, 'b' || g, 20 FROM generate_series(1, 10) g "
	  . "UNION ALL VALUES (5, 'c', 15), (31, NULL, 10), (32, 'skip', 10), (33, 'bad', 10), (6, 'tie1', 20), (6, 'tie2', 20)",
	"VALUES (1, 'early', 5), (2, 'mid', 15), (3, 'b3', 30), (4, 'a4', 30), (7, 'late', 12), (7, 'later', 25), "
	  . "(8, 'b8', 15), (40, 'new', 1), (40, 'new', 2)",
	"SELECT g, 'c' || g, 40 FROM generate_series(1, 40, 3) g UNION ALL VALUES (2, 'mid', 14), (9, 'b9', 20)");
foreach my $round (@hist_rounds)
{
	$coordinator->safe_psql('postgres',
		"INSERT INTO \"Hist Stage\" (\"Id\", \"Value\", ts) $round; INSERT INTO hist_stage_plain (\"Id\", \"Value\", ts) $round; "
		  . "CALL pipeline.run('hist'); CALL pipeline.run('hist_plain')");
}
my $hist_versions = 'SELECT "Id", "Value", ts, __start_at, __end_at FROM';
is( $coordinator->safe_psql('postgres', 'SELECT count(*) FROM "Hist"') . ' '
	  . differences($coordinator, "$hist_versions \"Hist\"", "$hist_versions hist_plain"),
	'61 0', 'scd2: the versions are those an scd2 pipeline on one server writes from the same events');
is( $coordinator->safe_psql('postgres',
		q{SELECT string_agg("Value" || ':' || __start_at || '-' || coalesce(__end_at::text, ''), ' ' ORDER BY __start_at) }
		  . q{FROM "Hist" WHERE "Id" = 7}),
	'a7:10-12 late:12-20 b7:20-25 later:25-40 c7:40-',
	'late events slot in between the versions');
is( $coordinator->safe_psql('postgres',
		"SELECT string_agg(pipeline || ' ' || reason, '; ' ORDER BY pipeline, reason) FROM pipeline.quarantine "
		  . "WHERE pipeline IN ('hist', 'hist_plain')"),
	'hist failed data quality check "known value"; hist null value in column "Value" violates not-null constraint; '
	  . 'hist_plain failed data quality check "known value"; hist_plain null value in column "Value" violates not-null constraint',
	'the rows failing a check or the target quarantined in both');
is( $coordinator->safe_psql('postgres',
		"SELECT string_agg(sum::text, ' ' ORDER BY pipeline) FROM (SELECT pipeline, sum(rows_read) || '/' || "
		  . "sum(rows_filtered) || '/' || sum(rows_quarantined) AS sum FROM pipeline.runs WHERE pipeline IN ('hist', 'hist_plain') "
		  . "GROUP BY pipeline) s"),
	'71/1/2 71/1/2', 'both read, filter and quarantine the same rows');
is($coordinator->safe_psql('postgres', 'SELECT count(*) FROM "Hist Stage"'), '0', 'the staging table drained');

# an append into a table on the coordinator: each batch routed there
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE clicks (id int, page text, ms int);
	SELECT create_distributed_table('clicks', 'id', colocate_with => 'stage');
	CREATE TABLE "Click Log" (id int, page text NOT NULL, ms smallint);
	SELECT pipeline.create_pipeline('click_log', 'clicks', '"Click Log"', strategy => 'append',
	    filter => 'ms >= 0', batch_size => 7);
	SELECT pipeline.add_check('click_log', 'known page', kind => 'accepted_values', column_name => 'page',
	    accepted_values => '{home,cart}');
	SELECT pipeline.add_check('click_log', 'one click a page', kind => 'unique', column_name => 'page',
	    unique_scope => 'batch', action => 'warn');
	INSERT INTO clicks VALUES (1, 'home', 5), (2, 'cart', 7), (3, NULL, 1), (4, 'home', -1), (5, 'shop', 3),
	    (6, 'home', 99999), (7, 'cart', 8);
	INSERT INTO clicks SELECT g, 'home', 1 FROM generate_series(10, 30) g;
});
$coordinator->safe_psql('postgres', "CALL pipeline.run('click_log')");
is( $coordinator->safe_psql('postgres',
		q{SELECT count(*) || ' ' || string_agg(DISTINCT page, ',' ORDER BY page) || ' ' || (SELECT count(*) FROM clicks) FROM "Click Log"}),
	'24 cart,home 0',
	'append into a plain table on the coordinator: the rows merged, the staging table drained');
is( $coordinator->safe_psql('postgres',
		"SELECT string_agg(sqlstate || ' ' || (raw_row->>'id'), ', ' ORDER BY raw_row->>'id') FROM pipeline.quarantine "
		  . "WHERE pipeline = 'click_log'"),
	'23502 3, PL001 5, 22003 6',
	'quarantined in the batch\'s transaction: a NOT NULL rule, a check, and a value the target refuses, found alone');
is( $coordinator->safe_psql('postgres',
		"SELECT rows_read || ' ' || rows_inserted || ' ' || rows_filtered || ' ' || rows_quarantined || ' ' || (batches > 3) "
		  . "FROM pipeline.runs WHERE pipeline = 'click_log'"),
	'28 24 1 3 true', 'the run counts them, batch by batch');
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE page_counts (page text PRIMARY KEY, n bigint);
	SELECT pipeline.create_pipeline('page_counts', '"Click Log"', 'page_counts', key => ARRAY['page'],
	    strategy => 'aggregate', columns => '{"n": "count(*)"}', source_key => ARRAY['id']);
	CALL pipeline.run('page_counts');
	INSERT INTO clicks VALUES (31, 'cart', 2), (32, 'home', 2);
	CALL pipeline.run('click_log');
	CALL pipeline.run('page_counts');
});
is($coordinator->safe_psql('postgres', "SELECT string_agg(page || n, ' ' ORDER BY page) FROM page_counts"),
	'cart3 home23',
	'a pipeline reads the coordinator table\'s changes (an aggregate), the routed batches publishing them');
refused($coordinator,
	"CREATE TABLE paint_counts (colour text PRIMARY KEY, n bigint); "
	  . "SELECT pipeline.create_pipeline('paint_counts', 'paint_log', 'paint_counts', key => ARRAY['colour'], "
	  . "strategy => 'aggregate', columns => '{\"n\": \"count(*)\"}')",
	qr/the changes of public\.paint_log cannot be followed.*Sharded pipeline "paints" writes it shard by shard/s,
	'a pipeline reading a target written shard by shard is refused');
refused($coordinator,
	"CREATE TABLE taps (id int, page text); SELECT create_distributed_table('taps', 'id', colocate_with => 'stage'); "
	  . "CREATE TABLE last_click (id int PRIMARY KEY, page text); "
	  . "SELECT pipeline.create_pipeline('click_keys', 'taps', 'last_click', key => ARRAY['id'])",
	qr/sharded pipeline "click_keys" cannot write public\.last_click, which is not distributed co-located.*strategy => 'append'/s,
	'a merge into a table on the coordinator is refused, pointing to co-location or an append');
refused($coordinator,
	"CREATE TABLE ref_log (id int, page text); SELECT create_reference_table('ref_log'); "
	  . "SELECT pipeline.create_pipeline('to_ref', 'taps', 'ref_log', strategy => 'append')",
	qr/sharded pipeline "to_ref" cannot write public\.ref_log, a Citus reference table/,
	'an append into a reference table is refused');

# ---- 3. rows a worker does not show yet
$coordinator->safe_psql(
	'postgres', q{
	CREATE SEQUENCE version;
	CREATE TABLE ledger (id int, x bigint);
	CREATE TABLE events (id int, x bigint);
	SELECT create_distributed_table('events', 'id', colocate_with => 'stage');
	CREATE TABLE event_log (id int, x bigint);
	SELECT create_distributed_table('event_log', 'id', colocate_with => 'stage');
	SELECT pipeline.create_pipeline('event_log', 'events', 'event_log', strategy => 'append');
});
my ($shard, $port) = split /\|/,
  $coordinator->safe_psql('postgres',
	"SELECT shard_name, nodeport FROM citus_shards WHERE table_name = 'events'::regclass "
	  . "AND shardid = get_shard_id_for_distribution_column('events', 7)");
my ($holder) = grep { $_->port == $port } @workers;
# What Citus leaves when a worker has prepared a distributed transaction
# the coordinator has committed, and has not committed it yet.
$holder->safe_psql('postgres',
	"BEGIN; INSERT INTO $shard (id, x, _xid, _seq) VALUES (7, 1001, '1', 900000001), (7, 1002, '1', 900000002); "
	  . "PREPARE TRANSACTION 'held'");
$coordinator->safe_psql('postgres',
	"INSERT INTO ledger VALUES (7, 1001), (7, 1002), (8, 1003); INSERT INTO events (id, x) VALUES (8, 1003)");
$coordinator->safe_psql('postgres', "CALL pipeline.run('event_log')");
is($coordinator->safe_psql('postgres', 'SELECT string_agg(x::text, \' \' ORDER BY x) FROM event_log'),
	'1003', 'a run merges the rows its workers show, and not those of a transaction still prepared');
$holder->safe_psql('postgres', "COMMIT PREPARED 'held'");
$coordinator->safe_psql('postgres', "CALL pipeline.run('event_log')");
is( differences($coordinator, 'SELECT id, x FROM ledger', 'SELECT id, x FROM event_log'),
	'0', 'once committed on the worker, the next run merges them: each row once');

# ---- 4. a blocked shard does not hold the others
$coordinator->safe_psql('postgres',
	"SELECT pipeline.alter_pipeline('flags', statement_timeout => '1 second')");
my $scripts = PostgreSQL::Test::Utils::tempdir;
append_to_file("$scripts/lock.sql",
	"BEGIN;\nSELECT 1 FROM colocated WHERE id = 1 FOR UPDATE;\nSELECT pg_sleep(6);\nCOMMIT;\n");
my $locker = start_psql($coordinator, "$scripts/lock.sql");
$coordinator->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(6);'")
  or die 'the lock was not taken';
$coordinator->safe_psql('postgres',
	"INSERT INTO flags (id, v, del) SELECT g, 'z', false FROM generate_series(1, 40) g");
($ret, $stdout, $stderr) = $coordinator->psql('postgres', "CALL pipeline.run('flags')");
like($stderr, qr/shards of pipeline "flags" failed: shard \d+ on 127\.0\.0\.1:\d+: .*statement timeout/,
	'the run waiting on a locked row of one shard fails, naming the shard');
like(
	$coordinator->safe_psql('postgres',
		"SELECT status || ': ' || error_message FROM pipeline.runs WHERE pipeline = 'flags' ORDER BY run_id DESC LIMIT 1"
	),
	qr/^failed: shards of pipeline "flags" failed: shard \d+ on 127\.0\.0\.1:\d+: .*statement timeout/,
	'the run is recorded failed, with the error');
is( $coordinator->safe_psql('postgres',
		"SELECT (SELECT count(*) FROM colocated WHERE v = 'z') = (SELECT count(*) FROM generate_series(1, 40) g "
		  . "WHERE get_shard_id_for_distribution_column('flags', g) <> get_shard_id_for_distribution_column('flags', 1))"),
	't', 'the rows of the other shards are merged meanwhile');
finish_load($locker);
$coordinator->safe_psql('postgres', "CALL pipeline.run('flags')");
is($coordinator->safe_psql('postgres', "SELECT count(*) FILTER (WHERE v = 'z') FROM colocated"),
	'40', 'the lock gone, the next run merges the blocked shard\'s rows');

# ---- 5. one pipeline to the user: backlog, status, workers, metrics, lineage, freshness
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE readings (id int, v text, at timestamptz DEFAULT now());
	SELECT create_distributed_table('readings', 'id', colocate_with => 'stage');
	CREATE TABLE latest_readings (id int PRIMARY KEY, v text, at timestamptz);
	SELECT create_distributed_table('latest_readings', 'id', colocate_with => 'stage');
	SELECT pipeline.create_pipeline('readings', 'readings', 'latest_readings', key => ARRAY['id']);
	INSERT INTO readings (id, v) SELECT g, 'a' FROM generate_series(1, 30) g;
});
my $status = "SELECT pending_rows || ' ' || pending_exact || ' ' || coalesce(lag::text, '-') "
  . "FROM pipeline.status WHERE pipeline = 'readings'";
is($coordinator->safe_psql('postgres', $status), '30 true -',
	'status counts the rows staged on every shard, its lag unknown before any run');
$coordinator->safe_psql('postgres', "CALL pipeline.run('readings')");
is($coordinator->safe_psql('postgres', $status), '0 true 00:00:00', 'none after a run');
$coordinator->safe_psql('postgres', 'INSERT INTO readings (id, v) VALUES (1, \'b\'), (2, \'b\')');
is( $coordinator->safe_psql(
		'postgres',
		"SELECT b.pending_rows || ' ' || (b.oldest_pending_at = r.started_at) FROM pipeline.backlog('readings') b, "
		  . "(SELECT started_at FROM pipeline.runs WHERE pipeline = 'readings' ORDER BY run_id DESC LIMIT 1) r"),
	'2 true',
	'rows staged since: pending, staged after the start of the run that left every shard short of a batch');
$coordinator->safe_psql('postgres', "SELECT pipeline.alter_pipeline('readings', schedule => 'continuous')");
$coordinator->poll_query_until('postgres', "SELECT count(*) = 2 FROM latest_readings WHERE v = 'b'")
  or die 'the continuous pipeline did not run';
$coordinator->safe_psql('postgres', "INSERT INTO readings (id, v) SELECT g, 'c' FROM generate_series(31, 60) g");
ok( $coordinator->poll_query_until('postgres', "SELECT count(*) = 60 FROM latest_readings"),
	'a continuous sharded pipeline is run by a background worker as rows arrive');
my $runs = "SELECT count(*) FROM pipeline.runs WHERE pipeline = 'readings'";
$coordinator->poll_query_until('postgres', "SELECT pending_rows = 0 AND state = 'idle' FROM pipeline.status "
	  . "WHERE pipeline = 'readings'");
$coordinator->safe_psql('postgres', "SELECT pipeline.alter_pipeline('readings', schedule => '1 second')");
my $before = $coordinator->safe_psql('postgres', $runs);
$coordinator->poll_query_until('postgres', "SELECT empty_ticks >= 2 FROM pipeline.status WHERE pipeline = 'readings'")
  or die 'the schedule did not tick';
is($coordinator->safe_psql('postgres', $runs), $before,
	'on a schedule, with every shard empty, the scheduler runs nothing (it counts empty ticks)');
$coordinator->safe_psql('postgres', "INSERT INTO readings (id, v) VALUES (61, 'd')");
ok($coordinator->poll_query_until('postgres', "SELECT count(*) = 1 FROM latest_readings WHERE id = 61"),
	'and runs it once a shard has a row');
$coordinator->safe_psql('postgres', "SELECT pipeline.alter_pipeline('readings', schedule => 'manual')");
like(
	$coordinator->safe_psql('postgres', 'SELECT pipeline.metrics()'),
	qr/pipeline_rows_read_total\{database="postgres",pipeline="readings"\} 63\n.*pipeline_pending_rows\{[^}]*pipeline="readings"[^}]*\} 0\n/s,
	'metrics count the rows of every shard');
is( $coordinator->safe_psql(
		'postgres',
		"SELECT string_agg(coalesce(source_column, '*') || '>' || coalesce(target_column, '*'), ' ' "
		  . "ORDER BY source_column NULLS FIRST) FROM pipeline.lineage WHERE pipeline = 'readings'"),
	'*>* at>at id>id v>v',
	'lineage: the staging table to the target, column by column');
is( $coordinator->safe_psql(
		'postgres',
		"SELECT count(*) FILTER (WHERE event->>'eventType' = 'COMPLETE') || ' ' || "
		  . "count(*) FILTER (WHERE event->'inputs'->0->>'name' = 'postgres.public.readings') "
		  . "FROM pipeline.openlineage_pending(1000) WHERE event->'job'->>'name' = 'postgres.readings'"),
	$coordinator->safe_psql('postgres', $runs) . ' ' . 2 * $coordinator->safe_psql('postgres', $runs),
	'an OpenLineage start and complete event for each run, reading the staging table');
$coordinator->safe_psql(
	'postgres', q{
	SELECT pipeline.add_freshness_check('latest_readings', 'at', warn_after => '1 hour');
	UPDATE latest_readings SET at = now() - interval '2 hours';
});
is( $coordinator->safe_psql('postgres',
		"SELECT status FROM pipeline.check_freshness('latest_readings'::regclass)"),
	'WARN', 'freshness of the distributed target, over all its shards');

# ---- 6. exactly once under load: a shard move, a rebalance, a worker killed
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE changes (id int, v bigint);
	SELECT create_distributed_table('changes', 'id', colocate_with => 'stage');
	CREATE TABLE accounts (id int PRIMARY KEY, v bigint);
	SELECT create_distributed_table('accounts', 'id', colocate_with => 'stage');
	SELECT pipeline.create_pipeline('accounts', 'changes', 'accounts', key => ARRAY['id'], sequence_by => 'v',
	    batch_size => 20);
	CREATE TABLE changes_ledger (id int, v bigint);
	CREATE TABLE page_visits (id int, x bigint);
	SELECT create_distributed_table('page_visits', 'id', colocate_with => 'stage');
	CREATE TABLE page_visit_log (id int, x bigint);
	SELECT pipeline.create_pipeline('page_visit_log', 'page_visits', 'page_visit_log', strategy => 'append', batch_size => 30);
	CREATE TABLE page_visits_ledger (id int, x bigint);
	CREATE TABLE balance_events (id int, v bigint, at bigint);
	SELECT create_distributed_table('balance_events', 'id', colocate_with => 'stage');
	CREATE TABLE balance_history (id int NOT NULL, v bigint, at bigint NOT NULL, __start_at bigint NOT NULL,
	    __end_at bigint, PRIMARY KEY (id, __start_at));
	CREATE UNIQUE INDEX ON balance_history (id) WHERE __end_at IS NULL;
	SELECT create_distributed_table('balance_history', 'id', colocate_with => 'stage');
	SELECT pipeline.create_pipeline('balance_history', 'balance_events', 'balance_history', strategy => 'scd2',
	    key => ARRAY['id'], sequence_by => 'at', batch_size => 20);
	CREATE TABLE balance_ledger (id int, v bigint);
});
$coordinator->safe_psql('postgres',
	out_of_order_writer(
		"WITH r AS (INSERT INTO changes_ledger SELECT 1 + (random() * 199)::int, nextval('version') "
		  . "FROM generate_series(1, 1 + (random() * 3)::int) RETURNING id, v) "
		  . "INSERT INTO changes (id, v) SELECT id, v FROM r; "
		  . "WITH r AS (INSERT INTO ledger SELECT (random() * 199)::int, nextval('version') RETURNING id, x) "
		  . "INSERT INTO events (id, x) SELECT id, x FROM r; "
		  . "WITH r AS (INSERT INTO page_visits_ledger SELECT (random() * 199)::int, nextval('version') RETURNING id, x) "
		  . "INSERT INTO page_visits (id, x) SELECT id, x FROM r; "
		  . "WITH r AS (INSERT INTO balance_ledger SELECT 1 + (random() * 99)::int, nextval('version') RETURNING id, v) "
		  . "INSERT INTO balance_events (id, v, at) SELECT id, v, v FROM r"));
append_to_file("$scripts/write.sql", "CALL write_rows(600);\n");
my $round = "CALL pipeline.run('accounts');\nCALL pipeline.run('event_log');\nCALL pipeline.run('page_visit_log');\n"
  . "CALL pipeline.run('balance_history');\n";
append_to_file("$scripts/run.sql", $round x 100000);
my $after = last_run($coordinator);
my @load = map { start_psql($coordinator, "$scripts/write.sql") } 1 .. 2;
my $runner = start_psql($coordinator, "$scripts/run.sql");
wait_for_batches($coordinator, $after, 10);

my $moving = $coordinator->safe_psql('postgres',
	"SELECT shardid FROM citus_shards WHERE table_name = 'changes'::regclass AND nodeport = "
	  . $workers[0]->port
	  . " ORDER BY shardid LIMIT 1");
$coordinator->safe_psql('postgres',
	"SELECT citus_move_shard_placement($moving, '127.0.0.1', "
	  . $workers[0]->port
	  . ", '127.0.0.1', "
	  . $workers[1]->port
	  . ", shard_transfer_mode => 'block_writes')");
is( $coordinator->safe_psql('postgres', "SELECT nodeport FROM citus_shards WHERE shardid = $moving"),
	$workers[1]->port, 'a shard moved to the other worker while writers and runs went on');
$after = last_run($coordinator);
wait_for_batches($coordinator, $after, 6);
$coordinator->safe_psql('postgres', "SELECT rebalance_table_shards(shard_transfer_mode => 'block_writes')");
$coordinator->safe_psql('postgres', 'CALL citus_cleanup_orphaned_resources()');
$after = last_run($coordinator);
wait_for_batches($coordinator, $after, 6);

# kill -9 of the coordinator's backend running the pipelines: the
# coordinator restarts (its writers' sessions with it); the shards'
# statements committed, or not, on their own; the load starts again
kill_a_run($coordinator, @load, $runner);
@load = map { start_psql($coordinator, "$scripts/write.sql") } 1 .. 2;
$runner = start_psql($coordinator, "$scripts/run.sql");
$after = last_run($coordinator);
wait_for_batches($coordinator, $after, 6);

ok(power_loss($workers[1]), 'every process of worker2 is gone');
$workers[1]->start;
$coordinator->poll_query_until('postgres',
	"SELECT (SELECT count(*) FROM (SELECT pipeline.resume(name) FROM pipeline.pipelines) r) > 0 AND "
	  . "coalesce(sum(batches), 0) >= 6 FROM pipeline.run_log WHERE run_id > $after AND rows_read > 0 "
	  . "AND status = 'succeeded' AND finished_at > now() - interval '5 seconds'")
  or die 'the runs did not go on once worker2 was back';
finish_load(@load);
$runner->kill_kill;
finish_load($runner);
$coordinator->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'CALL pipeline.run%' AND pid <> pg_backend_pid()"
);
$coordinator->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE 'CALL pipeline.run%' AND pid <> pg_backend_pid()")
  or die 'the runner did not end';
$coordinator->safe_psql('postgres', 'SELECT recover_prepared_transactions()');
$_->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pg_prepared_xacts') foreach @workers;
$coordinator->safe_psql('postgres',
	"SELECT pipeline.resume(name) FROM pipeline.pipelines; CALL pipeline.run('accounts'); CALL pipeline.run('event_log'); "
	  . "CALL pipeline.run('page_visit_log'); CALL pipeline.run('balance_history')");
is($coordinator->safe_psql('postgres', 'SELECT count(*) FROM changes') + 0,
	0, 'every staged change was claimed');
is( differences($coordinator, 'SELECT id, max(v) FROM changes_ledger GROUP BY id', 'SELECT id, v FROM accounts'),
	'0', 'merge: the target holds each key\'s latest value written');
is(differences($coordinator, 'SELECT id, x FROM ledger', 'SELECT id, x FROM event_log'),
	'0', 'append: each row written is in the target once');
is( $coordinator->safe_psql('postgres', 'SELECT count(*) FROM page_visits') . ' '
	  . differences($coordinator, 'SELECT id, x FROM page_visits_ledger', 'SELECT id, x FROM page_visit_log'),
	'0 0', 'append into a table on the coordinator (routed): each row written is in it once');
# every event a version of its own (each a new value), slotted by its
# sequence number, late ones (committed after later numbers) included
is( $coordinator->safe_psql('postgres', 'SELECT count(*) FROM balance_events') . ' '
	  . differences($coordinator, 'SELECT id, v, v FROM balance_ledger', 'SELECT id, v, __start_at FROM balance_history')
	  . ' '
	  . $coordinator->safe_psql('postgres',
		"SELECT count(*) FROM (SELECT __end_at IS DISTINCT FROM lead(__start_at) OVER (PARTITION BY id ORDER BY __start_at) "
		  . "AS broken FROM balance_history) h WHERE broken"),
	'0 0 0', 'scd2: each event written is one version, each ending where the next starts');
is( $coordinator->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE status = 'failed') > 0 AND sum(rows_read) > 300 FROM pipeline.runs WHERE pipeline = 'accounts'"
	),
	't', 'runs failed while the worker was gone, and many rows went through');
is( $coordinator->safe_psql('postgres',
		"SELECT count(*) FROM pipeline.quarantine WHERE pipeline IN ('accounts', 'event_log', 'page_visit_log', 'balance_history')"),
	'0', 'nothing was quarantined');

done_testing();
