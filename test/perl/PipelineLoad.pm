# Background load for the crash tests: psql sessions running a script until
# the server goes away, and the last run recorded before a phase.
package PipelineLoad;

use strict;
use warnings;

use Exporter 'import';
use IPC::Run;
use PipelinePowerLoss;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(start_psql finish_load last_run kill_a_run crash_under_load out_of_order_writer
  wait_for_batches);

# start_psql(NODE, FILE): a background psql running the script in FILE on
# NODE's database postgres, its output thrown away (nothing reads it while
# it runs); returns its harness.
sub start_psql
{
	my ($node, $file) = @_;
	return IPC::Run::start(
		[ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-f', $file ],
		'<', \undef, '>', '/dev/null', '2>', '/dev/null',
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}

# finish_load(HANDLES): waits for the background sessions a crash ended.
sub finish_load
{
	foreach my $h (@_)
	{
		eval { $h->finish; };
	}
}

# out_of_order_writer(INSERT): the SQL of a procedure write_rows(n) that
# runs INSERT (a statement staging one to four rows, its sequence values
# from nextval) in n short transactions, each pausing at random before and
# after its commit, so that concurrent writers commit out of the order of
# their sequence values.
sub out_of_order_writer
{
	my ($insert) = @_;
	return qq{
	CREATE PROCEDURE write_rows(n int) LANGUAGE plpgsql AS \$\$
	BEGIN
	    FOR i IN 1 .. n LOOP
	        $insert;
	        PERFORM pg_sleep(random() * 0.004);
	        COMMIT;
	        PERFORM pg_sleep(random() * 0.004);
	    END LOOP;
	END \$\$;};
}

# kill_a_run(NODE, HANDLES): kill -9 of a backend running a pipeline; the
# postmaster restarts every process.  Waits for the background sessions
# HANDLES the crash ended and for the server to take connections again.
sub kill_a_run
{
	my ($node, @load) = @_;
	my $victim = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE query LIKE 'CALL pipeline.run%' AND pid <> pg_backend_pid() LIMIT 1");
	my $log_offset = -s $node->logfile;
	kill 'KILL', $victim;
	finish_load(@load);
	$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
	$node->poll_query_until('postgres', 'SELECT true') or die 'server did not come back';
}

# crash_under_load(NODE, START, READY, CHECK): the two crashes of the crash
# tests, each under the load START->() starts (background handles), once
# READY->(the last run before it) has seen the runs under way: a kill -9 of
# a backend running a pipeline, then a power loss (every server process at
# once, the node started again); CHECK->(WHEN) after each.
sub crash_under_load
{
	my ($node, $start, $ready, $check) = @_;
	my $after = last_run($node);
	my @load = $start->();
	$ready->($after);
	kill_a_run($node, @load);
	$check->('after kill -9 of a backend running them');

	$after = last_run($node);
	@load = $start->();
	$ready->($after);
	ok(power_loss($node), 'every server process is gone');
	finish_load(@load);
	$node->start;
	$check->('after a power loss');
}

# wait_for_batches(NODE, AFTER, N): until, since run AFTER, runs merged
# rows in N batches or more.
sub wait_for_batches
{
	my ($node, $after, $batches) = @_;
	$node->poll_query_until('postgres',
		"SELECT sum(batches) >= $batches FROM pipeline.run_log WHERE run_id > $after AND rows_read > 0")
	  or die 'the runs did not get under way';
}

# last_run(NODE): the id of the last run recorded, 0 when none.
sub last_run
{
	my ($node) = @_;
	return $node->safe_psql('postgres', 'SELECT coalesce(max(run_id), 0) FROM pipeline.run_log');
}

1;
