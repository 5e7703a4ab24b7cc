# Steps started by the extension's scheduler and run workers: an
# on_upstream chain (a refresh after a pipeline, an audit after the
# refresh) runs by itself when the pipeline wrote rows, as the steps'
# owner, and not when it wrote none; a step after two upstreams waits while
# one of them fails, and a run of it skipped meanwhile does not use up the
# new work it waits on; a failing step is retried with backoff, suspended by
# its own failure policy with alerts delivered to a real HTTP receiver, and
# runs again after resume_step; an interval schedule runs and stops when
# paused; a kill -9 in the middle of a step's run is marked failed at the
# restart and retried.  Conditions are polled, never slept on, but for
# absences (bounded waits).
use strict;
use warnings;

use HttpReceiver;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('step_schedules');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pipeline'
restart_after_crash = on
max_worker_processes = 16
pipeline.launcher_naptime = '1s'
pipeline.retry_base = '200ms'
pipeline.retry_max = '1s'
});
$node->start;
my $rx = HttpReceiver->new;
my $url = $rx->url . '/steps';

$node->safe_psql(
	'postgres', qq{
	CREATE EXTENSION pipeline;
	CREATE ROLE analysts NOLOGIN;
	GRANT CREATE ON SCHEMA public TO analysts;
	SELECT pipeline.add_alert_route('steps', '$url', owner => 'analysts', kinds => ARRAY['step'],
	                                min_severity => 'error');
	SET ROLE analysts;
	CREATE TABLE "Order Items" (id int, amount numeric);
	CREATE TABLE orders (id int PRIMARY KEY, amount numeric);
	SELECT pipeline.create_pipeline('orders', '"Order Items"', 'orders', key => ARRAY['id']);
	CREATE MATERIALIZED VIEW "Order Totals" AS SELECT count(*) AS n, coalesce(sum(amount), 0) AS amount FROM orders;
	CREATE TABLE audit (n bigint, by_role name, at timestamptz DEFAULT clock_timestamp());
	CREATE TABLE flag (fail boolean);
	INSERT INTO flag VALUES (true);
	CREATE PROCEDURE flaky() LANGUAGE plpgsql AS \$\$
	BEGIN
	    IF (SELECT fail FROM public.flag) THEN RAISE EXCEPTION 'flaky failed'; END IF;
	END \$\$;
	SELECT pipeline.create_step('refresh totals', 'REFRESH MATERIALIZED VIEW "Order Totals"',
	                            after => ARRAY['orders'], schedule => 'on_upstream');
	SELECT pipeline.create_step('audit', 'INSERT INTO audit (n, by_role) SELECT n, current_user FROM "Order Totals"',
	                            after => ARRAY['refresh totals'], schedule => 'on_upstream');
});

sub runs
{
	my ($step) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(trigger || ':' || status, ',' ORDER BY run_id) FROM pipeline.step_runs WHERE step = '$step'");
}

# --- nothing new upstream since the steps were made: nothing runs
sleep 2;
is(runs('refresh totals') . runs('audit'), '', 'no step runs before its upstream did new work');

# --- the pipeline writes rows: the chain runs by itself, as its owner
$node->safe_psql('postgres', q{
	INSERT INTO "Order Items" VALUES (1, 10), (2, 20);
	CALL pipeline.run('orders');
});
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM audit"), 'the audit step ran after the refresh');
is(runs('refresh totals'), 'upstream:succeeded', 'the refresh ran once, started by its upstream');
is(runs('audit'), 'upstream:succeeded', 'the audit ran once, started by the refresh');
is($node->safe_psql('postgres', 'SELECT n, by_role FROM audit'), '2|analysts',
	'after the refresh, as the steps\' owner');
is($node->safe_psql('postgres', "SELECT DISTINCT run_as FROM pipeline.step_runs"), 'analysts',
	'every run recorded as run by the owner');

# --- a run that writes nothing starts nothing
$node->safe_psql('postgres', q{CALL pipeline.run('orders')});
$node->safe_psql('postgres', q{INSERT INTO "Order Items" VALUES (1, 10); CALL pipeline.run('orders')});
sleep 2;
is(runs('refresh totals'), 'upstream:succeeded', 'runs that wrote nothing start no step');

# --- a step after two upstreams waits while one fails; a failing step is
# retried with backoff, then suspended by its own policy, with alerts
$node->safe_psql(
	'postgres', q{
	SET ROLE analysts;
	SELECT pipeline.create_step('flaky', 'CALL flaky()', after => ARRAY['orders'], schedule => 'on_upstream');
	SELECT pipeline.set_failure_policy('flaky', suspend_after_failures => 3);
	SELECT pipeline.create_step('both', 'INSERT INTO audit (n, by_role) VALUES (-1, current_user)',
	                            after => ARRAY['orders', 'flaky'], schedule => 'on_upstream');
	INSERT INTO "Order Items" VALUES (3, 30);
	CALL pipeline.run('orders');
});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'suspended' FROM pipeline.step_status WHERE step = 'flaky'"),
	'the failing step ends suspended');
is(runs('flaky'), 'upstream:failed,retry:failed,retry:failed',
	'started by its upstream, then retried after each failure, three failures in all');
my $gaps = $node->safe_psql(
	'postgres', q{
	SELECT bool_and(gap >= interval '90 milliseconds')
	  FROM (SELECT started_at - lag(finished_at) OVER (ORDER BY run_id) AS gap
	          FROM pipeline.step_runs WHERE step = 'flaky') g WHERE gap IS NOT NULL});
is($gaps, 't', 'each retry waited its backoff (retry_base 200 ms, jittered)');
ok( $node->poll_query_until('postgres',
		'SELECT coalesce(sum(pending_alerts), 0) = 0 FROM pipeline.alert_delivery'),
	'the alerts were delivered');
my %seen;
is( join(', ',
		map { "$_->{kind} $_->{step} " . ($_->{previous_state} // 'none') . "->$_->{state} $_->{severity}" }
		  grep { !$seen{ $_->{id} }++ } $rx->delivered('/steps')),
	'step flaky idle->failing error, step flaky failing->suspended critical',
	'the route got the step starting to fail, then its suspension');
is(runs('both'), '', 'the step after a failing upstream did not run');

# --- resumed, the step is retried; its success lets the step after it run
$node->safe_psql(
	'postgres', q{
	UPDATE flag SET fail = false;
	SET ROLE analysts;
	SELECT pipeline.resume_step('flaky');
});
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM audit WHERE n = -1"),
	'once the failing upstream succeeds, the step after both runs');
is(runs('flaky'), 'upstream:failed,retry:failed,retry:failed,retry:succeeded', 'resume_step let it be retried');
is(runs('both'), 'upstream:succeeded', 'the step after both ran once');
is($node->safe_psql('postgres', "SELECT state, consecutive_failures FROM pipeline.step_status WHERE step = 'flaky'"),
	'idle|0', 'its streak ended');

# --- new work waits while another upstream fails; a skipped run (by hand)
# does not use it up: once the failing upstream succeeds -- writing
# nothing itself -- the step runs for the new work it waited on
$node->safe_psql(
	'postgres', q{
	SET ROLE analysts;
	CREATE TABLE gate_src (id int, v int);
	SELECT pipeline.create_pipeline('gate', 'gate_src', 'gate', key => ARRAY['id']);
	SELECT pipeline.add_check('gate', 'positive', 'v > 0', action => 'fail');
	SELECT pipeline.create_step('after gate', 'INSERT INTO audit (n, by_role) VALUES (-2, current_user)',
	                            after => ARRAY['orders', 'gate'], schedule => 'on_upstream');
	INSERT INTO gate_src VALUES (1, -1);
});
my ($rc) = $node->psql('postgres', q{CALL pipeline.run('gate')});
isnt($rc, 0, 'the gate pipeline fails its check');
$node->safe_psql('postgres', q{INSERT INTO "Order Items" VALUES (5, 50); CALL pipeline.run('orders')});
$node->safe_psql('postgres', q{CALL pipeline.run_step('after gate')});
sleep 2;
is(runs('after gate'), 'manual:skipped', 'new work upstream, another upstream failing: only the run by hand, skipped');
$node->safe_psql(
	'postgres', q{
	SET ROLE analysts;
	SELECT pipeline.drop_check('gate', 'positive');
	SELECT pipeline.add_check('gate', 'positive', 'v > 0', action => 'drop');
	CALL pipeline.run('gate');
});
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM audit WHERE n = -2"),
	'once the gate succeeds (writing nothing), the step runs for the work it waited on');
is(runs('after gate'), 'manual:skipped,upstream:succeeded', 'started by the upstream\'s work');

# --- an interval schedule runs by itself; paused, it stops
$node->safe_psql(
	'postgres', q{
	SET ROLE analysts;
	SELECT pipeline.create_step('tick', 'DELETE FROM audit WHERE n < -100', schedule => '1 second');
});
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) >= 3 FROM pipeline.step_runs WHERE step = 'tick' AND trigger = 'schedule'"),
	'an interval step runs on its schedule');
ok( $node->poll_query_until(
		'postgres', "SELECT next_run_at > now() FROM pipeline.step_status WHERE step = 'tick'"),
	'its next run is shown');
$node->safe_psql('postgres', q{SELECT pipeline.pause_step('tick')});
my $ticks = $node->safe_psql('postgres', "SELECT count(*) FROM pipeline.step_runs WHERE step = 'tick'");
sleep 3;
is($node->safe_psql('postgres', "SELECT count(*) FROM pipeline.step_runs WHERE step = 'tick'"),
	$ticks, 'paused, it runs no more');

# --- kill -9 in the middle of a step's run: failed at the restart, retried
$node->safe_psql(
	'postgres', q{
	SET ROLE analysts;
	CREATE TABLE slow_done (at timestamptz);
	SELECT pipeline.create_step('slow', 'INSERT INTO slow_done SELECT clock_timestamp() FROM pg_sleep(3)',
	                            after => ARRAY['orders'], schedule => 'on_upstream');
	INSERT INTO "Order Items" VALUES (4, 40);
	CALL pipeline.run('orders');
});
ok( $node->poll_query_until(
		'postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'pipeline worker' AND application_name = 'pipeline worker: step slow'}),
	'the slow step runs in a worker');
# The start of a run commits without waiting for the flush (a crash may
# lose the row of a run that did nothing yet): a synchronous commit after
# it is seen flushes it, so that the crash ends a recorded run.
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 1 FROM pipeline.step_runs WHERE step = 'slow' AND status = 'running'"),
	'its run is recorded as running');
$node->safe_psql('postgres', 'CREATE TABLE flushed ()');
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE application_name = 'pipeline worker: step slow'");
kill 'KILL', $pid;
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM slow_done"),
	'after the crash, the step ran again and finished');
is(runs('slow'), 'upstream:failed,retry:succeeded', 'the run the crash ended is failed, then retried');
is( $node->safe_psql('postgres',
		"SELECT error_sqlstate FROM pipeline.step_runs WHERE step = 'slow' ORDER BY run_id LIMIT 1"),
	'57P02', 'as interrupted');
is($node->safe_psql('postgres', "SELECT count(*) FROM audit WHERE n = 5"), '1',
	'the refresh and audit after the pipeline ran once for its new rows');

done_testing();
