# Exactly once for change events and full extracts, across crashes.
#
# Two writers stage Debezium change events (upserts, deletes, Kafka
# tombstones, now and then a truncate, and redeliveries of events staged
# before) in short transactions committing out of the order of their
# LSNs; a third changes a
# table and stages a full extract of it in the same transaction, again and
# again; a fourth does the same over three transactions an extract, named
# by an extract_id; a session runs four pipelines back to back: a merge of
# the events (format debezium), a merge and an scd2 of the extracts (format
# snapshot), and a merge of the chunked extracts.  Then:
#   1. kill -9 of the backend running them;
#   2. a power loss: every server process killed with SIGKILL at once.
# After each, once the writers are gone, runs to completion must leave the
# events' target holding each key's latest event by LSN after the latest
# truncate (none for a delete), and the extracts' targets the table as it
# is now (the last chunked extract closed first).
use strict;
use warnings;

use PipelineConsumed;
use PipelineLoad;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'needs /proc to find the server processes'
  unless -d '/proc/self';

my $node = PostgreSQL::Test::Cluster->new('cdc_crash');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pipeline'\nrestart_after_crash = on\n");
$node->start;

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION pipeline;
	CREATE SEQUENCE lsn;
	CREATE SEQUENCE writes;
	CREATE SEQUENCE extract_number;
	CREATE TABLE events (value jsonb);
	CREATE TABLE customers (id int PRIMARY KEY, v int);
	SELECT pipeline.create_pipeline('events', 'events', 'customers', key => ARRAY['id'],
	    format => 'debezium', on_truncate => 'apply', batch_size => 5);
	CREATE TABLE truth (id int PRIMARY KEY, v int);
	CREATE TABLE extracts (id int, v int, extract bigint);
	SELECT pipeline.create_pipeline('current', 'extracts', 'current', key => ARRAY['id'],
	    format => 'snapshot', except_columns => ARRAY['extract'], max_delete_share => 1);
	SELECT pipeline.create_pipeline('history', 'extracts', 'history', key => ARRAY['id'],
	    strategy => 'scd2', sequence_by => 'extract', format => 'snapshot', max_delete_share => 1);
	-- The table changes (a row deleted, one upserted), then all of it is
	-- staged as one extract, in one transaction.
	CREATE TABLE truth2 (id int PRIMARY KEY, v int);
	CREATE SEQUENCE chunked_number;
	CREATE TABLE chunks (id int, v int, extract bigint);
	SELECT pipeline.create_pipeline('chunked', 'chunks', 'chunked', key => ARRAY['id'], format => 'snapshot',
	    extract_id => 'extract', except_columns => ARRAY['extract'], max_delete_share => 1);
	-- The table changes, then all of it is staged as one extract, in
	-- three transactions (by id modulo 3).
	CREATE PROCEDURE stage_chunks(n int) LANGUAGE plpgsql AS $$
	DECLARE
	    e bigint;
	BEGIN
	    FOR i IN 1 .. n LOOP
	        DELETE FROM truth2 WHERE id = 1 + (random() * 59)::int;
	        INSERT INTO truth2 VALUES (1 + (random() * 59)::int, (random() * 1000)::int)
	            ON CONFLICT (id) DO UPDATE SET v = excluded.v;
	        e := nextval('chunked_number');
	        FOR part IN 0 .. 2 LOOP
	            INSERT INTO chunks SELECT id, v, e FROM truth2 WHERE id % 3 = part;
	            PERFORM pg_sleep(random() * 0.005);
	            COMMIT;
	        END LOOP;
	    END LOOP;
	END $$;
	CREATE PROCEDURE stage_extracts(n int) LANGUAGE plpgsql AS $$
	DECLARE
	    e bigint;
	BEGIN
	    FOR i IN 1 .. n LOOP
	        DELETE FROM truth WHERE id = 1 + (random() * 59)::int;
	        INSERT INTO truth VALUES (1 + (random() * 59)::int, (random() * 1000)::int)
	            ON CONFLICT (id) DO UPDATE SET v = excluded.v;
	        e := nextval('extract_number');
	        INSERT INTO extracts SELECT id, v, e FROM truth;
	        PERFORM pg_sleep(random() * 0.01);
	        COMMIT;
	    END LOOP;
	END $$;
});
# One to three events a transaction on 100 keys: an upsert, one in ten a
# delete, then now and then a Kafka tombstone, every 50th transaction a
# truncate (so that every run of the test has some), a redelivery of
# an event staged before (mostly an early one: stale) or of the latest
# update staged (mostly its key's latest: unchanged); committing out of
# the order of their LSNs.
$node->safe_psql('postgres',
	out_of_order_writer(
		    "INSERT INTO events SELECT CASE WHEN r < 0.1 THEN jsonb_build_object('op', 'd', "
		  . "'before', jsonb_build_object('id', k), 'after', NULL, 'source', jsonb_build_object('lsn', l)) "
		  . "ELSE jsonb_build_object('op', 'u', 'before', NULL, 'after', jsonb_build_object('id', k, 'v', "
		  . "(random() * 1000)::int), 'source', jsonb_build_object('lsn', l)) END "
		  . "FROM (SELECT 1 + (random() * 99)::int AS k, nextval('lsn') AS l, random() AS r "
		  . "FROM generate_series(1, 1 + (random() * 2)::int)) x "
		  . "UNION ALL SELECT NULL WHERE random() < 0.1 "
		  . "UNION ALL SELECT jsonb_build_object('op', 't', 'source', jsonb_build_object('lsn', nextval('lsn'))) "
		  . "WHERE nextval('writes') % 50 = 0 "
		  . "UNION ALL (SELECT value FROM events WHERE random() < 0.2 LIMIT 1) "
		  . "UNION ALL (SELECT value FROM events WHERE random() < 0.1 AND value ->> 'op' = 'u' "
		  . "ORDER BY _xid DESC, _seq DESC LIMIT 1)"));

my $events_from_scratch =
	"SELECT id, v FROM (SELECT DISTINCT ON (id) * FROM (SELECT "
  . "coalesce(value -> 'after' ->> 'id', value -> 'before' ->> 'id')::int AS id, "
  . "(value -> 'after' ->> 'v')::int AS v, value ->> 'op' AS op, (value -> 'source' ->> 'lsn')::bigint AS lsn, "
  . "_xid, _seq FROM events WHERE value IS NOT NULL AND value ->> 'op' <> 't') e "
  . "WHERE lsn > (SELECT coalesce(max((value -> 'source' ->> 'lsn')::bigint), 0) FROM events WHERE value ->> 'op' = 't') "
  . "ORDER BY id, lsn DESC, _xid DESC, _seq DESC) l "
  . "WHERE op <> 'd'";

my $scripts = PostgreSQL::Test::Utils::tempdir;
append_to_file("$scripts/write.sql", "CALL write_rows(1000000);\n");
append_to_file("$scripts/extracts.sql", "CALL stage_extracts(1000000);\n");
append_to_file("$scripts/chunks.sql", "CALL stage_chunks(1000000);\n");
append_to_file("$scripts/run.sql",
	"CALL pipeline.run('events'); CALL pipeline.run('current'); CALL pipeline.run('history'); CALL pipeline.run('chunked');\n"
	  x 100000);

# start_load: two event writers, two extract writers, a session running the pipelines.
sub start_load
{
	my @h;
	push @h, start_psql($node, "$scripts/write.sql") for 1 .. 2;
	push @h, start_psql($node, "$scripts/extracts.sql");
	push @h, start_psql($node, "$scripts/chunks.sql");
	push @h, start_psql($node, "$scripts/run.sql");
	return @h;
}

# check_caught_up WHEN: runs to completion give the targets from scratch.
sub check_caught_up
{
	my ($when) = @_;
	# The last chunked extract may have been cut short by the crash (its
	# loader would stage it again): it is closed as it is, and the truth
	# made what was staged of it.
	$node->safe_psql('postgres', q{
		DELETE FROM truth2;
		INSERT INTO truth2 SELECT id, v FROM chunks WHERE extract = (SELECT max(extract) FROM chunks);
		SELECT pipeline.close_extract('chunked', (SELECT max(extract) FROM chunks)::text);
	});
	$node->safe_psql('postgres', "CALL pipeline.run('$_')") foreach ('events', 'current', 'history', 'chunked');
	is($node->safe_psql('postgres', "SELECT count(*) FROM pipeline.run_log WHERE status = 'running'"),
		'0', "$when: no run stays recorded as running");
	is(differences($node, $events_from_scratch, 'SELECT id, v FROM customers'),
		'0', "$when: the events' target holds each key's latest event by LSN");
	is(differences($node, 'SELECT id, v FROM truth', 'SELECT id, v FROM current'),
		'0', "$when: the merge of the extracts is the table as it is");
	is(differences($node, 'SELECT id, v FROM truth', 'SELECT id, v FROM history WHERE __end_at IS NULL'),
		'0', "$when: the current versions of the scd2 of the extracts are the table as it is");
	is(differences($node, 'SELECT id, v FROM truth2', 'SELECT id, v FROM chunked'),
		'0', "$when: the merge of the chunked extracts is the last extract staged");
	is($node->safe_psql('postgres', "SELECT count(*) FROM pipeline.quarantine"),
		'0', "$when: nothing was quarantined");
}

# ---- kill -9 of a backend running the pipelines, then a power loss
crash_under_load($node, \&start_load, sub { wait_for_batches($node, $_[0], 200) }, \&check_caught_up);

ok($node->safe_psql('postgres',
		"SELECT sum(rows_filtered) > 0 AND sum(rows_unchanged) > 0 AND sum(rows_stale) > 0 FROM pipeline.runs WHERE pipeline = 'events'") eq 't',
	'the events had tombstones, redeliveries and late arrivals');
ok($node->safe_psql('postgres',
		"SELECT count(*) > 0 FROM events WHERE value ->> 'op' = 't'") eq 't'
	  && $node->safe_psql('postgres', "SELECT truncated_at IS NOT NULL FROM pipeline.pipeline_defs WHERE name = 'events'") eq 't',
	'the events had truncates, applied');
ok($node->safe_psql('postgres',
		"SELECT sum(rows_deleted) > 0 AND sum(rows_unchanged) > 0 FROM pipeline.runs WHERE pipeline = 'current'") eq 't',
	'the extracts deleted keys and repeated rows');
ok($node->safe_psql('postgres',
		"SELECT sum(rows_deleted) > 0 AND count(*) FILTER (WHERE error_message LIKE 'extract % is not complete%' "
	  . "AND error_message NOT LIKE 'extract (null)%') > 0 FROM pipeline.runs WHERE pipeline = 'chunked'") eq 't',
	'the chunked extracts deleted keys, and runs waited for extracts not complete yet');
# A run that found nothing pending in the rest of a transaction its cursor
# stopped in must go on, not wait for an extract it never found.
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pipeline.runs WHERE pipeline = 'chunked' AND error_message LIKE 'extract (null)%'"),
	'0', 'no run waited for an extract it did not find');

$node->stop;
done_testing();
