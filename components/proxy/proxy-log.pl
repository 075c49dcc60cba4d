#!/usr/bin/perl
# proxy-log.pl: runs nginx or HAProxy as its child and turns everything it
# writes into one JSON object per line, with the circuit breaker's state
# changes as structured events (docs/logging.md, "Circuit-breaker events").
#
#   perl proxy-log.pl --proxy nginx --instance NAME [--replica UPSTREAM/NAME=IP:PORT ...]
#                     [--route PREFIX=UPSTREAM ...] -- nginx -g 'daemon off;'
#   perl proxy-log.pl --proxy haproxy ... --convert < lines   (no child: convert standard input)
#
# Why a wrapper, and why Perl: neither proxy can write these events as JSON
# itself. HAProxy prints server state changes as fixed text that log-format
# does not touch; open-source nginx has no state API, only error-log lines
# and per-worker peer state. Both official images (Debian bookworm) carry
# perl-base, which is essential in Debian, and no Python; so this script uses
# only what perl-base ships (no JSON module, no Time::HiRes: timestamps are
# whole seconds, and Docker's GELF driver adds its own precise time).
#
# It is PID 1 of the proxy container: it forwards every signal it can catch
# to the proxy (stop signals, reloads, log reopening), reaps orphans, and
# exits with the proxy's status; if it dies itself, the container ends with
# it and the restart policy takes over.
#
# Lines that already are JSON objects (the access logs) pass through with the
# shared fields the services' lines carry added in front (timestamp, level,
# message "request", service, instance), so every line of the container has
# them. Known text lines become events; any other text line becomes a JSON
# object with the shared fields, its text in `message`.
use strict;
use warnings;
use Getopt::Long qw(GetOptionsFromArray);
use IO::Select;
use POSIX qw(:sys_wait_h strftime);

my %opt = (proxy => '', service => 'proxy', instance => 'proxy');
my (@replica_opts, @route_opts);
my $convert = 0;
GetOptionsFromArray(
    \@ARGV,
    'proxy=s'    => \$opt{proxy},
    'service=s'  => \$opt{service},
    'instance=s' => \$opt{instance},
    'replica=s'  => \@replica_opts,
    'route=s'    => \@route_opts,
    'convert'    => \$convert,
) or usage();
usage() unless $opt{proxy} eq 'nginx' || $opt{proxy} eq 'haproxy';
usage() unless $convert || @ARGV;

sub usage {
    print STDERR "usage: proxy-log.pl --proxy nginx|haproxy [--service S] [--instance I]"
      . " [--replica UPSTREAM/NAME=IP:PORT]... [--route PREFIX=UPSTREAM]... (--convert | -- COMMAND...)\n";
    exit 2;
}

# The replicas' names, from the deployment: nginx reports addresses only, and
# HAProxy's discovery slots (api-1 ... api-N) are filled in whatever order DNS
# answers, so a slot's name is not the name of the replica in it.
my %replica_at;    # "ip:port" -> [upstream, name]
my %replica_ip;    # "upstream ip" -> [name, "ip:port"]
my %replica_named; # "upstream/name" -> "ip:port"
for (@replica_opts) {
    my ($upstream, $name, $address) = m{^([^/=]+)/([^/=]+)=(\S+)$} or usage();
    $replica_at{$address} = [$upstream, $name];
    $replica_ip{"$upstream " . ($address =~ s/:\d+$//r)} = [$name, $address];
    $replica_named{"$upstream/$name"} = $address;
}
# Longest route prefix first, so /api/items/ wins over /api/.
my @routes = sort { length($b->[0]) <=> length($a->[0]) } map { [m{^(/\S*)=(\S+)$} ? ($1, $2) : usage()] } @route_opts;

# --- JSON --------------------------------------------------------------------

my %ESCAPE = ("\"" => '\\"', "\\" => '\\\\', "\n" => '\\n', "\r" => '\\r', "\t" => '\\t', "\b" => '\\b', "\f" => '\\f');

# A JSON string literal of `$text`, ASCII only: a line that is not valid UTF-8
# is read as Latin-1, so any bytes the proxy writes still make valid JSON.
sub json_string {
    my ($text) = @_;
    return 'null' unless defined $text;
    my $chars = $text;
    utf8::decode($chars) or ($chars = $text);
    $chars =~ s{(["\\\x00-\x1f\x7f-\x{10ffff}])}{
        my $c = $1;
        exists $ESCAPE{$c} ? $ESCAPE{$c}
          : ord($c) < 0x10000 ? sprintf('\\u%04x', ord($c))
          : sprintf('\\u%04x\\u%04x', 0xd800 + ((ord($c) - 0x10000) >> 10), 0xdc00 + ((ord($c) - 0x10000) & 0x3ff))
    }ge;
    return "\"$chars\"";
}

sub json_line {
    my (@pairs) = @_;
    my @fields;
    while (my ($key, $value) = splice(@pairs, 0, 2)) {
        push @fields, json_string($key) . ':' . json_string($value) if defined $value || $key eq 'request_id';
    }
    return '{' . join(',', @fields) . "}\n";
}

sub shared_fields {
    my ($level, $message) = @_;
    return (
        timestamp => strftime('%Y-%m-%dT%H:%M:%S+00:00', gmtime),
        level     => $level,
        message   => $message,
        service   => $opt{service},
        instance  => $opt{instance},
    );
}

# The shared fields of an access line, as JSON without the closing brace;
# built once a second, as the proxy may write thousands of lines in one.
my ($prefix_second, $prefix) = (-1, '');

sub access_prefix {
    my $now = time;
    if ($now != $prefix_second) {
        ($prefix_second, $prefix) = ($now, substr(json_line(shared_fields('INFO', 'request')), 0, -2) . ',');
    }
    return $prefix;
}

sub record {
    my ($level, $message, @fields) = @_;
    return json_line(shared_fields($level, $message), request_id => undef, proxy => $opt{proxy}, @fields);
}

sub event {
    my (%e) = @_;
    my $level = $e{event} eq 'replica_up' ? 'INFO' : $e{event} eq 'pool_empty' ? 'ERROR' : 'WARNING';
    my $who = $e{replica} // '';
    my $message =
        $e{event} eq 'replica_down' ? "replica $who of $e{upstream} is out of the pool: $e{reason}"
      : $e{event} eq 'replica_up'   ? "replica $who of $e{upstream} is back in the pool: $e{reason}"
      :                               "no replica of $e{upstream} is left in the pool";
    return record($level, $message, map { ($_ => $e{$_}) } qw(event upstream replica address reason detail));
}

# --- HAProxy -------------------------------------------------------------------

my %HAPROXY_LEVEL = (EMERG => 'CRITICAL', ALERT => 'CRITICAL', WARNING => 'WARNING', NOTICE => 'INFO', DIAG => 'DEBUG');

my %slot_ip;    # "backend/server" -> the address HAProxy last resolved for it

# Closed vocabulary from HAProxy's check status text (src/check.c, check_statuses).
sub haproxy_reason {
    my ($state, $text) = @_;
    return 'resolved' if $text =~ /resolves again|valid DNS/i;
    return 'not resolved' if $text =~ /No IP|DNS|resolution/i;
    return 'maintenance' if $text =~ /maintenance/i;
    return 'check passed' if $text =~ /check passed/i;
    return 'layer-7 errors' if $text =~ /Health analyze/i;
    return 'timeout' if $text =~ /timeout/i;
    return 'connection refused' if $text =~ /refused/i;
    return 'connection reset' if $text =~ /reset/i;
    return 'connection failed' if $text =~ /Layer4/i;
    return 'check failed' if $text =~ /Layer[67]/i;
    return $state eq 'UP' ? 'recovered' : 'stopped';
}

sub convert_haproxy {
    my ($line, $default_level) = @_;
    my $level = $default_level;
    my $text = $line;
    # Messages on stderr: "[WARNING]  (8) : text"; the log target repeats some without it.
    if ($text =~ s/^\[(\w+)\]\s+\(\d+\)\s+:\s+//) {
        $level = $HAPROXY_LEVEL{$1} // 'WARNING';
    }
    $text =~ s/\s+$//;
    if ($text =~ m{^(?:Backup )?Server ([^/\s]+)/(\S+?)(?: \([^)]*\))? is (?:going )?(UP|DOWN)\b(.*)$}) {
        my ($upstream, $server, $state, $rest) = ($1, $2, $3, $4);
        my $ip = $slot_ip{"$upstream/$server"};
        my ($name, $address) = @{(defined $ip && $replica_ip{"$upstream $ip"}) || [$server, $replica_named{"$upstream/$server"}]};
        return event(
            event    => $state eq 'UP' ? 'replica_up' : 'replica_down',
            upstream => $upstream,
            replica  => $name,
            address  => $address,
            reason   => haproxy_reason($state, $rest),
            detail   => $text,
        );
    }
    if ($text =~ m{^(\S+/\S+) changed its IP from \S+ to (\S+) by }) {
        $slot_ip{$1} = $2;
    }
    if ($text =~ /^backend '?([^'\s]+)'? has no server available!/) {
        return event(event => 'pool_empty', upstream => $1, detail => $text);
    }
    return record($level, $text);
}

# --- nginx ---------------------------------------------------------------------

my %NGINX_LEVEL = (
    debug => 'DEBUG', info => 'INFO', notice => 'INFO', warn => 'WARNING',
    error => 'ERROR', crit => 'CRITICAL', alert => 'CRITICAL', emerg => 'CRITICAL',
);

# Peer state is per worker, so the pool as seen here is their union: an
# address is out from the first worker that disables it until any answer
# from it succeeds.
my %down;          # address -> 1
my %empty;         # upstream -> 1
my %last_error;    # "pid*connection address" -> reason of the latest failed attempt
my %pending;       # "pid*connection address" -> [time, fields] of a down event waiting for its reason

sub nginx_reason {
    my ($text) = @_;
    return 'connection refused' if $text =~ /Connection refused/;
    return 'connection reset' if $text =~ /Connection reset|prematurely closed|Broken pipe/;
    return 'timeout' if $text =~ /timed out/;
    return 'connection failed';
}

sub route_upstream {
    my ($uri) = @_;
    for (@routes) { return $_->[1] if index($uri, $_->[0]) == 0 }
    return undef;
}

sub replica_fields {
    my ($address, $uri) = @_;
    my ($upstream, $name) = @{$replica_at{$address} // []};
    return (upstream => $upstream // route_upstream($uri // '') // '', replica => $name // $address, address => $address);
}

sub nginx_error_line {
    my ($level, $pid, $connection, $text) = @_;
    my ($uri) = $text =~ /, request: "\S+ (\S+)/;
    my ($target) = $text =~ /, upstream: "\w+:\/\/([^\/"]+)/;
    return record($level, $text) unless defined $target;
    my $key = "$pid*" . ($connection // '') . " $target";
    # A worker logs a timeout right after the disabling, before anything else.
    my $out = flush_pending(0, sub { $_[0] ne $key && index($_[0], "$pid*") == 0 });
    if ($text =~ /^upstream server temporarily disabled/) {
        my $reason = delete $last_error{$key};
        return $out . record($level, $text) if $down{$target};
        $down{$target} = 1;
        my @fields = (event => 'replica_down', replica_fields($target, $uri), detail => $text);
        return $out . event(@fields, reason => $reason) if defined $reason;
        # A refused or reset connection is logged before the replica is
        # disabled, a timeout only after it (ngx_http_upstream_next() in
        # src/http/ngx_http_upstream.c, nginx 1.22): wait a moment for it. No
        # error line at all means it answered a status listed in
        # proxy_next_upstream (http_502 ...).
        $pending{$key} = [time, \@fields];
        return $out;
    }
    if ($text =~ /^upstream timed out/ && $pending{$key}) {
        my (undef, $fields) = @{delete $pending{$key}};
        return $out . event(@$fields, reason => 'timeout') . record($level, $text);
    }
    if ($text =~ /^no live upstreams/) {
        # The target is the upstream block's name here, not an address.
        my $upstream = $target;
        return $out . record($level, $text) if $empty{$upstream};
        $empty{$upstream} = 1;
        return $out . event(event => 'pool_empty', upstream => $upstream, detail => $text);
    }
    $last_error{$key} = nginx_reason($text) if $level eq 'ERROR';
    # Only the reason of the latest attempt of a connection is ever needed.
    %last_error = () if keys %last_error > 10000;
    return $out . record($level, $text);
}

# Down events whose reason did not follow within `$age` seconds (of those
# whose key `$which` accepts, if given).
sub flush_pending {
    my ($age, $which) = @_;
    my $out = '';
    for my $key (sort keys %pending) {
        next if time - $pending{$key}[0] < $age || ($which && !$which->($key));
        my (undef, $fields) = @{delete $pending{$key}};
        $out .= event(@$fields, reason => 'layer-7 errors');
    }
    return $out;
}

sub nginx_access_line {
    my ($line) = @_;
    # The common case, every replica in: nothing to look for.
    return $line unless %down || %empty;
    my ($addresses) = $line =~ /"upstream_addr":"([^"]*)"/;
    my ($statuses) = $line =~ /"upstream_status":"([^"]*)"/;
    my ($uri) = $line =~ /"uri":"([^"]*)"/;
    return $line unless defined $addresses && defined $statuses;
    # Attempts are listed with ", "; " : " separates internal redirects.
    my @address = split /\s*,\s*|\s+:\s+/, $addresses;
    my @status = split /\s*,\s*|\s+:\s+/, $statuses;
    my $out = $line;
    for my $i (0 .. $#address) {
        my ($address, $status) = ($address[$i], $status[$i] // '');
        next unless $status =~ /^[1-4]\d\d$/;
        my %fields = replica_fields($address, $uri);
        delete $empty{$fields{upstream}};
        next unless delete $down{$address};
        $out .= flush_pending(0, sub { $_[0] =~ / \Q$address\E$/ });
        $out .= event(event => 'replica_up', %fields, reason => 'recovered', detail => "answered $status");
    }
    return $out;
}

sub convert_nginx {
    my ($line, $default_level) = @_;
    if ($line =~ m{^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] (\d+)#\d+: (?:\*(\d+) )?(.*)$}) {
        return nginx_error_line($NGINX_LEVEL{$1} // 'WARNING', $2, $3, $4);
    }
    # Before its error log is open, nginx writes "nginx: [emerg] ..." to stderr.
    if ($line =~ /^nginx: \[(\w+)\] (.*)$/) {
        return record($NGINX_LEVEL{$1} // 'WARNING', $2);
    }
    $line =~ s/\s+$//;
    return record($default_level, $line);
}

# --- Lines ---------------------------------------------------------------------

sub convert_line {
    my ($line, $default_level) = @_;
    # Trailing white space goes first: a pattern ending in \s*$ costs Perl
    # about 25 us per 400-character line, more than all the rest.
    $line =~ s/\s+$//;
    return '' if $line eq '';
    if ($line =~ /^\{.*\}$/) {
        # Both access-log formats end with "event", "-" on an ordinary answer:
        # neither proxy can leave a field out per request (HAProxy prints "-"
        # for an unset variable, and even for a set one on a request it could
        # not parse), so the field is dropped here.
        $line =~ s/,"event":"-"\}$/}/;
        $line .= "\n";
        $line = access_prefix() . substr($line, 1) unless $line =~ /^\{\}/;
        return $opt{proxy} eq 'nginx' ? nginx_access_line($line) : $line;
    }
    return $opt{proxy} eq 'nginx' ? convert_nginx($line, $default_level) : convert_haproxy($line, $default_level);
}

# Longer lines are cut and each piece converted on its own, so one runaway
# line cannot exhaust memory.
my $MAX_LINE = 65536;

sub emit {
    my ($text) = @_;
    my $offset = 0;
    while ($offset < length $text) {
        my $written = syswrite(STDOUT, $text, length($text) - $offset, $offset);
        if (!defined $written) {
            next if $!{EINTR} || $!{EAGAIN};
            exit 1;
        }
        $offset += $written;
    }
}

if ($convert) {
    while (my $line = <STDIN>) {
        chomp $line;
        emit(convert_line($line, 'INFO'));
    }
    emit(flush_pending(0));
    exit 0;
}

# --- The child -------------------------------------------------------------------

pipe(my $out_read, my $out_write) or die "pipe: $!";
pipe(my $err_read, my $err_write) or die "pipe: $!";
my $child = fork() // die "fork: $!";
if ($child == 0) {
    open(STDOUT, '>&', $out_write) or die "stdout: $!";
    open(STDERR, '>&', $err_write) or die "stderr: $!";
    close($_) for $out_read, $err_read, $out_write, $err_write;
    { no warnings 'exec'; exec { $ARGV[0] } @ARGV; }
    print STDERR "proxy-log.pl: cannot run $ARGV[0]: $!\n";
    POSIX::_exit(127);
}
close($_) for $out_write, $err_write;

# Every signal a proxy acts on goes to the child: SIGQUIT/SIGTERM/SIGINT
# (nginx's graceful and fast stops), SIGUSR1 (HAProxy's soft stop, nginx's
# log reopening), SIGUSR2 (HAProxy's reload in master-worker mode, nginx's
# binary upgrade), SIGHUP (nginx's reload) and SIGWINCH.
for my $name (qw(HUP INT QUIT TERM USR1 USR2 WINCH ALRM CONT TTIN TTOU)) {
    $SIG{$name} = sub { kill $name, $child };
}
$SIG{PIPE} = 'DEFAULT';

my %level_of = (fileno($out_read) => 'INFO', fileno($err_read) => 'WARNING');
my %buffer = (fileno($out_read) => '', fileno($err_read) => '');
my $select = IO::Select->new($out_read, $err_read);
my $status;
my $drain_until;

sub reap {
    while ((my $pid = waitpid(-1, WNOHANG)) > 0) {
        next unless $pid == $child;
        $status = WIFEXITED($?) ? WEXITSTATUS($?) : 128 + WTERMSIG($?);
        # A worker that outlived its master may keep the pipes open; do not wait for it forever.
        $drain_until = time + 2;
    }
}

sub flush_lines {
    my ($fd, $final) = @_;
    while ($buffer{$fd} =~ s/^([^\n]*)\n//) {
        emit(convert_line($1, $level_of{$fd}));
    }
    if ($final || length $buffer{$fd} > $MAX_LINE) {
        emit(convert_line($buffer{$fd}, $level_of{$fd})) if length $buffer{$fd};
        $buffer{$fd} = '';
    }
}

while ($select->count) {
    reap();
    emit(flush_pending(1));
    last if defined $drain_until && time > $drain_until;
    for my $handle ($select->can_read(0.5)) {
        my $fd = fileno($handle);
        my $read = sysread($handle, my $chunk, 65536);
        next if !defined $read && ($!{EINTR} || $!{EAGAIN});
        if (!$read) {
            flush_lines($fd, 1);
            $select->remove($handle);
            close($handle);
            next;
        }
        $buffer{$fd} .= $chunk;
        flush_lines($fd, 0);
    }
}
flush_lines($_, 1) for keys %buffer;
emit(flush_pending(0));
until (defined $status) {
    my $pid = waitpid($child, 0);
    if ($pid == $child) {
        $status = WIFEXITED($?) ? WEXITSTATUS($?) : 128 + WTERMSIG($?);
    }
    elsif ($pid < 0 && !$!{EINTR}) {
        $status = 1;
    }
}
exit $status;
