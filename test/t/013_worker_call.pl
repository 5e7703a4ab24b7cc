# A run worker calls the run directly, not through a CALL statement, and
# still runs a pipeline exactly as its owner's CALL pipeline.run would: an
# owner who may not call pipeline.run gets no run from a worker either;
# pg_stat_activity shows the equivalent CALL while the worker runs; a run
# that returns early (skipped: a client's run holds the pipeline) leaves
# nothing behind (no snapshot, no portal: no warning at its commit).
# Conditions are polled, never slept on.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('calls');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pipeline'
pipeline.launcher_naptime = '1s'
pipeline.continuous_naptime = '300ms'
pipeline.retry_base = '200ms'
pipeline.retry_max = '1s'
log_min_messages = notice
});
$node->start;
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION pipeline;
	CREATE ROLE calls_owner NOLOGIN;
	GRANT CREATE, USAGE ON SCHEMA public TO calls_owner;
	SET ROLE calls_owner;
	CREATE TABLE src (id bigint, v int);
	SELECT pipeline.create_pipeline('calls_live', 'src', 'dst', key => ARRAY['id'],
	                                 schedule => 'continuous');
});
ok( $node->poll_query_until(
		'postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE application_name = 'pipeline worker: calls_live'}),
	'the continuous pipeline has its worker');

# --- an owner without EXECUTE on pipeline.run: the worker refuses, as CALL
my $offset = -s $node->logfile;
$node->safe_psql(
	'postgres', q{
	REVOKE EXECUTE ON PROCEDURE pipeline.run FROM PUBLIC;
	INSERT INTO src VALUES (1, 1);
});
ok( $node->wait_for_log(
		qr/ERROR:  permission denied for procedure run\n.*STATEMENT:  CALL pipeline\.run\('calls_live'\)/,
		$offset),
	'a worker refuses the run of an owner who may not call pipeline.run, and says which');
is($node->safe_psql('postgres', 'SELECT count(*) FROM dst'), '0', 'nothing was merged');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pipeline.runs WHERE pipeline = 'calls_live'}),
	'0', 'and no run was recorded, as for a refused CALL');
$node->safe_psql('postgres', 'GRANT EXECUTE ON PROCEDURE pipeline.run TO PUBLIC');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM dst'),
	'once the owner may call it, the worker merges the row');

# --- while a worker runs, its activity is the equivalent CALL
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE dst IN ACCESS EXCLUSIVE MODE');
$node->safe_psql('postgres', 'INSERT INTO src VALUES (2, 1)');
ok( $node->poll_query_until(
		'postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'pipeline worker' AND state = 'active'
		   AND query = $$CALL pipeline.run('calls_live')$$ AND wait_event_type = 'Lock'}),
	'pg_stat_activity shows the run a worker is in as CALL pipeline.run');
$locker->query_safe('COMMIT');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 2 FROM dst'), 'and the run goes on');

# --- a worker's run that finds a client's run holding the pipeline is
# skipped, and ends cleanly.  The client's run waits for the definition's
# row (locked here as an uncommitted alter would), holding the pipeline.
$offset = -s $node->logfile;
$locker->query_safe(
	q{BEGIN; SELECT 1 FROM pipeline.pipeline_defs WHERE name = 'calls_live' FOR UPDATE});
my $client = $node->background_psql('postgres');
$client->query_until(qr/started/, "\\echo started\nCALL pipeline.run('calls_live');\n");
ok( $node->poll_query_until(
		'postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'client backend' AND query LIKE 'CALL pipeline.run%'
		   AND wait_event_type = 'Lock'}),
	'a client run waits, holding the pipeline');
$node->safe_psql('postgres', 'INSERT INTO src VALUES (3, 1)');
ok( $node->wait_for_log(qr/NOTICE:  pipeline "calls_live" is already running/, $offset),
	'the worker\'s run is skipped');
$node->safe_psql('postgres', 'INSERT INTO src VALUES (4, 1)');
ok( $node->wait_for_log(
		qr/already running(?s:.*)NOTICE:  pipeline "calls_live" is already running/, $offset),
	'and the worker goes on after it');
$locker->query_safe('COMMIT');
$client->quit;
ok($node->poll_query_until('postgres', 'SELECT count(*) = 4 FROM dst'), 'every row is merged');
my $log = slurp_file($node->logfile, $offset);
unlike($log, qr/WARNING/, 'no warning: the skipped runs left no snapshot, portal or resource behind');
$locker->quit;

$node->stop;
done_testing();
