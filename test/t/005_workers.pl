# The background workers: the launcher and a scheduler per database start
# with the server, continuous pipelines follow their sources without a
# call, interval and cron schedules run (and only count a tick that finds
# nothing staged), failures are retried with backoff
# and end suspended, settings reload on SIGHUP, a restart and kill -9 (of a
# worker, of the server) lose and double nothing, a worker runs as the
# pipeline's owner, and without shared_preload_libraries a schedule is
# refused while manual runs still work.  Conditions are polled, never slept
# on.
use strict;
use warnings;

use PipelinePowerLoss;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('workers');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pipeline'
restart_after_crash = on
max_worker_processes = 16
pipeline.launcher_naptime = '1s'
pipeline.retry_base = '200ms'
pipeline.retry_max = '1s'
pipeline.suspend_after_failures = 3
pipeline.continuous_naptime = '300ms'
});
$node->start;

# --- start: launcher at once; a scheduler as soon as the extension exists
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pipeline launcher'"),
	'the launcher runs');
$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql(
	'shop', q{
	CREATE EXTENSION pipeline;
	CREATE TABLE events (id bigint, v int);
	CREATE TABLE counters (id bigint, n int);
});
ok( $node->poll_query_until(
		'postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'pipeline scheduler' AND datname = 'shop'}),
	'CREATE EXTENSION starts a scheduler in that database');
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*) FROM pg_stat_activity
		 WHERE backend_type = 'pipeline scheduler' AND datname <> 'shop'}),
	'0', 'databases without the extension have none');

# --- continuous: rows reach the target without any call
$node->safe_psql(
	'shop', q{
	SELECT pipeline.create_pipeline('events_live', 'events', 'events_latest', key => ARRAY['id'],
	                                 sequence_by => 'v', schedule => 'continuous');
	INSERT INTO events SELECT g, 1 FROM generate_series(1, 1000) g;
});
ok( $node->poll_query_until('shop', 'SELECT count(*) = 1000 FROM events_latest'),
	'a continuous pipeline merges committed rows by itself');
ok( $node->poll_query_until(
		'shop', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'pipeline worker' AND application_name = 'pipeline worker: events_live'}),
	'its worker shows in pg_stat_activity');
$node->safe_psql('shop', 'INSERT INTO events SELECT g, 2 FROM generate_series(1, 1000) g');
ok($node->poll_query_until('shop', 'SELECT sum(v) = 2000 FROM events_latest'),
	'the next commit is merged too');

# An idle continuous pipeline records no runs: commits to another source
# wake its worker (and the naptime, 300 ms here, every few tenths of a
# second) without a run.  (A bounded wait: absence cannot be polled for.)
$node->safe_psql('shop', q{
	CREATE TABLE other_events (id bigint);
	SELECT pipeline.prepare_source('other_events');
});
my $runs_before = $node->safe_psql('shop', "SELECT count(*) FROM pipeline.runs WHERE pipeline = 'events_live'");
for my $i (1 .. 10)
{
	$node->safe_psql('shop', "INSERT INTO other_events VALUES ($i)");
	usleep(200_000);
}
is($node->safe_psql('shop', "SELECT count(*) FROM pipeline.runs WHERE pipeline = 'events_live'"),
	$runs_before, 'commits to another source and the naptime wake the worker without a run');
$node->safe_psql('shop', 'INSERT INTO events VALUES (1, 3)');
ok($node->poll_query_until('shop', 'SELECT v = 3 FROM events_latest WHERE id = 1'),
	'the idle worker still merges the next commit to its source');

# --- interval schedule: runs again and again, never two at once; a tick
# that finds nothing staged runs nothing and is only counted
$node->safe_psql(
	'shop', q{
	CREATE TABLE ticks (id bigint);
	SELECT pipeline.create_pipeline('ticks_1s', 'ticks', 'ticks_log', strategy => 'append',
	                                 schedule => '1 second');
});
for my $n (1 .. 3)
{
	$node->safe_psql('shop', "INSERT INTO ticks VALUES ($n)");
	ok( $node->poll_query_until(
			'shop', qq{SELECT count(*) = $n FROM pipeline.runs WHERE pipeline = 'ticks_1s' AND status = 'succeeded'}),
		"an interval schedule runs when rows wait ($n)");
}
ok( $node->poll_query_until(
		'shop', q{SELECT empty_ticks >= 3 FROM pipeline.status WHERE pipeline = 'ticks_1s'}),
	'and counts its ticks that find nothing');
is( $node->safe_psql(
		'shop', q{SELECT count(*), sum(rows_read) FROM pipeline.runs WHERE pipeline = 'ticks_1s'}),
	'3|3', 'without recording a run for them');
is( $node->safe_psql(
		'shop', q{
		SELECT count(*) FROM pipeline.runs a JOIN pipeline.runs b
		    ON a.pipeline = b.pipeline AND a.run_id < b.run_id
		 WHERE a.pipeline = 'ticks_1s' AND b.started_at < a.finished_at}),
	'0', 'its runs never overlap');
ok( $node->poll_query_until(
		'shop', q{SELECT next_run_at > now() FROM pipeline.status WHERE pipeline = 'ticks_1s'}),
	'status shows its next run');
is( $node->safe_psql(
		'shop', q{SELECT pipeline.next_run_after('*/15 9-17 * * mon-fri', '2026-11-21 12:00+00')}),
	'2026-11-23 09:00:00+00', 'cron text: next weekday morning (UTC)');

# --- retries with backoff, then suspension and an alert
$node->safe_psql(
	'shop', q{
	CREATE TABLE orders (id bigint, amount text);
	BEGIN;  -- one commit: the worker never sees the pipeline before the schema change
	SELECT pipeline.create_pipeline('orders_strict', 'orders', 'orders_clean', key => ARRAY['id'],
	                                 on_schema_change => 'fail', schedule => 'continuous');
	ALTER TABLE orders ADD COLUMN note text;
	INSERT INTO orders (id, amount) VALUES (1, '1');
	COMMIT;
});
ok( $node->poll_query_until(
		'shop', q{SELECT state = 'suspended' FROM pipeline.status WHERE pipeline = 'orders_strict'}),
	'a failing pipeline is retried, then suspended');
is( $node->safe_psql(
		'shop', q{
		SELECT count(*), min(finished_at - started_at) >= interval '0',
		       bool_and(error_sqlstate = '42P16')
		  FROM pipeline.runs WHERE pipeline = 'orders_strict'}),
	'3|t|t', 'three attempts, each failed with the schema change');
ok( $node->safe_psql(
		'shop', q{
		SELECT min(b.started_at - a.finished_at) >= interval '90 ms'
		  FROM pipeline.runs a JOIN pipeline.runs b ON b.run_id = (
		       SELECT min(run_id) FROM pipeline.runs c WHERE c.pipeline = a.pipeline AND c.run_id > a.run_id)
		 WHERE a.pipeline = 'orders_strict'}) eq 't',
	'retries wait for the backoff');
is( $node->safe_psql(
		'shop', q{
		SELECT string_agg(previous_state || '>' || state, ',' ORDER BY id)
		  FROM pipeline.alerts WHERE subject = 'orders_strict'}),
	'idle>failing,failing>suspended', 'alerts on failing and on suspension');
$node->safe_psql(
	'shop', q{
	SELECT pipeline.alter_pipeline('orders_strict', on_schema_change => 'append_new_columns');
	SELECT pipeline.resume('orders_strict');
});
ok($node->poll_query_until('shop', 'SELECT count(*) = 1 FROM orders_clean'),
	'after resume it runs again');

# --- SIGHUP: a new retry_base is used by the running scheduler
$node->safe_psql(
	'shop', q{
	CREATE TABLE flaky (id bigint);
	SELECT pipeline.create_pipeline('flaky', 'flaky', 'flaky_out', strategy => 'append',
	                                 on_schema_change => 'fail', schedule => 'continuous');
});
$node->safe_psql('postgres', "ALTER SYSTEM SET pipeline.retry_base = '1h'; ALTER SYSTEM SET pipeline.retry_max = '2h'");
$node->reload;
$node->safe_psql('shop', 'ALTER TABLE flaky ADD COLUMN x int; INSERT INTO flaky VALUES (1, 1)');
ok( $node->poll_query_until(
		'shop', q{
		SELECT state = 'retrying' AND next_run_at > now() + interval '20 minutes'
		  FROM pipeline.status WHERE pipeline = 'flaky'}),
	'after a reload, the retry waits by the new setting');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET pipeline.retry_base; ALTER SYSTEM RESET pipeline.retry_max');
$node->reload;
$node->safe_psql('shop', q{SELECT pipeline.drop_pipeline('flaky')});

# --- a worker runs as the pipeline's owner, never with more: a mapping
# that reads a table the owner may not read fails in the worker as it
# would in the owner's session (the worker itself connects as superuser)
$node->safe_psql(
	'shop', q{
	CREATE ROLE analyst NOLOGIN;
	CREATE TABLE secrets (k int);
	REVOKE ALL ON secrets FROM PUBLIC;
	CREATE FUNCTION peek() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM secrets';
	CREATE TABLE visits (id bigint, page text);
	ALTER TABLE visits OWNER TO analyst;
	GRANT CREATE, USAGE ON SCHEMA public TO analyst;
	SET ROLE analyst;
	SELECT pipeline.create_pipeline('visits_live', 'visits', 'visits_out', key => ARRAY['id'],
	    columns => '{"page": "page || peek()::text"}', schedule => 'continuous');
	INSERT INTO visits VALUES (1, 'home'), (2, 'pricing');
});
# A permission error is the same for every row: the run fails (it is not
# a bad row to quarantine), recorded as the owner's run.
ok( $node->poll_query_until(
		'shop', q{SELECT count(*) > 0 FROM pipeline.runs WHERE pipeline = 'visits_live' AND status = 'failed'}),
	'in the worker, a mapping needing a privilege the owner lacks fails the run');
is( $node->safe_psql(
		'shop', q{
		SELECT DISTINCT error_sqlstate, error_message, run_as::text, (SELECT count(*) FROM visits_out)
		  FROM pipeline.runs WHERE pipeline = 'visits_live' AND status = 'failed'}),
	'42501|permission denied for table secrets|analyst|0',
	'permission denied, as in the owner\'s session; the runs are the owner\'s');

# --- the scheduler and the workers connect as a superuser, so they never
# take the database's search_path: an owner who plants an operator in it
# does not get to run it with their privileges
$node->safe_psql(
	'postgres', q{
	CREATE ROLE mallory LOGIN;
	CREATE DATABASE owned OWNER mallory;
});
$node->safe_psql(
	'owned', q{
	SET ROLE mallory;
	CREATE SCHEMA evil;
	CREATE FUNCTION evil.ne(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
	    EXECUTE 'ALTER ROLE mallory SUPERUSER';
	    RETURN $1 OPERATOR(pg_catalog.<>) $2;
	EXCEPTION WHEN insufficient_privilege THEN
	    RETURN $1 OPERATOR(pg_catalog.<>) $2;
	END $$;
	CREATE OPERATOR evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.ne);
	CREATE FUNCTION evil.eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
	    EXECUTE 'ALTER ROLE mallory SUPERUSER';
	    RETURN $1 OPERATOR(pg_catalog.=) $2;
	EXCEPTION WHEN insufficient_privilege THEN
	    RETURN $1 OPERATOR(pg_catalog.=) $2;
	END $$;
	CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.eq);
	ALTER DATABASE owned SET search_path = evil, pg_catalog, public;
});
# sessions of this test keep a safe path; the extension's workers must too
$node->safe_psql(
	'owned', q{
	SET search_path = pg_catalog, public;
	CREATE EXTENSION pipeline;
	CREATE TABLE public.beats (id int);
	SELECT pipeline.create_pipeline('beats', 'public.beats', 'public.beats_out', strategy => 'append',
	                                 schedule => '1 second');
	INSERT INTO public.beats VALUES (1);
});
# (operators spelled out: this test's own session must not run mallory's)
ok( $node->poll_query_until(
		'owned', q{
		SELECT count(*) OPERATOR(pg_catalog.=) 1 FROM pipeline.runs
		 WHERE pipeline OPERATOR(pg_catalog.=) 'beats' AND status OPERATOR(pg_catalog.=) 'succeeded'}),
	'the scheduler and its workers run in a database whose owner planted operators in its search_path');
ok( $node->poll_query_until(
		'owned', q{
		SELECT empty_ticks OPERATOR(pg_catalog.>=) 2 FROM pipeline.status
		 WHERE pipeline OPERATOR(pg_catalog.=) 'beats'}),
	'and the scheduler looks for staged rows there on every tick');
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}),
	'f', 'and the owner did not become a superuser through them');
$node->safe_psql('postgres', 'DROP DATABASE owned');

# --- kill -9 of a running worker, and of the server: nothing lost or doubled
$node->safe_psql(
	'shop', q{
	CREATE TABLE stream (id bigint PRIMARY KEY, v int);
	SELECT pipeline.create_pipeline('stream_copy', 'stream', 'stream_out', strategy => 'append',
	                                 batch_size => 500, schedule => 'continuous');
});

# write(FROM, TO): stages rows FROM..TO, 50 per transaction.
sub write_rows
{
	my ($from, $to) = @_;
	my $sql = '';
	for (my $i = $from; $i <= $to; $i += 50)
	{
		my $end = $i + 49 > $to ? $to : $i + 49;
		$sql .= "INSERT INTO stream SELECT g, 1 FROM generate_series($i, $end) g;\n";
	}
	$node->safe_psql('shop', $sql);
}

write_rows(1, 5000);
# the scheduler starts the new pipeline's worker at its next pass
$node->poll_query_until('shop',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'pipeline worker: stream_copy'});
my $worker_pid = $node->safe_psql(
	'shop', q{SELECT pid FROM pg_stat_activity WHERE application_name = 'pipeline worker: stream_copy'});
ok($worker_pid =~ /^\d+$/, 'the continuous worker runs');
kill 'KILL', $worker_pid;
# the postmaster restarts every process after a crash of one of them
$node->poll_query_until('shop', 'SELECT true') or die 'the server did not come back';
write_rows(5001, 10000);
ok($node->poll_query_until('shop', 'SELECT count(*) = 10000 FROM stream_out'),
	'after kill -9 of the worker, the restarted workers catch up');

ok(power_loss($node), 'kill -9 of every server process');
$node->start;
write_rows(10001, 15000);
ok($node->poll_query_until('shop', 'SELECT count(*) = 15000 FROM stream_out'),
	'after kill -9 of the server, every row arrives');
is( $node->safe_psql(
		'shop', q{
		SELECT count(*), count(DISTINCT id), min(id), max(id),
		       (SELECT count(*) FROM pipeline.quarantine WHERE pipeline = 'stream_copy')
		  FROM stream_out}),
	'15000|15000|1|15000|0', 'exactly once: no row lost, none doubled');
ok( $node->poll_query_until(
		'shop', q{SELECT count(*) = 0 FROM pipeline.runs WHERE status = 'running' AND pipeline = 'stream_copy'
		           AND NOT pipeline.is_running((SELECT id FROM pipeline.pipelines WHERE name = 'stream_copy'))}),
	'runs the crash interrupted are marked failed');

# --- restart: workers come back and continue
$node->restart;
$node->safe_psql('shop', 'INSERT INTO events SELECT g, 3 FROM generate_series(1, 1000) g');
ok($node->poll_query_until('shop', 'SELECT sum(v) = 3000 FROM events_latest'),
	'after a restart, continuous pipelines continue');

# --- DROP DATABASE is not blocked by the workers connected to it
$node->safe_psql('postgres', 'DROP DATABASE shop');
pass('DROP DATABASE succeeds while its scheduler and workers ran');

$node->stop;

# --- without shared_preload_libraries: schedules refused, manual runs work
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION pipeline; CREATE TABLE s (id int);');
my ($rc, $out, $err) = $plain->psql('postgres',
	q{SELECT pipeline.create_pipeline('p', 's', 't', key => ARRAY['id'], schedule => 'continuous')});
like($err, qr/schedule "continuous" needs the pipeline background workers.*HINT:  Add pipeline to shared_preload_libraries/s,
	'without preloading, a schedule is refused with a hint');
$plain->safe_psql(
	'postgres', q{
	SELECT pipeline.create_pipeline('p', 's', 't', key => ARRAY['id']);
	INSERT INTO s VALUES (1);
	CALL pipeline.run('p');
});
is($plain->safe_psql('postgres', 'SELECT count(*) FROM t'), '1', 'and manual runs still work');
$plain->stop;

done_testing();
