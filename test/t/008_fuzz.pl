# Fuzzing: nothing a role can send crashes the server or hangs it.
#
# One database holds the extension in use: pipelines of every strategy
# (append; merge with sequence_by and delete_when; scd2), a pipeline on
# another's target (a DAG) with a provenance column, checks of several kinds
# with quarantined and dropped rows, a captured table with a pipeline on it,
# retention with archive batches, freshness checks (one scheduled by pg_cron)
# and the lineage they all make; a plain role owns some of them, the
# superuser the others.  Then, once connected as the plain role and once as
# the superuser, each with a 5 s statement_timeout:
#   1. every function and procedure of schema pipeline, read from pg_proc at
#      run time (new ones are covered without editing this file), is called
#      with each of its arguments in turn set to NULL, an empty value ('',
#      '{}', oid 0, ...), a huge one (1 MB text or bytea, 10,000-element
#      arrays and jsonb objects, the type's max and min) and a few odd ones,
#      the other arguments set to their defaults or to throwaway objects;
#      each call in its own transaction, rolled back, so that a call that
#      drops or changes something leaves the next one the same objects; the
#      internal C functions (which keep state while a batch runs) are also
#      called so from inside a running batch, as a pipeline's filter;
#      functions returning trigger or event_trigger are attached as every
#      kind of trigger and fired;
#   2. sqlsmith (random queries over every table and function, the
#      extension's included) runs a fixed number of queries from a fixed
#      seed, so that a failure repeats.
# Errors are expected; what must not happen is a server crash (judged by
# the server log and the postmaster, not by a client's exit code: a query
# may well terminate its own session) or a statement outliving its timeout.
# A failure prints each crashing statement (from the log's "Failed process
# was running") or hanging one (from pg_stat_activity).  Afterwards the
# pipelines' definitions are intact, they still run, and their targets are
# exactly those of a reference database given the same rows without fuzz.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# sqlsmith queries per role (keeps this test around two minutes on 2
# cores) and seed; a longer or another run: PIPELINE_FUZZ_QUERIES=100000
# PIPELINE_FUZZ_SEED=7 bash test/check.sh
my $sqlsmith_queries = $ENV{PIPELINE_FUZZ_QUERIES} // 4000;
my $sqlsmith_seed = $ENV{PIPELINE_FUZZ_SEED} // 11;
# a statement may take this long; a fuzz call (a few statements) or a
# sqlsmith run that takes longer than these hangs
my $statement_timeout = '5s';
my $call_timeout = 60;
my $sqlsmith_timeout = 60 + $sqlsmith_queries / 20;

my ($sqlsmith) = grep { -x } map { "$_/sqlsmith" } split /:/, $ENV{PATH};
die 'sqlsmith is not installed (test/install_deps.sh installs it)' unless $sqlsmith;

my $node = PostgreSQL::Test::Cluster->new('fuzz');
$node->init;
# Errors are the fuzz's normal outcome: the log keeps LOG, FATAL and PANIC
# lines only (crash reports among them), with the whole failed statement.
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pipeline,pg_cron'
cron.database_name = 'postgres'
max_worker_processes = 16
restart_after_crash = on
log_statement = none
log_min_messages = log
track_activity_query_size = 16384
});
$node->start;

my $setup = q{
	GRANT CREATE ON DATABASE %DB% TO fz_plain;
	CREATE SCHEMA shop;
	CREATE SCHEMA plain AUTHORIZATION fz_plain;
	CREATE SCHEMA fz AUTHORIZATION fz_plain;
	CREATE EXTENSION pipeline;
	-- the superuser's: append with retention and archive, a captured table
	CREATE TABLE shop.raw_events (id bigint, at timestamptz, payload jsonb);
	SELECT pipeline.create_pipeline('events', 'shop.raw_events', 'shop.events', strategy => 'append');
	CREATE TABLE shop.accounts (id int PRIMARY KEY, name text, balance numeric);
	SELECT pipeline.capture('shop.accounts');
	SELECT pipeline.create_pipeline('accounts_copy', 'shop.accounts', 'shop.accounts_copy', key => ARRAY['id']);
	SELECT pipeline.add_check('accounts_copy', 'known', kind => 'relationships', column_name => 'id',
	                          ref_table => 'shop.accounts', ref_column => 'id', action => 'warn');
	-- the plain role's: merge with sequence_by and delete_when, scd2, checks, a DAG
	SET ROLE fz_plain;
	CREATE TABLE plain.raw_orders (id int, v int, op text, amount text, status text, placed_at timestamptz);
	SELECT pipeline.create_pipeline('orders', 'plain.raw_orders', 'plain.orders', key => ARRAY['id'],
	    sequence_by => 'v', delete_when => $$op = 'd'$$,
	    columns => '{"op": null, "amount": "amount::numeric"}');
	SELECT pipeline.add_check('orders', 'positive', 'amount > 0');
	SELECT pipeline.add_check('orders', 'known_status', kind => 'accepted_values', column_name => 'status',
	                          accepted_values => '{new,paid}', action => 'drop');
	SELECT pipeline.add_check('orders', 'has_time', kind => 'not_null', column_name => 'placed_at',
	                          action => 'warn');
	SELECT pipeline.add_check('orders', 'status_format', kind => 'regex', column_name => 'status',
	                          pattern => '^[a-z]+$');
	SELECT pipeline.add_check('orders', 'amount_range', kind => 'range', column_name => 'amount',
	                          min_value => '0', max_value => '1000000', action => 'warn');
	SELECT pipeline.add_check('orders', 'batch', kind => 'row_count', min_rows => 1, max_rows => 100000,
	                          action => 'warn');
	CREATE TABLE plain.raw_customers (id int, v int, op text, city text);
	SELECT pipeline.create_pipeline('customers', 'plain.raw_customers', 'plain.customers', key => ARRAY['id'],
	    strategy => 'scd2', sequence_by => 'v', delete_when => $$op = 'd'$$, columns => '{"op": null}',
	    track_history => ARRAY['city']);
	SELECT pipeline.add_check('customers', 'has_city', kind => 'not_null', column_name => 'city');
	SELECT pipeline.add_check('customers', 'unique_city', kind => 'unique', column_name => 'city',
	                          unique_scope => 'batch', action => 'warn');
	SELECT pipeline.create_pipeline('order_log', 'plain.orders', 'plain.order_log', strategy => 'append');
	SELECT pipeline.enable_provenance('order_log');
	RESET ROLE;
};

# rows(ROUND): staged rows of every source, different for each round, and
# the runs that merge them.
sub rows
{
	my ($round) = @_;
	my $o = 1000 * $round;
	return qq{
	INSERT INTO shop.raw_events
	SELECT g, timestamptz '2026-01-01 00:00+00' + g * interval '1 minute',
	       jsonb_build_object('n', g, 'tag', md5(g::text))
	  FROM generate_series($o + 1, $o + 500) g;
	CALL pipeline.run('events');
	INSERT INTO shop.accounts SELECT g, 'acct ' || g, g * 10 FROM generate_series($o + 1, $o + 50) g;
	UPDATE shop.accounts SET balance = balance + 1 WHERE id % 5 = 0;
	DELETE FROM shop.accounts WHERE id % 7 = 0;
	CALL pipeline.run('accounts_copy');
	SET ROLE fz_plain;
	INSERT INTO plain.raw_orders
	SELECT g % 100, g, CASE WHEN g % 97 = 0 THEN 'd' ELSE 'u' END,
	       CASE WHEN g % 53 = 0 THEN 'oops' WHEN g % 41 = 0 THEN '-5' ELSE (g * 3)::text END,
	       CASE WHEN g % 31 = 0 THEN 'lost' ELSE 'paid' END,
	       timestamptz '2026-01-01 00:00+00' + g * interval '1 hour'
	  FROM generate_series($o + 1, $o + 400) g;
	CALL pipeline.run('orders');
	CALL pipeline.run('order_log');
	INSERT INTO plain.raw_customers
	SELECT g % 20, g, CASE WHEN g % 37 = 0 THEN 'd' ELSE 'u' END,
	       CASE WHEN g % 29 = 0 THEN NULL ELSE 'city ' || (g % 3) END
	  FROM generate_series($o + 1, $o + 120) g;
	CALL pipeline.run('customers');
	RESET ROLE;
	};
}

my $retention_and_freshness = q{
	SELECT pipeline.set_retention('shop.raw_events', keep => '0', batch_rows => 50);
	SELECT pipeline.archive('shop.raw_events');
	SELECT pipeline.add_freshness_check('shop.events', 'at', warn_after => '1 hour', error_after => '1 day');
	SELECT pipeline.add_freshness_check('shop.accounts_copy', warn_after => '1 hour', schedule => '*/5 * * * *');
	SET ROLE fz_plain;
	SELECT pipeline.add_freshness_check('plain.orders', 'placed_at', warn_after => '1 day', schedule => '0 * * * *');
	SELECT pipeline.add_freshness_check('plain.customers', error_after => '1 day');
	SELECT pipeline.check_freshness('plain.orders'::regclass);
	RESET ROLE;
	SELECT pipeline.check_freshness('shop.events'::regclass);
};

# The database to fuzz, and a reference that gets the same rows, unfuzzed.
# fz_plain may schedule its freshness checks: pg_cron (in database postgres)
# lets it, as the extension asks pg_cron as the check's owner
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_cron; CREATE ROLE fz_plain LOGIN; CREATE DATABASE fuzz; CREATE DATABASE ref;
	GRANT USAGE ON SCHEMA cron TO fz_plain;
	GRANT EXECUTE ON FUNCTION cron.schedule_in_database(text, text, text, text, text, boolean) TO fz_plain;
});
for my $db ('fuzz', 'ref')
{
	(my $sql = $setup) =~ s/%DB%/$db/;
	$node->safe_psql($db, $sql . rows(1) . $retention_and_freshness);
}
is( $node->safe_psql(
		'fuzz', q{
		SELECT (SELECT count(*) FROM pipeline.pipelines), (SELECT count(*) FROM pipeline.checks),
		       (SELECT count(*) > 0 FROM pipeline.quarantine), (SELECT count(*) > 0 FROM pipeline.archive_batches),
		       (SELECT count(*) FROM pipeline.freshness_checks), (SELECT count(*) > 0 FROM pipeline.lineage),
		       (SELECT count(*) FROM pipeline.captures)}),
	'5|9|t|t|4|t|1', 'the database holds pipelines, checks, quarantine, archive, freshness checks, lineage, a capture');

# definitions: what the fuzz must leave as it found it
my $definitions = q{
	SELECT string_agg(to_jsonb(d)::text, E'\n' ORDER BY d.id)
	  FROM (SELECT d.*, c.consumed, (SELECT json_agg(k ORDER BY k.id) FROM pipeline.checks k
	                                  WHERE k.pipeline_id = d.id) AS checks
	          FROM pipeline.pipeline_defs d JOIN pipeline.cursors c ON c.pipeline_id = d.id
	         WHERE d.name IN ('events', 'accounts_copy', 'orders', 'order_log', 'customers')) d};
my $definitions_before = $node->safe_psql('fuzz', $definitions);

my ($postmaster_pid) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
my $started_at = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');

# every fuzzing session: bounded statements, and a name to find it by
my $fuzz_session = "application_name=fuzz options='-c statement_timeout=$statement_timeout'";
my %connstr = (
	fz_plain => $node->connstr('fuzz') . " user=fz_plain $fuzz_session",
	superuser => $node->connstr('fuzz') . " $fuzz_session");

# ------------------------------------------------------------ watching

my $log_offset = -s $node->logfile;
my $crash_re = qr/was terminated by (?:signal|exception)|exited with exit code [2-9]|PANIC:|all server processes terminated/;

# crashes_in_log: the crash reports the server logged since the last call,
# each with the statement the crashed process was running.
sub crashes_in_log
{
	my $size = -s $node->logfile;
	return () if $size == $log_offset;
	my $log = slurp_file($node->logfile, $log_offset);
	$log_offset = $size;
	my @entries = split /^(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)/m, $log;
	my @crashes;
	for my $i (0 .. $#entries)
	{
		next unless $entries[$i] =~ $crash_re && $entries[$i] !~ /all server processes terminated/;
		my $report = $entries[$i];
		$report .= $entries[ $i + 1 ]
		  if $i < $#entries && $entries[ $i + 1 ] =~ /Failed process was running/;
		push @crashes, length($report) > 4000 ? substr($report, 0, 4000) . "...\n" : $report;
	}
	# a restart without a report of its cause is a crash as well
	push @crashes, "the server restarted after a crash:\n$log"
	  if !@crashes && $log =~ /all server processes terminated/;
	return @crashes;
}

# recover: waits for the server to be back after a crash.
sub recover
{
	$node->poll_query_until('postgres', 'SELECT true')
	  or BAIL_OUT('the server did not come back after a crash');
}

# hanging: the fuzzing sessions' statements still running, which are then
# terminated.
sub hanging
{
	my $hung = $node->safe_psql(
		'postgres', q{
		SELECT string_agg(format('%s (running for %s): %s', usename, now() - query_start, query), E'\n')
		  FROM pg_stat_activity WHERE application_name = 'fuzz' AND state <> 'idle'});
	$node->safe_psql('postgres',
		q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'fuzz'});
	return $hung;
}

# ------------------------------------------------------------ calls

# Throwaway objects that the calls name, owned by the plain role: a pipeline
# fz_tmp from fz.src to fz.dst with a check, a run, a quarantined row, an
# archive batch and a freshness check.
my $throwaway = q{
	SET ROLE fz_plain;
	CREATE TABLE fz.src (id int PRIMARY KEY, v int, op text, at timestamptz);
	INSERT INTO fz.src VALUES (1, 1, 'u', now()), (2, -1, 'u', now()), (3, 3, 'd', now());
	SELECT pipeline.create_pipeline('fz_tmp', 'fz.src', 'fz.dst', key => ARRAY['id'], sequence_by => 'v',
	                                delete_when => $$op = 'd'$$, columns => '{"op": null}');
	SELECT pipeline.add_check('fz_tmp', 'fz_check', 'v > 0');
	CALL pipeline.run('fz_tmp');
	SELECT pipeline.set_retention('fz.src', keep => '0', batch_rows => 1);
	SELECT pipeline.archive('fz.src');
	SELECT pipeline.add_freshness_check('fz.dst', 'at', warn_after => '1 hour');
	INSERT INTO fz.src VALUES (4, 4, 'u', now());
	RESET ROLE;
};
$node->safe_psql('fuzz', $throwaway);

my $batch = q{(SELECT b FROM pipeline.archive_batches b ORDER BY b.id DESC LIMIT 1)};

# The value of an argument that is not the one fuzzed and has no default:
# by function and argument name, by argument name, or by type.
my %sane = (
	'create_pipeline.name' => q{'fz_new'},
	'create_pipeline.target' => q{'fz.new_target'},
	'add_check.check_name' => q{'fz_new_check'},
	pipeline_name => q{'fz_tmp'},
	name => q{'fz_tmp'},
	check_name => q{'fz_check'},
	column_name => q{'v'},
	source => q{'fz.src'},
	relation => q{'fz.dst'},
	id => q{(SELECT max(id) FROM pipeline.freshness_checks)},
	batch_id => q{(SELECT max(id) FROM pipeline.archive_batches)},
	run_id => q{(SELECT max(run_id) FROM pipeline.run_log)},
	pipeline_id => q{(SELECT id FROM pipeline.pipeline_defs WHERE name = 'fz_tmp')},
	schedule => q{'1 hour'},
	keep => q{'0'},
	batch => $batch,
	row_type => q{NULL::fz.src},
	data => q{pipeline.zstd_compress('\x00ff00ff')},
	schema_url => q{'https://example.com/facet.json'},
	pairs => q{ARRAY['name', 'value']},
	depth => '2');
my %sane_type = (
	'text' => q{'fz_tmp'},
	'regclass' => q{'fz.src'},
	'bigint' => '1',
	'integer' => '1',
	'smallint' => '1',
	'boolean' => 'true',
	'interval' => q{'1 day'},
	'timestamp with time zone' => 'now()',
	'time without time zone' => q{'12:00'},
	'xid8' => 'pipeline.current_xid()',
	'bytea' => q{'\x00'},
	'pg_snapshot' => 'pg_current_snapshot()',
	'double precision' => '0.5',
	'jsonb' => q{'{}'},
	'text[]' => q{'{a}'},
	'bigint[]' => q{'{1}'},
	'boolean[]' => q{'{true}'},
	'anyelement' => '1::integer');

# The values each argument gets in turn: NULL, empty, huge, odd.
my $many = 'generate_series(1, 10000) g';
my %fuzz = (
	'text' => [ 'NULL', q{''}, q{repeat('x', 1048576)}, q{repeat('é"\\', 100)} ],
	'regclass' => [ 'NULL', q{0::oid}, q{4294967295::oid}, q{'pipeline.pipeline_defs'}, q{'pg_class'} ],
	'text[]' => [ 'NULL', q{'{}'}, "(SELECT array_agg(g::text) FROM $many)", q{'{NULL}'},
		q{ARRAY[repeat('x', 1048576)]}, q{'{{a,b},{c,d}}'} ],
	'bigint[]' => [ 'NULL', q{'{}'}, "(SELECT array_agg(g) FROM $many)", q{'{NULL,-1,9223372036854775807}'} ],
	'boolean[]' => [ 'NULL', q{'{}'}, q{array_fill(true, ARRAY[10000])}, q{'{NULL}'},
		q{array_fill(false, ARRAY[10000])} ],
	'jsonb' => [ 'NULL', q{'{}'}, "(SELECT jsonb_object_agg('k' || g, g) FROM $many)",
		q{to_jsonb(repeat('x', 1048576))}, q{'[]'}, q{'null'}, q{'{"v": {"a": [1]}}'} ],
	'bigint' => [ 'NULL', '0', '9223372036854775807', '-9223372036854775808', '-1' ],
	'integer' => [ 'NULL', '0', '2147483647', '-2147483648', '-1' ],
	'smallint' => [ 'NULL', '0', '32767', '-32768' ],
	'boolean' => [ 'NULL', 'false', 'true' ],
	'interval' => [ 'NULL', q{'0'}, q{'178000000 years'}, q{'-178000000 years'}, q{'-1 microsecond'} ],
	'timestamp with time zone' =>
	  [ 'NULL', q{'-infinity'}, q{'infinity'}, q{'4713-01-01 00:00+00 BC'}, q{'294276-12-31 00:00+00'} ],
	'time without time zone' => [ 'NULL', q{'00:00'}, q{'24:00'} ],
	'xid8' => [ 'NULL', q{'0'}, q{'18446744073709551615'}, q{'3'} ],
	'bytea' => [ 'NULL', q{''}, q{decode(repeat('ff', 1048576), 'hex')},
		q{pipeline.zstd_compress(decode(repeat('00', 1048576), 'hex'))},
		q{'\x28b52ffde0ffffffffffffff7f01000000'}, q{'\x28b52ffd'} ],
	'pg_snapshot' => [ 'NULL', q{'1:1:'}, q{'9223372036854775807:9223372036854775807:'},
		q{(SELECT ('1:20000:' || string_agg(g::text, ','))::pg_snapshot FROM generate_series(2, 10001) g)} ],
	'double precision' => [ 'NULL', '0', q{'NaN'}, q{'Infinity'}, q{'-Infinity'}, '-1', '2' ],
	'anyelement' => [ 'NULL::integer', q{''::text}, q{repeat('x', 1048576)}, 'NULL::fz.src',
		'NULL::pipeline.pipeline_defs', q{'{}'::jsonb} ],
	'pipeline.archive_batches' => [
		'NULL', q{jsonb_populate_record(NULL::pipeline.archive_batches, '{}')},
		map { "jsonb_populate_record($batch, '$_')" }
		  ('{"payload": "\\\\xffffffff"}', '{"raw_bytes": 9223372036854775807}',
			'{"raw_bytes": 0}', '{"row_count": 2147483647}', '{"columns": []}',
			'{"columns": {"a": 1}}', '{"checksum": 0}', '{"dictionary_id": 9223372036854775807}',
			'{"first_xid": "18446744073709551615"}', '{"payload": "\\\\x"}')
	]);

# More values for arguments of some names: the odd ones their parsers meet.
my %fuzz_name = (
	schedule => [
		q{'0 0 31 2 *'}, q{'0 0 29 2 1'}, q{'*/0 * * * *'}, q{'59 23 * * 7'}, q{'1 microsecond'},
		q{'continuous'}, q{'@reboot'} ],
	timezone => [ q{'Mars/Olympus'}, q{'UTC+99'}, q{'+14'} ],
	pattern => [ q{'((((a*)*)*)*)*b'}, q{'['} ],
	expression => [ q{'pg_sleep(60) IS NULL'}, q{'(SELECT 1/0) = 1'}, q{'true; SELECT 1'} ],
	filter => [ q{'pg_sleep(60) IS NULL'}, q{'v IN (SELECT v FROM fz.src)'}, q{'true) OR (true'} ],
	delete_when => [ q{'count(*) > 0'}, q{'row_number() OVER () = 1'} ],
	columns => [ q{'{"v": "pg_sleep(60)::int"}'}, q{'{"v": "v) FROM fz.src; SELECT (1"}'}, q{'{"_xid": null}'} ],
	strategy => [ q{'append'}, q{'scd2'} ],
	on_schema_change => [ q{'fail'}, q{'sync_all_columns'} ],
	kind => [
		map { "'$_'" } qw(accepted_values not_null unique relationships regex range between row_count) ],
	unique_scope => [ q{'batch'}, q{'target'} ],
	action => [ q{'drop'}, q{'fail'}, q{'warn'} ],
	warn_if => [ q{'> 50%'}, q{'> -1'}, q{'>'} ],
	error_if => [ q{'>= 100%'}, q{'< 0'} ],
	event_type => [ q{'START'}, q{'COMPLETE'}, q{'FAIL'} ]);

my @functions = @{
	decode_json(
		$node->safe_psql(
			'fuzz', q{
	SELECT json_agg(f ORDER BY f.signature) FROM (
	    SELECT p.oid::regprocedure::text AS signature, p.proname AS name, p.prokind AS kind,
	           p.proretset AS retset, format_type(p.prorettype, NULL) AS rettype,
	           obj_description(p.oid, 'pg_proc') LIKE 'internal:%' AS internal,
	           (SELECT lanname FROM pg_language WHERE oid = p.prolang) AS language,
	           coalesce((SELECT json_agg(json_build_object(
	                                'name', a.name, 'type', format_type(a.typ, NULL),
	                                'default', pg_get_function_arg_default(p.oid, a.pos::int),
	                                'variadic', a.mode = 'v') ORDER BY a.pos)
	                       FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]),
	                                   coalesce(p.proargmodes, array_fill('i'::"char", ARRAY[p.pronargs::int])),
	                                   p.proargnames) WITH ORDINALITY a(typ, mode, name, pos)
	                      WHERE a.mode IN ('i', 'b', 'v')), '[]') AS args
	      FROM pg_proc p WHERE p.pronamespace = 'pipeline'::regnamespace) f}))
};

# invocations(FUNCTION): the function with each argument in turn set to
# each of its fuzz values, each [label, invocation].
sub invocations
{
	my ($f) = @_;
	my @args = @{ $f->{args} };
	my $last_required = -1;
	for my $j (0 .. $#args) { $last_required = $j unless defined $args[$j]{default} }

	# invoke(I, VALUE): the invocation with argument I set to VALUE.
	my $invoke = sub {
		my ($i, $value) = @_;
		my $upto = $i > $last_required ? $i : $last_required;
		my @exprs;
		for my $j (0 .. $upto)
		{
			my $a = $args[$j];
			my $name = $a->{name} // '';
			my $expr =
				$j == $i ? $value
			  : defined $a->{default} ? $a->{default}
			  : $sane{"$f->{name}.$name"} // $sane{$name} // $sane_type{ $a->{type} } // 'NULL';
			$expr = "($expr)::$a->{type}" unless $a->{type} =~ /^any/;
			$expr = "VARIADIC $expr" if $a->{variadic};
			push @exprs, $expr;
		}
		return qq{pipeline."$f->{name}"(} . join(', ', @exprs) . ')';
	};

	my @invocations;
	push @invocations, [ $f->{signature}, $invoke->(-1, undef) ] unless @args;
	for my $i (0 .. $#args)
	{
		my $type = $args[$i]{type};
		my $values = [ @{ $fuzz{$type} // [ 'NULL', q{''} ] }, @{ $fuzz_name{ $args[$i]{name} // '' } // [] } ];
		diag("no fuzz values for type $type: only NULL and ''") unless $fuzz{$type};
		push @invocations, [ "$f->{signature} argument " . ($i + 1) . " = $_", $invoke->($i, $_) ]
		  for @$values;
	}
	return @invocations;
}

# calls(FUNCTION): the statements calling a function, each [label, SQL].
sub calls
{
	my ($f) = @_;
	return map {
		[ $_->[0],
			  $f->{kind} eq 'p' ? "CALL $_->[1]"
			: $f->{retset} ? "SELECT count(*) FROM $_->[1] AS r"
			: "SELECT $_->[1] IS NULL" ]
	} invocations($f);
}

# batch_calls(FUNCTION): an internal C function (it may keep state while a
# batch runs) called from inside a running batch, as the throwaway
# pipeline's filter.
sub batch_calls
{
	my ($f) = @_;
	return () unless $f->{internal} && $f->{language} eq 'c' && $f->{kind} eq 'f' && !$f->{retset}
	  && $f->{rettype} !~ /trigger/;
	return map {
		[ "$_->[0], in a batch",
			"SELECT pipeline.alter_pipeline('fz_tmp', filter => \$fz\$(($_->[1]) IS NULL) IS NOT NULL\$fz\$); "
			  . "INSERT INTO fz.src VALUES (10, 10, 'u', now()), (11, 11, 'd', now()); "
			  . "CALL pipeline.run('fz_tmp')" ]
	} invocations($f);
}

# trigger_calls(FUNCTION): a trigger function attached as every kind of
# trigger, to a plain table and to one shaped like pipeline.cursors, and
# fired by each event; an event trigger function, as every event trigger.
sub trigger_calls
{
	my ($f) = @_;
	my $fn = qq{pipeline."$f->{name}"};
	my @calls;
	if ($f->{rettype} eq 'trigger')
	{
		my @tables = (
			[ 'plain', q{CREATE TABLE fz.t (id int, v text); INSERT INTO fz.t VALUES (1, 'a'), (NULL, NULL)} ],
			[ 'shaped like pipeline.cursors',
			  q{CREATE TABLE fz.t AS SELECT * FROM pipeline.cursors WITH NO DATA;
			    INSERT INTO fz.t SELECT * FROM pipeline.cursors LIMIT 1; INSERT INTO fz.t DEFAULT VALUES} ]);
		my @any = ('INSERT INTO fz.t SELECT * FROM fz.t', 'UPDATE fz.t SET id = id', 'DELETE FROM fz.t',
			'TRUNCATE fz.t');
		my @kinds = (
			[ 'BEFORE INSERT OR UPDATE OR DELETE ON fz.t FOR EACH ROW', @any[0 .. 2] ],
			[ 'AFTER INSERT OR UPDATE OR DELETE ON fz.t FOR EACH ROW', @any[0 .. 2] ],
			[ 'BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON fz.t FOR EACH STATEMENT', @any ],
			[ 'AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON fz.t FOR EACH STATEMENT', @any ],
			[ 'AFTER INSERT ON fz.t REFERENCING NEW TABLE AS n FOR EACH STATEMENT', $any[0] ],
			[ 'AFTER UPDATE ON fz.t REFERENCING OLD TABLE AS o NEW TABLE AS n FOR EACH STATEMENT', $any[1] ],
			[ 'AFTER DELETE ON fz.t REFERENCING OLD TABLE AS o FOR EACH STATEMENT', $any[2] ],
			[ 'AFTER INSERT ON fz.t REFERENCING NEW TABLE AS n FOR EACH ROW', $any[0] ],
			[ 'INSTEAD OF INSERT OR UPDATE OR DELETE ON fz.v FOR EACH ROW',
				'INSERT INTO fz.v SELECT * FROM fz.t', 'UPDATE fz.v SET id = id', 'DELETE FROM fz.v' ]);
		for my $table (@tables)
		{
			for my $kind (@kinds)
			{
				my ($timing, @events) = @$kind;
				push @calls, map {
					[ "$fn as trigger $timing on a $table->[0] table, fired by $_",
						"$table->[1]; CREATE VIEW fz.v AS SELECT * FROM fz.t; "
						  . "CREATE TRIGGER fz_trigger $timing EXECUTE FUNCTION $fn('pipeline.cursors', ''); $_" ]
				} @events;
			}
		}
	}
	elsif ($f->{rettype} eq 'event_trigger')
	{
		for my $event (qw(ddl_command_start ddl_command_end sql_drop table_rewrite))
		{
			for my $ddl ('CREATE TABLE fz.e (a int)', 'ALTER TABLE fz.src ALTER v TYPE bigint',
				'DROP TABLE fz.dst CASCADE', 'DROP SCHEMA fz CASCADE')
			{
				push @calls, [ "$fn as event trigger on $event, fired by $ddl",
					"CREATE EVENT TRIGGER fz_event ON $event EXECUTE FUNCTION $fn(); $ddl" ];
			}
		}
	}
	return @calls;
}

# fuzz_calls(ROLE, CALLS): runs each call in a transaction rolled back, in
# one session as ROLE; returns the crashes and hangs, each with its call.
sub fuzz_calls
{
	my ($role, @calls) = @_;
	my @found;
	my ($in, $out, $err, $h) = ('', '', '');
	my $timer = IPC::Run::timer($call_timeout);
	for my $n (0 .. $#calls)
	{
		my ($label, $sql) = @{ $calls[$n] };
		if (!$h || !$h->pumpable)
		{
			$h->finish if $h;
			($in, $out, $err) = ('', '', '');
			$h = IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=0', '-d', $connstr{$role} ],
				'<', \$in, '>', \$out, '2>', \$err, $timer);
		}
		# every statement names its call: the log shows it for a crash
		(my $marked = "BEGIN; $sql; ROLLBACK;") =~ s{(^|;)\s*(?=\S)}{$1\n/* fz $n */ }g;
		$in .= "$marked\n\\echo fz-done $n\n";
		$timer->start($call_timeout);
		my $done = eval {
			$h->pump while $out !~ /fz-done $n\n/ && $h->pumpable;
			1;
		};
		if ($done && $out !~ /fz-done $n\n/)
		{
			# psql lost its session: let the postmaster report why
			usleep(500_000);
			recover();
		}
		elsif (!$done)
		{
			push @found, "as $role, $label: still running after ${call_timeout}s\n" . hanging();
			$h->kill_kill;
			undef $h;
		}
		my @crashes = crashes_in_log();
		if (@crashes)
		{
			push @found, map { "as $role, $label:\n$sql\n$_" } @crashes;
			recover();
		}
		$out = '';
		$err = '';
	}
	if ($h)
	{
		$in .= "\\q\n";
		eval { $h->finish };
	}
	return @found;
}

my @calls = map { calls($_) } @functions;
my @batch_calls = map { batch_calls($_) } @functions;
my @trigger_calls = map { trigger_calls($_) } @functions;
note(scalar(@functions) . ' functions: ' . scalar(@calls) . ' calls, ' . scalar(@batch_calls)
	  . ' calls in a batch, ' . scalar(@trigger_calls) . ' trigger firings');
ok(@functions >= 70 && @calls > @functions && @batch_calls && @trigger_calls,
	'every function of the extension is found');
for my $role ('fz_plain', 'superuser')
{
	my @found = fuzz_calls($role, @calls);
	is(scalar(@found), 0, "calling every function with NULL, empty, huge and odd arguments as $role: no crash, no hang");
	diag($_) for @found;
	@found = fuzz_calls($role, @batch_calls);
	is(scalar(@found), 0, "calling the internal C functions with them from inside a running batch as $role: no crash, no hang");
	diag($_) for @found;
	@found = fuzz_calls($role, @trigger_calls);
	is(scalar(@found), 0, "firing every trigger function as every kind of trigger as $role: no crash, no hang");
	diag($_) for @found;
}

# The crash the trigger firings found first, refused in words now.
my ($rc, $out, $err) = $node->psql(
	'fuzz', q{
	BEGIN;
	CREATE TABLE fz.s (id bigint);
	CREATE TRIGGER s AFTER INSERT ON fz.s FOR EACH STATEMENT EXECUTE FUNCTION pipeline.sync_freshness_job();
	INSERT INTO fz.s VALUES (1);
	ROLLBACK;
});
like($err, qr/ERROR:  pipeline.sync_freshness_job fires only on pipeline.freshness_checks/,
	'the freshness job trigger fired by another table refuses with an error (a plain role may not even attach it)');

# ------------------------------------------------------------ sqlsmith

# sqlsmith(ROLE): random queries as ROLE; returns the crashes and hangs,
# each with the statement the server reports.
sub sqlsmith
{
	my ($role) = @_;
	my $target = $connstr{$role};
	my $queries = $node->basedir . "/sqlsmith_$role.sql";
	my ($out, $err) = ('', '');
	my @found;
	my $h = IPC::Run::start(
		[ $sqlsmith, "--target=$target", "--seed=$sqlsmith_seed", "--max-queries=$sqlsmith_queries",
		  '--exclude-catalog', '--dump-all-queries', '--verbose' ],
		'<', \undef, '>', $queries, '2>', \$err, IPC::Run::timeout($sqlsmith_timeout));
	if (!eval { $h->finish; 1 })
	{
		push @found, "as $role, sqlsmith still running after ${sqlsmith_timeout}s:\n" . hanging();
		$h->kill_kill;
	}
	my ($error_rate) = $err =~ /error rate: ([\d.]+)/;
	note("sqlsmith as $role: error rate " . ($error_rate // 'not reported') . "; queries in $queries");
	push @found, map { "as $role, sqlsmith (queries in $queries):\n$_" } crashes_in_log();
	return @found;
}

for my $role ('fz_plain', 'superuser')
{
	my @found = sqlsmith($role);
	is(scalar(@found), 0, "$sqlsmith_queries sqlsmith queries as $role: no crash, no hang");
	diag($_) for @found;
	recover() if @found;
}

# ------------------------------------------------------------ afterwards

my ($postmaster_pid_after) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no server process was terminated by a signal');
is($postmaster_pid_after, $postmaster_pid, 'the postmaster is the one that started');
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $started_at, 'and it never restarted');
is($node->safe_psql('fuzz', $definitions), $definitions_before, 'the pipelines, their checks and cursors are intact');

# The same new rows in both databases: the pipelines run and their targets,
# runs and quarantines are those of the unfuzzed reference.
my $outcome = q{
	SELECT string_agg(x, E'\n' ORDER BY x) FROM (
	    SELECT format('%s %s', t, (SELECT md5(string_agg(r::text, E'\n' ORDER BY r::text))
	                                 FROM (SELECT to_jsonb(y) - '__run_id' AS r FROM shop.events y WHERE t = 'shop.events'
	                                       UNION ALL SELECT to_jsonb(y) FROM shop.accounts_copy y WHERE t = 'shop.accounts_copy'
	                                       UNION ALL SELECT to_jsonb(y) FROM plain.orders y WHERE t = 'plain.orders'
	                                       UNION ALL SELECT to_jsonb(y) - '__run_id' FROM plain.order_log y WHERE t = 'plain.order_log'
	                                       UNION ALL SELECT to_jsonb(y) FROM plain.customers y WHERE t = 'plain.customers') z))
	      FROM unnest(ARRAY['shop.events', 'shop.accounts_copy', 'plain.orders', 'plain.order_log', 'plain.customers']) t
	    UNION ALL
	    SELECT format('%s runs %s', pipeline, string_agg(concat_ws(' ', status, rows_read, rows_inserted, rows_updated,
	                                                               rows_deleted, rows_stale, rows_quarantined, rows_dropped),
	                                                     ', ' ORDER BY run_id))
	      FROM pipeline.runs WHERE pipeline IN ('events', 'accounts_copy', 'orders', 'order_log', 'customers') GROUP BY pipeline
	    UNION ALL
	    SELECT format('%s quarantined %s', pipeline, count(*)) FROM pipeline.quarantine
	     WHERE pipeline IN ('orders', 'customers') GROUP BY pipeline) o(x)};
$node->safe_psql($_, rows(2)) for ('fuzz', 'ref');
my $expected = $node->safe_psql('ref', $outcome);
is($node->safe_psql('fuzz', $outcome), $expected, 'after the fuzz, the pipelines run and their data is exact');
like($expected, qr/orders runs succeeded 400 .*, succeeded 400 /, '(the reference ran both rounds)');

$node->stop;
done_testing();
