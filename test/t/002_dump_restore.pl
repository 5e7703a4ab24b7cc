# Survives the operator's tools: a pg_dump of a database with pipelines,
# restored into another cluster, keeps definitions, cursors, history and
# quarantine, data quality checks and their results, lineage, and its
# cursors stay exact: consumed rows are not applied again, pending ones and
# rows written after the restore are applied once.  The same holds for a
# DAG's change log and a captured table, for the archive of consumed
# rows, and for orchestration steps.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $old = PostgreSQL::Test::Cluster->new('old');
$old->init;
$old->append_conf('postgresql.conf', "shared_preload_libraries = 'pipeline'");
$old->start;

$old->safe_psql(
	'postgres', q{
	CREATE DATABASE app;
});
$old->safe_psql(
	'app', q{
	CREATE EXTENSION pipeline;
	CREATE TABLE src (id int, v int, note text);
	SELECT pipeline.create_pipeline('log', 'src', 'log_tgt', strategy => 'append');
	SELECT pipeline.create_pipeline('latest', 'src', 'latest_tgt', key => ARRAY['id'],
	                                 sequence_by => 'v', columns => '{"v": "v::int"}');
	SELECT pipeline.add_check('latest', 'v_below_100000', 'v < 100000', action => 'drop');
	INSERT INTO src SELECT g % 100, g, 'consumed' FROM generate_series(1, 1000) g;
	INSERT INTO src VALUES (NULL, 5000, 'bad');      -- quarantined by 'latest'
	CALL pipeline.run('log');
	CALL pipeline.run('latest');
	-- pending at dump time: never applied on the old cluster
	INSERT INTO src SELECT g % 100, g, 'pending' FROM generate_series(1001, 1300) g;
	-- 'latest' stops inside that transaction: a partial cursor is dumped
	CALL pipeline.run('latest', max_rows => 100);
});
my $dump = $old->basedir . '/app.dump';
$old->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $old->connstr('app') ], 'pg_dump');

my $new = PostgreSQL::Test::Cluster->new('new');
$new->init;
$new->append_conf('postgresql.conf', "shared_preload_libraries = 'pipeline'");
$new->start;
$new->safe_psql('postgres', 'CREATE DATABASE app');
$new->command_ok([ 'pg_restore', '-d', $new->connstr('app'), $dump ], 'pg_restore');

is( $new->safe_psql(
		'app', q{
	SELECT string_agg(name || ':' || strategy, ',' ORDER BY name) FROM pipeline.pipelines}),
	'latest:merge,log:append',
	'definitions restored');
is($new->safe_psql('app', 'SELECT count(*) FROM pipeline.quarantine'),
	'1', 'quarantine restored');
is( $new->safe_psql(
		'app', q{
	SELECT string_agg(c.name || ':' || r.status || ':' || r.total, ',' ORDER BY r.run_id)
	  FROM pipeline.checks c JOIN pipeline.check_results r ON r.check_id = c.id}),
	'v_below_100000:PASS:1000,v_below_100000:PASS:100',
	'checks and their results restored');
is( $new->safe_psql(
		'app', q{
	SELECT string_agg(source_column || '>' || coalesce(target_column, '*') || ':' || lineage_type, ','
	                  ORDER BY source_column, target_column)
	  FROM pipeline.lineage WHERE pipeline = 'latest' AND level = 'column'}),
	'id>id:DIRECT,note>note:DIRECT,v>v:DIRECT,v>*:INDIRECT',
	'lineage restored');

# written after the restore, on the new cluster's transaction ids; one row
# fails the restored check and is dropped
$new->safe_psql('app',
	"INSERT INTO src SELECT g % 100, g, 'after restore' FROM generate_series(1301, 1500) g;"
	  . "INSERT INTO src VALUES (7, 200000, 'too big')");
$new->safe_psql('app', "CALL pipeline.run('log')");
$new->safe_psql('app', "CALL pipeline.run('latest')");

is( $new->safe_psql(
		'app', q{
	SELECT count(*) = (SELECT count(*) FROM src) AND count(DISTINCT v) = count(*) FROM log_tgt}),
	't',
	'append target holds every staged row exactly once across dump and restore');
is( $new->safe_psql(
		'app', q{
	SELECT count(*) FROM (SELECT DISTINCT ON (id) id, v FROM src WHERE id IS NOT NULL
	                      AND v < 100000 ORDER BY id, v DESC) e
	FULL JOIN latest_tgt t USING (id) WHERE e.v IS DISTINCT FROM t.v}),
	'0',
	'merge target holds the latest version of every key, without the dropped row');
is( $new->safe_psql(
		'app', q{
	SELECT rows_dropped || ':' || r.status || ':' || r.failing FROM pipeline.runs u
	  JOIN pipeline.check_results r USING (run_id) WHERE u.pipeline = 'latest'
	 ORDER BY run_id DESC LIMIT 1}),
	'1:WARN:1',
	'the restored check applies to rows written after the restore');
is( $new->safe_psql(
		'app', q{
	SELECT string_agg(pipeline || ':' || rows_read, ',' ORDER BY run_id)
	  FROM pipeline.runs WHERE status = 'succeeded'}),
	'log:1001,latest:1001,latest:100,log:501,latest:401',
	'each run after the restore read only what was pending');

# DROP EXTENSION refuses while sources depend on it, and CASCADE leaves the data.
my ($ret, $stdout, $stderr) = $new->psql('app', 'DROP EXTENSION pipeline');
like($stderr, qr/depends on function pipeline\.current_xid/, 'DROP EXTENSION refuses while sources use it');
$new->safe_psql('app', 'DROP EXTENSION pipeline CASCADE');
is($new->safe_psql('app', 'SELECT count(*) FROM src'), '1502', 'sources keep their rows after DROP EXTENSION CASCADE');
is($new->safe_psql('app', 'SELECT count(*) FROM log_tgt'), '1502', 'targets stay');
$new->safe_psql('app', 'CREATE EXTENSION pipeline');
is($new->safe_psql('app', 'SELECT count(*) FROM pipeline.pipelines'), '0', 'a fresh install starts empty');

# A DAG (a pipeline reading another's target through its change log), a
# captured table (copied, and aggregated: its groups' and rows' state come
# back with it) and a captured partitioned table, each with changes
# consumed and changes pending at dump time: after the restore, the readers
# take up exactly where they were and the capture triggers (of every
# partition) log again.
$old->safe_psql('postgres', 'CREATE DATABASE flow');
$old->safe_psql(
	'flow', q{
	CREATE EXTENSION pipeline;
	CREATE TABLE raw (id int, v int);
	SELECT pipeline.create_pipeline('silver', 'raw', 'silver', key => ARRAY['id'], sequence_by => 'v');
	SELECT pipeline.create_pipeline('gold', 'silver', 'gold', key => ARRAY['id']);
	CREATE TABLE accounts (id int PRIMARY KEY, balance int);
	SELECT pipeline.capture('accounts');
	SELECT pipeline.create_pipeline('accounts_copy', 'accounts', 'accounts_copy', key => ARRAY['id']);
	SELECT pipeline.create_pipeline('accounts_shards', 'accounts', 'accounts_shards',
	    strategy => 'aggregate', key => ARRAY['shard'],
	    columns => '{"shard": "id % 5", "n": "count(*)", "total": "sum(balance)", "top": "max(balance)"}');
	CREATE TABLE sales (id int, account_id int, v int);
	SELECT pipeline.create_pipeline('sales_by_balance', 'sales', 'sales_by_balance',
	    strategy => 'aggregate', key => ARRAY['balance'], source_key => ARRAY['id'],
	    columns => '{"balance": "a.balance", "n": "count(*)", "total": "sum(v)"}',
	    joins => '[{"table": "accounts", "as": "a", "on": {"account_id": "id"}}]');
	CREATE TABLE orders (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
	CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
	CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us');
	SELECT pipeline.capture('orders');
	SELECT pipeline.create_pipeline('orders_copy', 'orders', 'orders_copy', key => ARRAY['id', 'region']);
	INSERT INTO orders SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 40) g;
	CALL pipeline.run('orders_copy');
	INSERT INTO raw SELECT g % 50, g FROM generate_series(1, 200) g;
	INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 50) g;
	CALL pipeline.run('silver');
	CALL pipeline.run('gold');
	CALL pipeline.run('accounts_copy');
	CALL pipeline.run('accounts_shards');
	INSERT INTO sales SELECT g, g % 60, g FROM generate_series(1, 100) g;
	CALL pipeline.run('sales_by_balance');
	-- pending at dump time
	INSERT INTO raw SELECT g % 50, g FROM generate_series(201, 300) g;
	CALL pipeline.run('silver');
	UPDATE accounts SET balance = balance + 1 WHERE id <= 10;
	DELETE FROM accounts WHERE id > 45;
	UPDATE orders SET region = 'eu' WHERE id < 10 AND region = 'us';
	DELETE FROM orders_eu WHERE id > 35;
});
my $flow_dump = $old->basedir . '/flow.dump';
$old->command_ok([ 'pg_dump', '-Fc', '-f', $flow_dump, '-d', $old->connstr('flow') ], 'pg_dump of a DAG and a capture');
$new->safe_psql('postgres', 'CREATE DATABASE flow');
$new->command_ok([ 'pg_restore', '-d', $new->connstr('flow'), $flow_dump ], 'pg_restore of a DAG and a capture');
is($new->safe_psql('flow', q{SELECT upstream || ' > ' || downstream FROM pipeline.dependencies}),
	'silver > gold', 'the DAG is restored');
is($new->safe_psql('flow', q{SELECT string_agg(relation || ' ' || change_log, ', ' ORDER BY relation::text) FROM pipeline.captures}),
	'accounts accounts_changes, orders orders_changes', 'the captures are restored');
is($new->safe_psql('flow', q{SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pipeline\_capture\_%'
	AND tgrelid IN ('orders'::regclass, 'orders_eu'::regclass, 'orders_us'::regclass)}),
	'24', 'the partitions keep their capture triggers');
is( $new->safe_psql(
		'flow', q{
	SELECT string_agg(tgname || ' ' || tgenabled::text, ', ' ORDER BY tgname) FROM pg_trigger
	 WHERE tgrelid = 'accounts'::regclass}),
	'pipeline_capture_delete O, pipeline_capture_insert O, pipeline_capture_replica_delete R, '
	  . 'pipeline_capture_replica_insert R, pipeline_capture_replica_truncate R, '
	  . 'pipeline_capture_replica_update R, pipeline_capture_truncate O, pipeline_capture_update O',
	'the capture triggers are restored, each enabled for the sessions it was');
is($new->safe_psql('flow', q{SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pipeline\_capture\_replica\_%'
	AND tgenabled = 'R' AND tgrelid IN ('orders'::regclass, 'orders_eu'::regclass, 'orders_us'::regclass)}),
	'12', 'the partitions\' replica capture triggers are restored enabled REPLICA');
$new->safe_psql(
	'flow', q{
	INSERT INTO raw SELECT g % 50, g FROM generate_series(301, 400) g;
	UPDATE accounts SET balance = 0 WHERE id = 1;
	INSERT INTO accounts VALUES (99, 1);
	SET session_replication_role = replica;
	UPDATE accounts SET balance = 7 WHERE id = 2;
	RESET session_replication_role;
	CALL pipeline.run('silver');
	CALL pipeline.run('gold');
	CALL pipeline.run('accounts_copy');
	CALL pipeline.run('accounts_shards');
	INSERT INTO sales VALUES (101, 99, 5), (102, 3, 7);
	CALL pipeline.run('sales_by_balance');
	INSERT INTO orders_us VALUES (100, 'us', 1);
	UPDATE orders SET v = 0 WHERE id = 2;
	CALL pipeline.run('orders_copy');
});
is( $new->safe_psql(
		'flow', q{
	SELECT (SELECT count(*) FROM (TABLE silver EXCEPT TABLE gold) a) + (SELECT count(*) FROM (TABLE gold EXCEPT TABLE silver) b),
	       (SELECT count(*) FROM silver), (SELECT min(v) FROM silver)}),
	'0|50|351', 'after the restore, gold equals silver, which holds the latest version of every key');
is( $new->safe_psql(
		'flow', q{
	SELECT (SELECT count(*) FROM (TABLE accounts EXCEPT TABLE accounts_copy) a)
	     + (SELECT count(*) FROM (TABLE accounts_copy EXCEPT TABLE accounts) b),
	       (SELECT count(*) FROM accounts_copy), (SELECT balance FROM accounts_copy WHERE id = 1),
	       (SELECT balance FROM accounts_copy WHERE id = 2)}),
	'0|46|0|7', 'the copy of the captured table equals it: changes before and after the dump applied once, replicated ones too');
is( $new->safe_psql(
		'flow', q{
	SELECT group_state::text || ' ' || row_state::text FROM pipeline.pipeline_defs
	 WHERE name = 'accounts_shards'}),
	'accounts_shards_groups accounts_shards_rows', 'an aggregate pipeline comes back with its state tables');
is( $new->safe_psql(
		'flow', q{
	SELECT count(*) FROM (
	  (SELECT shard, n, total, top FROM accounts_shards
	   EXCEPT SELECT id % 5, count(*), sum(balance), max(balance) FROM accounts GROUP BY 1)
	  UNION ALL
	  (SELECT id % 5, count(*), sum(balance), max(balance) FROM accounts GROUP BY 1
	   EXCEPT SELECT shard, n, total, top FROM accounts_shards)) d}),
	'0', 'the aggregate of the captured table equals its query: changes before and after the dump counted once');
is( $new->safe_psql(
		'flow', q{
	SELECT count(*) FROM (
	  (SELECT balance, n, total FROM sales_by_balance
	   EXCEPT SELECT a.balance, count(*), sum(s.v) FROM sales s JOIN accounts a ON a.id = s.account_id GROUP BY 1)
	  UNION ALL
	  (SELECT a.balance, count(*), sum(s.v) FROM sales s JOIN accounts a ON a.id = s.account_id GROUP BY 1
	   EXCEPT SELECT balance, n, total FROM sales_by_balance)) d}),
	'0', 'an aggregate joining the captured table equals its query: dimension changes before and after the dump applied once');
is( $new->safe_psql(
		'flow', q{
	SELECT (SELECT count(*) FROM (TABLE orders EXCEPT TABLE orders_copy) a)
	     + (SELECT count(*) FROM (TABLE orders_copy EXCEPT TABLE orders) b),
	       (SELECT count(*) FROM orders_copy), (SELECT v FROM orders_copy WHERE id = 2)}),
	'0|38|0', 'the copy of the captured partitioned table equals it: changes before and after the dump applied once');

# The archive: batches (compressed with a dictionary), the retention
# setting and the runs' cursors survive too.  After the restore the batches
# read back identically, passes go on, and a replay merges the archived
# rows and those written since.
$old->safe_psql('postgres', 'CREATE DATABASE arch');
$old->safe_psql(
	'arch', q{
	SET pipeline.archive_interval = -1;
	CREATE EXTENSION pipeline;
	CREATE TABLE ev (id int, kind text, at timestamptz);
	SELECT pipeline.create_pipeline('ev', 'ev', 'ev_cur', key => ARRAY['id']);
	SELECT pipeline.set_retention('ev', keep => '0', batch_rows => 100, dictionary_size => 1024);
	INSERT INTO ev SELECT g, (ARRAY['view', 'click'])[g % 2 + 1], '2026-01-01'::timestamptz + g * interval '1 min'
	  FROM generate_series(1, 2000) g;
	CALL pipeline.run('ev');
	SELECT pipeline.archive('ev');
	INSERT INTO ev SELECT g, 'pending', now() FROM generate_series(2001, 2100) g;
});
my $archived = q{SELECT count(*), md5(string_agg(a::text, ',' ORDER BY a._seq))
                   FROM pipeline.archive_batches b, pipeline.archived_rows(b.id, NULL::ev) a};
my $before = $old->safe_psql('arch', $archived);
like($before, qr/^2000\|/, 'the old cluster archived the consumed rows');
my $arch_dump = $old->basedir . '/arch.dump';
$old->command_ok([ 'pg_dump', '-Fc', '-f', $arch_dump, '-d', $old->connstr('arch') ], 'pg_dump of an archive');
$new->safe_psql('postgres', 'CREATE DATABASE arch');
$new->command_ok([ 'pg_restore', '-d', $new->connstr('arch'), $arch_dump ], 'pg_restore of an archive');
is($new->safe_psql('arch', $archived), $before, 'the restored batches read back identically');
is( $new->safe_psql(
		'arch', q{SELECT count(*) FILTER (WHERE dictionary_id IS NOT NULL), count(*) FROM pipeline.archive_batches}),
	'20|20', 'the restored batches keep their dictionary');
$new->safe_psql('arch', q{SET pipeline.archive_interval = -1; CALL pipeline.run('ev');});
is($new->safe_psql('arch', q{SELECT rows_archived FROM pipeline.archive('ev')}),
	'100', 'after the restore a pass archives what was pending');
$new->safe_psql('arch', q{DELETE FROM ev_cur; CALL pipeline.replay('ev');});
is($new->safe_psql('arch', 'SELECT count(*), count(DISTINCT id) FROM ev_cur'),
	'2100|2100', 'a replay merges the rows archived before the dump and after the restore');

# Staging tables keep their guards, on each partition and enabled as before
# (the row guard REPLICA, so that a subscription cannot change a restored
# staging table either), and a partitioned one its pending rows.
$old->safe_psql('postgres', 'CREATE DATABASE parts');
$old->safe_psql(
	'parts', q{
	CREATE EXTENSION pipeline;
	CREATE TABLE psrc (id int, d int) PARTITION BY RANGE (d);
	CREATE TABLE psrc_1 PARTITION OF psrc FOR VALUES FROM (0) TO (100);
	SELECT pipeline.create_pipeline('parts', 'psrc', 'psrc_tgt', key => ARRAY['id']);
	CREATE TABLE psrc_2 PARTITION OF psrc FOR VALUES FROM (100) TO (200);
	INSERT INTO psrc VALUES (1, 1), (2, 150);
	CALL pipeline.run('parts');
	INSERT INTO psrc VALUES (3, 2), (4, 160);
});
my $guards = q{SELECT string_agg(format('%s:%s:%s', tgrelid::regclass, tgname, tgenabled), ','
                                 ORDER BY tgrelid::regclass::text, tgname)
                 FROM pg_trigger WHERE tgname LIKE 'pipeline_staging_guard%'};
my $guards_before = $old->safe_psql('parts', $guards);
my $parts_dump = $old->basedir . '/parts.dump';
$old->command_ok([ 'pg_dump', '-Fc', '-f', $parts_dump, '-d', $old->connstr('parts') ],
	'pg_dump of a partitioned staging table');
$new->safe_psql('postgres', 'CREATE DATABASE parts');
$new->command_ok([ 'pg_restore', '-d', $new->connstr('parts'), $parts_dump ],
	'pg_restore of a partitioned staging table');
is($new->safe_psql('parts', $guards), $guards_before, 'the guards are restored, enabled as before');
my ($g_ret, $g_out, $g_err) = $new->psql('parts', 'UPDATE psrc SET d = 0');
like($g_err, qr/cannot update staging table public\.psrc/, 'a restored staging table refuses an UPDATE');
($g_ret, $g_out, $g_err) =
  $new->psql('parts', 'SET session_replication_role = replica; DELETE FROM psrc_2');
like($g_err, qr/cannot delete from staging table public\.psrc_2/,
	'and its partitions a DELETE in replica mode');
$new->safe_psql('parts', "INSERT INTO psrc VALUES (5, 170); CALL pipeline.run('parts');");
is($new->safe_psql('parts', q{SELECT string_agg(id::text, ',' ORDER BY id) FROM psrc_tgt}),
	'1,2,3,4,5', 'rows pending at the dump and written after the restore are merged');
is( $new->safe_psql('parts', q{SELECT string_agg(rows_read::text, ',' ORDER BY run_id) FROM pipeline.runs}),
	'2,3', 'each once');

# Orchestration steps: their definitions, upstreams, relations (regclass),
# failure policy, history and totals are restored; a restored step runs
# after its restored upstream, and the next step made takes a new id;
# DROP EXTENSION takes the steps and leaves the views they refreshed.
$old->safe_psql('postgres', 'CREATE DATABASE steps');
$old->safe_psql(
	'steps', q{
	CREATE EXTENSION pipeline;
	CREATE TABLE "Order Items" (id int, v int);
	SELECT pipeline.create_pipeline('orders', '"Order Items"', 'orders', key => ARRAY['id']);
	CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS n FROM orders;
	CREATE TABLE audit (n bigint);
	SELECT pipeline.create_step('refresh totals', 'REFRESH MATERIALIZED VIEW totals', after => ARRAY['orders'],
	                            statement_timeout => '1 min');
	SELECT pipeline.create_step('note', 'INSERT INTO audit SELECT n FROM totals', after => ARRAY['refresh totals'],
	                            reads => ARRAY['totals'::regclass]);
	SELECT pipeline.set_failure_policy('note', suspend_after_failures => 4);
	INSERT INTO "Order Items" SELECT g, g FROM generate_series(1, 5) g;
	CALL pipeline.run('orders');
	CALL pipeline.run_step('refresh totals');
	CALL pipeline.run_step('note');
});
my $steps_of = q{SELECT string_agg(format('%s %s %s %s', s.name, s.statement_timeout, s.suspend_after_failures,
                                         t.runs_succeeded), ', ' ORDER BY s.name)
                   FROM pipeline.steps s LEFT JOIN pipeline.step_state t ON t.step_id = s.id};
my $graph_of = q{SELECT string_agg(upstream || ' > ' || downstream, ', ' ORDER BY downstream) FROM pipeline.dependencies
                  WHERE downstream_kind = 'step'};
my $steps_before = $old->safe_psql('steps', $steps_of);
my $steps_dump = $old->basedir . '/steps.dump';
$old->command_ok([ 'pg_dump', '-Fc', '-f', $steps_dump, '-d', $old->connstr('steps') ], 'pg_dump of steps');
$new->safe_psql('postgres', 'CREATE DATABASE steps');
$new->command_ok([ 'pg_restore', '-d', $new->connstr('steps'), $steps_dump ], 'pg_restore of steps');
is($new->safe_psql('steps', $steps_of), $steps_before, 'the steps, their failure policy and totals are restored');
is($new->safe_psql('steps', $graph_of), 'refresh totals > note, orders > refresh totals', 'and their upstreams');
is( $new->safe_psql('steps',
		q{SELECT string_agg(relation::text || ' ' || access, ', ' ORDER BY relation::text, access) FROM pipeline.step_relations}),
	'audit write, orders read, totals read, totals write', 'and what they read and write');
is($new->safe_psql('steps', q{SELECT count(*) FROM pipeline.step_runs WHERE status = 'succeeded'}), '2',
	'and their history');
$new->safe_psql(
	'steps', q{
	INSERT INTO "Order Items" VALUES (6, 6);
	CALL pipeline.run('orders');
	CALL pipeline.run_step('refresh totals');
	CALL pipeline.run_step('note');
});
is($new->safe_psql('steps', 'SELECT string_agg(n::text, \',\' ORDER BY n) FROM audit'), '5,6',
	'a restored step runs after its restored upstream');
cmp_ok($new->safe_psql('steps', q{SELECT pipeline.create_step('later', 'SELECT 1')}), '>',
	$new->safe_psql('steps', q{SELECT max(id) FROM pipeline.steps WHERE name <> 'later'}),
	'a step made after the restore takes a new id');
$new->safe_psql('steps', 'DROP EXTENSION pipeline CASCADE');
is($new->safe_psql('steps', 'SELECT n FROM totals'), '6', 'DROP EXTENSION leaves the refreshed view');

$old->stop;
$new->stop;
done_testing();
