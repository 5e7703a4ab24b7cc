# Exactly once for pipelines joining a dimension (an aggregate and a
# merge), across crashes: a dimension's change is applied once and never
# lost, whether the crash comes before, during or after the run that
# applies it.
#
# Two writers stage order events (updates moving an order to another
# customer, deletes, late events) in short transactions committing out of
# order, while a third changes the captured dimension 'customers' (their
# segment, deletes, new customers) and a session runs the pipelines back
# to back in batches of 5.  Then:
#   1. kill -9 of the backend running it;
#   2. a power loss: every server process killed with SIGKILL at once.
# After each, once the writers are gone, runs to completion must leave each
# target exactly its join computed from scratch over the orders' latest
# events and the dimension as it is.
use strict;
use warnings;

use PipelineConsumed;
use PipelineLoad;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'needs /proc to find the server processes'
  unless -d '/proc/self';

my $node = PostgreSQL::Test::Cluster->new('join_crash');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pipeline'\nrestart_after_crash = on\n");
$node->start;

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION pipeline;
	CREATE SEQUENCE clock;
	CREATE TABLE customers (id int PRIMARY KEY, segment int NOT NULL);
	INSERT INTO customers SELECT i, i % 5 FROM generate_series(1, 30) i;
	SELECT pipeline.capture('customers');
	CREATE TABLE orders (id int, customer_id int, v int, seq bigint);
	SELECT pipeline.create_pipeline('by_segment', 'orders', 'by_segment', strategy => 'aggregate',
	    key => ARRAY['segment'], source_key => ARRAY['id'], sequence_by => 'seq',
	    delete_when => 'v < 0', batch_size => 5,
	    columns => '{"segment": "c.segment", "n": "count(*)", "total": "sum(v)", "high": "max(v)"}',
	    joins => '[{"table": "customers", "as": "c", "on": {"customer_id": "id"}}]');
	SELECT pipeline.create_pipeline('enriched', 'orders', 'enriched', key => ARRAY['id'],
	    sequence_by => 'seq', delete_when => 'v < 0', batch_size => 5,
	    columns => '{"customer_id": null, "segment": "c.segment"}',
	    joins => '[{"table": "customers", "as": "c", "on": {"customer_id": "id"}}]');
	-- A customer changes segment, leaves, or arrives (ids up to 34: some
	-- orders wait for theirs).
	CREATE PROCEDURE change_customers(n int) LANGUAGE plpgsql AS $$
	BEGIN
	    FOR i IN 1 .. n LOOP
	        CASE (random() * 3)::int
	            WHEN 0 THEN DELETE FROM customers WHERE id = 1 + (random() * 33)::int;
	            WHEN 1 THEN INSERT INTO customers VALUES (1 + (random() * 33)::int, (random() * 4)::int)
	                        ON CONFLICT (id) DO UPDATE SET segment = excluded.segment;
	            ELSE UPDATE customers SET segment = (random() * 4)::int WHERE id = 1 + (random() * 33)::int;
	        END CASE;
	        PERFORM pg_sleep(random() * 0.01);
	        COMMIT;
	    END LOOP;
	END $$;
});
# One to four order events a transaction, one in ten a delete, committing
# out of the order of their events.
$node->safe_psql('postgres',
	out_of_order_writer(
		    "INSERT INTO orders SELECT 1 + (random() * 199)::int, 1 + (random() * 34)::int, "
		  . "CASE WHEN random() < 0.1 THEN -1 ELSE (random() * 1000)::int END, nextval('clock') "
		  . "FROM generate_series(1, 1 + (random() * 3)::int)"));

my $latest_orders =
  "(SELECT DISTINCT ON (id) * FROM orders ORDER BY id, seq DESC, _xid DESC, _seq DESC) o "
  . "JOIN customers c ON c.id = o.customer_id WHERE o.v >= 0";
my $by_segment_from_scratch =
  "SELECT c.segment, count(*), sum(o.v), max(o.v) FROM $latest_orders GROUP BY c.segment";
my $enriched_from_scratch = "SELECT o.id, o.v, o.seq, c.segment FROM $latest_orders";

my $scripts = PostgreSQL::Test::Utils::tempdir;
append_to_file("$scripts/write.sql", "CALL write_rows(1000000);\n");
append_to_file("$scripts/dimension.sql", "CALL change_customers(1000000);\n");
append_to_file("$scripts/run.sql", "CALL pipeline.run('by_segment'); CALL pipeline.run('enriched');\n" x 100000);

# start_load: two order writers, a dimension writer, a session running the pipelines.
sub start_load
{
	my @h;
	push @h, start_psql($node, "$scripts/write.sql") for 1 .. 2;
	push @h, start_psql($node, "$scripts/dimension.sql");
	push @h, start_psql($node, "$scripts/run.sql");
	return @h;
}

# check_caught_up WHEN: runs to completion give the join from scratch.
sub check_caught_up
{
	my ($when) = @_;
	$node->safe_psql('postgres', "CALL pipeline.run('$_')") foreach ('by_segment', 'enriched');
	is($node->safe_psql('postgres', "SELECT count(*) FROM pipeline.run_log WHERE status = 'running'"),
		'0', "$when: no run stays recorded as running");
	is(differences($node, $by_segment_from_scratch, 'SELECT segment, n, total, high FROM by_segment'),
		'0', "$when: the aggregate is that of every order's latest event joined to the dimension as it is");
	is(differences($node, $enriched_from_scratch, 'SELECT id, v, seq, segment FROM enriched'),
		'0', "$when: the merge holds every order's latest event joined to the dimension as it is");
}

# ---- kill -9 of a backend running the pipelines, then a power loss
crash_under_load($node, \&start_load, sub { wait_for_batches($node, $_[0], 200) }, \&check_caught_up);

# the dimension changed many times; its change log keeps none of what both
# pipelines applied
ok($node->safe_psql('postgres', "SELECT count(*) > 50 FROM customers_changes") eq 'f',
	'the dimension\'s change log is trimmed as the pipelines follow it');

$node->stop;
done_testing();
