# A logical replication subscription writing a staging table: its inserts
# are staged and merged; an UPDATE, a DELETE or a TRUNCATE on the publisher
# stops the subscription with the staging guard's error (the apply worker
# fires row triggers enabled REPLICA, and TRUNCATE's statement triggers),
# instead of changing rows the pipeline already consumed, which its target
# would never learn.  The staged rows stay as they were; the target equals
# them.  Publisher and subscriber are two databases of one cluster (the
# slot is created by hand, the subscription with create_slot = false).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('sub');
$node->init(allows_streaming => 'logical');
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pipeline'");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE pub');
$node->safe_psql('postgres', 'CREATE DATABASE sub');
$node->safe_psql(
	'pub', q{
	CREATE TABLE orders (id int PRIMARY KEY, amount int);
	CREATE PUBLICATION orders_pub FOR TABLE orders;
	SELECT pg_create_logical_replication_slot('orders_sub', 'pgoutput');
});
$node->safe_psql(
	'sub', q{
	CREATE EXTENSION pipeline;
	CREATE TABLE orders (id int PRIMARY KEY, amount int);
	SELECT pipeline.create_pipeline('orders', 'orders', 'orders_cur', key => ARRAY['id']);
});
my $pub = $node->connstr . ' dbname=pub';
$node->safe_psql('sub',
	"CREATE SUBSCRIPTION orders_sub CONNECTION '$pub' PUBLICATION orders_pub "
	  . "WITH (create_slot = false, slot_name = 'orders_sub', copy_data = false)");

# Inserts reach the staging table and the target.
$node->safe_psql('pub', 'INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 5) g');
$node->poll_query_until('sub', 'SELECT count(*) = 5 FROM orders') or die 'inserts not replicated';
$node->safe_psql('sub', "CALL pipeline.run('orders')");
is($node->safe_psql('sub', 'SELECT count(*), sum(amount) FROM orders_cur'), '5|150',
	'replicated inserts are merged');

# Each changing statement stops the apply worker with the guard's error.
my %statements = (
	update => 'UPDATE orders SET amount = 0 WHERE id = 1',
	'delete from' => 'DELETE FROM orders WHERE id = 2',
	truncate => 'TRUNCATE orders');
foreach my $verb ('update', 'delete from', 'truncate')
{
	my $offset = -s $node->logfile;
	$node->safe_psql('pub', $statements{$verb});
	ok( $node->wait_for_log(qr/cannot \Q$verb\E staging table public\.orders/, $offset),
		"a replicated \U$verb\E is refused with the guard's error");
	# skip the refused change so that the next statement is tried
	$node->safe_psql('sub', 'ALTER SUBSCRIPTION orders_sub DISABLE');
	$node->poll_query_until('sub',
		q{SELECT count(*) = 0 FROM pg_stat_subscription WHERE subname = 'orders_sub' AND pid IS NOT NULL})
	  or die 'apply worker did not stop';
	$node->poll_query_until('pub',
		q{SELECT NOT active FROM pg_replication_slots WHERE slot_name = 'orders_sub'})
	  or die 'slot still in use';
	$node->safe_psql('pub',
		q{SELECT pg_replication_slot_advance('orders_sub', pg_current_wal_lsn())});
	$node->safe_psql('sub', 'ALTER SUBSCRIPTION orders_sub ENABLE');
}

is( $node->safe_psql('sub', 'SELECT count(*), sum(amount) FROM orders'),
	'5|150', 'the staged rows were not changed');
$node->safe_psql('sub', "CALL pipeline.run('orders')");
is( $node->safe_psql(
		'sub', q{
	SELECT count(*) FROM (SELECT id, amount FROM orders EXCEPT SELECT id, amount FROM orders_cur) d}),
	'0', 'the target equals the staging table');

$node->stop;
done_testing();
