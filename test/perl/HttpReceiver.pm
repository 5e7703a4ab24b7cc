# A real HTTP receiver for the shipping tests: HTTP::Daemon (Debian
# libhttp-daemon-perl) serving in a child process on 127.0.0.1.  Every
# request it reads is logged, with the status it answered, the path, the
# Authorization header and the body, one JSON object a line; how it
# answers is read from a file before each request, so a test changes it
# while the receiver runs:
#   ok            200
#   fail          500
#   fail:PATH     500 for a request to PATH, 200 for the others
#   hang          answers nothing while the mode stays so (a minute at most),
#                 then 504
#   status:CODE   CODE
#   refuse:TEXT   400 for a body holding TEXT, 200 for the others
#   slow:MS       200 after MS milliseconds
# stop() kills the child (the receiver is down: connections are refused);
# start() serves again on the same port.
package HttpReceiver;

use strict;
use warnings;

use HTTP::Daemon;
use HTTP::Response;
use HTTP::Status;
use JSON::PP;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);

# new(): a receiver on a free port, serving ('ok').
sub new
{
	my ($class) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir;
	my $self = bless {
		dir => $dir,
		port => PostgreSQL::Test::Cluster::get_free_port(),
		log => "$dir/requests.jsonl",
		mode => "$dir/mode",
	}, $class;
	$self->set_mode('ok');
	$self->start;
	return $self;
}

sub url { my ($self) = @_; return "http://127.0.0.1:$self->{port}"; }

sub set_mode
{
	my ($self, $mode) = @_;
	open(my $fh, '>', "$self->{mode}.new") or die $!;
	print $fh $mode;
	close $fh;
	rename("$self->{mode}.new", $self->{mode}) or die $!;
}

# answer(REQUEST): the status the mode asks for, after its delay.
sub answer
{
	my ($self, $request) = @_;
	my $mode = slurp_file($self->{mode});
	return 500 if $mode eq 'fail' || $mode eq 'fail:' . $request->uri->path;
	return $1 if $mode =~ /^status:(\d+)$/;
	if ($mode eq 'hang')
	{
		# until the mode changes, a minute at most; then a gateway timeout,
		# never a 200 the client may have given up waiting for
		foreach (1 .. 600)
		{
			last if slurp_file($self->{mode}) ne 'hang';
			usleep(100_000);
		}
		return 504;
	}
	return 400 if $mode =~ /^refuse:(.*)$/ && index($request->content, $1) >= 0;
	usleep($1 * 1000) if $mode =~ /^slow:(\d+)$/;
	return 200;
}

# serve(): the child's loop, connection after connection (keep-alive).
sub serve
{
	my ($self, $daemon) = @_;
	open(my $log, '>>', $self->{log}) or die $!;
	$log->autoflush(1);
	while (my $connection = $daemon->accept)
	{
		while (my $request = $connection->get_request)
		{
			my $status = $self->answer($request);
			print $log encode_json(
				{
					status => $status,
					path => $request->uri->path,
					authorization => $request->header('Authorization') // '',
					content_type => $request->header('Content-Type') // '',
					body => $request->content
				}) . "\n";
			$connection->send_response(HTTP::Response->new($status, status_message($status), undef,
				$status == 200 ? '' : "{\"error\": \"receiver in test mode\"}"));
		}
		$connection->close;
	}
	# not exit: the test's END blocks (its clusters) are the parent's
	POSIX::_exit(0);
}

sub start
{
	my ($self) = @_;
	my $daemon;
	foreach (1 .. 100)
	{
		$daemon = HTTP::Daemon->new(LocalAddr => '127.0.0.1', LocalPort => $self->{port}, ReuseAddr => 1);
		last if $daemon;
		usleep(100_000);
	}
	die "cannot listen on port $self->{port}: $!" unless $daemon;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		# a client gone (its timeout) must not end the receiver
		$SIG{PIPE} = 'IGNORE';
		$self->serve($daemon);
	}
	$daemon->close;
	$self->{pid} = $pid;
}

sub stop
{
	my ($self) = @_;
	return unless $self->{pid};
	kill 'KILL', $self->{pid};
	waitpid($self->{pid}, 0);
	delete $self->{pid};
}

# requests(): every request logged so far, oldest first.
sub requests
{
	my ($self) = @_;
	return () unless -e $self->{log};
	my $log = slurp_file($self->{log});
	# a line the receiver is still writing is not a request yet
	$log =~ s/[^\n]*\z//;
	return map { decode_json($_) } grep { /\S/ } split /\n/, $log;
}

# delivered([PATH]): the bodies of the requests answered 200 (to PATH
# only, when given), decoded, in arrival order.
sub delivered
{
	my ($self, $path) = @_;
	return map { decode_json($_->{body}) }
	  grep { $_->{status} == 200 && (!defined $path || $_->{path} eq $path) } $self->requests;
}

sub DESTROY { my ($self) = @_; $self->stop; }

1;
