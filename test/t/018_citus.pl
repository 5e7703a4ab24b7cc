# Pipelines on a Citus cluster: a coordinator and two workers on this
# machine.  Staging tables plain tables on the coordinator; targets Citus
# distributed or reference tables.  (Distributed staging tables, merged
# shard by shard: 019_sharded_pipelines.pl.)
#
#   1. What is refused, each with its reason: a reference table as the
#      staging table, and the pipelines whose statements Citus cannot route
#      to the shards.
#   2. Each strategy writes a distributed target (merge, scd2, aggregate,
#      append, full extracts) and a reference one, with the right result.
#   3. Data quality checks on a distributed target (a reference table
#      looked up, a value repeated in the batch), and a pipeline reading
#      its changes; the checks that would look values up in a distributed
#      table for each row, refused when added and at a run.  A reference
#      table looked up in a mapping; joined as a dimension, or captured,
#      refused with the reason.
#   4. Exactly once: two writers staging out of order while a session runs
#      a merge into a distributed target, and a worker killed with SIGKILL
#      (every process of it) in the middle; once it is back and Citus has
#      recovered its prepared transactions, runs to completion leave the
#      target holding each key's latest staged value.
#   5. A batch whose commit fails on a worker (it may hold no more
#      prepared transactions) fails its run, recorded with the error; the
#      session goes on, nothing of the batch is kept, the next run merges.
#
# Needs Citus built for this server (test/install_citus.sh builds it from
# its source when the source is at hand); skipped, saying so, otherwise.
use strict;
use warnings;

use PipelineCitus;
use PipelineConsumed;
use PipelineLoad;
use PipelinePowerLoss;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($coordinator, @workers) = citus_cluster();

# ---- 1. refused, each with its reason
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE ref_stage (id int, v text);
	SELECT create_reference_table('ref_stage');
	CREATE TABLE stage (id int, v text, ts int, del boolean);
	CREATE TABLE dist_target (id int PRIMARY KEY, v text, ts int);
	SELECT create_distributed_table('dist_target', 'id');
	CREATE TABLE events (value jsonb);
});
refused($coordinator, "SELECT pipeline.create_pipeline('p', 'ref_stage', 'dist_target', key => ARRAY['id'])",
	qr/source public\.ref_stage is a Citus reference table/, 'a reference staging table is refused');
refused($coordinator, "SELECT pipeline.prepare_source('ref_stage')",
	qr/is a Citus reference table/, 'prepare_source refuses it too');
refused($coordinator,
	"SELECT pipeline.create_pipeline('p', 'stage', 'dist_target', key => ARRAY['id'], sequence_by => 'ts', "
	  . "delete_when => 'del', except_columns => ARRAY['del'])",
	qr/cannot write Citus distributed table public\.dist_target.*tombstone table/s,
	'a merge remembering its deletes beside a distributed target is refused');
refused($coordinator,
	"SELECT pipeline.create_pipeline('p', 'events', 'dist_target', key => ARRAY['id'], format => 'debezium')",
	qr/cannot write Citus distributed table.*row state/s,
	'a merge keeping a row state beside a distributed target is refused');
# a target distributed after the pipeline was defined: the run says why
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE later (id int PRIMARY KEY, v text, ts int);
	SELECT pipeline.create_pipeline('later', 'stage', 'later', key => ARRAY['id'], sequence_by => 'ts',
	    delete_when => 'del', except_columns => ARRAY['del']);
	SELECT create_distributed_table('later', 'id');
	INSERT INTO stage VALUES (1, 'a', 1, false);
});
refused($coordinator, "CALL pipeline.run('later')", qr/cannot write Citus distributed table public\.later/,
	'a run of a pipeline whose target was distributed since says why');
$coordinator->safe_psql('postgres', "SELECT pipeline.drop_pipeline('later'); TRUNCATE stage");

# ---- 2. every strategy into distributed (and reference) targets
$coordinator->safe_psql(
	'postgres', q{
	SELECT pipeline.create_pipeline('merged', 'stage', 'dist_target', key => ARRAY['id'], sequence_by => 'ts',
	    except_columns => ARRAY['del']);
	CREATE TABLE history (id int, v text, ts int, __start_at int NOT NULL, __end_at int,
	    PRIMARY KEY (id, __start_at));
	CREATE UNIQUE INDEX ON history (id) WHERE __end_at IS NULL;
	SELECT create_distributed_table('history', 'id');
	SELECT pipeline.create_pipeline('history', 'stage', 'history', key => ARRAY['id'], strategy => 'scd2',
	    sequence_by => 'ts', delete_when => 'del', except_columns => ARRAY['del']);
	CREATE TABLE per_value (v text PRIMARY KEY, n bigint, last_ts int);
	SELECT create_distributed_table('per_value', 'v');
	SELECT pipeline.create_pipeline('per_value', 'stage', 'per_value', key => ARRAY['v'], strategy => 'aggregate',
	    columns => '{"n": "count(*)", "last_ts": "max(ts)"}', filter => 'v IS NOT NULL');
	CREATE TABLE log (id int, v text, ts int);
	SELECT create_distributed_table('log', 'id');
	SELECT pipeline.create_pipeline('log', 'stage', 'log', strategy => 'append', except_columns => ARRAY['del']);
	CREATE TABLE lookup (id int PRIMARY KEY, v text, ts int);
	SELECT create_reference_table('lookup');
	SELECT pipeline.create_pipeline('lookup', 'stage', 'lookup', key => ARRAY['id'], sequence_by => 'ts',
	    except_columns => ARRAY['del']);
	INSERT INTO stage VALUES (1, 'a', 1, false), (2, 'b', 1, false), (1, 'a2', 2, false), (3, 'c', 1, false);
	INSERT INTO stage VALUES (2, 'b0', 0, false), (3, NULL, 2, true), (NULL, 'x', 1, false);
});
$coordinator->safe_psql('postgres', "CALL pipeline.run('$_')")
  foreach ('merged', 'history', 'per_value', 'log', 'lookup');
is( $coordinator->safe_psql('postgres', "SELECT string_agg(id || coalesce(v, '-'), ' ' ORDER BY id) FROM dist_target"),
	'1a2 2b 3-', 'merge: the latest event of each key, a late one stale');
is( $coordinator->safe_psql('postgres',
		"SELECT string_agg(id || coalesce(v, '-') || __start_at || coalesce(__end_at::text, '+'), ' ' ORDER BY id, __start_at) FROM history"),
	'1a12 1a22+ 2b001 2b1+ 3c12', 'scd2: versions, a late event slotted before, a delete closing one');
is($coordinator->safe_psql('postgres', "SELECT string_agg(v || n, ' ' ORDER BY v) FROM per_value"),
	'a1 a21 b1 b01 c1 x1', 'aggregate: one row per group');
is($coordinator->safe_psql('postgres', 'SELECT count(*) FROM log'), '6', 'append: every row but the NULL id');
is($coordinator->safe_psql('postgres', "SELECT count(*) FROM pipeline.quarantine WHERE pipeline = 'log'"),
	'1', 'append: the row Citus cannot place (a NULL distribution column) quarantined');
is($coordinator->safe_psql('postgres', "SELECT string_agg(id || coalesce(v, '-'), ' ' ORDER BY id) FROM lookup"),
	'1a2 2b 3-', 'merge into a reference table');
is( $coordinator->safe_psql('postgres',
		"SELECT count(*) FROM pipeline.quarantine WHERE reason LIKE 'null key%'"),
	'3', 'the NULL key quarantined by each keyed pipeline');

$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE extracts (id int, v text);
	CREATE TABLE current (id int PRIMARY KEY, v text);
	SELECT create_distributed_table('current', 'id');
	SELECT pipeline.create_pipeline('current', 'extracts', 'current', key => ARRAY['id'], format => 'snapshot',
	    max_delete_share => 1);
	INSERT INTO extracts VALUES (1, 'a'), (2, 'b'), (3, 'c');
	INSERT INTO extracts VALUES (1, 'a2'), (3, 'c');
});
$coordinator->safe_psql('postgres', "CALL pipeline.run('current')");
is($coordinator->safe_psql('postgres', "SELECT string_agg(id || v, ' ' ORDER BY id) FROM current"),
	'1a2 3c', 'full extracts: the latest, a missing key deleted');

# ---- 3. data quality checks on a distributed target, and a pipeline reading it
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE orders_in (id int, status text, amount int);
	CREATE TABLE orders (id int PRIMARY KEY, status text, amount int);
	SELECT create_distributed_table('orders', 'id');
	CREATE TABLE statuses (status text PRIMARY KEY);
	INSERT INTO statuses VALUES ('new'), ('paid');
	SELECT create_reference_table('statuses');
	CREATE TABLE by_status (id int PRIMARY KEY, status text);
	SELECT pipeline.create_pipeline('orders', 'orders_in', 'orders', key => ARRAY['id']);
	SELECT pipeline.add_check('orders', 'amount_range', kind => 'range', column_name => 'amount', min_value => '0');
	SELECT pipeline.add_check('orders', 'known_status', kind => 'relationships', column_name => 'status',
	    ref_table => 'statuses');
	SELECT pipeline.add_check('orders', 'one_paid', kind => 'unique', column_name => 'amount',
	    unique_scope => 'batch', action => 'warn');
	SELECT pipeline.create_pipeline('by_status', 'orders', 'by_status', key => ARRAY['id'],
	    columns => '{"id": "id", "status": "status"}');
	INSERT INTO orders_in VALUES (1, 'new', 10), (2, 'paid', -5), (3, 'lost', 7), (4, 'paid', 10);
});
$coordinator->safe_psql('postgres', "CALL pipeline.run('orders'); CALL pipeline.run('by_status')");
is($coordinator->safe_psql('postgres', "SELECT string_agg(id || status, ' ' ORDER BY id) FROM orders"),
	'1new 4paid', 'checks on a distributed target: the rows failing them quarantined');
is( $coordinator->safe_psql('postgres',
		"SELECT string_agg(check_name || ' ' || r.status || ' ' || failing, ', ' ORDER BY check_name) "
		  . "FROM pipeline.check_results r JOIN pipeline.runs USING (run_id) WHERE pipeline = 'orders'"),
	'amount_range WARN 1, known_status WARN 1, one_paid WARN 2',
	'their results recorded, a reference table looked up, a value repeated in the batch found');
is($coordinator->safe_psql('postgres', "SELECT string_agg(id || status, ' ' ORDER BY id) FROM by_status"),
	'1new 4paid', 'a pipeline reading the distributed target gets its changes');
$coordinator->safe_psql('postgres', "INSERT INTO orders_in VALUES (4, 'new', 12); CALL pipeline.run('orders')");
$coordinator->safe_psql('postgres', "CALL pipeline.run('by_status')");
is($coordinator->safe_psql('postgres', "SELECT string_agg(id || status, ' ' ORDER BY id) FROM by_status"),
	'1new 4new', 'and each later change');
refused($coordinator,
	"SELECT pipeline.add_check('orders', 'unique_amount', kind => 'unique', column_name => 'amount')",
	qr/check "unique_amount" of pipeline "orders" cannot read Citus distributed table public\.orders.*unique_scope => 'batch'/s,
	'a unique check looking values up in a distributed target is refused, saying what works');
$coordinator->safe_psql('postgres',
	"CREATE TABLE customers (status text PRIMARY KEY); SELECT create_distributed_table('customers', 'status')");
refused($coordinator,
	"SELECT pipeline.add_check('orders', 'by_customer', kind => 'relationships', column_name => 'status', "
	  . "ref_table => 'customers')",
	qr/check "by_customer" of pipeline "orders" cannot read Citus distributed table public\.customers.*reference table/s,
	'a relationships check looking values up in a distributed table is refused');
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE amounts (amount int PRIMARY KEY);
	INSERT INTO amounts VALUES (1), (10), (12);
	SELECT pipeline.add_check('orders', 'known_amount', kind => 'relationships', column_name => 'amount',
	    ref_table => 'amounts');
	SELECT create_distributed_table('amounts', 'amount');
	INSERT INTO orders_in VALUES (5, 'new', 1);
});
refused($coordinator, "CALL pipeline.run('orders')",
	qr/check "known_amount" of pipeline "orders" cannot read Citus distributed table public\.amounts/,
	'a table a check reads distributed since: the run says why');

# reference tables: looked up in a mapping, not joined as dimensions
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE buyers (id int PRIMARY KEY, name text);
	SELECT create_reference_table('buyers');
	INSERT INTO buyers VALUES (1, 'one'), (2, 'two');
	CREATE TABLE sales_in (id int, customer_id int);
	CREATE TABLE sales (id int PRIMARY KEY, customer text);
	SELECT create_distributed_table('sales', 'id');
	SELECT pipeline.create_pipeline('sales', 'sales_in', 'sales', key => ARRAY['id'],
	    columns => '{"id": "id", "customer": "(SELECT c.name FROM buyers c WHERE c.id = customer_id)"}');
	INSERT INTO sales_in VALUES (10, 1), (11, 2), (12, 3);
	CALL pipeline.run('sales');
});
is($coordinator->safe_psql('postgres', "SELECT string_agg(id || coalesce(customer, '-'), ' ' ORDER BY id) FROM sales"),
	'10one 11two 12-', 'a reference table looked up in a mapping, into a distributed target');
refused($coordinator,
	"CREATE TABLE sales_named (id int PRIMARY KEY, customer text); "
	  . "SELECT pipeline.create_pipeline('sales_named', 'sales_in', 'sales_named', key => ARRAY['id'], "
	  . "columns => '{\"id\": \"s.id\", \"customer\": \"c.name\"}', "
	  . "joins => '[{\"table\": \"buyers\", \"as\": \"c\", \"on\": {\"customer_id\": \"id\"}}]')",
	qr/invalid join 1: public\.buyers is a Citus reference table.*look the values up in the mapping/s,
	'a reference table joined as a dimension is refused, pointing to a lookup');
refused($coordinator, "SELECT pipeline.capture('buyers')",
	qr/table public\.buyers is a Citus reference table.*no trigger of the capture fires/s,
	'capturing a reference table is refused with the reason');
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE regions (id int PRIMARY KEY, name text);
	INSERT INTO regions VALUES (1, 'north');
	CREATE TABLE regions_in (id int, name text);
	SELECT pipeline.create_pipeline('regions', 'regions_in', 'regions', key => ARRAY['id']);
	CREATE TABLE stores_in (id int, region_id int);
	CREATE TABLE stores (id int PRIMARY KEY, region text);
	SELECT pipeline.create_pipeline('stores', 'stores_in', 'stores', key => ARRAY['id'],
	    columns => '{"id": "s.id", "region": "r.name"}',
	    joins => '[{"table": "regions", "as": "r", "on": {"region_id": "id"}}]');
	SELECT create_reference_table('regions');
	INSERT INTO stores_in VALUES (1, 1);
});
refused($coordinator, "CALL pipeline.run('stores')",
	qr/invalid join 1: public\.regions is a Citus reference table/,
	'a dimension made a reference table since: the run says why');

# ---- 4. exactly once, writers out of order, a worker killed
$coordinator->safe_psql(
	'postgres', q{
	CREATE SEQUENCE version;
	CREATE TABLE changes (id int, v bigint);
	CREATE TABLE accounts (id int PRIMARY KEY, v bigint);
	SELECT create_distributed_table('accounts', 'id');
	SELECT pipeline.create_pipeline('accounts', 'changes', 'accounts', key => ARRAY['id'], sequence_by => 'v',
	    batch_size => 100);
});
$coordinator->safe_psql('postgres',
	out_of_order_writer(
		"INSERT INTO changes SELECT 1 + (random() * 199)::int, nextval('version') FROM generate_series(1, 1 + (random() * 3)::int)"
	));
my $scripts = PostgreSQL::Test::Utils::tempdir;
append_to_file("$scripts/write.sql", "CALL write_rows(800);\n");
append_to_file("$scripts/run.sql", "CALL pipeline.run('accounts');\n" x 100000);

my $after = last_run($coordinator);
my @load = map { start_psql($coordinator, "$scripts/write.sql") } 1 .. 2;
my $runner = start_psql($coordinator, "$scripts/run.sql");
wait_for_batches($coordinator, $after, 20);
ok(power_loss($workers[0]), 'every process of worker1 is gone');
$after = last_run($coordinator);
$workers[0]->start;
# Runs failed while it was gone; after pipeline.suspend_after_failures of
# them the pipeline was suspended, as for any failing pipeline: resumed,
# it goes on.
$coordinator->poll_query_until('postgres',
	"SELECT (SELECT count(*) FROM (SELECT pipeline.resume('accounts')) r) > 0 AND "
	  . "coalesce(sum(batches), 0) >= 20 FROM pipeline.run_log WHERE run_id > $after AND rows_read > 0")
  or die 'the runs did not go on once worker1 was back';
finish_load(@load);
$runner->kill_kill;
finish_load($runner);
# (its session may still be in a run: ended the hard way)
$coordinator->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'CALL pipeline.run%' AND pid <> pg_backend_pid()"
);
$coordinator->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE 'CALL pipeline.run%' AND pid <> pg_backend_pid()")
  or die 'the runner did not end';

# Citus commits (or rolls back) the prepared transactions the worker held
$coordinator->safe_psql('postgres', 'SELECT recover_prepared_transactions()');
$workers[0]->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pg_prepared_xacts')
  or die 'worker1 kept prepared transactions';
$coordinator->safe_psql('postgres', "SELECT pipeline.resume('accounts')");
$coordinator->safe_psql('postgres', "CALL pipeline.run('accounts')");
is($coordinator->safe_psql('postgres', "SELECT count(*) FROM pipeline.run_log WHERE status = 'running'"),
	'0', 'no run stays recorded as running');
is( differences(
		$coordinator,
		'SELECT id, max(v) FROM changes GROUP BY id',
		'SELECT id, v FROM accounts'),
	'0',
	'the distributed target holds each key\'s latest staged value');
ok( $coordinator->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE status = 'failed') > 0 AND sum(rows_read) > 1000 FROM pipeline.runs WHERE pipeline = 'accounts'"
	  ) eq 't',
	'runs failed while the worker was gone, and many rows went through');
is($coordinator->safe_psql('postgres', "SELECT count(*) FROM pipeline.quarantine WHERE pipeline = 'accounts'"),
	'0', 'nothing was quarantined');

# ---- 5. an error of a batch's commit itself: worker2 may hold one
# prepared transaction only, and a batch writing many shards needs several
$workers[1]->append_conf('postgresql.conf', "max_prepared_transactions = 1\n");
$workers[1]->restart;
$coordinator->safe_psql(
	'postgres', q{
	CREATE TABLE wide_src (id int, v int);
	CREATE TABLE wide (id int PRIMARY KEY, v int);
	SELECT create_distributed_table('wide', 'id');
	SELECT pipeline.create_pipeline('wide', 'wide_src', 'wide', key => ARRAY['id']);
	INSERT INTO wide_src SELECT g, g FROM generate_series(1, 20000) g;
});
my ($ret, $stdout, $stderr) =
  $coordinator->psql('postgres', "CALL pipeline.run('wide'); SELECT 'the session goes on'", on_error_stop => 0);
like($stderr, qr/prepared transactions/, 'the commit failed on the worker');
like($stdout, qr/the session goes on/, 'the run whose commit failed ends with an error, not its session');
is( $coordinator->safe_psql('postgres',
		"SELECT status || ': ' || (error_message LIKE '%prepared transactions%') FROM pipeline.runs WHERE pipeline = 'wide'"),
	'failed: true', 'the run is recorded failed with its error');
is($coordinator->safe_psql('postgres', 'SELECT count(*) FROM wide'), '0', 'nothing of its batch is kept');
$workers[1]->append_conf('postgresql.conf', "max_prepared_transactions = 50\n");
$workers[1]->restart;
$coordinator->safe_psql('postgres', "CALL pipeline.run('wide')");
is($coordinator->safe_psql('postgres', 'SELECT count(*) FROM wide'), '20000', 'the next run merges the rows');

$_->stop foreach ($coordinator, @workers);
done_testing();
