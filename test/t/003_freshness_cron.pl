# Freshness checks scheduled by the real pg_cron, in a database other than
# pg_cron's own (cron.database_name): the job is written there, pg_cron runs
# it in the check's database, the result is recorded, the change of state
# reaches a LISTEN session as an alert (so does a pipeline starting to
# fail); a rolled-back add writes no job and dropping the check removes its
# job; pg_dump/pg_restore into another database schedules the restored
# checks there; DROP EXTENSION removes its database's jobs.  pg_cron's granularity is a minute:
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

# The first result that does not pass is a change of state: an alert.  The
# notification carries the alert's id only; the alert is read by its id.
my $notified = qr/Asynchronous notification "pipeline_alerts" with payload "\{\\?"id\\?": (\d+)\}"/;
my $out = $listener->query_safe('SELECT 1');
like($out, $notified, 'a LISTEN session receives the alert\'s id');
my ($alert) = $out =~ $notified;
is( $node->safe_psql(
		'shop', "SELECT previous_state IS NULL, state, check_id = $id FROM pipeline.alerts WHERE id = $alert"),
	't|FAIL|t', 'the notified id is the check\'s alert, kept in pipeline.alerts');

# A pipeline that starts failing raises an alert on the same channel.
$node->safe_psql(
	'shop', q{
	CREATE TABLE staged (id int);
	SELECT pipeline.create_pipeline('loads', 'staged', 'loaded', key => ARRAY['id'],
	                                 on_schema_change => 'fail');
	ALTER TABLE staged ADD COLUMN extra int;
	INSERT INTO staged VALUES (1, 1);
});
$node->psql('shop', "CALL pipeline.run('loads')");
$out = $listener->query_safe('SELECT 1');
like($out, $notified, 'a LISTEN session receives the alert of a failing pipeline');
($alert) = $out =~ $notified;
is($node->safe_psql('shop', "SELECT kind, subject, state FROM pipeline.alerts WHERE id = $alert"),
	'pipeline|loads|failing', 'the notified id is the failing pipeline\'s alert');

# Dropping the check removes its job.
$node->safe_psql('shop', "SELECT pipeline.drop_freshness_check($id)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'), '0', 'dropping the check removes its job');

# pg_dump/pg_restore: the checks are dumped with the extension's tables and
# restoring them schedules their jobs again, for the database restored
# into (a row trigger on freshness_checks keeps each job in step with its row).
my $kept = $node->safe_psql(
	'shop', q{
	SELECT pipeline.add_freshness_check('orders', 'placed_at', warn_after => '1 day',
	                                    schedule => '*/5 * * * *')});
my $unscheduled = $node->safe_psql(
	'shop', q{SELECT pipeline.add_freshness_check('orders', 'placed_at', warn_after => '1 day', filter => 'id > 0')});
my $dump = $node->basedir . '/shop.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('shop') ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE shop_copy');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('shop_copy'), $dump ], 'pg_restore');
is( $node->safe_psql(
		'postgres', 'SELECT jobname, schedule, command, database FROM cron.job ORDER BY jobname'),
	"pipeline_freshness_shop_${kept}|*/5 * * * *|SELECT pipeline.check_freshness($kept)|shop\n"
	  . "pipeline_freshness_shop_copy_${kept}|*/5 * * * *|SELECT pipeline.check_freshness($kept)|shop_copy",
	'the restored scheduled check has its job, in the restored database; the unscheduled one none');
is( $node->safe_psql('shop_copy', 'SELECT count(*) FROM pipeline.freshness_checks'),
	'2', 'both checks are restored');

# DROP EXTENSION removes the jobs of its database (not another's), when it
# commits: a rolled-back drop keeps them.
$node->safe_psql('shop', 'BEGIN; DROP EXTENSION pipeline CASCADE; ROLLBACK;');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'), '2', 'a rolled-back drop keeps the jobs');
$node->safe_psql('shop', 'DROP EXTENSION pipeline CASCADE');
is($node->safe_psql('postgres', 'SELECT string_agg(jobname, \',\') FROM cron.job'),
	"pipeline_freshness_shop_copy_${kept}", 'DROP EXTENSION removes its database\'s jobs');

$listener->quit;
$node->stop;
done_testing();
