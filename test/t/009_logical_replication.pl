# A logical replication subscriber as a source.  Two databases of one
# cluster: "pub" publishes accounts, "sub" subscribes to it (the slot made by
# hand, the subscription with create_slot = false), captures its copy of
# the table with pipeline.capture and runs a pipeline from it into a
# curated target.  The subscription's apply worker writes with
# session_replication_role = replica, which fires no statement-level
# trigger: the capture must log its writes all the same.
#
# pgbench writes the publisher (inserts, upserts, updates, key changes of
# one and of several rows, deletes) while pipeline runs go on in a loop on
# the subscriber, and a TRUNCATE of the publisher's table comes partway.
# After catch-up and a final run, the target equals the publisher's table,
# row for row.  Then a session of the subscriber writing in replica mode is
# captured too, exactly once, and an ordinary session still is.  Last, the
# log of a table nobody reads locally is published to a third database and
# merged there.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('replica');
$node->init(allows_streaming => 'logical');
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pipeline'
max_worker_processes = 16
max_replication_slots = 10
max_wal_senders = 10
max_logical_replication_workers = 4
});
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE pub');
$node->safe_psql('postgres', 'CREATE DATABASE sub');
$node->safe_psql(
	'pub', q{
	CREATE TABLE accounts (id bigint PRIMARY KEY, balance int NOT NULL, note text);
	CREATE SEQUENCE fresh_ids START 1000000;
	INSERT INTO accounts SELECT g, 100, 'initial ' || g FROM generate_series(1, 500) g;
	CREATE PUBLICATION accounts_pub FOR TABLE accounts;
	SELECT pg_create_logical_replication_slot('accounts_slot', 'pgoutput');
});
$node->safe_psql(
	'sub', q{
	CREATE EXTENSION pipeline;
	CREATE TABLE accounts (id bigint PRIMARY KEY, balance int NOT NULL, note text);
	SELECT pipeline.capture('accounts');
	SELECT pipeline.create_pipeline('mirror', 'accounts', 'mirror', key => ARRAY['id']);
});
my $connstr = $node->connstr . ' dbname=pub';
$node->safe_psql('sub',
	"CREATE SUBSCRIPTION accounts_sub CONNECTION '$connstr' PUBLICATION accounts_pub "
	  . "WITH (create_slot = false, slot_name = 'accounts_slot')");
ok( $node->poll_query_until(
		'sub', q{SELECT count(*) = 0 FROM pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')}),
	'the subscription copied the table');

# rows(DB, TABLE): an md5 of a table's rows in key order, and their number.
sub rows
{
	my ($db, $table) = @_;
	return $node->safe_psql($db,
		"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY id), '')) || ' ' || count(*) "
		  . "FROM (SELECT id, balance, note FROM $table) t");
}

# The subscription's initial copy (a COPY in replica mode) is captured.
$node->safe_psql('sub', q{CALL pipeline.run('mirror')});
is(rows('sub', 'mirror'), rows('pub', 'accounts'), 'the subscription\'s initial copy reaches the target');

# Every kind of write a publisher makes: new rows, upserts, updates, a key
# change of one row and of several in one statement (to keys never used),
# deletes of one and of several rows.
my $writes = $node->basedir . '/writes.sql';
open(my $fh, '>', $writes) or die;
print $fh q{
\set id random(1, 1500)
\set op random(1, 10)
\if :op <= 3
INSERT INTO accounts VALUES (:id, 1, 'new') ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + 1, note = 'upserted';
\elif :op <= 5
UPDATE accounts SET balance = balance - 1, note = 'updated' WHERE id = :id;
\elif :op = 6
UPDATE accounts SET id = nextval('fresh_ids') WHERE id = :id;
\elif :op = 7
UPDATE accounts SET id = nextval('fresh_ids'), note = 'moved' WHERE id BETWEEN :id AND :id + 2;
\elif :op = 8
BEGIN;
INSERT INTO accounts VALUES (:id + 2000, 5, 'pair') ON CONFLICT (id) DO NOTHING;
UPDATE accounts SET balance = balance + 5 WHERE id = :id + 2000;
COMMIT;
\elif :op = 9
DELETE FROM accounts WHERE id = :id;
\else
DELETE FROM accounts WHERE id BETWEEN :id AND :id + 4;
\endif
};
close $fh;

# Pipeline runs in a loop on the subscriber, every 100 ms.
my $runs = $node->basedir . '/runs.sql';
open($fh, '>', $runs) or die;
print $fh q{
CALL pipeline.run('mirror');
\sleep 100 ms
};
close $fh;

# pgbench(DB, SCRIPT, CLIENTS, SECONDS): started in the background.
my ($out, $err) = ('', '');
sub pgbench
{
	my ($db, $script, $clients, $seconds) = @_;
	return IPC::Run::start(
		[ 'pgbench', '-n', '-c', $clients, '-j', 1, '-T', $seconds, '--max-tries', '10',
		  '-f', $script, '-h', $node->host, '-p', $node->port, $db ],
		'>>', \$out, '2>>', \$err);
}

# finished(HANDLE, WHAT): waits for a pgbench, passes if it succeeded.
sub finished
{
	my ($h, $what) = @_;
	ok($h->finish, $what) or diag($err);
}

my $runner = pgbench('sub', $runs, 1, 24);
my $writer = pgbench('pub', $writes, 4, 10);
finished($writer, 'the first writers ended without error');
$node->safe_psql('pub', 'TRUNCATE accounts');
$writer = pgbench('pub', $writes, 4, 10);
finished($writer, 'the writers after the TRUNCATE ended without error');
finished($runner, 'the pipeline runs during the replication ended without error');
note(join("\n", grep { /transactions actually processed|^tps/ } split(/\n/, $out)));

$node->wait_for_catchup('accounts_sub');
$node->safe_psql('sub', q{CALL pipeline.run('mirror')});

my $published = rows('pub', 'accounts');
like($published, qr/ [1-9][0-9]{2,}$/, 'the publisher holds hundreds of rows');
is(rows('sub', 'accounts'), $published, 'the subscriber caught up with the publisher');
is(rows('sub', 'mirror'), $published, 'the target equals the publisher\'s table after catch-up');
is( $node->safe_psql(
		'sub', q{
	SELECT count(*) > 20, sum(rows_deleted) > 500, sum(rows_updated) > 100
	  FROM pipeline.runs WHERE pipeline = 'mirror' AND status = 'succeeded' AND rows_read > 0}),
	't|t|t',
	'many runs merged the changes while they were replicated: updates, deletes, the TRUNCATE');
is( $node->safe_psql(
		'sub', q{SELECT count(*) FROM pipeline.runs WHERE pipeline = 'mirror' AND status <> 'succeeded'}),
	'0', 'no run failed');

# A session of the subscriber in replica mode (as a replication tool's
# would be) is captured too, each change once; an ordinary session's
# writes too, once.
$node->safe_psql('sub', 'ALTER SUBSCRIPTION accounts_sub DISABLE');
$node->safe_psql(
	'sub', q{
	SET session_replication_role = replica;
	INSERT INTO accounts SELECT g, 7, 'replica mode' FROM generate_series(5000001, 5000010) g;
	UPDATE accounts SET id = id + 100 WHERE id BETWEEN 5000001 AND 5000003;
	UPDATE accounts SET balance = 8 WHERE id = 5000004;
	DELETE FROM accounts WHERE id = 5000005;
	RESET session_replication_role;
	INSERT INTO accounts VALUES (6000001, 9, 'origin mode');
	UPDATE accounts SET id = 6000002 WHERE id = 6000001;
});
is( $node->safe_psql(
		'sub', q{
	SELECT string_agg(_op || ' ' || id, ', ' ORDER BY _xid, _seq) FROM accounts_changes
	 WHERE id BETWEEN 5000004 AND 5000005 OR id > 6000000}),
	'upsert 5000004, upsert 5000005, upsert 5000004, delete 5000005, upsert 6000001, upsert 6000002, delete 6000001',
	'writes in replica mode and in origin mode are each logged once');
$node->safe_psql('sub', q{CALL pipeline.run('mirror')});
is(rows('sub', 'mirror'), rows('sub', 'accounts'), 'the target equals the table after writes in replica mode');

# A captured table's log, read by no pipeline of its own database, is
# published to a third one (inserts only, the reader's seed rows left out,
# without the log's own _xid, _seq and _for) and merged there: the log
# holds every change although nobody reads it locally.  A local reader
# created later (its seed copy, its runs trimming the log) changes nothing
# on the other side.
$node->safe_psql('postgres', 'CREATE DATABASE hub');
$node->safe_psql(
	'sub', q{
	CREATE TABLE ledger (id bigint PRIMARY KEY, balance int NOT NULL, note text);
	SELECT pipeline.capture('ledger');
	CREATE PUBLICATION ledger_log FOR TABLE ledger_changes (id, balance, note, _op)
	  WHERE (_for IS NULL) WITH (publish = 'insert');
	SELECT pg_create_logical_replication_slot('ledger_slot', 'pgoutput');
});
$node->safe_psql(
	'hub', q{
	CREATE EXTENSION pipeline;
	CREATE TABLE ledger_changes (id bigint, balance int, note text, _op text);
	SELECT pipeline.create_pipeline('ledger', 'ledger_changes', 'ledger', key => ARRAY['id'],
	                                delete_when => $$_op = 'delete'$$, columns => '{"_op": null}');
});
# written before the subscription: sent by its initial copy of the log
$node->safe_psql(
	'sub', q{
	INSERT INTO ledger SELECT g, g, 'new' FROM generate_series(1, 100) g;
	UPDATE ledger SET balance = balance * 2 WHERE id % 3 = 0;
	UPDATE ledger SET id = id + 1000 WHERE id % 7 = 0;
	DELETE FROM ledger WHERE id % 5 = 0;
});
$connstr = $node->connstr . ' dbname=sub';
$node->safe_psql('hub',
	"CREATE SUBSCRIPTION ledger_sub CONNECTION '$connstr' PUBLICATION ledger_log "
	  . "WITH (create_slot = false, slot_name = 'ledger_slot')");
$node->safe_psql(
	'sub', q{
	TRUNCATE ledger;
	INSERT INTO ledger SELECT g, g, 'again' FROM generate_series(50, 80) g;
	UPDATE ledger SET id = id + 1000, note = 'moved' WHERE id % 4 = 0;
	DELETE FROM ledger WHERE id % 6 = 0;
});
# inserts, updates, key changes (an upsert and a delete each), deletes, the
# TRUNCATE (a delete per row), inserts, key changes, deletes
is($node->safe_psql('sub', 'SELECT count(*) FROM ledger_changes'),
	100 + 33 + 2 * 14 + 20 + 80 + 31 + 2 * 8 + 6,
	'the log nobody reads locally holds every change');
$node->safe_psql(
	'sub', q{
	SELECT pipeline.create_pipeline('ledger_local', 'ledger', 'ledger_local', key => ARRAY['id']);
	CALL pipeline.run('ledger_local');
	INSERT INTO ledger VALUES (5000, 1, 'late');
	UPDATE ledger SET balance = 2 WHERE id = 5000;
	CALL pipeline.run('ledger_local');
	CALL pipeline.run('ledger_local');
});
is($node->safe_psql('sub', 'SELECT count(*) < 100 FROM ledger_changes'), 't', 'the local reader trimmed the log');
$node->poll_query_until('hub',
	q{SELECT count(*) = 0 FROM pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')})
  or die 'the log was not copied';
$node->wait_for_catchup('ledger_sub');
$node->safe_psql('hub', q{CALL pipeline.run('ledger')});
is($node->safe_psql('hub', 'SELECT count(*) FROM ledger_changes'),
	100 + 33 + 2 * 14 + 20 + 80 + 31 + 2 * 8 + 6 + 2,
	'every change of the log reached the other database once, and nothing else');
is(rows('hub', 'ledger'), rows('sub', 'ledger'), 'the published log, merged in another database, gives the table');

$node->stop;
done_testing();
