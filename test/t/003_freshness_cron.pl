# Freshness checks scheduled by the real pg_cron, in a database other than
# pg_cron's own (cron.database_name): the job is written there, pg_cron runs
# it in the check's database, the result is recorded, the change of state
# reaches a LISTEN session as an alert; a rolled-back add writes no job and
# dropping the check removes its job.  pg_cron's granularity is a minute:
# the test polls for the result, it does not sleep.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pipeline,pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
});
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron; CREATE DATABASE shop;');
$node->safe_psql(
	'shop', q{
	CREATE EXTENSION pipeline;
	CREATE TABLE orders (id int, placed_at timestamptz);
	INSERT INTO orders VALUES (1, now() - interval '2 hours');
});

my $listener = $node->background_psql('shop');
$listener->query_safe('LISTEN pipeline_alerts');

# An add that rolls back writes no job in pg_cron's database.
$node->safe_psql(
	'shop', q{
	BEGIN;
	SELECT pipeline.add_freshness_check('orders', 'placed_at', warn_after => '1 hour',
	                                    filter => 'id > 0', schedule => '* * * * *');
	ROLLBACK;
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'), '0',
	'a rolled-back add leaves no job');

my $id = $node->safe_psql(
	'shop', q{
	SELECT pipeline.add_freshness_check('orders', 'placed_at', warn_after => '10 minutes',
	                                    error_after => '1 hour', schedule => '* * * * *')});
is( $node->safe_psql(
		'postgres', 'SELECT jobname, schedule, command, database FROM cron.job'),
	"pipeline_freshness_shop_$id|* * * * *|SELECT pipeline.check_freshness($id)|shop",
	'the job is written in pg_cron\'s database, to run in the check\'s database');

# Adding the same check again updates the job instead of adding one.
$node->safe_psql(
	'shop', q{
	SELECT pipeline.add_freshness_check('orders', 'placed_at', warn_after => '10 minutes',
	                                    error_after => '1 hour', schedule => '* * * * *')});
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'), '1', 're-adding is idempotent');

# pg_cron runs it within a minute or two (in a background worker: the test
# cluster takes no TCP connections).
ok( $node->poll_query_until(
		'shop', "SELECT count(*) > 0 FROM pipeline.freshness_results WHERE check_id = $id"),
	'pg_cron ran the scheduled check');
is($node->safe_psql('shop', "SELECT state FROM pipeline.freshness WHERE id = $id"),
	'FAIL', 'two-hour-old data fails a one-hour error_after');
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) > 0 FROM cron.job_run_details WHERE status = 'succeeded'"),
	'pg_cron recorded the run as succeeded');

# The first result that does not pass is a change of state: an alert.
my $out = $listener->query_safe('SELECT 1');
like(
	$out,
	qr/Asynchronous notification "pipeline_alerts" with payload ".*\\?"state\\?": \\?"FAIL\\?"/,
	'a LISTEN session receives the alert');
is( $node->safe_psql(
		'shop', "SELECT previous_state IS NULL, state FROM pipeline.alerts WHERE check_id = $id"),
	't|FAIL', 'the alert is kept in pipeline.alerts');

# Dropping the check removes its job.
$node->safe_psql('shop', "SELECT pipeline.drop_freshness_check($id)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'), '0', 'dropping the check removes its job');

$listener->quit;
$node->stop;
done_testing();
