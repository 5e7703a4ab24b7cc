# The operator's view from outside the run: a second session watches a
# long run in pipeline.status and pipeline.runs (running, progress moving,
# an estimate of the time remaining), pipeline.metrics() over pipelines in
# every state passes Prometheus' own `promtool check metrics`, and with
# track_commit_timestamp the lag is dated by the pending row's commit.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('ops');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pipeline'
track_commit_timestamp = on
});
$node->start;

# A backlog of 10 batches, each slowed down by a trigger on the target so
# that the run lasts a few seconds.
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION pipeline;
	CREATE TABLE orders_staged (id int, amount numeric);
	SELECT pipeline.create_pipeline('orders', 'orders_staged', 'orders', key => ARRAY['id'],
	                                 batch_size => 100);
	CREATE FUNCTION slow_batch() RETURNS trigger LANGUAGE plpgsql
	    AS $$ BEGIN PERFORM pg_sleep(0.4); RETURN NULL; END $$;
	CREATE TRIGGER slow_batch AFTER INSERT ON orders
	    FOR EACH STATEMENT EXECUTE FUNCTION slow_batch();
	INSERT INTO orders_staged SELECT g, g FROM generate_series(1, 1000) g;
});
is( $node->safe_psql(
		'postgres', q{SELECT state, pending_rows FROM pipeline.status WHERE pipeline = 'orders'}),
	'idle|1000', 'before the run: idle, 1000 rows pending');

my $runner = $node->background_psql('postgres');
$runner->query_until(qr/started/, "\\echo started\nCALL pipeline.run('orders');\n");

# Another session sees the run while it goes on.
ok( $node->poll_query_until(
		'postgres', q{
		SELECT state = 'running' AND running_run_id IS NOT NULL AND progress_pct > 0
		       AND estimated_remaining > interval '0' AND running_for > interval '0'
		  FROM pipeline.status WHERE pipeline = 'orders'}),
	'status shows the run with its progress and the time remaining');
my $first = $node->safe_psql('postgres',
	q{SELECT rows_read FROM pipeline.runs WHERE pipeline = 'orders' AND status = 'running'});
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT rows_read > $first FROM pipeline.runs
		 WHERE pipeline = 'orders' AND status = 'running'}),
	"progress moves on while the run goes on (past $first of 1000 rows)");
is( $node->safe_psql(
		'postgres', q{
		SELECT rows_pending, rows_per_second > 0 FROM pipeline.runs
		 WHERE pipeline = 'orders' AND status = 'running'}),
	'1000|t', 'the running run knows what it has to do and its rate');
ok( $node->poll_query_until(
		'postgres', q{SELECT state = 'idle' FROM pipeline.status WHERE pipeline = 'orders'}),
	'the run finishes');
is( $node->safe_psql(
		'postgres', q{
		SELECT r.status, r.rows_read, r.progress_pct, r.estimated_remaining IS NULL,
		       s.pending_rows, s.last_status
		  FROM pipeline.runs r JOIN pipeline.status s ON s.last_run_id = r.run_id
		 WHERE s.pipeline = 'orders'}),
	'succeeded|1000|100.0|t|0|succeeded', 'then status and history agree on the finished run');
$runner->quit;

# Pipelines in every state, quarantined rows, freshness checks and a name
# that needs escaping, for the metrics.
$node->safe_psql(
	'postgres', q{
	INSERT INTO orders_staged VALUES (NULL, 1);          -- quarantined: NULL key
	CALL pipeline.run('orders');
	CREATE TABLE broken_staged (id int);
	SELECT pipeline.create_pipeline('broken', 'broken_staged', 'broken', key => ARRAY['id'],
	                                 on_schema_change => 'fail');
	ALTER TABLE broken_staged ADD COLUMN extra int;
	SELECT pipeline.create_pipeline('halted', 'orders_staged', 'halted', strategy => 'append');
	SELECT pipeline.pause('halted');
	SELECT pipeline.create_pipeline('odd "name" \ with' || chr(10) || 'newline', 'orders_staged', 'odd',
	                                 strategy => 'append');
	SELECT pipeline.add_freshness_check('orders', warn_after => '1 hour');
	SELECT pipeline.add_freshness_check('broken', warn_after => '1 hour');
	SELECT pipeline.check_freshness('orders'::regclass);
	SELECT pipeline.check_freshness('broken'::regclass);
});
$node->psql('postgres', "CALL pipeline.run('broken')") for 1 .. 5;
is( $node->safe_psql(
		'postgres', 'SELECT pipeline, state FROM pipeline.status ORDER BY pipeline'),
	"broken|suspended\nhalted|paused\nodd \"name\" \\ with\nnewline|idle\norders|idle",
	'pipelines in several states');

my $metrics = $node->safe_psql('postgres', 'SELECT pipeline.metrics()') . "\n";
like($metrics, qr/^pipeline_quarantined_rows\{database="postgres",pipeline="orders"\} 1$/m,
	'quarantined rows are counted');
like($metrics, qr/^pipeline_state\{database="postgres",pipeline="broken",state="suspended"\} 1$/m,
	'the suspended state is published');
like($metrics, qr/^pipeline_freshness_state\{.*relation="public.orders".*state="PASS"\} 1$/m,
	'freshness states are published');
like($metrics, qr/^pipeline_info\{database="postgres",pipeline="odd \\"name\\" \\\\ with\\nnewline"/m,
	'label values are escaped');

# promtool_check(TEXT): promtool's exit code and its output.
sub promtool_check
{
	my ($text) = @_;
	my ($stdout, $stderr);
	IPC::Run::run([ 'promtool', 'check', 'metrics' ], '<', \$text, '>', \$stdout, '2>', \$stderr);
	return ($? >> 8, $stdout . $stderr);
}

my ($rc, $said) = promtool_check($metrics);
is($rc, 0, 'promtool check metrics accepts the output');
is($said, '', 'promtool has nothing to complain about');

# The check can fail: promtool rejects a counter named against the conventions.
($rc, $said) = promtool_check("# HELP pipeline_runs Runs.\n# TYPE pipeline_runs counter\npipeline_runs 1\n");
isnt($rc, 0, 'promtool rejects a badly named counter (the check above can fail)');

# With track_commit_timestamp the oldest pending row's age is exact: its
# commit time, not the moment the last run caught up.
$node->safe_psql('postgres', "SELECT pg_sleep(0.3); INSERT INTO orders_staged VALUES (5000, 1)");
is( $node->safe_psql(
		'postgres', q{
		SELECT b.oldest_pending_at = pg_xact_commit_timestamp(s.xmin),
		       b.oldest_pending_at > c.caught_up_at + interval '0.3 seconds'
		  FROM orders_staged s, pipeline.backlog('orders') b, pipeline.cursors c
		 WHERE s.id = 5000 AND c.pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'orders')}),
	't|t', 'the oldest pending row is dated by its commit timestamp');

$node->stop;
done_testing();
