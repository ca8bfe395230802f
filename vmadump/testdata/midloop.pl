# midloop.pl: spins in a Perl loop until getpid (the real system call; $$ is
# cached) changes, then checks that the interpreter's state survived.
use strict;
use warnings;
$| = 1;
my $pid0 = syscall(39);
my %table = map { $_ => $_ * $_ } 0 .. 49999;
my ($i, $sum) = (0, 0);
print "READY $pid0\n";
while (syscall(39) == $pid0) {
	$i++;
	$sum += $i;
}
my $ok = $sum == $i * ($i + 1) / 2;
for my $k (0 .. 49999) { $ok = 0 unless $table{$k} == $k * $k }
my @big = map { "x" x 1000 } 1 .. 10000;
print "restored after $i iterations\n";
print "VERDICT ", ($ok && @big == 10000 ? "PASS" : "FAIL"), "\n";
