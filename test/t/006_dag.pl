# A DAG of three continuous pipelines with fan-out stays exact under
# concurrent writers: silver merges raw events (latest wins by v, deletes);
# gold mirrors silver through silver's change log; audit appends every
# change silver published.  Writers commit out of order (each transaction
# sleeps before its commit, so a lower v often commits after a higher one),
# and the server is killed (kill -9) while they write.  Conditions are
# polled, never slept on.
use strict;
use warnings;

use IPC::Run;
use PipelinePowerLoss;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('dag');
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

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION pipeline;
	CREATE SEQUENCE versions;
	CREATE TABLE raw (id int, v bigint, amount int, op text);
	SELECT pipeline.create_pipeline('silver', 'raw', 'silver', key => ARRAY['id'], sequence_by => 'v',
	                                 delete_when => $$op = 'd'$$, columns => '{"op": null}',
	                                 batch_size => 200, schedule => 'continuous');
	SELECT pipeline.create_pipeline('gold', 'silver', 'gold', key => ARRAY['id'],
	                                 schedule => 'continuous');
	SELECT pipeline.create_pipeline('audit', 'silver', 'audit', strategy => 'append',
	                                 columns => '{"op": "_op", "at_xid": "_xid", "at_seq": "_seq"}',
	                                 schedule => 'continuous');
});
is( $node->safe_psql(
		'postgres', q{SELECT string_agg(upstream || ' > ' || downstream, ', ' ORDER BY downstream) FROM pipeline.dependencies}),
	'silver > audit, silver > gold', 'the DAG: silver feeds gold and audit');

# Each transaction stages two events and sleeps before committing: versions
# are taken in one order and committed in another.
my $script = $node->basedir . '/writer.sql';
open(my $fh, '>', $script) or die;
print $fh q{
\set a random(1, 300)
\set b random(1, 300)
BEGIN;
INSERT INTO raw VALUES (:a, nextval('versions'), (random() * 1000)::int, CASE WHEN random() < 0.15 THEN 'd' ELSE 'u' END);
INSERT INTO raw VALUES (:b, nextval('versions'), (random() * 1000)::int, CASE WHEN random() < 0.15 THEN 'd' ELSE 'u' END);
\sleep 5 ms
COMMIT;
};
close $fh;

# writers(SECONDS): four pgbench clients staging events, in the background.
sub writers
{
	my ($seconds) = @_;
	my ($out, $err) = ('', '');
	return IPC::Run::start(
		[ 'pgbench', '-n', '-c', '4', '-j', '2', '-T', $seconds, '-f', $script, '-h', $node->host,
		  '-p', $node->port, 'postgres' ], '>', \$out, '2>', \$err);
}

# The latest event of each key decides: present with its amount, or deleted.
my $silver_exact = q{
	WITH latest AS (SELECT DISTINCT ON (id) id, v, amount, op FROM raw ORDER BY id, v DESC),
	     expected AS (SELECT id, v, amount FROM latest WHERE op = 'u')
	SELECT (SELECT count(*) FROM (SELECT * FROM expected EXCEPT SELECT id, v, amount FROM silver) a)
	     + (SELECT count(*) FROM (SELECT id, v, amount FROM silver EXCEPT SELECT * FROM expected) b)
	     + (SELECT count(*) - count(DISTINCT id) FROM silver)};
my $gold_exact = q{
	SELECT (SELECT count(*) FROM (SELECT id, v, amount FROM gold EXCEPT SELECT id, v, amount FROM silver) a)
	     + (SELECT count(*) FROM (SELECT id, v, amount FROM silver EXCEPT SELECT id, v, amount FROM gold) b)};
# Replaying audit's changes in log order ends at silver's rows.
my $audit_exact = q{
	WITH last AS (SELECT DISTINCT ON (id) id, v, amount, op FROM audit ORDER BY id, at_xid DESC, at_seq DESC),
	     replayed AS (SELECT id, v, amount FROM last WHERE op = 'upsert')
	SELECT (SELECT count(*) FROM (SELECT * FROM replayed EXCEPT SELECT id, v, amount FROM silver) a)
	     + (SELECT count(*) FROM (SELECT id, v, amount FROM silver EXCEPT SELECT * FROM replayed) b)};

# --- phase 1: writers, and a power loss while they write
my $h = writers(8);
$node->poll_query_until('postgres', 'SELECT count(*) > 2000 FROM raw')
  or die 'the writers did not start';
ok($node->poll_query_until('postgres', 'SELECT count(*) > 0 FROM audit'),
	'changes flow to the readers while the writers write');
ok(power_loss($node), 'kill -9 of every server process while writers and the DAG run');
$h->finish;    # the writers lost their connections: their open transactions never committed
$node->start;

# --- phase 2: writers again, then everything settles
$h = writers(4);
$h->finish;
ok( $node->poll_query_until(
		'postgres', "SELECT ($silver_exact) + ($gold_exact) + ($audit_exact) = 0 AND (SELECT count(*) FROM silver) > 0"),
	'the DAG settles');
is($node->safe_psql('postgres', $silver_exact), '0', 'silver holds the latest version of every key: stale events and deletes applied');
is($node->safe_psql('postgres', $gold_exact), '0', 'gold, reading silver\'s change log, equals silver');
is($node->safe_psql('postgres', $audit_exact), '0', 'audit\'s changes, replayed in order, end at silver');
is( $node->safe_psql('postgres', 'SELECT count(*) - count(DISTINCT (at_xid, at_seq)) FROM audit'),
	'0', 'no change reached audit twice');
ok( $node->safe_psql(
		'postgres', q{
		SELECT count(*) FILTER (WHERE op = 'delete') > 0 AND count(*) > (SELECT count(*) FROM silver)
		  FROM audit}) eq 't',
	'audit saw updates and deletes, not just the final rows');
ok( $node->safe_psql('postgres', 'SELECT (SELECT count(*) FROM silver_changes) < (SELECT count(*) FROM audit)')
	  eq 't', 'consumed changes are trimmed from the log');
is( $node->safe_psql(
		'postgres', q{SELECT count(*) FROM pipeline.runs WHERE status = 'running' AND NOT pipeline.is_running(
		                 (SELECT id FROM pipeline.pipelines p WHERE p.name = runs.pipeline))}),
	'0', 'no run is left running by the crash');

$node->stop;
done_testing();
