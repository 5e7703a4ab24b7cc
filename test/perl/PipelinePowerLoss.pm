# Simulates a power loss of a test cluster for the TAP tests: every server
# process dies at once, by SIGKILL, and the node can be started again.
package PipelinePowerLoss;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);

our @EXPORT = qw(power_loss);

# server_processes(NODE): the postmaster's pid and those of its children.
sub server_processes
{
	my ($node) = @_;
	my ($pm) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
	my @children;
	opendir(my $dh, '/proc') or die "cannot read /proc: $!";
	foreach my $pid (grep { /^\d+$/ } readdir $dh)
	{
		open(my $fh, '<', "/proc/$pid/stat") or next;
		my $stat = <$fh>;
		close $fh;
		# "pid (comm) state ppid ...": comm may hold spaces and parentheses
		push @children, $pid if defined $stat && $stat =~ /^.*\)\s+\S+\s+(\d+)\s/ && $1 == $pm;
	}
	closedir $dh;
	return ($pm, @children);
}

# gone(PIDS): whether none of the processes exists any more (not even as a
# zombie: a new postmaster refuses to start while the old one's pid exists).
sub gone
{
	return !grep { kill 0, $_ } @_;
}

# power_loss(NODE): stops the postmaster (so it starts no new child), kills
# every child and then the postmaster with SIGKILL, and waits until all are
# gone.  Returns whether they are.
sub power_loss
{
	my ($node) = @_;
	my ($postmaster, @children) = server_processes($node);
	kill 'STOP', $postmaster;
	($postmaster, @children) = server_processes($node);
	kill 'KILL', @children;
	$node->kill9;    # the postmaster, and forget it is running
	foreach my $try (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
	{
		return 1 if gone($postmaster, @children);
		usleep(100_000);
	}
	return 0;
}

1;
